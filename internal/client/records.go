package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"hotline/internal/api"
	"hotline/internal/tlog"
)

// RecordsFile keeps the records policy as this device's verified view of
// the log says it (recordsFromLog).
const RecordsFile = "records.json"

// RecordsPolicy is the organisation's records policy as the log says it:
// the retention schedule by classification level and the legal holds in
// force. The archive acts on this, never on the server's word.
type RecordsPolicy struct {
	// RetentionDays: how many days records of each level (its token) are
	// kept; a level without an entry is kept for good.
	RetentionDays map[string]int `json:"retention_days"`
	// Holds in force, by ID.
	Holds map[string]RecordsHold `json:"holds"`
	// Expired: through which message each conversation's records were
	// let go (records.expire entries).
	Expired map[string]int64 `json:"expired"`
	// Levels: the level each reclassified conversation's records are kept
	// under (records.reclassify entries).
	Levels map[string]string `json:"levels,omitempty"`
	// Moved: through which message each conversation's records went to
	// another system (records.move entries), so the archive lets its
	// copies go.
	Moved map[string]int64 `json:"moved,omitempty"`
	// Exports of records, by the SHA-256 of their manifest (hex), as the
	// records.export entries say.
	Exports map[string]RecordsExportSeen `json:"exports,omitempty"`
}

// RecordsExportSeen is an export of records as the log shows it.
type RecordsExportSeen struct {
	By     string    `json:"by"`
	Device string    `json:"device"`
	At     time.Time `json:"at"`
	// Conversations: the records exported of each.
	Conversations map[string]int `json:"conversations"`
}

// RecordsHold is a legal hold in force.
type RecordsHold struct {
	Conversation string    `json:"conversation,omitempty"` // "": every conversation
	Reason       string    `json:"reason"`
	By           string    `json:"by"`
	At           time.Time `json:"at"`
}

// RecordsPolicy returns the records policy as far as this device has
// verified the log.
func (c *Client) RecordsPolicy() (RecordsPolicy, error) {
	p := RecordsPolicy{RetentionDays: map[string]int{}, Holds: map[string]RecordsHold{}, Expired: map[string]int64{}}
	b, err := c.st.ReadFile(RecordsFile)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s: %w", RecordsFile, err)
	}
	return p, nil
}

// recordsFromLog follows the records entries of the log into RecordsFile.
func (c *Client) recordsFromLog(entries []tlog.Entry) error {
	p, err := c.RecordsPolicy()
	if err != nil {
		return err
	}
	changed := false
	for _, e := range entries {
		switch e.Type {
		case tlog.TypeRecordsRetention:
			if e.Count == 0 {
				delete(p.RetentionDays, e.Clearance)
			} else {
				p.RetentionDays[e.Clearance] = e.Count
			}
		case tlog.TypeRecordsHold:
			p.Holds[e.Item] = RecordsHold{Conversation: e.Conversation, Reason: e.Reason, By: e.Actor, At: time.Unix(e.Time, 0).UTC()}
		case tlog.TypeRecordsRelease:
			delete(p.Holds, e.Item)
		case tlog.TypeRecordsExpire:
			if int64(e.Count) > p.Expired[e.Conversation] {
				p.Expired[e.Conversation] = int64(e.Count)
			}
		case tlog.TypeRecordsReclass:
			if p.Levels == nil {
				p.Levels = map[string]string{}
			}
			p.Levels[e.Conversation] = e.Clearance
		case tlog.TypeRecordsMove:
			if p.Moved == nil {
				p.Moved = map[string]int64{}
			}
			if int64(e.Count) > p.Moved[e.Conversation] {
				p.Moved[e.Conversation] = int64(e.Count)
			}
		case tlog.TypeRecordsExport:
			if p.Exports == nil {
				p.Exports = map[string]RecordsExportSeen{}
			}
			x, ok := p.Exports[e.Item]
			if !ok {
				x = RecordsExportSeen{By: e.Actor, Device: e.ActorDevice, At: time.Unix(e.Time, 0).UTC(), Conversations: map[string]int{}}
			}
			x.Conversations[e.Conversation] = e.Count
			p.Exports[e.Item] = x
		default:
			continue
		}
		changed = true
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.st.WriteFile(RecordsFile, b)
}

// SetRetention sets how many days the records of a classification level
// are kept (0: for good). The records officer's.
func (c *Client) SetRetention(ctx context.Context, level string, days int) error {
	return c.Do(ctx, http.MethodPost, "/v1/records/retention", api.RecordsRetention{Level: level, Days: days}, nil)
}

// PlaceHold places a legal hold on a conversation ("": on every one) and
// returns its ID. The records officer's.
func (c *Client) PlaceHold(ctx context.Context, conv, reason string) (string, error) {
	var out api.RecordsHold
	err := c.Do(ctx, http.MethodPost, "/v1/records/holds", api.RecordsHold{Conversation: conv, Reason: reason}, &out)
	return out.ID, err
}

// ReleaseHold releases a legal hold. The records officer's.
func (c *Client) ReleaseHold(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodPost, "/v1/records/holds/"+url.PathEscape(id)+"/release", struct{}{}, nil)
}

// LogExpiry asks the server to log that the archive lets a conversation's
// records go through message through, as the retention schedule says; the
// server refuses while a hold covers the conversation. The archive's.
func (c *Client) LogExpiry(ctx context.Context, conv string, through int64) error {
	return c.Do(ctx, http.MethodPost, "/v1/records/expire", api.RecordsExpire{Conversation: conv, Through: through}, nil)
}

// MoveRecords logs that a conversation's records through a message went
// to another system as an export (its manifest's SHA-256), so the archive
// lets its copies go. The records officer's; refused under a hold.
func (c *Client) MoveRecords(ctx context.Context, manifest [32]byte, conv string, through int64, to string) error {
	return c.Do(ctx, http.MethodPost, "/v1/records/moves", api.RecordsMove{Manifest: fmt.Sprintf("%x", manifest), Conversation: conv, Through: through, To: to}, nil)
}

// Reclassify keeps a conversation's records under another level from now
// on; retention follows it. The records officer's.
func (c *Client) Reclassify(ctx context.Context, conv, level string) error {
	return c.Do(ctx, http.MethodPost, "/v1/records/reclassify", api.RecordsReclassify{Conversation: conv, Level: level}, nil)
}

// Now is this device's clock (Options.Now; the system's by default).
func (c *Client) Now() time.Time { return c.now() }
