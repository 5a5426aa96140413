package archive

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/identity"
)

// Event is something the archive device reports as it runs.
type Event struct {
	Kind         string // ready, media (calls can be answered), joined, sealed, blob, left, expired, call, call sealed, problem
	Conversation string
	Seq          int64
	Call         string // the call joined (call), sealed (call sealed)
	Speakers     int    // how many speakers' audio a call sealed holds
	Err          error
}

// ErrNotArchive: the profile's account does not hold the archive role.
var ErrNotArchive = errors.New("archive: this device's account does not hold the archive role")

// Run is the archive device: it follows c's conversations until ctx ends,
// sealing every message c handles into s (c keeps no history of its own),
// and fetches each attachment's ciphertext. It answers every call of a
// conversation on the record, listening, and seals what each speaker says
// as it comes (see recorder.go). report, if not nil, hears of each step;
// it must not block.
func Run(ctx context.Context, c *client.Client, s *Store, report func(Event)) error {
	return run(ctx, c, s, report, false)
}

// RunOnce seals what is waiting for the archive device, fetches the
// attachments still to fetch, and returns (for scheduled runs and tests).
// It answers no call.
func RunOnce(ctx context.Context, c *client.Client, s *Store, report func(Event)) error {
	return run(ctx, c, s, report, true)
}

func run(ctx context.Context, c *client.Client, s *Store, report func(Event), once bool) error {
	if report == nil {
		report = func(Event) {}
	}
	me, err := c.Me(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(me.User.Roles, string(identity.RoleArchive)) {
		return ErrNotArchive
	}
	blobs := make(chan Blob, 1)
	c.SetRecords(func(m client.Message) error {
		r := Record{Conversation: m.Conversation, Seq: m.Seq, Epoch: m.Epoch, Time: m.Time, User: m.User, Device: m.Device,
			Kind: m.Kind, Text: m.Text, Data: m.Data, Added: m.Added, Removed: m.Removed, Digest: m.Digest}
		var want *Blob
		if m.Kind == "attachment" {
			if d, err := attach.UnmarshalDescriptor(m.Data); err == nil {
				want = &Blob{ID: base64.RawURLEncoding.EncodeToString(d.BlobID), Size: d.CiphertextSize, Hash: d.CiphertextHash}
				clear(d.Key)
			}
		}
		if err := s.Seal(&r); err != nil {
			return fmt.Errorf("archive: seal %s/%d: %w", m.Conversation, m.Seq, err)
		}
		if want != nil {
			if err := s.NoteBlob(m.Conversation, m.Seq, want.ID); err != nil {
				return err
			}
			if err := s.Want(*want); err != nil {
				return err
			}
			select {
			case blobs <- *want:
			default:
			}
		}
		report(Event{Kind: "sealed", Conversation: m.Conversation, Seq: m.Seq})
		return nil
	})
	defer c.SetRecords(nil)
	c.SetHandled(func(h client.Handled) error {
		if len(h.Chain) != 32 {
			// A server that sends no chain: nothing to index, and
			// nothing the store can prove complete.
			return nil
		}
		return s.Index(Link{Conversation: h.Conversation, Seq: h.Seq, Time: h.Time, Chain: h.Chain, Digest: h.Digest, Recorded: h.Recorded})
	})
	defer c.SetHandled(nil)
	handler := func(u client.Update) {
		switch u.Kind {
		case client.UpdateJoined:
			report(Event{Kind: "joined", Conversation: u.Conversation})
		case client.UpdateLeft:
			report(Event{Kind: "left", Conversation: u.Conversation})
		case client.UpdateProblem:
			report(Event{Kind: "problem", Conversation: u.Conversation, Err: u.Err})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if once {
		c.OnUpdate(handler)
		defer c.OnUpdate(nil)
		if err := c.Sync(ctx); err != nil {
			return err
		}
		pend, err := s.Pending()
		if err != nil {
			return err
		}
		for _, b := range pend {
			if err := fetchBlob(ctx, c, s, b); err != nil {
				report(Event{Kind: "problem", Err: fmt.Errorf("attachment %s: %w", b.ID, err)})
				continue
			}
			report(Event{Kind: "blob"})
		}
		return expire(ctx, c, s, report)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the Wait: the goroutines end with ctx
	wg.Go(func() {
		t := time.NewTicker(ExpireEvery)
		defer t.Stop()
		for {
			if err := expire(ctx, c, s, report); err != nil && ctx.Err() == nil {
				report(Event{Kind: "problem", Err: fmt.Errorf("expiry: %w", err)})
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	wg.Go(func() { fetchBlobs(ctx, c, s, blobs, report) })
	// The line to the media forwarder is made before the device is said
	// to be ready, so that a call placed then is heard from its start.
	calls := newRecorder(c, s, report)
	if err := calls.connect(ctx); err != nil {
		report(Event{Kind: "problem", Err: err})
	}
	wg.Go(func() { calls.run(ctx) })
	report(Event{Kind: "ready"})
	// c.Follow, with the stream's call events passed to the recorder's line.
	if err = c.EnsureKeyPackages(ctx, client.DefaultSuite); err == nil {
		c.OnUpdate(handler)
		err = c.Events(ctx, func(m api.StreamMessage) error {
			calls.handle(m)
			return nil
		})
		c.OnUpdate(nil)
	}
	cancel()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// fetchBlobs fetches the pending blobs: at once when told of one, and
// every minute for those that failed.
func fetchBlobs(ctx context.Context, c *client.Client, s *Store, wake <-chan Blob, report func(Event)) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		pend, err := s.Pending()
		if err != nil {
			report(Event{Kind: "problem", Err: err})
		}
		for _, b := range pend {
			if ctx.Err() != nil {
				return
			}
			if err := fetchBlob(ctx, c, s, b); err != nil {
				report(Event{Kind: "problem", Err: fmt.Errorf("attachment %s: %w", b.ID, err)})
				continue
			}
			report(Event{Kind: "blob"})
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

func fetchBlob(ctx context.Context, c *client.Client, s *Store, b Blob) error {
	raw, err := b.RawID()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := c.DownloadBlob(ctx, raw, b.Size, b.Hash, &buf); err != nil {
		return err
	}
	return s.PutBlob(b, buf.Bytes())
}

// ExpireEvery is how often a running archive lets go of what the retention
// schedule no longer keeps.
var ExpireEvery = time.Hour

// expire lets go of the records the records policy, as the device's
// verified view of the log says it, no longer keeps: for each conversation
// it first has the server log the expiry (which the server refuses under a
// hold), then deletes. A log that does not verify stops it: nothing is
// deleted on the server's word.
func expire(ctx context.Context, c *client.Client, s *Store, report func(Event)) error {
	if _, err := c.VerifyLog(ctx); err != nil {
		return fmt.Errorf("the log does not verify, so nothing is let go: %w", err)
	}
	rp, err := c.RecordsPolicy()
	if err != nil {
		return err
	}
	p := Policy{Retention: map[string]time.Duration{}, Holds: map[string]string{}}
	for level, days := range rp.RetentionDays {
		p.Retention[level] = time.Duration(days) * 24 * time.Hour
	}
	for id, h := range rp.Holds {
		p.Holds[id] = h.Conversation
	}
	level := func(conv string) string {
		if l, ok := rp.Levels[conv]; ok {
			return l // reclassified
		}
		return c.Conversation(conv).Clearance
	}
	// Records moved to another system first: the records.move entry is
	// their log record.
	for conv, through := range rp.Moved {
		done, err := s.Expired(conv)
		if err != nil || through <= done || !s.HasConversation(conv) {
			continue
		}
		if len(p.Held(conv)) > 0 {
			report(Event{Kind: "problem", Conversation: conv, Err: fmt.Errorf("moved through #%d, but a hold covers it: the copies stay", through)})
			continue
		}
		if err := s.Expire(conv, through); err != nil {
			return err
		}
		report(Event{Kind: "moved", Conversation: conv, Seq: through})
	}
	es, err := s.Expirable(p, level, c.Now())
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := c.LogExpiry(ctx, e.Conversation, e.Through); err != nil {
			report(Event{Kind: "problem", Conversation: e.Conversation, Err: fmt.Errorf("expiry through #%d: %w", e.Through, err)})
			continue
		}
		if err := s.Expire(e.Conversation, e.Through); err != nil {
			return err
		}
		report(Event{Kind: "expired", Conversation: e.Conversation, Seq: e.Through})
	}
	return nil
}
