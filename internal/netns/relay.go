package netns

import (
	"container/heap"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// limit is how many packets may wait in each direction: netem's default.
const limit = 1000

// A packet waits in a delay line until it is due.
type packet struct {
	due time.Time
	seq uint64 // breaks ties, so packets due at once keep their order
	b   []byte
}

// relay copies packets, one per Read, from src to dst, dropping and
// delaying them as o says, until reading src fails. Writes that fail lose
// their packet, as a wire would.
func relay(src io.Reader, dst io.Writer, o Options, rng *rand.Rand, down *atomic.Bool) {
	in := make(chan packet, 64)
	var queued atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { delayLine(in, dst, &queued) })
	defer wg.Wait()
	defer close(in)

	buf := make([]byte, 1<<16)
	for seq := uint64(0); ; seq++ {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if down.Load() || o.Loss > 0 && rng.Float64()*100 < o.Loss {
			continue
		}
		if queued.Load() >= limit {
			continue
		}
		d := o.Delay
		if o.Jitter > 0 {
			d += time.Duration(rng.Int64N(int64(2*o.Jitter)+1)) - o.Jitter
			d = max(d, 0)
		}
		queued.Add(1)
		in <- packet{due: time.Now().Add(d), seq: seq, b: append([]byte(nil), buf[:n]...)}
	}
}

// delayLine writes each packet from in to dst when it is due, until in is
// closed; packets still waiting then are dropped.
func delayLine(in <-chan packet, dst io.Writer, queued *atomic.Int64) {
	var q packetHeap
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var wake <-chan time.Time
		if len(q) > 0 {
			timer.Reset(time.Until(q[0].due))
			wake = timer.C
		}
		select {
		case p, ok := <-in:
			if !ok {
				return
			}
			heap.Push(&q, p)
		case now := <-wake:
			for len(q) > 0 && !q[0].due.After(now) {
				p := heap.Pop(&q).(packet)
				dst.Write(p.b)
				queued.Add(-1)
			}
		}
	}
}

// A packetHeap orders packets by when they are due.
type packetHeap []packet

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h packetHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)   { *h = append(*h, x.(packet)) }
func (h *packetHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = packet{}
	*h = old[:len(old)-1]
	return p
}
