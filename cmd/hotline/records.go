package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"hotline/internal/api"
	"hotline/internal/archive"
	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/workflow"
)

// cmdArchive runs the organisation's archive device.
func cmdArchive(e *cmdEnv, args []string) error {
	if len(args) == 0 || args[0] != "run" {
		return usagef("usage: hotline archive run --records-key KEY --profile DIR [--store DIR] [--ready-file FILE] [--once]")
	}
	fs := newFlags(e, "archive run", "archive run --records-key KEY --profile DIR [--store DIR] [--ready-file FILE] [--once]")
	profile := profileFlag(fs)
	key := fs.String("records-key", "", "the records officer's public key: an age1pq1… recipient, or a file holding it (hotline records keygen)")
	store := fs.String("store", "", "the sealed records' directory (default: records/ in the profile)")
	readyFile := fs.String("ready-file", "", "write `file` once the device is online (for supervisors and scripts)")
	once := fs.Bool("once", false, "seal what is waiting, fetch the attachments still to fetch, and stop (for scheduled runs)")
	if _, err := parse(fs, args[1:], 0, 0); err != nil {
		return err
	}
	if err := required(fs, "records-key"); err != nil {
		return err
	}
	to, err := archive.ParseRecipient(*key)
	if err != nil {
		return err
	}
	c, release, err := openLocked(*profile) // no first sync: the archive must seal what it handles
	if err != nil {
		return err
	}
	defer release()
	dir := *store
	if dir == "" {
		dir = filepath.Join(c.Dir(), "records")
	}
	s, err := archive.Create(dir, to)
	if errors.Is(err, archive.ErrRecipient) {
		return withHint(err, "a new records key starts a new store: give --store a new directory")
	}
	if err != nil {
		return err
	}
	runner, how := archive.Run, "; stop with Ctrl-C"
	if *once {
		runner, how = archive.RunOnce, ""
	}
	fmt.Fprintf(e.stderr, "archive: sealing to %.24s… in %s%s\n", to.String(), dir, how)
	err = runner(e.ctx, c, s, func(ev archive.Event) {
		switch ev.Kind {
		case "ready":
			fmt.Fprintln(e.stderr, "online")
			if *readyFile != "" {
				if err := os.WriteFile(*readyFile, []byte("online\n"), 0o644); err != nil {
					fmt.Fprintf(e.stderr, "archive: warning: %v\n", err)
				}
			}
		case "sealed":
			fmt.Fprintf(e.stderr, "sealed %s #%d\n", short(ev.Conversation), ev.Seq)
		case "joined", "left":
			fmt.Fprintf(e.stderr, "%s %s\n", ev.Kind, short(ev.Conversation))
		case "blob":
			fmt.Fprintln(e.stderr, "kept an attachment's ciphertext")
		case "expired":
			fmt.Fprintf(e.stderr, "expired %s through #%d (the retention schedule; logged first)\n", short(ev.Conversation), ev.Seq)
		case "moved":
			fmt.Fprintf(e.stderr, "let go of %s through #%d: moved to another system (logged)\n", short(ev.Conversation), ev.Seq)
		case "media":
			fmt.Fprintln(e.stderr, "media connected: calls on the record are answered, listening")
		case "call":
			fmt.Fprintf(e.stderr, "listening to call %s in %s\n", ev.Call, short(ev.Conversation))
		case "call sealed":
			fmt.Fprintf(e.stderr, "sealed call %s in %s: %s\n", ev.Call, short(ev.Conversation), speakers(ev.Speakers))
		case "problem":
			fmt.Fprintf(e.stderr, "archive: warning: %s %v\n", short(ev.Conversation), ev.Err)
		}
	})
	if errors.Is(err, archive.ErrNotArchive) {
		return withHint(err, "an admin gives the account the role: hotline user add archive --roles archive")
	}
	if e.ctx.Err() != nil {
		return nil // interrupted: the usual way to stop
	}
	return err
}

// openVerified is openLocked, then a verification of the log: the records
// policy and the chain heads are read from the device's verified view.
func openVerified(e *cmdEnv, profile string) (*client.Client, func(), error) {
	c, release, err := openLocked(profile)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.VerifyLog(e.ctx); err != nil {
		release()
		return nil, nil, err
	}
	return c, release, nil
}

// storeKeyFlags adds --store and --identity, the records officer's way to
// an archive's records; the function it returns, called once the flags
// are parsed, requires both and opens them (openStoreKey).
func storeKeyFlags(fs *flag.FlagSet) func() (*archive.Store, *age.HybridIdentity, error) {
	store := fs.String("store", "", "the archive's store directory")
	idFile := fs.String("identity", "", "the private records key (hotline records keygen)")
	return func() (*archive.Store, *age.HybridIdentity, error) {
		if err := required(fs, "store", "identity"); err != nil {
			return nil, nil, err
		}
		return openStoreKey(*store, *idFile)
	}
}

// openStoreKey opens an archive's store and the records key that opens
// its records (the records officer's).
func openStoreKey(store, idFile string) (*archive.Store, *age.HybridIdentity, error) {
	s, err := archive.Open(store)
	if err != nil {
		return nil, nil, err
	}
	id, err := archive.ParseIdentity(idFile)
	if err != nil {
		return nil, nil, err
	}
	return s, id, nil
}

// cmdRecords is the records officer's side: the records key and the
// sealed store.
func cmdRecords(e *cmdEnv, args []string) error {
	const use = "usage: hotline records keygen --out FILE | list --store DIR | verify --store DIR --profile DIR | read --store DIR --identity FILE [--json] [--attachments DIR] [--audio DIR] -- CONVERSATION | grant USER --store DIR --identity FILE -- CONVERSATION | export --store DIR --identity FILE --out DIR -- CONVERSATION... | verify-export DIR | move --to CODE EXPORT | reclassify LEVEL -- CONVERSATION | grants | open GRANT | retention LEVEL DAYS | hold --reason CODE [--conversation ID] | release HOLD | policy  (--profile DIR)"
	if len(args) == 0 {
		return usagef(use)
	}
	switch args[0] {
	case "keygen":
		fs := newFlags(e, "records keygen", "records keygen --out FILE")
		out := fs.String("out", "", "write the private records key to `file` (created, mode 0600; never overwritten)")
		if _, err := parse(fs, args[1:], 0, 0); err != nil {
			return err
		}
		if err := required(fs, "out"); err != nil {
			return err
		}
		id, rcpt, err := archive.GenerateKey()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return withHint(err, "a records key is never overwritten: choose another file")
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "# Hotline records key: the records officer's alone. Keep it off the archive host, with a backup.\n# public key: %s\n%s\n", rcpt, id)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, rcpt)
		return nil
	case "list":
		fs := newFlags(e, "records list", "records list --store DIR [--json]")
		store := fs.String("store", "", "the archive's store directory")
		asJSON := fs.Bool("json", false, "print as JSON")
		if _, err := parse(fs, args[1:], 0, 0); err != nil {
			return err
		}
		if err := required(fs, "store"); err != nil {
			return err
		}
		s, err := archive.Open(*store)
		if err != nil {
			return err
		}
		cs, err := s.List()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, cs)
		}
		for _, c := range cs {
			last := int64(0)
			if len(c.Seqs) > 0 {
				last = c.Seqs[len(c.Seqs)-1]
			}
			calls := ""
			if len(c.Calls) > 0 {
				calls = fmt.Sprintf(", %d calls", len(c.Calls))
			}
			fmt.Fprintf(e.stdout, "%s  %d records (last #%d)%s\n", c.ID, len(c.Seqs), last, calls)
		}
		if pend, err := s.Pending(); err == nil && len(pend) > 0 {
			fmt.Fprintf(e.stdout, "%d attachments not fetched yet\n", len(pend))
		}
		return nil
	case "retention":
		fs := newFlags(e, "records retention", "records retention LEVEL DAYS --profile DIR   (the records officer; DAYS 0: kept for good)")
		profile := profileFlag(fs)
		pos, err := parse(fs, args[1:], 2, 2)
		if err != nil {
			return err
		}
		days, err := strconv.Atoi(pos[1])
		if err != nil {
			return usagef("records retention: DAYS %q is not a number", pos[1])
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		if err := c.SetRetention(e.ctx, pos[0], days); err != nil {
			return err
		}
		if days == 0 {
			fmt.Fprintf(e.stdout, "%s records are kept for good\n", pos[0])
		} else {
			fmt.Fprintf(e.stdout, "%s records are kept %d days, then the archive lets them go (unless held)\n", pos[0], days)
		}
		return nil
	case "hold":
		fs := newFlags(e, "records hold", "records hold --reason CODE [--conversation ID] --profile DIR   (the records officer; no --conversation: every conversation)")
		profile := profileFlag(fs)
		reason := fs.String("reason", "", "why, as a code: "+strings.Join(workflow.HoldReasons, ", ")+" (the case itself stays with you)")
		conv := fs.String("conversation", "", "the conversation held (default: every conversation)")
		if _, err := parse(fs, args[1:], 0, 0); err != nil {
			return err
		}
		if err := required(fs, "reason"); err != nil {
			return err
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		id, err := c.PlaceHold(e.ctx, *conv, *reason)
		if err != nil {
			return err
		}
		what := "every conversation"
		if *conv != "" {
			what = "conversation " + *conv
		}
		fmt.Fprintf(e.stdout, "hold %s on %s: nothing of it is deleted until it is released\n", id, what)
		return nil
	case "release":
		fs := newFlags(e, "records release", "records release HOLD --profile DIR   (the records officer)")
		profile := profileFlag(fs)
		pos, err := parse(fs, args[1:], 1, 1)
		if err != nil {
			return err
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		if err := c.ReleaseHold(e.ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "hold %s released\n", pos[0])
		return nil
	case "policy":
		fs := newFlags(e, "records policy", "records policy --profile DIR [--json]   (as the verified log says it)")
		profile := profileFlag(fs)
		asJSON := fs.Bool("json", false, "print as JSON")
		if _, err := parse(fs, args[1:], 0, 0); err != nil {
			return err
		}
		c, release, err := openVerified(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		p, err := c.RecordsPolicy()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, p)
		}
		if len(p.RetentionDays) == 0 {
			fmt.Fprintln(e.stdout, "retention: none set (every record is kept for good)")
		}
		for _, level := range slices.Sorted(maps.Keys(p.RetentionDays)) {
			fmt.Fprintf(e.stdout, "retention: %s records kept %d days\n", level, p.RetentionDays[level])
		}
		for _, id := range slices.Sorted(maps.Keys(p.Holds)) {
			h := p.Holds[id]
			what := "every conversation"
			if h.Conversation != "" {
				what = h.Conversation
			}
			fmt.Fprintf(e.stdout, "hold %s on %s: %s, by %s, %s\n", id, what, h.Reason, h.By, h.At.Format(time.RFC3339))
		}
		for _, conv := range slices.Sorted(maps.Keys(p.Expired)) {
			fmt.Fprintf(e.stdout, "expired: %s through #%d\n", conv, p.Expired[conv])
		}
		for _, conv := range slices.Sorted(maps.Keys(p.Levels)) {
			fmt.Fprintf(e.stdout, "reclassified: %s kept as %s records\n", conv, p.Levels[conv])
		}
		for _, conv := range slices.Sorted(maps.Keys(p.Moved)) {
			fmt.Fprintf(e.stdout, "moved: %s through #%d\n", conv, p.Moved[conv])
		}
		// The log integrates a change a moment after the server makes it:
		// say what the server has that the log does not show yet.
		var srv api.RecordsPolicy
		if err := c.Do(e.ctx, http.MethodGet, "/v1/records/policy", nil, &srv); err == nil {
			for _, r := range srv.Retention {
				if p.RetentionDays[r.Level] != r.Days {
					fmt.Fprintf(e.stdout, "not yet in the log: retention of %s records, %d days\n", r.Level, r.Days)
				}
			}
			for _, h := range srv.Holds {
				if _, ok := p.Holds[h.ID]; !ok {
					fmt.Fprintf(e.stdout, "not yet in the log: hold %s (%s)\n", h.ID, h.Reason)
				}
			}
		}
		return nil
	case "grant":
		fs := newFlags(e, "records grant", "records grant USER --store DIR --identity FILE --profile DIR -- CONVERSATION   (the records officer)")
		profile := profileFlag(fs)
		openStore := storeKeyFlags(fs)
		pos, err := parse(fs, args[1:], 2, 2)
		if err != nil {
			return err
		}
		s, id, err := openStore()
		if err != nil {
			return err
		}
		recs, err := s.ReadConversation(id, pos[1])
		if err != nil {
			return err
		}
		recs = archive.Grantable(recs)
		calls, err := s.ReadCalls(id, pos[1])
		if err != nil {
			return err
		}
		if len(recs)+len(calls) == 0 {
			return fmt.Errorf("the archive holds no records of %s", pos[1])
		}
		c, release, err := openSynced(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		who, err := userArgs(c, pos[:1])
		if err != nil {
			return err
		}
		g, err := c.GrantRecords(e.ctx, who[0], pos[1], len(recs)+len(calls), func(grant string) ([]byte, []client.GrantFile, error) {
			// The messages marked for the grantee, then the calls (their
			// audio is not marked) with each speaker's audio.
			b, err := json.Marshal(archive.Transcript(archive.MarkGrant(archive.GrantKey(id, grant), who[0], recs), calls))
			if err != nil {
				return nil, nil, err
			}
			var files []client.GrantFile
			for _, r := range calls {
				for _, a := range r.Call.Audio {
					data, err := s.ReadAudio(id, pos[1], a.File)
					if err != nil {
						return nil, nil, fmt.Errorf("call %s: %w", r.Call.ID, err)
					}
					files = append(files, client.GrantFile{Name: archive.AudioName(a.File), Type: "audio/ogg", Data: data})
				}
			}
			return b, files, nil
		})
		if err != nil {
			return err
		}
		what := ""
		if len(calls) > 0 {
			what = fmt.Sprintf(" (%d calls, with their audio)", len(calls))
		}
		fmt.Fprintf(e.stdout, "grant %s: %d records of %s%s sent to %s, marked for them (logged; each opening will be too)\n", g.ID, g.Count, g.Conversation, what, g.Grantee)
		return nil
	case "grants":
		fs := newFlags(e, "records grants", "records grants --profile DIR [--json]   (yours; every grant, to the records officer)")
		profile := profileFlag(fs)
		asJSON := fs.Bool("json", false, "print as JSON")
		if _, err := parse(fs, args[1:], 0, 0); err != nil {
			return err
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		gs, err := c.Grants(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, gs)
		}
		for _, g := range gs {
			fmt.Fprintf(e.stdout, "%s  %s  %d records of %s, by %s %s, opened %d times\n", g.ID, g.Grantee, g.Count, g.Conversation, g.By, g.At.Format(time.RFC3339), g.Reads)
		}
		return nil
	case "open":
		fs := newFlags(e, "records open", "records open GRANT --profile DIR [--json] [--audio DIR]   (the grantee; the opening is logged)")
		profile := profileFlag(fs)
		asJSON := fs.Bool("json", false, "print the records as JSON")
		audioDir := fs.String("audio", "", "also save the calls' audio into `dir`")
		pos, err := parse(fs, args[1:], 1, 1)
		if err != nil {
			return err
		}
		c, release, err := openSynced(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		_, raw, files, err := c.OpenGrant(e.ctx, pos[0])
		if err != nil {
			return err
		}
		if *audioDir != "" {
			if err := saveGranted(e, c, files, *audioDir); err != nil {
				return err
			}
		}
		var recs []archive.Record
		if err := json.Unmarshal(raw, &recs); err != nil {
			return fmt.Errorf("grant %s: the records do not read: %w", pos[0], err)
		}
		if *asJSON {
			return printJSON(e.stdout, recs)
		}
		printRecords(e, recs)
		return nil
	case "verify":
		fs := newFlags(e, "records verify", "records verify --store DIR --profile DIR [--json]   (any device of the organisation; exit status 1 if a conversation is not proven complete)")
		store := fs.String("store", "", "the archive's store directory")
		profile := profileFlag(fs)
		asJSON := fs.Bool("json", false, "print as JSON")
		if _, err := parse(fs, args[1:], 0, 0); err != nil {
			return err
		}
		if err := required(fs, "store"); err != nil {
			return err
		}
		s, err := archive.Open(*store)
		if err != nil {
			return err
		}
		c, release, err := openVerified(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		hs, err := c.ChainHeads()
		if err != nil {
			return err
		}
		calls, err := c.LoggedCalls()
		if err != nil {
			return err
		}
		checks, err := s.Verify(hs, calls)
		if err != nil {
			return err
		}
		bad := 0
		for _, ch := range checks {
			if !ch.Complete {
				bad++
			}
		}
		if *asJSON {
			if err := printJSON(e.stdout, checks); err != nil {
				return err
			}
		} else {
			for _, ch := range checks {
				if ch.Complete {
					calls := ""
					if ch.Calls > 0 {
						calls = fmt.Sprintf(", %d calls", ch.Calls)
					}
					fmt.Fprintf(e.stdout, "%s  complete: #%d–#%d, %d records%s; the log's head #%d (entry %d) matches\n", ch.Conversation, ch.First, ch.Last, ch.Records, calls, ch.HeadSeq, ch.HeadIndex)
					continue
				}
				fmt.Fprintf(e.stdout, "%s  NOT PROVEN: #%d–#%d, %d records\n", ch.Conversation, ch.First, ch.Last, ch.Records)
				for _, p := range ch.Problems {
					fmt.Fprintf(e.stdout, "  %s\n", p)
				}
			}
		}
		if bad > 0 {
			return fmt.Errorf("%d of %d conversations are not proven complete", bad, len(checks))
		}
		return nil
	case "export":
		return recordsExport(e, args[1:])
	case "verify-export":
		return recordsVerifyExport(e, args[1:])
	case "move":
		return recordsMove(e, args[1:])
	case "reclassify":
		fs := newFlags(e, "records reclassify", "records reclassify LEVEL --profile DIR -- CONVERSATION   (the records officer; logged; retention follows the new level)")
		profile := profileFlag(fs)
		pos, err := parse(fs, args[1:], 2, 2)
		if err != nil {
			return err
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		if err := c.Reclassify(e.ctx, pos[1], pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "the records of %s are kept as %s records from now on (logged)\n", pos[1], strings.ToLower(pos[0]))
		return nil
	case "read":
		fs := newFlags(e, "records read", "records read --store DIR --identity FILE [--json] [--attachments DIR] [--audio DIR] -- CONVERSATION")
		openStore := storeKeyFlags(fs)
		asJSON := fs.Bool("json", false, "print the records as JSON")
		attDir := fs.String("attachments", "", "also decrypt the attachments into `dir`")
		audioDir := fs.String("audio", "", "also open the calls' audio into `dir`, as Ogg Opus files (call-CALL-N.ogg)")
		pos, err := parse(fs, args[1:], 1, 1)
		if err != nil {
			return err
		}
		s, id, err := openStore()
		if err != nil {
			return err
		}
		recs, err := s.ReadConversation(id, pos[0])
		if err != nil {
			return err
		}
		calls, err := s.ReadCalls(id, pos[0])
		if err != nil {
			return err
		}
		if *audioDir != "" {
			if err := saveAudio(e, s, id, pos[0], calls, *audioDir); err != nil {
				return err
			}
		}
		recs = archive.Transcript(recs, calls)
		if *attDir != "" {
			if err := saveAttachments(e, s, recs, *attDir); err != nil {
				return err
			}
		}
		if *asJSON {
			return printJSON(e.stdout, recs)
		}
		printRecords(e, recs)
		return nil
	}
	return usagef(use)
}

// printRecords prints records as hotline read prints messages, with each
// duty-desk document in full.
func printRecords(e *cmdEnv, recs []archive.Record) {
	for _, r := range recs {
		if r.Kind == "call" {
			fmt.Fprint(e.stdout, callLine(r))
			continue
		}
		m := client.Message{Conversation: r.Conversation, Seq: r.Seq, Epoch: r.Epoch, Time: r.Time, User: r.User, Device: r.Device,
			Kind: r.Kind, Text: r.Text, Data: r.Data, Added: r.Added, Removed: r.Removed}
		fmt.Fprint(e.stdout, messageLine(m))
		if r.Kind == "desk" {
			if d, err := desk.ParseDoc(r.Data); err == nil {
				var b bytes.Buffer
				enc := json.NewEncoder(&b)
				enc.SetIndent("    ", "  ")
				if enc.Encode(d) == nil {
					fmt.Fprintf(e.stdout, "    %s", clean(b.String()))
				}
			}
		}
	}
}

// saveAttachments decrypts each attachment of recs whose ciphertext the
// store holds into dir, named SEQ-NAME.
func saveAttachments(e *cmdEnv, s *archive.Store, recs []archive.Record, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, r := range recs {
		if r.Kind != "attachment" {
			continue
		}
		d, err := attach.UnmarshalDescriptor(r.Data)
		if err != nil {
			fmt.Fprintf(e.stderr, "#%d: %v\n", r.Seq, err)
			continue
		}
		ct, err := s.ReadBlob(base64.RawURLEncoding.EncodeToString(d.BlobID))
		if err != nil {
			fmt.Fprintf(e.stderr, "#%d %s: the archive does not hold its ciphertext yet (%v)\n", r.Seq, cleanLine(d.Name), err)
			continue
		}
		name := fmt.Sprintf("%d-%s", r.Seq, archive.SafeName(d.Name))
		var out bytes.Buffer
		if err := attach.Decrypt(&out, bytes.NewReader(ct), d); err != nil {
			return fmt.Errorf("#%d %s: %w", r.Seq, d.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), out.Bytes(), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "saved %s\n", filepath.Join(dir, name))
	}
	return nil
}

// recordsExport writes an export of conversations' records for an
// archivist (internal/archive, export.go): proven complete to the log's
// heads, logged, signed. It is made under OUT.partial and renamed to OUT
// only once the server has logged it, so no unlogged export is left.
func recordsExport(e *cmdEnv, args []string) error {
	fs := newFlags(e, "records export", "records export --store DIR --identity FILE --out DIR --profile DIR -- CONVERSATION...   (the records officer; logged)")
	profile := profileFlag(fs)
	openStore := storeKeyFlags(fs)
	out := fs.String("out", "", "the export's `directory` (created)")
	convs, err := parse(fs, args, 1, 1000)
	if err != nil {
		return err
	}
	if err := required(fs, "out"); err != nil {
		return err
	}
	if _, err := os.Stat(*out); err == nil {
		return withHint(fmt.Errorf("%s exists", *out), "an export goes to a new directory")
	}
	s, id, err := openStore()
	if err != nil {
		return err
	}
	c, release, err := openVerified(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	heads, err := c.ChainHeads()
	if err != nil {
		return err
	}
	in := archive.ExportInput{Store: s, Identity: id, Proofs: map[string]client.EntryProof{}, Made: time.Now()}
	for _, conv := range convs {
		if slices.Contains(in.Conversations, conv) {
			continue
		}
		h, ok := heads[conv]
		if !ok {
			return withHint(fmt.Errorf("the log commits no chain head of %s yet", conv), "the server commits heads every minute (serve --chain-interval); try again then")
		}
		p, cp, err := c.ProveEntry(e.ctx, h.Index)
		if err != nil {
			return fmt.Errorf("%s: the proof of its head: %w", conv, err)
		}
		in.Conversations = append(in.Conversations, conv)
		in.Proofs[conv], in.Checkpoint = p, cp
	}
	prof := c.Profile()
	in.Org, in.By, in.Device = prof.Org, prof.User, prof.Device
	in.DeviceKey = c.ExportKey()
	tmp := *out + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	m, mb, err := archive.WriteExport(tmp, in)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(mb)
	var logged []api.RecordsExportConversation
	records := 0
	for _, ec := range m.Conversations {
		logged = append(logged, api.RecordsExportConversation{Conversation: ec.ID, Records: ec.Records})
		records += ec.Records
	}
	if err := c.LogExport(e.ctx, digest, logged); err != nil {
		return fmt.Errorf("the server did not log the export, so none was made: %w", err)
	}
	sig := c.SignExport(digest)
	if err := os.WriteFile(filepath.Join(tmp, "manifest.sig"), []byte(base64.StdEncoding.EncodeToString(sig)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	done = true
	fmt.Fprintf(e.stdout, "exported %d conversations, %d records, to %s: manifest %x, logged as records.export, signed by device %s\n", len(m.Conversations), records, *out, digest, prof.Device)
	for _, ec := range m.Conversations {
		fmt.Fprintf(e.stdout, "  %s  #%d–#%d, %d records; the log's head #%d (entry %d)\n", ec.ID, ec.First, ec.Last, ec.Records, ec.Last, ec.HeadIndex)
	}
	return nil
}

// recordsVerifyExport checks an export: offline against the log keys the
// device trusts (archive.VerifyExport), then against the device's verified
// view of the log, which must hold the export's records.export entries and
// the expiries it claims.
func recordsVerifyExport(e *cmdEnv, args []string) error {
	fs := newFlags(e, "records verify-export", "records verify-export DIR --profile DIR [--json]   (any device of the organisation; exit status 1 unless proven complete)")
	profile := profileFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, release, err := openVerified(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	origin, keys := c.LogVerifiers()
	rep, err := archive.VerifyExport(pos[0], origin, keys)
	if err != nil {
		return err
	}
	p, err := c.RecordsPolicy()
	if err != nil {
		return err
	}
	m := rep.Manifest
	if x, ok := p.Exports[rep.Digest]; !ok {
		rep.Problems = append(rep.Problems, "unlogged: the log holds no records.export entry of this export (the log integrates an entry a moment after it is made)")
	} else {
		if x.By != m.By || x.Device != m.Device {
			rep.Problems = append(rep.Problems, fmt.Sprintf("unlogged: the log says %s (device %s) made it, the manifest %s (device %s)", x.By, x.Device, m.By, m.Device))
		}
		for _, ec := range m.Conversations {
			if n, ok := x.Conversations[ec.ID]; !ok || n != ec.Records {
				rep.Problems = append(rep.Problems, fmt.Sprintf("unlogged: the log's entry for %s does not say %d records", ec.ID, ec.Records))
			}
		}
	}
	for i, ec := range m.Conversations {
		if i < len(rep.Conversations) && ec.Expired != p.Expired[ec.ID] {
			ch := &rep.Conversations[i]
			ch.Problems = append(ch.Problems, fmt.Sprintf("expired: the manifest says the records through #%d were let go, the log says #%d", ec.Expired, p.Expired[ec.ID]))
			ch.Complete = false
		}
	}
	if *asJSON {
		if err := printJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "export %s by %s (device %s), %s\n", rep.Digest, m.By, m.Device, m.Made.Format(time.RFC3339))
		for _, p := range rep.Problems {
			fmt.Fprintf(e.stdout, "  %s\n", p)
		}
		for _, ch := range rep.Conversations {
			anchor := "from the archive's first message"
			if ch.Anchored {
				anchor = "from the conversation's start"
			}
			if ch.Complete {
				fmt.Fprintf(e.stdout, "%s  complete: #%d–#%d, %d records, chained %s to the log's head\n", ch.Conversation, ch.First, ch.Last, ch.Records, anchor)
				continue
			}
			fmt.Fprintf(e.stdout, "%s  NOT PROVEN: #%d–#%d, %d records\n", ch.Conversation, ch.First, ch.Last, ch.Records)
			for _, p := range ch.Problems {
				fmt.Fprintf(e.stdout, "  %s\n", p)
			}
		}
	}
	if !rep.Complete() {
		return errors.New("the export is not proven whole and complete")
	}
	return nil
}

// recordsMove records that an export's records went to another system:
// the export must verify, and be in the log, before its records are let
// go; the server logs a records.move per conversation (refused under a
// hold), and the archive then lets its copies go.
func recordsMove(e *cmdEnv, args []string) error {
	fs := newFlags(e, "records move", "records move --to CODE EXPORT --profile DIR   (the records officer; logged; the archive then lets its copies go)")
	profile := profileFlag(fs)
	to := fs.String("to", "", "where the records went, as a code: "+strings.Join(workflow.MoveDestinations, ", "))
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := required(fs, "to"); err != nil {
		return err
	}
	c, release, err := openVerified(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	origin, keys := c.LogVerifiers()
	rep, err := archive.VerifyExport(pos[0], origin, keys)
	if err != nil {
		return err
	}
	p, err := c.RecordsPolicy()
	if err != nil {
		return err
	}
	if !rep.Complete() {
		return withHint(errors.New("the export is not proven whole and complete, so nothing is moved"), "see hotline records verify-export %s", pos[0])
	}
	if _, ok := p.Exports[rep.Digest]; !ok {
		return withHint(errors.New("the log holds no records.export entry of this export yet"), "the log integrates an entry a moment after it is made: try again")
	}
	digest, err := hex.DecodeString(rep.Digest)
	if err != nil || len(digest) != 32 {
		return fmt.Errorf("the export's digest %q", rep.Digest)
	}
	for _, ec := range rep.Manifest.Conversations {
		if err := c.MoveRecords(e.ctx, [32]byte(digest), ec.ID, ec.Last, *to); err != nil {
			return fmt.Errorf("%s: %w", ec.ID, err)
		}
		fmt.Fprintf(e.stdout, "%s  moved through #%d to %s (logged; the archive lets its copies go)\n", ec.ID, ec.Last, *to)
	}
	return nil
}

// callLine is a call record as records read prints it: who called, how
// many spoke, for how long, and the audio files.
func callLine(r archive.Record) string {
	c := r.Call
	var b strings.Builder
	var longest time.Duration
	for _, a := range c.Audio {
		longest = max(longest, a.Duration)
	}
	fmt.Fprintf(&b, "call %s %s: %s called; %s, %d s", c.ID, c.Rang.Local().Format("2006-01-02 15:04"), c.Caller,
		speakers(len(c.Audio)), int(longest.Round(time.Second)/time.Second))
	if c.Reason != "" {
		fmt.Fprintf(&b, ", ended: %s", c.Reason)
	}
	b.WriteString("\n")
	for _, p := range c.Participants {
		how := ""
		if p.Listening {
			how = ", listening"
		}
		fmt.Fprintf(&b, "    %s (%s%s, device %s): %s\n", p.User, p.Role, how, short(p.Device), p.State)
	}
	for _, a := range c.Audio {
		lost := ""
		if a.Lost > 0 {
			lost = fmt.Sprintf(", %d packets lost", a.Lost)
		}
		fmt.Fprintf(&b, "    audio %s: %s, %.1f s%s\n", archive.AudioName(a.File), a.User, a.Duration.Seconds(), lost)
	}
	return b.String()
}

func speakers(n int) string {
	if n == 1 {
		return "1 speaker"
	}
	return fmt.Sprintf("%d speakers", n)
}

// saveAudio opens the audio of each call into dir, as Ogg Opus files
// named as the store names them, less the seal (call-CALL-N.ogg). A file
// the archive never finished is kept as far as it opens, and said so.
func saveAudio(e *cmdEnv, s *archive.Store, id age.Identity, conv string, calls []archive.Record, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, r := range calls {
		for _, a := range r.Call.Audio {
			in, err := s.OpenAudio(id, conv, a.File)
			if err != nil {
				return fmt.Errorf("call %s: %w", r.Call.ID, err)
			}
			path := filepath.Join(dir, archive.AudioName(a.File))
			out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				in.Close()
				return err
			}
			_, err = io.Copy(out, in)
			in.Close()
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if errors.Is(err, archive.ErrMalformed) {
				fmt.Fprintf(e.stderr, "call %s: %s is incomplete, saved as far as it opens: %v\n", r.Call.ID, path, err)
				continue
			} else if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "saved %s (%s)\n", path, a.User)
		}
	}
	return nil
}

// saveGranted saves the files that came with a grant (the calls' audio)
// into dir.
func saveGranted(e *cmdEnv, c *client.Client, files []client.GrantedFile, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(dir, archive.SafeName(f.Name))
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		err = c.SaveGrantedFile(e.ctx, f, out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		fmt.Fprintf(e.stderr, "saved %s\n", path)
	}
	return nil
}
