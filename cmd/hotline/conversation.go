package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/identity"
)

// Conversations, from the command line: conversation create, list,
// members, add and remove.
//
// Every command first syncs the device (client.Sync): it joins the
// conversations it was added to, handles what arrived, and publishes key
// packages, so others can add it. Problems the device meets on the way (a
// message it refused, say) are printed as warnings: nothing else would
// show them. CONV is anything client.FindConversation takes: an ID, a
// unique prefix of one, or an exact title.
//
// A read marker per conversation in the profile (readMarkFile) says what
// this device has read.

// openSynced opens a profile and syncs it, printing problems to stderr.
func openSynced(e *cmdEnv, profile string) (*client.Client, error) {
	c, err := openProfile(profile)
	if err != nil {
		return nil, err
	}
	c.OnUpdate(func(u client.Update) { warnProblem(e.stderr, u) })
	if err := c.Sync(e.ctx); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	return c, nil
}

// openConversation opens and syncs a profile and finds a conversation.
func openConversation(e *cmdEnv, profile, name string) (*client.Client, client.ConversationInfo, error) {
	if strings.TrimSpace(name) == "" {
		return nil, client.ConversationInfo{}, usagef("name a conversation by its ID, a prefix of it, or its title")
	}
	c, err := openSynced(e, profile)
	if err != nil {
		return nil, client.ConversationInfo{}, err
	}
	info, err := c.FindConversation(name)
	if err != nil {
		return nil, info, convError(err)
	}
	return c, info, nil
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
	fs := newFlags(e, "conversation create", "conversation create [--title T] [--classification LEVEL] [--compartments A,B] MEMBER... --profile DIR [--json]")
	profile := profileFlag(fs)
	title := fs.String("title", "", "the conversation's `title`, seen only by its members")
	level := fs.String("classification", "unclassified", "the classification `level`: unclassified, confidential, secret or top-secret; every member must be cleared for it")
	comps := fs.String("compartments", "", "comma-separated `compartments` every member must hold")
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
	c, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
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
		Classification: conversation.Classification{Level: clearance, Compartments: compartments}})
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
	c, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
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
	_, info, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
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
	c, info, err := openConversation(e, *profile, pos[0])
	if err != nil {
		return err
	}
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
		return convError(err)
	}
	if *asJSON {
		return printJSON(e.stdout, ms)
	}
	_, err = io.WriteString(e.stdout, changedLines(sub, ms, c.Conversation(info.ID).Epoch))
	return err
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
