package archive

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"filippo.io/age"

	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/trace"
)

// A grantee's copy of records is marked for them, as a memorandum's
// copies are for their recipients (internal/trace): the text of each
// message and each memorandum's summary carry the grantee's wording and
// invisible tag, under a key of each record's own derived from the grant.
// The grant's key is derived from the records key and the grant's ID, so
// nothing more is kept: the records officer, and only they, derive it
// again to trace a leak (TraceGrants).

// GrantKey is the marking key of a grant.
func GrantKey(id *age.HybridIdentity, grant string) []byte {
	seed := sha256.Sum256([]byte("hotline grant marks v1\x00" + id.String()))
	m := hmac.New(sha256.New, seed[:])
	m.Write([]byte(grant))
	return m.Sum(nil)
}

// recordKey is the marking key of one record of a grant.
func recordKey(grantKey []byte, seq int64) []byte {
	m := hmac.New(sha256.New, grantKey)
	m.Write([]byte("record\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	return m.Sum(nil)
}

// markable returns the text of a record that carries marks ("" for none),
// and the record with a marked text put back.
func markable(r Record) (string, func(string) Record) {
	switch r.Kind {
	case "text":
		return r.Text, func(s string) Record { r.Text = s; return r }
	case "desk":
		d, err := desk.ParseDoc(r.Data)
		if err != nil || d.MemCon == nil {
			return "", nil
		}
		return d.MemCon.Summary, func(s string) Record {
			m := *d.MemCon
			m.Summary = s
			d.MemCon = &m
			if b, err := d.Marshal(); err == nil {
				r.Data = b
			}
			return r
		}
	}
	return "", nil
}

// Grantable returns the records of recs a grant gives: all but a
// memorandum's marking key (a marks document), which is not part of a
// record's content; with it a grantee could read, or unmake, the marks of
// the memorandum's copies.
func Grantable(recs []Record) []Record {
	return slices.DeleteFunc(slices.Clone(recs), func(r Record) bool {
		if r.Kind != "desk" {
			return false
		}
		d, err := desk.ParseDoc(r.Data)
		return err == nil && d.Type == desk.DocMarks
	})
}

// MarkGrant returns the grantee's copy of recs (Grantable's) under a
// grant's key: each markable text marked for them.
func MarkGrant(key []byte, grantee string, recs []Record) []Record {
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		if text, put := markable(r); text != "" {
			r = put(trace.Mark(recordKey(key, r.Seq), grantee, text))
		}
		out = append(out, r)
	}
	return out
}

// Granted is a grant as the server lists it: whose copy of which
// conversation's records.
type Granted struct {
	ID, Grantee, Conversation string
}

// TraceGrants reads the marks in leaked against every grantee's copy of
// the records granted: for each conversation granted, the copies of all
// its grants are traced together (each named "GRANTEE (grant ID)"). The
// most telling tracing comes first; none means no granted copy matches.
func (s *Store) TraceGrants(id *age.HybridIdentity, grants []Granted, leaked string) ([]client.Tracing, error) {
	byConv := map[string][]Granted{}
	for _, g := range grants {
		byConv[g.Conversation] = append(byConv[g.Conversation], g)
	}
	var out []client.Tracing
	for _, conv := range slices.Sorted(maps.Keys(byConv)) {
		if !s.HasConversation(conv) {
			continue
		}
		recs, err := s.ReadConversation(id, conv)
		if err != nil {
			return nil, err
		}
		var docs []string
		var seqs []int64
		for _, r := range recs {
			if text, _ := markable(r); text != "" {
				docs, seqs = append(docs, text), append(seqs, r.Seq)
			}
		}
		if len(docs) == 0 {
			continue
		}
		var copies []trace.Copy
		for _, g := range byConv[conv] {
			key := GrantKey(id, g.ID)
			cp := trace.Copy{Recipient: g.Grantee, Label: fmt.Sprintf("%s (grant %s)", g.Grantee, g.ID)}
			for _, seq := range seqs {
				cp.Keys = append(cp.Keys, recordKey(key, seq))
			}
			copies = append(copies, cp)
		}
		t := trace.TraceCopies(docs, copies, leaked)
		if t.Observed == 0 && t.Likely == "" {
			continue
		}
		out = append(out, client.Tracing{Conversation: conv, Subject: "records of " + conv + ", as granted", Result: t})
	}
	slices.SortStableFunc(out, func(a, b client.Tracing) int {
		return cmp.Or(cmp.Compare(b.Observed, a.Observed), cmp.Compare(top(b), top(a)))
	})
	return out, nil
}
