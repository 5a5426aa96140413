package sfu

import "sync"

// An event is a change reported through a callback of Config.
type event struct {
	gone   bool   // OnGone if set, else OnSlots
	device string //
	call   string
	slots  []Slot // for OnSlots
}

// eventQueue holds the events not yet reported, in order. It grows
// without bound rather than block the SFU on a slow callback; a callback
// that calls the SFU cannot deadlock it.
type eventQueue struct {
	mu    sync.Mutex // guards q
	q     []event
	ready chan struct{} // has a value when q may be non-empty
}

func (e *eventQueue) init() {
	e.ready = make(chan struct{}, 1)
}

func (e *eventQueue) push(ev event) {
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.ready <- struct{}{}:
	default:
	}
}

func (e *eventQueue) take() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}

// dispatch calls the callbacks, one event at a time, until Close.
func (s *SFU) dispatch() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.events.ready:
		}
		for _, ev := range s.events.take() {
			if s.ctx.Err() != nil {
				return
			}
			switch {
			case ev.gone && s.cfg.OnGone != nil:
				s.cfg.OnGone(ev.device, ev.call)
			case !ev.gone && s.cfg.OnSlots != nil:
				s.cfg.OnSlots(ev.device, ev.call, ev.slots)
			}
		}
	}
}
