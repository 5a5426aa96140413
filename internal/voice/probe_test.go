package voice

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestProbeRecords(t *testing.T) {
	recs := []probeRecord{
		{kind: kindProbe, nonce: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, seq: 49, sentUs: 980_123},
		{kind: kindEcho, nonce: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}, seq: 0, sentUs: 1 << 40, held: 1500 * time.Microsecond},
	}
	var frame []byte
	for _, r := range recs {
		frame = appendProbe(frame, r)
	}
	// The layout, as docs/api.md gives it, for the first record.
	want := []byte{'h', 'l', 'p', '1', 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 49, 0, 0, 0, 0, 0, 0x0e, 0xf4, 0x9b, 0, 0, 0, 0}
	if !bytes.Equal(frame[:probeLen], want) {
		t.Fatalf("encoding\n%x, want\n%x", frame[:probeLen], want)
	}
	got, err := parseProbe(frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != recs[0] || got[1] != recs[1] {
		t.Fatalf("round trip %+v, want %+v", got, recs)
	}
	// A held time beyond 32 bits of µs is capped, never wrapped.
	long := appendProbe(nil, probeRecord{kind: kindEcho, held: 3 * time.Hour})
	if r, _ := parseProbe(long); r[0].held != (1<<32-1)*time.Microsecond {
		t.Errorf("held capped at %v", r[0].held)
	}
}

func TestProbeRecordsMalformed(t *testing.T) {
	good := appendProbe(nil, probeRecord{kind: kindProbe, seq: 3})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short":         good[:probeLen-1],
		"long":          append(append([]byte{}, good...), 0),
		"magic":         append([]byte("hlp2"), good[4:]...),
		"kind 0":        append(append([]byte{}, good[:4]...), append([]byte{0}, good[5:]...)...),
		"kind 3":        append(append([]byte{}, good[:4]...), append([]byte{3}, good[5:]...)...),
		"second record": append(append([]byte{}, good...), make([]byte, probeLen)...),
		"opus frame":    bytes.Repeat([]byte{0xfc, 0xff, 0xfe}, 9),
	} {
		if r, err := parseProbe(b); !errors.Is(err, ErrProbeFrame) || r != nil {
			t.Errorf("%s: %v %v", name, r, err)
		}
	}
}

func FuzzProbeRecords(f *testing.F) {
	f.Add(appendProbe(nil, probeRecord{kind: kindProbe, seq: 1, sentUs: 20_000}))
	f.Add(appendProbe(appendProbe(nil, probeRecord{kind: kindProbe}), probeRecord{kind: kindEcho, held: time.Millisecond}))
	f.Add([]byte("hlp1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := parseProbe(b)
		if err != nil {
			return
		}
		var again []byte
		for _, r := range recs {
			again = appendProbe(again, r)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%x parsed and encoded again is %x", b, again)
		}
	})
}
