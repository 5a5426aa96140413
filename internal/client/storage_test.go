package client

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
)

// TestStorage runs the same checks on both storages, so that a profile
// behaves alike on disk and in a browser.
func TestStorage(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T) Storage{
		"dir": func(t *testing.T) Storage { return Dir(filepath.Join(t.TempDir(), "profile")) },
		"mem": func(t *testing.T) Storage { return NewMemStorage(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			if _, err := s.ReadFile("profile.json"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("missing file: %v, want ErrNotExist", err)
			}
			if names, err := s.List("conversations"); err != nil || len(names) != 0 {
				t.Fatalf("missing folder: %v %v", names, err)
			}
			must(t, s.WriteFile("conversations/b.state", []byte("one")))
			must(t, s.WriteFile("conversations/b.state", []byte("two")))
			must(t, s.WriteFile("conversations/a.state", []byte("x")))
			must(t, s.WriteFile("conversations/deeper/c", []byte("y")))
			must(t, s.AppendFile("conversations/a.log", []byte("1")))
			must(t, s.AppendFile("conversations/a.log", []byte("2")))
			if b, err := s.ReadFile("conversations/b.state"); err != nil || string(b) != "two" {
				t.Fatalf("replaced file: %q %v", b, err)
			}
			if b, err := s.ReadFile("conversations/a.log"); err != nil || string(b) != "12" {
				t.Fatalf("appended file: %q %v", b, err)
			}
			if names, err := s.List("conversations"); err != nil || !slices.Equal(names, []string{"a.log", "a.state", "b.state"}) {
				t.Fatalf("list: %v %v", names, err)
			}
			must(t, s.Remove("conversations/b.state"))
			must(t, s.Remove("conversations/b.state"))
			if _, err := s.ReadFile("conversations/b.state"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("removed file: %v", err)
			}

			w, err := s.Create("uploads/ct")
			must(t, err)
			if _, err := s.Open("uploads/ct"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a file being created exists already: %v", err)
			}
			io.WriteString(w, "hello, ")
			io.WriteString(w, "world")
			must(t, w.Close())
			r, err := s.Open("uploads/ct")
			must(t, err)
			buf := make([]byte, 5)
			if n, err := r.ReadAt(buf, 7); n != 5 || string(buf) != "world" || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt: %d %q %v", n, buf, err)
			}
			must(t, r.Close())
		})
	}
}

func TestMemStorageOnChange(t *testing.T) {
	s := NewMemStorage(nil)
	var seen []string
	s.OnChange = func(name string, data []byte) { seen = append(seen, name+"="+string(data)) }
	must(t, s.WriteFile("a", []byte("1")))
	must(t, s.AppendFile("a", []byte("2")))
	must(t, s.Remove("a"))
	must(t, s.Remove("a"))
	if want := []string{"a=1", "a=12", "a="}; !slices.Equal(seen, want) {
		t.Fatalf("changes %q, want %q", seen, want)
	}
	for _, bad := range []string{"", ".", "../x", "/abs", "a//b"} {
		if err := s.WriteFile(bad, nil); err == nil {
			t.Errorf("WriteFile(%q) succeeded", bad)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
