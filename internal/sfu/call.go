package sfu

import (
	"errors"
	"fmt"
	"slices"
)

// A call is a set of devices that hear each other.
type call struct {
	name    string
	members []*member // in the order they joined
	probe   bool      // a probe session (JoinProbe): it yields to calls
	// joined are the devices that have joined the call, ever: only a
	// device's first joining is written the speakers' last packets
	// (lastPacket), never its return from hold.
	joined map[string]bool
}

// A member is a device in a call, with who it hears on each slot. A
// listening member hears the others but is heard by none: its microphone
// is forwarded nowhere, and it takes no slot of theirs.
type member struct {
	device string
	listen bool
	slots  [Slots]string // the device heard on each slot, "" for none
}

func (c *call) find(device string) *member {
	for _, m := range c.members {
		if m.device == device {
			return m
		}
	}
	return nil
}

// give puts device on m's lowest free slot.
func (m *member) give(device string) {
	for k, d := range m.slots {
		if d == "" {
			m.slots[k] = device
			return
		}
	}
	panic("sfu: no free slot") // a call has at most Slots+1 members
}

// Join puts a connected device in a call, creating the call if it does
// not exist. The device hears each other participant on a slot of its
// own, and each of them hears it on one of theirs: the lowest free slot.
// OnSlots reports the new slot lists of all participants.
//
// Joining the call the device is in does nothing. It returns
// ErrNotConnected if the device has no connection, ErrInCall if it is in
// another call, and ErrCallFull if the call has Slots+1 participants.
func (s *SFU) Join(callName, device string) error { return s.join(callName, device, false, false) }

// JoinListening is Join for a device that only listens (a note-taker): it
// hears every participant that speaks, and nobody hears it.
func (s *SFU) JoinListening(callName, device string) error {
	return s.join(callName, device, true, false)
}

// JoinProbe is Join for a probe session, a line check's measurement of
// the media path: the devices in it hear each other as in a call, but a
// call takes precedence. A device in a probe session that joins a call
// leaves the session first, and a device in a call cannot join one
// (ErrInCall). Probe sessions are not listed by Calls.
func (s *SFU) JoinProbe(session, device string) error { return s.join(session, device, false, true) }

func (s *SFU) join(callName, device string, listen, probe bool) error {
	if callName == "" || device == "" {
		return errors.New("sfu: join: empty call or device")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.peers[device] == nil:
		return ErrNotConnected
	case s.member[device] != nil && s.member[device].name == callName:
		return nil
	case s.member[device] != nil && s.member[device].probe && !probe:
		s.leaveLocked(s.member[device], device) // the call comes first
	case s.member[device] != nil:
		return ErrInCall
	}
	c := s.calls[callName]
	if c == nil {
		c = &call{name: callName, probe: probe}
		s.calls[callName] = c
	}
	if c.probe != probe {
		return fmt.Errorf("sfu: join: %q is a call and a probe session", callName)
	}
	if len(c.members) > Slots {
		return ErrCallFull
	}
	m := &member{device: device, listen: listen}
	for _, o := range c.members {
		if !listen {
			o.give(device)
		}
		if !o.listen {
			m.give(o.device)
		}
	}
	c.members = append(c.members, m)
	s.member[device] = c
	first := ""
	if !c.joined[device] {
		if c.joined == nil {
			c.joined = map[string]bool{}
		}
		c.joined[device], first = true, device
	}
	s.routeLocked(c, first)
	for _, o := range c.members {
		s.reportLocked(c.name, o.device)
	}
	s.log.Debug("joined", "call", callName, "device", device)
	return nil
}

// Leave takes a device out of a call: nothing more is forwarded from it
// or to it, and its slot on each other participant is freed. OnSlots
// reports the new slot lists, the device's own (all empty) included. A
// device that is not in the call is left as it is.
func (s *SFU) Leave(callName, device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.member[device]; c != nil && c.name == callName {
		s.leaveLocked(c, device)
	}
}

// leaveLocked takes a member out of its call. s.mu must be held.
func (s *SFU) leaveLocked(c *call, device string) {
	c.members = slices.DeleteFunc(c.members, func(m *member) bool { return m.device == device })
	delete(s.member, device)
	for _, o := range c.members {
		for k, d := range o.slots {
			if d == device {
				o.slots[k] = ""
			}
		}
	}
	if p := s.peers[device]; p != nil {
		p.routes.Store(&[]*outSlot{})
		p.last.forget() // what it says out of the call is never pre-rolled
		for _, o := range p.outs {
			o.setSource(nil)
		}
	}
	s.routeLocked(c, "")
	s.reportLocked("", device)
	for _, o := range c.members {
		s.reportLocked(c.name, o.device)
	}
	if len(c.members) == 0 {
		delete(s.calls, c.name)
	}
	s.log.Debug("left", "call", c.name, "device", device)
}

// routeLocked makes the forwarding of a call follow its slot lists: each
// connected member's microphone goes to its slot on every other connected
// member. The slots of first, a device joining the call for the first
// time, are written each speaker's last packet if nobody heard it and it
// is fresh (lastPacket). s.mu must be held.
func (s *SFU) routeLocked(c *call, first string) {
	type start struct {
		src *peer
		o   *outSlot
	}
	var starts []start // the slots of a device joining for the first time
	defer func() {
		for _, st := range starts {
			st.src.preRollTo(st.o)
		}
	}()
	for _, m := range c.members {
		p := s.peers[m.device]
		if p == nil {
			continue
		}
		var routes []*outSlot
		for _, o := range c.members {
			op := s.peers[o.device]
			if o == m || op == nil {
				continue
			}
			if k := slices.Index(o.slots[:], m.device); k >= 0 {
				routes = append(routes, op.outs[k])
				if o.device == first && !c.probe { // a line check measures the path as it is
					starts = append(starts, start{p, op.outs[k]})
				}
			}
		}
		p.routes.Store(&routes)
		for k, d := range m.slots {
			var src *peer
			if d != "" {
				src = s.peers[d]
			}
			p.outs[k].setSource(src)
		}
	}
}

// reportLocked queues a device's slot list for OnSlots. s.mu must be held.
func (s *SFU) reportLocked(callName, device string) {
	if s.cfg.OnSlots == nil {
		return
	}
	slots := make([]Slot, Slots)
	var m *member
	if c := s.calls[callName]; c != nil {
		m = c.find(device)
	}
	p := s.peers[device]
	for k := range slots {
		slots[k].Index = k
		if p != nil {
			slots[k].Mid = p.mids[k]
		}
		if m != nil {
			slots[k].Device = m.slots[k]
		}
	}
	s.events.push(event{device: device, call: callName, slots: slots})
}

// Calls returns the names of the calls and their participants, in the
// order they joined (not the probe sessions).
func (s *SFU) Calls() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := make(map[string][]string, len(s.calls))
	for name, c := range s.calls {
		if c.probe {
			continue
		}
		for _, m := range c.members {
			calls[name] = append(calls[name], m.device)
		}
	}
	return calls
}
