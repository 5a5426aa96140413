package server_test

// End-to-end messaging benchmarks: real clients and a real server in one
// process, over HTTPS and WebSocket on 127.0.0.1. A message's latency runs
// from the sender calling Send (encrypt, post) to a recipient's client
// handing it, decrypted and recorded, to the application; every recipient
// counts. Each recipient follows its event stream as an app would.
//
//   - BenchmarkMessaging: 20 conversations of 10 members, an open loop at
//     100, 250 and 500 messages a second in all (latency), and a closed
//     loop of 20 senders, one per conversation (the sustained rate).
//   - BenchmarkRomeoJuliet: the shape of the Matrix "Romeo and Juliet"
//     benchmark (3,287 lines said one after another by the play's 35
//     speakers, each a member of one conversation), with synthetic lines
//     of the same count and lengths. It reports the time to send them all
//     (what the Matrix benchmark times) and until every member decrypted
//     every line.
//
// Run with -benchtime=1x: one op is the whole workload. The devices'
// profiles are kept in memory (see clientDir); the server's database is
// on disk.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
)

// benchMember is one device in a benchmark, following its stream.
type benchMember struct {
	c    *client.Client
	user string
}

// benchUsers enrols n users with one device each and publishes their key
// packages, in parallel.
func benchUsers(b testing.TB, e *env, admin *client.Client, prefix string, n int) []*benchMember {
	b.Helper()
	out := make([]*benchMember, n)
	invites := make([]string, n)
	for i := range n {
		invites[i] = addUser(b, admin, fmt.Sprintf("%s%d", prefix, i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _, err := client.Enroll(b.Context(), client.EnrollOptions{Server: e.url, Invite: invites[i], ProfileDir: clientDir(b),
				Fingerprint: e.fp, Label: "bench", Now: e.clock.Now})
			if err == nil {
				err = c.EnsureKeyPackages(b.Context(), client.DefaultSuite)
			}
			if err != nil {
				errs <- err
				return
			}
			out[i] = &benchMember{c: c, user: fmt.Sprintf("%s%d@state.example", prefix, i)}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return out
}

// clientDir returns a new profile directory for a benchmark's device, in
// memory (/dev/shm) where the machine has it: the devices would be other
// machines, and their profile writes must not queue behind (or in front
// of) the server's database on one disk's journal.
func clientDir(b testing.TB) string {
	b.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "hotline-bench-")
	if err != nil {
		return b.TempDir() + "/p"
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir + "/p"
}

// latencies collects delivery latencies.
type latencies struct {
	mu    sync.Mutex
	sent  map[string]time.Time // message text → when Send was called
	got   []time.Duration
	count atomic.Int64
}

func newLatencies() *latencies { return &latencies{sent: map[string]time.Time{}} }

func (l *latencies) start(text string) {
	l.mu.Lock()
	l.sent[text] = time.Now()
	l.mu.Unlock()
}

func (l *latencies) arrived(u client.Update) {
	if u.Kind != client.UpdateMessage || u.Message == nil {
		return
	}
	now := time.Now()
	l.mu.Lock()
	if t0, ok := l.sent[u.Message.Text]; ok {
		l.got = append(l.got, now.Sub(t0))
	}
	l.mu.Unlock()
	l.count.Add(1)
}

func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) == 0 {
		return 0
	}
	s := slices.Clone(l.got)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// follow starts every member's event stream and waits until each has
// caught up; the streams end with ctx.
func benchFollow(b testing.TB, ctx context.Context, ms []*benchMember, onUpdate func(client.Update)) *sync.WaitGroup {
	b.Helper()
	var wg sync.WaitGroup
	ready := make(chan struct{}, len(ms))
	for _, m := range ms {
		m.c.OnUpdate(onUpdate)
		wg.Go(func() {
			once := sync.Once{}
			err := m.c.Events(ctx, func(sm api.StreamMessage) error {
				if sm.Type == api.StreamIdle {
					once.Do(func() { ready <- struct{}{} })
				}
				return nil
			})
			if err != nil && ctx.Err() == nil {
				b.Errorf("%s's stream: %v", m.user, err)
			}
		})
	}
	for range ms {
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			b.Fatal("streams did not catch up")
		}
	}
	return &wg
}

// benchGroups makes groups of size members each out of ms, created by the
// first of each.
func benchGroups(b testing.TB, ms []*benchMember, size int) [][]*benchMember {
	b.Helper()
	var groups [][]*benchMember
	for i := 0; i+size <= len(ms); i += size {
		groups = append(groups, ms[i:i+size])
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for _, g := range groups {
		wg.Go(func() {
			var users []string
			for _, m := range g[1:] {
				users = append(users, m.user)
			}
			if _, err := g[0].c.CreateConversation(b.Context(), client.CreateOptions{Members: users}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return groups
}

func conversationOf(b testing.TB, m *benchMember) string {
	b.Helper()
	cs, err := m.c.Conversations()
	if err != nil || len(cs) != 1 {
		b.Fatalf("%s's conversations: %v %v", m.user, cs, err)
	}
	return cs[0].ID
}

func BenchmarkMessaging(b *testing.B) {
	rates := []int{100, 250, 500} // messages per second, all groups together
	const (
		groups  = 20
		size    = 10
		runFor  = 10 * time.Second
		maxWait = 30 * time.Second
	)
	for _, backend := range backends() {
		b.Run(backend, func(b *testing.B) {
			e := benchEnv(b, backend)
			admin := e.admin(b)
			ms := benchUsers(b, e, admin, "m", groups*size)
			gs := benchGroups(b, ms, size)
			lat := newLatencies()
			ctx, cancel := context.WithCancel(b.Context())
			streams := benchFollow(b, ctx, ms, lat.arrived)
			ids := make([]string, len(gs))
			for i, g := range gs {
				ids[i] = conversationOf(b, g[1])
			}
			wait := func(want int64) {
				deadline := time.Now().Add(maxWait)
				for lat.count.Load() < want && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if got := lat.count.Load(); got < want {
					b.Fatalf("%d of %d deliveries", got, want)
				}
			}
			// Warm up: every member sends once, in parallel by
			// conversation. A member's first message carries its log
			// checkpoint, which the others check with a consistency proof;
			// the runs below measure the steady state after that.
			var warm sync.WaitGroup
			for g, grp := range gs {
				warm.Go(func() {
					for _, m := range grp {
						if _, err := m.c.Send(ctx, ids[g], text("warm-up")); err != nil {
							b.Errorf("warm-up: %v", err)
							return
						}
					}
				})
			}
			warm.Wait()
			wait(int64(groups * size * (size - 1)))
			var sent atomic.Int64
			send := func(g int, from *benchMember, n int64) error {
				s := "m" + strconv.FormatInt(n, 10)
				lat.start(s)
				_, err := from.c.Send(ctx, ids[g], text(s))
				sent.Add(1)
				return err
			}
			for _, rate := range rates {
				b.Run(fmt.Sprintf("open-loop-%d-per-s", rate), func(b *testing.B) {
					defer profile(b)()
					for range b.N {
						lat.got, lat.sent = nil, map[string]time.Time{}
						base := lat.count.Load()
						var wg sync.WaitGroup
						tick := time.NewTicker(time.Second / time.Duration(rate))
						start := time.Now()
						var n int64
						errs := atomic.Int64{}
						for time.Since(start) < runFor {
							<-tick.C
							n++
							g := int(n % groups)
							from := gs[g][int(n/groups)%size]
							wg.Go(func() {
								if err := send(g, from, n); err != nil {
									errs.Add(1)
								}
							})
						}
						tick.Stop()
						wg.Wait()
						elapsed := time.Since(start)
						wait(base + n*(size-1))
						if errs.Load() > 0 {
							b.Fatalf("%d sends failed", errs.Load())
						}
						b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
						b.ReportMetric(float64(lat.quantile(0.5).Microseconds())/1000, "p50-ms")
						b.ReportMetric(float64(lat.quantile(0.99).Microseconds())/1000, "p99-ms")
						b.ReportMetric(float64(lat.quantile(0.999).Microseconds())/1000, "p99.9-ms")
					}
				})
			}
			b.Run("closed-loop", func(b *testing.B) {
				defer profile(b)()
				for range b.N {
					lat.got, lat.sent = nil, map[string]time.Time{}
					base := lat.count.Load()
					var wg sync.WaitGroup
					var n atomic.Int64
					start := time.Now()
					for g := range groups {
						wg.Go(func() {
							for i := 0; time.Since(start) < runFor; i++ {
								k := n.Add(1) + 1_000_000
								if err := send(g, gs[g][i%size], k); err != nil {
									b.Errorf("send: %v", err)
									return
								}
							}
						})
					}
					wg.Wait()
					elapsed := time.Since(start)
					wait(base + n.Load()*(size-1))
					delivered := time.Since(start)
					b.ReportMetric(float64(n.Load())/elapsed.Seconds(), "msgs/s")
					b.ReportMetric(float64(n.Load()*(size-1))/delivered.Seconds(), "deliveries/s")
					b.ReportMetric(float64(lat.quantile(0.5).Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat.quantile(0.99).Microseconds())/1000, "p99-ms")
				}
			})
			cancel()
			streams.Wait()
			if os.Getenv("HOTLINE_BENCH_METRICS") != "" {
				resp, err := e.httpClient().Get(e.url + "/metrics")
				if err == nil {
					io.Copy(os.Stderr, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
}

// romeoJuliet returns a synthetic play with the Matrix benchmark's shape:
// 3,287 lines by 35 speakers, who speak in turns of one to a dozen lines,
// each line 5 to 60 characters (about 38 on average). The text is not the
// play's.
func romeoJuliet() (lines []string, speakers []int) {
	r := rand.New(rand.NewPCG(1595, 1597))
	words := strings.Fields("thou art the and of my love night day sweet fair death name rose hath doth " +
		"what light breaks yonder window east sun moon star heaven hence good gentle lady sir nurse friar")
	speaker := 0
	for len(lines) < 3287 {
		// Turns favour the principal speakers, as the play's do.
		if r.IntN(3) == 0 {
			speaker = r.IntN(35)
		} else {
			speaker = r.IntN(6)
		}
		for range 1 + r.IntN(12) {
			if len(lines) == 3287 {
				break
			}
			n := 5 + r.IntN(56)
			var sb strings.Builder
			for sb.Len() < n {
				if sb.Len() > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(words[r.IntN(len(words))])
			}
			lines = append(lines, fmt.Sprintf("%d %s", len(lines), sb.String()))
			speakers = append(speakers, speaker)
		}
	}
	return lines, speakers
}

func BenchmarkRomeoJuliet(b *testing.B) {
	lines, speakers := romeoJuliet()
	for _, backend := range backends() {
		b.Run(backend, func(b *testing.B) {
			e := benchEnv(b, backend)
			admin := e.admin(b)
			ms := benchUsers(b, e, admin, "speaker", 35)
			lat := newLatencies()
			// Each run plays in a conversation of its own: in one the
			// speakers had already used, those who pass 500 messages
			// since their last key update (DefaultUpdateMessages) would
			// commit fresh leaves during the play, and the others would
			// then decrypt it while it is sent (docs/benchmarks.md).
			var id string
			fresh := func(b *testing.B) {
				var users []string
				for _, m := range ms[1:] {
					users = append(users, m.user)
				}
				info, err := ms[0].c.CreateConversation(b.Context(), client.CreateOptions{Members: users})
				if err != nil {
					b.Fatal(err)
				}
				id = info.ID
			}
			play := func(b *testing.B, ctx context.Context) time.Duration {
				start := time.Now()
				for i, l := range lines {
					lat.start(l)
					if _, err := ms[speakers[i]].c.Send(ctx, id, text(l)); err != nil {
						b.Fatalf("line %d: %v", i, err)
					}
				}
				return time.Since(start)
			}
			waitAll := func(b *testing.B, want int64) {
				deadline := time.Now().Add(5 * time.Minute)
				for lat.count.Load() < want && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if got := lat.count.Load(); got < want {
					b.Fatalf("%d of %d deliveries", got, want)
				}
			}
			perPlay := int64(len(lines)) * int64(len(ms)-1)
			// As the Matrix benchmark runs it: the lines are sent one
			// after another and nobody else is reading; then every member
			// comes online and decrypts the whole play.
			b.Run("send-then-catch-up", func(b *testing.B) {
				for range b.N {
					fresh(b)
					ctx, cancel := context.WithCancel(b.Context())
					for _, m := range ms { // join, and catch up before the play
						if err := m.c.Sync(ctx); err != nil {
							b.Fatal(err)
						}
					}
					base := lat.count.Load()
					stop := profile(b)
					sent := play(b, ctx)
					stop()
					start := time.Now()
					streams := benchFollow(b, ctx, ms, lat.arrived)
					waitAll(b, base+perPlay)
					caught := time.Since(start)
					b.ReportMetric(sent.Seconds(), "send-s")
					b.ReportMetric(float64(sent.Microseconds())/1000/float64(len(lines)), "ms/line")
					b.ReportMetric(caught.Seconds(), "catch-up-s")
					cancel()
					streams.Wait()
				}
			})
			// Every member online, decrypting each line as it arrives.
			b.Run("live", func(b *testing.B) {
				for range b.N {
					fresh(b)
					ctx, cancel := context.WithCancel(b.Context())
					streams := benchFollow(b, ctx, ms, lat.arrived)
					base := lat.count.Load()
					lat.mu.Lock()
					lat.got = nil
					lat.mu.Unlock()
					start := time.Now()
					sent := play(b, ctx)
					waitAll(b, base+perPlay)
					all := time.Since(start)
					b.ReportMetric(sent.Seconds(), "send-s")
					b.ReportMetric(float64(sent.Microseconds())/1000/float64(len(lines)), "ms/line")
					b.ReportMetric(all.Seconds(), "all-decrypted-s")
					b.ReportMetric(float64(lat.quantile(0.5).Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat.quantile(0.99).Microseconds())/1000, "p99-ms")
					cancel()
					streams.Wait()
				}
			})
		})
	}
}

// profile writes a CPU profile of the measured phase to the file
// $HOTLINE_BENCH_PROFILE names, if it is set (-cpuprofile would include the
// set-up).
func profile(b *testing.B) func() {
	path := os.Getenv("HOTLINE_BENCH_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("HOTLINE_BENCH_BLOCK") != "" { // where goroutines wait, instead of CPU
		runtime.SetBlockProfileRate(int(time.Millisecond))
		return func() {
			pprof.Lookup("block").WriteTo(f, 0)
			f.Close()
			runtime.SetBlockProfileRate(0)
		}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
