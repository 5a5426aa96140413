package datadir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/policy"
	"hotline/internal/store"
	"hotline/internal/tlog"
	"hotline/internal/transparency"
)

// InitOptions configure a new organisation.
type InitOptions struct {
	Org          string
	Admin        string   // the first administrator's name (default "admin")
	RootKeyPath  string   // where to write the offline root key (default DIR/root.key)
	Hosts        []string // names and addresses the TLS certificate covers, besides localhost
	Database     string   // PostgreSQL URL; empty for SQLite in DIR
	PasswordFile string
	InviteTTL    time.Duration
	Logger       *slog.Logger
	// RequireArchive: every conversation must have the organisation's
	// archive member (Config.RequireArchive).
	RequireArchive bool
}

// InitResult is what the operator needs to hear once.
type InitResult struct {
	Dir         *Dir
	Admin       identity.UserID
	Invite      org.Invite
	RootKeyPath string
	Fingerprint string
	LogOrigin   string
}

// Init creates a new organisation in dir. It refuses a directory that is
// not empty, a root key path that exists, and a database that already holds
// an organisation; on failure it removes whatever it created.
func Init(ctx context.Context, dir string, opts InitOptions) (_ *InitResult, err error) {
	if err := identity.ValidateOrg(opts.Org); err != nil {
		return nil, err
	}
	if opts.Admin == "" {
		opts.Admin = "admin"
	}
	admin, err := identity.ParseUserID(opts.Admin + "@" + opts.Org)
	if err != nil {
		return nil, err
	}
	if opts.RootKeyPath == "" {
		opts.RootKeyPath = filepath.Join(dir, RootKeyFile)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s: %w", dir, ErrExists)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if _, err := os.Stat(opts.RootKeyPath); err == nil {
		return nil, fmt.Errorf("root key %s already exists; refusing to overwrite it", opts.RootKeyPath)
	}
	createdDir := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		createdDir = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		os.Remove(opts.RootKeyPath)
		if createdDir {
			os.RemoveAll(dir)
		} else {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}()

	now := time.Now().UTC().Truncate(time.Second)
	root, rootText, err := identity.GenerateOrgKey(nil, identity.RootKeyName(opts.Org))
	if err != nil {
		return nil, err
	}
	issuer, issuerText, err := identity.GenerateOrgKey(nil, identity.IssuerKeyName(opts.Org))
	if err != nil {
		return nil, err
	}
	logKey, logText, err := identity.GenerateOrgKey(nil, identity.LogKeyName(opts.Org))
	if err != nil {
		return nil, err
	}
	delivery, deliveryText, err := identity.GenerateOrgKey(nil, identity.DeliveryKeyName(opts.Org))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return nil, err
	}
	if err := identity.WriteOrgKey(opts.RootKeyPath, rootText); err != nil {
		return nil, err
	}
	if err := identity.WriteOrgKey(filepath.Join(dir, IssuerFile), issuerText); err != nil {
		return nil, err
	}
	if err := identity.WriteOrgKey(filepath.Join(dir, LogKeyFile), logText); err != nil {
		return nil, err
	}
	if err := identity.WriteOrgKey(filepath.Join(dir, DeliveryFile), deliveryText); err != nil {
		return nil, err
	}
	keyset, err := identity.KeySet{Org: opts.Org, Serial: 1, Issuer: issuer.VerifierKey, Log: logKey.VerifierKey,
		Delivery: delivery.VerifierKey, Issued: now}.Sign(root.Signer)
	if err != nil {
		return nil, err
	}
	hosts := append([]string{"localhost", "127.0.0.1", "::1"}, opts.Hosts...)
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	der, err := selfSigned(filepath.Join(dir, CertFile), filepath.Join(dir, CertKeyFile), opts.Org, hosts, now)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	d := &Dir{Path: dir, Config: Config{Org: opts.Org, RootKey: root.VerifierKey, Created: now, Database: opts.Database, RequireArchive: opts.RequireArchive}}
	cfg, err := json.MarshalIndent(d.Config, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeNew(filepath.Join(dir, ConfigFile), append(cfg, '\n'), 0o644); err != nil {
		return nil, err
	}

	st, err := d.OpenStore(ctx, StoreOptions{PasswordFile: opts.PasswordFile, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := st.View(ctx, func(tx *store.Tx) error {
		if existing, err := tx.GetMeta(ctx, "org"); err == nil {
			return fmt.Errorf("the database already holds organisation %s: %w", existing, ErrExists)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}); err != nil {
		return nil, err
	}
	tl, err := transparency.Open(ctx, st, identity.LogKeyName(opts.Org), logKey.Signer, transparency.Options{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	defer tl.Close()
	svc := org.New(org.Config{Org: opts.Org, Issuer: issuer.Signer, KeySet: keyset, Store: st, Log: tl, InviteTTL: opts.InviteTTL, Logger: opts.Logger})
	var rules []string
	for _, r := range policy.DefaultRules(opts.Org) {
		rules = append(rules, r.String())
	}
	inv, err := svc.Bootstrap(ctx, admin, keyset, rules)
	if err != nil {
		return nil, err
	}
	if err := tl.Sync(ctx); err != nil {
		return nil, err
	}
	return &InitResult{Dir: d, Admin: admin, Invite: inv, RootKeyPath: opts.RootKeyPath,
		Fingerprint: Fingerprint(der), LogOrigin: identity.LogKeyName(opts.Org)}, nil
}

// Which online key to rotate.
const (
	RotateIssuer   = "issuer"
	RotateLog      = "log"
	RotateDelivery = "delivery"
)

// Rotate replaces online keys with new ones and records a key set signed by
// the root key at rootKeyPath, with the next serial, in the database and the
// transparency log. The old private keys are deleted. Run it while the
// server is stopped, then start the server.
func (d *Dir) Rotate(ctx context.Context, rootKeyPath string, which []string, opts StoreOptions) (identity.KeySet, error) {
	root, err := identity.ReadOrgKey(rootKeyPath)
	if err != nil {
		return identity.KeySet{}, err
	}
	if root.VerifierKey != d.Config.RootKey {
		return identity.KeySet{}, fmt.Errorf("%s is not this organisation's root key", rootKeyPath)
	}
	st, err := d.OpenStore(ctx, opts)
	if err != nil {
		return identity.KeySet{}, err
	}
	defer st.Close()
	var cur identity.KeySet
	if err := st.View(ctx, func(tx *store.Tx) error {
		_, signed, err := tx.LatestKeySet(ctx)
		if err != nil {
			return err
		}
		cur, err = identity.OpenKeySet(signed, root.Verifier)
		return err
	}); err != nil {
		return identity.KeySet{}, fmt.Errorf("current key set: %w", err)
	}
	next := cur
	next.Serial++
	next.Issued = time.Now().UTC().Truncate(time.Second)
	replace := map[string]string{}
	for _, w := range which {
		var name, file string
		switch w {
		case RotateIssuer:
			name, file = identity.IssuerKeyName(d.Config.Org), IssuerFile
		case RotateLog:
			name, file = identity.LogKeyName(d.Config.Org), LogKeyFile
		case RotateDelivery:
			name, file = identity.DeliveryKeyName(d.Config.Org), DeliveryFile
		default:
			return identity.KeySet{}, fmt.Errorf("unknown key %q: want issuer, log or delivery", w)
		}
		k, text, err := identity.GenerateOrgKey(nil, name)
		if err != nil {
			return identity.KeySet{}, err
		}
		switch w {
		case RotateIssuer:
			next.Issuer = k.VerifierKey
		case RotateLog:
			next.Log = k.VerifierKey
		case RotateDelivery:
			next.Delivery = k.VerifierKey
		}
		tmp := d.File(file) + ".new"
		os.Remove(tmp)
		if err := identity.WriteOrgKey(tmp, text); err != nil {
			return identity.KeySet{}, err
		}
		replace[tmp] = d.File(file)
	}
	if len(replace) == 0 {
		return identity.KeySet{}, errors.New("nothing to rotate: name issuer, log or delivery")
	}
	signed, err := next.Sign(root.Signer)
	if err != nil {
		return identity.KeySet{}, err
	}
	entry, err := tlog.Entry{Type: tlog.TypeKeysRotate, Time: next.Issued.Unix(), Actor: org.SystemActor, KeySet: string(signed)}.Marshal()
	if err != nil {
		return identity.KeySet{}, err
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutKeySet(ctx, next.Serial, signed, next.Issued); err != nil {
			return err
		}
		return tx.AppendPending(ctx, entry)
	}); err != nil {
		return identity.KeySet{}, err
	}
	// The key set is committed; now swap the files. A crash between the two
	// leaves the .new files for the operator to rename (docs/operator.md).
	for tmp, final := range replace {
		if err := os.Rename(tmp, final); err != nil {
			return identity.KeySet{}, fmt.Errorf("install %s: %w", final, err)
		}
	}
	return next, nil
}

// KeySets returns every stored key set, verified against the root key, in
// serial order.
func KeySets(ctx context.Context, st *store.Store, root note.Verifier) ([]identity.KeySet, error) {
	var out []identity.KeySet
	err := st.View(ctx, func(tx *store.Tx) error {
		serial, _, err := tx.LatestKeySet(ctx)
		if err != nil {
			return err
		}
		for s := int64(1); s <= serial; s++ {
			signed, err := tx.KeySet(ctx, s)
			if err != nil {
				return fmt.Errorf("key set %d: %w", s, err)
			}
			ks, err := identity.OpenKeySet(signed, root)
			if err != nil {
				return fmt.Errorf("key set %d: %w", s, err)
			}
			if ks.Serial != s {
				return fmt.Errorf("key set stored as %d claims serial %d", s, ks.Serial)
			}
			out = append(out, ks)
		}
		return nil
	})
	return out, err
}
