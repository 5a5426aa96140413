// Package directory decides what the people and devices of an organisation
// may do: the role → action matrix, and the two-person rules for changes an
// attacker or a careless operator would most want to make alone.
//
// The matrix applies within one organisation. Callers pass the roles this
// organisation's directory assigns; roles another organisation asserts for
// its own users grant nothing here. docs/roles.md explains the matrix and
// the rules for operators and auditors; a test keeps its table in step with
// MatrixMarkdown.
//
// Everything here is pure: no I/O, no mutable state.
package directory

import (
	"fmt"
	"slices"
	"strings"

	"hotline/internal/identity"
)

// Action is something a user may be allowed to do. The names are stable: they
// appear in docs, audit records and error messages.
type Action string

// The actions.
const (
	ActUserCreate    Action = "user.create"
	ActUserRoles     Action = "user.roles"
	ActUserClearance Action = "user.clearance"
	ActUserDisable   Action = "user.disable"
	ActUserList      Action = "user.list"
	ActInviteCreate  Action = "invite.create"  // invite for any user's new device
	ActDeviceApprove Action = "device.approve" // approve another user's pending device; see CanApproveDevice
	ActDeviceRevoke  Action = "device.revoke"  // revoke any device; users may always revoke their own
	ActDeviceList    Action = "device.list"    // list any user's devices
	ActPolicyManage  Action = "policy.manage"
	ActPolicyRead    Action = "policy.read"
	ActLogRead       Action = "log.read"       // read the transparency log
	ActRecordsManage Action = "records.manage" // retention, legal hold
	ActContactCheck  Action = "contact.check"  // ask whether a contact is allowed
	ActRequestCreate Action = "request.create" // request a call with a principal (where the contact policy allows)
	ActRequestTriage Action = "request.triage" // approve, reschedule or decline call requests; see them all
	ActBriefingWrite Action = "briefing.write" // attach a briefing to a scheduled call
	ActCallsWatch    Action = "calls.watch"    // see every call under way: who talks to whom, at what level
	ActMemConWrite   Action = "memcon.write"   // draft a memorandum of conversation and distribute it once approved
	ActNoteTakerSet  Action = "notetaker.set"  // designate the note-taker rung into a principal's ad-hoc calls
)

// AllActions lists every action in a fixed order.
var AllActions = []Action{
	ActUserCreate, ActUserRoles, ActUserClearance, ActUserDisable, ActUserList,
	ActInviteCreate, ActDeviceApprove, ActDeviceRevoke, ActDeviceList,
	ActPolicyManage, ActPolicyRead, ActLogRead, ActRecordsManage, ActContactCheck,
	ActRequestCreate, ActRequestTriage, ActBriefingWrite, ActCallsWatch, ActMemConWrite, ActNoteTakerSet,
}

// everyone lists the actions every user may take, whatever their roles: every
// device verifies the log and may ask whether a contact is allowed.
var everyone = []Action{ActLogRead, ActContactCheck}

// people lists the actions every user who is a person may take: every user
// but the archive and recorder accounts.
var people = []Action{ActRequestCreate}

// grants lists what each role adds to everyone's actions. Admins and
// security officers hold disjoint powers so that no single one of them can
// both create an account and put a device on it.
var grants = map[identity.Role][]Action{
	identity.RoleDutyOfficer:     {ActUserList, ActPolicyRead, ActRequestTriage, ActBriefingWrite, ActCallsWatch, ActMemConWrite, ActNoteTakerSet},
	identity.RoleNoteTaker:       {ActBriefingWrite, ActMemConWrite},
	identity.RoleRecordsOfficer:  {ActUserList, ActPolicyRead, ActRecordsManage},
	identity.RoleSecurityOfficer: {ActUserList, ActPolicyRead, ActInviteCreate, ActDeviceApprove, ActDeviceRevoke, ActDeviceList},
	identity.RoleAdmin:           {ActUserCreate, ActUserRoles, ActUserClearance, ActUserDisable, ActUserList, ActPolicyManage, ActPolicyRead, ActNoteTakerSet},
}

// Allowed reports whether a user holding roles may take action a. A user
// holding a device role (archive, recorder) may take only everyone's actions,
// whatever other roles they hold: those accounts' keys live on servers, not
// with a person.
func Allowed(roles identity.Roles, a Action) bool {
	if slices.Contains(everyone, a) {
		return true
	}
	if roles.Has(identity.RoleArchive) || roles.Has(identity.RoleRecorder) {
		return false
	}
	if slices.Contains(people, a) {
		return true
	}
	for _, r := range roles {
		if slices.Contains(grants[r], a) {
			return true
		}
	}
	return false
}

// MatrixMarkdown renders the matrix as a Markdown table: one row per action,
// one column per role, "✓" where the role alone allows the action.
func MatrixMarkdown() string {
	var b strings.Builder
	b.WriteString("| action |")
	for _, r := range identity.AllRoles {
		fmt.Fprintf(&b, " %s |", r)
	}
	b.WriteString("\n|---|" + strings.Repeat(":-:|", len(identity.AllRoles)) + "\n")
	for _, a := range AllActions {
		fmt.Fprintf(&b, "| `%s` |", a)
		for _, r := range identity.AllRoles {
			mark := ""
			if Allowed(identity.Roles{r}, a) {
				mark = "✓"
			}
			fmt.Fprintf(&b, " %s |", mark)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ClearanceChangeNeedsTwo reports whether changing a user's clearance from
// oldLevel with oldComps to newLevel with newComps needs a second admin:
// raising the level or adding any compartment does; lowering the level and
// removing compartments is a one-person change.
func ClearanceChangeNeedsTwo(oldLevel, newLevel identity.Clearance, oldComps, newComps identity.Compartments) bool {
	return newLevel > oldLevel || !oldComps.Contains(newComps)
}

// DeviceApprovalsNeeded returns how many distinct users must approve a
// pending device of a user holding subjectRoles: two for a principal, one
// for everyone else.
func DeviceApprovalsNeeded(subjectRoles identity.Roles) int {
	if subjectRoles.Has(identity.RolePrincipal) {
		return 2
	}
	return 1
}

// CanApproveDevice reports whether approver, holding approverRoles, may
// approve a pending device of subject. The subject may, from one of their own
// active devices (never the pending one: the caller checks); so may a
// security officer of the subject's organisation. A subject who is a security
// officer still counts only as the subject: see DeviceApproved.
func CanApproveDevice(approver identity.UserID, approverRoles identity.Roles, subject identity.UserID) bool {
	if approver.Validate() != nil || subject.Validate() != nil {
		return false
	}
	return approver == subject || approver.Org == subject.Org && Allowed(approverRoles, ActDeviceApprove)
}

// DeviceApproved reports whether approvers, the users who approved a pending
// device of subject (who holds subjectRoles) mapped to their current roles,
// are enough to activate it. Approvals count per user, not per device: a
// subject approving from several devices counts once. Approvers who may not
// approve (CanApproveDevice) count for nothing.
func DeviceApproved(subject identity.UserID, subjectRoles identity.Roles, approvers map[identity.UserID]identity.Roles) bool {
	n := 0
	for u, rs := range approvers {
		if CanApproveDevice(u, rs, subject) {
			n++
		}
	}
	return n >= DeviceApprovalsNeeded(subjectRoles)
}
