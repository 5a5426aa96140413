package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ErrInvalidKeyPackage is wrapped by every reason ValidateKeyPackage refuses
// a key package.
var ErrInvalidKeyPackage = errors.New("mls: invalid key package")

// KeyPackageSecrets are the private keys a key package's owner keeps until
// the package is used: the init key (Welcome secrets are encrypted to it)
// and the leaf's encryption key.
type KeyPackageSecrets struct {
	Init       HPKEPrivateKey
	Encryption HPKEPrivateKey
}

// DefaultCapabilities lists what this implementation supports for a leaf
// in a group of suite cs: MLS 1.0, that suite, basic credentials, and the
// non-default extension and proposal types given.
func DefaultCapabilities(cs CipherSuite, extensions []ExtensionType, proposals []ProposalType) Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{MLS10},
		CipherSuites: []CipherSuite{cs},
		Extensions:   slices.Clone(extensions),
		Proposals:    slices.Clone(proposals),
		Credentials:  []CredentialType{CredentialBasic},
	}
}

// NewKeyPackage makes a key package for a member whose leaf presents cred
// and signs with signer, valid over lifetime. It generates the init and
// leaf encryption keys from r (nil means crypto/rand) and returns their
// private halves.
func (s *Suite) NewKeyPackage(r io.Reader, cred Credential, signer SignaturePrivateKey, lifetime Lifetime, caps Capabilities) (*KeyPackage, KeyPackageSecrets, error) {
	var sec KeyPackageSecrets
	var err error
	if sec.Init, err = s.GenerateHPKEKey(r); err != nil {
		return nil, sec, err
	}
	if sec.Encryption, err = s.GenerateHPKEKey(r); err != nil {
		return nil, sec, err
	}
	leaf := LeafNode{
		EncryptionKey: sec.Encryption.Public(),
		SignatureKey:  signer.Public(),
		Credential:    cred,
		Capabilities:  caps,
		Source:        LeafNodeSourceKeyPackage,
		Lifetime:      lifetime,
		Extensions:    []Extension{},
	}
	if leaf.Signature, err = s.SignWithLabel(signer, "LeafNodeTBS", leaf.tbs(nil, 0)); err != nil {
		return nil, sec, err
	}
	kp := &KeyPackage{Version: MLS10, CipherSuite: s.ID(), InitKey: sec.Init.Public(), LeafNode: leaf, Extensions: []Extension{}}
	if kp.Signature, err = s.SignWithLabel(signer, "KeyPackageTBS", kp.tbs()); err != nil {
		return nil, sec, err
	}
	return kp, sec, nil
}

// ValidateKeyPackage checks a key package as RFC 9420 (section 10.1) asks of
// anyone about to use one: version and suite, the leaf node (source,
// lifetime covering now, capabilities, its signature), the package's
// signature, and an init key that is a valid key of the suite and differs
// from the leaf's encryption key. Errors wrap ErrInvalidKeyPackage.
func (s *Suite) ValidateKeyPackage(kp *KeyPackage, now time.Time) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidKeyPackage}, args...)...)
	}
	if kp.Version != MLS10 {
		return bad("version %d", kp.Version)
	}
	if kp.CipherSuite != s.ID() {
		return bad("cipher suite %#04x, want %#04x", uint16(kp.CipherSuite), uint16(s.ID()))
	}
	l := &kp.LeafNode
	if l.Source != LeafNodeSourceKeyPackage {
		return bad("leaf node source %d, want key_package", l.Source)
	}
	t := uint64(now.Unix())
	if t < l.Lifetime.NotBefore || t > l.Lifetime.NotAfter {
		return bad("lifetime %d..%d does not cover now (%d)", l.Lifetime.NotBefore, l.Lifetime.NotAfter, t)
	}
	// The package's own cipher_suite field declares support for that suite;
	// the official vectors list other suites only (a suite-7 package names
	// 1-6), so requiring it in capabilities would refuse valid packages.
	if !slices.Contains(l.Capabilities.Versions, MLS10) {
		return bad("leaf capabilities lack MLS 1.0")
	}
	if !slices.Contains(l.Capabilities.Credentials, l.Credential.Type) {
		return bad("leaf capabilities lack its own credential type %d", l.Credential.Type)
	}
	for _, e := range l.Extensions {
		if !slices.Contains(l.Capabilities.Extensions, e.Type) {
			return bad("leaf extension %d not in its capabilities", e.Type)
		}
	}
	if err := s.VerifyWithLabel(l.SignatureKey, "LeafNodeTBS", l.tbs(nil, 0), l.Signature); err != nil {
		return bad("leaf node signature: %v", err)
	}
	if err := s.VerifyWithLabel(l.SignatureKey, "KeyPackageTBS", kp.tbs(), kp.Signature); err != nil {
		return bad("signature: %v", err)
	}
	if err := s.ValidateHPKEPublicKey(kp.InitKey); err != nil {
		return bad("init key: %v", err)
	}
	if err := s.ValidateHPKEPublicKey(l.EncryptionKey); err != nil {
		return bad("leaf encryption key: %v", err)
	}
	if bytes.Equal(kp.InitKey, l.EncryptionKey) {
		return bad("init key equals the leaf's encryption key")
	}
	return nil
}
