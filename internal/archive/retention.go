package archive

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Retention: the records officer sets how long the records of each
// classification level are kept, and places legal holds, which suspend
// every deletion of the conversations they cover; both are transparency-
// log entries, which the archive reads from its verified view of the log,
// not from the server's word. Once a record's message is older than its
// level's retention and no hold covers its conversation, the archive logs
// the expiry (records.expire) and then deletes it: CONV/expired says
// through which message records were let go, so that Verify counts them
// as expired rather than missing.

// Policy is the organisation's records policy, as the log says it.
type Policy struct {
	// Retention is how long records of each classification level (by
	// its token, such as "secret") are kept; a level without one is kept
	// for good.
	Retention map[string]time.Duration
	// Holds are the legal holds in force, by ID: each holds one
	// conversation, or every conversation ("").
	Holds map[string]string
}

// Held returns the holds in force on a conversation.
func (p Policy) Held(conv string) []string {
	var out []string
	for id, c := range p.Holds {
		if c == "" || c == conv {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Expiry is what a retention schedule lets go of one conversation: its
// records through message Through (Records of them are still in the store).
type Expiry struct {
	Conversation string  `json:"conversation"`
	Through      int64   `json:"through"`
	Records      []int64 `json:"records"`
}

// Expirable finds the records the policy lets go at now: in each
// conversation, those of the messages the server accepted before now less
// the retention of its level (level(conv); a conversation whose level is
// unknown or has no schedule is kept), unless a hold covers it. The index
// is in the server's order, so what expires is a prefix of it.
func (s *Store) Expirable(p Policy, level func(conv string) string, now time.Time) ([]Expiry, error) {
	cs, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []Expiry
	for _, c := range cs {
		keep, ok := p.Retention[level(c.ID)]
		if !ok || len(p.Held(c.ID)) > 0 {
			continue
		}
		links, err := s.ChainIndex(c.ID)
		if err != nil {
			return nil, err
		}
		done, err := s.Expired(c.ID)
		if err != nil {
			return nil, err
		}
		cut := now.Add(-keep)
		var through int64
		for _, l := range links {
			if !l.Time.Before(cut) {
				break
			}
			through = l.Seq
		}
		if through <= done {
			continue
		}
		e := Expiry{Conversation: c.ID, Through: through}
		for _, seq := range c.Seqs {
			if seq <= through {
				e.Records = append(e.Records, seq)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// Expired returns the message through which a conversation's records were
// let go (0: none).
func (s *Store) Expired(conv string) (int64, error) {
	if !convName.MatchString(conv) {
		return 0, fmt.Errorf("%w: conversation %q", ErrMalformed, conv)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, conv, "expired"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s/expired", ErrMalformed, conv)
	}
	return n, nil
}

// Expire lets go of a conversation's records through message through: it
// writes the mark first, then deletes the records, their attachments'
// ciphertexts, and the calls that rang before the next message (their
// records and audio; see NoteCall), so an interrupted expiry finishes on
// the next. The caller has
// logged the expiry. The index stays: it proves what was there.
func (s *Store) Expire(conv string, through int64) error {
	done, err := s.Expired(conv)
	if err != nil {
		return err
	}
	if through < done {
		through = done
	}
	if err := writeFile(filepath.Join(s.dir, conv, "expired"), []byte(strconv.FormatInt(through, 10)+"\n")); err != nil {
		return err
	}
	blobs, err := s.blobsOf(conv)
	if err != nil {
		return err
	}
	seqs, err := s.seqsOf(conv)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if seq > through {
			break
		}
		if err := os.Remove(filepath.Join(s.dir, conv, recordName(seq))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for seq, id := range blobs {
		if seq <= through {
			if err := os.Remove(filepath.Join(s.dir, "blobs", id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return s.expireCalls(conv, through)
}

// NoteBlob notes which message sent an attachment (CONV/blobs: SEQ BLOB),
// so that its ciphertext expires with the record.
func (s *Store) NoteBlob(conv string, seq int64, blob string) error {
	if !convName.MatchString(conv) || !blobName.MatchString(blob) || seq <= 0 {
		return fmt.Errorf("%w: blob %q of %s #%d", ErrMalformed, blob, conv, seq)
	}
	return s.appendLine(conv, "blobs", fmt.Sprintf("%d %s\n", seq, blob))
}

func (s *Store) blobsOf(conv string) (map[int64]string, error) {
	out := map[int64]string{}
	f, err := os.Open(filepath.Join(s.dir, conv, "blobs"))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		seqStr, id, ok := strings.Cut(sc.Text(), " ")
		seq, err := strconv.ParseInt(seqStr, 10, 64)
		if !ok || err != nil || !blobName.MatchString(id) {
			return nil, fmt.Errorf("%w: %s/blobs line %q", ErrMalformed, conv, sc.Text())
		}
		out[seq] = id
	}
	return out, sc.Err()
}
