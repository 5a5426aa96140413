package mls

// ExternalSendersExtension returns the GroupContext extension listing the
// group's external senders (RFC 9420, section 12.1.8.1).
func ExternalSendersExtension(s ExternalSenders) Extension {
	return makeExtension(ExtExternalSenders, s)
}

// ParseExternalSenders finds and decodes the external_senders extension;
// ok is false if there is none.
func ParseExternalSenders(exts []Extension) (s ExternalSenders, ok bool, err error) {
	ok, err = decodeExtension(exts, ExtExternalSenders, &s)
	return s, ok, err
}
