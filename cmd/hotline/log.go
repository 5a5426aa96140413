package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/transparency"
)

func cmdLog(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("log: want verify, checkpoint, compare, audit or export")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "verify":
		return logVerify(e, args)
	case "checkpoint":
		return logCheckpoint(e, args)
	case "compare":
		return logCompare(e, args)
	case "audit":
		return logAudit(e, args)
	case "export":
		return logExport(e, args)
	}
	return usagef("log: unknown subcommand %q", sub)
}

func logVerify(e *cmdEnv, args []string) error {
	fs := newFlags(e, "log verify", "log verify --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	rep, err := c.VerifyLog(e.ctx)
	if rep != nil {
		if *asJSON {
			printJSON(e.stdout, rep)
		} else {
			fmt.Fprintf(e.stdout, "Log verified up to %d entries (%d new), root %s.\nYour devices:\n", rep.Size, rep.NewEntries, rep.Root[:16])
			for _, d := range rep.Devices {
				mark := ""
				if d.Self {
					mark = " (this device)"
				}
				fmt.Fprintf(e.stdout, "  %s  %-8s approved by %s%s\n", d.Device, d.Status, orNone(fmt.Sprint(d.Approvers)), mark)
			}
			for _, n := range rep.Notices {
				fmt.Fprintf(e.stdout, "notice: %s\n", n)
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(e.stdout, "PROBLEM: %s\n", p)
			}
		}
	}
	if errors.Is(err, client.ErrLogProblem) {
		return withHint(err, "tell your security officer; keep this profile directory as evidence")
	}
	return err
}

func logCheckpoint(e *cmdEnv, args []string) error {
	fs := newFlags(e, "log checkpoint", "log checkpoint --profile DIR")
	profile := profileFlag(fs)
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	cp, err := c.LastCheckpoint()
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(cp)
	return err
}

func logCompare(e *cmdEnv, args []string) error {
	fs := newFlags(e, "log compare", "log compare --profile DIR FILE   (a checkpoint another device printed)")
	profile := profileFlag(fs)
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	other, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	if err := c.CompareCheckpoint(e.ctx, other); err != nil {
		if errors.Is(err, client.ErrLogProblem) {
			return withHint(err, "the server may be showing different logs to different devices; tell your security officer")
		}
		return err
	}
	fmt.Fprintln(e.stdout, "Consistent: both checkpoints belong to the same log.")
	return nil
}

func logAudit(e *cmdEnv, args []string) error {
	fs := newFlags(e, "log audit", "log audit --data DIR [--database URL] [--json]")
	data := fs.String("data", "", "data `directory`")
	db := storeFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := required(fs, "data"); err != nil {
		return err
	}
	rep, err := audit(e, *data, db())
	if rep != nil {
		if *asJSON {
			printJSON(e.stdout, rep)
		} else {
			fmt.Fprintf(e.stdout, "Checked %d entries, %d checkpoints, %d devices, %d users (%d entries pending).\n",
				rep.Entries, rep.Checkpoints, rep.Devices, rep.Users, rep.Pending)
			for _, f := range rep.Findings {
				fmt.Fprintf(e.stdout, "FINDING: %s\n", f)
			}
		}
	}
	if errors.Is(err, transparency.ErrAudit) {
		return withHint(errors.New("audit failed: the database does not match its transparency log"), "treat the server as compromised; see docs/operator.md, \"Audit\"")
	}
	if err == nil && !*asJSON {
		fmt.Fprintln(e.stdout, "Audit passed.")
	}
	return err
}

func audit(e *cmdEnv, dir string, opts datadir.StoreOptions) (*transparency.AuditReport, error) {
	d, err := datadir.Open(dir)
	if err != nil {
		return nil, err
	}
	root, err := d.RootVerifier()
	if err != nil {
		return nil, err
	}
	st, err := d.OpenStore(e.ctx, opts)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return transparency.Audit(e.ctx, st, identity.LogKeyName(d.Config.Org), root)
}

func cmdEvents(e *cmdEnv, args []string) error {
	fs := newFlags(e, "events", "events --profile DIR [--count N] [--timeout D]")
	profile := profileFlag(fs)
	count := fs.Int("count", 0, "stop after N durable events (0: follow until interrupted)")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: never)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	release, err := lockProfile(c.Dir()) // the stream handles conversations too
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := e.ctx, context.CancelFunc(func() {})
	if *timeout > 0 {
		ctx, cancel = context.WithTimeout(e.ctx, *timeout)
	}
	defer cancel()
	seen := 0
	err = c.Events(ctx, func(m api.StreamMessage) error {
		if m.Type != api.StreamEvent {
			return nil
		}
		fmt.Fprintf(e.stdout, "%d %s %s\n", m.Seq, m.Event, m.Payload)
		if seen++; *count > 0 && seen >= *count {
			return client.ErrStop
		}
		return nil
	})
	if e.ctx.Err() != nil {
		return nil // interrupted: following ends
	}
	if ctx.Err() != nil {
		if *count == 0 {
			return nil // followed for --timeout, as asked
		}
		return fmt.Errorf("events: saw %d of %d events in %s", seen, *count, *timeout)
	}
	return err
}

// logExport writes what an auditor needs to check the log with independent
// tools (docs/log-format.md): the newest checkpoint, every entry, and the
// public keys.
func logExport(e *cmdEnv, args []string) error {
	fs := newFlags(e, "log export", "log export --data DIR --out DIR")
	data := fs.String("data", "", "data `directory`")
	out := fs.String("out", "", "`directory` to create for the export")
	db := storeFlags(fs)
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := required(fs, "data", "out"); err != nil {
		return err
	}
	d, err := datadir.Open(*data)
	if err != nil {
		return err
	}
	root, err := d.RootVerifier()
	if err != nil {
		return err
	}
	st, err := d.OpenStore(e.ctx, db())
	if err != nil {
		return err
	}
	defer st.Close()
	sets, err := datadir.KeySets(e.ctx, st, root)
	if err != nil {
		return err
	}
	var (
		size    int64
		cp      []byte
		entries [][]byte
	)
	err = st.View(e.ctx, func(tx *store.Tx) error {
		var err error
		if size, cp, err = tx.LatestCheckpoint(e.ctx); err != nil {
			return fmt.Errorf("latest checkpoint: %w", err)
		}
		entries, err = tx.Entries(e.ctx, 0, size)
		return err
	})
	if err != nil {
		return err
	}
	if err := os.Mkdir(*out, 0o755); err != nil {
		return err
	}
	var keys, lines strings.Builder
	for _, ks := range sets {
		fmt.Fprintln(&keys, ks.Log)
	}
	for _, en := range entries {
		fmt.Fprintln(&lines, base64.StdEncoding.EncodeToString(en))
	}
	for name, content := range map[string]string{
		"checkpoint": string(cp), "entries": lines.String(), "log-keys": keys.String(), "root-key": d.Config.RootKey + "\n",
	} {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "Exported %d entries and the checkpoint covering them to %s.\n", size, *out)
	return nil
}
