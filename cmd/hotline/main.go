// Command hotline is Hotline's server, its operator's tool and a headless
// client, in one binary.
//
//	hotline demo                                   a demo organisation for browsers on this machine
//	hotline init    --data DIR --org ORG           create an organisation
//	hotline serve   --data DIR --listen HOST:PORT  run the server
//	hotline enroll  --server URL --invite CODE --profile DIR
//	hotline whoami | user | invite | device | policy | log | events  (as a device)
//	hotline conversation | send | read | attach | chat               (as a device)
//	hotline request | schedule | brief | memcon | commitment | readout | hotline | linecheck (the duty desk)
//	hotline trace FILE                             name the recipient of a leaked memorandum
//	hotline archive run | records …                  the archive device and the records officer
//	hotline key rotate | backup | restore | log audit                (as the operator)
//
// Run `hotline help` or `hotline COMMAND -h` for details. Errors are printed
// as "hotline: error: …", followed by "hotline: hint: …" where a hint helps.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"hotline/internal/apierr"
	"hotline/internal/callbench"
	"hotline/internal/datadir"
)

func main() {
	callbench.FarEnd() // returns at once unless started by `bench calls --wan` as its far end
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// cmdEnv is what every command gets.
type cmdEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(e *cmdEnv, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"demo", "run a demo organisation for browsers on this machine", cmdDemo},
		{"init", "create an organisation in a new data directory", cmdInit},
		{"serve", "run the server", cmdServe},
		{"enroll", "enrol this device with an invite code", cmdEnroll},
		{"whoami", "show this device, its user and credential", cmdWhoami},
		{"user", "manage users: add, list, show, roles, clearance, requests, disable, notetaker", cmdUser},
		{"invite", "create an invite code for a user's next device", cmdInvite},
		{"device", "manage devices: list, approve, revoke, accept", cmdDevice},
		{"policy", "manage the contact policy: list, add, remove, check", cmdPolicy},
		{"log", "the transparency log: verify, checkpoint, compare, audit", cmdLog},
		{"events", "print this device's event stream", cmdEvents},
		{"conversation", "manage conversations: create, list, members, add, remove", cmdConversation},
		{"send", "send a message to a conversation", cmdSend},
		{"read", "print a conversation's new messages, or follow them", cmdRead},
		{"attach", "send a file to a conversation, or save one received", cmdAttach},
		{"chat", "talk in a conversation: send lines, see what arrives", cmdChat},
		{"call", "call a user or a conversation, end-to-end encrypted", cmdCall},
		{"answer", "wait for a call and answer it", cmdAnswer},
		{"request", "call requests to the duty desk: create, list, show, approve, propose, accept, decline, withdraw", cmdRequest},
		{"schedule", "the scheduled calls of a day, in your time zone", cmdSchedule},
		{"brief", "briefings for scheduled calls: send, show, ack", cmdBrief},
		{"memcon", "memoranda of conversation: draft, list, show, approve, distribute", cmdMemCon},
		{"trace", "name the recipient whose marked copy of a memorandum leaked", cmdTrace},
		{"archive", "run the organisation's archive device: archive run", cmdArchive},
		{"records", "the records officer's side: keygen, list, verify, read, grant, grants, open, retention, hold, release, policy", cmdRecords},
		{"commitment", "commitments from memoranda: list, done, cancel", cmdCommitment},
		{"readout", "readouts of ad-hoc calls for the duty desk: list, file", cmdReadout},
		{"hotline", "standing lines tested end to end on a schedule: create, list, keep, wait", cmdHotline},
		{"linecheck", "check both ends of a call request's line before the call (the duty desk)", cmdLineCheck},
		{"bench", "measure this build: bench calls", cmdBench},
		{"key", "rotate the organisation's online keys with the root key", cmdKey},
		{"backup", "write a consistent snapshot of a SQLite data directory", cmdBackup},
		{"restore", "restore a data directory from a backup", cmdRestore},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &cmdEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(e, args[1:])
			if err == nil {
				return 0
			}
			return report(stderr, err)
		}
	}
	fmt.Fprintf(stderr, "hotline: error: unknown command %q\nhotline: hint: run hotline help\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Hotline: secure, accountable communication for leaders and their staff.")
	fmt.Fprintln(w, "\nUsage: hotline COMMAND [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun hotline COMMAND -h for a command's flags. See docs/ for the operator guide.")
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// hintError carries a hint for the user.
type hintError struct {
	err  error
	hint string
}

func (e hintError) Error() string { return e.err.Error() }
func (e hintError) Unwrap() error { return e.err }

func withHint(err error, format string, args ...any) error {
	return hintError{err: err, hint: fmt.Sprintf(format, args...)}
}

// report prints an error and returns the exit status.
func report(w io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "hotline: error: %s\nhotline: hint: run with -h for usage\n", ue.msg)
		return 2
	}
	fmt.Fprintf(w, "hotline: error: %s\n", err)
	var he hintError
	var ae *apierr.Error
	switch {
	case errors.As(err, &he):
		fmt.Fprintf(w, "hotline: hint: %s\n", he.hint)
	case errors.As(err, &ae) && ae.Hint != "":
		fmt.Fprintf(w, "hotline: hint: %s\n", ae.Hint)
	}
	return 1
}

// newFlags returns a flag set that prints to stderr and does not exit.
func newFlags(e *cmdEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: hotline %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags that may come before or after positional arguments, and
// checks the number of positional arguments.
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			// The flag package took the terminator: all that follows
			// is positional, even what starts with "-" (conversation
			// IDs may).
			pos = append(pos, rest...)
			break
		}
		args = rest
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minArgs || maxArgs >= 0 && len(pos) > maxArgs {
		return nil, usagef("%s: wrong number of arguments", fs.Name())
	}
	return pos, nil
}

// storeFlags adds --database and --database-password-file to an operator
// command and returns a function giving the store options they chose.
func storeFlags(fs *flag.FlagSet) func() datadir.StoreOptions {
	database := fs.String("database", "", "PostgreSQL connection `URL` (overrides config.json); the password comes from PGPASSWORD, ~/.pgpass or --database-password-file, never the URL")
	pwFile := fs.String("database-password-file", "", "`file` holding the PostgreSQL password")
	return func() datadir.StoreOptions { return datadir.StoreOptions{Database: *database, PasswordFile: *pwFile} }
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// required checks that string flags were given.
func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if strings.TrimSpace(fs.Lookup(n).Value.String()) == "" {
			return usagef("%s: --%s is required", fs.Name(), n)
		}
	}
	return nil
}
