package mls

// GroupInfo describes a group to a joiner, signed by a member (RFC 9420,
// section 12.4.3).
type GroupInfo struct {
	GroupContext GroupContext
	// Extensions may hold values the reader does not know, which it must
	// ignore (section 13.4).
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          LeafIndex
	// Signature is SignWithLabel(., "GroupInfoTBS", tbs()), made by the
	// member at Signer.
	Signature []byte
}

// encodeContent writes GroupInfoTBS: the fields the signature covers.
func (g *GroupInfo) encodeContent(w *Writer) {
	g.GroupContext.encode(w)
	encodeExtensions(w, g.Extensions)
	w.Opaque(g.ConfirmationTag)
	w.U32(uint32(g.Signer))
}

func (g *GroupInfo) encode(w *Writer) {
	g.encodeContent(w)
	w.Opaque(g.Signature)
}

func (g *GroupInfo) decode(r *Reader) {
	g.GroupContext.decode(r)
	g.Extensions = decodeExtensions(r)
	g.ConfirmationTag = r.Opaque()
	g.Signer = LeafIndex(r.U32())
	g.Signature = r.Opaque()
}

// tbs returns the GroupInfoTBS encoding the signature covers.
func (g *GroupInfo) tbs() []byte {
	var w Writer
	g.encodeContent(&w)
	return w.Bytes()
}

// Marshal returns the encoded GroupInfo. It travels inside an MLSMessage
// for external joins, and encrypted inside a Welcome.
func (g *GroupInfo) Marshal() []byte { return marshalWire(g) }

// UnmarshalGroupInfo decodes a bare GroupInfo, such as the plaintext of a
// Welcome's encrypted_group_info. It checks the encoding only; the
// signature and group are for the caller to verify.
func UnmarshalGroupInfo(b []byte) (*GroupInfo, error) {
	g := new(GroupInfo)
	if err := unmarshalCopy(b, g); err != nil {
		return nil, err
	}
	return g, nil
}

// GroupSecrets is what a Welcome encrypts to each joiner (RFC 9420,
// section 12.4.3.1).
type GroupSecrets struct {
	JoinerSecret []byte
	// PathSecret is the secret of the joiner's common ancestor with the
	// committer, nil when absent (non-nil, even if empty, when present).
	PathSecret []byte
	PSKs       []PreSharedKeyID
}

func (g *GroupSecrets) encode(w *Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *Writer) { w.Opaque(g.PathSecret) })
	w.Vector(func(w *Writer) {
		for i := range g.PSKs {
			g.PSKs[i].encode(w)
		}
	})
}

func (g *GroupSecrets) decode(r *Reader) {
	g.JoinerSecret = r.Opaque()
	g.PathSecret = optionalOpaque(r)
	g.PSKs = []PreSharedKeyID{}
	r.Items(func(r *Reader) {
		var p PreSharedKeyID
		p.decode(r)
		g.PSKs = append(g.PSKs, p)
	})
}

// EncryptedGroupSecrets is one joiner's entry in a Welcome: its key
// package's KeyPackageRef (RFC 9420, section 5.2) and the GroupSecrets
// encrypted to that key package's init key.
type EncryptedGroupSecrets struct {
	NewMember             []byte
	EncryptedGroupSecrets HPKECiphertext
}

func (e *EncryptedGroupSecrets) encode(w *Writer) {
	w.Opaque(e.NewMember)
	e.EncryptedGroupSecrets.encode(w)
}

func (e *EncryptedGroupSecrets) decode(r *Reader) {
	e.NewMember = r.Opaque()
	e.EncryptedGroupSecrets.decode(r)
}

// Welcome brings new members into a group (RFC 9420, section 12.4.3.1).
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (wl *Welcome) encode(w *Writer) {
	w.U16(uint16(wl.CipherSuite))
	w.Vector(func(w *Writer) {
		for i := range wl.Secrets {
			wl.Secrets[i].encode(w)
		}
	})
	w.Opaque(wl.EncryptedGroupInfo)
}

func (wl *Welcome) decode(r *Reader) {
	wl.CipherSuite = CipherSuite(r.U16())
	wl.Secrets = []EncryptedGroupSecrets{}
	r.Items(func(r *Reader) {
		var e EncryptedGroupSecrets
		e.decode(r)
		wl.Secrets = append(wl.Secrets, e)
	})
	wl.EncryptedGroupInfo = r.Opaque()
}

// Marshal returns the encoded Welcome, bare; it travels inside an
// MLSMessage.
func (wl *Welcome) Marshal() []byte { return marshalWire(wl) }

// UnmarshalWelcome decodes a bare Welcome. It checks the encoding only.
func UnmarshalWelcome(b []byte) (*Welcome, error) {
	wl := new(Welcome)
	if err := unmarshalCopy(b, wl); err != nil {
		return nil, err
	}
	return wl, nil
}
