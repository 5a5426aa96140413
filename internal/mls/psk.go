package mls

import "fmt"

// PSK is a pre-shared key to inject into an epoch: its ID, as it appears in
// a PreSharedKey proposal, and its value.
type PSK struct {
	ID     PreSharedKeyID
	Secret []byte
}

// PSKSecret combines psks, in the order their proposals appear, into the
// psk_secret of the key schedule (RFC 9420, section 8.4):
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel(id_[i], i, n), KDF.Nh)
//	psk_secret_[0]    = 0
//	psk_secret_[i+1]  = KDF.Extract(psk_input_[i], psk_secret_[i])
//
// where PSKLabel is struct { PreSharedKeyID id; uint16 index; uint16 count; }
// and 0 is Nh zero bytes. With no PSKs the result is Nh zero bytes. The
// intermediate values are erased; the PSK values are not (they belong to
// the caller).
func (s *Suite) PSKSecret(psks []PSK) ([]byte, error) {
	if len(psks) > 0xffff {
		return nil, fmt.Errorf("mls: %d PSKs: more than a uint16 counts", len(psks))
	}
	acc := make([]byte, s.nh)
	for i, p := range psks {
		extracted, err := s.Extract(nil, p.Secret)
		if err != nil {
			return nil, fmt.Errorf("mls: PSK %d: %w", i, err)
		}
		var w Writer
		p.ID.encode(&w)
		w.U16(uint16(i))
		w.U16(uint16(len(psks)))
		input, err := s.ExpandWithLabel(extracted, "derived psk", w.Bytes(), s.nh)
		clear(extracted)
		if err != nil {
			return nil, fmt.Errorf("mls: PSK %d: %w", i, err)
		}
		next, err := s.Extract(input, acc)
		clear(input)
		clear(acc)
		if err != nil {
			return nil, fmt.Errorf("mls: PSK %d: %w", i, err)
		}
		acc = next
	}
	return acc, nil
}
