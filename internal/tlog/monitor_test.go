package tlog

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
)

// growLog returns a log with an org, two users and device churn.
func growLog(tb testing.TB) (*testLog, []int64) {
	l, _ := newTestLog(tb)
	l.append(orgCreate(),
		Entry{Type: TypeUserCreate, Time: 2, User: "ada@org.example", Clearance: "secret"},
		enrol("ada@org.example", "phone", StatusActive))
	steps := []int64{0, 1, 3}
	l.append(enrol("ada@org.example", "laptop", StatusPending),
		Entry{Type: TypeUserCreate, Time: 2, User: "bob@org.example", Clearance: "secret"},
		enrol("bob@org.example", "phone", StatusActive))
	steps = append(steps, 6)
	l.append(approve("ada@org.example", "laptop", "sec1@org.example", "sec2@org.example"),
		revoke("ada@org.example", "phone"))
	steps = append(steps, 8)
	for i := range 25 {
		l.append(Entry{Type: TypeContactRefused, Time: int64(100 + i), Actor: "bob@org.example", Target: "ada@org.example", Reason: "policy"})
	}
	l.append(enrol("bob@org.example", "tablet", StatusPending), revoke("bob@org.example", "tablet"))
	return l, append(steps, 8, 20, 35)
}

func TestMonitorGrow(t *testing.T) {
	l, steps := growLog(t)
	_, v := newTestLog(t)
	m, err := NewMonitor(testOrigin, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Checkpoint(); got.Size != 0 || got.Hash != EmptyTreeHash() {
		t.Errorf("new monitor at %+v", got)
	}
	for i, size := range steps {
		old := m.Checkpoint().Size
		c, err := m.Update(l.update(old, size))
		if err != nil {
			t.Fatalf("Update to %d: %v", size, err)
		}
		if diff := cmp.Diff(l.checkpoint(size), c); diff != "" {
			t.Errorf("Update to %d (-want +got):\n%s", size, diff)
		}
		if i%2 == 1 { // persist and restore every other step
			b, err := json.Marshal(m.State())
			if err != nil {
				t.Fatal(err)
			}
			var st MonitorState
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(m.State(), &st); diff != "" {
				t.Fatalf("state JSON round trip (-want +got):\n%s", diff)
			}
			if m, err = NewMonitor(testOrigin, v, &st); err != nil {
				t.Fatalf("NewMonitor from state at %d: %v", size, err)
			}
		}
	}

	want := []DeviceState{
		{User: "ada@org.example", Device: "phone", SigKey: key("phone", 32), KEMKey: key("phone", 64), Status: StatusRevoked, EnrolIndex: 2},
		{User: "ada@org.example", Device: "laptop", SigKey: key("laptop", 32), KEMKey: key("laptop", 64), Status: StatusActive, EnrolIndex: 3,
			Approvers: []string{"sec1@org.example", "sec2@org.example"}},
	}
	if diff := cmp.Diff(want, m.Devices().Devices("ada@org.example")); diff != "" {
		t.Errorf("ada's devices (-want +got):\n%s", diff)
	}
	if got := m.State().Devices.Devices("bob@org.example"); len(got) != 2 || got[1].Device != "tablet" || got[1].Status != StatusRevoked {
		t.Errorf("bob's devices = %+v", got)
	}
}

func TestMonitorRejects(t *testing.T) {
	l, _ := growLog(t)
	_, v := newTestLog(t)
	at := func(size int64) *Monitor {
		m, err := NewMonitor(testOrigin, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			if _, err := m.Update(l.update(0, size)); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	otherSigner, _ := testKey(t, testOrigin, 2)
	wrongKey, err := SignCheckpoint(l.checkpoint(8), otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	fork := l.checkpoint(8)
	fork.Hash[5] ^= 1
	altered := func(i int, from, to string) [][]byte {
		es := append([][]byte(nil), l.entries[3:8]...)
		es[i] = []byte(strings.Replace(string(es[i]), from, to, 1))
		return es
	}

	tests := []struct {
		name    string
		from    int64
		signed  []byte
		entries [][]byte
		want    error // ErrVerify or ErrMalformed
	}{
		{"fork", 8, l.sign(fork), nil, ErrVerify},
		{"shrink", 8, l.sign(l.checkpoint(6)), nil, ErrVerify},
		{"shrink to empty", 8, l.sign(l.checkpoint(0)), nil, ErrVerify},
		{"entry altered", 3, l.sign(l.checkpoint(8)), altered(2, "bob", "eve"), ErrVerify},
		{"entry whitespace added", 3, l.sign(l.checkpoint(8)), altered(0, "}", " }"), ErrVerify},
		{"too few entries", 3, l.sign(l.checkpoint(8)), l.entries[3:7], ErrVerify},
		{"too many entries", 3, l.sign(l.checkpoint(8)), l.entries[3:9], ErrVerify},
		{"entries reordered", 3, l.sign(l.checkpoint(8)), [][]byte{l.entries[4], l.entries[3], l.entries[5], l.entries[6], l.entries[7]}, ErrVerify},
		{"wrong key", 3, wrongKey, l.entries[3:8], ErrVerify},
		{"not a note", 3, l.checkpoint(8).Marshal(), l.entries[3:8], ErrMalformed},
	}
	for _, tt := range tests {
		m := at(tt.from)
		before := m.State()
		_, err := m.Update(tt.signed, tt.entries)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if diff := cmp.Diff(before, m.State()); diff != "" {
			t.Errorf("%s: state changed (-before +after):\n%s", tt.name, diff)
		}
	}
	if _, err := at(8).Update(l.sign(fork), nil); err == nil || !strings.Contains(err.Error(), "fork") {
		t.Errorf("fork error %q does not say fork", err)
	}
}

// TestMonitorBadLog checks entries a log commits to that a client must
// refuse: the monitor stays where it was.
func TestMonitorBadLog(t *testing.T) {
	user := Entry{Type: TypeUserCreate, Time: 2, User: "ada@org.example", Clearance: "secret"}
	tests := []struct {
		name    string
		entries []Entry
		raw     string // appended last, unchecked
		want    error
	}{
		{"double enrol", []Entry{orgCreate(), enrol("ada@org.example", "phone", StatusActive), enrol("ada@org.example", "phone", StatusPending)}, "", ErrVerify},
		{"approve active", []Entry{orgCreate(), enrol("ada@org.example", "phone", StatusActive), approve("ada@org.example", "phone", "sec@org.example")}, "", ErrVerify},
		{"approve twice", []Entry{orgCreate(), enrol("ada@org.example", "phone", StatusPending), approve("ada@org.example", "phone", "s@o"), approve("ada@org.example", "phone", "t@o")}, "", ErrVerify},
		{"approve unknown", []Entry{orgCreate(), approve("ada@org.example", "phone", "sec@org.example")}, "", ErrVerify},
		{"approve revoked", []Entry{orgCreate(), enrol("ada@org.example", "phone", StatusPending), revoke("ada@org.example", "phone"), approve("ada@org.example", "phone", "s@o")}, "", ErrVerify},
		{"revoke unknown", []Entry{orgCreate(), revoke("ada@org.example", "phone")}, "", ErrVerify},
		{"revoke twice", []Entry{orgCreate(), enrol("ada@org.example", "phone", StatusActive), revoke("ada@org.example", "phone"), revoke("ada@org.example", "phone")}, "", ErrVerify},
		{"re-enrol revoked", []Entry{orgCreate(), enrol("ada@org.example", "phone", StatusActive), revoke("ada@org.example", "phone"), enrol("ada@org.example", "phone", StatusActive)}, "", ErrVerify},
		{"no org.create first", []Entry{user}, "", ErrVerify},
		{"second org.create", []Entry{orgCreate(), user, orgCreate()}, "", ErrVerify},
		{"malformed entry", []Entry{orgCreate(), user}, `{"type":"user.disable","time":0,"user":"a@b"}`, ErrMalformed},
		{"non-canonical entry", []Entry{orgCreate(), user}, `{"type": "user.disable","time":1,"user":"a@b"}`, ErrMalformed},
	}
	for _, tt := range tests {
		l, v := newTestLog(t)
		l.append(tt.entries...)
		if tt.raw != "" {
			l.appendRaw([]byte(tt.raw))
		}
		m, err := NewMonitor(testOrigin, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		good := int64(len(l.entries) - 1)
		if good > 0 {
			if _, err := m.Update(l.update(0, good)); err != nil {
				t.Fatalf("%s: update to %d: %v", tt.name, good, err)
			}
		}
		before := m.State()
		if _, err := m.Update(l.update(good, int64(len(l.entries)))); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if diff := cmp.Diff(before, m.State()); diff != "" {
			t.Errorf("%s: state changed (-before +after):\n%s", tt.name, diff)
		}
	}
}

func TestNewMonitorBadState(t *testing.T) {
	l, steps := growLog(t)
	_, v := newTestLog(t)
	m, err := NewMonitor(testOrigin, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty := m.State()
	if _, err := m.Update(l.update(0, steps[3])); err != nil {
		t.Fatal(err)
	}
	good := m.State()
	if _, err := NewMonitor(testOrigin, v, empty); err != nil {
		t.Errorf("NewMonitor from empty state: %v", err)
	}
	if _, err := NewMonitor(testOrigin, v, good); err != nil {
		t.Errorf("NewMonitor from good state: %v", err)
	}
	_, otherV := testKey(t, testOrigin, 2)
	if _, err := NewMonitor(testOrigin, note.VerifierList(otherV), good); !errors.Is(err, ErrVerify) {
		t.Errorf("NewMonitor with other key: err = %v, want ErrVerify", err)
	}
	if _, err := NewMonitor("other.example", v, good); !errors.Is(err, ErrVerify) {
		t.Errorf("NewMonitor with other origin: err = %v, want ErrVerify", err)
	}
	tests := map[string]func(*MonitorState){
		"size":              func(st *MonitorState) { st.Size-- },
		"negative size":     func(st *MonitorState) { st.Size = -1 },
		"root":              func(st *MonitorState) { st.Root[0] ^= 1 },
		"range hash":        func(st *MonitorState) { st.Range[0][0] ^= 1 },
		"range short":       func(st *MonitorState) { st.Range = st.Range[1:] },
		"no checkpoint":     func(st *MonitorState) { st.Checkpoint = nil },
		"no devices":        func(st *MonitorState) { st.Devices = nil },
		"garbage note":      func(st *MonitorState) { st.Checkpoint = []byte("x") },
		"empty, root wrong": func(st *MonitorState) { *st = MonitorState{} },
	}
	for name, mangle := range tests {
		st := m.State()
		mangle(st)
		if _, err := NewMonitor(testOrigin, v, st); !errors.Is(err, ErrMalformed) {
			t.Errorf("NewMonitor(%s): err = %v, want ErrMalformed", name, err)
		}
	}
}

// TestMonitorMangling flips bytes of and truncates a valid update's
// checkpoint and entries: every result must fail and change nothing, or
// give the correct new state.
func TestMonitorMangling(t *testing.T) {
	l, steps := growLog(t)
	_, v := newTestLog(t)
	from, to := steps[2], steps[4]
	start, err := NewMonitor(testOrigin, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start.Update(l.update(0, from)); err != nil {
		t.Fatal(err)
	}
	signed, entries := l.update(from, to)
	want, err := NewMonitor(testOrigin, v, start.State())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := want.Update(signed, entries); err != nil {
		t.Fatal(err)
	}

	check := func(what string, signed []byte, entries [][]byte) {
		m, err := NewMonitor(testOrigin, v, start.State())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Update(signed, entries); err == nil {
			if !cmp.Equal(want.State().Devices, m.State().Devices) || m.Checkpoint().Hash != want.Checkpoint().Hash {
				t.Errorf("%s: accepted with a wrong result", what)
			}
			return
		} else if !errors.Is(err, ErrVerify) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: unclassified error %v", what, err)
		}
		if diff := cmp.Diff(start.State(), m.State()); diff != "" {
			t.Errorf("%s: state changed:\n%s", what, diff)
		}
	}
	mangle := func(b []byte, visit func([]byte)) {
		for i := range b {
			for _, mask := range []byte{0x01, 0x80} {
				m := []byte(string(b))
				m[i] ^= mask
				visit(m)
			}
		}
		for n := range len(b) {
			visit(b[:n])
		}
	}
	mangle(signed, func(s []byte) { check("checkpoint "+string(s), s, entries) })
	for i := range entries {
		mangle(entries[i], func(e []byte) {
			es := append([][]byte(nil), entries...)
			es[i] = e
			check("entry "+string(e), signed, es)
		})
	}
}

func TestDeviceSet(t *testing.T) {
	d := NewDeviceSet()
	steps := []struct {
		e  Entry
		ok bool
	}{
		{enrol("ada@o", "b", StatusPending), true},
		{enrol("ada@o", "a", StatusActive), true},
		{enrol("bob@o", "a", StatusActive), true},
		{Entry{Type: TypeUserDisable, Time: 1, User: "ada@o"}, true},
		{approve("ada@o", "b", "x@o", "y@o"), true},
		{approve("ada@o", "b", "z@o"), false},
		{enrol("ada@o", "b", StatusActive), false},
		{revoke("ada@o", "a"), true},
		{revoke("ada@o", "a"), false},
		{revoke("ada@o", "c"), false},
		{approve("carol@o", "a", "x@o"), false},
		{Entry{Type: TypeDeviceEnrol, User: "ada@o", Device: "z", Reason: "revoked"}, false},
	}
	for i, s := range steps {
		before := d.Clone()
		err := d.Apply(int64(i), s.e)
		if s.ok && err != nil || !s.ok && err == nil {
			t.Errorf("step %d %s %s: err = %v", i, s.e.Type, s.e.Device, err)
		}
		if err != nil && !cmp.Equal(before, d) {
			t.Errorf("step %d: failed Apply changed the set", i)
		}
	}
	got := d.Devices("ada@o")
	want := []DeviceState{
		{User: "ada@o", Device: "b", SigKey: key("b", 32), KEMKey: key("b", 64), Status: StatusActive, EnrolIndex: 0, Approvers: []string{"x@o", "y@o"}},
		{User: "ada@o", Device: "a", SigKey: key("a", 32), KEMKey: key("a", 64), Status: StatusRevoked, EnrolIndex: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Devices (-want +got):\n%s", diff)
	}
	got[0].Approvers[0] = "mutated"
	c := d.Clone()
	c.Users["ada@o"]["b"].Approvers[1] = "mutated"
	if diff := cmp.Diff(want, d.Devices("ada@o")); diff != "" {
		t.Errorf("copies alias the set (-want +got):\n%s", diff)
	}
	if got := d.Devices("nobody@o"); got != nil {
		t.Errorf("Devices(unknown) = %+v", got)
	}

	var fromJSON DeviceSet
	if err := json.Unmarshal([]byte(`{"users":{"ada@o":{"x":null}}}`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := fromJSON.Apply(1, enrol("eve@o", "p", StatusActive)); err != nil {
		t.Error(err)
	}
	if n := len(fromJSON.Clone().Devices("ada@o")); n != 0 {
		t.Errorf("null device cloned: %d devices", n)
	}
}

func FuzzMonitorUpdate(f *testing.F) {
	l, steps := growLog(f)
	_, v := newTestLog(f)
	from := steps[2]
	start, err := NewMonitor(testOrigin, v, nil)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := start.Update(l.update(0, from)); err != nil {
		f.Fatal(err)
	}
	for _, to := range steps[2:] {
		signed, entries := l.update(from, to)
		f.Add(signed, []byte(strings.Join(byteStrings(entries), "\x00")))
	}
	f.Add(l.sign(l.checkpoint(from)), []byte{})
	f.Fuzz(func(t *testing.T, signed, joined []byte) {
		var entries [][]byte
		if len(joined) > 0 {
			for e := range strings.SplitSeq(string(joined), "\x00") {
				entries = append(entries, []byte(e))
			}
		}
		m, err := NewMonitor(testOrigin, v, start.State())
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.Update(signed, entries)
		if err != nil {
			if !errors.Is(err, ErrVerify) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			if diff := cmp.Diff(start.State(), m.State()); diff != "" {
				t.Fatalf("failed update changed the state:\n%s", diff)
			}
			return
		}
		// The fuzzer cannot forge a signature: only the log's entries pass.
		if c.Size > int64(len(l.entries)) || !cmp.Equal(c, l.checkpoint(c.Size)) {
			t.Fatalf("accepted checkpoint %+v", c)
		}
		for i, e := range entries {
			if string(e) != string(l.entries[from+int64(i)]) {
				t.Fatalf("accepted entry %d %q", from+int64(i), e)
			}
		}
	})
}

func byteStrings(bs [][]byte) []string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = string(b)
	}
	return s
}
