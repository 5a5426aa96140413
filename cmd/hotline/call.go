package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/voice"
)

// Calls, from the command line: `hotline call` places one, `hotline
// answer` takes one. Both connect the device's media first (the warm
// line), play an Ogg Opus file into the call if asked, write what they hear
// to Ogg Opus files, and print the call's progress on standard error and a
// summary at the end (JSON on standard output with --json).

type callFlags struct {
	profile *string
	play    *string
	record  *string
	dur     *time.Duration
	asJSON  *bool
}

func addCallFlags(e *cmdEnv, name, synopsis string) (*flag.FlagSet, callFlags) {
	fs := newFlags(e, name, synopsis)
	return fs, callFlags{
		profile: profileFlag(fs),
		play:    fs.String("play", "", "Ogg Opus `file` to send into the call once it is answered"),
		record:  fs.String("record", "", "write the audio heard to this Ogg Opus `file` (a second speaker to FILE-2.ogg, and so on)"),
		dur:     fs.Duration("for", 0, "hang up after this `duration` in the call (0: when the file has played, or on interrupt)"),
		asJSON:  fs.Bool("json", false, "print the call's summary as JSON on standard output"),
	}
}

func cmdCall(e *cmdEnv, args []string) error {
	fsw, f := addCallFlags(e, "call", "call USER|CONV --profile DIR [--play FILE.ogg] [--record OUT.ogg] [--for DURATION]\n\n"+
		"Calls a user (in your 1:1 conversation with them, made if there is none) or a conversation\n"+
		"(an ID, a prefix of one, or its title), end-to-end encrypted.")
	pos, err := parse(fsw, args, 1, 1)
	if err != nil {
		return err
	}
	c, release, err := openSynced(e, *f.profile)
	if err != nil {
		return err
	}
	defer release()
	info, err := c.FindConversation(pos[0])
	if err != nil {
		user, uerr := userArg(c, pos[0])
		if uerr != nil {
			return convError(err)
		}
		if info, err = c.DirectConversation(e.ctx, user.String()); err != nil {
			return convError(err)
		}
	}
	if err := usableInfo(info); err != nil {
		return err
	}
	s, err := startLine(e, c, f)
	if err != nil {
		return err
	}
	defer s.close()
	call, err := s.line.Place(e.ctx, info.ID)
	if err != nil {
		return err
	}
	s.printf("calling %s in %s, %s\n", others(info), info.ID, classification(info))
	return s.run(call, true)
}

func cmdAnswer(e *cmdEnv, args []string) error {
	fsw, f := addCallFlags(e, "answer", "answer --profile DIR [--auto] [--play FILE.ogg] [--record OUT.ogg] [--for DURATION]\n\n"+
		"Waits for a call to this device and answers it (at once with --auto; otherwise it asks), then\n"+
		"stays in it until it ends.")
	auto := fsw.Bool("auto", false, "answer the first call that rings, without asking")
	wait := fsw.Duration("wait", 0, "give up if no call rings within this `duration` (0: wait until interrupted)")
	if _, err := parse(fsw, args, 0, 0); err != nil {
		return err
	}
	c, release, err := openSynced(e, *f.profile)
	if err != nil {
		return err
	}
	defer release()
	s, err := startLine(e, c, f)
	if err != nil {
		return err
	}
	defer s.close()
	s.printf("waiting for a call\n")
	var giveUp <-chan time.Time
	if *wait > 0 {
		giveUp = time.After(*wait)
	}
	answers := bufio.NewReader(e.stdin)
	for {
		var v api.Call
		select {
		case <-e.ctx.Done():
			return nil
		case <-giveUp:
			return errors.New("no call rang")
		case err := <-s.events:
			return fmt.Errorf("event stream: %w", err)
		case v = <-s.rings:
		}
		if !*auto {
			s.printf("answer? [y/N] ")
			line, _ := answers.ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				if _, err := c.DeclineCall(e.ctx, v.ID); err != nil {
					s.printf("decline: %v\n", err)
				}
				continue
			}
		}
		call, err := s.line.Answer(e.ctx, v.ID)
		if err != nil {
			s.printf("could not answer %s: %v\n", v.ID, err)
			continue // it ended meanwhile, or was answered elsewhere
		}
		return s.run(call, false)
	}
}

// callSession is a line with its event stream, for one command.
type callSession struct {
	e      *cmdEnv
	c      *client.Client
	f      callFlags
	line   *voice.Line
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events chan error    // the event stream's end
	rings  chan api.Call // calls ringing on this device
	mu     sync.Mutex
	rung   map[string]bool
}

func startLine(e *cmdEnv, c *client.Client, f callFlags) (*callSession, error) {
	if *f.play != "" {
		if _, err := os.Stat(*f.play); err != nil {
			return nil, err
		}
	}
	s := &callSession{e: e, c: c, f: f, events: make(chan error, 1), rings: make(chan api.Call, 16), rung: map[string]bool{}}
	start := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	line, err := voice.Dial(ctx, c, voice.Options{OnCall: s.onCall})
	if err != nil {
		return nil, fmt.Errorf("connect call media: %w", err)
	}
	s.line = line
	s.printf("media connected in %d ms\n", time.Since(start).Milliseconds())
	ectx, cancelEvents := context.WithCancel(e.ctx)
	s.cancel = cancelEvents
	s.wg.Go(func() {
		err := c.Events(ectx, func(m api.StreamMessage) error {
			line.Handle(m)
			return nil
		})
		if ectx.Err() == nil {
			s.events <- err
		}
	})
	return s, nil
}

func (s *callSession) close() {
	s.line.Close()
	s.cancel()
	s.wg.Wait()
}

func (s *callSession) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.e.stderr, format, args...)
}

// onCall prints what happens to calls and passes rings on.
func (s *callSession) onCall(event string, v api.Call) {
	switch event {
	case client.EventCallRing:
		if v.State != "ringing" {
			return // an old ring, replayed
		}
		s.printf("ringing: %s (%s) calls in %s, %s\n", v.Caller, roleOf(v, v.CallerDevice), v.Conversation, level(v))
		select {
		case s.rings <- v:
		default:
		}
	case client.EventCallUpdate:
		for _, p := range v.Participants {
			key := p.Device + "/" + p.State
			s.mu.Lock()
			seen := s.rung[key]
			s.rung[key] = true
			s.mu.Unlock()
			if !seen && p.Device != s.c.Profile().Device {
				s.printf("%s: %s (%s, device %s)\n", p.State, p.User, p.Role, short(p.Device))
			}
		}
	case client.EventCallElsewhere:
		s.printf("call %s answered or declined on another of your devices\n", v.ID)
	case client.EventCallEnded:
		s.printf("call ended: %s\n", v.Reason)
	}
}

// run stays in a call until it ends, the file has played (caller), the
// duration passes or the command is interrupted, then prints a summary.
func (s *callSession) run(call *voice.Call, caller bool) error {
	var rec *voice.Recorder
	if *s.f.record != "" {
		rec = voice.NewRecorder(*s.f.record)
		call.OnAudio(rec.Write)
	}
	start := time.Now()
	played := make(chan error, 1)
	playing := false
	startPlay := func() {
		if playing || *s.f.play == "" {
			return
		}
		playing = true
		go func() { played <- call.PlayFile(s.e.ctx, *s.f.play) }()
	}
	answered := time.NewTicker(20 * time.Millisecond)
	defer answered.Stop()
	var limit <-chan time.Time
	if *s.f.dur > 0 {
		limit = time.After(*s.f.dur)
	}
	heard := call.Heard()
	hangup := false
loop:
	for {
		select {
		case <-s.e.ctx.Done():
			hangup = true
			break loop
		case <-call.Ended():
			break loop
		case <-limit:
			hangup = true
			break loop
		case err := <-s.events:
			return fmt.Errorf("event stream: %w", err)
		case <-heard:
			heard = nil
			s.printf("audio: first frame decrypted %d ms after %s\n", time.Since(start).Milliseconds(), map[bool]string{true: "dialling", false: "answering"}[caller])
		case <-answered.C:
			if call.View().State == "active" || !caller {
				answered.Stop()
				startPlay()
			}
		case err := <-played:
			played = nil
			if err != nil && !errors.Is(err, voice.ErrEnded) {
				s.printf("play %s: %v\n", *s.f.play, err)
			}
			if caller && *s.f.dur == 0 {
				time.Sleep(500 * time.Millisecond) // the last frames' way to the other side
				hangup = true
				break loop
			}
		}
	}
	var herr error
	if hangup {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		herr = call.Hangup(ctx)
		cancel()
	}
	var rerr error
	var recs []voice.Recording
	if rec != nil {
		recs = rec.Recordings()
		rerr = rec.Close()
	}
	st := call.Stats()
	sum := callSummary{Call: call.ID, Conversation: call.Conv, Reason: call.Reason(), Seconds: time.Since(start).Seconds(),
		Sent: st.Sent, Received: st.Received, Undecryptable: st.Undecryptable, Epochs: st.Epochs, Rotations: st.Rotations}
	for _, r := range recs {
		sum.Recordings = append(sum.Recordings, recSummary{Path: r.Path, User: r.From.User, Device: r.From.Device, Packets: r.Packets, Filled: r.Filled})
	}
	if !st.FirstAudio.IsZero() {
		sum.FirstAudioMs = st.FirstAudio.Sub(start).Milliseconds()
	}
	s.printf("call %s over (%s): %.1f s, %d frames sent, %d heard, %d undecryptable, epochs %v\n",
		call.ID, sum.Reason, sum.Seconds, sum.Sent, sum.Received, sum.Undecryptable, sum.Epochs)
	for _, r := range sum.Recordings {
		s.printf("recorded %s (%s): %d packets, %d lost\n", r.Path, r.User, r.Packets, r.Filled)
	}
	if *s.f.asJSON {
		if err := printJSON(s.e.stdout, sum); err != nil {
			return err
		}
	}
	return errors.Join(herr, rerr)
}

type callSummary struct {
	Call          string       `json:"call"`
	Conversation  string       `json:"conversation"`
	Reason        string       `json:"reason"`
	Seconds       float64      `json:"seconds"`
	FirstAudioMs  int64        `json:"first_audio_ms,omitempty"`
	Sent          uint64       `json:"sent"`
	Received      uint64       `json:"received"`
	Undecryptable uint64       `json:"undecryptable"`
	Epochs        []uint64     `json:"epochs"`
	Rotations     int          `json:"rotations"`
	Recordings    []recSummary `json:"recordings,omitempty"`
}

type recSummary struct {
	Path    string `json:"path"`
	User    string `json:"user"`
	Device  string `json:"device"`
	Packets int    `json:"packets"`
	Filled  int    `json:"lost"`
}

func others(info client.ConversationInfo) string {
	var names []string
	for _, m := range info.Members {
		if !m.Self && !strings.Contains(strings.Join(names, ","), m.User) {
			names = append(names, m.String())
		}
	}
	return strings.Join(names, ", ")
}

func roleOf(v api.Call, device string) string {
	for _, p := range v.Participants {
		if p.Device == device {
			return p.Role
		}
	}
	return "member"
}

func level(v api.Call) string {
	s := v.Level
	if len(v.Compartments) > 0 {
		s += " [" + strings.Join(v.Compartments, ", ") + "]"
	}
	return s
}

func short(device string) string {
	if len(device) > 12 {
		return device[:12]
	}
	return device
}
