package trace

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hotline/internal/trace/edit"
)

// corpus reads the evaluation corpus: documents written, with the edit
// model, before the marking code.
func corpus(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*.txt")
	if err != nil || len(files) < 20 {
		t.Fatalf("the corpus: %d files, %v", len(files), err)
	}
	docs := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(f)] = string(b)
	}
	return docs
}

func docKey(name string) []byte {
	k := sha256.Sum256([]byte("evaluation key\x00" + name))
	return k[:]
}

func people(domain string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("r%02d@%s", i+1, domain)
	}
	return out
}

// The evaluation the records issue sets: over 24 recipients of every
// document of the corpus, an excerpt of three paragraphs of a copy,
// retyped (whitespace and invisible characters gone) with 3 % of its
// words changed, names its recipient at least 95 % of the time; and
// excerpts of copies that went to none of them (24 others per document)
// accuse nobody.
func TestEvaluation(t *testing.T) {
	docs := corpus(t)
	recipients := people("state.example", 24)
	outsiders := people("elsewhere.example", 24)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range docs {
			if !yield(n) {
				return
			}
		}
	})
	var right, wrong, none, accused, falseAccusations, tries, observed, slotsTotal int
	minObserved := 1 << 30
	for _, name := range names {
		doc, key := docs[name], docKey(name)
		p := prepare(doc)
		slotsTotal += len(p.slots)
		for i, r := range recipients {
			rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(i)))
			leaked := edit.Evaluation.Leak(Mark(key, r, doc), rng)
			res := p.trace(key, recipients, leaked)
			tries++
			observed += res.Observed
			minObserved = min(minObserved, res.Observed)
			switch res.Likely {
			case r:
				right++
			case "":
				none++
			default:
				wrong++
			}
			switch res.Accused {
			case r:
				accused++
			case "":
			default:
				t.Errorf("%s: %s's excerpt accuses %s: %+v", name, r, res.Accused, res.Suspects[:2])
			}
		}
		for i, x := range outsiders {
			rng := rand.New(rand.NewPCG(uint64(len(name))+1000, uint64(i)))
			res := p.trace(key, recipients, edit.Evaluation.Leak(Mark(key, x, doc), rng))
			if res.Accused != "" {
				falseAccusations++
				t.Errorf("%s: an outsider's excerpt accuses %s: %+v", name, res.Accused, res.Suspects[0])
			}
		}
	}
	rate := float64(right) / float64(tries)
	t.Logf("%d documents, %.1f marked places each; %d excerpts: %d named their recipient as the most likely (%.1f %%), %d named nobody, %d someone else; %d (%.1f %%) accused their recipient at confidence %v; %.1f places read per excerpt (fewest %d); %d excerpts of outsiders' copies, %d accusations",
		len(docs), float64(slotsTotal)/float64(len(docs)), tries, right, 100*rate, none, wrong, accused, 100*float64(accused)/float64(tries), AccuseAt,
		float64(observed)/float64(tries), minObserved, len(docs)*len(outsiders), falseAccusations)
	if rate < 0.95 {
		t.Errorf("%.1f %% of excerpts attributed, want at least 95 %%", 100*rate)
	}
}

// A copy pasted as it is names its recipient by the invisible tag too;
// the original, unmarked, names nobody.
func TestWholeCopies(t *testing.T) {
	docs := corpus(t)
	recipients := people("state.example", 24)
	for name, doc := range docs {
		key := docKey(name)
		for _, r := range recipients[:4] {
			res := Trace(key, doc, recipients, Mark(key, r, doc))
			if res.Accused != r || !res.Suspects[0].Invisible {
				t.Errorf("%s: %s's pasted copy: %+v", name, r, res)
			}
			if res := Trace(key, doc, recipients, edit.Retype(Mark(key, r, doc))); res.Accused != r || res.Suspects[0].Invisible {
				t.Errorf("%s: %s's retyped copy: %+v", name, r, res)
			}
		}
		if res := Trace(key, doc, recipients, doc); res.Accused != "" {
			t.Errorf("%s: the unmarked original accuses %s", name, res.Accused)
		}
	}
}

// A copy differs from the original only at the places the rules found,
// each now one of its variants, and in the invisible tags: the words
// between them are the original's.
func TestMarkChangesOnlySlots(t *testing.T) {
	for name, doc := range corpus(t) {
		key := docKey(name)
		copy := Mark(key, "someone@state.example", doc)
		var plain strings.Builder
		for _, r := range copy {
			if !slices.Contains(zw[:], r) {
				plain.WriteRune(r)
			}
		}
		ss := findSlots(doc)
		at, pos := 0, 0
		got := plain.String()
		for i, s := range ss {
			between := doc[at:s.start]
			if !strings.HasPrefix(got[pos:], between) {
				t.Fatalf("%s: the copy differs before slot %d (%s)", name, i, s.r.name)
			}
			pos += len(between)
			v := s.variants[choose(key, "someone@state.example", i, len(s.variants))]
			if !s.r.cased {
				v = withCase(v, doc[s.start:s.end])
			}
			if !strings.HasPrefix(got[pos:], v) {
				t.Fatalf("%s: slot %d (%s) is not its variant %q", name, i, s.r.name, v)
			}
			pos += len(v)
			at = s.end
		}
		if got[pos:] != doc[at:] {
			t.Fatalf("%s: the copy differs after the last slot", name)
		}
	}
}

func FuzzTrace(f *testing.F) {
	f.Add("The minister did not agree; 40 percent, Mr. Halvorsen said that Norland, Vesta and Ostmark would not.", "did not")
	f.Add("", "\u200b\u200c")
	f.Fuzz(func(t *testing.T, doc, leaked string) {
		key := []byte("k")
		c := Mark(key, "a", doc)
		if Mark(key, "a", doc) != c {
			t.Fatal("Mark is not deterministic")
		}
		res := Trace(key, doc, []string{"a", "b"}, leaked)
		if len(res.Suspects) != 2 || res.Observed > res.Slots {
			t.Fatalf("result %+v", res)
		}
		for _, s := range res.Suspects {
			if s.Confidence < 0 || s.Confidence > 1 || s.Matches > s.Observed {
				t.Fatalf("suspect %+v", s)
			}
		}
	})
}

// Documents traced together, each marked under a key of its own (the
// records of a grant: one message a paragraph): a retyped, lightly edited
// excerpt of three of a recipient's documents names that recipient as
// it does for one document; copies that none of them received accuse
// nobody; and one document's places do not stand in for another's.
func TestTraceCopies(t *testing.T) {
	docs := corpus(t)
	recipients := people("state.example", 24)
	outsider := people("elsewhere.example", 8)
	keyOf := func(r string, part int) []byte {
		k := sha256.Sum256(fmt.Appendf(nil, "grant key %s %d", r, part))
		return k[:]
	}
	copyOf := func(r string) Copy {
		c := Copy{Recipient: r}
		for i := range 64 {
			c.Keys = append(c.Keys, keyOf(r, i))
		}
		return c
	}
	copies := make([]Copy, len(recipients))
	for i, r := range recipients {
		copies[i] = copyOf(r)
	}
	var right, tries, accused int
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range docs {
			if !yield(n) {
				return
			}
		}
	})[:10] {
		parts := edit.Paragraphs(docs[name])
		if len(parts) > 64 {
			parts = parts[:64]
		}
		ps := make([]*prepared, len(parts))
		for i, p := range parts {
			ps[i] = prepare(p)
		}
		excerpt := func(r string, rng *rand.Rand) string {
			at := rng.IntN(max(1, len(parts)-2))
			var marked []string
			for i := at; i < min(at+3, len(parts)); i++ {
				marked = append(marked, Mark(keyOf(r, i), r, parts[i]))
			}
			return edit.Light(edit.Retype(strings.Join(marked, "\n\n")), 0.03, rng)
		}
		for i, r := range recipients {
			res := traceCopies(ps, copies, excerpt(r, rand.New(rand.NewPCG(uint64(i), uint64(len(name))))))
			tries++
			if res.Likely == r {
				right++
			}
			if res.Accused != "" && res.Accused != r {
				t.Errorf("%s: %s's excerpt accuses %s", name, r, res.Accused)
			}
			if res.Accused == r {
				accused++
			}
		}
		for i, x := range outsider {
			if res := traceCopies(ps, copies, excerpt(x, rand.New(rand.NewPCG(uint64(i)+99, 7)))); res.Accused != "" {
				t.Errorf("%s: an outsider's excerpt accuses %s", name, res.Accused)
			}
		}
	}
	t.Logf("%d excerpts of three documents each: %d named their recipient as the most likely, %d accused", tries, right, accused)
	if float64(right) < 0.95*float64(tries) {
		t.Errorf("%d of %d excerpts attributed, want at least 95 %%", right, tries)
	}
	// One document marked under another document's key matches by
	// chance only: the places are per document.
	parts := edit.Paragraphs(docs[slices.Sorted(func(yield func(string) bool) {
		for n := range docs {
			if !yield(n) {
				return
			}
		}
	})[0]])[:4]
	r := recipients[0]
	swapped := strings.Join([]string{Mark(keyOf(r, 1), r, parts[0]), Mark(keyOf(r, 0), r, parts[1])}, "\n\n")
	res := TraceCopies(parts, []Copy{copyOf(r)}, edit.Retype(swapped))
	if res.Accused == r {
		t.Errorf("documents marked under each other's keys accuse their recipient: %+v", res)
	}
}
