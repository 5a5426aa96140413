package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"

	"hotline/internal/identity"
)

// Storage holds a profile's files. Names are slash-separated and relative
// to the profile ("conversations/<id>.state"). A profile directory on disk
// is one (Dir); in a browser, the web app keeps a MemStorage and seals its
// files into IndexedDB.
//
// A missing file is an error matching fs.ErrNotExist.
type Storage interface {
	// ReadFile returns a file's contents.
	ReadFile(name string) ([]byte, error)
	// WriteFile replaces a file atomically, creating its folder.
	WriteFile(name string, data []byte) error
	// AppendFile appends to a file, creating it and its folder.
	AppendFile(name string, data []byte) error
	// Remove deletes a file; removing a missing file is not an error.
	Remove(name string) error
	// List returns the names of the files directly in a folder, sorted;
	// a missing folder has none.
	List(dir string) ([]string, error)
	// Create starts a new file of unknown length (an attachment's
	// ciphertext); it exists once the writer is closed without error.
	Create(name string) (io.WriteCloser, error)
	// Open opens a file for random reads.
	Open(name string) (ReaderAtCloser, error)
}

// Syncer is a Storage whose changes become durable later than WriteFile
// returns (a browser's IndexedDB, written in the background). Before this
// device tells the server it has handled something — acknowledging an
// event or a conversation's messages, after which the server forgets
// them — it calls Sync, so that a tab closed at that moment loses nothing.
type Syncer interface {
	Sync(ctx context.Context) error
}

// ReaderAtCloser is what Storage.Open returns.
type ReaderAtCloser interface {
	io.ReaderAt
	io.Closer
}

// Dir is a profile directory on disk. Files are 0600 and folders 0700.
type Dir string

func (d Dir) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

func (d Dir) ReadFile(name string) ([]byte, error) { return os.ReadFile(d.path(name)) }

func (d Dir) WriteFile(name string, data []byte) error {
	p := d.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (d Dir) AppendFile(name string, data []byte) error {
	p := d.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (d Dir) Remove(name string) error {
	if err := os.Remove(d.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d Dir) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(d.path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (d Dir) Create(name string) (io.WriteCloser, error) {
	p := d.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &dirFile{File: f, final: p}, nil
}

type dirFile struct {
	*os.File
	final string
}

func (f *dirFile) Close() error {
	if err := f.File.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), f.final)
}

func (d Dir) Open(name string) (ReaderAtCloser, error) { return os.Open(d.path(name)) }

// MemStorage is a Storage in memory. OnChange, when set, is called after
// every change with the file's name and new contents (nil: removed), so a
// browser can persist the profile; it is called with the storage locked, in
// order. SyncFunc, when set, makes what OnChange was given durable (Syncer).
type MemStorage struct {
	mu       sync.Mutex
	files    map[string][]byte
	OnChange func(name string, data []byte)
	SyncFunc func(ctx context.Context) error
}

// Sync waits until every change so far is durable (SyncFunc).
func (m *MemStorage) Sync(ctx context.Context) error {
	if m.SyncFunc == nil {
		return nil
	}
	return m.SyncFunc(ctx)
}

// NewMemStorage returns a storage holding files (which it takes over).
func NewMemStorage(files map[string][]byte) *MemStorage {
	if files == nil {
		files = map[string][]byte{}
	}
	return &MemStorage{files: files}
}

func memName(name string) (string, error) {
	if !fs.ValidPath(name) || name == "." {
		return "", fmt.Errorf("storage: invalid file name %q", name)
	}
	return name, nil
}

func (m *MemStorage) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

func (m *MemStorage) WriteFile(name string, data []byte) error {
	name, err := memName(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(name, bytes.Clone(data))
	return nil
}

func (m *MemStorage) setLocked(name string, data []byte) {
	if data == nil {
		delete(m.files, name)
	} else {
		m.files[name] = data
	}
	if m.OnChange != nil {
		m.OnChange(name, data)
	}
}

func (m *MemStorage) AppendFile(name string, data []byte) error {
	name, err := memName(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(name, append(bytes.Clone(m.files[name]), data...))
	return nil
}

func (m *MemStorage) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; ok {
		m.setLocked(name, nil)
	}
	return nil
}

func (m *MemStorage) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.files {
		if path.Dir(n) == path.Clean(dir) {
			out = append(out, path.Base(n))
		}
	}
	slices.Sort(out)
	return out, nil
}

func (m *MemStorage) Create(name string) (io.WriteCloser, error) {
	name, err := memName(name)
	if err != nil {
		return nil, err
	}
	return &memFile{m: m, name: name}, nil
}

type memFile struct {
	m    *MemStorage
	name string
	buf  bytes.Buffer
}

func (f *memFile) Write(p []byte) (int, error) { return f.buf.Write(p) }

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	f.m.setLocked(f.name, f.buf.Bytes())
	return nil
}

func (m *MemStorage) Open(name string) (ReaderAtCloser, error) {
	b, err := m.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return struct {
		io.ReaderAt
		io.Closer
	}{bytes.NewReader(b), io.NopCloser(nil)}, nil
}

// Files returns a copy of every file, for a caller persisting the whole
// profile.
func (m *MemStorage) Files() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]byte, len(m.files))
	for n, b := range m.files {
		out[n] = bytes.Clone(b)
	}
	return out
}

// readDeviceKeys reads the device's keys: on disk through identity's
// checks of the file's mode, elsewhere from the storage's file.
func readDeviceKeys(s Storage) (identity.SigningKey, identity.KEMKey, error) {
	if d, ok := s.(Dir); ok {
		return identity.ReadDeviceKeys(string(d))
	}
	b, err := s.ReadFile(identity.DeviceKeysFile)
	if err != nil {
		return identity.SigningKey{}, identity.KEMKey{}, fmt.Errorf("read device keys: %w", err)
	}
	return identity.ParseDeviceKeys(b)
}

// writeDeviceKeys stores a new device's keys, refusing to replace any.
func writeDeviceKeys(s Storage, sig identity.SigningKey, kem identity.KEMKey) error {
	if d, ok := s.(Dir); ok {
		if err := os.MkdirAll(string(d), 0o700); err != nil {
			return err
		}
		return identity.WriteDeviceKeys(string(d), sig, kem)
	}
	if _, err := s.ReadFile(identity.DeviceKeysFile); err == nil {
		return fmt.Errorf("write device keys: %w", fs.ErrExist)
	}
	b, err := identity.MarshalDeviceKeys(sig, kem)
	if err != nil {
		return err
	}
	return s.WriteFile(identity.DeviceKeysFile, b)
}

// hasDeviceKeys reports whether the storage already holds a device.
func hasDeviceKeys(s Storage) bool {
	_, err := s.ReadFile(identity.DeviceKeysFile)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// fileStamp tells whether a file changed: on disk by its size and
// modification time, since another Client may write it; in memory only
// this Client does, and it drops what it cached when it does.
func fileStamp(s Storage, name string) (string, error) {
	d, ok := s.(Dir)
	if m, isMem := s.(*MemStorage); isMem {
		m.mu.Lock()
		_, ok := m.files[name]
		m.mu.Unlock()
		if !ok {
			return "", fs.ErrNotExist
		}
		return "", nil
	} else if !ok {
		_, err := s.ReadFile(name)
		return "", err
	}
	fi, err := os.Stat(d.path(name))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano()), nil
}

// syncStorage makes the profile's changes durable where the storage needs
// it (Syncer); before telling the server something was handled.
func (c *Client) syncStorage(ctx context.Context) error {
	if s, ok := c.st.(Syncer); ok {
		if err := s.Sync(ctx); err != nil {
			return fmt.Errorf("save the profile: %w", err)
		}
	}
	return nil
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
