package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/oggopus"
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
		dur:     fs.Duration("for", 0, "hang up after this `duration` in the call (0: when the call ends or on interrupt; a caller with --play hangs up once the file has played)"),
		asJSON:  fs.Bool("json", false, "print the call's summary as JSON on standard output"),
	}
}

func cmdCall(e *cmdEnv, args []string) error {
	fsw, f := addCallFlags(e, "call", "call USER|CONV --profile DIR [--play FILE.ogg] [--record OUT.ogg] [--for DURATION] [--json]\n\n"+
		"Calls a user (in your 1:1 conversation with them, made if there is none) or a conversation\n"+
		"(an ID, a prefix of one, or its title), end-to-end encrypted. With --play and no --for, it\n"+
		"hangs up once the file has played.")
	pos, err := parse(fsw, args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	c, release, err := openSynced(e, *f.profile)
	if err != nil {
		return err
	}
	defer release()
	info, err := callee(e, c, pos[0])
	if err != nil {
		return err
	}
	s, err := startLine(e, c, f)
	if err != nil {
		return err
	}
	defer s.close()
	s.printf("calling %s in %s%s, %s\n", others(info), info.ID, quotedTitle(info.Title), classification(info))
	s.mu.Lock()
	s.placing = true
	s.mu.Unlock()
	start := time.Now()
	call, err := s.line.Place(e.ctx, info.ID)
	if err != nil {
		return convError(err)
	}
	return s.run(call, start, true)
}

// callee finds the conversation to call: one this device holds, or the
// 1:1 conversation with a user, made if there is none.
func callee(e *cmdEnv, c *client.Client, name string) (client.ConversationInfo, error) {
	info, err := c.FindConversation(name)
	if err == nil {
		return info, usableInfo(info)
	}
	if !errors.Is(err, client.ErrNoConversation) {
		return info, convError(err)
	}
	user, uerr := userArg(c, name)
	if uerr != nil {
		return info, convError(err)
	}
	if user.String() == c.Profile().User {
		return info, errors.New("you cannot call yourself")
	}
	if info, err = c.DirectConversation(e.ctx, user.String()); err != nil {
		if apierr.Is(err, apierr.NotFound) {
			return info, withHint(fmt.Errorf("no conversation or user %q", name),
				"name a conversation this device holds (hotline conversation list), or a user of %s", c.Profile().Org)
		}
		return info, convError(err)
	}
	return info, usableInfo(info)
}

func cmdAnswer(e *cmdEnv, args []string) error {
	fsw, f := addCallFlags(e, "answer", "answer --profile DIR [--auto] [--wait DURATION] [--play FILE.ogg] [--record OUT.ogg] [--for DURATION] [--json]\n\n"+
		"Waits for a call to this device and answers it (at once with --auto; otherwise it asks), then\n"+
		"stays in it until it ends. A call that began ringing before it started is offered too, if it\n"+
		"still rings.")
	auto := fsw.Bool("auto", false, "answer the first call that rings, without asking")
	wait := fsw.Duration("wait", 0, "give up if no call rings within this `duration` (0: wait until interrupted)")
	if _, err := parse(fsw, args, 0, 0); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	// Not openSynced: a sync would read the device's event queue, rings
	// included, before the line is there to see them. The session's
	// stream reads it instead.
	c, err := openProfile(*f.profile)
	if err != nil {
		return err
	}
	release, err := lockProfile(c.Dir())
	if err != nil {
		return err
	}
	defer release()
	c.OnUpdate(func(u client.Update) { warnProblem(e.stderr, u) })
	if err := c.EnsureKeyPackages(e.ctx, client.DefaultSuite); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	var giveUp <-chan time.Time
	if *wait > 0 {
		t := time.NewTimer(*wait)
		defer t.Stop()
		giveUp = t.C
	}
	s, err := startLine(e, c, f)
	if err != nil {
		return err
	}
	defer s.close()
	ready := s.ready
	offered := map[string]bool{}
	for {
		select {
		case <-e.ctx.Done():
			return nil
		case <-giveUp:
			if len(offered) > 0 {
				return fmt.Errorf("no call answered within %s", *wait)
			}
			return withHint(fmt.Errorf("no call rang within %s", *wait), "--wait 0 waits until interrupted")
		case err := <-s.events:
			return fmt.Errorf("event stream: %w", err)
		case <-ready:
			ready = nil
			// Calls whose ring another command read are still ringing
			// on the server.
			if err := s.line.Refresh(e.ctx); err != nil {
				s.printf("could not ask which calls ring: %v\n", err)
			}
			s.printf("waiting for a call\n")
		case <-s.rang:
		}
		if ready != nil {
			continue // calls that rang and ended while this device was away are not offered
		}
		ringing := s.line.Ringing()
		slices.SortFunc(ringing, func(a, b api.Call) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, v := range ringing {
			if offered[v.ID] {
				continue
			}
			offered[v.ID] = true
			s.mu.Lock()
			s.shown[v.ID] = true
			s.mu.Unlock()
			title, lvl := "", level(v)
			if info, err := c.FindConversation(v.Conversation); err == nil {
				title, lvl = quotedTitle(info.Title), classification(info)
			}
			s.printf("ringing: %s (%s) calls in %s%s, %s%s\n", v.Caller, roleOf(v, v.CallerDevice), v.Conversation, title, lvl,
				s.unverified(v.Conversation, v.CallerDevice, v.Caller))
			if !*auto {
				yes, err := s.ask("answer?")
				if err != nil {
					return nil // interrupted
				}
				if !yes {
					if _, err := c.DeclineCall(e.ctx, v.ID); err != nil {
						s.printf("decline: %v\n", err)
					}
					continue
				}
			}
			start := time.Now()
			call, err := s.line.Answer(e.ctx, v.ID)
			if err != nil {
				s.printf("could not answer %s: %v\n", v.ID, err)
				continue // it ended meanwhile, or was answered elsewhere
			}
			return s.run(call, start, false)
		}
	}
}

// callSession is a line with its event stream, for one command.
type callSession struct {
	e       *cmdEnv
	c       *client.Client
	f       callFlags
	line    *voice.Line
	answers *bufio.Reader
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	events  chan error    // the event stream's end
	ready   chan struct{} // closed once the stream has read the device's queue
	rang    chan struct{} // a call rang on this device
	changed chan struct{} // a call's view changed

	mu      sync.Mutex          // guards the fields below, and stderr
	placing bool                // placing a call: events of calls this device places are shown
	shown   map[string]bool     // calls whose events are shown, by ID
	seen    map[string]bool     // call/device/state already printed
	views   map[string]api.Call // the last view of each call, by ID
	over    bool                // the call is over: print no more events
}

// check checks the files named, before anyone is rung: the file to play
// must be Ogg Opus, and the recording's folder must exist.
func (f callFlags) check() error {
	if *f.play != "" {
		file, err := os.Open(*f.play)
		if err != nil {
			return fmt.Errorf("--play: %w", err)
		}
		defer file.Close()
		if _, err := oggopus.NewReader(file); err != nil {
			return fmt.Errorf("--play %s: %w", *f.play, err)
		}
	}
	if *f.record != "" {
		if _, err := os.Stat(filepath.Dir(*f.record)); err != nil {
			return fmt.Errorf("--record: %w", err)
		}
	}
	return nil
}

func startLine(e *cmdEnv, c *client.Client, f callFlags) (*callSession, error) {
	s := &callSession{e: e, c: c, f: f, answers: bufio.NewReader(e.stdin),
		events: make(chan error, 1), ready: make(chan struct{}), rang: make(chan struct{}, 1), changed: make(chan struct{}, 1),
		shown: map[string]bool{}, seen: map[string]bool{}, views: map[string]api.Call{}}
	start := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	line, err := voice.Dial(ctx, c, voice.Options{OnCall: s.onCall, OnLine: func(up bool, err error) {
		if up {
			s.printf("media connected again\n")
		} else {
			s.printf("media connection lost (%v); connecting again\n", err)
		}
	}})
	if err != nil {
		return nil, fmt.Errorf("connect call media: %w", err)
	}
	s.line = line
	s.printf("media connected in %d ms\n", time.Since(start).Milliseconds())
	ectx, cancelEvents := context.WithCancel(e.ctx)
	s.cancel = cancelEvents
	var once sync.Once
	s.wg.Go(func() {
		err := c.Events(ectx, func(m api.StreamMessage) error {
			if m.Type == api.StreamIdle {
				once.Do(func() { close(s.ready) })
			}
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

// ask asks a yes-or-no question on standard error and reads the answer
// from standard input (no answer, as at its end, is no). It returns early,
// with an error, when the command is interrupted.
func (s *callSession) ask(question string) (bool, error) {
	s.printf("%s [y/N] ", question)
	reply := make(chan string, 1)
	// The read cannot be cancelled: an interrupt leaves it to end with the
	// process.
	go func() {
		line, _ := s.answers.ReadString('\n')
		reply <- line
	}()
	select {
	case <-s.e.ctx.Done():
		return false, s.e.ctx.Err()
	case line := <-reply:
		a := strings.ToLower(strings.TrimSpace(line))
		if !isTerminal(s.e.stdin) {
			s.printf("%s\n", a) // what a terminal would have echoed
		}
		return a == "y" || a == "yes", nil
	}
}

// isTerminal says whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// onCall prints what happens to the calls the command shows (the one it
// placed or answered, and those it offered) and passes rings and changes
// on.
func (s *callSession) onCall(event string, v api.Call) {
	poke := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	s.mu.Lock()
	s.views[v.ID] = v
	if !s.over && (s.shown[v.ID] || s.placing && v.CallerDevice == s.c.Profile().Device) {
		s.showLocked(event, v)
	}
	s.mu.Unlock()
	if event == client.EventCallRing {
		poke(s.rang)
	}
	poke(s.changed)
}

// showLocked prints what changed in a call: participants' new states, and
// its end. Each is printed once, whether from the event or from the
// call's last view at its end, whichever comes first.
func (s *callSession) showLocked(event string, v api.Call) {
	self := s.c.Profile().Device
	once := func(key, format string, args ...any) {
		if !s.seen[v.ID+"/"+key] {
			s.seen[v.ID+"/"+key] = true
			fmt.Fprintf(s.e.stderr, format, args...)
		}
	}
	if event == client.EventCallUpdate || event == client.EventCallEnded {
		for _, p := range v.Participants {
			if p.Device != self {
				role := p.Role
				if p.Listening {
					role += ", listening"
				}
				once(p.Device+"/"+p.State, "%s: %s (%s, device %s)%s\n", p.State, p.User, role, short(p.Device),
					s.unverified(v.Conversation, p.Device, p.User))
			}
		}
	}
	s.preemptedLocked(v)
	switch event {
	case client.EventCallElsewhere:
		once("elsewhere", "call %s answered or declined on another of your devices\n", v.ID)
	case client.EventCallEnded:
		once("ended", "call ended: %s\n", v.Reason)
	}
}

// preemptedLocked warns, once per call and user, that a call of higher
// precedence took this device, or another participant, out of the call v:
// the preemption warning, which a terminal sounds with the bell.
func (s *callSession) preemptedLocked(v api.Call) {
	self := s.c.Profile().Device
	for _, p := range v.Participants {
		if !p.Preempted {
			continue
		}
		key := v.ID + "/preempted/" + p.User
		if p.Device == self {
			key = v.ID + "/preempted"
		}
		if s.seen[key] {
			continue
		}
		s.seen[key] = true
		if p.Device == self {
			fmt.Fprintf(s.e.stderr, "%scall: preempted: taken out for a flash call\n", s.bell())
		} else {
			fmt.Fprintf(s.e.stderr, "%scall: %s was taken out for a flash call\n", s.bell(), p.User)
		}
	}
}

// bell is the terminal bell, the warning tone of a headless device, when
// standard error is a terminal ("" otherwise).
func (s *callSession) bell() string {
	if f, ok := s.e.stderr.(*os.File); ok && isTerminal(f) {
		return "\a"
	}
	return ""
}

// unverified is a warning to print after a device the server names in a
// call, unless this device's own state of the conversation's group holds
// that device with a credential of that user ("" then).
func (s *callSession) unverified(conv, device, user string) string {
	for _, m := range s.c.Conversation(conv).Members {
		if m.Device == device {
			if m.User == user {
				return ""
			}
			return fmt.Sprintf(" [WARNING: this device's keys say %s]", m.User)
		}
	}
	return " [WARNING: not a member of the conversation by this device's keys]"
}

// answered says whether call was answered, as far as this device knows:
// the call's own view, or a newer event (one that came before the call
// knew its ID).
func (s *callSession) answered(call *voice.Call) bool {
	s.mu.Lock()
	v := s.views[call.ID]
	s.mu.Unlock()
	return v.AnsweredAt != nil || call.View().AnsweredAt != nil || v.State == "active" || call.View().State == "active"
}

// run stays in a call until it ends, the file has played (caller), the
// duration passes or the command is interrupted, then prints a summary.
// start is when the command dialled or answered.
func (s *callSession) run(call *voice.Call, start time.Time, caller bool) error {
	s.mu.Lock()
	s.shown[call.ID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.over = true
		s.mu.Unlock()
	}()
	var rec *voice.Recorder
	if *s.f.record != "" {
		rec = voice.NewRecorder(*s.f.record)
		call.OnAudio(rec.Write)
	}
	var player sync.WaitGroup
	played := make(chan error, 1)
	playing := false
	startPlay := func() {
		if playing || *s.f.play == "" {
			return
		}
		playing = true
		player.Go(func() { played <- call.PlayFile(s.e.ctx, *s.f.play) })
	}
	var limit, drain <-chan time.Time
	if *s.f.dur > 0 {
		t := time.NewTimer(*s.f.dur)
		defer t.Stop()
		limit = t.C
	}
	heard := call.Heard()
	answered := !caller
	if answered {
		startPlay()
	}
	hangup := false
	var serr error
loop:
	for {
		if !answered && s.answered(call) {
			answered = true
			startPlay()
		}
		select {
		case <-s.e.ctx.Done():
			hangup = true
			break loop
		case <-call.Ended():
			break loop
		case <-limit:
			hangup = true
			break loop
		case <-drain:
			hangup = true
			break loop
		case serr = <-s.events:
			serr = fmt.Errorf("event stream: %w", serr)
			hangup = true
			break loop
		case <-heard:
			heard = nil
			s.printf("audio: first frame decrypted %d ms after %s\n", time.Since(start).Milliseconds(), map[bool]string{true: "dialling", false: "answering"}[caller])
		case <-s.changed:
		case err := <-played:
			played = nil
			if err != nil && !errors.Is(err, voice.ErrEnded) && s.e.ctx.Err() == nil {
				s.printf("play %s: %v\n", *s.f.play, err)
			}
			if caller && *s.f.dur == 0 {
				// Give the last frames time to reach the other side.
				drain = time.After(500 * time.Millisecond)
			}
		}
	}
	if !hangup && call.View().State == "ended" {
		// The event that ended the call may not have been printed yet.
		s.mu.Lock()
		s.showLocked(client.EventCallEnded, call.View())
		s.mu.Unlock()
	} else if !hangup {
		// Nor the one that took this device out (a preemption).
		s.mu.Lock()
		s.preemptedLocked(call.View())
		s.mu.Unlock()
	}
	var herr error
	if hangup {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		herr = call.Hangup(ctx)
		cancel()
		if apierr.Is(herr, apierr.Conflict) || apierr.Is(herr, apierr.NotFound) {
			herr = nil // it ended meanwhile
		}
		if herr != nil {
			herr = fmt.Errorf("hang up: %w", herr)
		}
	}
	player.Wait() // the call is over, so the file stops
	var rerr error
	var recs []voice.Recording
	if rec != nil {
		recs = rec.Recordings()
		if rerr = rec.Close(); rerr != nil {
			rerr = fmt.Errorf("record: %w", rerr)
		}
	}
	answered = answered || s.answered(call)
	st := call.Stats()
	sum := callSummary{Call: call.ID, Conversation: call.Conv, Answered: answered, Reason: call.Reason(), Seconds: time.Since(start).Seconds(),
		Sent: st.Sent, Received: st.Received, Undecryptable: st.Undecryptable, Epochs: st.Epochs, Rotations: st.Rotations}
	for _, q := range call.Quality().Participants {
		if q.Device == s.c.Profile().Device {
			sum.Media = &q
		}
	}
	if sum.Epochs == nil {
		sum.Epochs = []uint64{}
	}
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
	err := errors.Join(serr, herr, rerr)
	if !answered && !hangup && err == nil {
		err = notAnswered(sum.Reason)
	}
	return err
}

// notAnswered is the error of a call that ended before anyone answered.
func notAnswered(reason string) error {
	switch reason {
	case "declined":
		return errors.New("the call was declined")
	case "busy":
		return errors.New("busy: already in another call")
	case "no_answer":
		return errors.New("nobody answered")
	case "preempted":
		return errors.New("preempted: taken out for a flash call before anyone answered")
	}
	return fmt.Errorf("the call ended unanswered (%s)", reason)
}

type callSummary struct {
	Call          string       `json:"call"`
	Conversation  string       `json:"conversation"`
	Answered      bool         `json:"answered"`
	Reason        string       `json:"reason"`
	Seconds       float64      `json:"seconds"`
	FirstAudioMs  int64        `json:"first_audio_ms,omitempty"`
	Sent          uint64       `json:"sent"`
	Received      uint64       `json:"received"`
	Undecryptable uint64       `json:"undecryptable"`
	Epochs        []uint64     `json:"epochs"`
	Rotations     int          `json:"rotations"`
	Recordings    []recSummary `json:"recordings,omitempty"`
	// Media is this device's media path as the server last measured it
	// (absent if the call was too short for a report).
	Media *api.MediaQuality `json:"media,omitempty"`
}

type recSummary struct {
	Path    string `json:"path"`
	User    string `json:"user"`
	Device  string `json:"device"`
	Packets int    `json:"packets"`
	Filled  int    `json:"lost"`
}

// others names the other members of a conversation, each user once.
func others(info client.ConversationInfo) string {
	var names []string
	seen := map[string]bool{}
	for _, m := range info.Members {
		if !m.Self && !seen[m.User] {
			seen[m.User] = true
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
	s := clearanceDisplay(v.Level)
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
