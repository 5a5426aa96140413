package archive

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/voice"
)

// The archive device answers every call of a conversation on the record,
// as a listener: the server joins a device of the archive role listening
// (call.Listening), so the forwarder sends its audio to nobody, every
// participant sees it in the call as the archive, listening, and a
// listener joining does not answer the call for the people rung. It never
// sends a frame. What each speaker says is decrypted as a member of the
// conversation and sealed as it arrives (Store.SealAudio); when the call
// ends, or the archive stops, a call record is sealed beside it.
//
// A device takes part in one call at a time: while the archive is in a
// call, a call that rings in another conversation on the record is not
// recorded, and reported as a problem.

// recorder is the archive device's side of calls. It owns its line to the
// server's media forwarder: run makes it, and closes it when ctx ends.
type recorder struct {
	c      *client.Client
	s      *Store
	report func(Event)
	wake   chan struct{}

	mu    sync.Mutex
	line  *voice.Line // nil until connected
	in    string      // the call the archive is in
	tried map[string]bool
}

func newRecorder(c *client.Client, s *Store, report func(Event)) *recorder {
	return &recorder{c: c, s: s, report: report, wake: make(chan struct{}, 1), tried: map[string]bool{}}
}

// handle passes a message of the device's event stream to the line.
func (r *recorder) handle(m api.StreamMessage) {
	r.mu.Lock()
	l := r.line
	r.mu.Unlock()
	if l != nil {
		l.Handle(m)
	}
}

// onCall hears of every call event the line handles.
func (r *recorder) onCall(event string, v api.Call) {
	if event != client.EventCallRing {
		return
	}
	r.mu.Lock()
	in := r.in
	r.mu.Unlock()
	if in != "" && in != v.ID && r.c.Conversation(v.Conversation).ArchiveRequired {
		r.report(Event{Kind: "problem", Conversation: v.Conversation, Call: v.ID,
			Err: fmt.Errorf("call %s is not recorded: the archive is in call %s, and a device takes part in one call at a time", v.ID, in)})
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// redialEvery is how long the archive waits to connect its media again
// after a failure, and how often it asks which calls ring on it (the
// event stream may have missed one).
var redialEvery = 10 * time.Second

// connect makes the recorder's line to the server's media forwarder.
func (r *recorder) connect(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	l, err := voice.Dial(dctx, r.c, voice.Options{OnCall: r.onCall})
	cancel()
	if err != nil {
		return fmt.Errorf("calls are not recorded until the archive's media connects: %w", err)
	}
	r.mu.Lock()
	r.line = l
	r.mu.Unlock()
	r.report(Event{Kind: "media"})
	return nil
}

// run answers each call on the record that rings on the device, one at a
// time, until ctx ends; then it closes the line. A line connect did not
// make is made here, trying again every redialEvery.
func (r *recorder) run(ctx context.Context) {
	for r.line == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(redialEvery):
		}
		if err := r.connect(ctx); err != nil && ctx.Err() == nil {
			r.report(Event{Kind: "problem", Err: err})
		}
	}
	defer r.line.Close()
	t := time.NewTicker(redialEvery)
	defer t.Stop()
	for {
		if err := r.line.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.report(Event{Kind: "problem", Err: fmt.Errorf("which calls ring: %w", err)})
		}
		for _, v := range r.line.Ringing() {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			tried := r.tried[v.ID]
			r.tried[v.ID] = true
			r.mu.Unlock()
			if !tried && r.c.Conversation(v.Conversation).ArchiveRequired {
				r.record(ctx, v)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-t.C:
		}
	}
}

// record answers the call v, listening, seals what each speaker says as it
// comes, and seals the call's record when it ends for the archive.
func (r *recorder) record(ctx context.Context, v api.Call) {
	after := r.c.Conversation(v.Conversation).Seq
	if err := r.s.NoteCall(v.Conversation, v.ID, after); err != nil {
		r.report(Event{Kind: "problem", Conversation: v.Conversation, Call: v.ID, Err: fmt.Errorf("call %s is not recorded: %w", v.ID, err)})
		return
	}
	call, err := r.line.Answer(ctx, v.ID)
	if err != nil {
		r.report(Event{Kind: "problem", Conversation: v.Conversation, Call: v.ID, Err: fmt.Errorf("call %s is not recorded: the archive could not join it: %w", v.ID, err)})
		return
	}
	r.mu.Lock()
	r.in = v.ID
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.in = ""
		r.mu.Unlock()
	}()
	r.report(Event{Kind: "call", Conversation: v.Conversation, Call: v.ID})
	audio := voice.NewRecorderTo(func(int, client.Member) (io.WriteCloser, string, error) {
		return r.s.SealAudio(v.Conversation, v.ID)
	})
	call.OnAudio(audio.Write)
	reason := ""
	select {
	case <-call.Ended():
	case <-ctx.Done():
		reason = "archive_stopped"
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		call.Hangup(hctx)
		cancel()
	}
	call.OnAudio(nil)
	left := time.Now().UTC()
	recs := audio.Recordings()
	err = audio.Close()
	view := call.View()
	c := &Call{ID: v.ID, Caller: view.Caller, After: after, Rang: view.CreatedAt, Answered: view.AnsweredAt, Ended: left, Reason: view.Reason}
	if view.EndedAt != nil && reason == "" {
		c.Ended = *view.EndedAt
	}
	if reason != "" {
		c.Reason = reason
	}
	for _, p := range view.Participants {
		c.Participants = append(c.Participants, CallParticipant{User: p.User, Device: p.Device, Role: p.Role, State: p.State, Listening: p.Listening})
	}
	for _, a := range recs {
		c.Audio = append(c.Audio, Audio{File: a.Path, User: a.From.User, Device: a.From.Device, Duration: a.Duration, Packets: a.Packets, Lost: a.Filled})
	}
	if err != nil {
		r.report(Event{Kind: "problem", Conversation: v.Conversation, Call: v.ID, Err: fmt.Errorf("call %s: sealing its audio: %w", v.ID, err)})
	}
	rec := Record{Conversation: v.Conversation, Time: view.CreatedAt, User: view.Caller, Device: view.CallerDevice, Kind: "call", Call: c}
	if err := r.s.SealCall(&rec); err != nil {
		r.report(Event{Kind: "problem", Conversation: v.Conversation, Call: v.ID, Err: fmt.Errorf("call %s: sealing its record: %w", v.ID, err)})
		return
	}
	r.report(Event{Kind: "call sealed", Conversation: v.Conversation, Call: v.ID, Speakers: len(c.Audio)})
}
