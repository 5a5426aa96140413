package store

import (
	"context"
	"fmt"
	"time"

	"hotline/internal/conversation"
	"hotline/internal/identity"
)

// Conversations: the delivery service's record of each MLS group. A
// conversation's messages (signed handshakes and encrypted application
// messages, never plaintext) are numbered 1, 2, … in the order the service
// accepted them; each member device's row says how far it has
// acknowledged, and a message is kept until every device that should
// receive it has acknowledged it. Delivery is by reading, not by copying a
// message into every recipient's queue: one row per message whatever the
// group's size.
//
// Each conversation's messages are hash-chained (conversation.ChainNext),
// by the SQL function hotline_chain in the statement that numbers each
// message, so the chain costs no round trip; the chain after each message
// is kept with it, and the chain after the head on the conversation, from
// which the delivery service commits heads to the transparency log.

// Conversation is one MLS group: its public state (the ratchet tree,
// GroupContext and transcript hash: no secret, no content) and the
// classification the service acts on.
type Conversation struct {
	GroupID      []byte
	CipherSuite  uint16
	Epoch        uint64
	HeadSeq      int64  // the newest message's seq (0: none yet)
	Pending      int    // proposals accepted in the current epoch, not yet committed
	State        []byte // mls.PublicGroup's encoding
	Level        identity.Clearance
	Compartments identity.Compartments
	CreatedBy    string // device
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Chain is the message chain after HeadSeq (conversation.ChainStart
	// at 0). It is nil for a conversation made before the chain existed
	// until its next message.
	Chain []byte
}

// ConversationMember says which device holds a leaf, and how far its
// delivery has got.
type ConversationMember struct {
	GroupID []byte
	Device  string
	User    identity.UserID
	Leaf    uint32
	// JoinedSeq is the seq of the commit that added the device (0 for the
	// creator); it receives the messages after it.
	JoinedSeq int64
	// LeftSeq is the seq of the commit that removed the device, 0 while
	// it is a member. A device that left still receives messages up to
	// that commit, so it learns it was removed.
	LeftSeq int64
	// Acked is the seq up to which the device has acknowledged delivery.
	Acked int64
	// HeadSeq and Epoch are the conversation's.
	HeadSeq int64
	Epoch   uint64
	// Lapsed: the device is no longer active (revoked, or unknown) or its
	// user is disabled. The delivery service proposes its removal and holds
	// application messages until a commit removes it.
	Lapsed bool
}

// ConversationMessage is one message of a conversation.
type ConversationMessage struct {
	GroupID   []byte
	Seq       int64
	Epoch     uint64 // the epoch the message was sent in
	Kind      int    // the MLS content type: 1 application, 2 proposal, 3 commit
	Sender    string // the sending device, or "" for the delivery service
	Data      []byte // the MLSMessage
	CreatedAt time.Time
	// Chain is the conversation's message chain after this message (nil
	// for a message stored before the chain existed).
	Chain []byte
}

// ChainHead is a conversation's message chain after its newest message.
type ChainHead struct {
	GroupID []byte
	Seq     int64
	Chain   []byte
}

// CreateConversation records a new conversation, its message chain at
// conversation.ChainStart (c.Chain is ignored); ErrConflict if its group
// ID is taken.
func (t *Tx) CreateConversation(ctx context.Context, c Conversation) error {
	return t.insertNew(ctx, `INSERT INTO conversations (group_id, cipher_suite, epoch, head_seq, pending, state, level, compartments, created_by, created_at, updated_at, chain)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
		c.GroupID, int(c.CipherSuite), int64(c.Epoch), c.HeadSeq, c.Pending, c.State, int(c.Level), c.Compartments.String(), c.CreatedBy, unix(c.CreatedAt), unix(c.UpdatedAt),
		conversation.ChainStart(c.GroupID))
}

// GetConversation returns a conversation with its state, locking it in a
// read-write transaction: messages to one conversation are accepted one at
// a time.
func (t *Tx) GetConversation(ctx context.Context, groupID []byte) (Conversation, error) {
	return t.getConversation(ctx, groupID, "state")
}

// LockConversation is GetConversation without the state, which an
// application message does not need (it can be large).
func (t *Tx) LockConversation(ctx context.Context, groupID []byte) (Conversation, error) {
	return t.getConversation(ctx, groupID, "NULL")
}

func (t *Tx) getConversation(ctx context.Context, groupID []byte, state string) (Conversation, error) {
	c := Conversation{GroupID: groupID}
	var (
		suite, level     int
		epoch            int64
		comps            string
		created, updated int64
	)
	err := t.queryRow(ctx, `SELECT cipher_suite, epoch, head_seq, pending, `+state+`, level, compartments, created_by, created_at, updated_at, chain
		FROM conversations WHERE group_id = $1`+t.forUpdate(), groupID).
		Scan(&suite, &epoch, &c.HeadSeq, &c.Pending, &c.State, &level, &comps, &c.CreatedBy, &created, &updated, &c.Chain)
	if err != nil {
		return Conversation{}, notFound(err)
	}
	c.CipherSuite, c.Epoch, c.Level = uint16(suite), uint64(epoch), identity.Clearance(level)
	if c.Compartments, err = identity.ParseCompartments(comps); err != nil {
		return Conversation{}, fmt.Errorf("stored conversation: %w", err)
	}
	c.CreatedAt, c.UpdatedAt = fromUnix(created), fromUnix(updated)
	return c, nil
}

// AppendConversationMessage accepts m as the conversation's next message,
// if the conversation is still at epoch m.Epoch (ErrConflict otherwise:
// another commit won the epoch), and moves it to epoch next with state
// (nil: the state is unchanged). It returns the message's seq and the
// conversation's message chain after it. A proposal (Kind 2) counts as
// pending until a commit (Kind 3).
func (t *Tx) AppendConversationMessage(ctx context.Context, m ConversationMessage, next uint64, state []byte) (int64, []byte, error) {
	var (
		seq   int64
		chain []byte
	)
	err := t.queryRow(ctx, `UPDATE conversations SET head_seq = head_seq + 1, chain = hotline_chain(chain, $7), epoch = $1, state = COALESCE($2, state), updated_at = $3,
		pending = CASE WHEN $6 = 3 THEN 0 WHEN $6 = 2 THEN pending + 1 ELSE pending END
		WHERE group_id = $4 AND epoch = $5 RETURNING head_seq, chain`,
		int64(next), state, unix(m.CreatedAt), m.GroupID, int64(m.Epoch), m.Kind, m.Data).Scan(&seq, &chain)
	if err := notFound(err); err == ErrNotFound {
		return 0, nil, fmt.Errorf("%w: the conversation is no longer at epoch %d", ErrConflict, m.Epoch)
	} else if err != nil {
		return 0, nil, err
	}
	if err := t.insertMessage(ctx, m, seq, chain); err != nil {
		return 0, nil, err
	}
	return seq, chain, nil
}

func (t *Tx) insertMessage(ctx context.Context, m ConversationMessage, seq int64, chain []byte) error {
	_, err := t.exec(ctx, `INSERT INTO conversation_messages (group_id, seq, epoch, kind, sender, data, created_at, chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		m.GroupID, seq, int64(m.Epoch), m.Kind, m.Sender, m.Data, unix(m.CreatedAt), chain)
	return err
}

// AppendApplicationMessage accepts an application message as the
// conversation's next, if the conversation is at epoch m.Epoch with no
// proposal pending: ErrConflict otherwise (the caller reads the
// conversation to say why). It is a transaction of its own, one statement
// where the database allows (one round trip to PostgreSQL). It returns the
// message's seq and the conversation's message chain after it.
func (s *Store) AppendApplicationMessage(ctx context.Context, m ConversationMessage) (int64, []byte, error) {
	var (
		seq   int64
		chain []byte
	)
	if s.dialect.ModifyingCTE() {
		err := s.UpdateOne(ctx, func(t *Tx) error {
			return t.queryRow(ctx, `WITH h AS (UPDATE conversations SET head_seq = head_seq + 1, chain = hotline_chain(chain, $6), updated_at = $1
				WHERE group_id = $2 AND epoch = $3 AND pending = 0 RETURNING head_seq, chain)
				INSERT INTO conversation_messages (group_id, seq, epoch, kind, sender, data, created_at, chain)
				SELECT $2, head_seq, $3, $4, $5, $6, $1, chain FROM h RETURNING seq, chain`,
				unix(m.CreatedAt), m.GroupID, int64(m.Epoch), m.Kind, m.Sender, m.Data).Scan(&seq, &chain)
		})
		if err := notFound(err); err == ErrNotFound {
			return 0, nil, fmt.Errorf("%w: the conversation is not at epoch %d with nothing pending", ErrConflict, m.Epoch)
		}
		return seq, chain, err
	}
	err := s.Update(ctx, func(t *Tx) error {
		var err error
		seq, chain, err = t.appendApplicationMessage(ctx, m)
		return err
	})
	return seq, chain, err
}

func (t *Tx) appendApplicationMessage(ctx context.Context, m ConversationMessage) (int64, []byte, error) {
	var (
		seq   int64
		chain []byte
	)
	err := t.queryRow(ctx, `UPDATE conversations SET head_seq = head_seq + 1, chain = hotline_chain(chain, $4), updated_at = $1
		WHERE group_id = $2 AND epoch = $3 AND pending = 0 RETURNING head_seq, chain`,
		unix(m.CreatedAt), m.GroupID, int64(m.Epoch), m.Data).Scan(&seq, &chain)
	if err := notFound(err); err == ErrNotFound {
		return 0, nil, fmt.Errorf("%w: the conversation is not at epoch %d with nothing pending", ErrConflict, m.Epoch)
	} else if err != nil {
		return 0, nil, err
	}
	if err := t.insertMessage(ctx, m, seq, chain); err != nil {
		return 0, nil, err
	}
	return seq, chain, nil
}

// PutConversationMember records that a device holds a leaf from JoinedSeq
// on, with everything up to JoinedSeq counted as acknowledged. A device
// that was in the conversation before is rejoined.
func (t *Tx) PutConversationMember(ctx context.Context, m ConversationMember) error {
	_, err := t.exec(ctx, `INSERT INTO conversation_members (group_id, device_id, user_id, leaf, joined_seq, left_seq, acked) VALUES ($1, $2, $3, $4, $5, 0, $5)
		ON CONFLICT (group_id, device_id) DO UPDATE SET user_id = excluded.user_id, leaf = excluded.leaf, joined_seq = excluded.joined_seq, left_seq = 0, acked = excluded.acked`,
		m.GroupID, m.Device, m.User.String(), int64(m.Leaf), m.JoinedSeq)
	return err
}

// LeaveConversation records that the commit at seq removed a device.
func (t *Tx) LeaveConversation(ctx context.Context, groupID []byte, device string, seq int64) error {
	return t.execOne(ctx, `UPDATE conversation_members SET left_seq = $1 WHERE group_id = $2 AND device_id = $3 AND left_seq = 0`, seq, groupID, device)
}

// ConversationMembers returns a conversation's current members by leaf.
func (t *Tx) ConversationMembers(ctx context.Context, groupID []byte) ([]ConversationMember, error) {
	return t.conversationMembers(ctx, `WHERE m.group_id = $1 AND m.left_seq = 0 ORDER BY m.leaf`, groupID)
}

// ConversationMember returns a device's row in a conversation, also after
// it left (ErrNotFound if it never was in it, or its last messages were
// delivered since).
func (t *Tx) ConversationMember(ctx context.Context, groupID []byte, device string) (ConversationMember, error) {
	ms, err := t.conversationMembers(ctx, `WHERE m.group_id = $1 AND m.device_id = $2`, groupID, device)
	if err != nil {
		return ConversationMember{}, err
	}
	if len(ms) == 0 {
		return ConversationMember{}, ErrNotFound
	}
	return ms[0], nil
}

// DeviceConversations returns a device's rows in every conversation it is
// in or has messages still to receive from, with each conversation's head
// and epoch.
func (t *Tx) DeviceConversations(ctx context.Context, device string) ([]ConversationMember, error) {
	return t.conversationMembers(ctx, `WHERE m.device_id = $1 ORDER BY m.group_id`, device)
}

// ConversationsWithLapsedMembers returns the conversations that have a
// lapsed member (see ConversationMember.Lapsed), up to limit.
func (t *Tx) ConversationsWithLapsedMembers(ctx context.Context, limit int) ([][]byte, error) {
	rows, err := t.query(ctx, `SELECT DISTINCT m.group_id FROM conversation_members m
		LEFT JOIN devices d ON d.id = m.device_id
		LEFT JOIN users u ON u.id = m.user_id
		WHERE m.left_seq = 0 AND (d.status IS NULL OR d.status <> 'active' OR u.disabled IS NULL OR u.disabled <> 0)
		ORDER BY m.group_id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var g []byte
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func (t *Tx) conversationMembers(ctx context.Context, where string, args ...any) ([]ConversationMember, error) {
	rows, err := t.query(ctx, `SELECT m.group_id, m.device_id, m.user_id, m.leaf, m.joined_seq, m.left_seq, m.acked, c.head_seq, c.epoch,
		CASE WHEN d.status IS NULL OR d.status <> 'active' OR u.disabled IS NULL OR u.disabled <> 0 THEN 1 ELSE 0 END
		FROM conversation_members m JOIN conversations c ON c.group_id = m.group_id
		LEFT JOIN devices d ON d.id = m.device_id
		LEFT JOIN users u ON u.id = m.user_id `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ConversationMember
	for rows.Next() {
		var (
			m           ConversationMember
			leaf, epoch int64
			lapsed      int
			user        string
		)
		if err := rows.Scan(&m.GroupID, &m.Device, &user, &leaf, &m.JoinedSeq, &m.LeftSeq, &m.Acked, &m.HeadSeq, &epoch, &lapsed); err != nil {
			return nil, err
		}
		m.Leaf, m.Epoch, m.Lapsed = uint32(leaf), uint64(epoch), lapsed != 0
		if m.User, err = identity.ParseUserID(user); err != nil {
			return nil, fmt.Errorf("stored conversation member: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ConversationMessages returns up to limit messages of a conversation with
// after < seq <= upTo (upTo 0: no upper bound), in order.
func (t *Tx) ConversationMessages(ctx context.Context, groupID []byte, after, upTo int64, limit int) ([]ConversationMessage, error) {
	if upTo <= 0 {
		upTo = 1<<63 - 1
	}
	rows, err := t.query(ctx, `SELECT seq, epoch, kind, sender, data, created_at, chain FROM conversation_messages
		WHERE group_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`, groupID, after, upTo, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ConversationMessage
	for rows.Next() {
		m := ConversationMessage{GroupID: groupID}
		var epoch, at int64
		if err := rows.Scan(&m.Seq, &epoch, &m.Kind, &m.Sender, &m.Data, &at, &m.Chain); err != nil {
			return nil, err
		}
		m.Epoch, m.CreatedAt = uint64(epoch), fromUnix(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// AckConversation records that a device has handled a conversation's
// messages up to seq (never moving back, never past the head, nor past
// the commit that removed it). A device that left and has acknowledged
// that commit is forgotten.
func (t *Tx) AckConversation(ctx context.Context, groupID []byte, device string, seq int64) error {
	if _, err := t.exec(ctx, `UPDATE conversation_members SET acked = $1
		WHERE group_id = $2 AND device_id = $3 AND acked < $1
		AND $1 <= (SELECT head_seq FROM conversations WHERE group_id = $2) AND (left_seq = 0 OR $1 <= left_seq)`,
		seq, groupID, device); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM conversation_members WHERE group_id = $1 AND device_id = $2 AND left_seq > 0 AND acked >= left_seq`, groupID, device)
	return err
}

// PruneConversations forgets devices that left a conversation and will
// never acknowledge its last messages (revoked, or gone from the
// directory), then deletes the messages every remaining device has
// acknowledged. It returns how many messages it deleted.
func (t *Tx) PruneConversations(ctx context.Context) (int64, error) {
	if _, err := t.exec(ctx, `DELETE FROM conversation_members WHERE left_seq > 0
		AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = conversation_members.device_id AND d.status = 'active')`); err != nil {
		return 0, err
	}
	res, err := t.exec(ctx, `DELETE FROM conversation_messages WHERE seq <= COALESCE(
		(SELECT MIN(m.acked) FROM conversation_members m WHERE m.group_id = conversation_messages.group_id),
		(SELECT c.head_seq FROM conversations c WHERE c.group_id = conversation_messages.group_id))`)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// UnloggedChains returns, up to limit, the conversations whose head has
// moved past the one last committed to the transparency log
// (SetChainLogged), with their head's seq and chain, in the order of
// their group IDs from the first after after (nil: from the start). A
// conversation made before the chain existed is left out until its next
// message. It reads every conversation's row: an index on the comparison
// would have to change with every message.
func (t *Tx) UnloggedChains(ctx context.Context, after []byte, limit int) ([]ChainHead, error) {
	where, args := "", []any{limit}
	if after != nil {
		where, args = " AND group_id > $2", append(args, after)
	}
	rows, err := t.query(ctx, `SELECT group_id, head_seq, chain FROM conversations
		WHERE head_seq > chain_logged AND chain IS NOT NULL`+where+` ORDER BY group_id LIMIT $1`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ChainHead
	for rows.Next() {
		var h ChainHead
		if err := rows.Scan(&h.GroupID, &h.Seq, &h.Chain); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// SetChainLogged records that the transparency log commits a
// conversation's chain up to seq; it never moves back. It reports whether
// it moved.
func (t *Tx) SetChainLogged(ctx context.Context, groupID []byte, seq int64) (bool, error) {
	res, err := t.exec(ctx, `UPDATE conversations SET chain_logged = $1 WHERE group_id = $2 AND chain_logged < $1 AND $1 <= head_seq`, seq, groupID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
