package identity

import (
	"bytes"
	"testing"
)

func TestAuthMessages(t *testing.T) {
	f := newFixture(t)
	nonce := []byte("0123456789abcdef")
	var invite [32]byte
	invite[0] = 0xab
	kem := []byte{1, 2, 3}
	// Pinned: these are what devices sign.
	tests := []struct {
		got  []byte
		want string
	}{
		{AuthChallengeMessage(testOrg, "abcdefghijklmnop", nonce),
			"hotline-auth v1\norg 13 state.example\ndevice 16 abcdefghijklmnop\nnonce 24 MDEyMzQ1Njc4OWFiY2RlZg==\n"},
		{RenewMessage(testOrg, "abcdefghijklmnop", nonce),
			"hotline-renew v1\norg 13 state.example\ndevice 16 abcdefghijklmnop\nnonce 24 MDEyMzQ1Njc4OWFiY2RlZg==\n"},
		{EnrolMessage(testOrg, invite, f.sig.Public(), kem),
			"hotline-enrol v1\norg 13 state.example\ninvite 64 ab00000000000000000000000000000000000000000000000000000000000000\nsig 44 " +
				f.sig.Public().String() + "\nkem 4 AQID\n"},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("got\n%s\nwant\n%s", tt.got, tt.want)
		}
	}

	// A signature for one purpose, organisation, device or nonce verifies for
	// no other.
	msgs := [][]byte{
		AuthChallengeMessage(testOrg, "abcdefghijklmnop", nonce),
		RenewMessage(testOrg, "abcdefghijklmnop", nonce),
		AuthChallengeMessage("other.example", "abcdefghijklmnop", nonce),
		AuthChallengeMessage(testOrg, "bbcdefghijklmnop", nonce),
		AuthChallengeMessage(testOrg, "abcdefghijklmnop", []byte("0123456789abcdeF")),
		EnrolMessage(testOrg, invite, f.sig.Public(), kem),
		EnrolMessage(testOrg, [32]byte{}, f.sig.Public(), kem),
		EnrolMessage(testOrg, invite, f.sig.Public(), []byte{1, 2, 4}),
		// Values that try to forge a field boundary.
		AuthChallengeMessage("a\ndevice 1 b", "c", nonce),
		AuthChallengeMessage("a", "b\ndevice 1 c", nonce),
	}
	pub := f.sig.Public()
	for i, m := range msgs {
		sig := f.sig.Sign(m)
		for j, other := range msgs {
			if ok := pub.Verify(other, sig); ok != (i == j) {
				t.Errorf("signature of message %d verifies message %d: %v", i, j, ok)
			}
			if i != j && bytes.Equal(m, other) {
				t.Errorf("messages %d and %d are equal", i, j)
			}
		}
	}
}

func BenchmarkAuthVerify(b *testing.B) {
	f := newFixture(b)
	msg := AuthChallengeMessage(testOrg, f.sig.Public().DeviceID(), []byte("0123456789abcdef"))
	sig := f.sig.Sign(msg)
	pub := f.sig.Public()
	for b.Loop() {
		if !pub.Verify(AuthChallengeMessage(testOrg, pub.DeviceID(), []byte("0123456789abcdef")), sig) {
			b.Fatal("does not verify")
		}
	}
}
