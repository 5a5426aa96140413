package client

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"hotline/internal/tlog"
)

// Safety numbers: what two people compare, in person or by scanning a QR
// code, to know that each sees the same keys for the other as the other
// holds, so that no server and no issuer key can slip a device in between
// unseen. Each user's half is 30 digits from their user ID and the signing
// keys of every device of theirs in the conversation's group (from the
// verified credentials); the number is the two halves, the lower user ID's
// first, so both people see the same 60 digits. A device added or replaced
// changes it.

// VerifiedFile holds, by user, the half of the safety number that stood
// for their keys when this user compared it.
const VerifiedFile = "verified.json"

// safetyIterations makes each half cost some work, as Signal's do, so that
// searching for keys that give a chosen half is slower still.
const safetyIterations = 1024

// SafetyHalf is one user's 30 digits (6 groups of 5) from their devices'
// signing keys.
func SafetyHalf(user string, sigKeys []string) string {
	keys := slices.Clone(sigKeys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	in := []byte("hotline safety number v1\x00" + user + "\x00" + strings.Join(keys, "\n"))
	h := in
	for range safetyIterations {
		s := sha512.Sum512(append(h, in...))
		h = s[:]
	}
	var b strings.Builder
	for i := range 6 {
		chunk := uint64(binary.BigEndian.Uint32(h[i*5:])) << 8
		chunk |= uint64(h[i*5+4])
		fmt.Fprintf(&b, "%05d", chunk%100000)
	}
	return b.String()
}

// SafetyNumber is the 60 digits two users compare, grouped by 5.
func SafetyNumber(userA string, keysA []string, userB string, keysB []string) string {
	return joinHalves(userA, SafetyHalf(userA, keysA), userB, SafetyHalf(userB, keysB))
}

// joinHalves puts two users' halves in order (the lower user ID's first)
// and groups the digits by 5.
func joinHalves(userA, a, userB, b string) string {
	if userB < userA {
		a, b = b, a
	}
	digits := a + b
	groups := make([]string, 0, 12)
	for i := 0; i < len(digits); i += 5 {
		groups = append(groups, digits[i:i+5])
	}
	return strings.Join(groups, " ")
}

// Verification is what this device knows of another member's identity in
// a conversation.
type Verification struct {
	User         string `json:"user"`
	SafetyNumber string `json:"safety_number"`
	Verified     bool   `json:"verified"` // compared, and their keys unchanged since
	// Changed: this user was verified, and their keys changed since (a
	// new or replaced device). Compare again. (This user's own new devices
	// change the number too, but not the other's half: that does not undo
	// a comparison.)
	Changed bool `json:"changed,omitempty"`
}

// userKeys returns the signing keys of user's active devices, from the
// transparency log as this device last verified it; for a user the log
// monitor does not know yet, from the conversation's group (its members'
// verified credentials).
func (c *Client) userKeys(user string, members []Member) []string {
	var keys []string
	if st, err := c.loadMonitor(); err == nil && st != nil && st.Devices != nil {
		for _, d := range st.Devices.Devices(user) {
			if d.Status == tlog.StatusActive {
				keys = append(keys, d.SigKey)
			}
		}
	}
	if len(keys) > 0 {
		return keys
	}
	for _, m := range members {
		if m.User == user && m.SigKey != "" {
			keys = append(keys, m.SigKey)
		}
	}
	return keys
}

// Verifications lists, for every other user in conversation id, the
// safety number this user and they compare, and whether it was compared.
// Numbers come from each user's active devices in the transparency log, so
// they are the same in every conversation.
func (c *Client) Verifications(id string) ([]Verification, error) {
	e, err := c.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	info := c.infoLocked(e)
	c.unlock(e)
	me := c.Profile().User
	users := map[string]bool{}
	for _, m := range info.Members {
		if m.User != "" && m.User != me && m.User != "(unverified)" {
			users[m.User] = true
		}
	}
	done, err := c.comparedNumbers()
	if err != nil {
		return nil, err
	}
	mine := SafetyHalf(me, c.userKeys(me, info.Members))
	out := []Verification{}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		theirs := SafetyHalf(u, c.userKeys(u, info.Members))
		v := Verification{User: u, SafetyNumber: joinHalves(me, mine, u, theirs)}
		if half, ok := done[u]; ok {
			v.Verified, v.Changed = half == theirs, half != theirs
		}
		out = append(out, v)
	}
	return out, nil
}

// MarkVerified records that this user compared number with user, who is in
// conversation id; number must be the current one, so a number read off an
// older screen is refused. What is kept is the other user's half: their
// keys as compared.
func (c *Client) MarkVerified(id, user, number string) error {
	vs, err := c.Verifications(id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(vs, func(v Verification) bool { return v.User == user })
	switch {
	case i < 0:
		return fmt.Errorf("%s is not another member of conversation %s", user, id)
	case vs[i].SafetyNumber != number:
		return errors.New("the safety number changed since it was shown: compare the new one")
	}
	e, err := c.entry(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	info := c.infoLocked(e)
	c.unlock(e)
	half := SafetyHalf(user, c.userKeys(user, info.Members))
	c.mu.Lock()
	defer c.mu.Unlock()
	done, err := c.comparedNumbersLocked()
	if err != nil {
		return err
	}
	done[user] = half
	b, err := json.Marshal(done)
	if err != nil {
		return err
	}
	return c.st.WriteFile(VerifiedFile, b)
}

func (c *Client) comparedNumbers() (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.comparedNumbersLocked()
}

func (c *Client) comparedNumbersLocked() (map[string]string, error) {
	done := map[string]string{}
	b, err := c.st.ReadFile(VerifiedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return done, nil
	} else if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &done); err != nil {
		return nil, fmt.Errorf("%s: %w", VerifiedFile, err)
	}
	return done, nil
}

// IdentityVerified says whether this user compared safety numbers with
// user (verified), and whether user's keys changed since (changed), from
// user's active devices in the transparency log as last verified.
func (c *Client) IdentityVerified(user string) (verified, changed bool, err error) {
	done, err := c.comparedNumbers()
	if err != nil {
		return false, false, err
	}
	half, ok := done[user]
	if !ok {
		return false, false, nil
	}
	cur := SafetyHalf(user, c.userKeys(user, nil))
	return half == cur, half != cur, nil
}
