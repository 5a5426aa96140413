package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"hotline/internal/datadir"
	"hotline/internal/store/sqlite"
)

// backupFiles are the data directory's files a backup carries besides the
// database snapshot. The root key is never among them: it lives offline.
var backupFiles = []string{datadir.ConfigFile, datadir.IssuerFile, datadir.LogKeyFile, datadir.DeliveryFile, datadir.CertFile, datadir.CertKeyFile}

func cmdBackup(e *cmdEnv, args []string) error {
	fs := newFlags(e, "backup", "backup --data DIR --out FILE")
	data := fs.String("data", "", "data `directory` (SQLite deployments; the server may be running)")
	out := fs.String("out", "", "backup `file` to write (.tar.gz); it holds the online private keys: keep it as safe as the server")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := required(fs, "data", "out"); err != nil {
		return err
	}
	d, err := datadir.Open(*data)
	if err != nil {
		return err
	}
	if d.Config.Database != "" {
		return withHint(errors.New("this organisation's database is PostgreSQL"), "back it up with pg_dump, and copy the data directory's keys and config")
	}
	tmp, err := os.MkdirTemp(filepath.Dir(*out), ".hotline-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, datadir.DatabaseFile)
	if err := sqlite.Backup(e.ctx, d.File(datadir.DatabaseFile), snap); err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = writeBackup(f, d, snap)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(e.stdout, "Backup of %s written to %s.\nIt holds the online private keys; store it as carefully as the server itself.\n", d.Config.Org, *out)
	return nil
}

func writeBackup(w io.Writer, d *datadir.Dir, snapshot string) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	add := func(name, path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	}
	for _, name := range backupFiles {
		if err := add(name, d.File(name)); err != nil {
			return err
		}
	}
	if err := add(datadir.DatabaseFile, snapshot); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func cmdRestore(e *cmdEnv, args []string) error {
	fs := newFlags(e, "restore", "restore --from FILE --data DIR")
	from := fs.String("from", "", "backup `file` written by hotline backup")
	data := fs.String("data", "", "data `directory` to create (must not exist or be empty)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := required(fs, "from", "data"); err != nil {
		return err
	}
	if entries, err := os.ReadDir(*data); err == nil && len(entries) > 0 {
		return withHint(fmt.Errorf("%s: %w", *data, datadir.ErrExists), "restore into a new directory")
	}
	f, err := os.Open(*from)
	if err != nil {
		return err
	}
	defer f.Close()
	_, statErr := os.Stat(*data)
	existed := statErr == nil
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	if err := extractBackup(f, *data); err != nil {
		// Remove what the restore wrote, but not an empty directory the
		// operator made (a mount point, say).
		if existed {
			entries, _ := os.ReadDir(*data)
			for _, en := range entries {
				os.RemoveAll(filepath.Join(*data, en.Name()))
			}
		} else {
			os.RemoveAll(*data)
		}
		return fmt.Errorf("restore %s: %w", *from, err)
	}
	rep, err := audit(e, *data, datadir.StoreOptions{})
	if err != nil {
		return withHint(fmt.Errorf("restored, but the audit failed: %w", err), "do not serve this directory; the backup may be damaged")
	}
	fmt.Fprintf(e.stdout, "Restored into %s; audit passed (%d entries, %d devices, %d users).\n", *data, rep.Entries, rep.Devices, rep.Users)
	return nil
}

// extractBackup writes the known files of a backup into dir; anything else
// in the archive is an error, so a crafted archive cannot write elsewhere.
func extractBackup(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	want := append(slices.Clone(backupFiles), datadir.DatabaseFile)
	got := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg || !slices.Contains(want, h.Name) || got[h.Name] {
			return fmt.Errorf("unexpected entry %q in backup", h.Name)
		}
		got[h.Name] = true
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		mode := os.FileMode(0o600)
		if h.Name == datadir.ConfigFile || h.Name == datadir.CertFile {
			mode = 0o644
		}
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, io.LimitReader(tr, 16<<30))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	for _, name := range want {
		if !got[name] {
			return fmt.Errorf("backup lacks %s", name)
		}
	}
	return nil
}
