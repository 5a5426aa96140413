package mls

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Interoperability with ts-mls, an MLS implementation nobody on this team
// wrote, driven through interop/ts-mls/harness.mjs (JSON lines). Without
// node or the installed package the tests say how to install them and
// skip; CI installs both.

// tsClient is one ts-mls client: a harness process.
type tsClient struct {
	t   testing.TB
	in  io.WriteCloser
	out *bufio.Scanner
}

// startTS starts a harness process, or skips the test naming the setup
// command.
func startTS(t testing.TB) *tsClient {
	t.Helper()
	dir := filepath.Join("..", "..", "interop", "ts-mls")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: install Node.js, then run (cd interop/ts-mls && npm ci)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ts-mls")); err != nil {
		t.Skip("ts-mls is not installed: run (cd interop/ts-mls && npm ci)")
	}
	cmd := exec.CommandContext(t.Context(), node, "harness.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &tsClient{t: t, in: in, out: sc}
}

// call sends one request and returns the response's fields.
func (c *tsClient) call(op string, args map[string]any) map[string]any {
	c.t.Helper()
	req := map[string]any{"op": op}
	for k, v := range args {
		req[k] = v
	}
	b, _ := json.Marshal(req)
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("ts-mls %s: %v", op, err)
	}
	if !c.out.Scan() {
		c.t.Fatalf("ts-mls %s: harness ended: %v", op, c.out.Err())
	}
	var res map[string]any
	if err := json.Unmarshal(c.out.Bytes(), &res); err != nil {
		c.t.Fatalf("ts-mls %s: %v", op, err)
	}
	if res["ok"] != true {
		c.t.Fatalf("ts-mls %s: %v", op, res["error"])
	}
	return res
}

// msg decodes a hex MLSMessage field of a response.
func (c *tsClient) msg(res map[string]any, field string) *MLSMessage {
	c.t.Helper()
	s, _ := res[field].(string)
	b, err := hex.DecodeString(s)
	if err != nil || s == "" {
		c.t.Fatalf("ts-mls: no %s in the response", field)
	}
	m, err := UnmarshalMLSMessage(b)
	if err != nil {
		c.t.Fatalf("ts-mls %s does not decode: %v", field, err)
	}
	return m
}

func (c *tsClient) send(op string, args map[string]any, m *MLSMessage) map[string]any {
	c.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	args["message"] = hex.EncodeToString(m.Marshal())
	return c.call(op, args)
}

// agree checks ts-mls and g are at the same epoch with the same epoch
// authenticator.
func (c *tsClient) agree(g *Group, step string) {
	c.t.Helper()
	st := c.call("state", nil)
	if ep, _ := st["epoch"].(float64); uint64(ep) != g.Epoch() {
		c.t.Fatalf("%s: ts-mls at epoch %v, Hotline at %d", step, st["epoch"], g.Epoch())
	}
	if st["epoch_authenticator"] != hex.EncodeToString(g.EpochAuthenticator()) {
		c.t.Fatalf("%s: epoch authenticators differ at epoch %d", step, g.Epoch())
	}
}

// tsLog notes what each interop step covered, for the report.
func tsLog(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf(format, args...)
}

// messages checks application messages both ways between g and ts.
func messagesBothWays(t *testing.T, ts *tsClient, g *Group, step string) {
	t.Helper()
	text := []byte("from Hotline: " + step)
	m, err := g.Encrypt(nil, text, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := ts.send("process", nil, m)
	if res["kind"] != "application" || res["data"] != hex.EncodeToString(text) {
		t.Fatalf("%s: ts-mls read %v", step, res)
	}
	text = []byte("from ts-mls: " + step)
	res = ts.call("send", map[string]any{"data": hex.EncodeToString(text)})
	p, err := g.Process(ts.msg(res, "message"))
	if err != nil {
		t.Fatalf("%s: ts-mls application message: %v", step, err)
	}
	if !bytes.Equal(p.ApplicationData, text) {
		t.Fatalf("%s: read %q", step, p.ApplicationData)
	}
}

var interopSuites = []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, TSMLS83XWingAES256GCMSHA512Ed25519}

// TestInteropTSMLSJoinTheirs: ts-mls creates a group and adds Hotline,
// which joins by their Welcome (tree from its ratchet_tree extension);
// then commits and application messages both ways.
func TestInteropTSMLSJoinTheirs(t *testing.T) {
	for _, cs := range interopSuites {
		t.Run(suiteNumber(cs), func(t *testing.T) {
			ts := startTS(t)
			s := mustSuite(t, cs)
			me := newClient(t, s, nil, "hotline")
			ts.call("hello", map[string]any{"suite": int(cs), "name": "ts-mls"})
			ts.call("create", map[string]any{"group_id": hex.EncodeToString([]byte("their group"))})
			res := ts.call("add", map[string]any{"key_package": hex.EncodeToString((&MLSMessage{Version: MLS10, WireFormat: WireFormatKeyPackage, KeyPackage: me.kp}).Marshal())})
			w := ts.msg(res, "welcome")
			g, err := JoinFromWelcome(w.Welcome, me.kp, me.secrets, me.signer, nil, GroupOptions{})
			if err != nil {
				t.Fatalf("joining ts-mls's group: %v", err)
			}
			ts.agree(g, "joined their Welcome")
			messagesBothWays(t, ts, g, "after joining")

			res = ts.call("update", nil)
			if _, err := g.Process(ts.msg(res, "commit")); err != nil {
				t.Fatalf("their update commit: %v", err)
			}
			ts.agree(g, "their update")
			cr, err := g.Commit(nil, CommitOptions{Update: true})
			if err != nil {
				t.Fatal(err)
			}
			ts.send("process", nil, cr.Commit)
			if err := g.MergePending(); err != nil {
				t.Fatal(err)
			}
			ts.agree(g, "our update")
			messagesBothWays(t, ts, g, "after the updates")
			tsLog(t, "suite %s: joined ts-mls's group; updates both ways; messages both ways; epoch %d", suiteNumber(cs), g.Epoch())
		})
	}
}

// TestInteropTSMLSJoinOurs: Hotline creates a group and adds two ts-mls
// clients, which join by our Welcome; commits (updates, a removal) and
// application messages flow every way.
func TestInteropTSMLSJoinOurs(t *testing.T) {
	for _, cs := range interopSuites {
		t.Run(suiteNumber(cs), func(t *testing.T) {
			s := mustSuite(t, cs)
			me := newClient(t, s, nil, "hotline")
			opts := GroupOptions{UseRatchetTreeExtension: true}
			g, err := NewGroup(nil, s, []byte("our group"), me.kp, me.secrets, me.signer, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			tsA, tsB := startTS(t), startTS(t)
			var kps []*KeyPackage
			for i, ts := range []*tsClient{tsA, tsB} {
				res := ts.call("hello", map[string]any{"suite": int(cs), "name": fmt.Sprint("ts-mls ", i)})
				kps = append(kps, ts.msg(res, "key_package").KeyPackage)
			}
			cr, err := g.Commit(nil, CommitOptions{Adds: kps})
			if err != nil {
				t.Fatalf("adding ts-mls's key packages: %v", err)
			}
			if err := g.MergePending(); err != nil {
				t.Fatal(err)
			}
			for _, ts := range []*tsClient{tsA, tsB} {
				ts.send("join", map[string]any{"welcome": hex.EncodeToString(cr.Welcome.Marshal())}, cr.Welcome)
				ts.agree(g, "joined our Welcome")
			}
			messagesBothWays(t, tsA, g, "A after joining")
			// B reads A's message too.
			res := tsA.call("send", map[string]any{"data": hex.EncodeToString([]byte("A to all"))})
			if got := tsB.send("process", nil, tsA.msg(res, "message")); got["data"] != hex.EncodeToString([]byte("A to all")) {
				t.Fatalf("B read %v", got)
			}
			if _, err := g.Process(tsA.msg(res, "message")); err != nil {
				t.Fatal(err)
			}

			// Our update, processed by both; A's update, processed by us
			// and B.
			cr, err = g.Commit(nil, CommitOptions{Update: true})
			if err != nil {
				t.Fatal(err)
			}
			tsA.send("process", nil, cr.Commit)
			tsB.send("process", nil, cr.Commit)
			if err := g.MergePending(); err != nil {
				t.Fatal(err)
			}
			tsA.agree(g, "our update (A)")
			tsB.agree(g, "our update (B)")
			res = tsA.call("update", nil)
			if _, err := g.Process(tsA.msg(res, "commit")); err != nil {
				t.Fatalf("A's update: %v", err)
			}
			tsB.send("process", nil, tsA.msg(res, "commit"))
			tsA.agree(g, "A's update")
			tsB.agree(g, "A's update (B)")
			messagesBothWays(t, tsB, g, "B after the updates")

			// A removes B; then we remove A.
			leafB := tsB.call("leaf", nil)["leaf"].(float64)
			res = tsA.call("remove", map[string]any{"leaf": int(leafB)})
			p, err := g.Process(tsA.msg(res, "commit"))
			if err != nil || len(p.Removed) != 1 || p.Removed[0] != LeafIndex(leafB) {
				t.Fatalf("A's removal of B: %+v, %v", p, err)
			}
			tsA.agree(g, "A removed B")
			messagesBothWays(t, tsA, g, "after B's removal")
			cr, err = g.Commit(nil, CommitOptions{Removes: []LeafIndex{1}})
			if err != nil {
				t.Fatal(err)
			}
			tsA.send("process", nil, cr.Commit)
			if err := g.MergePending(); err != nil {
				t.Fatal(err)
			}
			if len(g.Members()) != 1 {
				t.Fatalf("%d members left", len(g.Members()))
			}
			tsLog(t, "suite %s: two ts-mls clients joined our Welcome; updates both ways; removals both ways; messages every way; epoch %d", suiteNumber(cs), g.Epoch())
		})
	}
}

// TestInteropTSMLSExternalJoin checks external joins against ts-mls. ts-mls
// 1.6.4 writes the external_pub extension as the bare public key, where
// RFC 9420 (section 12.4.3.2) has struct { HPKEPublicKey external_pub; },
// a length-prefixed key, as openmls and mlspp write it: neither side can
// then read the other's GroupInfo. The test checks that this deviation is
// still what stands in the way and skips saying so; once ts-mls follows
// the RFC it runs external joins both ways.
func TestInteropTSMLSExternalJoin(t *testing.T) {
	for _, cs := range interopSuites {
		t.Run(suiteNumber(cs), func(t *testing.T) {
			s := mustSuite(t, cs)
			ts := startTS(t)
			ts.call("hello", map[string]any{"suite": int(cs), "name": "ts-mls creator"})
			ts.call("create", map[string]any{"group_id": hex.EncodeToString([]byte("their open group"))})
			ts.call("update", nil)
			gi := ts.msg(ts.call("group_info", nil), "group_info").GroupInfo
			data, ok := findExtension(gi.Extensions, ExtExternalPub)
			if !ok {
				t.Fatal("ts-mls's GroupInfo has no external_pub")
			}
			if s.ValidateHPKEPublicKey(data) == nil {
				t.Skipf("ts-mls writes external_pub as a bare %d-byte key, not RFC 9420's length-prefixed HPKEPublicKey: external joins cannot interoperate", len(data))
			}

			// Hotline joins theirs.
			joiner := newClient(t, s, nil, "hotline joiner")
			g2, commit, err := ExternalJoin(nil, gi, nil, joiner.kp, joiner.signer, GroupOptions{})
			if err != nil {
				t.Fatalf("joining ts-mls's group by external commit: %v", err)
			}
			ts.send("process", nil, commit)
			ts.agree(g2, "Hotline joined by external commit")
			messagesBothWays(t, ts, g2, "after our external join")

			// ts-mls joins ours.
			me := newClient(t, s, nil, "hotline")
			g, err := NewGroup(nil, s, []byte("our open group"), me.kp, me.secrets, me.signer, nil, GroupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ourGI, err := g.GroupInfo(true)
			if err != nil {
				t.Fatal(err)
			}
			ts2 := startTS(t)
			ts2.call("hello", map[string]any{"suite": int(cs), "name": "ts-mls"})
			res := ts2.call("external_join", map[string]any{"group_info": hex.EncodeToString((&MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: ourGI}).Marshal())})
			if _, err := g.Process(ts2.msg(res, "commit")); err != nil {
				t.Fatalf("ts-mls's external commit: %v", err)
			}
			ts2.agree(g, "ts-mls joined by external commit")
			messagesBothWays(t, ts2, g, "after ts-mls's external join")
			tsLog(t, "suite %s: external joins both ways", suiteNumber(cs))
		})
	}
}
