package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"hotline/internal/client"
	"hotline/internal/identity"
)

// profileFlag adds --profile, defaulting to $HOTLINE_PROFILE.
func profileFlag(fs *flag.FlagSet) *string {
	return fs.String("profile", os.Getenv("HOTLINE_PROFILE"), "device profile `directory` (default $HOTLINE_PROFILE)")
}

func openProfile(dir string) (*client.Client, error) {
	if dir == "" {
		return nil, usagef("--profile is required (or set HOTLINE_PROFILE)")
	}
	return client.Open(dir, client.Options{})
}

// userArg resolves "bob" to bob@ORG and checks "bob@org".
func userArg(c *client.Client, s string) (identity.UserID, error) {
	if !strings.Contains(s, "@") {
		s += "@" + c.Profile().Org
	}
	return identity.ParseUserID(s)
}

func cmdEnroll(e *cmdEnv, args []string) error {
	fs := newFlags(e, "enroll", "enroll --server URL --invite CODE|- --profile DIR [--fingerprint SHA256]")
	server := fs.String("server", "", "server `URL`, such as https://hotline.state.example:8443")
	invite := fs.String("invite", "", "the one-time invite `code`, or - to read it from standard input")
	profile := profileFlag(fs)
	fp := fs.String("fingerprint", "", "the server's TLS certificate fingerprint as printed by hotline init (needed for a self-signed certificate)")
	label := fs.String("label", "", "a name for this device, such as \"office laptop\"")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := required(fs, "server", "invite", "profile"); err != nil {
		return err
	}
	code := *invite
	if code == "-" {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read invite code from standard input: %w", err)
		}
		code = strings.TrimSpace(line)
	}
	c, res, err := client.Enroll(e.ctx, client.EnrollOptions{Server: *server, Invite: code, ProfileDir: *profile, Fingerprint: *fp, Label: *label})
	if errors.Is(err, client.ErrUnpinned) {
		return withHint(err, "never accept a fingerprint you cannot check against the one the operator gave you")
	} else if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "Enrolled device %s for %s (%s).\nProfile: %s\n", res.Device, res.User, res.Status, c.Dir())
	if res.Status != "active" {
		fmt.Fprintf(e.stdout, "This device awaits approval. Ask one of your other devices or a security officer to run:\n  hotline device approve %s\n", res.Device)
	}
	return nil
}

func cmdWhoami(e *cmdEnv, args []string) error {
	fs := newFlags(e, "whoami", "whoami --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	me, err := c.Me(e.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, me)
	}
	fmt.Fprintf(e.stdout, "user         %s\nroles        %s\nclearance    %s\ncompartments %s\ndevice       %s (%s)\n",
		me.User.ID, orNone(strings.Join(me.User.Roles, ",")), clearanceDisplay(me.User.Clearance), orNone(strings.Join(me.User.Compartments, ",")),
		me.Device.ID, me.Device.Status)
	if cr, err := c.Credential(); err == nil {
		fmt.Fprintf(e.stdout, "credential   valid until %s\n", cr.Expires.Format("2006-01-02 15:04 MST"))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clearanceDisplay(tok string) string {
	c, err := identity.ParseClearance(tok)
	if err != nil {
		return tok
	}
	return c.String()
}
