package main

import (
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"

	"hotline/internal/api"
)

func cmdPolicy(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("policy: want list, add, remove or check")
	}
	sub, args := args[0], args[1:]
	fs := newFlags(e, "policy "+sub, "policy list | add 'FROM -> TO : EFFECT' | remove ID | check USER")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	want := map[string]int{"list": 0, "add": 1, "remove": 1, "check": 1}
	n, ok := want[sub]
	if !ok {
		return usagef("policy: unknown subcommand %q", sub)
	}
	pos, err := parse(fs, args, n, n)
	if err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		var rs []api.Rule
		if err := c.Do(e.ctx, http.MethodGet, "/v1/policy", nil, &rs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, rs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRULE\tBY")
		for _, r := range rs {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", r.ID, r.Rule, r.CreatedBy)
		}
		return tw.Flush()
	case "add":
		var r api.Rule
		if err := c.Do(e.ctx, http.MethodPost, "/v1/policy", api.AddRuleRequest{Rule: pos[0]}, &r); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, r)
		}
		fmt.Fprintf(e.stdout, "Rule %d added: %s\n", r.ID, r.Rule)
	case "remove":
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil {
			return usagef("policy remove: %q is not a rule ID", pos[0])
		}
		var r api.Rule
		if err := c.Do(e.ctx, http.MethodDelete, "/v1/policy/"+pos[0], nil, &r); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, r)
		}
		fmt.Fprintf(e.stdout, "Rule %d removed: %s\n", id, r.Rule)
	case "check":
		to, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		var res api.ContactResponse
		if err := c.Do(e.ctx, http.MethodPost, "/v1/contact", api.ContactRequest{To: to.String()}, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "You may contact %s (%s).\n", to, orNone(res.Rule))
	}
	return nil
}
