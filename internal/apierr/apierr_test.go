package apierr

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the code table in docs/api.md")

const (
	docPath  = "../../docs/api.md"
	docBegin = "<!-- codes:begin -->\n"
	docEnd   = "<!-- codes:end -->"
)

// docs/api.md lists exactly the codes in Codes.
func TestDocsListEveryCode(t *testing.T) {
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %q … %q markers", docPath, docBegin, docEnd)
	}
	got, want := doc[i+len(docBegin):j], CodesMarkdown()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(doc[:i+len(docBegin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's code table is out of date; run go test ./internal/apierr -update\nwant:\n%s", docPath, want)
}

func TestCodesAreUnique(t *testing.T) {
	seen := map[Code]bool{}
	for _, c := range Codes {
		if seen[c.Code] {
			t.Errorf("code %s listed twice", c.Code)
		}
		seen[c.Code] = true
		if c.Status < 400 || c.Doc == "" {
			t.Errorf("code %s: status %d, doc %q", c.Code, c.Status, c.Doc)
		}
	}
}

func TestWrapHidesCause(t *testing.T) {
	cause := errors.New("database password is hunter2")
	e := Wrap(cause, Internal, "internal error")
	if !errors.Is(e, cause) {
		t.Errorf("Wrap does not unwrap to its cause")
	}
	if strings.Contains(e.Message, "hunter2") || strings.Contains(e.Hint, "hunter2") {
		t.Errorf("the cause leaked into the wire fields: %+v", e)
	}
	if From(cause).Code != Internal || Status("nope") != 500 || !Is(e, Internal) {
		t.Errorf("From/Status/Is misbehave")
	}
}
