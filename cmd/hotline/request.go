package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/desk"
	"hotline/internal/identity"
)

// The duty desk from the command line: request (create, list, show,
// approve, propose, accept, decline, withdraw), schedule, and brief (send,
// show, ack). Times are read and shown in --tz (default $TZ, else UTC); a
// request shows the requester's own zone beside it. Purposes, reasons and
// briefings travel only inside the request's and the briefing's
// conversations; the server sees the metadata.

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// zoneFlag adds --tz and returns a function giving its name and location.
func zoneFlag(fs *flag.FlagSet) func() (string, *time.Location, error) {
	tz := fs.String("tz", "", "the IANA time `zone` to read and show times in (default $TZ, else UTC)")
	return func() (string, *time.Location, error) {
		name := *tz
		if name == "" {
			name = os.Getenv("TZ")
		}
		if name == "" {
			name = "UTC"
		}
		loc, err := time.LoadLocation(name)
		if err != nil {
			return "", nil, usagef("--tz %s: %v", name, err)
		}
		return name, loc, nil
	}
}

func cmdRequest(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("request: want create, list, show, approve, propose, accept, decline, withdraw, place, connect, hold, resume or transfer")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		return requestCreate(e, args)
	case "list":
		return requestList(e, args)
	case "show":
		return requestShow(e, args)
	case "approve", "propose", "accept", "decline", "withdraw":
		return requestDecide(e, sub, args)
	case "place", "connect":
		return requestPlace(e, sub, args)
	case "hold", "resume", "transfer":
		return requestHold(e, sub, args)
	}
	return usagef("request: unknown subcommand %q", sub)
}

func requestCreate(e *cmdEnv, args []string) error {
	fs := newFlags(e, "request create", "request create PRINCIPAL --purpose TEXT --window START/END... [--urgency routine|priority|flash] [--tz ZONE] [--classification LEVEL] --profile DIR [--json]")
	profile := profileFlag(fs)
	purpose := fs.String("purpose", "", "why you want the call: sent only to the duty desk (and the principal), end-to-end encrypted")
	urgency := fs.String("urgency", "routine", "routine, priority or flash (flash alerts the desk at once)")
	var windows listFlag
	fs.Var(&windows, "window", "when you could talk, `START/END`: \"2026-12-04 14:00/15:30\", \"2026-12-04 14:00/+45m\" or RFC 3339 (repeat for more)")
	level := fs.String("classification", "unclassified", "the classification `level` of the request's conversation and of the call")
	zone := zoneFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	zname, loc, err := zone()
	if err != nil {
		return err
	}
	u, err := desk.ParseUrgency(*urgency)
	if err != nil {
		return usagef("request create: %v", err)
	}
	clearance, err := identity.ParseClearance(*level)
	if err != nil {
		return usagef("request create: %v", err)
	}
	if strings.TrimSpace(*purpose) == "" {
		return usagef("request create: say why with --purpose")
	}
	ws, err := parseWindows(windows, loc)
	if err != nil {
		return err
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	principal, err := userArgs(c, pos)
	if err != nil {
		return err
	}
	v, err := c.RequestCall(e.ctx, client.RequestOptions{Principal: principal[0], Urgency: u, Windows: ws, Zone: zname, Purpose: *purpose,
		Classification: conversation.Classification{Level: clearance}})
	if err != nil {
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "request %s: %s call with %s, %s; the duty desk is told\n", v.ID, v.Urgency, v.Principal, v.Status)
	return nil
}

func parseWindows(in []string, loc *time.Location) ([]desk.Window, error) {
	if len(in) == 0 {
		return nil, usagef("give at least one --window START/END")
	}
	var ws []desk.Window
	for _, s := range in {
		w, err := desk.ParseWindow(s, loc)
		if err != nil {
			return nil, usagef("%v", err)
		}
		ws = append(ws, w)
	}
	return ws, nil
}

func requestList(e *cmdEnv, args []string) error {
	fs := newFlags(e, "request list", "request list [--status S,...] [--tz ZONE] --profile DIR [--json]")
	profile := profileFlag(fs)
	status := fs.String("status", "", "comma-separated statuses to show: pending, proposed, scheduled, declined, withdrawn (default all)")
	zone := zoneFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	_, loc, err := zone()
	if err != nil {
		return err
	}
	var statuses []string
	if *status != "" {
		statuses = strings.Split(*status, ",")
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	vs, err := c.Requests(e.ctx, statuses...)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, vs)
	}
	printRequests(e.stdout, vs, loc)
	return nil
}

func printRequests(w io.Writer, vs []api.CallRequest, loc *time.Location) {
	if len(vs) == 0 {
		fmt.Fprintln(w, "no call requests")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURGENCY\tSTATUS\tREQUESTER\tPRINCIPAL\tWHEN\tBRIEF")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID[:8], v.Urgency, v.Status, v.Requester, v.Principal, when(v, loc), briefState(v))
	}
	tw.Flush()
}

// when is a request's time as loc shows it: the scheduled time, or the
// first window.
func when(v api.CallRequest, loc *time.Location) string {
	const layout = "Mon 2 Jan 15:04 MST"
	switch {
	case v.ScheduledAt != nil:
		return v.ScheduledAt.In(loc).Format(layout) + fmt.Sprintf(" (%d min)", v.Duration/60)
	case len(v.Windows) > 0:
		s := v.Windows[0].Start.In(loc).Format(layout) + "–" + v.Windows[0].End.In(loc).Format("15:04")
		if len(v.Windows) > 1 {
			s += fmt.Sprintf(" (+%d)", len(v.Windows)-1)
		}
		return s
	}
	return "-"
}

func briefState(v api.CallRequest) string {
	switch b := v.Briefing; {
	case b == nil:
		return "-"
	case b.Acked == b.Version:
		return fmt.Sprintf("v%d read", b.Version)
	}
	return fmt.Sprintf("v%d unread", v.Briefing.Version)
}

// byPrefix resolves an ID, or a unique prefix of at least 4 characters of
// one, among the items items returns (those the user may see); what names
// the kind ("call request") and listCmd the command that lists them.
func byPrefix[T any](id, what, listCmd string, items func() ([]T, error), idOf func(T) string) (string, error) {
	if len(id) == 32 {
		return id, nil
	}
	if len(id) < 4 {
		return "", usagef("name a %s by its ID or a prefix of at least 4 characters", what)
	}
	xs, err := items()
	if err != nil {
		return "", err
	}
	var found []string
	for _, x := range xs {
		if strings.HasPrefix(idOf(x), id) {
			found = append(found, idOf(x))
		}
	}
	switch len(found) {
	case 0:
		return "", withHint(fmt.Errorf("no %s %s", what, id), "%s shows those you may see", listCmd)
	case 1:
		return found[0], nil
	}
	return "", usagef("%d of your %ss start with %s: give more of the ID", len(found), what, id)
}

// findRequest resolves a call request's ID or a unique prefix of one.
func findRequest(e *cmdEnv, c *client.Client, id string) (string, error) {
	return byPrefix(id, "call request", "hotline request list", func() ([]api.CallRequest, error) { return c.Requests(e.ctx) },
		func(v api.CallRequest) string { return v.ID })
}

func requestShow(e *cmdEnv, args []string) error {
	fs := newFlags(e, "request show", "request show ID [--tz ZONE] --profile DIR [--json]")
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
	id, err := findRequest(e, c, pos[0])
	if err != nil {
		return err
	}
	r, err := c.Request(e.ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, r)
	}
	printRequest(e.stdout, r, loc)
	return nil
}

func printRequest(w io.Writer, r client.CallRequest, loc *time.Location) {
	const layout = "Mon 2 Jan 2006 15:04 MST"
	fmt.Fprintf(w, "request %s: %s, %s\n", r.ID, r.Urgency, r.Status)
	fmt.Fprintf(w, "  from %s for %s, asked %s\n", r.Requester, r.Principal, r.CreatedAt.In(loc).Format(layout))
	rz, err := time.LoadLocation(r.Zone)
	if err != nil {
		rz = time.UTC
	}
	for _, win := range r.Windows {
		fmt.Fprintf(w, "  window %s–%s (%s–%s their time)\n", win.Start.In(loc).Format(layout), win.End.In(loc).Format("15:04"),
			win.Start.In(rz).Format("Mon 15:04"), win.End.In(rz).Format("15:04 MST"))
	}
	if r.ScheduledAt != nil {
		fmt.Fprintf(w, "  scheduled %s for %d min (%s their time), by %s\n", r.ScheduledAt.In(loc).Format(layout), r.Duration/60,
			r.ScheduledAt.In(rz).Format("Mon 15:04 MST"), orDash(r.DecidedBy))
	}
	fmt.Fprintf(w, "  purpose: %s\n", orDash(r.Purpose))
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note from %s, %s: %s\n", n.User, n.Time.In(loc).Format(layout), n.Text)
	}
	if r.Briefing != nil {
		fmt.Fprintf(w, "  briefing v%d by %s, %s\n", r.Briefing.Version, r.Briefing.By, briefState(r.CallRequest))
	}
	if r.Brief != nil {
		printBrief(w, r.Brief)
	}
}

func printBrief(w io.Writer, b *desk.Briefing) {
	fmt.Fprintf(w, "briefing, version %d\n", b.Version)
	for _, p := range b.TalkingPoints {
		fmt.Fprintf(w, "  • %s\n", p)
	}
	for _, q := range b.Questions {
		fmt.Fprintf(w, "  Q: %s\n  A: %s\n", q.Question, q.Answer)
	}
	if b.Background != "" {
		fmt.Fprintf(w, "  background: %s\n", b.Background)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func requestDecide(e *cmdEnv, action string, args []string) error {
	synopsis := map[string]string{
		"approve":  "request approve ID --at TIME [--duration 30m] [--note TEXT] [--tz ZONE] --profile DIR [--json]",
		"propose":  "request propose ID --window START/END... [--note TEXT] [--tz ZONE] --profile DIR [--json]",
		"accept":   "request accept ID --at TIME [--duration 30m] [--tz ZONE] --profile DIR [--json]",
		"decline":  "request decline ID --reason TEXT --profile DIR [--json]",
		"withdraw": "request withdraw ID [--reason TEXT] --profile DIR [--json]",
	}[action]
	fs := newFlags(e, "request "+action, synopsis)
	profile := profileFlag(fs)
	at := fs.String("at", "", "when the call starts: \"2026-12-04 14:00\" in --tz, or RFC 3339")
	dur := fs.Duration("duration", desk.DefaultDuration, "how long the call is planned for")
	var windows listFlag
	fs.Var(&windows, "window", "a time you propose instead, `START/END` (repeat for more)")
	note := fs.String("note", "", "a note for the requester, end-to-end encrypted")
	reason := fs.String("reason", "", "the reason, end-to-end encrypted (required to decline)")
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
	o := client.DecideOptions{Note: *note, Duration: *dur}
	if *reason != "" {
		o.Note = *reason
	}
	switch action {
	case "approve", "accept":
		if *at == "" {
			return usagef("request %s: say when with --at", action)
		}
		if o.At, err = desk.ParseTime(*at, loc); err != nil {
			return usagef("request %s: %v", action, err)
		}
	case "propose":
		if o.Windows, err = parseWindows(windows, loc); err != nil {
			return err
		}
	case "decline":
		if strings.TrimSpace(o.Note) == "" {
			return usagef("request decline: give the requester a --reason")
		}
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
	v, err := c.DecideRequest(e.ctx, id, action, o)
	if err != nil {
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "request %s: %s, %s\n", v.ID, v.Status, when(v, loc))
	return nil
}

func cmdSchedule(e *cmdEnv, args []string) error {
	fs := newFlags(e, "schedule", "schedule [--day YYYY-MM-DD] [--days N] [--tz ZONE] --profile DIR [--json]")
	profile := profileFlag(fs)
	day := fs.String("day", "", "the first `day` to show, in --tz (default today)")
	days := fs.Int("days", 1, "how many days to show")
	zone := zoneFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	_, loc, err := zone()
	if err != nil {
		return err
	}
	if *days < 1 || *days > 366 {
		return usagef("schedule: --days is 1 to 366")
	}
	c, err := openProfile(*profile)
	if err != nil {
		return err
	}
	now := time.Now().In(loc)
	from := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	if *day != "" {
		if from, err = time.ParseInLocation("2006-01-02", *day, loc); err != nil {
			return usagef("schedule: --day: want YYYY-MM-DD")
		}
	}
	to := from.AddDate(0, 0, *days)
	vs, err := c.Schedule(e.ctx, from, to)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, vs)
	}
	fmt.Fprintf(e.stdout, "schedule %s to %s (%s)\n", from.Format("Mon 2 Jan"), to.Add(-time.Second).Format("Mon 2 Jan 2006"), loc)
	if len(vs) == 0 {
		fmt.Fprintln(e.stdout, "no calls scheduled")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, v := range vs {
		end := v.ScheduledAt.Add(time.Duration(v.Duration) * time.Second)
		fmt.Fprintf(tw, "%s–%s\t%s\t%s with %s\t%s\tbrief %s\n", v.ScheduledAt.In(loc).Format("Mon 15:04"), end.In(loc).Format("15:04"),
			v.Urgency, v.Principal, v.Requester, v.ID[:8], briefState(v))
	}
	return tw.Flush()
}

func cmdBrief(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("brief: want send, show or ack")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "send":
		return briefSend(e, args)
	case "show", "ack":
		fs := newFlags(e, "brief "+sub, "brief "+sub+" ID --profile DIR [--json]")
		profile := profileFlag(fs)
		asJSON := fs.Bool("json", false, "print as JSON")
		pos, err := parse(fs, args, 1, 1)
		if err != nil {
			return err
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
		if sub == "ack" {
			v, err := c.AckBriefing(e.ctx, id)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(e.stdout, v)
			}
			fmt.Fprintf(e.stdout, "briefing v%d for request %s acknowledged\n", v.Briefing.Version, v.ID)
			return nil
		}
		r, err := c.Request(e.ctx, id)
		if err != nil {
			return err
		}
		if r.Brief == nil {
			return errors.New("this device holds no briefing for the request")
		}
		if *asJSON {
			return printJSON(e.stdout, r.Brief)
		}
		printBrief(e.stdout, r.Brief)
		return nil
	}
	return usagef("brief: unknown subcommand %q", sub)
}

func briefSend(e *cmdEnv, args []string) error {
	fs := newFlags(e, "brief send", "brief send ID [--point TEXT]... [--question Q --answer A]... [--background TEXT | --background-file FILE] --profile DIR [--json]")
	profile := profileFlag(fs)
	var points, questions, answers listFlag
	fs.Var(&points, "point", "a talking point (repeat for more)")
	fs.Var(&questions, "question", "an anticipated question (repeat; each with an --answer)")
	fs.Var(&answers, "answer", "the suggested answer to the --question in the same position")
	background := fs.String("background", "", "background for the principal")
	bgFile := fs.String("background-file", "", "read the background from `file`")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if len(questions) != len(answers) {
		return usagef("brief send: %d questions but %d answers: give one --answer per --question", len(questions), len(answers))
	}
	b := desk.Briefing{TalkingPoints: points, Background: *background}
	if *bgFile != "" {
		data, err := os.ReadFile(*bgFile)
		if err != nil {
			return err
		}
		b.Background = string(data)
	}
	for i := range questions {
		b.Questions = append(b.Questions, desk.QA{Question: questions[i], Answer: answers[i]})
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
	v, err := c.Brief(e.ctx, id, b)
	if err != nil {
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "briefing v%d sent for request %s to %s\n", v.Briefing.Version, v.ID, v.Principal)
	return nil
}

// requestPlace places a scheduled request's call as the desk (ringing the
// requester only), or connects the principal into it once the requester
// is on the line, preempting a routine call of theirs for a flash
// request. Signalling only: the desk talks from the web client or
// hotline call.
func requestPlace(e *cmdEnv, sub string, args []string) error {
	synopsis := "request place REQUEST --profile DIR [--json]"
	if sub == "connect" {
		synopsis = "request connect REQUEST CALL [--preempt] --profile DIR [--json]"
	}
	fs := newFlags(e, "request "+sub, synopsis)
	profile := profileFlag(fs)
	preempt := fs.Bool("preempt", false, "take the principal out of another call first (a flash request's call only)")
	asJSON := fs.Bool("json", false, "print as JSON")
	n := 1
	if sub == "connect" {
		n = 2
	}
	pos, err := parse(fs, args, n, n)
	if err != nil {
		return err
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
	var v api.Call
	if sub == "place" {
		v, err = c.PlaceRequestCall(e.ctx, id)
	} else {
		var r api.CallRequest
		if r, err = c.GetRequest(e.ctx, id); err == nil {
			v, err = c.RingIntoCall(e.ctx, pos[1], r.Principal, *preempt)
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	for _, p := range v.Participants {
		if p.State == "joined" || p.State == "ringing" {
			fmt.Fprintf(e.stdout, "call %s: %s %s\n", v.ID, p.User, p.State)
		}
	}
	return nil
}

// requestHold puts a participant of a call on hold or takes them off it
// ("please hold for the principal"), or transfers the call to a user
// (rings them in, then this device leaves).
func requestHold(e *cmdEnv, sub string, args []string) error {
	fs := newFlags(e, "request "+sub, "request "+sub+" CALL USER --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	user, err := userArg(c, pos[1])
	if err != nil {
		return err
	}
	var v api.Call
	if sub == "transfer" {
		v, err = c.TransferCall(e.ctx, pos[0], user.String())
	} else {
		v, err = c.HoldInCall(e.ctx, pos[0], user.String(), sub == "hold")
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	for _, p := range v.Participants {
		if p.State == "joined" || p.State == "ringing" {
			state := p.State
			if p.Held {
				state += ", on hold"
			}
			fmt.Fprintf(e.stdout, "call %s: %s %s\n", v.ID, p.User, state)
		}
	}
	return nil
}
