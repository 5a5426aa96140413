package server

import (
	"net/http"
	"strconv"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/mls"
	"hotline/internal/org"
)

// maxKeyPackageUpload fits a hundred post-quantum key packages in base64.
const maxKeyPackageUpload = 1 << 20

func (s *Server) uploadKeyPackages(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.KeyPackagesUpload
	if err := api.Decode(r.Body, maxKeyPackageUpload, &req); err != nil {
		return err
	}
	if len(req.KeyPackages) == 0 && req.LastResort == nil {
		return apierr.New(apierr.BadRequest, "no key packages")
	}
	stocks, err := s.deliver.UploadKeyPackages(r.Context(), a, req.KeyPackages, req.LastResort)
	if err != nil {
		return err
	}
	out := []api.KeyPackageStock{}
	for _, st := range stocks {
		out = append(out, api.KeyPackageStock{CipherSuite: uint16(st.CipherSuite), Ordinary: st.Ordinary, LastResort: st.LastResort})
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) claimKeyPackages(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.KeyPackageClaim
	if err := decode(r, &req); err != nil {
		return err
	}
	user, err := parseUser(req.User)
	if err != nil {
		return err
	}
	if len(req.Except) > 100 {
		return apierr.New(apierr.BadRequest, "except: at most 100 devices")
	}
	claimed, err := s.deliver.ClaimKeyPackages(r.Context(), a, user, mls.CipherSuite(req.CipherSuite), req.Except)
	if err != nil {
		return err
	}
	out := []api.ClaimedKeyPackage{}
	for _, c := range claimed {
		out = append(out, api.ClaimedKeyPackage{Device: c.Device, KeyPackage: c.KeyPackage, LastResort: c.LastResort})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) keyPackageStock(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	cs, err := strconv.ParseUint(r.URL.Query().Get("cipher_suite"), 10, 16)
	if err != nil {
		return apierr.New(apierr.BadRequest, "cipher_suite: want a number")
	}
	st, err := s.deliver.Stock(r.Context(), a, mls.CipherSuite(cs))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.KeyPackageStock{CipherSuite: uint16(st.CipherSuite), Ordinary: st.Ordinary, LastResort: st.LastResort})
}
