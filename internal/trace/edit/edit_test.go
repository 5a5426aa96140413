package edit

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRetype(t *testing.T) {
	in := "Title\u200b here\n\n  The \u201cminister\u201d\u00a0said\u2014twice\u2026  \u2018fine\u2019,\u00ad and\ufe0f left.\nSecond\tline \uff21\ufb01x.\n\n\n\n- item\u200d one\n\u2022 item two\n"
	want := "Title here\n\nThe \"minister\" said-twice... 'fine', and left. Second line Afix.\n\n- item one - item two"
	if got := Retype(in); got != want {
		t.Errorf("Retype\n%q, want\n%q", got, want)
	}
	if got := Retype(want); got != want {
		t.Errorf("Retype is not idempotent: %q", got)
	}
}

func TestLight(t *testing.T) {
	s := "One two three four five six seven eight nine ten.\n\n- a list item\n- another item"
	if got := Light(s, 0, rand.New(rand.NewPCG(1, 2))); strings.ReplaceAll(got, "- ", "") != strings.ReplaceAll(s, "- ", "") {
		t.Errorf("rate 0 changed words: %q", got)
	}
	long := strings.Repeat("alpha beta gamma delta ", 500)
	got := Light(long, 0.1, rand.New(rand.NewPCG(3, 4)))
	a, b := strings.Fields(long), strings.Fields(got)
	changed := len(a) - len(b) // dropped
	for i, j := 0, 0; i < len(a) && j < len(b); i++ {
		if a[i] == b[j] {
			j++
		} else if strings.EqualFold(a[i], b[j]) || len(a[i]) == len(b[j]) || len(a[i]) == len(b[j])+1 {
			changed++
			j++
		}
	}
	if r := float64(changed) / float64(len(a)); r < 0.07 || r > 0.13 {
		t.Errorf("rate 0.1 changed %.3f of the words", r)
	}
	if Light(long, 0.1, rand.New(rand.NewPCG(3, 4))) != got {
		t.Error("not deterministic for a seed")
	}
}

func TestExcerpt(t *testing.T) {
	s := "p0\n\np1\n\np2\n\np3\n\np4"
	seen := map[string]bool{}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100 {
		e := Excerpt(s, 3, rng)
		if len(Paragraphs(e)) != 3 || !strings.Contains(s, e) {
			t.Fatalf("excerpt %q", e)
		}
		seen[e] = true
	}
	if len(seen) != 3 {
		t.Errorf("%d distinct excerpts, want every one of 3", len(seen))
	}
	if Excerpt("p0\n\np1", 3, rng) != "p0\n\np1" {
		t.Error("a short text is not kept whole")
	}
}

func TestLeak(t *testing.T) {
	copy := "Title\n\nFirst\u200b paragraph\u00a0here.\n\nSecond one.\n\nThird one.\n\nFourth one."
	got := Evaluation.Leak(copy, rand.New(rand.NewPCG(7, 8)))
	if len(Paragraphs(got)) != 3 || strings.ContainsAny(got, "\u200b\u00a0") {
		t.Errorf("leak %q", got)
	}
}
