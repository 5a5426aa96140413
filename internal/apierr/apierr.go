// Package apierr defines the errors that cross the wire: a stable code, an
// HTTP status and a user-safe message, kept apart from the internal cause,
// which is logged and never sent.
//
// Every code lives in the Codes table below; docs/api.md lists them and a
// test keeps the two in step. Clients switch on Code, never on Message.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Code is a stable, machine-readable error code.
type Code string

// The codes. Never change or reuse one; add new ones at the end.
const (
	BadRequest            Code = "bad_request"
	TooLarge              Code = "too_large"
	Unauthenticated       Code = "unauthenticated"
	DevicePending         Code = "device_pending"
	DeviceRevoked         Code = "device_revoked"
	Forbidden             Code = "forbidden"
	NotFound              Code = "not_found"
	Conflict              Code = "conflict"
	InviteInvalid         Code = "invite_invalid"
	ProofInvalid          Code = "proof_invalid"
	RateLimited           Code = "rate_limited"
	ContactRefused        Code = "contact_refused"
	ContactViaRequest     Code = "contact_via_request"
	SelfApproval          Code = "self_approval"
	UserDisabled          Code = "user_disabled"
	Unavailable           Code = "unavailable"
	Internal              Code = "internal"
	KeyPackageInvalid     Code = "key_package_invalid"
	KeyPackageMissing     Code = "key_package_missing"
	EpochMoved            Code = "epoch_moved"
	NotMember             Code = "not_member"
	MLSInvalid            Code = "mls_invalid"
	ClearanceInsufficient Code = "clearance_insufficient"
	CommitRequired        Code = "commit_required"
	PasskeyInvalid        Code = "passkey_invalid"
	PasskeyRequired       Code = "passkey_required"
)

// Codes maps every code to its HTTP status and a description for the docs.
var Codes = []struct {
	Code   Code
	Status int
	Doc    string
}{
	{BadRequest, http.StatusBadRequest, "the request is malformed: bad JSON, a missing or invalid field, a bad parameter"},
	{TooLarge, http.StatusRequestEntityTooLarge, "the request body is larger than the endpoint accepts"},
	{Unauthenticated, http.StatusUnauthorized, "no valid session: authenticate with the device key and retry"},
	{DevicePending, http.StatusForbidden, "the device is enrolled but not yet approved"},
	{DeviceRevoked, http.StatusForbidden, "the device has been revoked; it can never be used again"},
	{Forbidden, http.StatusForbidden, "the caller's roles do not allow this action (see docs/roles.md)"},
	{NotFound, http.StatusNotFound, "no such user, device, rule or request"},
	{Conflict, http.StatusConflict, "the change conflicts with the current state (already exists, already approved, wrong status)"},
	{InviteInvalid, http.StatusForbidden, "the invite code is unknown, already used or expired"},
	{ProofInvalid, http.StatusForbidden, "a signature by the device key did not verify"},
	{RateLimited, http.StatusTooManyRequests, "too many attempts; wait and retry"},
	{ContactRefused, http.StatusForbidden, "the contact policy refuses this contact"},
	{ContactViaRequest, http.StatusForbidden, "this contact is only possible through a call request to the duty desk"},
	{SelfApproval, http.StatusForbidden, "an approval must come from someone other than the requester or the device itself"},
	{UserDisabled, http.StatusForbidden, "the user account is disabled"},
	{Unavailable, http.StatusServiceUnavailable, "the server is busy or shutting down; retry later"},
	{Internal, http.StatusInternalServerError, "an internal error; the server logged the cause"},
	{KeyPackageInvalid, http.StatusBadRequest, "an uploaded MLS key package is malformed, badly signed, expired, or not bound to the uploading device and its credential"},
	{KeyPackageMissing, http.StatusNotFound, "none of the user's devices has a key package for the cipher suite"},
	{EpochMoved, http.StatusConflict, "another commit was accepted for this epoch first: process the messages you were sent, then make your commit again"},
	{NotMember, http.StatusForbidden, "this device is not a member of the conversation, or may not act as that member"},
	{MLSInvalid, http.StatusBadRequest, "the MLS message is malformed or invalid (signature, proposals, path, tree, or the conversation's rules)"},
	{ClearanceInsufficient, http.StatusForbidden, "a member's clearance or compartments do not cover the conversation's classification"},
	{CommitRequired, http.StatusConflict, "a member's device was revoked or its user disabled: commit the server's proposal to remove it before sending"},
	{PasskeyInvalid, http.StatusForbidden, "a passkey registration or assertion did not verify (challenge, origin, relying party, signature, flags, a signature counter that went backwards), or the authenticator cannot protect keys (no PRF)"},
	{PasskeyRequired, http.StatusForbidden, "this device is protected by a passkey: unlock with it (POST /v1/passkeys/unlock) and present the ticket to open a session"},
}

// Error is an error that may be shown to the caller.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	cause   error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.cause }

// Status returns the HTTP status for e's code.
func (e *Error) Status() int { return Status(e.Code) }

// WithHint returns a copy of e with a hint.
func (e *Error) WithHint(format string, args ...any) *Error {
	c := *e
	c.Hint = fmt.Sprintf(format, args...)
	return &c
}

// New returns an error with a user-safe message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a user-safe message and an internal cause that
// is logged but never sent.
func Wrap(cause error, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), cause: cause}
}

// From returns err as an *Error; anything else becomes Internal with err as
// its cause.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Message: "internal error", cause: err}
}

// Is reports whether err is an *Error with this code.
func Is(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Status returns the HTTP status of a code (500 for unknown codes).
func Status(c Code) int {
	for _, x := range Codes {
		if x.Code == c {
			return x.Status
		}
	}
	return http.StatusInternalServerError
}

// CodesMarkdown renders the code table for docs/api.md.
func CodesMarkdown() string {
	var b strings.Builder
	b.WriteString("| code | HTTP | meaning |\n|---|---|---|\n")
	for _, c := range Codes {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", c.Code, c.Status, c.Doc)
	}
	return b.String()
}
