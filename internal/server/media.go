package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/call"
	"hotline/internal/events"
	"hotline/internal/org"
	"hotline/internal/sfu"
)

// maxMediaOffer bounds an SDP offer (a mic and eight slots take about 6 KB).
const maxMediaOffer = 64 << 10

// connectMedia answers a device's offer: its media connection to the SFU,
// kept up while the app is open so that a call needs only signalling. A
// device joined to calls (a reconnect) is put back in them.
func (s *Server) connectMedia(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.MediaOffer
	if err := decode(r, &req); err != nil {
		return err
	}
	answer, err := s.media.Connect(r.Context(), a.Device.ID, req.Offer)
	if errors.Is(err, sfu.ErrOffer) {
		return apierr.New(apierr.BadRequest, "%v", err).WithHint("offer one sending and %d receiving Opus audio sections", sfu.Slots)
	} else if err != nil {
		return err
	}
	joined, err := s.calls.Joined(r.Context(), a.Device.ID)
	if err != nil {
		return err
	}
	for _, c := range joined {
		if err := call.JoinMedia(s.media, c.Call, a.Device.ID, c.Listen); err != nil && !errors.Is(err, sfu.ErrInCall) {
			s.log.Warn("rejoin call media", "call", c.Call, "device", a.Device.ID, "err", err)
		}
	}
	return writeJSON(w, http.StatusOK, api.MediaAnswer{Answer: answer})
}

// mediaSlots tells a device who it hears on which slot.
func (s *Server) mediaSlots(device, callID string, slots []sfu.Slot) {
	n := api.CallSlots{Call: callID, Slots: []api.Slot{}}
	for _, sl := range slots {
		n.Slots = append(n.Slots, api.Slot{Index: sl.Index, Mid: sl.Mid, Device: sl.Device})
	}
	b, err := json.Marshal(n)
	if err != nil {
		return
	}
	s.hub.Notify(device, events.Notice{Kind: api.NoticeCallSlots, Data: b})
}

// mediaGone takes a device whose media transport stayed down out of its
// calls.
func (s *Server) mediaGone(device, callID string) {
	if err := s.calls.Drop(s.ctx, device, call.ReasonDropped); err != nil && s.ctx.Err() == nil {
		s.log.Warn("drop a device whose media went away", "device", device, "call", callID, "err", err)
	}
}

// callQuality tells every device in a call its participants' media
// quality over the last interval, and records it in the metrics (no
// device or call labels: who is in a call is not the metrics' business).
func (s *Server) callQuality() {
	s.qualityMu.Lock()
	defer s.qualityMu.Unlock()
	prev := s.qualityPrev
	next := map[string]sfu.ParticipantStats{}
	for callID, devices := range s.media.Calls() {
		q := api.CallQuality{Call: callID, Participants: []api.MediaQuality{}}
		for _, d := range devices {
			st, err := s.media.Stats(d)
			if err != nil {
				continue
			}
			next[d] = st
			p := prev[d]
			mq := api.MediaQuality{Device: d,
				LossIn:   lossFraction(st.LostIn-p.LostIn, int64(st.PacketsIn-p.PacketsIn)),
				LossOut:  lossFraction(st.LostOut-p.LostOut, int64(st.PacketsOut-p.PacketsOut)),
				JitterMs: float64(max(st.JitterIn, st.JitterOut)) / float64(time.Millisecond),
				RTTMs:    float64(st.RTT) / float64(time.Millisecond)}
			q.Participants = append(q.Participants, mq)
			s.metrics.mediaLoss.Observe(max(mq.LossIn, mq.LossOut))
			s.metrics.mediaJitter.Observe(mq.JitterMs / 1000)
			if st.RTT > 0 {
				s.metrics.mediaRTT.Observe(st.RTT.Seconds())
			}
		}
		b, err := json.Marshal(q)
		if err != nil {
			continue
		}
		for _, d := range devices {
			s.hub.Notify(d, events.Notice{Kind: api.NoticeCallQuality, Data: b})
		}
	}
	s.qualityPrev = next
}

// lossFraction is lost packets as a fraction of those sent, from counter
// deltas (a device that reconnected starts its counters again: no loss is
// made up from that).
func lossFraction(lost, got int64) float64 {
	if lost <= 0 || got < 0 {
		return 0
	}
	return float64(lost) / float64(lost+got)
}
