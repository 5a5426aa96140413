package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/desk"
)

// Memoranda of conversation and commitments from the command line: memcon
// (draft, list, show, approve, distribute) and commitment (list, done,
// cancel). The text goes only inside MLS: to the approver as a draft, then
// to the need-to-know list.

func cmdMemCon(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("memcon: want draft, list, show, approve or distribute")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "draft":
		return memconDraft(e, args)
	case "list":
		return memconList(e, args)
	case "show", "approve":
		return memconShowApprove(e, sub, args)
	case "distribute":
		return memconDistribute(e, args)
	}
	return usagef("memcon: unknown subcommand %q", sub)
}

func memconDraft(e *cmdEnv, args []string) error {
	fs := newFlags(e, "memcon draft", "memcon draft REQUEST --approver USER --subject TEXT --summary TEXT [--held TIME] [--participant USER]... [--commitment 'OWNER|DUE|TEXT']... [--tz ZONE] --profile DIR [--json]")
	profile := profileFlag(fs)
	approver := fs.String("approver", "", "the `user` who approves the memorandum (not you)")
	subject := fs.String("subject", "", "what the call was")
	summary := fs.String("summary", "", "what was said, in summary")
	held := fs.String("held", "", "when the call was held (default: the request's scheduled time)")
	var participants, commitments listFlag
	fs.Var(&participants, "participant", "who took part (repeat; default: the requester and the principal)")
	fs.Var(&commitments, "commitment", "a promise made, `OWNER|DUE|TEXT`: DUE as \"2026-12-10 17:00\" in --tz or RFC 3339 (repeat)")
	zone := zoneFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	_, loc, err := zone()
	if err != nil {
		return err
	}
	if *approver == "" || strings.TrimSpace(*subject) == "" || strings.TrimSpace(*summary) == "" {
		return usagef("memcon draft: give --approver, --subject and --summary")
	}
	var cms []desk.Commitment
	for _, s := range commitments {
		parts := strings.SplitN(s, "|", 3)
		if len(parts) != 3 {
			return usagef("memcon draft: --commitment %q: want OWNER|DUE|TEXT", s)
		}
		due, err := desk.ParseTime(parts[1], loc)
		if err != nil {
			return usagef("memcon draft: --commitment due: %v", err)
		}
		cms = append(cms, desk.Commitment{Owner: strings.TrimSpace(parts[0]), Due: due, Text: strings.TrimSpace(parts[2])})
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	id, err := findRequest(e, c, pos[0])
	if err != nil {
		return err
	}
	r, err := c.GetRequest(e.ctx, id)
	if err != nil {
		return err
	}
	at := time.Now()
	if r.ScheduledAt != nil {
		at = *r.ScheduledAt
	}
	if *held != "" {
		if at, err = desk.ParseTime(*held, loc); err != nil {
			return usagef("memcon draft: --held: %v", err)
		}
	}
	if len(participants) == 0 {
		participants = []string{r.Principal, r.Requester}
	}
	approverID, err := userArg(c, *approver)
	if err != nil {
		return err
	}
	for i := range cms {
		owner, err := userArg(c, cms[i].Owner)
		if err != nil {
			return err
		}
		cms[i].Owner = owner.String()
	}
	m, err := c.DraftMemCon(e.ctx, client.MemConDraft{Request: id, Approver: approverID.String(), Subject: *subject, HeldAt: at,
		Participants: participants, Summary: *summary, Commitments: cms})
	if err != nil {
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, m)
	}
	fmt.Fprintf(e.stdout, "memcon %s drafted with %d commitments; %s approves it\n", m.ID, len(m.Commitments), m.Approver)
	return nil
}

func memconList(e *cmdEnv, args []string) error {
	fs := newFlags(e, "memcon list", "memcon list --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	ms, err := c.MemCons(e.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, ms)
	}
	if len(ms) == 0 {
		fmt.Fprintln(e.stdout, "no memoranda")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tDRAFTER\tAPPROVER\tREQUEST\tCOMMITMENTS")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", m.ID[:8], m.Status, m.Drafter, m.Approver, m.Request[:8], len(m.Commitments))
	}
	return tw.Flush()
}

// findMemCon resolves a MemCon's ID or a unique prefix of one.
func findMemCon(e *cmdEnv, c *client.Client, id string) (string, error) {
	return byPrefix(id, "memorandum", "hotline memcon list", func() ([]api.MemCon, error) { return c.MemCons(e.ctx) },
		func(m api.MemCon) string { return m.ID })
}

func memconShowApprove(e *cmdEnv, sub string, args []string) error {
	fs := newFlags(e, "memcon "+sub, "memcon "+sub+" ID [--tz ZONE] --profile DIR [--json]")
	profile := profileFlag(fs)
	zone := zoneFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	_, loc, err := zone()
	if err != nil {
		return err
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	id, err := findMemCon(e, c, pos[0])
	if err != nil {
		return err
	}
	if sub == "approve" {
		m, err := c.ApproveMemCon(e.ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, m)
		}
		fmt.Fprintf(e.stdout, "memcon %s approved; %d commitments open\n", m.ID, len(m.Commitments))
		return nil
	}
	m, err := c.GetMemCon(e.ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, m)
	}
	printMemCon(e.stdout, m, loc)
	return nil
}

func printMemCon(w io.Writer, m client.MemCon, loc *time.Location) {
	const layout = "Mon 2 Jan 2006 15:04 MST"
	fmt.Fprintf(w, "memcon %s: %s, drafted by %s, approver %s\n", m.ID, m.Status, m.Drafter, m.Approver)
	if len(m.Recipients) > 0 {
		fmt.Fprintf(w, "  distributed to %s\n", strings.Join(m.Recipients, ", "))
	}
	if m.Doc == nil {
		fmt.Fprintln(w, "  (this device does not hold the text)")
	} else {
		d := m.Doc
		fmt.Fprintf(w, "  subject: %s\n  held: %s\n  participants: %s\n  summary: %s\n", d.Subject, d.HeldAt.In(loc).Format(layout), strings.Join(d.Participants, ", "), d.Summary)
	}
	for i, c := range m.Commitments {
		text := ""
		if m.Doc != nil && i < len(m.Doc.Commitments) {
			for _, dc := range m.Doc.Commitments {
				if dc.ID == c.ID {
					text = ": " + dc.Text
				}
			}
		}
		fmt.Fprintf(w, "  commitment %s (%s), due %s, %s%s\n", c.ID[:8], c.Owner, c.Due.In(loc).Format(layout), c.Status, text)
	}
}

func memconDistribute(e *cmdEnv, args []string) error {
	fs := newFlags(e, "memcon distribute", "memcon distribute ID USER... --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 2, -1)
	if err != nil {
		return err
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	id, err := findMemCon(e, c, pos[0])
	if err != nil {
		return err
	}
	users, err := userArgs(c, pos[1:])
	if err != nil {
		return err
	}
	m, err := c.DistributeMemCon(e.ctx, id, users)
	if err != nil {
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, m)
	}
	fmt.Fprintf(e.stdout, "memcon %s distributed to %s\n", m.ID, strings.Join(m.Recipients, ", "))
	return nil
}

func cmdCommitment(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("commitment: want list, done or cancel")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		fs := newFlags(e, "commitment list", "commitment list [--all] [--tz ZONE] --profile DIR [--json]")
		profile := profileFlag(fs)
		all := fs.Bool("all", false, "every commitment (the duty desk)")
		zone := zoneFlag(fs)
		asJSON := fs.Bool("json", false, "print as JSON")
		if _, err := parse(fs, args, 0, 0); err != nil {
			return err
		}
		_, loc, err := zone()
		if err != nil {
			return err
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		cs, err := c.Commitments(e.ctx, *all)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, cs)
		}
		printCommitments(e.stdout, cs, loc)
		return nil
	case "done", "cancel":
		fs := newFlags(e, "commitment "+sub, "commitment "+sub+" ID --profile DIR [--json]")
		profile := profileFlag(fs)
		asJSON := fs.Bool("json", false, "print as JSON")
		pos, err := parse(fs, args, 1, 1)
		if err != nil {
			return err
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		id, err := byPrefix(pos[0], "commitment", "hotline commitment list", func() ([]api.Commitment, error) { return c.Commitments(e.ctx, false) },
			func(x api.Commitment) string { return x.ID })
		if err != nil {
			return err
		}
		v, err := c.CloseCommitment(e.ctx, id, sub)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, v)
		}
		fmt.Fprintf(e.stdout, "commitment %s %s\n", v.ID, v.Status)
		return nil
	}
	return usagef("commitment: unknown subcommand %q", sub)
}

func printCommitments(w io.Writer, cs []api.Commitment, loc *time.Location) {
	if len(cs) == 0 {
		fmt.Fprintln(w, "no commitments")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tDUE\tSTATUS\tMEMCON")
	for _, c := range cs {
		st := c.Status
		if c.Overdue {
			st += " OVERDUE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID[:8], c.Owner, c.Due.In(loc).Format("Mon 2 Jan 15:04 MST"), st, c.MemCon[:8])
	}
	tw.Flush()
}

// cmdReadout files or lists the readouts ad-hoc calls owe the duty desk.
func cmdReadout(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("readout: want list or file")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		fs := newFlags(e, "readout list", "readout list [--tz ZONE] --profile DIR [--json]")
		profile := profileFlag(fs)
		zone := zoneFlag(fs)
		asJSON := fs.Bool("json", false, "print as JSON")
		if _, err := parse(fs, args, 0, 0); err != nil {
			return err
		}
		_, loc, err := zone()
		if err != nil {
			return err
		}
		c, release, err := openSynced(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		rs, err := c.Readouts(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, rs)
		}
		if len(rs) == 0 {
			fmt.Fprintln(e.stdout, "no ad-hoc calls")
			return nil
		}
		for _, r := range rs {
			st := strings.ToUpper(r.Status)
			if r.Late {
				st += " (LATE)"
			}
			fmt.Fprintf(e.stdout, "call %s: %s with %s, %s; readout due %s: %s\n", r.Call[:8], r.Principal, strings.Join(r.Others, ", "),
				r.PlacedAt.In(loc).Format("Mon 2 Jan 15:04 MST"), r.Due.In(loc).Format("15:04 MST"), st)
			switch r.NoteTakerStatus {
			case "":
			case "rung", "joined":
				fmt.Fprintf(e.stdout, "  note-taker %s: %s\n", r.NoteTaker, r.NoteTakerStatus)
			default:
				fmt.Fprintf(e.stdout, "  note-taker %s could not join: %s\n", r.NoteTaker, r.NoteTakerStatus)
			}
			if text := c.ReadoutText(r); text != "" {
				fmt.Fprintf(e.stdout, "  %s: %s\n", r.FiledBy, text)
			}
		}
		return nil
	case "file":
		fs := newFlags(e, "readout file", "readout file CALL --text TEXT --profile DIR [--json]")
		profile := profileFlag(fs)
		text := fs.String("text", "", "the readout: what was said and agreed, for the duty desk")
		asJSON := fs.Bool("json", false, "print as JSON")
		pos, err := parse(fs, args, 1, 1)
		if err != nil {
			return err
		}
		if strings.TrimSpace(*text) == "" {
			return usagef("readout file: give the readout with --text")
		}
		c, release, err := openSynced(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		rs, err := c.Readouts(e.ctx)
		if err != nil {
			return err
		}
		var found []api.Readout
		for _, r := range rs {
			if strings.HasPrefix(r.Call, pos[0]) && len(pos[0]) >= 4 {
				found = append(found, r)
			}
		}
		if len(found) != 1 {
			return withHint(fmt.Errorf("no single ad-hoc call starts with %q", pos[0]), "hotline readout list shows the calls that owe a readout")
		}
		v, err := c.FileReadout(e.ctx, found[0].Call, found[0].Principal, *text)
		if err != nil {
			return convError(err)
		}
		if *asJSON {
			return printJSON(e.stdout, v)
		}
		late := ""
		if v.Late {
			late = " (late)"
		}
		fmt.Fprintf(e.stdout, "readout of call %s filed%s\n", v.Call, late)
		return nil
	}
	return usagef("readout: unknown subcommand %q", sub)
}
