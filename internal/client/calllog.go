package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"hotline/internal/tlog"
)

// CallsFile keeps the calls of each conversation as the log records them
// (callsFromLog), so that the archive's store can be checked to hold every
// call that was answered ([Client.LoggedCalls]).
const CallsFile = "calls-log.json"

// LoggedCall is a call as the transparency log records it.
type LoggedCall struct {
	ID     string    `json:"id"`
	Start  time.Time `json:"start"`
	Index  int64     `json:"index"` // the call.start entry's place in the log
	Caller string    `json:"caller"`
	// Answered: a device of someone other than the caller joined.
	Answered bool `json:"answered,omitempty"`
}

// callsFromLog follows the call.start and call.join entries of the log
// into CallsFile. entries start at index old.
func (c *Client) callsFromLog(old int64, entries []tlog.Entry) error {
	var calls map[string][]LoggedCall
	changed := false
	for i, e := range entries {
		if e.Type != tlog.TypeCallStart && e.Type != tlog.TypeCallJoin {
			continue
		}
		if calls == nil {
			var err error
			if calls, err = c.LoggedCalls(); err != nil {
				return err
			}
		}
		list := calls[e.Conversation]
		switch e.Type {
		case tlog.TypeCallStart:
			calls[e.Conversation] = append(list, LoggedCall{ID: e.Call, Start: time.Unix(e.Time, 0).UTC(), Index: old + int64(i), Caller: e.Actor})
		case tlog.TypeCallJoin:
			for k := len(list) - 1; k >= 0; k-- {
				if list[k].ID == e.Call {
					if e.User != list[k].Caller {
						list[k].Answered = true
					}
					break
				}
			}
		}
		changed = true
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(calls)
	if err != nil {
		return err
	}
	return c.st.WriteFile(CallsFile, b)
}

// LoggedCalls returns, per conversation, the calls the log records, as
// far as this device has verified it, in the log's order.
func (c *Client) LoggedCalls() (map[string][]LoggedCall, error) {
	calls := map[string][]LoggedCall{}
	b, err := c.st.ReadFile(CallsFile)
	if errors.Is(err, os.ErrNotExist) {
		return calls, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &calls); err != nil {
		return nil, fmt.Errorf("%s: %w", CallsFile, err)
	}
	return calls, nil
}
