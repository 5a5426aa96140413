package callbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"hotline/internal/datadir"
	"hotline/internal/netns"
	"hotline/internal/server"
)

// The far end of a WAN run is this program started again inside the
// network namespace (see Options.WAN) with farEnv set to its farConfig
// as JSON. It serves there, on the namespace's address, the server and
// an answerer (a bare pion peer for each offer POSTed to it, for the
// baseline), prints farReady and a farHello as JSON on one line of its
// standard output, and runs until its standard input ends: when the run
// closes it, or the run's process dies.
const (
	farEnv   = "HOTLINE_CALLBENCH_FAR_END"
	farReady = "callbench far end ready: "
)

type farConfig struct {
	Data string `json:"data"` // the server's data directory, made by datadir.Init
	Addr string `json:"addr"` // the namespace's address, to listen on
}

type farHello struct {
	URL         string `json:"url"`
	Fingerprint string `json:"fingerprint"`
	Answerer    string `json:"answerer"`
}

// FarEnd makes this process the far end of a WAN run if it was started
// as one (see Options.WAN), and then exits; otherwise it returns at once.
// A program that runs with Options.WAN calls it first thing in main; a
// test binary, in TestMain.
func FarEnd() {
	cfg, ok := os.LookupEnv(farEnv)
	if !ok {
		return
	}
	if err := serveFar(cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "callbench far end: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveFar serves as the far end configured by cfg until stdin ends.
func serveFar(cfg string, stdin io.Reader, stdout io.Writer) error {
	var c farConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		return fmt.Errorf("%s: %w", farEnv, err)
	}
	addr, err := netip.ParseAddr(c.Addr)
	if err != nil {
		return fmt.Errorf("%s: %w", farEnv, err)
	}
	hostPort := netip.AddrPortFrom(addr, 0).String()
	srv, err := server.New(context.Background(), server.Config{DataDir: c.Data, Logger: slog.New(slog.DiscardHandler),
		EnrolRate: 1000, EnrolBurst: 1000, MediaUDP: hostPort, MediaTCP: hostPort})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", hostPort)
	if err != nil {
		shutdown(srv.Shutdown)
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Shut down in the reverse order: the answerer's HTTP server (so no
	// handler is left to make a peer), its peers, the server.
	defer func() { shutdown(srv.Shutdown); <-served }()

	aln, err := net.Listen("tcp", hostPort)
	if err != nil {
		return err
	}
	ans := newAnswerer(addr)
	defer ans.close()
	hs := &http.Server{Handler: ans, ReadHeaderTimeout: 10 * time.Second}
	ansServed := make(chan error, 1)
	go func() { ansServed <- hs.Serve(aln) }()
	defer func() { shutdown(hs.Shutdown); <-ansServed }()

	hello, err := json.Marshal(farHello{URL: "https://" + ln.Addr().String(), Fingerprint: srv.Fingerprint(), Answerer: "http://" + aln.Addr().String() + "/offer"})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s%s\n", farReady, hello); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, stdin)
	return err
}

// shutdown calls a server's Shutdown with 10 seconds to finish.
func shutdown(fn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fn(ctx)
}

// An answerer answers each SDP offer POSTed to it with a new bare peer,
// which sends a 20 ms RTP packet every 20 ms from then on, until its
// connection ends, 15 seconds pass or the answerer is closed.
type answerer struct {
	host   netip.Addr
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the peers' senders
}

// peerLife bounds how long an answerer's peer lives.
const peerLife = 15 * time.Second

func newAnswerer(host netip.Addr) *answerer {
	ctx, cancel := context.WithCancel(context.Background())
	return &answerer{host: host, ctx: ctx, cancel: cancel}
}

// close ends every peer and waits for them.
func (a *answerer) close() {
	a.cancel()
	a.wg.Wait()
}

func (a *answerer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an SDP offer", http.StatusMethodNotAllowed)
		return
	}
	offer, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	answer, err := a.answer(r.Context(), string(offer))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	io.WriteString(w, answer)
}

// answer makes a peer for offer and returns its answer, every candidate
// gathered; the peer then sends until it is done.
func (a *answerer) answer(ctx context.Context, offer string) (string, error) {
	if a.ctx.Err() != nil {
		return "", errors.New("closing")
	}
	pc, err := newBarePeer(a.host)
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			pc.Close()
		}
	}()
	track, err := webrtc.NewTrackLocalStaticRTP(opus, "far", "far")
	if err != nil {
		return "", err
	}
	if _, err := pc.AddTrack(track); err != nil {
		return "", err
	}
	over := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			once.Do(func() { close(over) })
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	if err := setGathered(ctx, pc, ans); err != nil {
		return "", err
	}
	ok = true
	t0 := time.Now()
	a.wg.Go(func() {
		defer pc.Close()
		ctx, cancel := context.WithTimeout(a.ctx, peerLife)
		defer cancel()
		stop := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
			case <-over:
			}
			close(stop)
		}()
		sendRTP(track, t0, stop)
	})
	return pc.LocalDescription().SDP, nil
}

// sendRTP writes a 20 ms packet every 20 ms from t0 on track, until stop
// is closed. Packets written before the track is connected go nowhere.
func sendRTP(track *webrtc.TrackLocalStaticRTP, t0 time.Time, stop <-chan struct{}) {
	frame := append([]byte{0xfc}, make([]byte, 80)...) // a CELT 20 ms TOC byte and filler
	t := time.NewTimer(0)
	defer t.Stop()
	for k := 0; ; k++ {
		t.Reset(time.Until(t0.Add(time.Duration(k) * 20 * time.Millisecond)))
		select {
		case <-stop:
			return
		case <-t.C:
		}
		track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(k), Timestamp: uint32(k * 960)}, Payload: frame})
	}
}

// remoteHandshake times a bare pion peer in this process, on host, and
// one the answerer at url makes, from nothing to the first RTP packet the
// far one sends: the offer gathered, POSTed (on a connection hc keeps
// open), the answer, ICE, DTLS, SRTP.
func remoteHandshake(ctx context.Context, host netip.Addr, hc *http.Client, url string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t0 := time.Now()
	pc, err := newBarePeer(host)
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return 0, err
	}
	got := make(chan time.Time, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if _, _, err := tr.ReadRTP(); err == nil {
			got <- time.Now()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return 0, err
	}
	if err := setGathered(ctx, pc, offer); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answerer: %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		return 0, err
	}
	select {
	case t1 := <-got:
		return t1.Sub(t0), nil
	case <-ctx.Done():
		return 0, errors.New("no packet from the far bare peer")
	}
}

// A far is the far end of a WAN run, seen from the run: the process, and
// the server it serves.
type far struct {
	server Server
	cmd    *exec.Cmd
	stdin  io.Closer
	kill   context.CancelFunc
	done   chan error // the process's end
	stderr *syncBuffer
}

// farStartTimeout bounds how long the far end may take to be ready.
const farStartTimeout = time.Minute

// startFar makes a data directory in dir and starts the far end in n,
// serving it.
func startFar(ctx context.Context, n *netns.Net, dir string) (_ *far, err error) {
	data := filepath.Join(dir, "data")
	init, err := datadir.Init(ctx, data, datadir.InitOptions{Org: benchOrg, Hosts: []string{n.PeerAddr.String()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(farConfig{Data: data, Addr: n.PeerAddr.String()})
	if err != nil {
		return nil, err
	}
	life, kill := context.WithCancel(context.Background())
	cmd := n.Command(life, exe)
	cmd.Env = append(os.Environ(), farEnv+"="+string(cfg))
	cmd.WaitDelay = 5 * time.Second
	f := &far{cmd: cmd, kill: kill, done: make(chan error, 1), stderr: &syncBuffer{}}
	hello := &lineWriter{prefix: farReady, line: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = hello, f.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		kill()
		return nil, err
	}
	f.stdin = stdin
	if err := cmd.Start(); err != nil {
		kill()
		return nil, fmt.Errorf("start the far end: %w", err)
	}
	go func() { f.done <- cmd.Wait() }()
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	timer := time.NewTimer(farStartTimeout)
	defer timer.Stop()
	var line string
	select {
	case line = <-hello.line:
	case err := <-f.done:
		f.done <- err
		return nil, fmt.Errorf("the far end (%s in %s) exited before it was ready (%v): does the program call callbench.FarEnd first thing in main?\n%s",
			exe, n.Name, err, f.stderr)
	case <-timer.C:
		return nil, fmt.Errorf("the far end (%s in %s) was not ready in %v\n%s", exe, n.Name, farStartTimeout, f.stderr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var h farHello
	if err := json.Unmarshal([]byte(line), &h); err != nil {
		return nil, fmt.Errorf("the far end's hello: %w", err)
	}
	f.server = Server{URL: h.URL, Fingerprint: h.Fingerprint, Org: benchOrg, Invite: init.Invite.Code, Answerer: h.Answerer}
	return f, nil
}

// close ends the far end's input, which stops it, and waits for it; it
// kills it if it takes over 15 seconds.
func (f *far) close() error {
	f.stdin.Close()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	var err error
	select {
	case err = <-f.done:
	case <-timer.C:
		f.kill()
		err = <-f.done
	}
	f.kill()
	if err != nil {
		return fmt.Errorf("far end: %w\n%s", err, f.stderr)
	}
	return nil
}

// A lineWriter looks for the first line that starts with prefix in what
// is written to it and sends the rest of that line on line.
type lineWriter struct {
	prefix string
	line   chan string
	buf    []byte
	found  bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if w.found {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > 1<<16 {
				w.buf = w.buf[:0] // no line that long is ours
			}
			return len(p), nil
		}
		l := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if rest, ok := strings.CutPrefix(l, w.prefix); ok {
			w.found = true
			w.line <- rest
			return len(p), nil
		}
	}
}

// A syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
