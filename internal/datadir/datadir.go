// Package datadir is the server's data directory: what `hotline init`
// creates and `hotline serve` reads.
//
//	DIR/config.json        organisation, database, public keys (not secret)
//	DIR/hotline.db         the SQLite database (unless config names PostgreSQL)
//	DIR/keys/issuer.key    online key that signs device credentials (0600)
//	DIR/keys/log.key       online key that signs log checkpoints (0600)
//	DIR/keys/delivery.key  online key of the delivery service, the MLS
//	                       external sender of every conversation (0600)
//	DIR/tls/cert.pem       self-signed TLS certificate, pinned by clients
//	DIR/tls/key.pem        its private key (0600)
//	root.key               the offline root key; written where the operator
//	                       says (default DIR/root.key) and meant to be moved
//	                       off the server: serve never reads it
//
// The root key signs key sets naming the online keys; clients pin the root
// key's public half at enrolment and accept a new issuer or log key only in
// a key set the root key signed (see docs/operator.md, "Keys").
package datadir

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/store/postgres"
	"hotline/internal/store/sqlite"
)

// File names inside the data directory.
const (
	ConfigFile   = "config.json"
	DatabaseFile = "hotline.db"
	IssuerFile   = "keys/issuer.key"
	LogKeyFile   = "keys/log.key"
	DeliveryFile = "keys/delivery.key"
	CertFile     = "tls/cert.pem"
	CertKeyFile  = "tls/key.pem"
	RootKeyFile  = "root.key"
)

// ErrExists is returned by Init when the directory already holds an
// organisation (or anything else).
var ErrExists = errors.New("data directory is not empty")

// Config is DIR/config.json. Nothing in it is secret.
type Config struct {
	Org     string    `json:"org"`
	RootKey string    `json:"root_key"` // the root key's note verifier key
	Created time.Time `json:"created"`
	// Database is a PostgreSQL connection string without a password; empty
	// means SQLite in DIR/hotline.db.
	Database string `json:"database,omitempty"`
	// RequireArchive: every conversation must have the organisation's
	// archive member before anyone may send in it (clients enforce it;
	// the server refuses conversations that do not say so).
	RequireArchive bool `json:"require_archive,omitempty"`
	// MediaUDP and MediaTCP are the "ip:port" addresses call media binds
	// to: the one UDP port of all media and the ICE-TCP fallback. Empty:
	// 127.0.0.1 on a port of the system's choosing (local use only).
	MediaUDP string `json:"media_udp,omitempty"`
	MediaTCP string `json:"media_tcp,omitempty"`
}

// Dir is an opened data directory.
type Dir struct {
	Path   string
	Config Config
}

// Open reads DIR/config.json.
func Open(path string) (*Dir, error) {
	b, err := os.ReadFile(filepath.Join(path, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a Hotline data directory (no %s)", path, ConfigFile)
	} else if err != nil {
		return nil, err
	}
	d := &Dir{Path: path}
	if err := json.Unmarshal(b, &d.Config); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(path, ConfigFile), err)
	}
	if err := identity.ValidateOrg(d.Config.Org); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(path, ConfigFile), err)
	}
	return d, nil
}

// File returns the path of a file in the directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, filepath.FromSlash(name)) }

// RootVerifier returns the root key's public half.
func (d *Dir) RootVerifier() (note.Verifier, error) {
	v, err := note.NewVerifier(d.Config.RootKey)
	if err != nil {
		return nil, fmt.Errorf("root key in %s: %w", d.File(ConfigFile), err)
	}
	return v, nil
}

// Issuer reads the online issuer key.
func (d *Dir) Issuer() (identity.OrgKey, error) { return identity.ReadOrgKey(d.File(IssuerFile)) }

// LogSigner reads the online log key.
func (d *Dir) LogSigner() (identity.OrgKey, error) { return identity.ReadOrgKey(d.File(LogKeyFile)) }

// DeliverySigner reads the online delivery-service key.
func (d *Dir) DeliverySigner() (identity.OrgKey, error) {
	return identity.ReadOrgKey(d.File(DeliveryFile))
}

// StoreOptions choose the database when config.json does not.
type StoreOptions struct {
	Database     string // PostgreSQL URL; overrides config.json
	PasswordFile string
	Logger       *slog.Logger
}

// OpenStore opens the organisation's database.
func (d *Dir) OpenStore(ctx context.Context, opts StoreOptions) (*store.Store, error) {
	url := opts.Database
	if url == "" {
		url = d.Config.Database
	}
	if url == "" {
		return sqlite.Open(ctx, d.File(DatabaseFile), opts.Logger)
	}
	return postgres.Open(ctx, url, postgres.Options{PasswordFile: opts.PasswordFile}, opts.Logger)
}

// TLSCertificate loads the directory's certificate.
func (d *Dir) TLSCertificate() (tls.Certificate, error) {
	return tls.LoadX509KeyPair(d.File(CertFile), d.File(CertKeyFile))
}

// Fingerprint returns the SHA-256 fingerprint clients pin, for the
// certificate in DIR/tls or the PEM file at certFile if set.
func (d *Dir) Fingerprint(certFile string) (string, error) {
	if certFile == "" {
		certFile = d.File(CertFile)
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s: no PEM certificate", certFile)
	}
	return Fingerprint(blk.Bytes), nil
}

// Fingerprint formats the pin of a DER certificate: "sha256:" and 64 hex
// digits.
func Fingerprint(der []byte) string { return identity.TLSFingerprint(der) }

// NormalizeFingerprint accepts a pin with or without the "sha256:" prefix,
// colons or upper case.
func NormalizeFingerprint(s string) (string, error) { return identity.NormalizeTLSFingerprint(s) }

// selfSigned writes a P-256 certificate valid for the hosts and returns its
// DER bytes. Browsers do not accept Ed25519 certificates, so ECDSA it is.
func selfSigned(certPath, keyPath, org string, hosts []string, now time.Time) ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{org}, CommonName: "Hotline server for " + org},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(825 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	return der, writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeNew creates a file that must not exist and syncs it.
func writeNew(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
