package mls

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"hotline/internal/identity"
)

var kpNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testLifetime() Lifetime {
	return Lifetime{NotBefore: uint64(kpNow.Add(-time.Hour).Unix()), NotAfter: uint64(kpNow.Add(90 * 24 * time.Hour).Unix())}
}

func TestNewKeyPackage(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		t.Run(fmt.Sprintf("%#04x", uint16(cs)), func(t *testing.T) {
			s, _ := SuiteFor(cs)
			signer, err := s.GenerateSignatureKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			cred := Credential{Type: CredentialBasic, Identity: []byte("alice@state.example")}
			kp, sec, err := s.NewKeyPackage(nil, cred, signer, testLifetime(), DefaultCapabilities(cs, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.ValidateKeyPackage(kp, kpNow); err != nil {
				t.Fatal(err)
			}
			if sec.Init.IsZero() || sec.Encryption.IsZero() {
				t.Fatal("secrets missing")
			}
			// Through the wire and back.
			kp2, err := UnmarshalKeyPackage(kp.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.ValidateKeyPackage(kp2, kpNow); err != nil {
				t.Fatalf("after a round trip: %v", err)
			}
		})
	}
}

// A device's identity key signs its MLS leaves: the signature key in the
// group is the key in the transparency log.
func TestKeyPackageSignedByDeviceKey(t *testing.T) {
	dev, err := identity.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewEd25519Signer(dev.CryptoSigner())
	if err != nil {
		t.Fatal(err)
	}
	pub := dev.Public()
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519, TSMLS83XWingAES256GCMSHA512Ed25519} {
		s, _ := SuiteFor(cs)
		kp, _, err := s.NewKeyPackage(nil, Credential{Type: CredentialBasic, Identity: []byte("x")}, signer, testLifetime(), DefaultCapabilities(cs, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ValidateKeyPackage(kp, kpNow); err != nil {
			t.Fatalf("%#04x: %v", uint16(cs), err)
		}
		if string(kp.LeafNode.SignatureKey) != string(pub[:]) {
			t.Fatalf("%#04x: leaf signature key is not the device key", uint16(cs))
		}
	}
	if signer.PrivateBytes() != nil {
		t.Error("a device signer handed out private bytes")
	}
	// A P-256 suite refuses an Ed25519 signer.
	s2, _ := SuiteFor(MLS128DHKEMP256AES128GCMSHA256P256)
	if _, _, err := s2.NewKeyPackage(nil, Credential{Type: CredentialBasic}, signer, testLifetime(), DefaultCapabilities(s2.ID(), nil, nil)); err == nil {
		t.Error("an Ed25519 signer signed for a P-256 suite")
	}
}

func TestValidateKeyPackageRefuses(t *testing.T) {
	s, _ := SuiteFor(MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	signer, _ := s.GenerateSignatureKey(nil)
	mk := func() *KeyPackage {
		kp, _, err := s.NewKeyPackage(nil, Credential{Type: CredentialBasic, Identity: []byte("a")}, signer, testLifetime(), DefaultCapabilities(s.ID(), nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	resign := func(kp *KeyPackage) {
		kp.LeafNode.Signature, _ = s.SignWithLabel(signer, "LeafNodeTBS", kp.LeafNode.tbs(nil, 0))
		kp.Signature, _ = s.SignWithLabel(signer, "KeyPackageTBS", kp.tbs())
	}
	tests := []struct {
		name string
		edit func(kp *KeyPackage)
		now  time.Time
	}{
		{"signature flipped", func(kp *KeyPackage) { kp.Signature[3] ^= 1 }, kpNow},
		{"leaf signature flipped", func(kp *KeyPackage) { kp.LeafNode.Signature[3] ^= 1 }, kpNow},
		{"identity changed after signing", func(kp *KeyPackage) { kp.LeafNode.Credential.Identity = []byte("b") }, kpNow},
		{"expired", func(*KeyPackage) {}, kpNow.Add(100 * 24 * time.Hour)},
		{"not yet valid", func(*KeyPackage) {}, kpNow.Add(-2 * time.Hour)},
		{"other suite", func(kp *KeyPackage) { kp.CipherSuite = MLS128DHKEMP256AES128GCMSHA256P256; resign(kp) }, kpNow},
		{"init key is the encryption key", func(kp *KeyPackage) { kp.InitKey = kp.LeafNode.EncryptionKey; resign(kp) }, kpNow},
		{"init key malformed", func(kp *KeyPackage) { kp.InitKey = kp.InitKey[:5]; resign(kp) }, kpNow},
		{"version not in capabilities", func(kp *KeyPackage) { kp.LeafNode.Capabilities.Versions = []ProtocolVersion{2}; resign(kp) }, kpNow},
		{"credential type not in capabilities", func(kp *KeyPackage) { kp.LeafNode.Capabilities.Credentials = []CredentialType{2}; resign(kp) }, kpNow},
		{"leaf source update", func(kp *KeyPackage) { kp.LeafNode.Source = LeafNodeSourceUpdate; resign(kp) }, kpNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp := mk()
			tt.edit(kp)
			if err := s.ValidateKeyPackage(kp, tt.now); !errors.Is(err, ErrInvalidKeyPackage) {
				t.Errorf("got %v, want ErrInvalidKeyPackage", err)
			}
		})
	}
}

// The key packages in the official vectors validate.
func TestConformanceKeyPackages(t *testing.T) {
	var vs []struct {
		CipherSuite CipherSuite `json:"cipher_suite"`
		KeyPackage  hexBytes    `json:"key_package"`
	}
	loadVectors(t, "welcome", &vs)
	checked, skipped := 0, 0
	for _, v := range vs {
		s, err := SuiteFor(v.CipherSuite)
		if err != nil {
			skipped++
			continue
		}
		m, err := UnmarshalMLSMessage(v.KeyPackage)
		if err != nil || m.KeyPackage == nil {
			t.Fatalf("suite %d: %v", v.CipherSuite, err)
		}
		l := m.KeyPackage.LeafNode.Lifetime
		if err := s.ValidateKeyPackage(m.KeyPackage, time.Unix(int64(l.NotBefore), 0)); err != nil {
			t.Errorf("suite %d: %v", v.CipherSuite, err)
		}
		checked++
	}
	t.Logf("welcome.json key packages: %d checked, %d skipped for unimplemented suites (3, 4, 6)", checked, skipped)
}

// Key packages made by ts-mls, an implementation nobody on this team wrote,
// validate: the same signature scheme, labels and key encodings, for the
// mandatory suite and the post-quantum one (X-Wing). .ci/run installs
// ts-mls; without node or the installed package the test says so and skips.
func TestInteropTSMLSKeyPackages(t *testing.T) {
	dir := filepath.Join("..", "..", "interop", "ts-mls")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (.ci/run installs ts-mls where node exists)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ts-mls")); err != nil {
		t.Skip("ts-mls is not installed: run (cd interop/ts-mls && npm ci)")
	}
	cmd := exec.CommandContext(t.Context(), node, "harness.mjs")
	cmd.Dir = dir
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	out := bufio.NewScanner(outPipe)
	out.Buffer(make([]byte, 1<<20), 1<<24)
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, TSMLS83XWingAES256GCMSHA512Ed25519} {
		req, _ := json.Marshal(map[string]any{"op": "hello", "suite": int(cs), "name": "ts-mls"})
		in.Write(append(req, '\n'))
		if !out.Scan() {
			t.Fatalf("harness ended: %v", out.Err())
		}
		var res struct {
			OK         bool   `json:"ok"`
			Error      string `json:"error"`
			KeyPackage string `json:"key_package"`
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || !res.OK {
			t.Fatalf("suite %d: %v %s", cs, err, res.Error)
		}
		raw, _ := hex.DecodeString(res.KeyPackage)
		m, err := UnmarshalMLSMessage(raw)
		if err != nil || m.KeyPackage == nil {
			t.Fatalf("suite %d: ts-mls key package does not decode: %v", cs, err)
		}
		s, _ := SuiteFor(cs)
		if err := s.ValidateKeyPackage(m.KeyPackage, time.Now()); err != nil {
			t.Errorf("suite %d: ts-mls key package: %v", cs, err)
		}
	}
}
