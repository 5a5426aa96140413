package core

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"rsc.io/qr"

	"hotline/internal/client"
)

// Verification: safety numbers to compare with each member of a
// conversation, by reading them out or scanning a QR code, and the log
// monitor's view of this user's own devices.

// Verifications lists, for each other user of conversation conv, the
// safety number to compare and whether it was (and still matches).
func (k *Core) Verifications(conv string) ([]client.Verification, error) {
	return k.c.Verifications(conv)
}

// MarkVerified records that the user compared number with user.
func (k *Core) MarkVerified(conv, user, number string) error {
	return k.c.MarkVerified(conv, user, number)
}

// QR is a QR code's modules, one string of '1' (dark) and '0' per row, for
// the page to draw.
type QR struct {
	Size int      `json:"size"`
	Rows []string `json:"rows"`
}

// SafetyQR encodes what the other person's device scans: the two users
// and the number, so a scan compares all three.
func SafetyQR(me, other, number string) (QR, error) {
	c, err := qr.Encode("hotline-safety:1:"+me+":"+other+":"+strings.ReplaceAll(number, " ", ""), qr.M)
	if err != nil {
		return QR{}, err
	}
	out := QR{Size: c.Size}
	for y := range c.Size {
		var b strings.Builder
		for x := range c.Size {
			if c.Black(x, y) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
		out.Rows = append(out.Rows, b.String())
	}
	return out, nil
}

// ErrScanMismatch is returned by VerifyScanned for a code that is not the
// other person's code for this conversation: someone else's, or numbers
// that differ (their keys, or ours, are not what the other side sees).
var ErrScanMismatch = errors.New("the scanned code does not match")

// VerifyScanned checks a code scanned from the other person's screen
// (SafetyQR on their device: "hotline-safety:1:THEM:ME:NUMBER") against the
// safety number this device computes for them in conv, and marks them
// verified when it matches. It returns the user verified.
func (k *Core) VerifyScanned(conv, payload string) (string, error) {
	parts := strings.Split(strings.TrimSpace(payload), ":")
	if len(parts) != 5 || parts[0] != "hotline-safety" || parts[1] != "1" {
		return "", fmt.Errorf("%w: this is not a Hotline safety code", ErrScanMismatch)
	}
	them, me, number := parts[2], parts[3], parts[4]
	if me != k.c.Profile().User {
		return "", fmt.Errorf("%w: the code is %s's for %s, not for you", ErrScanMismatch, them, me)
	}
	vs, err := k.c.Verifications(conv)
	if err != nil {
		return "", err
	}
	for _, v := range vs {
		if v.User != them {
			continue
		}
		if strings.ReplaceAll(v.SafetyNumber, " ", "") != number {
			return "", fmt.Errorf("%w: %s's code shows other safety numbers than this device computes: do not trust this conversation until you know why", ErrScanMismatch, them)
		}
		return them, k.c.MarkVerified(conv, them, v.SafetyNumber)
	}
	return "", fmt.Errorf("%w: %s is not in this conversation", ErrScanMismatch, them)
}

// Devices is what the log monitor says of this user's devices.
type Devices struct {
	Devices  []client.DeviceReport `json:"devices"`
	Unknown  []string              `json:"unknown"`  // active devices of this user this browser has not accepted: an alert
	Problems []string              `json:"problems"` // the log did not verify
	Notices  []string              `json:"notices"`
}

// Devices verifies the transparency log up to the server's latest
// checkpoint and reports this user's devices; an active device this user
// has not accepted is Unknown, an alert the page shows until the user says
// it is theirs (AcceptDevice) or revokes it.
func (k *Core) Devices(ctx context.Context) (Devices, error) {
	r, err := k.c.VerifyLog(ctx)
	switch {
	case r == nil:
		return Devices{}, err
	case err != nil && !errors.Is(err, client.ErrLogProblem):
		return Devices{}, err // the check did not run to the end: say so, not "verified"
	}
	out := Devices{Devices: r.Devices, Unknown: []string{}, Problems: r.Problems, Notices: r.Notices}
	if out.Devices == nil {
		out.Devices = []client.DeviceReport{}
	}
	for _, d := range r.Devices {
		if d.Status == "active" && !d.Self && !d.Accepted {
			out.Unknown = append(out.Unknown, d.Device)
		}
	}
	if out.Problems == nil {
		out.Problems = []string{}
	}
	if out.Notices == nil {
		out.Notices = []string{}
	}
	return out, nil // log problems are in the report: the page shows them
}

// AcceptDevice records that the user recognises one of their devices.
func (k *Core) AcceptDevice(id string) error { return k.c.Accept(id) }
