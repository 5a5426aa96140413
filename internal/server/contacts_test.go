package server_test

import (
	"slices"
	"testing"

	"hotline/internal/api"
)

// TestContacts lists each user's address book under the default policy:
// staff reach staff; a counterpart reaches duty officers, and a principal
// only through a call request; only duty officers reach counterparts.
func TestContacts(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			admin := e.admin(t)
			sec, _ := e.enroll(t, addUser(t, admin, "sec", "security-officer"), "sec")
			p, pr := e.enroll(t, addUser(t, admin, "principal", "principal"), "p")
			d, _ := e.enroll(t, addUser(t, admin, "duty", "duty-officer"), "d")
			c, cr := e.enroll(t, addUser(t, admin, "guest", "counterpart"), "c")
			// A counterpart's first device (and, by policy, a principal's)
			// may need a second approver besides the invite's creator.
			for _, r := range []api.EnrollResponse{pr, cr} {
				if r.Status == "active" {
					continue
				}
				if err := sec.Do(t.Context(), "POST", "/v1/devices/"+r.Device+"/approve", nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			addUser(t, admin, "gone")
			if err := admin.Do(t.Context(), "POST", "/v1/users/gone@state.example/disable", nil, nil); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				do   func(out *[]api.Contact) error
				want []string
			}{
				{"principal", func(out *[]api.Contact) error { return p.Do(t.Context(), "GET", "/v1/contacts", nil, out) },
					[]string{"admin@state.example", "duty@state.example", "sec@state.example"}},
				{"duty", func(out *[]api.Contact) error { return d.Do(t.Context(), "GET", "/v1/contacts", nil, out) },
					[]string{"admin@state.example", "guest@state.example", "principal@state.example", "sec@state.example"}},
				{"counterpart", func(out *[]api.Contact) error { return c.Do(t.Context(), "GET", "/v1/contacts", nil, out) },
					[]string{"duty@state.example", "principal@state.example (via request)"}},
			} {
				var cs []api.Contact
				if err := tc.do(&cs); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, x := range cs {
					s := x.User
					if x.ViaRequest {
						s += " (via request)"
					}
					got = append(got, s)
					if x.Org != "state.example" || x.Roles == nil || x.Clearance == "" {
						t.Errorf("%s's contact %+v lacks organisation, roles or clearance", tc.name, x)
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s's contacts %q, want %q", tc.name, got, tc.want)
				}
			}
		})
	}
}
