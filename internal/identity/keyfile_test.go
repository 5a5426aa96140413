package identity

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestDeviceKeysRoundTrip(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	if err := WriteDeviceKeys(dir, f.sig, f.kem); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, DeviceKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode())
	}
	sig, kem, err := ReadDeviceKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Public() != f.sig.Public() || !bytes.Equal(sig.Sign([]byte("m")), f.sig.Sign([]byte("m"))) {
		t.Fatal("signing key changed")
	}
	if !bytes.Equal(kem.PublicBytes(), f.kem.PublicBytes()) {
		t.Fatal("kem key changed")
	}

	// Never overwritten.
	other, _ := GenerateSigningKey(testRand(99))
	before, _ := os.ReadFile(filepath.Join(dir, DeviceKeysFile))
	if err := WriteDeviceKeys(dir, other, f.kem); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write: %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, DeviceKeysFile))
	if !bytes.Equal(before, after) {
		t.Fatal("key file overwritten")
	}

	if err := WriteDeviceKeys(t.TempDir(), SigningKey{}, f.kem); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero key: %v", err)
	}
	if err := WriteDeviceKeys(filepath.Join(dir, "missing"), f.sig, f.kem); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestKeyFilePermissions(t *testing.T) {
	f := newFixture(t)
	b, err := MarshalDeviceKeys(f.sig, f.kem)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		dir := t.TempDir()
		path := filepath.Join(dir, DeviceKeysFile)
		if err := os.WriteFile(path, b, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode) // beat the umask
		_, _, err := ReadDeviceKeys(dir)
		if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), "hint: chmod 600 "+path) {
			t.Errorf("mode %v: got %v, want ErrInsecureKeyFile with a hint", mode, err)
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, DeviceKeysFile), b, mode); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadDeviceKeys(dir); err != nil {
			t.Errorf("mode %v: %v", mode, err)
		}
	}

	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, DeviceKeysFile), 0o700)
	if _, _, err := ReadDeviceKeys(dir); !errors.Is(err, ErrInvalid) {
		t.Errorf("directory: %v", err)
	}
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, DeviceKeysFile), append(b, make([]byte, maxKeyFileSize)...), 0o600)
	if _, _, err := ReadDeviceKeys(dir); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized: %v", err)
	}
	if _, _, err := ReadDeviceKeys(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestParseDeviceKeysMalformed(t *testing.T) {
	f := newFixture(t)
	good, _ := MarshalDeviceKeys(f.sig, f.kem)
	lines := strings.SplitAfter(string(good), "\n")
	sigLine, kemLine := lines[1], lines[2]
	tests := map[string]string{
		"empty":           "",
		"header only":     "hotline-device-keys v1\n",
		"wrong version":   "hotline-device-keys v2\n" + sigLine + kemLine,
		"swapped":         lines[0] + kemLine + sigLine,
		"no newline":      strings.TrimSuffix(string(good), "\n"),
		"crlf":            strings.ReplaceAll(string(good), "\n", "\r\n"),
		"extra line":      string(good) + "x 1\n",
		"blank line":      string(good) + "\n",
		"short seed":      lines[0] + "sig AAAA\n" + kemLine,
		"long seed":       lines[0] + "sig " + strings.Repeat("A", 44) + "AAAA\n" + kemLine,
		"bad base64":      lines[0] + "sig " + strings.Repeat("!", 44) + "\n" + kemLine,
		"unpadded":        lines[0] + strings.TrimSuffix(sigLine, "=\n") + "\n" + kemLine,
		"two spaces":      lines[0] + "sig  " + sigLine[4:] + kemLine,
		"upper-case key":  lines[0] + "SIG " + sigLine[4:] + kemLine,
		"trailing spaces": lines[0] + strings.TrimSuffix(sigLine, "\n") + " \n" + kemLine,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := ParseDeviceKeys([]byte(in))
			wantErr(t, err, ErrInvalid)
		})
	}
}

func FuzzReadDeviceKeys(f *testing.F) {
	fx := newFixture(f)
	good, _ := MarshalDeviceKeys(fx.sig, fx.kem)
	f.Add(good)
	f.Add([]byte("hotline-device-keys v1\nsig AAAA\nkem AAAA\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, kem, err := ParseDeviceKeys(b)
		if err != nil {
			wantErr(t, err, ErrInvalid)
			return
		}
		// One encoding per key pair: writing back gives the same bytes.
		again, err := MarshalDeviceKeys(sig, kem)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %q, %v; want %q", again, err, b)
		}
	})
}

func TestOrgKeyRoundTrip(t *testing.T) {
	for _, name := range []string{RootKeyName(testOrg), IssuerKeyName(testOrg), LogKeyName(testOrg)} {
		t.Run(name, func(t *testing.T) {
			k, text, err := GenerateOrgKey(testRand(2), name)
			if err != nil {
				t.Fatal(err)
			}
			if k.Name != name || !strings.HasPrefix(text, "PRIVATE+KEY+"+name+"+") || !strings.HasPrefix(k.VerifierKey, name+"+") {
				t.Fatalf("got %v, %q", k, k.VerifierKey)
			}
			path := filepath.Join(t.TempDir(), "key")
			if err := WriteOrgKey(path, text); err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v", fi.Mode())
			}
			if err := WriteOrgKey(path, text); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("second write: %v", err)
			}
			got, err := ReadOrgKey(path)
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != k.Name || got.VerifierKey != k.VerifierKey {
				t.Fatalf("read %v, wrote %v", got, k)
			}
			// The read signer's notes verify with the generated verifier.
			msg, err := note.Sign(&note.Note{Text: "hello\n"}, got.Signer)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(msg, note.VerifierList(k.Verifier)); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o644)
			if _, err := ReadOrgKey(path); !errors.Is(err, ErrInsecureKeyFile) {
				t.Fatalf("0644: %v", err)
			}
		})
	}
}

func TestOrgKeyMalformed(t *testing.T) {
	for _, name := range []string{"", "has space", "a+b", "tab\there", "\xff"} {
		if _, _, err := GenerateOrgKey(testRand(1), name); !errors.Is(err, ErrInvalid) {
			t.Errorf("GenerateOrgKey(%q): %v", name, err)
		}
	}
	_, text, _ := GenerateOrgKey(testRand(1), RootKeyName(testOrg))
	_, vkey, _ := note.GenerateKey(testRand(1), "x")
	prefix := "PRIVATE+KEY+" + RootKeyName(testOrg) + "+"
	tests := map[string]string{
		"empty":         "",
		"verifier key":  vkey,
		"wrong hash":    prefix + "00000000" + text[len(prefix)+8:],
		"renamed":       strings.Replace(text, RootKeyName(testOrg), IssuerKeyName(testOrg), 1),
		"truncated":     text[:len(text)-4],
		"two lines":     text + "\n" + text,
		"leading space": " " + text,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			wantErr(t, WriteOrgKey(path, in), ErrInvalid)
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatal("WriteOrgKey wrote an invalid key")
			}
			os.WriteFile(path, []byte(in+"\n"), 0o600)
			_, err := ReadOrgKey(path)
			wantErr(t, err, ErrInvalid)
		})
	}
}
