package tlog

import (
	"cmp"
	"slices"
	"strings"
)

// Device statuses.
const (
	StatusPending = "pending"
	StatusActive  = "active"
	StatusRevoked = "revoked"
)

// DeviceState is what the log says about one device.
type DeviceState struct {
	User       string   `json:"user"`
	Device     string   `json:"device"`
	SigKey     string   `json:"sig_key"`
	KEMKey     string   `json:"kem_key"`
	Status     string   `json:"status"` // StatusPending, StatusActive or StatusRevoked
	EnrolIndex int64    `json:"enrol_index"`
	Approvers  []string `json:"approvers,omitempty"`
}

// DeviceSet is every user's devices, built only from log entries.
type DeviceSet struct {
	Users map[string]map[string]*DeviceState `json:"users"` // user, device
}

// NewDeviceSet returns an empty device set.
func NewDeviceSet() *DeviceSet {
	return &DeviceSet{Users: make(map[string]map[string]*DeviceState)}
}

// Apply folds the valid entry at index into d. A device is enrolled once,
// approved only while pending, and revoked once; an entry that breaks these
// rules returns an error wrapping [ErrVerify] and leaves d unchanged.
// Entries of other types are ignored.
func (d *DeviceSet) Apply(index int64, e Entry) error {
	dev := d.Users[e.User][e.Device]
	status := "unknown"
	if dev != nil {
		status = dev.Status
	}
	switch e.Type {
	case TypeDeviceEnrol:
		if dev != nil {
			return verifyFailed("device %.40q of %.80q enrolled twice", e.Device, e.User)
		}
		if e.Reason != StatusActive && e.Reason != StatusPending {
			return malformed("device %.40q of %.80q enrolled as %.40q", e.Device, e.User, e.Reason)
		}
		if d.Users == nil {
			d.Users = make(map[string]map[string]*DeviceState)
		}
		if d.Users[e.User] == nil {
			d.Users[e.User] = make(map[string]*DeviceState)
		}
		d.Users[e.User][e.Device] = &DeviceState{User: e.User, Device: e.Device, SigKey: e.SigKey, KEMKey: e.KEMKey, Status: e.Reason, EnrolIndex: index}
	case TypeDeviceApprove:
		if status != StatusPending {
			return verifyFailed("approval of %s device %.40q of %.80q", status, e.Device, e.User)
		}
		dev.Status, dev.Approvers = StatusActive, slices.Clone(e.Approvers)
	case TypeDeviceRevoke:
		if status != StatusPending && status != StatusActive {
			return verifyFailed("revocation of %s device %.40q of %.80q", status, e.Device, e.User)
		}
		dev.Status = StatusRevoked
	}
	return nil
}

// Devices returns a copy of user's devices in the order they were enrolled.
func (d *DeviceSet) Devices(user string) []DeviceState {
	var list []DeviceState
	for _, dev := range d.Users[user] {
		if dev != nil {
			list = append(list, dev.clone())
		}
	}
	slices.SortFunc(list, func(a, b DeviceState) int {
		return cmp.Or(cmp.Compare(a.EnrolIndex, b.EnrolIndex), strings.Compare(a.Device, b.Device))
	})
	return list
}

// Clone returns a deep copy of d.
func (d *DeviceSet) Clone() *DeviceSet {
	c := NewDeviceSet()
	for user, devs := range d.Users {
		c.Users[user] = make(map[string]*DeviceState, len(devs))
		for id, dev := range devs {
			if dev == nil {
				continue
			}
			dc := dev.clone()
			c.Users[user][id] = &dc
		}
	}
	return c
}

func (s DeviceState) clone() DeviceState {
	s.Approvers = slices.Clone(s.Approvers)
	return s
}
