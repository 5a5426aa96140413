package mls

// KeyPackage is a client's signed offer to be added to groups (RFC 9420,
// section 10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	// InitKey is an HPKEPublicKey, to which Welcome secrets are encrypted.
	InitKey    []byte
	LeafNode   LeafNode
	Extensions []Extension
	// Signature is SignWithLabel(., "KeyPackageTBS", tbs()), made with
	// LeafNode.SignatureKey.
	Signature []byte
}

// encodeContent writes KeyPackageTBS: the fields the signature covers.
func (k *KeyPackage) encodeContent(w *Writer) {
	w.U16(uint16(k.Version))
	w.U16(uint16(k.CipherSuite))
	w.Opaque(k.InitKey)
	k.LeafNode.encode(w)
	encodeExtensions(w, k.Extensions)
}

func (k *KeyPackage) encode(w *Writer) {
	k.encodeContent(w)
	w.Opaque(k.Signature)
}

func (k *KeyPackage) decode(r *Reader) {
	k.Version = ProtocolVersion(r.U16())
	k.CipherSuite = CipherSuite(r.U16())
	k.InitKey = r.Opaque()
	k.LeafNode.decode(r)
	k.Extensions = decodeExtensions(r)
	k.Signature = r.Opaque()
}

// tbs returns the KeyPackageTBS encoding the signature covers.
func (k *KeyPackage) tbs() []byte {
	var w Writer
	k.encodeContent(&w)
	return w.Bytes()
}

// Marshal returns the encoded KeyPackage. Key packages travel inside an
// MLSMessage; this is the bare structure, which is also what a
// KeyPackageRef hashes.
func (k *KeyPackage) Marshal() []byte { return marshalWire(k) }

// UnmarshalKeyPackage decodes a bare KeyPackage. It checks the encoding
// only: the version, cipher suite, signature and leaf node are for the
// caller to validate (RFC 9420, section 10.1).
func UnmarshalKeyPackage(b []byte) (*KeyPackage, error) {
	k := new(KeyPackage)
	if err := unmarshalCopy(b, k); err != nil {
		return nil, err
	}
	return k, nil
}
