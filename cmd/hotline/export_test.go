package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestIndependentVerifier checks a log export with docs/verify-log.py, which
// uses only Python's standard library and openssl: no Hotline code. It must
// accept a real export and reject an altered entry, size or signature.
func TestIndependentVerifier(t *testing.T) {
	for _, tool := range []string{"python3", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	dir := t.TempDir()
	data, exp := filepath.Join(dir, "data"), filepath.Join(dir, "export")
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{"init", "--data", data, "--org", "state.example"},
		{"log", "export", "--data", data, "--out", exp},
	} {
		if code := run(args, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("hotline %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
		}
	}
	verify := func(dir string) (string, error) {
		out, err := exec.Command("python3", filepath.Join("..", "..", "docs", "verify-log.py"), dir).CombinedOutput()
		return string(out), err
	}
	out, err := verify(exp)
	if err != nil || !strings.HasPrefix(out, "OK: 8 entries") {
		t.Fatalf("genuine export: %v\n%s", err, out)
	}
	tamper := func(name string, edit func(file string, b []byte) []byte, file string) {
		t.Helper()
		bad := filepath.Join(dir, name)
		os.Mkdir(bad, 0o755)
		for _, f := range []string{"checkpoint", "entries", "log-keys", "root-key"} {
			b, err := os.ReadFile(filepath.Join(exp, f))
			if err != nil {
				t.Fatal(err)
			}
			if f == file {
				b = edit(f, b)
			}
			os.WriteFile(filepath.Join(bad, f), b, 0o644)
		}
		if out, err := verify(bad); err == nil {
			t.Errorf("%s: the verifier accepted it:\n%s", name, out)
		}
	}
	tamper("edited-entry", func(_ string, b []byte) []byte {
		lines := strings.Split(string(b), "\n")
		entry, err := base64.StdEncoding.DecodeString(lines[2])
		if err != nil {
			t.Fatal(err)
		}
		entry[len(entry)/2] ^= 1
		lines[2] = base64.StdEncoding.EncodeToString(entry)
		return []byte(strings.Join(lines, "\n"))
	}, "entries")
	tamper("dropped-entry", func(_ string, b []byte) []byte {
		lines := strings.SplitN(string(b), "\n", 2)
		return []byte(lines[1])
	}, "entries")
	tamper("wrong-size", func(_ string, b []byte) []byte {
		return bytes.Replace(b, []byte("\n8\n"), []byte("\n7\n"), 1)
	}, "checkpoint")
	tamper("other-key", func(_ string, b []byte) []byte {
		return []byte("state.example+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
	}, "log-keys")
}
