package mls

// Wire types shared by every layer. Each wire type has unexported
// encode(*Writer) and decode(*Reader) methods; decode records errors on the
// Reader (see codec.go).

// ProtocolVersion is the MLS protocol version.
type ProtocolVersion uint16

// MLS10 is MLS 1.0, the version RFC 9420 defines.
const MLS10 ProtocolVersion = 1

// CipherSuite names an MLS cipher suite (RFC 9420, section 17.1).
type CipherSuite uint16

// The cipher suites this package knows by number. See suite.go for which it
// implements.
const (
	// X25519, AES-128-GCM, SHA-256, Ed25519: mandatory to implement.
	MLS128DHKEMX25519AES128GCMSHA256Ed25519 CipherSuite = 0x0001
	MLS128DHKEMP256AES128GCMSHA256P256      CipherSuite = 0x0002
	MLS128DHKEMX25519CHACHA20SHA256Ed25519  CipherSuite = 0x0003
	MLS256DHKEMX448AES256GCMSHA512Ed448     CipherSuite = 0x0004
	MLS256DHKEMP521AES256GCMSHA512P521      CipherSuite = 0x0005
	MLS256DHKEMX448CHACHA20SHA512Ed448      CipherSuite = 0x0006
	MLS256DHKEMP384AES256GCMSHA384P384      CipherSuite = 0x0007
	// ts-mls's suite 83: X-Wing (ML-KEM-768 + X25519), AES-256-GCM, SHA-512,
	// Ed25519, used to test post-quantum interoperability.
	TSMLS83XWingAES256GCMSHA512Ed25519 CipherSuite = 0x0053
	// draft-ietf-mls-pq-ciphersuites' MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519
	// (X-Wing KEM 0x647a), under a private-use code point until IANA assigns
	// one. Hotline's default for new groups.
	HotlinePQXWingAES256GCMSHA384Ed25519 CipherSuite = 0xF0A1
)

// ExtensionType names an extension (RFC 9420, section 17.3).
type ExtensionType uint16

// The extension types of RFC 9420.
const (
	ExtApplicationID        ExtensionType = 0x0001
	ExtRatchetTree          ExtensionType = 0x0002
	ExtRequiredCapabilities ExtensionType = 0x0003
	ExtExternalPub          ExtensionType = 0x0004
	ExtExternalSenders      ExtensionType = 0x0005
)

// Extension is a typed, opaque extension value.
type Extension struct {
	Type ExtensionType
	Data []byte
}

func encodeExtensions(w *Writer, exts []Extension) {
	w.Vector(func(w *Writer) {
		for _, e := range exts {
			w.U16(uint16(e.Type))
			w.Opaque(e.Data)
		}
	})
}

// decodeExtensions reads a vector of extensions, refusing a type that
// appears twice (RFC 9420, section 13.4).
func decodeExtensions(r *Reader) []Extension {
	exts := []Extension{}
	seen := map[ExtensionType]bool{}
	r.Items(func(r *Reader) {
		e := Extension{Type: ExtensionType(r.U16()), Data: r.Opaque()}
		if seen[e.Type] {
			r.Fail("extension type %d repeated", e.Type)
		}
		seen[e.Type] = true
		exts = append(exts, e)
	})
	return exts
}

// GroupContext is the group's shared state that every epoch's secrets are
// bound to (RFC 9420, section 8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

func (g *GroupContext) encode(w *Writer) {
	w.U16(uint16(g.Version))
	w.U16(uint16(g.CipherSuite))
	w.Opaque(g.GroupID)
	w.U64(g.Epoch)
	w.Opaque(g.TreeHash)
	w.Opaque(g.ConfirmedTranscriptHash)
	encodeExtensions(w, g.Extensions)
}

func (g *GroupContext) decode(r *Reader) {
	g.Version = ProtocolVersion(r.U16())
	g.CipherSuite = CipherSuite(r.U16())
	g.GroupID = r.Opaque()
	g.Epoch = r.U64()
	g.TreeHash = r.Opaque()
	g.ConfirmedTranscriptHash = r.Opaque()
	g.Extensions = decodeExtensions(r)
}

// Marshal returns the encoded GroupContext.
func (g *GroupContext) Marshal() []byte {
	var w Writer
	g.encode(&w)
	return w.Bytes()
}

// PSKType says where a pre-shared key comes from.
type PSKType uint8

// The PSK types.
const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage says why a resumption PSK is used.
type ResumptionPSKUsage uint8

// The resumption PSK usages.
const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReinit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// PreSharedKeyID names a pre-shared key (RFC 9420, section 8.4).
type PreSharedKeyID struct {
	Type PSKType
	// External PSKs.
	ID []byte
	// Resumption PSKs.
	Usage      ResumptionPSKUsage
	PSKGroupID []byte
	PSKEpoch   uint64
	// Both.
	Nonce []byte
}

func (p *PreSharedKeyID) encode(w *Writer) {
	w.U8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		w.Opaque(p.ID)
	case PSKResumption:
		w.U8(uint8(p.Usage))
		w.Opaque(p.PSKGroupID)
		w.U64(p.PSKEpoch)
	}
	w.Opaque(p.Nonce)
}

func (p *PreSharedKeyID) decode(r *Reader) {
	p.Type = PSKType(r.U8())
	switch p.Type {
	case PSKExternal:
		p.ID = r.Opaque()
	case PSKResumption:
		p.Usage = ResumptionPSKUsage(r.U8())
		if p.Usage < ResumptionApplication || p.Usage > ResumptionBranch {
			r.Fail("resumption PSK usage %d", p.Usage)
		}
		p.PSKGroupID = r.Opaque()
		p.PSKEpoch = r.U64()
	default:
		r.Fail("PSK type %d", p.Type)
	}
	p.Nonce = r.Opaque()
}
