package mls

import "fmt"

// The transcript hashes (RFC 9420, section 8.2) chain every commit into
// the group's history, so that members who agree on an epoch agree on how
// the group got there:
//
//	confirmed_transcript_hash_[n] = Hash(interim_transcript_hash_[n-1] || ConfirmedTranscriptHashInput_[n])
//	interim_transcript_hash_[n]   = Hash(confirmed_transcript_hash_[n] || InterimTranscriptHashInput_[n])
//
// where ConfirmedTranscriptHashInput is the commit's wire format,
// FramedContent and signature, and InterimTranscriptHashInput its
// confirmation tag. The confirmed transcript hash goes into the new
// epoch's GroupContext; the confirmation tag is the MAC of it under the new
// epoch's confirmation_key, so it cannot be part of it, and is chained in
// through the interim hash instead.
//
// A new group starts with an empty confirmed transcript hash; its creator
// computes the confirmation tag over that empty hash with epoch 0's
// confirmation_key, and the interim transcript hash from both (RFC 9420,
// section 11).

// ConfirmedTranscriptHash returns the confirmed transcript hash of the
// epoch that the commit ac starts, given the interim transcript hash of the
// epoch it was sent in. ac must be a signed commit sent as a PublicMessage
// or PrivateMessage; its confirmation tag is not covered.
func (s *Suite) ConfirmedTranscriptHash(interimBefore []byte, ac *AuthenticatedContent) ([]byte, error) {
	if ac == nil || ac.Content.ContentType != ContentCommit || ac.Content.Commit == nil {
		return nil, fmt.Errorf("%w: the confirmed transcript hash covers commits only", ErrUnexpectedContent)
	}
	if ac.WireFormat != WireFormatPublicMessage && ac.WireFormat != WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: commit in wire format %d", ErrUnexpectedContent, ac.WireFormat)
	}
	if err := checkSender(&ac.Content.Sender); err != nil {
		return nil, err
	}
	var w Writer
	w.Raw(interimBefore)
	// ConfirmedTranscriptHashInput.
	w.U16(uint16(ac.WireFormat))
	ac.Content.encode(&w)
	w.Opaque(ac.Auth.Signature)
	return s.Hash(w.Bytes()), nil
}

// InterimTranscriptHash returns the interim transcript hash of an epoch
// from its confirmed transcript hash and the confirmation tag of the
// commit that started it (or, for epoch 0, the creator's).
func (s *Suite) InterimTranscriptHash(confirmed, confirmationTag []byte) []byte {
	var w Writer
	w.Raw(confirmed)
	// InterimTranscriptHashInput.
	w.Opaque(confirmationTag)
	return s.Hash(w.Bytes())
}
