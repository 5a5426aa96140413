package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"hotline/internal/archive"
	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/conversation"
)

// The archive device joins every conversation that requires it with its
// members, seals each message to the records key as it arrives and keeps
// no plaintext: its store and profile, the server's database (and dump),
// log and metrics hold no message text. The records officer's key opens
// every record and attachment, in order and without a gap; another key
// opens none; an account without the archive role cannot run as the
// archive.
func TestArchiveDevice(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			const canary = "CANARY 7d1f the envoy lands at Brize Norton"
			const fileCanary = "CANARY 0c2e annex: the draft communique"
			const bobCanary = "CANARY 5a90 noted, the motorcade is ready"
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			arch := newMember(t, e, admin, "archive", "archive")
			s, storeDir, id := newRecords(t)
			if err := archive.Run(ctx, bob.Client, s, nil); !errors.Is(err, archive.ErrNotArchive) {
				t.Fatalf("bob ran as the archive: %v", err)
			}

			events := make(chan archive.Event, 1000)
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			done := make(chan error, 1)
			go func() {
				done <- archive.Run(runCtx, arch.Client, s, func(ev archive.Event) { events <- ev })
			}()
			wait := func(what string, ok func(archive.Event) bool) {
				t.Helper()
				deadline := time.After(30 * time.Second)
				for {
					select {
					case ev := <-events:
						if ev.Kind == "problem" {
							t.Errorf("archive problem: %s %v", ev.Conversation, ev.Err)
						}
						if ok(ev) {
							return
						}
					case <-deadline:
						t.Fatalf("the archive never reported %s", what)
					}
				}
			}
			wait("ready", func(ev archive.Event) bool { return ev.Kind == "ready" })

			info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "Visit", Members: []string{"bob@state.example"},
				Classification: conversation.Classification{ArchiveRequired: true}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(info.Members, func(m client.Member) bool { return m.User == "archive@state.example" }) {
				t.Fatalf("the archive did not join the conversation: %v", info.Members)
			}
			send(t, alice, info.ID, canary)
			sync1(t, bob)
			send(t, bob, info.ID, bobCanary)
			file := []byte(strings.Repeat(fileCanary+"\n", 3000))
			last, err := alice.SendAttachment(ctx, info.ID, bytes.NewReader(file), "annex.txt", "text/plain")
			if err != nil {
				t.Fatal(err)
			}
			wait("the attachment sealed", func(ev archive.Event) bool { return ev.Kind == "sealed" && ev.Seq == last.Seq })
			wait("the attachment's ciphertext kept", func(ev archive.Event) bool { return ev.Kind == "blob" })
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if ms, err := arch.Messages(info.ID); err != nil || len(ms) != 0 {
				t.Errorf("the archive device kept a history of its own: %d messages, %v", len(ms), err)
			}

			// Nothing in the clear on the archive's side.
			for _, dir := range []string{storeDir, arch.Dir()} {
				scanned := scanFor(t, dir, canary, fileCanary, bobCanary)
				if scanned == 0 {
					t.Errorf("nothing to scan in %s", dir)
				}
			}

			// The records officer opens every record, in order.
			ro, err := archive.Open(storeDir)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := ro.ReadConversation(id, info.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, r := range recs {
				if i > 0 && r.Seq != recs[i-1].Seq+1 {
					t.Errorf("a gap between records %d and %d", recs[i-1].Seq, r.Seq)
				}
				switch r.Kind {
				case "text", "title":
					got = append(got, r.Kind+" "+r.User+": "+r.Text)
				case "attachment":
					d, err := attach.UnmarshalDescriptor(r.Data)
					if err != nil {
						t.Fatal(err)
					}
					ct, err := ro.ReadBlob(base64.RawURLEncoding.EncodeToString(d.BlobID))
					if err != nil {
						t.Fatal(err)
					}
					var plain bytes.Buffer
					if err := attach.Decrypt(&plain, bytes.NewReader(ct), d); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(plain.Bytes(), file) {
						t.Error("the archived attachment differs from the one sent")
					}
					got = append(got, "attachment "+r.User+": "+d.Name)
				}
			}
			want := []string{"title alice@state.example: Visit", "text alice@state.example: " + canary,
				"text bob@state.example: " + bobCanary, "attachment alice@state.example: annex.txt"}
			if !slices.Equal(got, want) {
				t.Errorf("the records:\n got %q\nwant %q", got, want)
			}
			if recs[len(recs)-1].Seq != last.Seq {
				t.Errorf("the last record is #%d, the last message #%d", recs[len(recs)-1].Seq, last.Seq)
			}

			// Another key opens nothing.
			wrong, otherTo := recordsKey(t)
			if _, err := ro.Read(wrong, info.ID, recs[0].Seq); !errors.Is(err, archive.ErrMalformed) {
				t.Errorf("another key opened a record: %v", err)
			}
			// A store is bound to its records key.
			if _, err := archive.Create(storeDir, otherTo); !errors.Is(err, archive.ErrRecipient) {
				t.Errorf("a store took a second records key: %v", err)
			}

			// Completeness: the server commits the conversation's chain
			// head to the log; checked against it, the store holds every
			// message through the head. A record deleted from the store,
			// or a line of its index, shows.
			if n, err := e.srv.CommitChains(ctx); err != nil || n == 0 {
				t.Fatalf("commit chains: %d, %v", n, err)
			}
			if _, err := alice.VerifyLog(ctx); err != nil {
				t.Fatal(err)
			}
			hs, err := alice.ChainHeads()
			if err != nil {
				t.Fatal(err)
			}
			checks, err := ro.Verify(hs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(checks) != 1 || !checks[0].Complete || checks[0].HeadSeq != last.Seq || checks[0].Last != last.Seq || checks[0].Records != len(recs) {
				t.Fatalf("verify: %+v (last message #%d, %d records)", checks, last.Seq, len(recs))
			}
			if err := os.Remove(filepath.Join(storeDir, info.ID, fmt.Sprintf("%012d.age", recs[1].Seq))); err != nil {
				t.Fatal(err)
			}
			if checks, err := ro.Verify(hs, nil); err != nil || checks[0].Complete || !strings.HasPrefix(strings.Join(checks[0].Problems, ";"), "missing: record #") {
				t.Errorf("a deleted record: %+v %v", checks, err)
			}
			e.noCanary(t, canary, "conversation_messages")
		})
	}
}

// recordsKey makes a records key as hotline records keygen does and reads
// it back as the records officer would: its private half from a file
// (after a comment line, as keygen writes it), its public half as a
// recipient.
func recordsKey(t *testing.T) (*age.HybridIdentity, *age.HybridRecipient) {
	t.Helper()
	key, recipient, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	to, err := archive.ParseRecipient(recipient)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "records.key")
	if err := os.WriteFile(keyFile, []byte("# records key\n"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := archive.ParseIdentity(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return id, to
}

// newRecords makes a records key and an archive store sealed to it; it
// returns the store, its directory, and the key that opens it.
func newRecords(t *testing.T) (*archive.Store, string, *age.HybridIdentity) {
	t.Helper()
	id, to := recordsKey(t)
	dir := filepath.Join(t.TempDir(), "records")
	s, err := archive.Create(dir, to)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir, id
}

// scanFor fails the test if any file under dir holds one of the canaries;
// it returns how many files it read.
func scanFor(t *testing.T, dir string, canaries ...string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%q in %s", c, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
