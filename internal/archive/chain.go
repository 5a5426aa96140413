package archive

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"hotline/internal/client"
)

// The store's chain index, CONV/chain: one line per message of the
// conversation the archive handled, in order,
//
//	SEQ TIME CHAIN r|- DIGEST
//
// with the time the server accepted it (unix seconds), the conversation's
// message chain after it (hex; see conversation.ChainNext), whether it
// was sealed as a record ("r") or held nothing to keep ("-": a key update,
// a checkpoint, a message refused), and the SHA-256 of the message as the
// server held it (hex), from which the chain after it follows from the
// chain before it (lines written before the digest was kept end at the
// mark). It holds times and hashes of ciphertexts only. Checked against the chain heads the transparency log
// commits, it proves the store holds every message up to a head: a
// missing, extra or different message shows. The times say which records
// a retention schedule lets go (retention.go).

// Link is one line of the index.
type Link struct {
	Conversation string
	Seq          int64
	Time         time.Time
	Chain        []byte
	Recorded     bool
	// Digest is the message's SHA-256 (nil in lines written before it was
	// kept).
	Digest []byte
}

// Index notes that the archive handled a message, durably.
func (s *Store) Index(l Link) error {
	if !convName.MatchString(l.Conversation) || l.Seq <= 0 || len(l.Chain) != 32 || (l.Digest != nil && len(l.Digest) != 32) {
		return fmt.Errorf("%w: conversation %q, seq %d", ErrMalformed, l.Conversation, l.Seq)
	}
	return s.appendLine(l.Conversation, "chain", l.line())
}

// appendLine appends a line to one of a conversation's notes (chain,
// blobs, calls), durably.
func (s *Store) appendLine(conv, file, line string) error {
	dir := filepath.Join(s.dir, conv)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ChainIndex reads a conversation's index. A message handled twice (the
// archive stopped between noting it and saving its state) appears twice
// with the same chain; the later line stands.
func (s *Store) ChainIndex(conv string) ([]Link, error) {
	if !convName.MatchString(conv) {
		return nil, fmt.Errorf("%w: conversation %q", ErrMalformed, conv)
	}
	f, err := os.Open(filepath.Join(s.dir, conv, "chain"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Link
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l, err := parseLink(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s/chain line %d: %w", conv, n, err)
		}
		l.Conversation = conv
		if k := len(out); k > 0 && out[k-1].Seq == l.Seq {
			out[k-1] = l
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// line is l as an index line, with its newline.
func (l Link) line() string {
	mark := "-"
	if l.Recorded {
		mark = "r"
	}
	if l.Digest == nil {
		return fmt.Sprintf("%d %d %x %s\n", l.Seq, l.Time.Unix(), l.Chain, mark)
	}
	return fmt.Sprintf("%d %d %x %s %x\n", l.Seq, l.Time.Unix(), l.Chain, mark, l.Digest)
}

func parseLink(line string) (Link, error) {
	f := strings.Fields(line)
	if (len(f) != 4 && len(f) != 5) || (f[3] != "r" && f[3] != "-") {
		return Link{}, fmt.Errorf("%w: index line %q", ErrMalformed, line)
	}
	seq, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || seq <= 0 {
		return Link{}, fmt.Errorf("%w: index seq %q", ErrMalformed, f[0])
	}
	at, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || at < 0 {
		return Link{}, fmt.Errorf("%w: index time %q", ErrMalformed, f[1])
	}
	chain, err := hex.DecodeString(f[2])
	if err != nil || len(chain) != 32 {
		return Link{}, fmt.Errorf("%w: index chain %q", ErrMalformed, f[2])
	}
	l := Link{Seq: seq, Time: time.Unix(at, 0).UTC(), Chain: chain, Recorded: f[3] == "r"}
	if len(f) == 5 {
		if l.Digest, err = hex.DecodeString(f[4]); err != nil || len(l.Digest) != 32 {
			return Link{}, fmt.Errorf("%w: index digest %q", ErrMalformed, f[4])
		}
	}
	return l, nil
}

// Head is a conversation's chain head as the transparency log commits it,
// as a device's verified view of the log holds it (client.ChainHeads).
type Head = client.ChainHead

// Check is what Verify found for one conversation of the store.
type Check struct {
	Conversation string `json:"conversation"`
	// First and Last are the first and last messages the index holds;
	// Records how many of them are sealed records.
	First   int64 `json:"first"`
	Last    int64 `json:"last"`
	Records int   `json:"records"`
	// Calls: the calls the log records as answered since the archive's
	// first message, which the store must hold (VerifyCalls).
	Calls int `json:"calls,omitempty"`
	// Expired: the records through this message were let go under the
	// retention schedule (see Store.Expire).
	Expired int64 `json:"expired,omitempty"`
	// Head is the log's newest head of the conversation, if any.
	HeadSeq   int64 `json:"head_seq,omitempty"`
	HeadIndex int64 `json:"head_index,omitempty"`
	// Complete: the store holds every message from First through the
	// log's head, as the log commits them.
	Complete bool `json:"complete"`
	// Problems say what is wrong, each starting with a stable code: gap,
	// broken, missing, unindexed, unexpired, mismatch, behind, unlogged, before,
	// index; and, from VerifyCalls, unrecorded.
	Problems []string `json:"problems,omitempty"`
}

// Verify checks every conversation of the store against the newest chain
// head the log commits of it (heads, by conversation ID), and against the
// calls the log records of it (calls, by conversation ID; see verifyCalls).
func (s *Store) Verify(heads map[string]Head, calls map[string][]client.LoggedCall) ([]Check, error) {
	cs, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []Check
	for _, c := range cs {
		out = append(out, s.verifyOne(c, heads, calls[c.ID]))
	}
	return out, nil
}

func (s *Store) verifyOne(c Conversation, heads map[string]Head, calls []client.LoggedCall) Check {
	ch := Check{Conversation: c.ID}
	problem := func(format string, args ...any) { ch.Problems = append(ch.Problems, fmt.Sprintf(format, args...)) }
	links, err := s.ChainIndex(c.ID)
	if err != nil {
		problem("index: %v", err)
		return ch
	}
	if len(links) == 0 {
		problem("index: no chain index, so nothing can be proven complete")
		return ch
	}
	ch.First, ch.Last = links[0].Seq, links[len(links)-1].Seq
	if ch.Expired, err = s.Expired(c.ID); err != nil {
		problem("index: %v", err)
	}
	indexed := map[int64]Link{}
	for i, l := range links {
		if i > 0 && l.Seq != links[i-1].Seq+1 {
			if l.Seq < links[i-1].Seq {
				problem("index: #%d after #%d", l.Seq, links[i-1].Seq)
			} else {
				problem("gap: #%d–#%d are not in the index", links[i-1].Seq+1, l.Seq-1)
			}
		} else if i > 0 && l.Digest != nil && !bytes.Equal(chainAfter(links[i-1].Chain, l.Digest), l.Chain) {
			problem("broken: #%d does not follow from #%d and its message's digest", l.Seq, links[i-1].Seq)
		}
		indexed[l.Seq] = l
		if l.Recorded && l.Seq > ch.Expired {
			ch.Records++
			if !slices.Contains(c.Seqs, l.Seq) {
				problem("missing: record #%d is not in the store", l.Seq)
			}
		}
	}
	for _, seq := range c.Seqs {
		if seq <= ch.Expired {
			problem("unexpired: record #%d is still in the store after its expiry", seq)
		} else if l, ok := indexed[seq]; !ok || !l.Recorded {
			problem("unindexed: record #%d is in the store but not in the index", seq)
		}
	}
	h, ok := heads[c.ID]
	switch {
	case !ok:
		problem("unlogged: the log commits no head of this conversation yet")
	case h.Seq > ch.Last:
		ch.HeadSeq, ch.HeadIndex = h.Seq, h.Index
		problem("behind: the log commits #%d; the store ends at #%d", h.Seq, ch.Last)
	case h.Seq < ch.First:
		ch.HeadSeq, ch.HeadIndex = h.Seq, h.Index
		problem("before: the log's newest head, #%d, precedes the store's first message, #%d", h.Seq, ch.First)
	default:
		ch.HeadSeq, ch.HeadIndex = h.Seq, h.Index
		if !bytes.Equal(indexed[h.Seq].Chain, h.Chain) {
			problem("mismatch: at #%d the store's chain differs from the log's: it holds other messages than the server committed", h.Seq)
		}
	}
	if err := s.verifyCalls(&ch, links, calls); err != nil {
		problem("index: %v", err)
	}
	ch.Complete = len(ch.Problems) == 0
	return ch
}
