package store

import (
	"context"
	"time"
)

// Event is one durable event queued for a device. Events are delivered in
// seq order, at least once, until the device acknowledges them. Payload is
// metadata (JSON) or ciphertext, never plaintext content.
type Event struct {
	DeviceID  string
	Seq       int64
	Type      string
	Payload   []byte
	CreatedAt time.Time
}

// MaxQueuedEvents bounds one device's queue; past it the oldest events are
// dropped and the device is told to resynchronise (see internal/events).
const MaxQueuedEvents = 10000

// PushEvent appends an event to a device's queue and returns its seq.
// Sequence numbers start at 1 and never repeat for a device.
func (t *Tx) PushEvent(ctx context.Context, e Event) (int64, error) {
	var seq int64
	err := t.queryRow(ctx, `INSERT INTO event_heads (device_id, next_seq) VALUES ($1, 2)
		ON CONFLICT (device_id) DO UPDATE SET next_seq = event_heads.next_seq + 1
		RETURNING next_seq - 1`, e.DeviceID).Scan(&seq)
	if err != nil {
		return 0, err
	}
	if _, err := t.exec(ctx, `INSERT INTO events (device_id, seq, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)`,
		e.DeviceID, seq, e.Type, e.Payload, unix(e.CreatedAt)); err != nil {
		return 0, err
	}
	if seq > MaxQueuedEvents {
		if _, err := t.exec(ctx, `DELETE FROM events WHERE device_id = $1 AND seq <= $2`, e.DeviceID, seq-MaxQueuedEvents); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// EventsAfter returns up to limit events of a device with seq > after.
func (t *Tx) EventsAfter(ctx context.Context, deviceID string, after int64, limit int) ([]Event, error) {
	rows, err := t.query(ctx, `SELECT seq, type, payload, created_at FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, deviceID, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var es []Event
	for rows.Next() {
		e := Event{DeviceID: deviceID}
		var at int64
		if err := rows.Scan(&e.Seq, &e.Type, &e.Payload, &at); err != nil {
			return nil, err
		}
		e.CreatedAt = fromUnix(at)
		es = append(es, e)
	}
	return es, rows.Err()
}

// AckEvents deletes a device's events with seq <= upTo.
func (t *Tx) AckEvents(ctx context.Context, deviceID string, upTo int64) error {
	_, err := t.exec(ctx, `DELETE FROM events WHERE device_id = $1 AND seq <= $2`, deviceID, upTo)
	return err
}

// LastEventSeq returns the highest seq ever assigned to a device (0 if none).
func (t *Tx) LastEventSeq(ctx context.Context, deviceID string) (int64, error) {
	var next int64
	err := t.queryRow(ctx, `SELECT next_seq FROM event_heads WHERE device_id = $1`, deviceID).Scan(&next)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return 0, nil
		}
		return 0, err
	}
	return next - 1, nil
}
