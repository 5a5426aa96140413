package client

import (
	"bytes"
	"errors"
	"testing"
)

func TestWrapKey(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	k, err := NewWrapKey(secret)
	must(t, err)
	sealed := k.Seal("device.key", []byte("the keys"))
	if bytes.Contains(sealed, []byte("the keys")) {
		t.Fatal("sealed file holds its contents in the clear")
	}
	if pt, err := k.Open("device.key", sealed); err != nil || string(pt) != "the keys" {
		t.Fatalf("Open: %q %v", pt, err)
	}
	if again := k.Seal("device.key", []byte("the keys")); bytes.Equal(again, sealed) {
		t.Error("two seals of one file are equal: the nonce is not fresh")
	}

	other, err := NewWrapKey(bytes.Repeat([]byte{8}, 32))
	must(t, err)
	if _, err := other.Open("device.key", sealed); !errors.Is(err, ErrWrapped) {
		t.Errorf("another key opens it: %v", err)
	}
	if _, err := k.Open("profile.json", sealed); !errors.Is(err, ErrWrapped) {
		t.Errorf("it opens under another name: %v", err)
	}
	// Every truncation and every flipped byte is refused.
	for i := range sealed {
		if _, err := k.Open("device.key", sealed[:i]); !errors.Is(err, ErrWrapped) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
		b := bytes.Clone(sealed)
		b[i] ^= 0x40
		if _, err := k.Open("device.key", b); !errors.Is(err, ErrWrapped) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := NewWrapKey(secret[:31]); err == nil {
		t.Error("a 31-byte secret was accepted")
	}

	files, err := k.OpenAll(map[string][]byte{"device.key": sealed, "keyset": k.Seal("keyset", []byte("ks"))})
	if err != nil || string(files["keyset"]) != "ks" || string(files["device.key"]) != "the keys" {
		t.Fatalf("OpenAll: %q %v", files, err)
	}
	if _, err := k.OpenAll(map[string][]byte{"keyset": sealed}); !errors.Is(err, ErrWrapped) {
		t.Errorf("OpenAll with a moved file: %v", err)
	}
}

func FuzzWrapOpen(f *testing.F) {
	k, err := NewWrapKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.Seal("n", []byte("x")))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Only the seed opens (nothing else is authentic); everything
		// else is refused with ErrWrapped, never a panic.
		pt, err := k.Open("n", b)
		if err != nil && !errors.Is(err, ErrWrapped) {
			t.Fatalf("error %v does not wrap ErrWrapped", err)
		}
		if err == nil && string(pt) != "x" {
			t.Fatalf("forged input opened to %q", pt)
		}
	})
}
