package server_test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/datadir"
	"hotline/internal/identity"
	"hotline/internal/mls"
	"hotline/internal/server"
	"hotline/internal/tlog"
)

// A device the transparency log never showed, credentialed with the
// organisation's issuer key (which a compromised server holds): the
// honest member's client refuses to add it, and when a misbehaving member
// and server add it anyway, every honest member refuses the commit.
func TestGhostDeviceRefused(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b, func(c *server.Config) { c.Misbehave.SkipMemberChecks = true })
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			id := info.ID
			sync1(t, bob)
			ghost := ghostKeyPackage(t, e, "bob@state.example")
			if _, err := alice.AddKeyPackages(ctx, id, ghost); !errors.Is(err, conversation.ErrNotAllowed) || !strings.Contains(err.Error(), "not in the transparency log") {
				t.Fatalf("honest client adds a ghost device: %v", err)
			}
			rogue := misbehaving(t, e, alice)
			if _, err := rogue.AddKeyPackages(ctx, id, ghost); err != nil {
				t.Fatalf("misbehaving member and server: %v", err)
			}
			sync1(t, bob)
			got := bob.Conversation(id)
			if !strings.Contains(got.Broken, "not in the transparency log") {
				t.Fatalf("bob follows a conversation with a ghost device: %+v", got)
			}
			if _, err := bob.Send(ctx, id, text("hello?")); !errors.Is(err, client.ErrConversationBroken) {
				t.Errorf("bob sends: %v", err)
			}
		})
	}
}

// ghostKeyPackage makes a key package for a device of user that was never
// enrolled, with a credential signed by the organisation's issuer key.
func ghostKeyPackage(t *testing.T, e *env, user string) *mls.KeyPackage {
	t.Helper()
	d, err := datadir.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := d.Issuer()
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := identity.GenerateSigningKey(nil)
	kem, _ := identity.GenerateKEMKey(nil)
	u, _ := identity.ParseUserID(user)
	now := e.clock.Now()
	cred := identity.Credential{User: u, Device: sig.Public().DeviceID(), SigKey: sig.Public(), KEMKey: kem.PublicBytes(),
		Roles: identity.Roles{}, Compartments: identity.Compartments{}, Issued: now, Expires: now.Add(7 * 24 * time.Hour)}
	signed, err := cred.Sign(iss.Signer)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := mls.SuiteFor(client.DefaultSuite)
	signer, _ := mls.NewEd25519Signer(sig.CryptoSigner())
	kp, _, err := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: signed}, signer,
		mls.Lifetime{NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(24 * time.Hour).Unix())},
		mls.DefaultCapabilities(client.DefaultSuite, []mls.ExtensionType{conversation.ExtClassification}, nil))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// lastApplication returns the newest application message of a
// conversation as the server holds it (an MLSMessage), fetched by m.
func lastApplication(t *testing.T, m *member, id string) []byte {
	t.Helper()
	var page []api.ConversationMessage
	if err := m.Do(t.Context(), "GET", "/v1/conversations/"+id+"/messages?after=0", nil, &page); err != nil {
		t.Fatal(err)
	}
	for i := len(page) - 1; i >= 0; i-- {
		if page[i].Kind == 1 {
			return page[i].Message
		}
	}
	t.Fatal("no application message")
	return nil
}

// Revoking a device: the server proposes its removal everywhere, the next
// sender commits it, and the device cannot read what is sent afterwards.
func TestRevokedDeviceRemoved(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			carol := newMember(t, e, admin, "carol")
			info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example", "carol@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			id := info.ID
			sync1(t, bob, carol)
			send(t, alice, id, "before the revocation")
			sync1(t, bob, carol)
			if got := texts(t, carol, id); !slices.Equal(got, []string{"alice: before the revocation"}) {
				t.Fatalf("carol before: %q", got)
			}
			var d api.Device
			if err := admin.Do(ctx, "POST", "/v1/devices/"+carol.Profile().Device+"/revoke", api.RevokeRequest{Reason: "lost"}, &d); err != nil {
				t.Fatal(err)
			}
			// The server's proposal is waiting: sending commits it first.
			var conv api.Conversation
			if err := alice.Do(ctx, "GET", "/v1/conversations/"+id, nil, &conv); err != nil {
				t.Fatal(err)
			}
			epoch := conv.Epoch
			send(t, alice, id, "after the revocation")
			if got := memberNames(alice.Conversation(id)); !slices.Equal(got, []string{"alice", "bob"}) {
				t.Fatalf("members after the revocation: %v", got)
			}
			if got := alice.Conversation(id).Epoch; got != epoch+1 {
				t.Errorf("epoch %d after committing the removal, want %d", got, epoch+1)
			}
			after := lastApplication(t, alice, id)
			sync1(t, bob)
			if got := texts(t, bob, id); !slices.Equal(got, []string{"alice: before the revocation", "alice: after the revocation"}) {
				t.Errorf("bob: %q", got)
			}
			// The revoked device holds the state it had: it cannot read
			// the message, while a member not yet past it can.
			if c, err := carol.OpenMessage(id, after); err == nil {
				t.Fatalf("the revoked device read %q", c.Text)
			}
			send(t, alice, id, "control")
			control := lastApplication(t, alice, id)
			if c, err := bob.OpenMessage(id, control); err != nil || c.Text != "control" {
				t.Fatalf("bob cannot open the control message: %v", err)
			}
			if _, err := carol.OpenMessage(id, control); err == nil {
				t.Fatal("the revoked device read the control message")
			}
			// The removal is in the transparency log, with its reason.
			found := false
			for _, en := range logEntries(t, alice.Client) {
				if en.Type == tlog.TypeMemberRemove && en.Device == carol.Profile().Device && en.Reason == "lapsed" && en.Conversation == id {
					found = true
				}
			}
			if !found {
				t.Error("no member.remove entry for the revoked device")
			}
		})
	}
}

// Messages survive server restarts, and a device told everything again
// (its acknowledgements lost) handles nothing twice.
func TestDeliveryAcrossRestartsAndRedelivery(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			id := info.ID
			var want []string
			for i := range 5 {
				s := "message " + string(rune('A'+i))
				send(t, alice, id, s)
				want = append(want, "alice: "+s)
			}
			e.restart(t)
			sync1(t, bob)
			if got := texts(t, bob, id); !slices.Equal(got, want) {
				t.Fatalf("bob after a restart: %q, want %q", got, want)
			}
			// The server forgets bob's acknowledgements; bob's device
			// restarts and is sent everything again.
			e.exec(t, `UPDATE conversation_members SET acked = 0`)
			bob2, err := client.Open(bob.Dir(), client.Options{Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			ups := 0
			bob2.OnUpdate(func(u client.Update) {
				if u.Kind == client.UpdateMessage {
					ups++
				}
			})
			if err := bob2.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if ups != 0 {
				t.Errorf("%d messages handled twice", ups)
			}
			if got := texts(t, &member{Client: bob2, name: "bob"}, id); !slices.Equal(got, want) {
				t.Errorf("bob's history after redelivery: %q", got)
			}
			var rows []api.DeviceConversation
			if err := bob2.Do(ctx, "GET", "/v1/conversations", nil, &rows); err != nil || len(rows) != 1 || rows[0].Acked != rows[0].HeadSeq {
				t.Errorf("bob's delivery after the redelivery: %+v %v", rows, err)
			}
		})
	}
}

// exec runs SQL on the test server's database.
func (e *env) exec(t *testing.T, q string) {
	t.Helper()
	driver, dsn := "sqlite", "file:"+filepath.Join(e.dir, datadir.DatabaseFile)+"?_pragma=busy_timeout(10000)"
	if e.database != "" {
		driver, dsn = "pgx", e.database
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), q); err != nil {
		t.Fatal(err)
	}
}

// Members exchange their log checkpoints inside the conversation: a server
// that showed one member another log than the other is caught.
func TestCheckpointForkDetected(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	bob := newMember(t, e, admin, "bob")
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	id := info.ID
	sync1(t, bob)
	for _, m := range []*member{alice, bob} {
		if _, err := m.VerifyLog(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send(t, bob, id, "an honest checkpoint rides along")
	sync1(t, alice)
	if p := alice.problems(); len(p) > 0 {
		t.Fatalf("problems with honest checkpoints: %q", p)
	}
	// The server shows bob a fork: a checkpoint of the same size with
	// another root, signed with the log key it holds.
	d, err := datadir.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := d.LogSigner()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(bob.Dir(), client.MonitorFile)
	var st tlog.MonitorState
	readJSON(t, path, &st)
	body, _, _ := bytes.Cut(st.Checkpoint, []byte("\n\n"))
	cp, err := tlog.ParseCheckpoint(append(body, '\n'))
	if err != nil {
		t.Fatal(err)
	}
	cp.Size++
	rand.Read(cp.Hash[:])
	if st.Checkpoint, err = tlog.SignCheckpoint(cp, logKey.Signer); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, path, st)
	send(t, bob, id, "a forked checkpoint rides along")
	sync1(t, alice)
	p := alice.problems()
	if len(p) != 1 || !strings.Contains(p[0], "checkpoint bob@state.example sent does not match") {
		t.Fatalf("alice's problems: %q", p)
	}
	if got := texts(t, alice, id); len(got) != 2 {
		t.Errorf("the message itself still arrives: %q", got)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Members commit fresh leaf keys when their last is too old or has sent
// too many messages (post-compromise security).
func TestLeafUpdatesBoundedByTimeAndCount(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	newMember(t, e, admin, "bob")
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	id := info.ID
	c, err := client.Open(alice.Dir(), client.Options{Now: e.clock.Now, UpdateMessages: 3, UpdateInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	epoch := func() uint64 { return c.Conversation(id).Epoch }
	start := epoch()
	for range 3 {
		if _, err := c.Send(ctx, id, text("x")); err != nil {
			t.Fatal(err)
		}
	}
	if got := epoch(); got != start {
		t.Fatalf("epoch moved to %d within the bounds", got)
	}
	if _, err := c.Send(ctx, id, text("the fourth")); err != nil {
		t.Fatal(err)
	}
	if got := epoch(); got != start+1 {
		t.Fatalf("after 3 messages the next send is at epoch %d, want a leaf update to %d", got, start+1)
	}
	e.clock.Advance(61 * time.Minute)
	if _, err := c.Send(ctx, id, text("an hour later")); err != nil {
		t.Fatal(err)
	}
	if got := epoch(); got != start+2 {
		t.Fatalf("an hour later the send is at epoch %d, want a leaf update to %d", got, start+2)
	}
}

// After a scripted conversation with canaries in messages, the title and an
// attachment (its name and content), no canary is in the database (SQLite
// with its -wal and -shm files, or a PostgreSQL dump), the server's log or
// its metrics.
func TestConversationCanaries(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			const canary = "CANARY-c0nv-2f9e"
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "title " + canary, Members: []string{"bob@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			id := info.ID
			sync1(t, bob)
			send(t, bob, id, "message "+canary)
			content := strings.Repeat("attachment "+canary+"\n", 2000)
			if _, err := alice.SendAttachment(ctx, id, strings.NewReader(content), "file-"+canary+".txt", "text/plain"); err != nil {
				t.Fatal(err)
			}
			sync1(t, alice, bob)
			// The attachment arrives whole.
			ms, _ := bob.Messages(id)
			var desc attach.Descriptor
			for _, m := range ms {
				if m.Kind == "attachment" {
					if desc, err = attach.UnmarshalDescriptor(m.Data); err != nil {
						t.Fatal(err)
					}
				}
			}
			var got bytes.Buffer
			if err := bob.DownloadAttachment(ctx, desc, &got); err != nil || got.String() != content || desc.Name != "file-"+canary+".txt" {
				t.Fatalf("attachment: %v, %d bytes, name %q", err, got.Len(), desc.Name)
			}
			if got := bob.Conversation(id).Title; got != "title "+canary {
				t.Fatalf("bob's title %q", got)
			}
			metrics := e.metricsText(t)
			if !strings.Contains(metrics, `hotline_conversation_messages_total{kind="application"}`) {
				t.Fatalf("metrics do not count messages:\n%s", metrics)
			}
			e.noCanary(t, canary, "conversation_messages")
			// The members' own profiles hold it only sealed.
			for _, m := range []*member{alice, bob} {
				filepath.Walk(filepath.Join(m.Dir(), client.ConversationDir), func(path string, fi os.FileInfo, err error) error {
					if err == nil && !fi.IsDir() {
						if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(canary)) {
							t.Errorf("canary unsealed in %s", path)
						}
					}
					return nil
				})
			}
		})
	}
}

// pgDumpArgs are pg_dump's arguments for the test server's schema.
func (e *env) pgDumpArgs(t *testing.T) []string {
	t.Helper()
	u, err := url.Parse(e.database)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return []string{"--data-only", "--schema=" + schema, u.String()}
}

var _ = apierr.EpochMoved

// Bad input to a conversation gets a stable code and changes nothing.
func TestConversationRefusesBadMessages(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	bob := newMember(t, e, admin, "bob")
	carol := newMember(t, e, admin, "carol")
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "t", Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	id := info.ID
	sync1(t, bob)
	send(t, bob, id, "hello")
	var page []api.ConversationMessage
	if err := alice.Do(ctx, "GET", "/v1/conversations/"+id+"/messages?after=0", nil, &page); err != nil {
		t.Fatal(err)
	}
	var aliceCommit, bobMessage []byte
	for _, m := range page {
		if m.Kind == 3 && m.Sender == alice.Profile().Device {
			aliceCommit = m.Message
		}
		if m.Kind == 1 && m.Sender == bob.Profile().Device {
			bobMessage = m.Message
		}
	}
	if aliceCommit == nil || bobMessage == nil {
		t.Fatal("no commit or message to replay")
	}
	state := func() api.Conversation {
		var c api.Conversation
		if err := alice.Do(ctx, "GET", "/v1/conversations/"+id, nil, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := state()
	gi := (&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: ghostKeyPackage(t, e, "bob@state.example")}).Marshal()
	other, err := bob.CreateConversation(ctx, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		as   *member
		path string
		post api.ConversationPost
		code apierr.Code
	}{
		{"garbage", bob, id, api.ConversationPost{Message: []byte("not mls")}, apierr.MLSInvalid},
		{"a key package", bob, id, api.ConversationPost{Message: gi}, apierr.MLSInvalid},
		{"a Welcome with an application message", bob, id, api.ConversationPost{Message: bobMessage, Welcome: []byte{1}}, apierr.MLSInvalid},
		{"another conversation's message", bob, other.ID, api.ConversationPost{Message: bobMessage}, apierr.MLSInvalid},
		{"a non-member", carol, id, api.ConversationPost{Message: bobMessage}, apierr.NotMember},
		{"a commit of an old epoch", alice, id, api.ConversationPost{Message: aliceCommit}, apierr.EpochMoved},
		{"an unknown conversation", bob, "AAAAAAAAAAAAAAAAAAAAAA", api.ConversationPost{Message: bobMessage}, apierr.NotFound},
		{"a bad ID", bob, "not an id!", api.ConversationPost{Message: bobMessage}, apierr.BadRequest},
	} {
		err := tc.as.Do(ctx, "POST", "/v1/conversations/"+url.PathEscape(tc.path)+"/messages", tc.post, nil)
		if !apierr.Is(err, tc.code) {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// A member sending another member's handshake: re-signed content is
	// what it would need, and the server checks whose leaf it is.
	tampered := slices.Clone(aliceCommit)
	tampered[len(tampered)/2] ^= 1
	if err := bob.Do(ctx, "POST", "/v1/conversations/"+id+"/messages", api.ConversationPost{Message: tampered}, nil); err == nil {
		t.Error("a tampered commit was accepted")
	}
	if got := state(); got.Epoch != before.Epoch || got.HeadSeq != before.HeadSeq {
		t.Errorf("the conversation moved: %+v, was %+v", got, before)
	}
	// Reading and acknowledging are for members.
	if err := carol.Do(ctx, "GET", "/v1/conversations/"+id+"/messages", nil, nil); !apierr.Is(err, apierr.NotMember) {
		t.Errorf("a non-member reads: %v", err)
	}
	if err := carol.Do(ctx, "GET", "/v1/conversations/"+id, nil, nil); !apierr.Is(err, apierr.NotMember) {
		t.Errorf("a non-member looks: %v", err)
	}
	if err := carol.Do(ctx, "POST", "/v1/conversations/"+id+"/ack", api.ConversationAck{Seq: 1}, nil); !apierr.Is(err, apierr.NotMember) {
		t.Errorf("a non-member acknowledges: %v", err)
	}
	sync1(t, alice, bob)
	for _, m := range []*member{alice, bob} {
		if p := m.problems(); len(p) > 0 {
			t.Errorf("%s saw problems: %q", m.name, p)
		}
	}
}

// Where the organisation requires its archive member, the server refuses
// conversations that do not require it, and clients refuse to send while
// it is not a member.
func TestArchiveRequired(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	d, err := datadir.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	d.Config.RequireArchive = true
	writeJSON(t, filepath.Join(e.dir, "config.json"), d.Config)
	e.restart(t)
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	newMember(t, e, admin, "bob")
	// Made before the organisation has an archive account: it cannot be
	// added, and nobody may send.
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if !info.ArchiveRequired {
		t.Fatal("the client did not mark the conversation as requiring the archive")
	}
	if _, err := alice.Send(ctx, info.ID, text("no archive yet")); !errors.Is(err, client.ErrArchiveMissing) {
		t.Fatalf("send without the archive member: %v", err)
	}
	archive := newMember(t, e, admin, "archive", "archive")
	if _, err := alice.AddMembers(ctx, info.ID, "archive@state.example"); err != nil {
		t.Fatal(err)
	}
	send(t, alice, info.ID, "recorded")
	sync1(t, archive)
	if got := texts(t, archive, info.ID); !slices.Equal(got, []string{"alice: recorded"}) {
		t.Errorf("the archive member read %q", got)
	}
	// Once the organisation has one, the archive joins every new
	// conversation with its other members.
	info2, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(info2.Members, func(m client.Member) bool { return m.User == "archive@state.example" }) {
		t.Errorf("the archive is not in a new conversation: %v", info2.Members)
	}
	send(t, alice, info2.ID, "recorded at once")
	// A conversation that does not require the archive is refused.
	if err := alice.Do(ctx, "POST", "/v1/conversations", api.ConversationCreate{GroupInfo: groupInfoWithout(t, alice)}, nil); !apierr.Is(err, apierr.MLSInvalid) ||
		!strings.Contains(err.Error(), "archive") {
		t.Errorf("a conversation without the archive requirement: %v", err)
	}
}

// groupInfoWithout makes, with m's device key and credential, the GroupInfo
// of a new conversation whose classification does not require the archive.
func groupInfoWithout(t *testing.T, m *member) []byte {
	t.Helper()
	return groupInfoOf(t, rawGroup(t, m, []byte("no archive here!"), conversation.Classification{}))
}

// rawGroup makes, with m's device key and credential and the mls package
// directly (below the client and its own checks), a new group with the
// delivery service as external sender, classified class.
func rawGroup(t *testing.T, m *member, groupID []byte, class conversation.Classification) *mls.Group {
	t.Helper()
	sig, _, err := identity.ReadDeviceKeys(m.Dir())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := os.ReadFile(filepath.Join(m.Dir(), client.CredentialFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := mls.SuiteFor(client.DefaultSuite)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := mls.NewEd25519Signer(sig.CryptoSigner())
	if err != nil {
		t.Fatal(err)
	}
	kp, sec, err := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: cred}, signer, mls.Lifetime{},
		mls.DefaultCapabilities(client.DefaultSuite, []mls.ExtensionType{conversation.ExtClassification}, nil))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := os.ReadFile(filepath.Join(m.Dir(), client.KeySetFile))
	if err != nil {
		t.Fatal(err)
	}
	root, err := note.NewVerifier(m.Profile().RootKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := identity.OpenKeySet(ks, root)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := conversation.DeliveryService(keys)
	if err != nil {
		t.Fatal(err)
	}
	exts := []mls.Extension{{Type: conversation.ExtClassification, Data: class.Marshal()}, mls.ExternalSendersExtension(mls.ExternalSenders{ds})}
	g, err := mls.NewGroup(nil, s, groupID, kp, sec, signer, exts, mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// groupInfoOf is g's GroupInfo, with its ratchet tree, as an MLSMessage.
func groupInfoOf(t *testing.T, g *mls.Group) []byte {
	t.Helper()
	gi, err := g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	return (&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi}).Marshal()
}
