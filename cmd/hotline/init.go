package main

import (
	"errors"
	"fmt"
	"strings"

	"hotline/internal/datadir"
)

func cmdInit(e *cmdEnv, args []string) error {
	fs := newFlags(e, "init", "init --data DIR --org ORG [flags]")
	data := fs.String("data", "", "data `directory` to create (must not exist or be empty)")
	orgName := fs.String("org", "", "organisation domain name, such as state.example")
	admin := fs.String("admin", "admin", "name of the first administrator")
	rootKey := fs.String("root-key", "", "where to write the offline root key (default DIR/root.key); move it off the server")
	hosts := fs.String("host", "", "extra comma-separated host names or addresses for the TLS certificate")
	db := storeFlags(fs) // default: SQLite in DIR
	requireArchive := fs.Bool("require-archive", false, "every conversation must have the organisation's archive device (hotline archive run) before anyone sends in it")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := required(fs, "data", "org"); err != nil {
		return err
	}
	var hostList []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hostList = append(hostList, h)
		}
	}
	res, err := datadir.Init(e.ctx, *data, datadir.InitOptions{
		Org: *orgName, Admin: *admin, RootKeyPath: *rootKey, Hosts: hostList, Database: db().Database, PasswordFile: db().PasswordFile, RequireArchive: *requireArchive,
	})
	if errors.Is(err, datadir.ErrExists) {
		return withHint(err, "choose a new directory; nothing was changed")
	} else if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, map[string]any{
			"org": res.Dir.Config.Org, "data": res.Dir.Path, "admin": res.Admin.String(), "invite": res.Invite.Code,
			"invite_expires": res.Invite.Expires, "root_key_file": res.RootKeyPath, "root_key": res.Dir.Config.RootKey,
			"fingerprint": res.Fingerprint, "log_origin": res.LogOrigin,
		})
	}
	fmt.Fprintf(e.stdout, `Created organisation %s in %s.

TLS certificate fingerprint (devices pin it when they enrol):
  %s

Offline root key written to %s.
  Move it off this server now and keep it offline; you need it only to
  rotate the online keys (hotline key rotate). hotline serve never reads it.
  Its public half: %s

First administrator: %s (also security officer until you appoint one)
  Invite code, valid until %s, usable once:
  %s

Next: hotline serve --data %s --listen 127.0.0.1:8443
Then: hotline enroll --server https://127.0.0.1:8443 --fingerprint %s --invite CODE --profile ~/.hotline/admin
`, res.Dir.Config.Org, res.Dir.Path, res.Fingerprint, res.RootKeyPath, res.Dir.Config.RootKey,
		res.Admin, res.Invite.Expires.Format("2006-01-02 15:04 MST"), res.Invite.Code, res.Dir.Path, res.Fingerprint)
	return nil
}

func cmdKey(e *cmdEnv, args []string) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usagef("key: want: hotline key rotate --data DIR --root-key FILE [--issuer] [--log] [--delivery]")
	}
	fs := newFlags(e, "key rotate", "key rotate --data DIR --root-key FILE [--issuer] [--log] [--delivery]")
	data := fs.String("data", "", "data `directory`")
	rootKey := fs.String("root-key", "", "the offline root key `file`")
	issuer := fs.Bool("issuer", false, "rotate the credential issuer key")
	logKey := fs.Bool("log", false, "rotate the log checkpoint key")
	deliveryKey := fs.Bool("delivery", false, "rotate the delivery service's key (the conversations' external sender)")
	db := storeFlags(fs)
	if _, err := parse(fs, args[1:], 0, 0); err != nil {
		return err
	}
	if err := required(fs, "data", "root-key"); err != nil {
		return err
	}
	var which []string
	if *issuer {
		which = append(which, datadir.RotateIssuer)
	}
	if *logKey {
		which = append(which, datadir.RotateLog)
	}
	if *deliveryKey {
		which = append(which, datadir.RotateDelivery)
	}
	if len(which) == 0 {
		return usagef("key rotate: name --issuer, --log, --delivery or several")
	}
	d, err := datadir.Open(*data)
	if err != nil {
		return err
	}
	ks, err := d.Rotate(e.ctx, *rootKey, which, db())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Key set %d signed by the root key.\n  issuer   %s\n  log      %s\n  delivery %s\nRestart hotline serve to use the new keys; devices learn them from the log.\n", ks.Serial, ks.Issuer, ks.Log, ks.Delivery)
	return nil
}
