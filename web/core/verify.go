package core

import (
	"context"
	"errors"
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
