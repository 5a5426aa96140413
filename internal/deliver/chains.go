package deliver

import (
	"context"
	"encoding/base64"

	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Completeness. The store hash-chains each conversation's messages as it
// numbers them (conversation.ChainNext; every delivered message carries
// the chain after it), and CommitChains commits the chain's head to the
// transparency log now and then: a conversation.chain entry says "the
// conversation's messages 1..Count chain to Chain". A member that holds
// every message up to a committed head can prove it (the archive above
// all); one the server left out, added or changed shows, whatever the
// server says later. Messages pruned since do not matter: the head's
// chain is kept on the conversation.

// chainBatch is how many heads CommitChains commits in one transaction.
const chainBatch = 100

// CommitChains writes a conversation.chain entry for every conversation
// whose head moved since its last one, and returns how many it wrote. Each
// conversation is looked at once per call (one that moves meanwhile waits
// for the next). Several nodes may run it at once: a head is logged once.
func (s *Service) CommitChains(ctx context.Context) (int, error) {
	var (
		after []byte
		total int
	)
	for {
		var heads []store.ChainHead
		if err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
			heads, err = tx.UnloggedChains(ctx, after, chainBatch)
			return err
		}); err != nil {
			return total, err
		}
		if len(heads) == 0 {
			return total, nil
		}
		var n int
		err := s.update(ctx, func(tx *store.Tx, ts *txState) error {
			n = 0
			now := s.cfg.Now()
			for _, h := range heads {
				moved, err := tx.SetChainLogged(ctx, h.GroupID, h.Seq)
				if err != nil {
					return err
				}
				if !moved {
					continue // another node logged this head, or a newer one
				}
				if err := ts.logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeConversationChain, Conversation: ConversationID(h.GroupID),
					Count: int(h.Seq), Chain: base64.StdEncoding.EncodeToString(h.Chain)}); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if len(heads) < chainBatch {
			return total, nil
		}
		after = heads[len(heads)-1].GroupID
	}
}
