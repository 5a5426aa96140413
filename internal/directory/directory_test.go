package directory

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hotline/internal/identity"
)

var update = flag.Bool("update", false, "rewrite the matrix in docs/roles.md")

func roles(t *testing.T, s string) identity.Roles {
	t.Helper()
	rs, err := identity.ParseRoles(s)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func user(t *testing.T, s string) identity.UserID {
	t.Helper()
	u, err := identity.ParseUserID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		roles string
		a     Action
		want  bool
	}{
		{"admin", ActUserCreate, true},
		{"admin", ActPolicyManage, true},
		{"admin", ActInviteCreate, false},
		{"admin", ActDeviceApprove, false},
		{"security-officer", ActInviteCreate, true},
		{"security-officer", ActDeviceRevoke, true},
		{"security-officer", ActDeviceList, true},
		{"security-officer", ActUserCreate, false},
		{"security-officer", ActUserRoles, false},
		{"records-officer", ActRecordsManage, true},
		{"records-officer", ActPolicyManage, false},
		{"duty-officer", ActPolicyRead, true},
		{"duty-officer", ActUserList, true},
		{"duty-officer", ActPolicyManage, false},
		{"principal", ActUserList, false},
		{"principal", ActLogRead, true},
		{"counterpart", ActContactCheck, true},
		{"counterpart", ActPolicyRead, false},
		{"", ActLogRead, true},
		{"", ActUserList, false},
		{"note-taker,duty-officer", ActUserList, true},
		{"admin,security-officer", ActInviteCreate, true},
		{"archive", ActLogRead, true},
		{"recorder", ActContactCheck, true},
		{"archive,admin", ActUserCreate, false},
		{"recorder,security-officer", ActDeviceApprove, false},
		{"admin", Action("user.delete"), false},
	}
	for _, tt := range tests {
		if got := Allowed(roles(t, tt.roles), tt.a); got != tt.want {
			t.Errorf("Allowed(%q, %s) = %v, want %v", tt.roles, tt.a, got, tt.want)
		}
	}
}

func TestMatrixInvariants(t *testing.T) {
	for _, a := range AllActions {
		n := 0
		for _, r := range identity.AllRoles {
			if Allowed(identity.Roles{r}, a) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no role may %s", a)
		}
	}
	for _, r := range identity.AllRoles {
		for _, a := range everyone {
			if !Allowed(identity.Roles{r}, a) {
				t.Errorf("%s may not %s", r, a)
			}
		}
		// Separation of duties: nobody creates an account and enrols its device alone.
		if Allowed(identity.Roles{r}, ActUserCreate) && Allowed(identity.Roles{r}, ActInviteCreate) {
			t.Errorf("%s may both create users and invite devices", r)
		}
	}
}

func TestClearanceChangeNeedsTwo(t *testing.T) {
	tests := []struct {
		old, new   identity.Clearance
		oldC, newC string
		want       bool
	}{
		{identity.Secret, identity.TopSecret, "", "", true},
		{identity.Unclassified, identity.Confidential, "A", "A", true},
		{identity.Secret, identity.Secret, "", "", false},
		{identity.TopSecret, identity.Secret, "", "", false},
		{identity.Secret, identity.Secret, "A", "A,B", true},
		{identity.Secret, identity.Secret, "A,B", "A", false},
		{identity.Secret, identity.Secret, "A", "B", true},
		{identity.TopSecret, identity.Secret, "A", "A,B", true},
		{identity.TopSecret, identity.Unclassified, "A,B", "", false},
	}
	for _, tt := range tests {
		oldC, _ := identity.ParseCompartments(tt.oldC)
		newC, _ := identity.ParseCompartments(tt.newC)
		if got := ClearanceChangeNeedsTwo(tt.old, tt.new, oldC, newC); got != tt.want {
			t.Errorf("ClearanceChangeNeedsTwo(%v, %v, %q, %q) = %v, want %v", tt.old, tt.new, tt.oldC, tt.newC, got, tt.want)
		}
	}
}

func TestDeviceApproval(t *testing.T) {
	pm := user(t, "pm@state.example")
	alice := user(t, "alice@state.example")
	so1 := user(t, "so1@state.example")
	so2 := user(t, "so2@state.example")
	foreignSO := user(t, "so@other.example")
	sec := roles(t, "security-officer")

	if got := DeviceApprovalsNeeded(roles(t, "principal,admin")); got != 2 {
		t.Errorf("DeviceApprovalsNeeded(principal) = %d, want 2", got)
	}
	if got := DeviceApprovalsNeeded(roles(t, "duty-officer")); got != 1 {
		t.Errorf("DeviceApprovalsNeeded(duty-officer) = %d, want 1", got)
	}

	canTests := []struct {
		approver identity.UserID
		roles    identity.Roles
		subject  identity.UserID
		want     bool
	}{
		{alice, nil, alice, true},
		{so1, sec, alice, true},
		{so1, sec, so1, true},
		{foreignSO, sec, alice, false},
		{alice, roles(t, "admin"), pm, false},
		{so1, roles(t, "security-officer,recorder"), alice, false},
		{identity.UserID{}, nil, identity.UserID{}, false},
	}
	for _, tt := range canTests {
		if got := CanApproveDevice(tt.approver, tt.roles, tt.subject); got != tt.want {
			t.Errorf("CanApproveDevice(%v, %q, %v) = %v, want %v", tt.approver, tt.roles, tt.subject, got, tt.want)
		}
	}

	principal := roles(t, "principal")
	soPrincipal := roles(t, "principal,security-officer")
	approvedTests := []struct {
		name         string
		subject      identity.UserID
		subjectRoles identity.Roles
		approvers    map[identity.UserID]identity.Roles
		want         bool
	}{
		{"own device", alice, nil, map[identity.UserID]identity.Roles{alice: nil}, true},
		{"security officer", alice, nil, map[identity.UserID]identity.Roles{so1: sec}, true},
		{"nobody", alice, nil, nil, false},
		{"non-officer", alice, nil, map[identity.UserID]identity.Roles{pm: principal}, false},
		{"principal alone", pm, principal, map[identity.UserID]identity.Roles{pm: principal}, false},
		{"principal and officer", pm, principal, map[identity.UserID]identity.Roles{pm: principal, so1: sec}, true},
		{"two officers", pm, principal, map[identity.UserID]identity.Roles{so1: sec, so2: sec}, true},
		{"one officer", pm, principal, map[identity.UserID]identity.Roles{so1: sec}, false},
		{"foreign officer", pm, principal, map[identity.UserID]identity.Roles{pm: principal, foreignSO: sec}, false},
		{"officer principal alone", so1, soPrincipal, map[identity.UserID]identity.Roles{so1: soPrincipal}, false},
		{"officer principal and officer", so1, soPrincipal, map[identity.UserID]identity.Roles{so1: soPrincipal, so2: sec}, true},
	}
	for _, tt := range approvedTests {
		if got := DeviceApproved(tt.subject, tt.subjectRoles, tt.approvers); got != tt.want {
			t.Errorf("%s: DeviceApproved = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDocMatrix keeps docs/roles.md in step with the code. Run with -update
// to rewrite the table.
func TestDocMatrix(t *testing.T) {
	const path = "../../docs/roles.md"
	begin, end := []byte("<!-- matrix:begin -->\n"), []byte("<!-- matrix:end -->")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(doc, begin), bytes.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s: want the table between %q and %q", path, begin, end)
	}
	i += len(begin)
	want := "\n" + MatrixMarkdown() + "\n"
	diff := cmp.Diff(want, string(doc[i:j]))
	if diff == "" {
		return
	}
	if !*update {
		t.Fatalf("%s: matrix differs from the code (-want +got); run go test ./internal/directory -run TestDocMatrix -update\n%s", path, diff)
	}
	doc = append(doc[:i:i], append([]byte(want), doc[j:]...)...)
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
}
