package server_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/server"
	"hotline/internal/tlog"
	"hotline/internal/voice"
	"hotline/internal/workflow"
)

// lineResult waits for a line check to finish and returns it.
func lineResult(t *testing.T, o *deskOrg, id string, advance time.Duration) api.LineCheck {
	t.Helper()
	var v api.LineCheck
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		if v, err = o.duty.GetLineCheck(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if v.Status != "running" {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("line check %s still running: %+v", id, v)
		}
		o.e.clock.Advance(advance)
		time.Sleep(20 * time.Millisecond)
	}
}

// reasons lists "side check reason" for every red probe of a check.
func reasons(v api.LineCheck) []string {
	var out []string
	for _, e := range v.Ends {
		for _, p := range e.Checks {
			if p.Status != "green" {
				out = append(out, e.Side+" "+p.Name+" "+p.Reason)
			}
		}
	}
	slices.Sort(out)
	return out
}

// The line check before a scheduled call: both ends (the principal's and
// the counterpart's devices) are checked: credentials, online, warm media
// line by the server; the transparency log and the conversation's group by
// each device itself. All green when all is well; then each injected fault
// turns its check red with its reason: the far end offline, a device the
// server lists but the log never recorded, a revoked device.
func TestLineCheck(t *testing.T) {
	o := newDeskOrg(t, "sqlite", func(c *server.Config) {
		c.DeskSweep = 20 * time.Millisecond
		c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0"
	})
	ctx := t.Context()
	v := scheduledCall(t, o, "line check")
	sync1(t, o.principal, o.counterpart)
	// A warm line; after a server restart the first attempt can stall in
	// ICE, so each attempt has a deadline and there are three.
	lines := map[*member]*voice.Line{} // one warm line per device, as on a phone
	dial := func(m *member) {
		if old := lines[m]; old != nil {
			old.Close()
		}
		var err error
		for range 3 {
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			var line *voice.Line
			line, err = voice.Dial(dctx, m.Client, voice.Options{IPFilter: func(ip net.IP) bool { return ip.IsLoopback() }})
			cancel()
			if err == nil {
				t.Cleanup(func() { line.Close() })
				lines[m] = line
				return
			}
		}
		t.Fatalf("%s's warm line: %v", m.name, err)
	}
	dial(o.principal)
	dial(o.counterpart)
	stopNear := keep(t, o.principal)
	stopFar := keep(t, o.counterpart)
	if _, err := o.counterpart.StartLineCheck(ctx, v.ID); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("the counterpart starting a line check: %v", err)
	}
	var lc api.LineCheck
	eventually(t, "both ends online with warm lines", func() bool {
		var err error
		if lc, err = o.duty.StartLineCheck(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		lc = lineResult(t, o, lc.ID, 50*time.Millisecond)
		return lc.Status == "green"
	})
	if len(lc.Ends) != 2 || len(lc.Ends[0].Checks) != 6 {
		t.Fatalf("green check %+v", lc)
	}
	// Each end measured the media path through the forwarder: every probe
	// of the far end heard, its own echoed back, a round trip on loopback.
	for _, end := range lc.Ends {
		m := end.Media
		if m == nil || m.Sent != workflow.LineProbes || m.Loss != 0 || m.Echoes < workflow.LineProbes*95/100 || m.RTTMs <= 0 || m.RTTMs > 200 {
			t.Fatalf("%s's media measurement %+v", end.Side, m)
		}
		t.Logf("%s: round trip %.2f ms median, %.2f ms max; %d of %d echoed", end.Side, m.RTTMs, m.RTTMaxMs, m.Echoes, m.Sent)
	}

	// The far end goes offline: it cannot answer (and once the server has
	// seen its stream close, it is offline).
	stopFar()
	var err error
	eventually(t, "the far end seen offline", func() bool {
		if lc, err = o.duty.StartLineCheck(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		lc = lineResult(t, o, lc.ID, 50*time.Millisecond)
		return slices.Contains(reasons(lc), "requester online offline")
	})
	if got, want := reasons(lc), []string{"principal media no_far_end", "requester group no_answer", "requester log no_answer", "requester media offline", "requester online offline"}; lc.Status != "red" || !slices.Equal(got, want) {
		t.Fatalf("far end offline: %s %v, want %v", lc.Status, got, want)
	}
	stopFar = keep(t, o.counterpart)

	// The server lists a device of the counterpart that its log never
	// recorded: the counterpart's keys are not consistent with the log.
	e := o.e
	e.stop()
	sqlExec(t, e, `INSERT INTO devices (id, user_id, sig_key, kem_key, label, status, created_at, updated_at, credential_expires)
		SELECT 'zzzzzzzzzzzzzzzz', user_id, sig_key, kem_key, 'planted', 'active', created_at, updated_at, 0 FROM devices WHERE user_id = 'counterpart@state.example'`)
	e.start(t)
	stopNear()
	stopFar()
	for _, m := range []*member{o.principal, o.counterpart, o.duty} {
		m.Client = reopenAt(t, m.Client, e)
	}
	dial(o.principal)
	dial(o.counterpart)
	keep(t, o.principal)
	keep(t, o.counterpart)
	eventually(t, "a line check with both ends online", func() bool {
		lc, err = o.duty.StartLineCheck(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		lc = lineResult(t, o, lc.ID, 50*time.Millisecond)
		return !slices.ContainsFunc(reasons(lc), func(r string) bool { return strings.Contains(r, "offline") })
	})
	if got, want := reasons(lc), []string{"requester log log_inconsistent"}; !slices.Equal(got, want) {
		t.Fatalf("keys inconsistent with the log: %v, want %v (media %+v %+v)", got, want, lc.Ends[0].Media, lc.Ends[1].Media)
	}

	// A revoked far-end device.
	var devs []api.Device
	if err := o.admin.Do(ctx, "GET", "/v1/devices?user=counterpart@state.example", nil, &devs); err != nil {
		t.Fatal(err)
	}
	if err := o.admin.Do(ctx, "POST", "/v1/devices/"+devs[0].ID+"/revoke", api.RevokeRequest{Reason: "lost"}, nil); err != nil {
		t.Fatal(err)
	}
	lc, err = o.duty.StartLineCheck(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	lc = lineResult(t, o, lc.ID, 50*time.Millisecond)
	if got := strings.Join(reasons(lc), ";"); !strings.Contains(got, "requester credential revoked") {
		t.Fatalf("revoked far end: %s", got)
	}
	// Every check started and finished is in the log (once checkpointed).
	eventually(t, "the line checks in the log", func() bool {
		var starts, dones int
		for _, en := range logEntries(t, o.duty.Client) {
			if en.Ref == v.ID && en.Type == tlog.TypeLineCheckStart {
				starts++
			}
			if en.Ref == v.ID && en.Type == tlog.TypeLineCheckDone {
				dones++
			}
		}
		return starts >= 4 && dones == starts
	})
}
