package mls

// CredentialType names a kind of credential (RFC 9420, section 5.3, and
// the IANA "MLS Credential Types" registry).
type CredentialType uint16

// The credential types of RFC 9420.
const (
	CredentialBasic CredentialType = 0x0001
	CredentialX509  CredentialType = 0x0002
)

// Credential binds a client's signature key to an identity (RFC 9420,
// section 5.3).
//
// Credential types are extensible (section 13.3): an application may
// define its own and use it once every member supports it. The RFC gives
// no length prefix around the credential body, so a decoder can only skip
// a type it knows. This package decodes the body of any type other than
// basic and x509 as one opaque<V> vector, into Data: both RFC 9420 types
// have that shape, OpenMLS decodes unknown types the same way, and so do
// the credentials of draft-ietf-mls-extensions. Whether such a credential
// is acceptable is for the credential validation to decide (section
// 5.3.1): an unsupported type makes the enclosing message invalid (section
// 13.5). Type 0 is reserved and refused.
type Credential struct {
	Type CredentialType
	// Identity is a basic credential's identity.
	Identity []byte
	// Certificates is an x509 credential's chain: DER certificates, the
	// end-entity certificate first.
	Certificates [][]byte
	// Data is the body of a credential of any other type.
	Data []byte
}

func (c *Credential) encode(w *Writer) {
	w.U16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		w.Opaque(c.Identity)
	case CredentialX509:
		w.Vector(func(w *Writer) {
			for _, cert := range c.Certificates {
				w.Opaque(cert)
			}
		})
	case 0:
		badUnion("credential type", c.Type)
	default:
		w.Opaque(c.Data)
	}
}

func (c *Credential) decode(r *Reader) {
	c.Type = CredentialType(r.U16())
	switch c.Type {
	case CredentialBasic:
		c.Identity = r.Opaque()
	case CredentialX509:
		c.Certificates = [][]byte{}
		r.Items(func(r *Reader) { c.Certificates = append(c.Certificates, r.Opaque()) })
	case 0:
		r.Fail("credential type 0 (reserved)")
	default:
		c.Data = r.Opaque()
	}
}
