package tlog

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func validEntries() []Entry {
	return []Entry{
		orgCreate(),
		{Type: TypeKeysRotate, Time: 5, Actor: "root@org.example", KeySet: "org.example\nnew keys\n"},
		{Type: TypeUserCreate, Time: 6, Actor: "admin@org.example", User: "ada@org.example", Roles: []string{"principal"}, Clearance: "secret", Compartments: []string{"alpha", "bravo"}},
		{Type: TypeUserRoles, Time: 7, User: "ada@org.example", Roles: []string{"principal", "duty-officer"}},
		{Type: TypeUserRoles, Time: 7, User: "ada@org.example"},
		{Type: TypeUserClearance, Time: 8, User: "ada@org.example", Clearance: "top-secret", Approvers: []string{"sec1@org.example", "sec2@org.example"}},
		{Type: TypeUserDisable, Time: 9, User: "ada@org.example", Reason: "left"},
		enrol("ada@org.example", "phone", StatusActive),
		enrol("ada@org.example", "laptop", StatusPending),
		approve("ada@org.example", "laptop", "sec1@org.example"),
		revoke("ada@org.example", "phone"),
		{Type: TypePolicyAdd, Time: 10, Rule: `allow role:principal -> org:<partner.example> "quoted" & <html>`},
		{Type: TypePolicyRemove, Time: 11, Rule: "deny *"},
		{Type: TypeContactRefused, Time: 12, Actor: "bob@org.example", ActorDevice: "phone", Target: "ada@org.example", Reason: "clearance", Count: 3},
		{Type: TypeContactRefused, Time: 1 << 40, Actor: "bob@org.example", Target: "ada@org.example", Reason: "policy.deny"},
		{Type: TypeConversationChain, Time: 13, Conversation: "AAEC", Count: 1 << 40, Chain: key("chain", 32)},
		{Type: TypeRecordsRetention, Time: 14, Actor: "ro@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Clearance: "secret", Count: 3650},
		{Type: TypeRecordsHold, Time: 14, Item: "h1", Actor: "ro@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Reason: "litigation", Conversation: "AAEC"},
		{Type: TypeRecordsRelease, Time: 14, Item: "h1", Actor: "ro@org.example", ActorDevice: "aaaaaaaaaaaaaaaa"},
		{Type: TypeRecordsExpire, Time: 14, Actor: "archive@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Conversation: "AAEC", Count: 40},
		{Type: TypeRecordsGrant, Time: 14, Item: "g1", Actor: "ro@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Target: "ada@org.example", Conversation: "AAEC", Count: 3},
		{Type: TypeRecordsRead, Time: 14, Item: "g1", Actor: "ada@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Conversation: "AAEC"},
		{Type: TypeRecordsExport, Time: 14, Item: strings.Repeat("ab", 32), Actor: "ro@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Conversation: "AAEC", Count: 12},
		{Type: TypeRecordsMove, Time: 14, Item: strings.Repeat("ab", 32), Actor: "ro@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Conversation: "AAEC", Count: 40, Reason: "national-archives"},
		{Type: TypeRecordsReclass, Time: 14, Actor: "ro@org.example", ActorDevice: "aaaaaaaaaaaaaaaa", Conversation: "AAEC", Clearance: "unclassified"},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range validEntries() {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", e, err)
		}
		got, err := ParseEntry(b)
		if err != nil {
			t.Fatalf("ParseEntry(%s): %v", b, err)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	b, err := validEntries()[11].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"policy.add","time":10,"rule":"allow role:principal -> org:<partner.example> \"quoted\" & <html>"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	// chain is the last field, after every field older entries have.
	b, err = Entry{Type: TypeConversationChain, Time: 1, Conversation: "AAEC", Count: 7, Chain: key("c", 32)}.Marshal()
	if want := `{"type":"conversation.chain","time":1,"count":7,"conversation":"AAEC","chain":"` + key("c", 32) + `"}`; err != nil || string(b) != want {
		t.Errorf("Marshal = %s, %v; want %s", b, err, want)
	}
}

func TestParseEntryMalformed(t *testing.T) {
	sig := key("k", 32)
	tests := map[string]string{
		"empty":               ``,
		"null":                `null`,
		"array":               `[]`,
		"unknown field":       `{"type":"user.disable","time":1,"user":"a@b","extra":1}`,
		"unknown type":        `{"type":"user.delete","time":1,"user":"a@b"}`,
		"no type":             `{"time":1,"user":"a@b"}`,
		"time 0":              `{"type":"user.disable","time":0,"user":"a@b"}`,
		"no time":             `{"type":"user.disable","user":"a@b"}`,
		"time negative":       `{"type":"user.disable","time":-5,"user":"a@b"}`,
		"time float":          `{"type":"user.disable","time":1.5,"user":"a@b"}`,
		"time exponent":       `{"type":"user.disable","time":1e3,"user":"a@b"}`,
		"time as string":      `{"type":"user.disable","time":"1","user":"a@b"}`,
		"field order":         `{"time":1,"type":"user.disable","user":"a@b"}`,
		"space after colon":   `{"type": "user.disable","time":1,"user":"a@b"}`,
		"leading space":       ` {"type":"user.disable","time":1,"user":"a@b"}`,
		"trailing newline":    `{"type":"user.disable","time":1,"user":"a@b"}` + "\n",
		"trailing data":       `{"type":"user.disable","time":1,"user":"a@b"}{}`,
		"trailing garbage":    `{"type":"user.disable","time":1,"user":"a@b"}x`,
		"duplicate field":     `{"type":"user.disable","time":1,"user":"a@b","user":"c@d"}`,
		"field name case":     `{"Type":"user.disable","time":1,"user":"a@b"}`,
		"explicit empty":      `{"type":"user.disable","time":1,"actor":"","user":"a@b"}`,
		"explicit null":       `{"type":"user.roles","time":1,"user":"a@b","roles":null}`,
		"empty list":          `{"type":"user.roles","time":1,"user":"a@b","roles":[]}`,
		"escaped char":        `{"type":"user.disable","time":1,"user":"\u0061@b"}`,
		"escaped HTML":        `{"type":"policy.add","time":1,"rule":"\u003c"}`,
		"invalid UTF-8":       "{\"type\":\"user.disable\",\"time\":1,\"user\":\"a\xff@b\"}",
		"missing user":        `{"type":"user.disable","time":1}`,
		"missing clearance":   `{"type":"user.create","time":1,"user":"a@b"}`,
		"missing keyset":      `{"type":"org.create","time":1}`,
		"missing approvers":   `{"type":"device.approve","time":1,"user":"a@b","device":"d"}`,
		"enrol bad status":    `{"type":"device.enrol","time":1,"user":"a@b","device":"d","sig_key":"` + sig + `","kem_key":"AAAA","reason":"revoked"}`,
		"enrol no sig key":    `{"type":"device.enrol","time":1,"user":"a@b","device":"d","kem_key":"AAAA","reason":"active"}`,
		"bad base64":          `{"type":"device.enrol","time":1,"user":"a@b","device":"d","sig_key":"!!!!","kem_key":"AAAA","reason":"active"}`,
		"base64 padding bits": `{"type":"device.enrol","time":1,"user":"a@b","device":"d","sig_key":"` + sig[:42] + `B=","kem_key":"AAAA","reason":"active"}`,
		"base64 newline":      `{"type":"device.enrol","time":1,"user":"a@b","device":"d","sig_key":"` + sig[:10] + `\n` + sig[10:] + `","kem_key":"AAAA","reason":"active"}`,
		"sig key 31 bytes":    `{"type":"device.enrol","time":1,"user":"a@b","device":"d","sig_key":"` + key("k", 31) + `","kem_key":"AAAA","reason":"active"}`,
		"kem key too long":    `{"type":"device.enrol","time":1,"user":"a@b","device":"d","sig_key":"` + sig + `","kem_key":"` + key("k", 2049) + `","reason":"active"}`,
		"reason free text":    `{"type":"device.revoke","time":1,"user":"a@b","device":"d","reason":"Lost it on the train"}`,
		"negative count":      `{"type":"contact.refused","time":1,"actor":"a@b","target":"c@d","reason":"policy","count":-1}`,
		"duplicate approver":  `{"type":"device.approve","time":1,"user":"a@b","device":"d","approvers":["x@b","x@b"]}`,
		"empty role":          `{"type":"user.roles","time":1,"user":"a@b","roles":[""]}`,
		"oversize":            `{"type":"policy.add","time":1,"rule":"` + strings.Repeat("x", MaxEntrySize) + `"}`,
		"chain 31 bytes":      `{"type":"conversation.chain","time":1,"count":1,"conversation":"AAEC","chain":"` + key("c", 31) + `"}`,
		"chain 33 bytes":      `{"type":"conversation.chain","time":1,"count":1,"conversation":"AAEC","chain":"` + key("c", 33) + `"}`,
		"chain unpadded":      `{"type":"conversation.chain","time":1,"count":1,"conversation":"AAEC","chain":"` + strings.TrimRight(key("c", 32), "=") + `"}`,
		"chain base64url":     `{"type":"conversation.chain","time":1,"count":1,"conversation":"AAEC","chain":"` + strings.Repeat("_", 43) + `="}`,
		"chain before count":  `{"type":"conversation.chain","time":1,"chain":"` + key("c", 32) + `","count":1,"conversation":"AAEC"}`,
	}
	for name, text := range tests {
		if e, err := ParseEntry([]byte(text)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseEntry(%.80s) = %+v, %v; want ErrMalformed", name, text, e, err)
		}
	}
}

func TestEntryLimits(t *testing.T) {
	e := Entry{Type: TypePolicyAdd, Time: 1}
	overhead := len(`{"type":"policy.add","time":1,"rule":""}`)
	e.Rule = strings.Repeat("x", MaxEntrySize-overhead)
	b, err := e.Marshal()
	if err != nil || len(b) != MaxEntrySize {
		t.Fatalf("Marshal of a %d-byte entry: %d bytes, %v", MaxEntrySize, len(b), err)
	}
	if _, err := ParseEntry(b); err != nil {
		t.Errorf("ParseEntry of a %d-byte entry: %v", MaxEntrySize, err)
	}
	e.Rule += "x"
	if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("Marshal of an oversize entry: err = %v, want ErrMalformed", err)
	}
	d := enrol("a@b", "d", StatusActive)
	d.KEMKey = key("k", maxKEMKeySize)
	if _, err := d.Marshal(); err != nil {
		t.Errorf("Marshal with a %d-byte KEM key: %v", maxKEMKeySize, err)
	}
}

// TestEntryMangling flips bytes of and truncates valid entries: every result
// must fail to parse or parse to an entry that encodes to it.
func TestEntryMangling(t *testing.T) {
	for _, e := range validEntries() {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		check := func(m []byte) {
			got, err := ParseEntry(m)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("ParseEntry(%s): unclassified error %v", m, err)
				}
				return
			}
			if c, err := got.Marshal(); err != nil || string(c) != string(m) {
				t.Errorf("ParseEntry(%s) = %+v, which encodes to %s, %v", m, got, c, err)
			}
		}
		for i := range b {
			for _, mask := range []byte{0x01, 0x20, 0x80, 0xff} {
				m := []byte(string(b))
				m[i] ^= mask
				check(m)
			}
		}
		for n := range len(b) {
			check(b[:n])
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	for _, e := range validEntries() {
		b, err := e.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":"user.disable","time":1,"user":"a@b"} `))
	f.Add([]byte(`{"type":"user.disable","time":1,"user":"a@b","Type":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("parsed entry is invalid: %v", err)
		}
		if c, err := e.Marshal(); err != nil || string(c) != string(b) {
			t.Fatalf("Marshal(ParseEntry(%q)) = %q, %v", b, c, err)
		}
		if err := NewDeviceSet().Apply(0, e); err != nil && !errors.Is(err, ErrVerify) {
			t.Fatalf("Apply of a valid entry to an empty set: %v", err)
		}
	})
}

func TestConversationEntries(t *testing.T) {
	good := []Entry{
		{Type: TypeConversationCreate, Time: 1, Conversation: "AAEC", Actor: "a@o.example", ActorDevice: "aaaaaaaaaaaaaaaa", Clearance: "secret"},
		{Type: TypeMemberAdd, Time: 1, Conversation: "AAEC", User: "b@o.example", Device: "bbbbbbbbbbbbbbbb", Actor: "a@o.example"},
		{Type: TypeMemberRemove, Time: 1, Conversation: "AAEC", User: "b@o.example", Device: "bbbbbbbbbbbbbbbb", Reason: "revoked"},
		{Type: TypeCallStart, Time: 1, Conversation: "AAEC", Call: "c0ffee", Actor: "a@o.example", ActorDevice: "aaaaaaaaaaaaaaaa"},
		{Type: TypeCallJoin, Time: 1, Conversation: "AAEC", Call: "c0ffee", User: "b@o.example", Device: "bbbbbbbbbbbbbbbb"},
		{Type: TypeCallLeave, Time: 1, Conversation: "AAEC", Call: "c0ffee", User: "b@o.example", Device: "bbbbbbbbbbbbbbbb", Reason: "hangup"},
		{Type: TypeCallEnd, Time: 1, Conversation: "AAEC", Call: "c0ffee", Reason: "no_answer"},
		{Type: TypeCallHold, Time: 1, Conversation: "AAEC", Call: "c0ffee", User: "b@o.example", Device: "bbbbbbbbbbbbbbbb", Actor: "a@o.example", Reason: "hold"},
		{Type: TypeConversationChain, Time: 1, Conversation: "AAEC", Count: 1, Chain: key("c", 32)},
	}
	for _, e := range good {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if got, err := ParseEntry(b); err != nil || got.Conversation != "AAEC" {
			t.Fatalf("%s: round trip %+v %v", e.Type, got, err)
		}
	}
	for name, e := range map[string]Entry{
		"no conversation":       {Type: TypeMemberAdd, Time: 1, User: "b@o.example", Device: "d"},
		"padded base64":         {Type: TypeMemberAdd, Time: 1, Conversation: "AAE=", User: "b@o.example", Device: "d"},
		"standard base64":       {Type: TypeMemberAdd, Time: 1, Conversation: "+/8", User: "b@o.example", Device: "d"},
		"remove without reason": {Type: TypeMemberRemove, Time: 1, Conversation: "AAEC", User: "b@o.example", Device: "d"},
		"call without id":       {Type: TypeCallStart, Time: 1, Conversation: "AAEC", Actor: "a@o.example", ActorDevice: "d"},
		"call id not an id":     {Type: TypeCallEnd, Time: 1, Conversation: "AAEC", Call: "C 1", Reason: "hangup"},
		"leave without reason":  {Type: TypeCallLeave, Time: 1, Conversation: "AAEC", Call: "c1", User: "b@o.example", Device: "d"},
		"end without reason":    {Type: TypeCallEnd, Time: 1, Conversation: "AAEC", Call: "c1"},
		"hold without who":      {Type: TypeCallHold, Time: 1, Conversation: "AAEC", Call: "c1", User: "b@o.example", Device: "d", Reason: "hold"},
		"hold, other reason":    {Type: TypeCallHold, Time: 1, Conversation: "AAEC", Call: "c1", User: "b@o.example", Device: "d", Actor: "a@o.example", Reason: "pause"},
		"create without level":  {Type: TypeConversationCreate, Time: 1, Conversation: "AAEC", Actor: "a@o.example", ActorDevice: "d"},
		"chain without chain":   {Type: TypeConversationChain, Time: 1, Conversation: "AAEC", Count: 1},
		"chain without count":   {Type: TypeConversationChain, Time: 1, Conversation: "AAEC", Chain: key("c", 32)},
		"chain, negative count": {Type: TypeConversationChain, Time: 1, Conversation: "AAEC", Count: -1, Chain: key("c", 32)},
		"chain without group":   {Type: TypeConversationChain, Time: 1, Count: 1, Chain: key("c", 32)},
		"chain of 16 bytes":     {Type: TypeConversationChain, Time: 1, Conversation: "AAEC", Count: 1, Chain: key("c", 16)},
		"chain in hex":          {Type: TypeConversationChain, Time: 1, Conversation: "AAEC", Count: 1, Chain: strings.Repeat("ab", 32)},
		"chain, bad group":      {Type: TypeConversationChain, Time: 1, Conversation: "AAE=", Count: 1, Chain: key("c", 32)},
		"another type's chain":  {Type: TypeMemberAdd, Time: 1, Conversation: "AAEC", User: "b@o.example", Device: "d", Chain: "!!"},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestWorkflowEntries(t *testing.T) {
	const a, d = "a@o.example", "aaaaaaaaaaaaaaaa"
	good := []Entry{
		{Type: TypeRequestCreate, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Target: "p@o.example", Urgency: "flash", Conversation: "AAEC"},
		{Type: TypeRequestApprove, Time: 1, Item: "r1", Actor: a, ActorDevice: d, At: 1800000000},
		{Type: TypeRequestPropose, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Count: 2},
		{Type: TypeRequestAccept, Time: 1, Item: "r1", Actor: a, ActorDevice: d, At: 1800000000},
		{Type: TypeRequestDecline, Time: 1, Item: "r1", Actor: a, ActorDevice: d},
		{Type: TypeRequestWithdraw, Time: 1, Item: "r1", Actor: a, ActorDevice: d},
		{Type: TypeBriefingAttach, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Conversation: "AAEC", Count: 1},
		{Type: TypeBriefingAck, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Count: 1},
	}
	for _, e := range good {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if got, err := ParseEntry(b); err != nil || got.Item != "r1" || got.At != e.At || got.Urgency != e.Urgency {
			t.Fatalf("%s: round trip %+v %v", e.Type, got, err)
		}
		if err := NewDeviceSet().Apply(0, e); err != nil && !errors.Is(err, ErrVerify) {
			t.Fatalf("%s: Apply: %v", e.Type, err)
		}
	}
	for name, e := range map[string]Entry{
		"no item":            {Type: TypeRequestDecline, Time: 1, Actor: a, ActorDevice: d},
		"item not an id":     {Type: TypeRequestDecline, Time: 1, Item: "R 1", Actor: a, ActorDevice: d},
		"no actor device":    {Type: TypeRequestWithdraw, Time: 1, Item: "r1", Actor: a},
		"create, no urgency": {Type: TypeRequestCreate, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Target: "p@o.example", Conversation: "AAEC"},
		"unknown urgency":    {Type: TypeRequestCreate, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Target: "p@o.example", Urgency: "urgent", Conversation: "AAEC"},
		"create, no target":  {Type: TypeRequestCreate, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Urgency: "flash", Conversation: "AAEC"},
		"approve, no time":   {Type: TypeRequestApprove, Time: 1, Item: "r1", Actor: a, ActorDevice: d},
		"negative time":      {Type: TypeRequestDecline, Time: 1, Item: "r1", Actor: a, ActorDevice: d, At: -1},
		"propose, no count":  {Type: TypeRequestPropose, Time: 1, Item: "r1", Actor: a, ActorDevice: d},
		"brief, no version":  {Type: TypeBriefingAttach, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Conversation: "AAEC"},
		"brief, no group":    {Type: TypeBriefingAttach, Time: 1, Item: "r1", Actor: a, ActorDevice: d, Count: 1},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// A principal's designated note-taker: set (with the note-taker as Target)
// or cleared (without), by someone; an ad-hoc call names them and says
// whether they were rung.
func TestNoteTakerEntries(t *testing.T) {
	const a, d = "a@o.example", "aaaaaaaaaaaaaaaa"
	good := []Entry{
		{Type: TypeNoteTakerSet, Time: 1, Actor: a, ActorDevice: d, User: "p@o.example", Target: "n@o.example"},
		{Type: TypeNoteTakerSet, Time: 1, Actor: a, ActorDevice: d, User: "p@o.example"},
		{Type: TypeCallAdHoc, Time: 1, Call: "c1", Conversation: "AAEC", User: "p@o.example", At: 1800000000},
		{Type: TypeCallAdHoc, Time: 1, Call: "c1", Conversation: "AAEC", User: "p@o.example", At: 1800000000, Target: "n@o.example", Reason: "not_member"},
	}
	for _, e := range good {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if got, err := ParseEntry(b); err != nil || got.User != e.User || got.Target != e.Target || got.Reason != e.Reason {
			t.Fatalf("%s: round trip %+v %v", e.Type, got, err)
		}
	}
	for name, e := range map[string]Entry{
		"set, no principal":    {Type: TypeNoteTakerSet, Time: 1, Actor: a, ActorDevice: d, Target: "n@o.example"},
		"set, no actor":        {Type: TypeNoteTakerSet, Time: 1, ActorDevice: d, User: "p@o.example", Target: "n@o.example"},
		"set, no actor device": {Type: TypeNoteTakerSet, Time: 1, Actor: a, User: "p@o.example"},
		"ad-hoc, free text":    {Type: TypeCallAdHoc, Time: 1, Call: "c1", Conversation: "AAEC", User: "p@o.example", At: 1, Target: "n@o.example", Reason: "Not a member"},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestMemConEntries(t *testing.T) {
	const a, d = "a@o.example", "aaaaaaaaaaaaaaaa"
	good := []Entry{
		{Type: TypeMemConDraft, Time: 1, Item: "m1", Ref: "r1", Actor: a, ActorDevice: d, Target: "b@o.example", Conversation: "AAEC", Count: 2},
		{Type: TypeMemConApprove, Time: 1, Item: "m1", Actor: a, ActorDevice: d},
		{Type: TypeMemConDistribute, Time: 1, Item: "m1", Actor: a, ActorDevice: d, Conversation: "AAEC", Recipients: []string{"b@o.example", "c@o.example"}},
		{Type: TypeCommitmentOpen, Time: 1, Item: "c1", Ref: "m1", User: "b@o.example", At: 1800000000},
		{Type: TypeCommitmentClose, Time: 1, Item: "c1", Actor: a, ActorDevice: d, Reason: "done"},
		{Type: TypeCommitmentDue, Time: 1, Item: "c1", User: "b@o.example", At: 1800000000},
	}
	for _, e := range good {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if got, err := ParseEntry(b); err != nil || got.Item != e.Item || got.Ref != e.Ref || len(got.Recipients) != len(e.Recipients) {
			t.Fatalf("%s: round trip %+v %v", e.Type, got, err)
		}
	}
	for name, e := range map[string]Entry{
		"draft without ref":        {Type: TypeMemConDraft, Time: 1, Item: "m1", Actor: a, ActorDevice: d, Target: "b@o.example", Conversation: "AAEC"},
		"draft without approver":   {Type: TypeMemConDraft, Time: 1, Item: "m1", Ref: "r1", Actor: a, ActorDevice: d, Conversation: "AAEC"},
		"ref not an id":            {Type: TypeMemConDraft, Time: 1, Item: "m1", Ref: "R 1", Actor: a, ActorDevice: d, Target: "b@o.example", Conversation: "AAEC"},
		"distribute to nobody":     {Type: TypeMemConDistribute, Time: 1, Item: "m1", Actor: a, ActorDevice: d, Conversation: "AAEC"},
		"recipient twice":          {Type: TypeMemConDistribute, Time: 1, Item: "m1", Actor: a, ActorDevice: d, Conversation: "AAEC", Recipients: []string{"b", "b"}},
		"close without reason":     {Type: TypeCommitmentClose, Time: 1, Item: "c1", Actor: a, ActorDevice: d},
		"close for another reason": {Type: TypeCommitmentClose, Time: 1, Item: "c1", Actor: a, ActorDevice: d, Reason: "forgotten"},
		"open without due":         {Type: TypeCommitmentOpen, Time: 1, Item: "c1", Ref: "m1", User: "b@o.example"},
		"open without owner":       {Type: TypeCommitmentOpen, Time: 1, Item: "c1", Ref: "m1", At: 5},
		"overdue without owner":    {Type: TypeCommitmentDue, Time: 1, Item: "c1", At: 5},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestReadoutEntries(t *testing.T) {
	good := []Entry{
		{Type: TypeCallAdHoc, Time: 1, Call: "c0ffee", Conversation: "AAEC", User: "p@o.example", At: 1800000000},
		{Type: TypeReadoutFile, Time: 1, Call: "c0ffee", Actor: "p@o.example", ActorDevice: "aaaaaaaaaaaaaaaa", Conversation: "AAEC"},
		{Type: TypeReadoutMissing, Time: 1, Call: "c0ffee", User: "p@o.example", At: 1800000000},
	}
	for _, e := range good {
		if b, err := e.Marshal(); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		} else if _, err := ParseEntry(b); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
	}
	for name, e := range map[string]Entry{
		"adhoc without call":      {Type: TypeCallAdHoc, Time: 1, Conversation: "AAEC", User: "p@o.example", At: 5},
		"adhoc without deadline":  {Type: TypeCallAdHoc, Time: 1, Call: "c1", Conversation: "AAEC", User: "p@o.example"},
		"adhoc without principal": {Type: TypeCallAdHoc, Time: 1, Call: "c1", Conversation: "AAEC", At: 5},
		"file without where":      {Type: TypeReadoutFile, Time: 1, Call: "c1", Actor: "p@o.example", ActorDevice: "d"},
		"missing without user":    {Type: TypeReadoutMissing, Time: 1, Call: "c1", At: 5},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestHotlineEntries(t *testing.T) {
	good := []Entry{
		{Type: TypeHotlineCreate, Time: 1, Item: "h1", Actor: "a@o.example", ActorDevice: "aaaaaaaaaaaaaaaa", User: "b@o.example", Device: "bbbbbbbbbbbbbbbb", Conversation: "AAEC", Count: 3600},
		{Type: TypeHotlineRed, Time: 1, Item: "h1", Reason: "timeout"},
		{Type: TypeHotlineGreen, Time: 1, Item: "h1"},
	}
	for _, e := range good {
		if b, err := e.Marshal(); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		} else if _, err := ParseEntry(b); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
	}
	for name, e := range map[string]Entry{
		"create without far end":  {Type: TypeHotlineCreate, Time: 1, Item: "h1", Actor: "a@o.example", ActorDevice: "d", Conversation: "AAEC", Count: 60},
		"create without interval": {Type: TypeHotlineCreate, Time: 1, Item: "h1", Actor: "a@o.example", ActorDevice: "d", User: "b", Device: "e", Conversation: "AAEC"},
		"red without reason":      {Type: TypeHotlineRed, Time: 1, Item: "h1"},
		"green without item":      {Type: TypeHotlineGreen, Time: 1},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestLineCheckEntries(t *testing.T) {
	for _, e := range []Entry{
		{Type: TypeLineCheckStart, Time: 1, Item: "l1", Ref: "r1", Actor: "a@o.example", ActorDevice: "aaaaaaaaaaaaaaaa"},
		{Type: TypeLineCheckDone, Time: 1, Item: "l1", Ref: "r1", Reason: "red"},
	} {
		if _, err := e.Marshal(); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
	}
	for name, e := range map[string]Entry{
		"start without request": {Type: TypeLineCheckStart, Time: 1, Item: "l1", Actor: "a@o.example", ActorDevice: "d"},
		"done without result":   {Type: TypeLineCheckDone, Time: 1, Item: "l1", Ref: "r1"},
		"done, amber":           {Type: TypeLineCheckDone, Time: 1, Item: "l1", Ref: "r1", Reason: "amber"},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestRecordsEntries(t *testing.T) {
	const a, d = "ro@o.example", "aaaaaaaaaaaaaaaa"
	for _, e := range []Entry{
		{Type: TypeRecordsRetention, Time: 1, Actor: a, ActorDevice: d, Clearance: "secret", Count: 3650},
		{Type: TypeRecordsRetention, Time: 1, Actor: a, ActorDevice: d, Clearance: "unclassified"},
		{Type: TypeRecordsHold, Time: 1, Item: "h1", Actor: a, ActorDevice: d, Reason: "litigation", Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		{Type: TypeRecordsHold, Time: 1, Item: "h2", Actor: a, ActorDevice: d, Reason: "inquiry"},
		{Type: TypeRecordsRelease, Time: 1, Item: "h1", Actor: a, ActorDevice: d},
		{Type: TypeRecordsExpire, Time: 1, Actor: "archive@o.example", ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA", Count: 40},
		{Type: TypeRecordsGrant, Time: 1, Item: "g1", Actor: a, ActorDevice: d, Target: "b@o.example", Conversation: "AAAAAAAAAAAAAAAAAAAAAA", Count: 3},
		{Type: TypeRecordsRead, Time: 1, Item: "g1", Actor: "b@o.example", ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		{Type: TypeRecordsExport, Time: 1, Item: strings.Repeat("0f", 32), Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA", Count: 3},
		{Type: TypeRecordsExport, Time: 1, Item: strings.Repeat("0f", 32), Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		{Type: TypeRecordsMove, Time: 1, Item: strings.Repeat("0f", 32), Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA", Count: 9, Reason: "successor"},
		{Type: TypeRecordsReclass, Time: 1, Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA", Clearance: "secret"},
	} {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if _, err := ParseEntry(b); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
	}
	for name, e := range map[string]Entry{
		"retention without level":   {Type: TypeRecordsRetention, Time: 1, Actor: a, ActorDevice: d, Count: 10},
		"retention negative":        {Type: TypeRecordsRetention, Time: 1, Actor: a, ActorDevice: d, Clearance: "secret", Count: -1},
		"hold without reason":       {Type: TypeRecordsHold, Time: 1, Item: "h1", Actor: a, ActorDevice: d},
		"hold with free text":       {Type: TypeRecordsHold, Time: 1, Item: "h1", Actor: a, ActorDevice: d, Reason: "the minister's case"},
		"release without hold":      {Type: TypeRecordsRelease, Time: 1, Actor: a, ActorDevice: d},
		"expiry without through":    {Type: TypeRecordsExpire, Time: 1, Actor: a, ActorDevice: d, Conversation: "c1"},
		"expiry without its actor":  {Type: TypeRecordsExpire, Time: 1, Conversation: "c1", Count: 4},
		"grant without grantee":     {Type: TypeRecordsGrant, Time: 1, Item: "g1", Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA", Count: 3},
		"grant of nothing":          {Type: TypeRecordsGrant, Time: 1, Item: "g1", Actor: a, ActorDevice: d, Target: "b@o.example", Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		"read without grant":        {Type: TypeRecordsRead, Time: 1, Actor: "b@o.example", ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		"export named by free text": {Type: TypeRecordsExport, Time: 1, Item: "the minister's files", Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		"export of a short hash":    {Type: TypeRecordsExport, Time: 1, Item: "0f0f", Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		"export in upper case":      {Type: TypeRecordsExport, Time: 1, Item: strings.Repeat("0F", 32), Actor: a, ActorDevice: d, Conversation: "AAAAAAAAAAAAAAAAAAAAAA"},
		"export of nothing":         {Type: TypeRecordsExport, Time: 1, Item: strings.Repeat("0f", 32), Actor: a, ActorDevice: d},
		"move without destination":  {Type: TypeRecordsMove, Time: 1, Item: strings.Repeat("0f", 32), Actor: a, ActorDevice: d, Conversation: "c1", Count: 9},
		"move of no message":        {Type: TypeRecordsMove, Time: 1, Item: strings.Repeat("0f", 32), Actor: a, ActorDevice: d, Conversation: "c1", Reason: "successor"},
		"move without an export":    {Type: TypeRecordsMove, Time: 1, Actor: a, ActorDevice: d, Conversation: "c1", Count: 9, Reason: "successor"},
		"reclassify to no level":    {Type: TypeRecordsReclass, Time: 1, Actor: a, ActorDevice: d, Conversation: "c1"},
		"reclassify nothing":        {Type: TypeRecordsReclass, Time: 1, Actor: a, ActorDevice: d, Clearance: "secret"},
	} {
		if _, err := e.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
