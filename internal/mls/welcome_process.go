package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Welcome messages (RFC 9420, section 12.4.3.1). The committer encrypts
// the new epoch's GroupInfo under a key from welcome_secret, and to each
// new member, under the init key of its KeyPackage, the GroupSecrets from
// which it derives welcome_secret and the rest of the key schedule:
//
//	encrypted_group_info    = AEAD.Seal(welcome_key, welcome_nonce, "", GroupInfo)
//	encrypted_group_secrets = EncryptWithLabel(init_key, "Welcome", encrypted_group_info, GroupSecrets)
//
// Building the ratchet tree the GroupInfo describes, and checking it and
// the new member's place in it, is the group layer's work: here it only
// supplies the signer's key.

// Errors of joining by Welcome.
var (
	// ErrNotInWelcome: the Welcome holds no secrets for the key package.
	ErrNotInWelcome = errors.New("mls: welcome is not for this key package")
	// ErrUnknownPSK: a pre-shared key the Welcome uses is not held.
	ErrUnknownPSK = errors.New("mls: pre-shared key not held")
	// ErrWrongSuite: a Welcome, KeyPackage or GroupInfo is of another
	// cipher suite than the one processing it.
	ErrWrongSuite = errors.New("mls: cipher suite mismatch")
)

// welcomeLabel is the EncryptWithLabel label of GroupSecrets.
const welcomeLabel = "Welcome"

// PSKFunc returns the value of the pre-shared key id names, or an error
// wrapping ErrUnknownPSK if the client does not hold it. The value stays
// the caller's.
type PSKFunc func(id *PreSharedKeyID) ([]byte, error)

// SignGroupInfo signs gi as the member at gi.Signer, setting gi.Signature
// to SignWithLabel(., "GroupInfoTBS", GroupInfoTBS) (RFC 9420, section
// 12.4.3).
func (s *Suite) SignGroupInfo(gi *GroupInfo, signer SignaturePrivateKey) error {
	if gi.GroupContext.CipherSuite != s.id {
		return fmt.Errorf("mls: sign GroupInfo: %w: group of suite %#04x", ErrWrongSuite, uint16(gi.GroupContext.CipherSuite))
	}
	sig, err := s.SignWithLabel(signer, "GroupInfoTBS", gi.tbs())
	if err != nil {
		return err
	}
	gi.Signature = sig
	return nil
}

// VerifyGroupInfo checks gi's signature under signatureKey, the
// SignaturePublicKey of the leaf at gi.Signer. It returns an error
// wrapping ErrBadSignature if the signature does not verify.
func (s *Suite) VerifyGroupInfo(gi *GroupInfo, signatureKey []byte) error {
	if gi.GroupContext.CipherSuite != s.id {
		return fmt.Errorf("mls: verify GroupInfo: %w: group of suite %#04x", ErrWrongSuite, uint16(gi.GroupContext.CipherSuite))
	}
	return s.VerifyWithLabel(signatureKey, "GroupInfoTBS", gi.tbs(), gi.Signature)
}

// NewMember is one recipient of a Welcome.
type NewMember struct {
	// KeyPackage is the one the Add proposal carried: the GroupSecrets are
	// encrypted to its init key and named by its KeyPackageRef.
	KeyPackage *KeyPackage
	// PathSecret is the path secret of the new member's lowest common
	// ancestor with the committer, or nil if the commit had no path. It
	// stays the caller's.
	PathSecret []byte
}

// NewWelcome builds the Welcome of a commit that adds members: gi is the
// new epoch's GroupInfo, signed; epoch its secrets, whose joiner_secret
// and welcome_secret it uses; psks the IDs of the pre-shared keys the
// commit injected, in order. The HPKE encryptions draw from crypto/rand
// (see HPKESeal).
func (s *Suite) NewWelcome(gi *GroupInfo, epoch *EpochSecrets, psks []PreSharedKeyID, members []NewMember) (*Welcome, error) {
	if epoch == nil || gi.GroupContext.CipherSuite != s.id || epoch.suite.id != s.id {
		return nil, fmt.Errorf("mls: new Welcome: %w", ErrWrongSuite)
	}
	if len(gi.Signature) == 0 {
		return nil, errors.New("mls: new Welcome: GroupInfo not signed")
	}
	if epoch.erased {
		return nil, fmt.Errorf("mls: new Welcome: %w", errConsumed)
	}
	key, nonce, err := s.WelcomeKeyNonce(epoch.welcome.bytes())
	if err != nil {
		return nil, fmt.Errorf("mls: new Welcome: %w", err)
	}
	encGroupInfo, err := s.AEADSeal(key, nonce, nil, gi.Marshal())
	clear(key)
	clear(nonce)
	if err != nil {
		return nil, fmt.Errorf("mls: new Welcome: %w", err)
	}
	w := &Welcome{CipherSuite: s.id, Secrets: make([]EncryptedGroupSecrets, 0, len(members)), EncryptedGroupInfo: encGroupInfo}
	for i, m := range members {
		kp := m.KeyPackage
		if kp == nil || kp.CipherSuite != s.id {
			return nil, fmt.Errorf("mls: new Welcome: member %d: %w: key package of another suite, or none", i, ErrWrongSuite)
		}
		gs := GroupSecrets{JoinerSecret: epoch.joiner.bytes(), PathSecret: m.PathSecret, PSKs: psks}
		plaintext := marshalWire(&gs)
		kemOutput, ct, err := s.EncryptWithLabel(kp.InitKey, welcomeLabel, encGroupInfo, plaintext)
		clear(plaintext)
		if err != nil {
			return nil, fmt.Errorf("mls: new Welcome: member %d: %w", i, err)
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{
			NewMember:             s.MakeKeyPackageRef(kp.Marshal()),
			EncryptedGroupSecrets: HPKECiphertext{KEMOutput: kemOutput, Ciphertext: ct},
		})
	}
	return w, nil
}

// Joined is what a new member learns from a Welcome: the verified
// GroupInfo, the epoch's secrets, the interim transcript hash, and what
// the group layer needs to finish joining (the PSKs used, to check them,
// and the path secret, to set the private keys of its path). It prints
// only redacted.
type Joined struct {
	GroupInfo *GroupInfo
	// Epoch holds the epoch's secrets; build the secret tree from it once
	// the ratchet tree gives the number of leaves.
	Epoch *EpochSecrets
	// InterimTranscriptHash is the epoch's, computed from the GroupInfo's
	// confirmed transcript hash and confirmation tag.
	InterimTranscriptHash []byte
	// PSKs are the pre-shared keys the GroupSecrets named, in order.
	PSKs []PreSharedKeyID

	pathSecret secret
}

// PathSecret returns a copy of the path secret the Welcome carried, nil
// if there was none. The caller should erase it once the path's keys are
// derived.
func (j *Joined) PathSecret() []byte { return j.pathSecret.clone() }

// Erase zeroes the path secret and the epoch's secrets.
func (j *Joined) Erase() {
	j.pathSecret.erase()
	if j.Epoch != nil {
		j.Epoch.Erase()
	}
}

// String returns a redacted form.
func (j *Joined) String() string {
	if j == nil || j.GroupInfo == nil {
		return "mls-joined(nil)"
	}
	gc := &j.GroupInfo.GroupContext
	return fmt.Sprintf("mls-joined(REDACTED, group=%x, epoch=%d)", gc.GroupID, gc.Epoch)
}

// GoString implements fmt.GoStringer with the redacted form.
func (j *Joined) GoString() string { return j.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (j *Joined) LogValue() slog.Value { return slog.StringValue(j.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (j *Joined) Format(f fmt.State, _ rune) { io.WriteString(f, j.String()) }

// ProcessWelcome joins a group by Welcome (RFC 9420, section 12.4.3.1),
// as the client that published kp and holds its init key: it finds the
// EncryptedGroupSecrets named by kp's KeyPackageRef (ErrNotInWelcome),
// decrypts the GroupSecrets (ErrDecrypt, ErrDecode), derives psk_secret
// from the pre-shared keys they name with psk (ErrUnknownPSK; psk may be
// nil if none are held) and welcome_secret, decrypts the GroupInfo
// (ErrDecrypt, ErrDecode), checks its signature under the key signerKey
// returns (ErrBadSignature), runs the key schedule and checks the
// GroupInfo's confirmation tag (ErrBadMAC).
//
// signerKey gets the decrypted GroupInfo, unverified, and returns the
// SignaturePublicKey of the leaf at GroupInfo.Signer: the group layer
// builds the ratchet tree (from the ratchet_tree extension or elsewhere)
// to find it. Validating that tree and the GroupContext's extensions,
// and the PSKs' kinds, remains the caller's work.
//
// The secrets the Welcome carried are erased once derived from; the
// result holds what is still needed.
func (s *Suite) ProcessWelcome(w *Welcome, kp *KeyPackage, initKey HPKEPrivateKey, psk PSKFunc, signerKey func(gi *GroupInfo) ([]byte, error)) (*Joined, error) {
	if w.CipherSuite != s.id || kp.CipherSuite != s.id {
		return nil, fmt.Errorf("mls: process Welcome: %w: Welcome of suite %#04x, key package of %#04x, processed with %#04x",
			ErrWrongSuite, uint16(w.CipherSuite), uint16(kp.CipherSuite), uint16(s.id))
	}
	if !bytes.Equal(initKey.Public(), kp.InitKey) {
		return nil, fmt.Errorf("mls: process Welcome: %w: the init key is not the key package's", ErrMalformedKey)
	}
	ref := s.MakeKeyPackageRef(kp.Marshal())
	var egs *EncryptedGroupSecrets
	for i := range w.Secrets {
		if bytes.Equal(w.Secrets[i].NewMember, ref) {
			egs = &w.Secrets[i]
			break
		}
	}
	if egs == nil {
		return nil, fmt.Errorf("mls: process Welcome: %w", ErrNotInWelcome)
	}
	plaintext, err := s.DecryptWithLabel(initKey, welcomeLabel, w.EncryptedGroupInfo,
		egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls: process Welcome: group secrets: %w", err)
	}
	defer clear(plaintext)
	var gs GroupSecrets
	if err := unmarshalWire(plaintext, &gs); err != nil {
		return nil, fmt.Errorf("mls: process Welcome: group secrets: %w", err)
	}
	// gs aliases plaintext, erased on return: keep copies of what outlives
	// it.
	pskIDs := make([]PreSharedKeyID, len(gs.PSKs))
	for i, id := range gs.PSKs {
		id.ID, id.PSKGroupID, id.Nonce = bytes.Clone(id.ID), bytes.Clone(id.PSKGroupID), bytes.Clone(id.Nonce)
		pskIDs[i] = id
	}
	pskSecret, err := s.welcomePSKSecret(pskIDs, psk)
	if err != nil {
		return nil, fmt.Errorf("mls: process Welcome: %w", err)
	}
	defer clear(pskSecret)

	welcomeSecret, err := s.WelcomeSecret(gs.JoinerSecret, pskSecret)
	if err != nil {
		return nil, fmt.Errorf("mls: process Welcome: %w", err)
	}
	key, nonce, err := s.WelcomeKeyNonce(welcomeSecret)
	clear(welcomeSecret)
	if err != nil {
		return nil, fmt.Errorf("mls: process Welcome: %w", err)
	}
	giPlain, err := s.AEADOpen(key, nonce, nil, w.EncryptedGroupInfo)
	clear(key)
	clear(nonce)
	if err != nil {
		return nil, fmt.Errorf("mls: process Welcome: group info: %w", err)
	}
	gi := new(GroupInfo)
	if err := unmarshalWire(giPlain, gi); err != nil {
		return nil, fmt.Errorf("mls: process Welcome: group info: %w", err)
	}
	gc := &gi.GroupContext
	if gc.Version != MLS10 || gc.CipherSuite != s.id {
		return nil, fmt.Errorf("mls: process Welcome: %w: group of version %d and suite %#04x", ErrWrongSuite, gc.Version, uint16(gc.CipherSuite))
	}
	if signerKey == nil {
		return nil, errors.New("mls: process Welcome: no signer key function")
	}
	pub, err := signerKey(gi)
	if err != nil {
		return nil, fmt.Errorf("mls: process Welcome: GroupInfo signer %d: %w", gi.Signer, err)
	}
	if err := s.VerifyGroupInfo(gi, pub); err != nil {
		return nil, fmt.Errorf("mls: process Welcome: %w", err)
	}

	epoch, err := s.EpochSecretsFromJoiner(gs.JoinerSecret, pskSecret, gc)
	if err != nil {
		return nil, fmt.Errorf("mls: process Welcome: %w", err)
	}
	if err := epoch.VerifyConfirmationTag(gc.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		epoch.Erase()
		return nil, fmt.Errorf("mls: process Welcome: GroupInfo: %w", err)
	}
	j := &Joined{
		GroupInfo:             gi,
		Epoch:                 epoch,
		InterimTranscriptHash: s.InterimTranscriptHash(gc.ConfirmedTranscriptHash, gi.ConfirmationTag),
		PSKs:                  pskIDs,
	}
	if gs.PathSecret != nil {
		j.pathSecret = newSecret(bytes.Clone(gs.PathSecret))
	}
	return j, nil
}

// welcomePSKSecret returns the psk_secret of the PSKs ids names, with
// their values from lookup.
func (s *Suite) welcomePSKSecret(ids []PreSharedKeyID, lookup PSKFunc) ([]byte, error) {
	if len(ids) == 0 {
		return s.PSKSecret(nil)
	}
	if lookup == nil {
		return nil, fmt.Errorf("%w: the Welcome uses %d and none are held", ErrUnknownPSK, len(ids))
	}
	psks := make([]PSK, len(ids))
	for i := range ids {
		v, err := lookup(&ids[i])
		if err != nil {
			return nil, fmt.Errorf("PSK %d: %w", i, err)
		}
		psks[i] = PSK{ID: ids[i], Secret: v}
	}
	return s.PSKSecret(psks)
}
