package mls

import "fmt"

// The labelled primitives of RFC 9420, section 5. Every label but
// RefHash's gets the prefix "MLS 1.0 ", so that no MLS derivation, signature
// or encryption can be mistaken for another protocol's, or for another
// purpose within MLS. Labels are byte strings (opaque<V>); a Go string
// holds any bytes.

// labelPrefix is prepended to the labels of ExpandWithLabel,
// SignWithLabel and EncryptWithLabel.
const labelPrefix = "MLS 1.0 "

// The RefHash labels (RFC 9420, section 5.2).
const (
	keyPackageRefLabel = "MLS 1.0 KeyPackage Reference"
	proposalRefLabel   = "MLS 1.0 Proposal Reference"
)

// labelled encodes struct { opaque label<V> = "MLS 1.0 " + label; opaque
// context<V>; }: the SignContent and EncryptContext of RFC 9420.
func labelled(label string, context []byte) []byte {
	var w Writer
	w.Varint(len(labelPrefix) + len(label))
	w.Raw([]byte(labelPrefix))
	w.Raw([]byte(label))
	w.Opaque(context)
	return w.Bytes()
}

// RefHash returns Hash(RefHashInput{label, value}) (RFC 9420, section
// 5.2). The label is used as given: the reference labels already carry
// "MLS 1.0 ".
func (s *Suite) RefHash(label string, value []byte) []byte {
	var w Writer
	w.Opaque([]byte(label))
	w.Opaque(value)
	return s.Hash(w.Bytes())
}

// MakeKeyPackageRef returns the KeyPackageRef of an encoded KeyPackage:
// RefHash("MLS 1.0 KeyPackage Reference", keyPackage).
func (s *Suite) MakeKeyPackageRef(keyPackage []byte) []byte {
	return s.RefHash(keyPackageRefLabel, keyPackage)
}

// MakeProposalRef returns the ProposalRef of an encoded
// AuthenticatedContent carrying a proposal: RefHash("MLS 1.0 Proposal
// Reference", authenticatedContent).
func (s *Suite) MakeProposalRef(authenticatedContent []byte) []byte {
	return s.RefHash(proposalRefLabel, authenticatedContent)
}

// ExpandWithLabel returns KDF.Expand(secret, KDFLabel, length), where
// KDFLabel is struct { uint16 length; opaque label<V> = "MLS 1.0 " + label;
// opaque context<V>; } (RFC 9420, section 8). length must fit in a uint16
// and be at most 255·Nh.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls: ExpandWithLabel to %d bytes: not a uint16", length)
	}
	var w Writer
	w.U16(uint16(length))
	w.Raw(labelled(label, context))
	out, err := s.Expand(secret, w.Bytes(), length)
	if err != nil {
		return nil, fmt.Errorf("mls: ExpandWithLabel %q: %w", label, err)
	}
	return out, nil
}

// DeriveSecret returns ExpandWithLabel(secret, label, "", Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret returns ExpandWithLabel(secret, label, generation,
// length), the generation encoded as a uint32 (RFC 9420, section 9).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	var w Writer
	w.U32(generation)
	return s.ExpandWithLabel(secret, label, w.Bytes(), length)
}

// SignWithLabel signs SignContent{"MLS 1.0 " + label, content} with key
// (RFC 9420, section 5.1.2). key must be of the suite's signature scheme.
func (s *Suite) SignWithLabel(key SignaturePrivateKey, label string, content []byte) ([]byte, error) {
	sig, err := s.sign(key, labelled(label, content))
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel %q: %w", label, err)
	}
	return sig, nil
}

// VerifyWithLabel checks signature over SignContent{"MLS 1.0 " + label,
// content} under the public key pub (a SignaturePublicKey's bytes). It
// returns an error wrapping ErrBadSignature if the signature does not
// verify, or ErrMalformedKey if pub is not a key of the suite's scheme.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	if err := s.verify(pub, labelled(label, content), signature); err != nil {
		return fmt.Errorf("mls: VerifyWithLabel %q: %w", label, err)
	}
	return nil
}

// EncryptWithLabel encrypts plaintext to the HPKE public key pub with
// EncryptContext{"MLS 1.0 " + label, context} as the HPKE info and an
// empty aad (RFC 9420, section 5.1.3). Its randomness comes from
// crypto/rand (see HPKESeal).
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	kemOutput, ciphertext, err = s.HPKESeal(pub, labelled(label, context), nil, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel %q: %w", label, err)
	}
	return kemOutput, ciphertext, nil
}

// DecryptWithLabel decrypts what EncryptWithLabel produced for priv's
// public key with the same label and context. Failure wraps ErrDecrypt.
func (s *Suite) DecryptWithLabel(priv HPKEPrivateKey, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	pt, err := s.HPKEOpen(priv, kemOutput, labelled(label, context), nil, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel %q: %w", label, err)
	}
	return pt, nil
}

// deriver runs a sequence of derivations, keeping the first error, like
// Reader does for decoding: a derivation fails only on a programming error
// (an impossible length), so checking once at the end keeps the schedule
// readable.
type deriver struct {
	s   *Suite
	err error
}

func (d *deriver) keep(b []byte, err error) []byte {
	if d.err == nil && err != nil {
		d.err = err
	}
	return b
}

func (d *deriver) extract(salt, ikm []byte) []byte {
	if d.err != nil {
		return nil
	}
	return d.keep(d.s.Extract(salt, ikm))
}

func (d *deriver) expand(secret []byte, label string, context []byte, length int) []byte {
	if d.err != nil {
		return nil
	}
	return d.keep(d.s.ExpandWithLabel(secret, label, context, length))
}

func (d *deriver) derive(secret []byte, label string) []byte {
	return d.expand(secret, label, nil, d.s.nh)
}
