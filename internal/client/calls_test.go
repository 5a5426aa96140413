package client

import (
	"testing"

	"hotline/internal/api"
)

// A device taken out of a call for one of higher precedence ends it
// "preempted", whether the view that says so is an update (the call goes on
// without it) or the call's end; the others go on, or end as the call
// ends. Leaving any other way is "dropped" for the device.
func TestCallTrackerPreempted(t *testing.T) {
	joined := func(d string) api.CallParticipant { return api.CallParticipant{Device: d, State: "joined"} }
	left := func(d string, preempted bool) api.CallParticipant {
		return api.CallParticipant{Device: d, State: "left", Preempted: preempted}
	}
	call := func(state, reason string, ps ...api.CallParticipant) api.Call {
		return api.Call{ID: "c", State: state, Reason: reason, Participants: ps}
	}
	start := call("active", "", joined("a"), joined("b"), joined("c"))
	for _, tt := range []struct {
		name       string
		self       string
		event      string
		v          api.Call
		over       bool
		reason     string
		wantRotate bool
	}{
		{"preempted, the call goes on", "a", EventCallUpdate, call("active", "", left("a", true), joined("b"), joined("c")), true, "preempted", false},
		{"preempted, the call ends", "a", EventCallEnded, call("ended", "preempted", left("a", true), left("b", false), left("c", false)), true, "preempted", false},
		{"another preempted, the call goes on", "b", EventCallUpdate, call("active", "", left("a", true), joined("b"), joined("c")), false, "", true},
		{"another preempted, the call ends", "b", EventCallEnded, call("ended", "preempted", left("a", true), left("b", false), left("c", false)), true, "preempted", false},
		{"left otherwise", "a", EventCallUpdate, call("active", "", left("a", false), joined("b"), joined("c")), true, "dropped", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewCallTracker(tt.self)
			tr.Take("", start)
			over, reason, rotate := tr.Take(tt.event, tt.v)
			if over != tt.over || reason != tt.reason || rotate != tt.wantRotate {
				t.Errorf("Take = %v, %q, %v; want %v, %q, %v", over, reason, rotate, tt.over, tt.reason, tt.wantRotate)
			}
		})
	}
}
