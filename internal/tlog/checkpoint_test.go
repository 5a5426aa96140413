package tlog

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointC2SPExample(t *testing.T) {
	// The example in https://c2sp.org/tlog-checkpoint.
	text := "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	c, err := ParseCheckpoint([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin != "example.com/behind-the-sofa" || c.Size != 20852163 || c.Hash.String() != "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=" || c.Extra != nil {
		t.Errorf("ParseCheckpoint = %+v", c)
	}
	if got := string(c.Marshal()); got != text {
		t.Errorf("Marshal = %q, want %q", got, text)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	tests := []Checkpoint{
		{Origin: testOrigin, Size: 0, Hash: EmptyTreeHash()},
		{Origin: testOrigin, Size: 1 << 40, Hash: Hash{1, 2, 3}},
		{Origin: "a log with spaces", Size: 7, Hash: Hash{31: 1}, Extra: []string{"ext one", "— unicode ✓", "+"}},
	}
	for _, c := range tests {
		got, err := ParseCheckpoint(c.Marshal())
		if err != nil {
			t.Fatalf("ParseCheckpoint(%q): %v", c.Marshal(), err)
		}
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func TestParseCheckpointMalformed(t *testing.T) {
	hash := Hash{}.String()
	tests := map[string]string{
		"empty":                  "",
		"missing final newline":  testOrigin + "\n5\n" + hash,
		"two lines":              testOrigin + "\n5\n",
		"empty origin":           "\n5\n" + hash + "\n",
		"origin leading space":   " " + testOrigin + "\n5\n" + hash + "\n",
		"origin trailing space":  testOrigin + " \n5\n" + hash + "\n",
		"origin trailing tab":    testOrigin + "\t\n5\n" + hash + "\n",
		"origin NBSP":            testOrigin + "\u00a0\n5\n" + hash + "\n",
		"origin control char":    "a\x01b\n5\n" + hash + "\n",
		"origin invalid UTF-8":   "a\xffb\n5\n" + hash + "\n",
		"CRLF":                   testOrigin + "\r\n5\r\n" + hash + "\r\n",
		"size leading zero":      testOrigin + "\n01\n" + hash + "\n",
		"size 00":                testOrigin + "\n00\n" + hash + "\n",
		"size negative":          testOrigin + "\n-1\n" + hash + "\n",
		"size plus":              testOrigin + "\n+1\n" + hash + "\n",
		"size empty":             testOrigin + "\n\n" + hash + "\n",
		"size space":             testOrigin + "\n 5\n" + hash + "\n",
		"size hex":               testOrigin + "\n0x5\n" + hash + "\n",
		"size overflow":          testOrigin + "\n9223372036854775808\n" + hash + "\n",
		"hash 31 bytes":          testOrigin + "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
		"hash 33 bytes":          testOrigin + "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
		"hash unpadded":          testOrigin + "\n5\n" + hash[:43] + "\n",
		"hash padding bits":      testOrigin + "\n5\n" + hash[:42] + "B=\n",
		"hash trailing space":    testOrigin + "\n5\n" + hash + " \n",
		"hash URL alphabet":      testOrigin + "\n5\n-" + hash[1:] + "\n",
		"empty extension line":   testOrigin + "\n5\n" + hash + "\n\n",
		"empty line in between":  testOrigin + "\n5\n" + hash + "\next\n\nmore\n",
		"extension control char": testOrigin + "\n5\n" + hash + "\nex\x7ft\x00\n",
	}
	for name, text := range tests {
		if c, err := ParseCheckpoint([]byte(text)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseCheckpoint(%q) = %+v, %v; want ErrMalformed", name, text, c, err)
		}
	}
}

func TestSignOpenCheckpoint(t *testing.T) {
	signer, verifier := testKey(t, testOrigin, 1)
	otherSigner, otherVerifier := testKey(t, testOrigin, 2)
	witness, witnessVerifier := testKey(t, "witness.example", 3)
	c := Checkpoint{Origin: testOrigin, Size: 42, Hash: Hash{4, 2}, Extra: []string{"unknown extension"}}
	signed, err := SignCheckpoint(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(&note.Note{Text: string(c.Marshal())}, witness, signer)
	if err != nil {
		t.Fatal(err)
	}
	byWitness, err := note.Sign(&note.Note{Text: string(c.Marshal())}, witness)
	if err != nil {
		t.Fatal(err)
	}
	otherOrigin := c
	otherOrigin.Origin = "evil.example"
	misnamed, err := note.Sign(&note.Note{Text: string(otherOrigin.Marshal())}, signer)
	if err != nil {
		t.Fatal(err)
	}
	badBody, err := note.Sign(&note.Note{Text: testOrigin + "\n042\n" + c.Hash.String() + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	altered := strings.Replace(string(signed), "\n42\n", "\n43\n", 1)

	tests := []struct {
		name   string
		msg    []byte
		origin string
		v      note.Verifiers
		want   error // nil, ErrVerify or ErrMalformed
	}{
		{"ok", signed, testOrigin, note.VerifierList(verifier), nil},
		{"ok among verifiers", signed, testOrigin, note.VerifierList(witnessVerifier, otherVerifier, verifier), nil},
		{"cosigned, witness unknown", cosigned, testOrigin, note.VerifierList(verifier), nil},
		{"cosigned, witness known", cosigned, testOrigin, note.VerifierList(verifier, witnessVerifier), nil},
		{"wrong origin", signed, "other.example", note.VerifierList(verifier), ErrVerify},
		{"wrong key", signed, testOrigin, note.VerifierList(otherVerifier), ErrVerify},
		{"no verifiers", signed, testOrigin, nil, ErrVerify},
		{"signed only by witness", byWitness, testOrigin, note.VerifierList(verifier, witnessVerifier), ErrVerify},
		{"body origin differs", misnamed, testOrigin, note.VerifierList(verifier), ErrVerify},
		{"altered body", []byte(altered), testOrigin, note.VerifierList(verifier), ErrVerify},
		{"malformed body", badBody, testOrigin, note.VerifierList(verifier), ErrMalformed},
		{"not a note", c.Marshal(), testOrigin, note.VerifierList(verifier), ErrMalformed},
		{"empty", nil, testOrigin, note.VerifierList(verifier), ErrMalformed},
	}
	for _, tt := range tests {
		got, n, err := OpenCheckpoint(tt.msg, tt.origin, tt.v)
		if tt.want != nil {
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("%s: checkpoint (-want +got):\n%s", tt.name, diff)
		}
		if n.Text != string(c.Marshal()) {
			t.Errorf("%s: note text %q", tt.name, n.Text)
		}
	}

	if _, err := SignCheckpoint(c, otherSigner); err != nil {
		t.Errorf("SignCheckpoint with a second key of the origin: %v", err)
	}
	if _, err := SignCheckpoint(c, witness); err == nil {
		t.Error("SignCheckpoint with a key not named for the origin succeeded")
	}
	for _, bad := range []Checkpoint{
		{Origin: "", Size: 1},
		{Origin: testOrigin, Size: -1},
		{Origin: testOrigin, Extra: []string{""}},
		{Origin: testOrigin, Extra: []string{"two\nlines"}},
		{Origin: testOrigin + "\n2"},
	} {
		if _, err := SignCheckpoint(bad, signer); !errors.Is(err, ErrMalformed) {
			t.Errorf("SignCheckpoint(%+v): err = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestCheckpointMangling flips bytes of and truncates a signed checkpoint:
// every result must fail to open, or open to the original checkpoint.
func TestCheckpointMangling(t *testing.T) {
	signer, verifier := testKey(t, testOrigin, 1)
	c := Checkpoint{Origin: testOrigin, Size: 1234, Hash: Hash{9, 9, 9}, Extra: []string{"ext"}}
	signed, err := SignCheckpoint(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	v := note.VerifierList(verifier)
	check := func(msg []byte) {
		got, _, err := OpenCheckpoint(msg, testOrigin, v)
		switch {
		case err == nil && !cmp.Equal(got, c):
			t.Errorf("OpenCheckpoint(%q) = %+v, want error or the original", msg, got)
		case err != nil && !errors.Is(err, ErrVerify) && !errors.Is(err, ErrMalformed):
			t.Errorf("OpenCheckpoint(%q): unclassified error %v", msg, err)
		}
	}
	for i := range signed {
		for _, mask := range []byte{0x01, 0x20, 0x80, 0xff} {
			msg := []byte(string(signed))
			msg[i] ^= mask
			check(msg)
		}
	}
	for n := range len(signed) {
		check(signed[:n])
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	signer, _ := testKey(f, testOrigin, 1)
	f.Add([]byte("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"))
	f.Add([]byte(testOrigin + "\n0\n" + EmptyTreeHash().String() + "\next\n"))
	f.Add([]byte(testOrigin + "\n01\n" + EmptyTreeHash().String() + "\n\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if got := c.Marshal(); string(got) != string(text) {
			t.Fatalf("Marshal(ParseCheckpoint(%q)) = %q", text, got)
		}
		if _, err := note.Sign(&note.Note{Text: string(text)}, signer); err != nil {
			t.Fatalf("parsed checkpoint %q is not valid note text: %v", text, err)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	signer, verifier := testKey(f, testOrigin, 1)
	witness, witnessVerifier := testKey(f, "witness.example", 3)
	v := note.VerifierList(verifier, witnessVerifier)
	for _, c := range []Checkpoint{
		{Origin: testOrigin, Size: 0, Hash: EmptyTreeHash()},
		{Origin: testOrigin, Size: 77, Hash: Hash{7}, Extra: []string{"ext"}},
	} {
		signed, err := note.Sign(&note.Note{Text: string(c.Marshal())}, signer, witness)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(signed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, n, err := OpenCheckpoint(msg, testOrigin, v)
		if err != nil {
			if !errors.Is(err, ErrVerify) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if string(c.Marshal()) != n.Text || c.Origin != testOrigin {
			t.Fatalf("OpenCheckpoint(%q) = %+v, note %q", msg, c, n.Text)
		}
		// The fuzzer cannot forge signatures: the text must be a seed's.
		if c.Size != 0 && c.Size != 77 {
			t.Fatalf("opened a forged checkpoint %+v", c)
		}
	})
}
