package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/identity"
	"hotline/internal/org"
)

func cmdInvite(e *cmdEnv, args []string) error {
	fs := newFlags(e, "invite", "invite [USER] --profile DIR   (default: your own next device)\n   or: hotline invite --data DIR USER   (operator, for a user with no active device)")
	profile := profileFlag(fs)
	data := fs.String("data", "", "operator: mint the invite in this data `directory` (break-glass; see docs/operator.md)")
	db := storeFlags(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	if len(args) > 0 && args[0] == "create" { // "hotline invite create [USER]" reads naturally too
		args = args[1:]
	}
	pos, err := parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	if *data != "" {
		if len(pos) != 1 {
			return usagef("invite --data: name the user")
		}
		inv, err := operatorInvite(e, *data, pos[0], db())
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, api.Invite{User: inv.User.String(), Code: inv.Code, Expires: inv.Expires})
		}
		fmt.Fprintf(e.stdout, "Operator invite for a device of %s, valid until %s, usable once:\n  %s\n", inv.User, inv.Expires.Format("2006-01-02 15:04 MST"), inv.Code)
		return nil
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	user := c.Profile().User
	if len(pos) == 1 {
		id, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		user = id.String()
	}
	var inv api.Invite
	if err := c.Do(e.ctx, http.MethodPost, "/v1/invites", api.InviteRequest{User: user}, &inv); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, inv)
	}
	fmt.Fprintf(e.stdout, "Invite code for a new device of %s, valid until %s, usable once:\n  %s\n", inv.User, inv.Expires.Format("2006-01-02 15:04 MST"), inv.Code)
	return nil
}

func cmdDevice(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("device: want list, approve, revoke or accept")
	}
	sub, args := args[0], args[1:]
	fs := newFlags(e, "device "+sub, "device list [--user U] | approve ID | revoke ID [--reason CODE] | accept ID")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	var user, reason *string
	switch sub {
	case "list":
		user = fs.String("user", "", "list another user's devices (security officers)")
	case "revoke":
		reason = fs.String("reason", "revoked", "a short reason code, such as lost or compromised")
	}
	want := map[string]int{"list": 0, "approve": 1, "revoke": 1, "accept": 1}
	n, ok := want[sub]
	if !ok {
		return usagef("device: unknown subcommand %q", sub)
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
		path := "/v1/devices"
		if *user != "" {
			id, err := userArg(c, *user)
			if err != nil {
				return err
			}
			path += "?user=" + url.QueryEscape(id.String())
		}
		var ds []api.Device
		if err := c.Do(e.ctx, http.MethodGet, path, nil, &ds); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, ds)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tUSER\tSTATUS\tLABEL\tKEY\tAPPROVED BY")
		for _, d := range ds {
			var by []string
			for _, a := range d.Approvals {
				by = append(by, a.Approver)
			}
			self := ""
			if d.ID == c.Profile().Device {
				self = " (this device)"
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, self, d.User, d.Status, orNone(d.Label), client.KeyFingerprint(d.SigKey), orNone(strings.Join(by, ",")))
		}
		return tw.Flush()
	case "approve":
		var res api.ApproveResponse
		if err := c.Do(e.ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(pos[0])+"/approve", nil, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		if res.Activated {
			fmt.Fprintf(e.stdout, "Device %s of %s is now active.\n", res.Device.ID, res.Device.User)
		} else {
			fmt.Fprintf(e.stdout, "Approval recorded: device %s of %s has %d of %d approvals; it needs another, different approver.\n",
				res.Device.ID, res.Device.User, len(res.Device.Approvals), res.Needed)
		}
		return nil
	case "revoke":
		var d api.Device
		if err := c.Do(e.ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(pos[0])+"/revoke", api.RevokeRequest{Reason: *reason}, &d); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, d)
		}
		fmt.Fprintf(e.stdout, "Device %s of %s is revoked; its sessions are closed.\n", d.ID, d.User)
		return nil
	case "accept":
		if err := c.Accept(pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Device %s accepted as yours; hotline log verify will no longer flag it.\n", pos[0])
		return nil
	}
	return nil
}

func operatorInvite(e *cmdEnv, dir, name string, opts datadir.StoreOptions) (org.Invite, error) {
	d, err := datadir.Open(dir)
	if err != nil {
		return org.Invite{}, err
	}
	if !strings.Contains(name, "@") {
		name += "@" + d.Config.Org
	}
	user, err := identity.ParseUserID(name)
	if err != nil {
		return org.Invite{}, err
	}
	st, err := d.OpenStore(e.ctx, opts)
	if err != nil {
		return org.Invite{}, err
	}
	defer st.Close()
	return org.New(org.Config{Org: d.Config.Org, Store: st}).OperatorInvite(e.ctx, user)
}
