package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
)

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	return writeJSON(w, http.StatusOK, api.OrgInfo{Org: s.Org(), RootKey: s.dir.Config.RootKey, KeySet: string(s.keyset), LogOrigin: s.origin,
		RequireArchive: s.dir.Config.RequireArchive})
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	if !s.limits.allow("enrol", s.clientAddr(r)) {
		s.metrics.enrolment.Inc(string(apierr.RateLimited))
		return apierr.New(apierr.RateLimited, "too many enrolment attempts from your address").WithHint("wait a minute and retry")
	}
	var req api.EnrollRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	sig, err := identity.ParsePublicKey(req.SigKey)
	if err != nil {
		return apierr.New(apierr.BadRequest, "sig_key: want a base64 Ed25519 public key")
	}
	kem, err := base64.StdEncoding.DecodeString(req.KEMKey)
	if err != nil {
		return apierr.New(apierr.BadRequest, "kem_key: want base64")
	}
	proof, err := base64.StdEncoding.DecodeString(req.Proof)
	if err != nil {
		return apierr.New(apierr.BadRequest, "proof: want base64")
	}
	res, err := s.svc.Enrol(r.Context(), org.EnrolRequest{Invite: req.Invite, SigKey: sig, KEMKey: kem, Label: req.Label, Proof: proof})
	if err != nil {
		s.metrics.enrolment.Inc(string(apierr.From(err).Code))
		return err
	}
	s.metrics.enrolment.Inc(res.Status)
	return writeJSON(w, http.StatusCreated, api.EnrollResponse{User: res.User.String(), Device: res.Device, Status: res.Status, Credential: string(res.Credential)})
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	if !s.limits.allow("auth", s.clientAddr(r)) {
		return apierr.New(apierr.RateLimited, "too many authentication attempts from your address")
	}
	var req api.ChallengeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	nonce, exp, err := s.svc.Challenge(r.Context(), req.Device)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ChallengeResponse{Nonce: base64.StdEncoding.EncodeToString(nonce), Expires: exp})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	var req api.SessionRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	nonce, err1 := base64.StdEncoding.DecodeString(req.Nonce)
	sig, err2 := base64.StdEncoding.DecodeString(req.Signature)
	if err1 != nil || err2 != nil {
		return apierr.New(apierr.BadRequest, "nonce and signature: want base64")
	}
	tok, exp, err := s.svc.Login(r.Context(), req.Device, nonce, sig, req.Unlock)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.SessionResponse{Token: tok, Expires: exp})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	if err := s.svc.Logout(r.Context(), a); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	return writeJSON(w, http.StatusOK, api.Me{User: apiUser(a.User), Device: apiDevice(a.Device, nil), Credential: string(a.Device.Credential)})
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	cred, err := s.svc.Renew(r.Context(), a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.Credential{Credential: string(cred)})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	us, err := s.svc.ListUsers(r.Context(), a)
	if err != nil {
		return err
	}
	out := []api.User{}
	for _, u := range us {
		out = append(out, apiUser(u))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.CreateUserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	id, err := parseUser(req.User)
	if err != nil {
		return err
	}
	nu := org.NewUser{ID: id}
	if nu.Roles, err = parseRoles(req.Roles); err != nil {
		return err
	}
	if req.Clearance != "" {
		if nu.Clearance, err = identity.ParseClearance(req.Clearance); err != nil {
			return apierr.Wrap(err, apierr.BadRequest, "%v", err)
		}
	}
	if nu.Compartments, err = parseCompartments(req.Compartments); err != nil {
		return err
	}
	res, err := s.svc.CreateUser(r.Context(), a, nu)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.CreateUserResponse{User: apiUser(res.User), Invite: apiInvite(res.Invite), ClearanceRequest: res.ClearanceRequest})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := parseUser(r.PathValue("id"))
	if err != nil {
		return err
	}
	u, err := s.svc.GetUser(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiUser(u))
}

func (s *Server) setRoles(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := parseUser(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req api.RolesRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	roles, err := parseRoles(req.Roles)
	if err != nil {
		return err
	}
	u, err := s.svc.SetRoles(r.Context(), a, id, roles)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiUser(u))
}

func (s *Server) setClearance(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := parseUser(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req api.ClearanceRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	c, err := identity.ParseClearance(req.Clearance)
	if err != nil {
		return apierr.Wrap(err, apierr.BadRequest, "%v", err)
	}
	comps, err := parseCompartments(req.Compartments)
	if err != nil {
		return err
	}
	res, err := s.svc.SetClearance(r.Context(), a, id, c, comps)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !res.Applied {
		status = http.StatusAccepted
	}
	return writeJSON(w, status, api.ClearanceResponse{User: apiUser(res.User), Applied: res.Applied, RequestID: res.RequestID, Approvers: userStrings(res.Approvers)})
}

func (s *Server) disableUser(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := parseUser(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req api.RevokeRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	u, err := s.svc.DisableUser(r.Context(), a, id, req.Reason)
	if err != nil {
		return err
	}
	s.removeLapsed(r, u.ID, true)
	return writeJSON(w, http.StatusOK, apiUser(u))
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	rs, err := s.svc.ListChangeRequests(r.Context(), a, r.URL.Query().Get("all") == "true")
	if err != nil {
		return err
	}
	out := []api.ChangeRequest{}
	for _, cr := range rs {
		out = append(out, api.ChangeRequest{ID: cr.ID, Kind: cr.Kind, Subject: cr.Subject, Change: json.RawMessage(cr.Payload),
			RequestedBy: cr.RequestedBy.String(), CreatedAt: cr.CreatedAt, Status: cr.Status, Approvers: userStrings(cr.Approvers)})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) createInvite(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.InviteRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	id, err := parseUser(req.User)
	if err != nil {
		return err
	}
	inv, err := s.svc.CreateInvite(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apiInvite(inv))
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	user := a.User.ID
	if q := r.URL.Query().Get("user"); q != "" {
		var err error
		if user, err = parseUser(q); err != nil {
			return err
		}
	}
	ds, err := s.svc.ListDevices(r.Context(), a, user)
	if err != nil {
		return err
	}
	out := []api.Device{}
	for _, d := range ds {
		out = append(out, apiDevice(d.Device, d.Approvals))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) approveDevice(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id := r.PathValue("id")
	if !identity.ValidDeviceID(id) {
		return apierr.New(apierr.BadRequest, "%q is not a device ID", id)
	}
	res, err := s.svc.ApproveDevice(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ApproveResponse{Device: apiDevice(res.Device, res.Approvals), Activated: res.Activated, Needed: res.Needed})
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id := r.PathValue("id")
	if !identity.ValidDeviceID(id) {
		return apierr.New(apierr.BadRequest, "%q is not a device ID", id)
	}
	var req api.RevokeRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	d, err := s.svc.RevokeDevice(r.Context(), a, id, req.Reason)
	if err != nil {
		return err
	}
	s.removeLapsed(r, d.User, false)
	return writeJSON(w, http.StatusOK, apiDevice(d, nil))
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	rs, err := s.svc.ListRules(r.Context(), a)
	if err != nil {
		return err
	}
	out := []api.Rule{}
	for _, x := range rs {
		out = append(out, apiRule(x))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) addRule(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.AddRuleRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	rule, err := s.svc.AddRule(r.Context(), a, req.Rule)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apiRule(rule))
}

func (s *Server) removeRule(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return apierr.New(apierr.BadRequest, "rule id must be a positive integer")
	}
	text, err := s.svc.RemoveRule(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.Rule{ID: id, Rule: text})
}

func (s *Server) checkContact(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.ContactRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	to, err := parseUser(req.To)
	if err != nil {
		return err
	}
	d, err := s.svc.CheckContact(r.Context(), a, to)
	if err != nil {
		if e := apierr.From(err); e.Code == apierr.ContactRefused || e.Code == apierr.ContactViaRequest {
			s.metrics.refusals.Inc(string(e.Code))
		}
		return err
	}
	res := api.ContactResponse{Allowed: true}
	if d.Rule != nil {
		res.Rule = d.Rule.String()
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) listContacts(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	cs, err := s.svc.Contacts(r.Context(), a)
	if err != nil {
		return err
	}
	out := []api.Contact{}
	for _, c := range cs {
		u := apiUser(c.User)
		out = append(out, api.Contact{User: u.ID, Org: s.Org(), Roles: u.Roles, Clearance: u.Clearance, Compartments: u.Compartments, ViaRequest: c.ViaRequest})
	}
	return writeJSON(w, http.StatusOK, out)
}

func parseUser(s string) (identity.UserID, error) {
	u, err := identity.ParseUserID(s)
	if err != nil {
		return identity.UserID{}, apierr.Wrap(err, apierr.BadRequest, "%v", err)
	}
	return u, nil
}

func parseRoles(ss []string) (identity.Roles, error) {
	rs := identity.Roles{}
	for _, s := range ss {
		r, err := identity.ParseRole(s)
		if err != nil {
			return nil, apierr.Wrap(err, apierr.BadRequest, "%v", err)
		}
		rs = append(rs, r)
	}
	return rs.Normalize(), nil
}

func parseCompartments(ss []string) (identity.Compartments, error) {
	cs := identity.Compartments(ss).Normalize()
	if cs == nil {
		cs = identity.Compartments{}
	}
	if err := cs.Validate(); err != nil {
		return nil, apierr.Wrap(err, apierr.BadRequest, "%v", err)
	}
	return cs, nil
}

func apiUser(u store.User) api.User {
	roles := make([]string, len(u.Roles))
	for i, r := range u.Roles {
		roles[i] = string(r)
	}
	comps := []string(u.Compartments)
	if comps == nil {
		comps = []string{}
	}
	return api.User{ID: u.ID.String(), Roles: roles, Clearance: u.Clearance.Token(), Compartments: comps,
		Disabled: u.Disabled, CreatedAt: u.CreatedAt, CreatedBy: u.CreatedBy}
}

func apiDevice(d store.Device, as []store.Approval) api.Device {
	out := api.Device{ID: d.ID, User: d.User.String(), Label: d.Label, Status: d.Status, SigKey: d.SigKey.String(),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if !d.CredentialExpires.IsZero() {
		exp := d.CredentialExpires
		out.CredentialExpires = &exp
	}
	for _, a := range as {
		out.Approvals = append(out.Approvals, api.Approval{Approver: a.Approver.String(), ApproverDevice: a.ApproverDevice, At: a.At})
	}
	return out
}

func apiInvite(inv org.Invite) api.Invite {
	return api.Invite{User: inv.User.String(), Code: inv.Code, Expires: inv.Expires}
}

func apiRule(r store.PolicyRule) api.Rule {
	return api.Rule{ID: r.ID, Rule: r.Rule, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt}
}

func userStrings(us []identity.UserID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}
