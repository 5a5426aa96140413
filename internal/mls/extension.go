package mls

import "fmt"

// The data of the extensions RFC 9420 defines. Extension (types.go) keeps
// any extension as a type and opaque data; these types decode the data of
// the known ones, with decodeExtension, and build them, with
// makeExtension.

// ApplicationID is the application_id extension's data (RFC 9420, section
// 5.3.3): an application-level identifier for a leaf, not authenticated by
// the Authentication Service.
type ApplicationID []byte

func (a ApplicationID) encode(w *Writer)  { w.Opaque(a) }
func (a *ApplicationID) decode(r *Reader) { *a = r.Opaque() }

// RequiredCapabilities is the required_capabilities extension's data (RFC
// 9420, section 11.1): what every member's capabilities must include.
type RequiredCapabilities struct {
	Extensions  []ExtensionType
	Proposals   []ProposalType
	Credentials []CredentialType
}

func (c *RequiredCapabilities) encode(w *Writer) {
	encodeU16s(w, c.Extensions)
	encodeU16s(w, c.Proposals)
	encodeU16s(w, c.Credentials)
}

func (c *RequiredCapabilities) decode(r *Reader) {
	c.Extensions = decodeU16s[ExtensionType](r)
	c.Proposals = decodeU16s[ProposalType](r)
	c.Credentials = decodeU16s[CredentialType](r)
}

// ExternalPub is the external_pub extension's data (RFC 9420, section
// 12.4.3.2): the HPKE public key an external joiner encrypts to.
type ExternalPub struct {
	PublicKey []byte
}

func (e *ExternalPub) encode(w *Writer) { w.Opaque(e.PublicKey) }
func (e *ExternalPub) decode(r *Reader) { e.PublicKey = r.Opaque() }

// ExternalSender is a party outside the group allowed to send proposals
// (RFC 9420, section 12.1.8.1).
type ExternalSender struct {
	// SignatureKey is a SignaturePublicKey.
	SignatureKey []byte
	Credential   Credential
}

func (e *ExternalSender) encode(w *Writer) {
	w.Opaque(e.SignatureKey)
	e.Credential.encode(w)
}

func (e *ExternalSender) decode(r *Reader) {
	e.SignatureKey = r.Opaque()
	e.Credential.decode(r)
}

// ExternalSenders is the external_senders extension's data; a Sender of
// type external names an entry by its index.
type ExternalSenders []ExternalSender

func (s ExternalSenders) encode(w *Writer) {
	w.Vector(func(w *Writer) {
		for i := range s {
			s[i].encode(w)
		}
	})
}

func (s *ExternalSenders) decode(r *Reader) {
	senders := ExternalSenders{}
	r.Items(func(r *Reader) {
		var e ExternalSender
		e.decode(r)
		senders = append(senders, e)
	})
	*s = senders
}

// makeExtension returns an extension of type t whose data is v's encoding.
func makeExtension(t ExtensionType, v wireEncoder) Extension {
	return Extension{Type: t, Data: marshalWire(v)}
}

// findExtension returns the data of the extension of type t in exts.
func findExtension(exts []Extension, t ExtensionType) ([]byte, bool) {
	for _, e := range exts {
		if e.Type == t {
			return e.Data, true
		}
	}
	return nil, false
}

// decodeExtension decodes the data of the extension of type t in exts
// into v, and reports whether there was one. The data must be exactly one
// encoded value; v aliases it.
func decodeExtension(exts []Extension, t ExtensionType, v wireDecoder) (bool, error) {
	data, ok := findExtension(exts, t)
	if !ok {
		return false, nil
	}
	if err := unmarshalWire(data, v); err != nil {
		return true, fmt.Errorf("extension %#04x: %w", uint16(t), err)
	}
	return true, nil
}
