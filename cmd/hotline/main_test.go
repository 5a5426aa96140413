package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite"

	"hotline/internal/audiotest"
)

// TestMain makes the test binary answer to the name "hotline", so scripts
// run the real command (`exec hotline ...`) in a subprocess, and so
// crash_test.go can start a server it may SIGKILL.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hotline": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the scenarios in testdata/*.txtar. Each is an end-to-end
// story told with the CLI: a real server in the background on 127.0.0.1:0,
// real devices in profile directories, and the few helper commands below
// for what a shell would do with jq, stat or sqlite3.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile": cmdWaitFile,
			"readvar":  cmdReadVar,
			"jsonvar":  cmdJSONVar,
			"addrvar":  cmdAddrVar,
			"sqlexec":  cmdSQLExec,
			"snapshot": cmdSnapshot,
			"perm":     cmdPerm,
			"exitcode": cmdExitCode,
			"sleep":    cmdSleep,
			"timevar":  cmdTimeVar,
			"mkcert":   cmdMkcert,
			"speech":   func(ts *testscript.TestScript, neg bool, args []string) { cmdSpeech(t, ts, neg, args) },
			"similar":  func(ts *testscript.TestScript, neg bool, args []string) { cmdSimilar(t, ts, neg, args) },
		},
	})
}

// waitTimeout bounds every wait in the helper commands.
const waitTimeout = 30 * time.Second

// waitfile FILE [REGEXP]: wait (up to 30s) until FILE holds a complete
// line, as hotline serve --addr-file writes once the server listens, or
// until its content matches REGEXP (to see that a background command got
// somewhere, such as a profile recording an event). Negated, it waits
// until FILE exists and no longer matches REGEXP.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 || neg && len(args) != 2 {
		ts.Fatalf("usage: waitfile FILE [REGEXP] | ! waitfile FILE REGEXP")
	}
	done := func(b []byte) bool { return bytes.HasSuffix(b, []byte("\n")) }
	if len(args) == 2 {
		re, err := regexp.Compile("(?m)" + args[1])
		ts.Check(err)
		done = func(b []byte) bool { return re.Match(b) != neg }
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(waitTimeout)
	for {
		if b, err := os.ReadFile(path); err == nil && done(b) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear or match within %s", args[0], waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// timevar VAR DURATION [LAYOUT]: set VAR to the time DURATION from now in
// UTC, formatted by LAYOUT (default "2006-01-02 15:04"), for commands that
// take times that must lie in the future.
func cmdTimeVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: timevar VAR DURATION [LAYOUT]")
	}
	d, err := time.ParseDuration(args[1])
	ts.Check(err)
	layout := "2006-01-02 15:04"
	if len(args) == 3 {
		layout = args[2]
	}
	ts.Setenv(args[0], time.Now().UTC().Add(d).Format(layout))
}

// readvar FILE VAR: set VAR to FILE's content without surrounding space.
// FILE may be stdout or stderr.
func cmdReadVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: readvar FILE VAR")
	}
	ts.Setenv(args[1], strings.TrimSpace(ts.ReadFile(args[0])))
}

// jsonvar FILE PATH VAR: set VAR to the value at PATH (dotted; numbers
// index arrays) in the JSON document in FILE, which may be stdout. Strings
// are set as is, anything else as JSON. A missing path fails the script,
// or, negated, asserts that the path is absent.
func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 && !(neg && len(args) == 2) {
		ts.Fatalf("usage: jsonvar FILE PATH VAR | ! jsonvar FILE PATH")
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &v); err != nil {
		ts.Fatalf("%s: %v", args[0], err)
	}
	got, err := jsonPath(v, args[1])
	if neg {
		if err == nil {
			ts.Fatalf("%s: %s is present: %v", args[0], args[1], got)
		}
		return
	}
	if err != nil {
		ts.Fatalf("%s: %v", args[0], err)
	}
	s, ok := got.(string)
	if !ok {
		b, _ := json.Marshal(got)
		s = string(b)
	}
	ts.Setenv(args[2], s)
}

func jsonPath(v any, path string) (any, error) {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, fmt.Errorf("no field %q in path %s", k, path)
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("no element %q in path %s (array of %d)", k, path, len(x))
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("%q in path %s: not an object or array", k, path)
		}
	}
	return v, nil
}

// addrvar FILE VAR: set VAR to the host:port of the URL in FILE (an
// --addr-file), to restart a server on the address its devices know.
func cmdAddrVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: addrvar FILE VAR")
	}
	u, err := url.Parse(strings.TrimSpace(ts.ReadFile(args[0])))
	if err != nil || u.Host == "" {
		ts.Fatalf("%s: not a server URL", args[0])
	}
	ts.Setenv(args[1], u.Host)
}

// sqlexec DBFILE SQL: run one statement against a stopped server's SQLite
// database, as an attacker with file access would. It fails unless the
// statement changed at least one row, so a tampering step cannot silently
// do nothing.
func cmdSQLExec(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sqlexec DBFILE SQL")
	}
	path := ts.MkAbs(args[0])
	if _, err := os.Stat(path); err != nil {
		ts.Fatalf("%v", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	ts.Check(err)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := db.ExecContext(ctx, args[1])
	if err != nil {
		ts.Fatalf("sqlexec: %v", err)
	}
	n, err := res.RowsAffected()
	ts.Check(err)
	if n == 0 {
		ts.Fatalf("sqlexec: no rows changed")
	}
	ts.Logf("sqlexec: %d rows changed", n)
}

// snapshot DIR: print every file under DIR with its mode, size and SHA-256,
// one per line in path order, so a script can prove nothing changed.
func cmdSnapshot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: snapshot DIR")
	}
	root := ts.MkAbs(args[0])
	w := ts.Stdout()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			fmt.Fprintf(w, "%v %s/\n", info.Mode(), filepath.ToSlash(rel))
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%v %d %x %s\n", info.Mode(), len(b), sha256.Sum256(b), filepath.ToSlash(rel))
		return nil
	})
	ts.Check(err)
}

// perm FILE MODE: assert FILE's permission bits are MODE (octal, 0600).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	if err != nil {
		ts.Fatalf("perm: bad mode %q", args[1])
	}
	info, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := info.Mode().Perm()
	if (got == fs.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %#o; want %s%#o", args[0], got, map[bool]string{true: "not "}[neg], want)
	}
}

// exitcode N PROGRAM [ARGS...]: run PROGRAM like exec and assert that it
// exits with status N, for where 1 (an error) and 2 (a usage error) differ.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d; want %d", args[1], got, want)
	}
}

// mkcert DIR writes a test certificate authority (DIR/ca.pem) and a server
// certificate it issued for 127.0.0.1 and localhost (DIR/cert.pem,
// DIR/key.pem), standing in for a certificate from a public CA.
func cmdMkcert(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkcert DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Hotline test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	ts.Check(err)
	caCert, err := x509.ParseCertificate(caDER)
	ts.Check(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	ts.Check(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	ts.Check(err)
	ts.Check(os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644))
	ts.Check(os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	ts.Check(os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
}

// speech FILE.ogg TEXT...: synthesise TEXT, spoken, into FILE.ogg (Ogg
// Opus, 20 ms frames), to play into a call. It needs espeak-ng, sox and
// ffmpeg, as audiotest does.
func cmdSpeech(t *testing.T, ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: speech FILE.ogg TEXT...")
	}
	dir, err := os.MkdirTemp(ts.Getenv("WORK"), "speech")
	ts.Check(err)
	defer os.RemoveAll(dir)
	_, ogg := audiotest.Speech(scriptTB{t, ts}, dir, strings.Join(args[1:], " "))
	ts.Check(os.Rename(ogg, ts.MkAbs(args[0])))
}

// similar REC.ogg SRC.ogg: assert that REC, a recording, holds what SRC
// played (audiotest's score at least audiotest.Correlated); negated, that
// it does not (a score below audiotest.Uncorrelated). The score and lag are
// logged either way.
func cmdSimilar(t *testing.T, ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: similar REC.ogg SRC.ogg")
	}
	tb := scriptTB{t, ts}
	rec := audiotest.Decode(tb, ts.MkAbs(args[0]))
	src := audiotest.Decode(tb, ts.MkAbs(args[1]))
	score, lag := audiotest.Similarity(src, rec)
	ts.Logf("similar %s %s: score %.3f, lag %v", args[0], args[1], score, lag)
	switch {
	case !neg && score < audiotest.Correlated:
		ts.Fatalf("%s does not hold %s: score %.3f < %.2f", args[0], args[1], score, audiotest.Correlated)
	case neg && score >= audiotest.Uncorrelated:
		ts.Fatalf("%s holds %s: score %.3f >= %.2f", args[0], args[1], score, audiotest.Uncorrelated)
	}
}

// scriptTB is the testing.TB that audiotest wants, failing the script
// rather than the test. audiotest calls only the methods it overrides; the
// embedded TB (the enclosing test) only completes the interface.
type scriptTB struct {
	testing.TB
	ts *testscript.TestScript
}

func (scriptTB) Helper()                              {}
func (tb scriptTB) Fatalf(format string, args ...any) { tb.ts.Fatalf(format, args...) }
func (tb scriptTB) Fatal(args ...any)                 { tb.ts.Fatalf("%s", fmt.Sprint(args...)) }
func (tb scriptTB) Logf(format string, args ...any)   { tb.ts.Logf(format, args...) }

// sleep DURATION: wait, for what no file shows (a call ringing on the
// server); at most 5 s.
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	if d > 5*time.Second {
		ts.Fatalf("sleep: at most 5s")
	}
	time.Sleep(d)
}
