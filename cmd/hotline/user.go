package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"

	"hotline/internal/api"
)

func cmdUser(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("user: want add, list, show, roles, clearance, requests, disable or notetaker")
	}
	sub, args := args[0], args[1:]
	if sub == "notetaker" {
		return userNoteTaker(e, args)
	}
	fs := newFlags(e, "user "+sub, "user add|list|show|roles|clearance|requests|disable|notetaker ... --profile DIR")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	var roles, clearance, comps *string
	var all *bool
	var reason *string
	switch sub {
	case "add":
		roles = fs.String("roles", "", "comma-separated roles")
		clearance = fs.String("clearance", "unclassified", "clearance level; above UNCLASSIFIED needs a second admin")
		comps = fs.String("compartments", "", "comma-separated compartments; needs a second admin")
	case "clearance":
		comps = fs.String("compartments", "-", "comma-separated compartments (- for none)")
	case "requests":
		all = fs.Bool("all", false, "include applied and replaced requests")
	case "disable":
		reason = fs.String("reason", "disabled", "a short reason code, such as left or removed")
	}
	want := map[string][2]int{"add": {1, 1}, "list": {0, 0}, "show": {1, 1}, "roles": {2, 2}, "clearance": {2, 2}, "requests": {0, 0}, "disable": {1, 1}}
	n, ok := want[sub]
	if !ok {
		return usagef("user: unknown subcommand %q", sub)
	}
	pos, err := parse(fs, args, n[0], n[1])
	if err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		id, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		req := api.CreateUserRequest{User: id.String(), Roles: splitList(*roles), Clearance: *clearance, Compartments: splitList(*comps)}
		var res api.CreateUserResponse
		if err := c.Do(e.ctx, http.MethodPost, "/v1/users", req, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "Created %s (%s).\nInvite code for their first device, valid until %s, usable once:\n  %s\n",
			res.User.ID, orNone(strings.Join(res.User.Roles, ",")), res.Invite.Expires.Format("2006-01-02 15:04 MST"), res.Invite.Code)
		if res.ClearanceRequest != 0 {
			fmt.Fprintf(e.stdout, "Clearance %s awaits a second admin (request %d): hotline user clearance %s %s --compartments %s\n",
				clearanceDisplay(*clearance), res.ClearanceRequest, id.Name, *clearance, orNone(*comps))
		}
		return nil
	case "list":
		var us []api.User
		if err := c.Do(e.ctx, http.MethodGet, "/v1/users", nil, &us); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, us)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tROLES\tCLEARANCE\tCOMPARTMENTS")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.ID, orNone(strings.Join(u.Roles, ",")), clearanceDisplay(u.Clearance), orNone(strings.Join(u.Compartments, ",")))
		}
		return tw.Flush()
	case "show":
		id, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		var u api.User
		if err := c.Do(e.ctx, http.MethodGet, "/v1/users/"+url.PathEscape(id.String()), nil, &u); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, u)
		}
		fmt.Fprintf(e.stdout, "user         %s\nroles        %s\nclearance    %s\ncompartments %s\ncreated      %s by %s\n",
			u.ID, orNone(strings.Join(u.Roles, ",")), clearanceDisplay(u.Clearance), orNone(strings.Join(u.Compartments, ",")),
			u.CreatedAt.Format("2006-01-02 15:04 MST"), u.CreatedBy)
		return nil
	case "roles":
		id, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		var u api.User
		if err := c.Do(e.ctx, http.MethodPut, "/v1/users/"+url.PathEscape(id.String())+"/roles", api.RolesRequest{Roles: splitList(pos[1])}, &u); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, u)
		}
		fmt.Fprintf(e.stdout, "%s now has roles %s.\n", u.ID, orNone(strings.Join(u.Roles, ",")))
		return nil
	case "clearance":
		id, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		var res api.ClearanceResponse
		req := api.ClearanceRequest{Clearance: pos[1], Compartments: splitList(*comps)}
		if err := c.Do(e.ctx, http.MethodPut, "/v1/users/"+url.PathEscape(id.String())+"/clearance", req, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		if res.Applied && len(res.Approvers) == 0 { // the server changed nothing
			fmt.Fprintf(e.stdout, "%s is already cleared %s %s; nothing changed.\n", res.User.ID, clearanceDisplay(res.User.Clearance),
				orNone(strings.Join(res.User.Compartments, ",")))
		} else if res.Applied {
			fmt.Fprintf(e.stdout, "%s is now cleared %s %s (approved by %s).\n", res.User.ID, clearanceDisplay(res.User.Clearance),
				orNone(strings.Join(res.User.Compartments, ",")), strings.Join(res.Approvers, ", "))
		} else {
			fmt.Fprintf(e.stdout, "Raising %s to %s needs a second admin: request %d, approved so far by %s.\nThe second admin runs the same command.\n",
				res.User.ID, clearanceDisplay(pos[1]), res.RequestID, strings.Join(res.Approvers, ", "))
		}
		return nil
	case "disable":
		id, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		var u api.User
		if err := c.Do(e.ctx, http.MethodPost, "/v1/users/"+url.PathEscape(id.String())+"/disable", api.RevokeRequest{Reason: *reason}, &u); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, u)
		}
		fmt.Fprintf(e.stdout, "%s is disabled; every device of theirs is revoked.\n", u.ID)
		return nil
	case "requests":
		path := "/v1/requests"
		if *all {
			path += "?all=true"
		}
		var rs []api.ChangeRequest
		if err := c.Do(e.ctx, http.MethodGet, path, nil, &rs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, rs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tSUBJECT\tCHANGE\tSTATUS\tAPPROVERS")
		for _, r := range rs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, r.Subject, r.Change, r.Status, strings.Join(r.Approvers, ","))
		}
		return tw.Flush()
	}
	return nil
}

// userNoteTaker shows, sets or clears principals' designated note-takers:
// the one rung into a principal's ad-hoc calls.
func userNoteTaker(e *cmdEnv, args []string) error {
	fs := newFlags(e, "user notetaker", "user notetaker [PRINCIPAL [NOTE-TAKER | --none]] --profile DIR [--json]\n\n"+
		"Without arguments, lists the designated note-takers you may see; with a principal, shows theirs;\n"+
		"with a note-taker too, designates them (admins and the duty desk); --none clears it. The\n"+
		"note-taker is rung into the principal's ad-hoc calls if they are in the call's conversation.")
	profile := profileFlag(fs)
	none := fs.Bool("none", false, "clear the principal's designated note-taker")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 0, 2)
	if err != nil {
		return err
	}
	if *none && len(pos) != 1 {
		return usagef("user notetaker: --none takes a principal and no note-taker")
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	var principal string
	if len(pos) > 0 {
		id, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		principal = id.String()
	}
	switch {
	case len(pos) == 2:
		taker, err := userArg(c, pos[1])
		if err != nil {
			return err
		}
		v, err := c.SetNoteTaker(e.ctx, principal, taker.String())
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, v)
		}
		fmt.Fprintf(e.stdout, "%s is %s's note-taker: rung into their ad-hoc calls in conversations they are in.\n", v.NoteTaker, v.Principal)
		return nil
	case *none:
		v, err := c.ClearNoteTaker(e.ctx, principal)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, v)
		}
		fmt.Fprintf(e.stdout, "%s has no designated note-taker now (it was %s).\n", v.Principal, v.NoteTaker)
		return nil
	}
	vs, err := c.NoteTakers(e.ctx)
	if err != nil {
		return err
	}
	if principal != "" {
		vs = slices.DeleteFunc(vs, func(v api.NoteTaker) bool { return v.Principal != principal })
		if len(vs) == 0 && !*asJSON {
			fmt.Fprintf(e.stdout, "%s has no designated note-taker\n", principal)
			return nil
		}
	}
	if *asJSON {
		return printJSON(e.stdout, vs)
	}
	if len(vs) == 0 {
		fmt.Fprintln(e.stdout, "no designated note-takers")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tNOTE-TAKER\tSET BY\tSET")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Principal, v.NoteTaker, v.SetBy, v.SetAt.Format("2006-01-02 15:04 MST"))
	}
	return tw.Flush()
}

func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && f != "-" {
			out = append(out, f)
		}
	}
	return out
}
