package store

import (
	"context"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// Conversation is the delivery service's record of one MLS group: its
// public state (the ratchet tree, GroupContext and transcript hash: no
// secret, no content) and the classification it acts on.
type Conversation struct {
	GroupID      []byte
	CipherSuite  uint16
	Epoch        uint64
	State        []byte // mls.PublicGroup's encoding
	Level        identity.Clearance
	Compartments identity.Compartments
	CreatedBy    string // device
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// ConversationMember says which device holds a leaf.
type ConversationMember struct {
	GroupID []byte
	Leaf    uint32
	Device  string
	User    identity.UserID
}

// CreateConversation records a new conversation; ErrConflict if its group
// ID is taken.
func (t *Tx) CreateConversation(ctx context.Context, c Conversation) error {
	return t.insertNew(ctx, `INSERT INTO conversations (group_id, cipher_suite, epoch, state, level, compartments, created_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		c.GroupID, int(c.CipherSuite), int64(c.Epoch), c.State, int(c.Level), c.Compartments.String(), c.CreatedBy, unix(c.CreatedAt), unix(c.UpdatedAt))
}

// GetConversation returns a conversation, locking it in a read-write
// transaction: commits to one conversation are applied one at a time.
func (t *Tx) GetConversation(ctx context.Context, groupID []byte) (Conversation, error) {
	c := Conversation{GroupID: groupID}
	var (
		suite, level     int
		epoch            int64
		comps            string
		created, updated int64
	)
	err := t.queryRow(ctx, `SELECT cipher_suite, epoch, state, level, compartments, created_by, created_at, updated_at
		FROM conversations WHERE group_id = $1`+t.forUpdate(), groupID).
		Scan(&suite, &epoch, &c.State, &level, &comps, &c.CreatedBy, &created, &updated)
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

// AdvanceConversation stores a conversation's next state, if its epoch is
// still from: ErrConflict otherwise (another commit won).
func (t *Tx) AdvanceConversation(ctx context.Context, groupID []byte, from, to uint64, state []byte, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE conversations SET epoch = $1, state = $2, updated_at = $3 WHERE group_id = $4 AND epoch = $5`,
		int64(to), state, unix(at), groupID, int64(from))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("%w: the conversation is no longer at epoch %d", ErrConflict, from)
	}
	return nil
}

// SetConversationState stores a conversation's state within its epoch
// (after a proposal was cached).
func (t *Tx) SetConversationState(ctx context.Context, groupID []byte, epoch uint64, state []byte, at time.Time) error {
	return t.AdvanceConversation(ctx, groupID, epoch, epoch, state, at)
}

// PutConversationMember records which device holds a leaf, replacing any
// previous holder.
func (t *Tx) PutConversationMember(ctx context.Context, m ConversationMember) error {
	_, err := t.exec(ctx, `INSERT INTO conversation_members (group_id, leaf, device_id, user_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (group_id, leaf) DO UPDATE SET device_id = excluded.device_id, user_id = excluded.user_id`,
		m.GroupID, int64(m.Leaf), m.Device, m.User.String())
	return err
}

// RemoveConversationMember forgets a leaf's holder.
func (t *Tx) RemoveConversationMember(ctx context.Context, groupID []byte, leaf uint32) error {
	_, err := t.exec(ctx, `DELETE FROM conversation_members WHERE group_id = $1 AND leaf = $2`, groupID, int64(leaf))
	return err
}

// ConversationMembers returns a conversation's members by leaf.
func (t *Tx) ConversationMembers(ctx context.Context, groupID []byte) ([]ConversationMember, error) {
	return t.conversationMembers(ctx, `m WHERE m.group_id = $1 ORDER BY m.leaf`, groupID)
}

// DeviceConversations returns the leaves a device holds, in every
// conversation.
func (t *Tx) DeviceConversations(ctx context.Context, device string) ([]ConversationMember, error) {
	return t.conversationMembers(ctx, `m WHERE m.device_id = $1 ORDER BY m.group_id`, device)
}

// LapsedConversationMembers returns a conversation's members who may no
// longer be in it: their device is not active (revoked, or unknown) or their
// user is disabled. The delivery service proposes their removal and holds
// application messages until a commit removes them.
func (t *Tx) LapsedConversationMembers(ctx context.Context, groupID []byte) ([]ConversationMember, error) {
	return t.conversationMembers(ctx, `m
		LEFT JOIN devices d ON d.id = m.device_id
		LEFT JOIN users u ON u.id = m.user_id
		WHERE m.group_id = $1 AND (d.status IS NULL OR d.status <> 'active' OR u.disabled IS NULL OR u.disabled <> 0)
		ORDER BY m.leaf`, groupID)
}

func (t *Tx) conversationMembers(ctx context.Context, where string, arg any) ([]ConversationMember, error) {
	rows, err := t.query(ctx, `SELECT m.group_id, m.leaf, m.device_id, m.user_id FROM conversation_members `+where, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ConversationMember
	for rows.Next() {
		var (
			m    ConversationMember
			leaf int64
			user string
		)
		if err := rows.Scan(&m.GroupID, &leaf, &m.Device, &user); err != nil {
			return nil, err
		}
		m.Leaf = uint32(leaf)
		if m.User, err = identity.ParseUserID(user); err != nil {
			return nil, fmt.Errorf("stored conversation member: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
