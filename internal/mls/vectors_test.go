package mls

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vectorDir finds the official MLS test vectors: $HOTLINE_VECTORS/mls, or
// ../shared/vectors/mls beside the module root. A missing directory fails
// the test: conformance must never be skipped silently.
func vectorDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("HOTLINE_VECTORS"); d != "" {
		return filepath.Join(d, "mls")
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "vectors", "mls")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// loadVectors decodes the JSON vector file name (without .json) into v.
func loadVectors(t testing.TB, name string, v any) {
	t.Helper()
	path := filepath.Join(vectorDir(t), name+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read MLS test vectors: %v (set HOTLINE_VECTORS to the directory holding mls/)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// hexBytes is a JSON hex string.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}
