package datadir_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"hotline/internal/datadir"
	"hotline/internal/identity"
)

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	res, err := datadir.Init(t.Context(), dir, datadir.InitOptions{Org: "state.example"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Admin.String() != "admin@state.example" || res.Invite.Code == "" || res.LogOrigin != "state.example" {
		t.Errorf("result %+v", res)
	}
	for name, mode := range map[string]os.FileMode{
		datadir.IssuerFile: 0o600, datadir.LogKeyFile: 0o600, datadir.CertKeyFile: 0o600, datadir.RootKeyFile: 0o600,
		datadir.ConfigFile: 0o644, datadir.CertFile: 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	d, err := datadir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fp, err := d.Fingerprint(""); err != nil || fp != res.Fingerprint {
		t.Errorf("Fingerprint = %q, %v; init printed %q", fp, err, res.Fingerprint)
	}
	// Re-running refuses and changes nothing.
	before := listing(t, dir)
	if _, err := datadir.Init(t.Context(), dir, datadir.InitOptions{Org: "state.example"}); !errors.Is(err, datadir.ErrExists) {
		t.Errorf("second init: %v, want ErrExists", err)
	}
	if after := listing(t, dir); after != before {
		t.Errorf("second init changed the directory:\n%s\n%s", before, after)
	}
	// A root key path that exists is refused too, before anything is written.
	other := filepath.Join(t.TempDir(), "other")
	if _, err := datadir.Init(t.Context(), other, datadir.InitOptions{Org: "state.example", RootKeyPath: filepath.Join(dir, datadir.RootKeyFile)}); err == nil {
		t.Error("init over an existing root key succeeded")
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused init left %s behind", other)
	}
	if _, err := datadir.Init(t.Context(), filepath.Join(t.TempDir(), "x"), datadir.InitOptions{Org: "Not A Domain"}); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("bad org: %v", err)
	}
}

func TestRotateNeedsTheRootKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := datadir.Init(t.Context(), dir, datadir.InitOptions{Org: "state.example"}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if _, err := datadir.Init(t.Context(), other, datadir.InitOptions{Org: "state.example"}); err != nil {
		t.Fatal(err)
	}
	d, _ := datadir.Open(dir)
	before := listing(t, dir)
	if _, err := d.Rotate(t.Context(), filepath.Join(other, datadir.RootKeyFile), []string{datadir.RotateIssuer}, datadir.StoreOptions{}); err == nil {
		t.Fatal("rotation with another organisation's root key succeeded")
	}
	if after := listing(t, dir); after != before {
		t.Errorf("refused rotation changed files")
	}
	oldIssuer, _ := d.Issuer()
	ks, err := d.Rotate(t.Context(), filepath.Join(dir, datadir.RootKeyFile), []string{datadir.RotateIssuer}, datadir.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newIssuer, _ := d.Issuer()
	if ks.Serial != 2 || ks.Issuer != newIssuer.VerifierKey || newIssuer.VerifierKey == oldIssuer.VerifierKey {
		t.Errorf("after rotation: key set %+v, issuer %s (was %s)", ks, newIssuer.VerifierKey, oldIssuer.VerifierKey)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	want := "sha256:" + "ab01" + "00000000000000000000000000000000000000000000000000000000000c"
	for _, in := range []string{want, "AB01" + want[11:], "SHA256:ab:01" + want[11:]} {
		if got, err := datadir.NormalizeFingerprint(in); err != nil || got != want {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "sha256:", "sha256:zz", want + "00"} {
		if _, err := datadir.NormalizeFingerprint(bad); err == nil {
			t.Errorf("NormalizeFingerprint(%q) accepted", bad)
		}
	}
}

// listing describes a directory's files with sizes and modification times.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var s string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			s += p + " " + fi.Mode().String() + " " + fi.ModTime().String() + "\n"
		}
		return nil
	})
	return s
}
