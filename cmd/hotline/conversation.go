package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/desk"
	"hotline/internal/identity"
)

// Conversations, from the command line: conversation create, list,
// members, add and remove; send, read, attach and chat.
//
// Every command first syncs the device (client.Sync): it joins the
// conversations it was added to, handles what arrived, and publishes key
// packages, so others can add it. Problems the device meets on the way (a
// message it refused, say) are printed as warnings: nothing else would
// show them. CONV is anything client.FindConversation takes: an ID, a
// unique prefix of one, or an exact title.
//
// read and chat keep a read marker per conversation in the profile
// (readMarkFile), so read prints what arrived since the last read.

// openLocked opens a profile and takes its lock (lockProfile). The caller
// calls release when done.
func openLocked(profile string) (c *client.Client, release func(), err error) {
	if c, err = openProfile(profile); err != nil {
		return nil, nil, err
	}
	if release, err = lockProfile(c.Dir()); err != nil {
		return nil, nil, err
	}
	return c, release, nil
}

// openSynced is openLocked, then a sync, printing problems to stderr.
func openSynced(e *cmdEnv, profile string) (c *client.Client, release func(), err error) {
	if c, release, err = openLocked(profile); err != nil {
		return nil, nil, err
	}
	c.OnUpdate(func(u client.Update) { warnProblem(e.stderr, u) })
	if err := c.Sync(e.ctx); err != nil {
		release()
		return nil, nil, fmt.Errorf("sync: %w", err)
	}
	return c, release, nil
}

// openConversation is openSynced, then finds a conversation.
func openConversation(e *cmdEnv, profile, name string) (*client.Client, client.ConversationInfo, func(), error) {
	if strings.TrimSpace(name) == "" {
		return nil, client.ConversationInfo{}, nil, usagef("name a conversation by its ID, a prefix of it, or its title")
	}
	c, release, err := openSynced(e, profile)
	if err != nil {
		return nil, client.ConversationInfo{}, nil, err
	}
	info, err := c.FindConversation(name)
	if err != nil {
		release()
		return nil, info, nil, convError(err)
	}
	return c, info, release, nil
}

// warnProblem prints an Update of kind problem as a warning.
func warnProblem(w io.Writer, u client.Update) {
	if u.Kind != client.UpdateProblem || u.Err == nil {
		return
	}
	where := "conversation " + u.Conversation
	if u.Conversation == "" {
		where = "an invitation"
	}
	fmt.Fprintf(w, "hotline: warning: %s: %s\n", where, cleanLine(u.Err.Error()))
}

// usableInfo says why a conversation cannot be used, if it cannot.
func usableInfo(info client.ConversationInfo) error {
	switch {
	case info.Removed:
		return convError(fmt.Errorf("%w: %s", client.ErrRemoved, info.ID))
	case info.Broken != "":
		return convError(fmt.Errorf("%w: %s: %s", client.ErrConversationBroken, info.ID, info.Broken))
	}
	return nil
}

const clearanceHint = "every member must be an active device of the organisation, cleared for the conversation's level and compartments; two admins can raise a clearance with hotline user clearance"

// convError adds a hint to the errors of conversations a user can act on.
func convError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrConversationBroken):
		return withHint(err, "this device refused a change the server accepted, so the conversation may now include someone who should not be there, and this device will not send there; tell your security officer")
	case errors.Is(err, client.ErrRemoved):
		return withHint(err, "you are no longer a member; a member can add you again with hotline conversation add")
	case errors.Is(err, client.ErrArchiveMissing):
		return withHint(err, "your organisation requires its archive member in every conversation: ask a member to add the archive user")
	case errors.Is(err, client.ErrNoConversation):
		return withHint(err, "hotline conversation list shows this device's conversations")
	case errors.Is(err, conversation.ErrNotAllowed), apierr.Is(err, apierr.ClearanceInsufficient):
		return withHint(err, clearanceHint)
	case apierr.Is(err, apierr.ContactRefused):
		return withHint(err, "hotline policy check USER shows the rule; only an admin can change the contact policy")
	case apierr.Is(err, apierr.KeyPackageMissing):
		return withHint(err, "they have no device ready to join yet: a device publishes its key packages when it runs any conversation command, such as hotline conversation list")
	}
	return err
}

// userArgs resolves user names ("bob", "bob@org") to user IDs.
func userArgs(c *client.Client, names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		id, err := userArg(c, n)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, id.String()) {
			out = append(out, id.String())
		}
	}
	return out, nil
}

func cmdConversation(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("conversation: want create, list, members, add or remove")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		return convCreate(e, args)
	case "list":
		return convList(e, args)
	case "members":
		return convMembers(e, args)
	case "add", "remove":
		return convAddRemove(e, sub, args)
	}
	return usagef("conversation: unknown subcommand %q", sub)
}

func convCreate(e *cmdEnv, args []string) error {
	fs := newFlags(e, "conversation create", "conversation create [--title T] [--classification LEVEL] [--compartments A,B] [--archive] MEMBER... --profile DIR [--json]")
	profile := profileFlag(fs)
	title := fs.String("title", "", "the conversation's `title`, seen only by its members")
	level := fs.String("classification", "unclassified", "the classification `level`: unclassified, confidential, secret or top-secret; every member must be cleared for it")
	comps := fs.String("compartments", "", "comma-separated `compartments` every member must hold")
	archived := fs.Bool("archive", false, "on the record: the organisation's archive device joins, and nobody sends without it (always so where the organisation requires it)")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 0, -1)
	if err != nil {
		return err
	}
	clearance, err := identity.ParseClearance(*level)
	if err != nil {
		return usagef("conversation create: %v", err)
	}
	compartments, err := identity.ParseCompartments(*comps)
	if err != nil {
		return usagef("conversation create: %v", err)
	}
	if len(*title) > conversation.MaxTitle || !utf8.ValidString(*title) {
		return usagef("conversation create: a title is UTF-8 text of at most %d bytes", conversation.MaxTitle)
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	members, err := userArgs(c, pos)
	if err != nil {
		return err
	}
	// The client registers the conversation before it adds anyone: ask
	// the contact policy first, so that a refused member does not leave a
	// conversation behind.
	for _, m := range members {
		if m == c.Profile().User {
			continue
		}
		if err := c.Do(e.ctx, http.MethodPost, "/v1/contact", api.ContactRequest{To: m}, nil); err != nil {
			return convError(err)
		}
	}
	info, err := c.CreateConversation(e.ctx, client.CreateOptions{Title: *title, Members: members,
		Classification: conversation.Classification{Level: clearance, Compartments: compartments, ArchiveRequired: *archived}})
	if err != nil {
		if info.ID != "" { // created and registered, but the members are not all in
			err = fmt.Errorf("conversation %s was created, but adding its members failed: %w", info.ID, err)
		}
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, info)
	}
	fmt.Fprintf(e.stdout, "Created conversation %s%s, %s.\n", info.ID, quotedTitle(info.Title), classification(info))
	_, err = io.WriteString(e.stdout, membersTable(info.Members))
	return err
}

// listed is a conversation as conversation list --json prints it.
type listed struct {
	client.ConversationInfo
	Unread int `json:"unread"`
}

func convList(e *cmdEnv, args []string) error {
	fs := newFlags(e, "conversation list", "conversation list --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	all, err := c.Conversations()
	if err != nil {
		return err
	}
	marks, err := loadReadMarks(c)
	if err != nil {
		return err
	}
	out := []listed{}
	for _, info := range all {
		ms, err := c.Messages(info.ID)
		if err != nil {
			return err
		}
		l := listed{ConversationInfo: info}
		for _, m := range ms {
			if m.Seq > marks[info.ID] && !m.Own {
				l.Unread++
			}
		}
		out = append(out, l)
	}
	if *asJSON {
		return printJSON(e.stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(e.stdout, "No conversations yet. Create one with hotline conversation create, or wait to be added to one.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tEPOCH\tCLASSIFICATION\tMEMBERS\tUNREAD\tTITLE")
	var broken []listed
	for _, l := range out {
		status, epoch := "active", strconv.FormatUint(l.Epoch, 10)
		switch {
		case l.Removed:
			status, epoch = "removed", "-"
		case l.Broken != "":
			status, epoch = "BROKEN", "-"
			broken = append(broken, l)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", l.ID, status, epoch, classification(l.ConversationInfo), len(users(l.Members)), l.Unread, orNone(cleanLine(l.Title)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range broken {
		fmt.Fprintf(e.stdout, "BROKEN %s: %s\n  This device no longer follows it or sends there: it may contain someone who should not be there. Tell your security officer.\n", l.ID, cleanLine(l.Broken))
	}
	return nil
}

func convMembers(e *cmdEnv, args []string) error {
	fs := newFlags(e, "conversation members", "conversation members CONV --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	_, info, release, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
	defer release()
	if err := usableInfo(info); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, info.Members)
	}
	_, err = io.WriteString(e.stdout, membersTable(info.Members))
	return err
}

func convAddRemove(e *cmdEnv, sub string, args []string) error {
	fs := newFlags(e, "conversation "+sub, "conversation "+sub+" CONV USER... --profile DIR [--json]")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 2, -1)
	if err != nil {
		return err
	}
	c, info, release, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
	defer release()
	if err := usableInfo(info); err != nil {
		return err
	}
	names, err := userArgs(c, pos[1:])
	if err != nil {
		return err
	}
	var ms []client.Member
	if sub == "add" {
		ms, err = c.AddMembers(e.ctx, info.ID, names...)
	} else {
		ms, err = c.RemoveMembers(e.ctx, info.ID, names...)
	}
	if err != nil {
		return addError(err, info, names)
	}
	if *asJSON {
		return printJSON(e.stdout, ms)
	}
	_, err = io.WriteString(e.stdout, changedLines(sub, ms, c.Conversation(info.ID).Epoch))
	return err
}

// addError is convError, and explains client.ErrNothingToAdd when every
// user named is a member already.
func addError(err error, info client.ConversationInfo, names []string) error {
	if !errors.Is(err, client.ErrNothingToAdd) {
		return convError(err)
	}
	in := users(info.Members)
	for _, n := range names {
		if !slices.Contains(in, n) {
			return err
		}
	}
	who := strings.Join(names, ", ") + " are members"
	if len(names) == 1 {
		who = names[0] + " is a member"
	}
	return withHint(err, "%s already; a new device of theirs joins once it has published key packages", who)
}

// changedLines reports the members an add or remove changed.
func changedLines(sub string, ms []client.Member, epoch uint64) string {
	verb := map[string]string{"add": "Added", "remove": "Removed"}[sub]
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s %s (device %s).\n", verb, m.User, m.Device)
	}
	fmt.Fprintf(&b, "The conversation is at epoch %d.\n", epoch)
	return b.String()
}

// users returns the distinct users of members, in order.
func users(ms []client.Member) []string {
	var out []string
	for _, m := range ms {
		if !slices.Contains(out, m.User) {
			out = append(out, m.User)
		}
	}
	return out
}

// membersTable formats members, one device a line, this device marked.
func membersTable(ms []client.Member) string {
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, func(a, b client.Member) int { return strings.Compare(a.User, b.User) })
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLES\tORG\tDEVICE\tCLEARANCE")
	for _, m := range ms {
		self := ""
		if m.Self {
			self = " (this device)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\t%s\n", m.User, orNone(m.Roles.String()), m.Org, m.Device, self,
			strings.TrimSpace(clearanceDisplay(m.Clearance)+" "+strings.Join(m.Compartments, ",")))
	}
	tw.Flush()
	return b.String()
}

// classification formats a conversation's classification: "SECRET ALPHA".
func classification(info client.ConversationInfo) string {
	if info.Clearance == "" {
		return "-"
	}
	return strings.TrimSpace(clearanceDisplay(info.Clearance) + " " + strings.Join(info.Compartments, ","))
}

func quotedTitle(t string) string {
	if t == "" {
		return ""
	}
	return ` "` + cleanLine(t) + `"`
}

// clean makes text from other members safe to print on a terminal:
// control characters other than newline and tab, and the bidirectional
// controls, are shown escaped, so that a message cannot move the cursor,
// recolour the screen or disguise what it says.
func clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case unicode.IsControl(r), r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cleanLine is clean for text that must stay on one line, such as a title
// or a file name: newlines and tabs are escaped too.
func cleanLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(clean(s))
}

// readMarkFile, in the profile, holds how far this device has read each
// conversation: {"ID": seq}. It says no more than the server knows.
const readMarkFile = "read.json"

func loadReadMarks(c *client.Client) (map[string]int64, error) {
	marks := map[string]int64{}
	b, err := os.ReadFile(filepath.Join(c.Dir(), readMarkFile))
	if errors.Is(err, os.ErrNotExist) {
		return marks, nil
	} else if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &marks); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(c.Dir(), readMarkFile), err)
	}
	return marks, nil
}

func readMark(c *client.Client, id string) (int64, error) {
	marks, err := loadReadMarks(c)
	return marks[id], err
}

// saveReadMark moves a conversation's read marker forward to seq.
func saveReadMark(c *client.Client, id string, seq int64) error {
	marks, err := loadReadMarks(c)
	if err != nil {
		return err
	}
	if marks[id] >= seq {
		return nil
	}
	marks[id] = seq
	b, err := json.Marshal(marks)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(c.Dir(), ".read-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(c.Dir(), readMarkFile))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func cmdSend(e *cmdEnv, args []string) error {
	fs := newFlags(e, "send", "send CONV TEXT... --profile DIR   (TEXT - reads the message from standard input)")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 2, -1)
	if err != nil {
		return err
	}
	text := strings.Join(pos[1:], " ")
	if len(pos) == 2 && pos[1] == "-" {
		b, err := io.ReadAll(io.LimitReader(e.stdin, conversation.MaxText+2))
		if err != nil {
			return fmt.Errorf("read the message from standard input: %w", err)
		}
		text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if err := checkText(text); err != nil {
		return usagef("send: %v", err)
	}
	c, info, release, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
	defer release()
	if err := usableInfo(info); err != nil {
		return err
	}
	m, err := c.Send(e.ctx, info.ID, conversation.Content{Kind: conversation.KindText, Text: text})
	if err != nil {
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, sent{Conversation: m.Conversation, Seq: m.Seq, Epoch: m.Epoch})
	}
	fmt.Fprintf(e.stdout, "Sent as message %d.\n", m.Seq)
	return nil
}

// sent is what send and attach print with --json.
type sent struct {
	Conversation string          `json:"conversation"`
	Seq          int64           `json:"seq"`
	Epoch        uint64          `json:"epoch"`
	Attachment   *attachmentInfo `json:"attachment,omitempty"`
}

func checkText(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("the message is empty")
	case !utf8.ValidString(s):
		return errors.New("the message is not UTF-8 text")
	case len(s) > conversation.MaxText:
		return fmt.Errorf("a message has at most %d bytes; send a longer text as a file with hotline attach", conversation.MaxText)
	}
	return nil
}

func cmdRead(e *cmdEnv, args []string) error {
	fs := newFlags(e, "read", "read CONV [--all] [--follow [--count N] [--timeout D]] --profile DIR [--json]")
	profile := profileFlag(fs)
	all := fs.Bool("all", false, "print the whole history on this device (default: what arrived since you last read)")
	follow := fs.Bool("follow", false, "keep printing new messages and membership changes until interrupted")
	count := fs.Int("count", 0, "with --follow, stop after printing N messages from others (0: follow until interrupted)")
	timeout := fs.Duration("timeout", 0, "with --follow, give up after this long (0: never)")
	asJSON := fs.Bool("json", false, "print one JSON object a line")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if !*follow && (*count != 0 || *timeout != 0) {
		return usagef("read: --count and --timeout go with --follow")
	}
	if *count < 0 {
		return usagef("read: --count must not be negative")
	}
	c, info, release, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
	defer release()
	v := &view{c: c, id: info.ID, asJSON: *asJSON, out: e.stdout, errw: e.stderr, limit: *count}
	if v.mark, err = readMark(c, info.ID); err != nil {
		return err
	}
	history, err := c.Messages(info.ID)
	if err != nil {
		return err
	}
	for _, m := range history {
		if (*all || m.Seq > v.mark) && !v.done() {
			v.message(m)
		} else {
			v.seen(m)
		}
	}
	if err := v.err; err != nil {
		return err
	}
	if !*follow {
		if v.printed == 0 && !*all && !*asJSON {
			fmt.Fprintln(e.stdout, "No new messages (--all prints the history).")
		}
		switch {
		case info.Removed:
			fmt.Fprintf(e.stderr, "hotline: warning: you were removed from conversation %s: nothing new will arrive\n", info.ID)
		case info.Broken != "":
			fmt.Fprintf(e.stderr, "hotline: warning: conversation %s: this device no longer follows it (%s)\n", info.ID, cleanLine(info.Broken))
		}
		return nil
	}
	if v.done() {
		return nil
	}
	if err := usableInfo(info); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	if *timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	v.stop = cancel
	err = c.Follow(ctx, v.update)
	switch {
	case v.err != nil:
		return v.err
	case v.done(), v.removed(), e.ctx.Err() != nil:
		return nil // as many as asked, removed, or interrupted
	case ctx.Err() != nil:
		if *count == 0 {
			return nil // followed for --timeout, as asked
		}
		return fmt.Errorf("read: saw %d of %d messages in %s", v.others, *count, *timeout)
	}
	return err
}

// view prints one conversation's messages and changes as they come, and
// moves its read marker. Its methods may be called from several
// goroutines (chat): mu guards every field after it and the output.
type view struct {
	c      *client.Client
	id     string
	asJSON bool
	limit  int                // stop after this many messages from others (0: never)
	stop   context.CancelFunc // called when the limit is reached or this device is removed

	mu      sync.Mutex
	out     io.Writer
	errw    io.Writer
	mark    int64  // the read marker
	title   string // the last title seen
	printed int    // messages printed
	others  int    // of them, messages from others
	left    bool   // this device was removed from the conversation
	err     error  // the first error saving the marker
}

// removed says whether this device was removed from the conversation
// while following it.
func (v *view) removed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.left
}

func (v *view) done() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.limit > 0 && v.others >= v.limit
}

// message prints a message and moves the read marker past it. A title
// that repeats the one before is not printed: the client sends the title
// again, for the new members, whenever it adds some.
func (v *view) message(m client.Message) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if m.Kind == "title" {
		if m.Text == v.title {
			v.markLocked(m.Seq)
			return
		}
		v.title = m.Text
	}
	if v.asJSON {
		b, _ := json.Marshal(jsonMessage(m))
		fmt.Fprintf(v.out, "%s\n", b)
	} else {
		io.WriteString(v.out, messageLine(m))
	}
	v.printed++
	if !m.Own {
		v.others++
	}
	v.markLocked(m.Seq)
	if v.limit > 0 && v.others >= v.limit && v.stop != nil {
		v.stop()
	}
}

// seen notes a message of the history that is not printed.
func (v *view) seen(m client.Message) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if m.Kind == "title" {
		v.title = m.Text
	}
}

// markLocked moves the read marker forward to seq.
func (v *view) markLocked(seq int64) {
	if seq <= v.mark {
		return
	}
	v.mark = seq
	if err := saveReadMark(v.c, v.id, seq); err != nil && v.err == nil {
		v.err = err
	}
}

// update handles an Update while following.
func (v *view) update(u client.Update) {
	if u.Conversation != v.id || u.Kind == client.UpdateProblem {
		v.mu.Lock()
		warnProblem(v.errw, u)
		v.mu.Unlock()
		return
	}
	switch u.Kind {
	case client.UpdateMessage:
		if u.Message != nil {
			v.message(*u.Message)
		}
	case client.UpdateMembers, client.UpdateLeft:
		v.mu.Lock()
		defer v.mu.Unlock()
		if u.Kind == client.UpdateLeft {
			v.left = true
			if v.stop != nil {
				v.stop() // nothing more will come
			}
		}
		if v.asJSON {
			b, _ := json.Marshal(jsonChange(u))
			fmt.Fprintf(v.out, "%s\n", b)
		} else {
			io.WriteString(v.out, changeLine(u))
		}
	}
}

// shown is a message or change as read --json prints it: an attachment's
// name and size, never its key.
type shown struct {
	Conversation string          `json:"conversation"`
	Kind         string          `json:"kind"` // text, attachment, title; members, left
	Seq          int64           `json:"seq,omitempty"`
	Time         *time.Time      `json:"time,omitempty"`
	User         string          `json:"user,omitempty"`
	Device       string          `json:"device,omitempty"`
	Own          bool            `json:"own,omitempty"`
	Text         string          `json:"text,omitempty"`
	Attachment   *attachmentInfo `json:"attachment,omitempty"`
	By           string          `json:"by,omitempty"`
	Added        []string        `json:"added,omitempty"`
	Removed      []string        `json:"removed,omitempty"`
}

type attachmentInfo struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
}

func jsonMessage(m client.Message) shown {
	s := shown{Conversation: m.Conversation, Kind: m.Kind, Seq: m.Seq, Time: &m.Time, User: m.User, Device: m.Device, Own: m.Own, Text: m.Text,
		Added: m.Added, Removed: m.Removed}
	if m.Kind == "attachment" {
		if d, err := attach.UnmarshalDescriptor(m.Data); err == nil {
			s.Attachment = &attachmentInfo{Name: d.Name, Size: d.Size, MediaType: d.MediaType}
		}
	}
	return s
}

func jsonChange(u client.Update) shown {
	s := shown{Conversation: u.Conversation, Kind: string(u.Kind), Added: users(u.Added), Removed: users(u.Removed)}
	if u.By != nil {
		s.By = u.By.User
	}
	return s
}

// messageLine formats a message for a terminal:
//
//	#7 2025-06-01 10:02 bob@state.example: arriving Tuesday
//	#8 2025-06-01 10:03 alice@state.example: [attachment plan.pdf, 48213 bytes]
//	#9 2025-06-01 10:04 -- alice@state.example set the title to "Summit"
func messageLine(m client.Message) string {
	head := fmt.Sprintf("#%d %s", m.Seq, m.Time.Local().Format("2006-01-02 15:04"))
	switch m.Kind {
	case "text":
		return fmt.Sprintf("%s %s: %s\n", head, m.User, strings.ReplaceAll(clean(m.Text), "\n", "\n    "))
	case "attachment":
		d, err := attach.UnmarshalDescriptor(m.Data)
		if err != nil {
			return fmt.Sprintf("%s %s: [attachment that cannot be read: %s]\n", head, m.User, cleanLine(err.Error()))
		}
		return fmt.Sprintf("%s %s: [attachment %s, %d bytes]\n", head, m.User, cleanLine(d.Name), d.Size)
	case "desk":
		d, err := desk.ParseDoc(m.Data)
		if err != nil {
			return fmt.Sprintf("%s %s: [duty-desk document that cannot be read: %s]\n", head, m.User, cleanLine(err.Error()))
		}
		see := "hotline request show " + d.Request
		if d.MemCon != nil {
			see = "hotline memcon show " + d.MemCon.ID
		} else if d.Briefing != nil {
			see = "hotline brief show " + d.Request
		}
		return fmt.Sprintf("%s %s: [duty desk: a %s; %s]\n", head, m.User, d.Type, see)
	case "title":
		return fmt.Sprintf("%s -- %s set the title to \"%s\"\n", head, m.User, cleanLine(m.Text))
	case "members":
		by := m.User
		if by == "" {
			by = "the server"
		}
		var b strings.Builder
		if len(m.Added) > 0 {
			fmt.Fprintf(&b, "%s -- %s added %s\n", head, by, cleanLine(strings.Join(m.Added, ", ")))
		}
		if len(m.Removed) > 0 {
			fmt.Fprintf(&b, "%s -- %s removed %s\n", head, by, cleanLine(strings.Join(m.Removed, ", ")))
		}
		return b.String()
	}
	return fmt.Sprintf("%s %s: [a %s message this version cannot show]\n", head, m.User, cleanLine(m.Kind))
}

// changeLine formats a membership change for a terminal.
func changeLine(u client.Update) string {
	if u.Kind == client.UpdateLeft {
		return "-- you were removed from the conversation\n"
	}
	by := "the server"
	if u.By != nil {
		by = u.By.User
	}
	var b strings.Builder
	if len(u.Added) > 0 {
		fmt.Fprintf(&b, "-- %s added %s\n", by, strings.Join(users(u.Added), ", "))
	}
	if len(u.Removed) > 0 {
		fmt.Fprintf(&b, "-- %s removed %s\n", by, strings.Join(users(u.Removed), ", "))
	}
	return b.String()
}

func cmdAttach(e *cmdEnv, args []string) error {
	fs := newFlags(e, "attach", "attach CONV FILE [--type MEDIA] --profile DIR\n   or: hotline attach --get CONV SEQ [--out FILE] --profile DIR")
	profile := profileFlag(fs)
	mediaType := fs.String("type", "", "the file's media `type`, such as application/pdf (default: from its extension)")
	get := fs.Bool("get", false, "save the attachment of message SEQ instead of sending a file")
	outFile := fs.String("out", "", "with --get, the `file` to write (default: the name the sender gave, in the current directory, never overwritten)")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if *get {
		seq, err := strconv.ParseInt(pos[1], 10, 64)
		if err != nil || seq <= 0 {
			return usagef("attach --get: %q is not a message number", pos[1])
		}
		return attachGet(e, *profile, pos[0], seq, *outFile, *asJSON)
	}
	if *outFile != "" {
		return usagef("attach: --out goes with --get")
	}
	f, err := os.Open(pos[1])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", pos[1])
	}
	if st.Size() > attach.MaxSize {
		return fmt.Errorf("%s has %d bytes; an attachment has at most %d", pos[1], st.Size(), attach.MaxSize)
	}
	name := filepath.Base(pos[1])
	typ := *mediaType
	if typ == "" {
		// Without its parameters: the descriptor's media type has no
		// spaces, and "text/plain; charset=utf-8" has one.
		typ, _, _ = mime.ParseMediaType(mime.TypeByExtension(filepath.Ext(name)))
	}
	if typ == "" {
		typ = "application/octet-stream"
	}
	// The client checks these only after encrypting and starting the
	// upload: check them first.
	if len(name) > 255 || strings.ContainsFunc(name, unicode.IsControl) || !utf8.ValidString(name) {
		return usagef("attach: the file name %q cannot be sent: at most 255 bytes of printable UTF-8", name)
	}
	if len(typ) > 127 || strings.ContainsFunc(typ, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return usagef("attach: --type %q: a media type is at most 127 printable ASCII characters without spaces, such as text/plain;charset=utf-8", typ)
	}
	c, info, release, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
	defer release()
	if err := usableInfo(info); err != nil {
		return err
	}
	m, err := c.SendAttachment(e.ctx, info.ID, f, name, typ)
	if err != nil {
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, sent{Conversation: m.Conversation, Seq: m.Seq, Epoch: m.Epoch,
			Attachment: &attachmentInfo{Name: name, Size: st.Size(), MediaType: typ}})
	}
	fmt.Fprintf(e.stdout, "Sent %s (%d bytes, %s) as message %d.\n", name, st.Size(), typ, m.Seq)
	return nil
}

func attachGet(e *cmdEnv, profile, conv string, seq int64, out string, asJSON bool) error {
	c, info, release, err := openConversation(e, profile, conv)
	if err != nil {
		return err
	}
	defer release()
	history, err := c.Messages(info.ID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(history, func(m client.Message) bool { return m.Seq == seq })
	if i < 0 {
		return withHint(fmt.Errorf("conversation %s has no message %d on this device", info.ID, seq), "hotline read %s --all shows the messages this device holds", info.ID)
	}
	if history[i].Kind != "attachment" {
		return fmt.Errorf("message %d of %s is not an attachment", seq, info.ID)
	}
	d, err := attach.UnmarshalDescriptor(history[i].Data)
	if err != nil {
		return fmt.Errorf("message %d: %w", seq, err)
	}
	if out == "" {
		// The sender chose the name: keep only a plain file name, and
		// never replace a file.
		out = filepath.Base(filepath.Clean("/" + d.Name))
		if out == "/" || out == "." || strings.HasPrefix(out, ".") {
			return usagef("attach --get: the attachment's name %q is not a safe file name; give --out", d.Name)
		}
		if _, err := os.Lstat(out); err == nil {
			return withHint(fmt.Errorf("%s exists", out), "give --out FILE to choose where to save it")
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".hotline-attachment-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	err = c.DownloadAttachment(e.ctx, d, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, struct {
			File string `json:"file"`
			attachmentInfo
		}{out, attachmentInfo{Name: d.Name, Size: d.Size, MediaType: d.MediaType}})
	}
	fmt.Fprintf(e.stdout, "Saved %s (%d bytes, %s) to %s.\n", cleanLine(d.Name), d.Size, cleanLine(d.MediaType), out)
	return nil
}

func cmdChat(e *cmdEnv, args []string) error {
	fs := newFlags(e, "chat", "chat CONV --profile DIR\n\nEach line read is sent; /members, /add USER..., /remove USER... and /quit are commands\n(start a line with // to send one beginning with /). End of input ends the chat.")
	profile := profileFlag(fs)
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, info, release, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
	defer release()
	if err := usableInfo(info); err != nil {
		return err
	}
	v := &view{c: c, id: info.ID, out: e.stdout, errw: e.stderr}
	if v.mark, err = readMark(c, info.ID); err != nil {
		return err
	}
	history, err := c.Messages(info.ID)
	if err != nil {
		return err
	}
	for _, m := range history {
		if m.Seq > v.mark {
			v.message(m)
		} else {
			v.seen(m)
		}
	}
	v.printf(v.errw, "Chat in %s%s, %s. Lines you type are sent; /help lists commands; end of input (Ctrl-D) ends the chat.\n",
		info.ID, quotedTitle(info.Title), classification(info))

	// One goroutine follows the conversation and prints what arrives; the
	// client hands the same view what it learns while sending. Standard
	// input is read on another, so that this one also notices an interrupt
	// or the end of following: a blocked Read cannot be interrupted. On an
	// interrupt that reader may stay blocked on the terminal until the
	// process exits; at the end of input, or after /quit, it ends.
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	v.stop = cancel // once removed, nothing more will come
	c.OnUpdate(v.update)
	followed := make(chan error, 1)
	wg.Go(func() { followed <- c.Follow(ctx, v.update) })
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 0, 4096), conversation.MaxText+2)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()

	var n, failed int
	for {
		select {
		case <-e.ctx.Done():
			return nil // interrupted
		case err := <-followed:
			switch {
			case e.ctx.Err() != nil:
				return nil
			case v.removed():
				return convError(fmt.Errorf("%w: %s", client.ErrRemoved, info.ID))
			}
			return fmt.Errorf("following the conversation stopped: %w", err)
		case line, ok := <-lines:
			if !ok {
				if v.removed() {
					return convError(fmt.Errorf("%w: %s", client.ErrRemoved, info.ID))
				}
				select {
				case err := <-readErr:
					if err != nil {
						return fmt.Errorf("read standard input: %w", err)
					}
				default:
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d lines failed", failed, n)
				}
				return nil
			}
			line = strings.TrimSuffix(line, "\r")
			if strings.TrimSpace(line) == "" {
				continue
			}
			n++
			quit, err := chatLine(e.ctx, v, line)
			if err != nil {
				err = convError(err)
				if errors.Is(err, client.ErrRemoved) || errors.Is(err, client.ErrConversationBroken) || errors.Is(err, client.ErrNoConversation) {
					return err
				}
				v.mu.Lock()
				report(v.errw, err)
				v.mu.Unlock()
				failed++
			}
			if quit {
				if failed > 0 {
					return fmt.Errorf("%d of %d lines failed", failed, n)
				}
				return nil
			}
		}
	}
}

// chatLine sends a line or runs a chat command; it says whether to quit.
func chatLine(ctx context.Context, v *view, line string) (quit bool, err error) {
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		text := strings.TrimPrefix(line, "/")
		if err := checkText(text); err != nil {
			return false, err
		}
		_, err := v.c.Send(ctx, v.id, conversation.Content{Kind: conversation.KindText, Text: text})
		return false, err
	}
	f := strings.Fields(line)
	switch f[0] {
	case "/quit":
		return true, nil
	case "/help":
		v.printf(v.errw, "Commands: /members, /add USER..., /remove USER..., /quit. Start a line with // to send one beginning with /.\n")
		return false, nil
	case "/members":
		info := v.c.Conversation(v.id)
		if err := usableInfo(info); err != nil {
			return false, err
		}
		v.printf(v.out, "%s", membersTable(info.Members))
		return false, nil
	case "/add", "/remove":
		if len(f) < 2 {
			return false, fmt.Errorf("%s: name at least one user", f[0])
		}
		names, err := userArgs(v.c, f[1:])
		if err != nil {
			return false, err
		}
		var ms []client.Member
		if f[0] == "/add" {
			ms, err = v.c.AddMembers(ctx, v.id, names...)
		} else {
			ms, err = v.c.RemoveMembers(ctx, v.id, names...)
		}
		if err != nil {
			return false, addError(err, v.c.Conversation(v.id), names)
		}
		v.printf(v.out, "%s", changedLines(f[0][1:], ms, v.c.Conversation(v.id).Epoch))
		return false, nil
	}
	return false, withHint(fmt.Errorf("unknown chat command %s", cleanLine(f[0])), "the commands are /members, /add USER..., /remove USER... and /quit; start a line with // to send one beginning with /")
}

// printf writes to w, one of v's writers, holding v's lock.
func (v *view) printf(w io.Writer, format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fmt.Fprintf(w, format, args...)
}
