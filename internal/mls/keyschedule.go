package mls

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// The key schedule (RFC 9420, section 8):
//
//	                 init_secret_[n-1]
//	                        |
//	commit_secret --> KDF.Extract
//	                        |
//	        ExpandWithLabel(., "joiner", GroupContext_[n], KDF.Nh)
//	                        |
//	                  joiner_secret
//	                        |
//	psk_secret    --> KDF.Extract
//	                        |
//	                        +--> DeriveSecret(., "welcome") = welcome_secret
//	                        |
//	        ExpandWithLabel(., "epoch", GroupContext_[n], KDF.Nh)
//	                        |
//	                   epoch_secret
//	                        |
//	                        +--> DeriveSecret(., <label>) = <secret>
//	                        |
//	                DeriveSecret(., "init")
//	                        |
//	                  init_secret_[n]
//
// KDF.Extract takes the salt from above and the input keying material from
// the left.

// errConsumed reports a secret that was already used and erased.
var errConsumed = errors.New("mls: secret already consumed and erased")

// orZero returns b, or Nh zero bytes if b is empty: RFC 9420's "0" for an
// absent commit_secret or psk_secret.
func (s *Suite) orZero(b []byte) []byte {
	if len(b) == 0 {
		return make([]byte, s.nh)
	}
	return b
}

func (s *Suite) groupContextBytes(ctx *GroupContext) ([]byte, error) {
	if ctx == nil {
		return nil, errors.New("mls: key schedule without a GroupContext")
	}
	if ctx.CipherSuite != s.id {
		return nil, fmt.Errorf("mls: GroupContext of cipher suite %#04x used with suite %#04x", uint16(ctx.CipherSuite), uint16(s.id))
	}
	return ctx.Marshal(), nil
}

// JoinerSecret returns ExpandWithLabel(Extract(initSecret, commitSecret),
// "joiner", ctx, Nh): the secret a Welcome gives new members. An empty
// commitSecret stands for Nh zero bytes (a commit without a path).
func (s *Suite) JoinerSecret(initSecret, commitSecret []byte, ctx *GroupContext) ([]byte, error) {
	gc, err := s.groupContextBytes(ctx)
	if err != nil {
		return nil, err
	}
	return s.joinerSecret(initSecret, commitSecret, gc)
}

func (s *Suite) joinerSecret(initSecret, commitSecret, gc []byte) ([]byte, error) {
	d := deriver{s: s}
	prk := d.extract(initSecret, s.orZero(commitSecret))
	joiner := d.expand(prk, "joiner", gc, s.nh)
	clear(prk)
	return joiner, d.err
}

// WelcomeSecret returns DeriveSecret(Extract(joinerSecret, pskSecret),
// "welcome"), which a new member needs before it can read the GroupInfo
// and so before it knows the GroupContext. An empty pskSecret stands for
// Nh zero bytes (no PSKs).
func (s *Suite) WelcomeSecret(joinerSecret, pskSecret []byte) ([]byte, error) {
	d := deriver{s: s}
	member := d.extract(joinerSecret, s.orZero(pskSecret))
	welcome := d.derive(member, "welcome")
	clear(member)
	return welcome, d.err
}

// WelcomeKeyNonce returns the AEAD key and nonce that encrypt a Welcome's
// GroupInfo (RFC 9420, section 12.4.3.1): ExpandWithLabel(welcomeSecret,
// "key", "", Nk) and ExpandWithLabel(welcomeSecret, "nonce", "", Nn).
func (s *Suite) WelcomeKeyNonce(welcomeSecret []byte) (key, nonce []byte, err error) {
	d := deriver{s: s}
	key = d.expand(welcomeSecret, "key", nil, s.nk)
	nonce = d.expand(welcomeSecret, "nonce", nil, s.nn)
	return key, nonce, d.err
}

// ExternalInit is the joiner's side of an external commit (RFC 9420,
// section 8.3): it encapsulates to the group's external_pub and returns
// the kem_output for the ExternalInit proposal and the init_secret that
// replaces the previous epoch's. Its randomness comes from crypto/rand
// (see HPKESeal).
func (s *Suite) ExternalInit(externalPub []byte) (kemOutput, initSecret []byte, err error) {
	kemOutput, initSecret, err = s.hpkeExport(externalPub, "MLS 1.0 external init secret", s.nh)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external init: %w", err)
	}
	return kemOutput, initSecret, nil
}

// ExternalInitSecret is the members' side of ExternalInit: the init_secret
// from an ExternalInit proposal's kem_output and the epoch's external
// private key.
func (s *Suite) ExternalInitSecret(externalPriv HPKEPrivateKey, kemOutput []byte) ([]byte, error) {
	initSecret, err := s.hpkeImport(externalPriv, kemOutput, "MLS 1.0 external init secret", s.nh)
	if err != nil {
		return nil, fmt.Errorf("mls: external init: %w", err)
	}
	return initSecret, nil
}

// ConfirmationTag returns MAC(confirmationKey, confirmedTranscriptHash)
// (RFC 9420, section 6.1).
func (s *Suite) ConfirmationTag(confirmationKey, confirmedTranscriptHash []byte) []byte {
	return s.MAC(confirmationKey, confirmedTranscriptHash)
}

// VerifyConfirmationTag checks a confirmation tag in constant time and
// returns ErrBadMAC if it is wrong.
func (s *Suite) VerifyConfirmationTag(confirmationKey, confirmedTranscriptHash, tag []byte) error {
	if err := s.VerifyMAC(confirmationKey, confirmedTranscriptHash, tag); err != nil {
		return fmt.Errorf("mls: confirmation tag: %w", err)
	}
	return nil
}

// MembershipTag returns MAC(membershipKey, authenticatedContentTBM), the
// tag on a member's PublicMessage (RFC 9420, section 6.2), given the
// encoded AuthenticatedContentTBM.
func (s *Suite) MembershipTag(membershipKey, authenticatedContentTBM []byte) []byte {
	return s.MAC(membershipKey, authenticatedContentTBM)
}

// VerifyMembershipTag checks a membership tag in constant time and returns
// ErrBadMAC if it is wrong.
func (s *Suite) VerifyMembershipTag(membershipKey, authenticatedContentTBM, tag []byte) error {
	if err := s.VerifyMAC(membershipKey, authenticatedContentTBM, tag); err != nil {
		return fmt.Errorf("mls: membership tag: %w", err)
	}
	return nil
}

// EpochSecrets are one epoch's secrets, derived from the joiner secret,
// the PSK secret and the GroupContext. They cannot be compared and print
// only redacted. Accessors return copies, which the caller should erase
// when done; Erase erases the originals.
type EpochSecrets struct {
	suite *Suite

	joiner, welcome secret
	// Derived from epoch_secret, which is erased once they are.
	senderData, encryption, exporter, external, confirmation secret
	membership, resumption, authenticator, init              secret

	treeBuilt bool // encryption_secret went into a SecretTree and is erased
	erased    bool
}

// NewEpochSecrets runs the key schedule for a member moving to the epoch
// ctx describes: initSecret is the previous epoch's init_secret (or, for a
// new group, a fresh random secret of Nh bytes; after an external commit,
// ExternalInit's), commitSecret the commit's (empty: Nh zero bytes) and
// pskSecret PSKSecret's (empty: no PSKs). ctx must be of s's suite.
func (s *Suite) NewEpochSecrets(initSecret, commitSecret, pskSecret []byte, ctx *GroupContext) (*EpochSecrets, error) {
	gc, err := s.groupContextBytes(ctx)
	if err != nil {
		return nil, err
	}
	return s.newEpochSecrets(initSecret, commitSecret, pskSecret, gc)
}

func (s *Suite) newEpochSecrets(initSecret, commitSecret, pskSecret, gc []byte) (*EpochSecrets, error) {
	joiner, err := s.joinerSecret(initSecret, commitSecret, gc)
	if err != nil {
		return nil, fmt.Errorf("mls: key schedule: %w", err)
	}
	return s.epochSecretsFromJoiner(joiner, pskSecret, gc)
}

// EpochSecretsFromJoiner runs the key schedule from the joiner_secret, as
// a new member does with the one its Welcome carries. It copies
// joinerSecret.
func (s *Suite) EpochSecretsFromJoiner(joinerSecret, pskSecret []byte, ctx *GroupContext) (*EpochSecrets, error) {
	gc, err := s.groupContextBytes(ctx)
	if err != nil {
		return nil, err
	}
	return s.epochSecretsFromJoiner(append([]byte(nil), joinerSecret...), pskSecret, gc)
}

// epochSecretsFromJoiner takes ownership of joiner.
func (s *Suite) epochSecretsFromJoiner(joiner, pskSecret, gc []byte) (*EpochSecrets, error) {
	d := deriver{s: s}
	member := d.extract(joiner, s.orZero(pskSecret))
	welcome := d.derive(member, "welcome")
	epoch := d.expand(member, "epoch", gc, s.nh)
	clear(member)
	e := &EpochSecrets{
		suite:         s,
		joiner:        newSecret(joiner),
		welcome:       newSecret(welcome),
		senderData:    newSecret(d.derive(epoch, "sender data")),
		encryption:    newSecret(d.derive(epoch, "encryption")),
		exporter:      newSecret(d.derive(epoch, "exporter")),
		external:      newSecret(d.derive(epoch, "external")),
		confirmation:  newSecret(d.derive(epoch, "confirm")),
		membership:    newSecret(d.derive(epoch, "membership")),
		resumption:    newSecret(d.derive(epoch, "resumption")),
		authenticator: newSecret(d.derive(epoch, "authentication")),
		init:          newSecret(d.derive(epoch, "init")),
	}
	clear(epoch)
	if d.err != nil {
		e.Erase()
		return nil, fmt.Errorf("mls: key schedule: %w", d.err)
	}
	return e, nil
}

// Next runs the key schedule for the following epoch from this epoch's
// init_secret. It does not erase this epoch: a commit can still turn out
// invalid. Erase the old epoch once the new one is adopted.
func (e *EpochSecrets) Next(commitSecret, pskSecret []byte, ctx *GroupContext) (*EpochSecrets, error) {
	if e.erased {
		return nil, fmt.Errorf("mls: next epoch: init_secret: %w", errConsumed)
	}
	return e.suite.NewEpochSecrets(e.init.bytes(), commitSecret, pskSecret, ctx)
}

// Suite returns the suite the secrets belong to.
func (e *EpochSecrets) Suite() *Suite { return e.suite }

// JoinerSecret returns a copy of joiner_secret.
func (e *EpochSecrets) JoinerSecret() []byte { return e.joiner.clone() }

// WelcomeSecret returns a copy of welcome_secret.
func (e *EpochSecrets) WelcomeSecret() []byte { return e.welcome.clone() }

// SenderDataSecret returns a copy of sender_data_secret.
func (e *EpochSecrets) SenderDataSecret() []byte { return e.senderData.clone() }

// EncryptionSecret returns a copy of encryption_secret, the root of the
// secret tree, or nil once SecretTree consumed it.
func (e *EpochSecrets) EncryptionSecret() []byte {
	if e.treeBuilt || e.erased {
		return nil
	}
	return e.encryption.clone()
}

// ExporterSecret returns a copy of exporter_secret.
func (e *EpochSecrets) ExporterSecret() []byte { return e.exporter.clone() }

// ExternalSecret returns a copy of external_secret.
func (e *EpochSecrets) ExternalSecret() []byte { return e.external.clone() }

// ConfirmationKey returns a copy of confirmation_key.
func (e *EpochSecrets) ConfirmationKey() []byte { return e.confirmation.clone() }

// MembershipKey returns a copy of membership_key.
func (e *EpochSecrets) MembershipKey() []byte { return e.membership.clone() }

// ResumptionPSK returns a copy of resumption_psk, to keep for later
// resumption PSKs.
func (e *EpochSecrets) ResumptionPSK() []byte { return e.resumption.clone() }

// EpochAuthenticator returns a copy of epoch_authenticator, which members
// can compare out of band to confirm they share the epoch.
func (e *EpochSecrets) EpochAuthenticator() []byte { return e.authenticator.clone() }

// InitSecret returns a copy of the init_secret the next epoch starts from.
func (e *EpochSecrets) InitSecret() []byte { return e.init.clone() }

// Export is the MLS-Exporter (RFC 9420, section 8.5):
// ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported",
// Hash(context), length).
func (e *EpochSecrets) Export(label string, context []byte, length int) ([]byte, error) {
	if e.erased {
		return nil, fmt.Errorf("mls: exporter: %w", errConsumed)
	}
	s := e.suite
	d := deriver{s: s}
	derived := d.derive(e.exporter.bytes(), label)
	out := d.expand(derived, "exported", s.Hash(context), length)
	clear(derived)
	if d.err != nil {
		return nil, fmt.Errorf("mls: exporter: %w", d.err)
	}
	return out, nil
}

// ExternalKeyPair returns the epoch's external key pair,
// DeriveKeyPair(external_secret); its public key is the external_pub a
// GroupInfo publishes for external commits.
func (e *EpochSecrets) ExternalKeyPair() (HPKEPrivateKey, error) {
	if e.erased {
		return HPKEPrivateKey{}, fmt.Errorf("mls: external key pair: %w", errConsumed)
	}
	return e.suite.DeriveKeyPair(e.external.bytes())
}

// ConfirmationTag returns the confirmation tag over a confirmed transcript
// hash with the epoch's confirmation_key.
func (e *EpochSecrets) ConfirmationTag(confirmedTranscriptHash []byte) []byte {
	return e.suite.ConfirmationTag(e.confirmation.bytes(), confirmedTranscriptHash)
}

// VerifyConfirmationTag checks a confirmation tag with the epoch's
// confirmation_key.
func (e *EpochSecrets) VerifyConfirmationTag(confirmedTranscriptHash, tag []byte) error {
	return e.suite.VerifyConfirmationTag(e.confirmation.bytes(), confirmedTranscriptHash, tag)
}

// MembershipTag returns the membership tag over an encoded
// AuthenticatedContentTBM with the epoch's membership_key.
func (e *EpochSecrets) MembershipTag(authenticatedContentTBM []byte) []byte {
	return e.suite.MembershipTag(e.membership.bytes(), authenticatedContentTBM)
}

// VerifyMembershipTag checks a membership tag with the epoch's
// membership_key.
func (e *EpochSecrets) VerifyMembershipTag(authenticatedContentTBM, tag []byte) error {
	return e.suite.VerifyMembershipTag(e.membership.bytes(), authenticatedContentTBM, tag)
}

// SenderDataKeyNonce returns the key and nonce that protect a
// PrivateMessage's sender data (see Suite.SenderDataKeyNonce).
func (e *EpochSecrets) SenderDataKeyNonce(ciphertext []byte) (key, nonce []byte, err error) {
	if e.erased {
		return nil, nil, fmt.Errorf("mls: sender data key: %w", errConsumed)
	}
	return e.suite.SenderDataKeyNonce(e.senderData.bytes(), ciphertext)
}

// SecretTree builds the epoch's secret tree over nLeaves leaves from
// encryption_secret, which it then erases here: the tree holds the only
// copy. A second call fails.
func (e *EpochSecrets) SecretTree(nLeaves uint32) (*SecretTree, error) {
	if e.treeBuilt || e.erased {
		return nil, fmt.Errorf("mls: secret tree: encryption_secret: %w", errConsumed)
	}
	t, err := e.suite.NewSecretTree(e.encryption.bytes(), nLeaves)
	if err != nil {
		return nil, err
	}
	e.encryption.erase()
	e.treeBuilt = true
	return t, nil
}

// Erase zeroes every secret of the epoch. The EpochSecrets is unusable
// afterwards.
func (e *EpochSecrets) Erase() {
	for _, s := range []secret{e.joiner, e.welcome, e.senderData, e.encryption, e.exporter, e.external,
		e.confirmation, e.membership, e.resumption, e.authenticator, e.init} {
		s.erase()
	}
	e.erased = true
}

// String returns a redacted form.
func (e *EpochSecrets) String() string {
	if e == nil || e.suite == nil {
		return "mls-epoch-secrets(nil)"
	}
	return "mls-epoch-secrets(REDACTED, " + e.suite.name + ")"
}

// GoString implements fmt.GoStringer with the redacted form.
func (e *EpochSecrets) GoString() string { return e.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (e *EpochSecrets) LogValue() slog.Value { return slog.StringValue(e.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (e *EpochSecrets) Format(f fmt.State, _ rune) { io.WriteString(f, e.String()) }
