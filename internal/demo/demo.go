// Package demo runs `hotline demo`: a server on loopback with a seeded
// organisation of four people (a principal, a duty officer, a note-taker
// and a counterpart), each given a browser address on their own
// *.localhost origin that enrols that browser by itself. The demo's own
// security officer approves those browsers as they enrol, so a newcomer
// can message and call between two windows within a minute. The web
// client's tests start the same demo.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/server"
)

// Org is the demo organisation's domain.
const Org = "demo.example"

// Person is one of the seeded organisation's people.
type Person struct {
	Name   string `json:"name"`   // user name and origin: principal → http://principal.localhost:PORT
	Role   string `json:"role"`   // their role in the organisation
	About  string `json:"about"`  // one line for the newcomer
	Invite string `json:"invite"` // the one-time code their browser enrols with
}

// User returns the person's user ID.
func (p Person) User() string { return p.Name + "@" + Org }

// People are who the demo seeds.
var People = []Person{
	{Name: "principal", Role: "principal", About: "the leader; reached directly by staff, by counterparts only through the duty desk"},
	{Name: "duty", Role: "duty-officer", About: "the duty desk; the one staff member a counterpart may contact directly"},
	{Name: "notes", Role: "note-taker", About: "takes the notes of calls; always shown to everyone on them"},
	{Name: "counterpart", Role: "counterpart", About: "a pre-approved outsider: reaches the duty desk, and the principal only by request"},
}

// Options configure Start.
type Options struct {
	Dir    string // data directory: seeded when it holds no demo, reused when it does
	Listen string // loopback address (default 127.0.0.1:0)
	Web    fs.FS  // the web client's files
	Logger *slog.Logger
	// MediaUDP and MediaTCP are where call media binds (default: loopback,
	// any port).
	MediaUDP, MediaTCP string
}

// Demo is a running demo.
type Demo struct {
	Port   int
	People []Person

	srv    *server.Server
	desk   *client.Client // the demo's security officer
	admin  *client.Client
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	served chan error
}

const stateFile = "demo.json"

type state struct {
	People []Person `json:"people"`
}

// Start seeds the organisation if dir is new, serves it over plain HTTP on
// loopback, and starts approving the people's browsers.
func Start(ctx context.Context, o Options) (*Demo, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("the demo serves plain HTTP, so only on a loopback address, not %s", ln.Addr())
	}
	d := &Demo{Port: ln.Addr().(*net.TCPAddr).Port, log: log, served: make(chan error, 1)}
	st, err := load(o.Dir)
	seeding := errors.Is(err, fs.ErrNotExist)
	if err != nil && !seeding {
		ln.Close()
		return nil, err
	}
	var inviteCode string
	if seeding {
		res, err := datadir.Init(ctx, o.Dir, datadir.InitOptions{Org: Org, Admin: "admin", InviteTTL: 30 * 24 * time.Hour, Logger: log})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("seed the demo organisation: %w", err)
		}
		inviteCode = res.Invite.Code
	}
	// Each person's browser has an origin of its own; passkeys are bound
	// to it.
	origins := []string{fmt.Sprintf("http://*.localhost:%d", d.Port), fmt.Sprintf("http://localhost:%d", d.Port)}
	d.srv, err = server.New(ctx, server.Config{DataDir: o.Dir, InsecureHTTP: true, Logger: log, Web: o.Web,
		InviteTTL: 30 * 24 * time.Hour, MediaUDP: o.MediaUDP, MediaTCP: o.MediaTCP, WebOrigins: origins})
	if err != nil {
		ln.Close()
		return nil, err
	}
	go func() { d.served <- d.srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	if seeding {
		if st, err = d.seed(ctx, o.Dir, base, inviteCode); err != nil {
			d.Close(context.Background())
			return nil, fmt.Errorf("seed the demo organisation: %w", err)
		}
	} else {
		if d.admin, err = d.openProfile(o.Dir, "admin", base); err == nil {
			d.desk, err = d.openProfile(o.Dir, "security", base)
		}
		if err != nil {
			d.Close(context.Background())
			return nil, err
		}
	}
	d.People = st.People
	actx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Go(func() { d.approve(actx) })
	return d, nil
}

func load(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// openProfile opens one of the demo's own devices, pointing it at this
// run's address (the port may differ between runs).
func (d *Demo) openProfile(dir, name, base string) (*client.Client, error) {
	pdir := filepath.Join(dir, "demo-"+name)
	b, err := os.ReadFile(filepath.Join(pdir, client.ProfileFile))
	if err != nil {
		return nil, err
	}
	var p client.Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if p.Server != base {
		p.Server = base
		if b, err = json.MarshalIndent(p, "", "  "); err != nil {
			return nil, err
		}
		if err := client.Dir(pdir).WriteFile(client.ProfileFile, b); err != nil {
			return nil, err
		}
	}
	return client.Open(pdir, client.Options{})
}

func (d *Demo) seed(ctx context.Context, dir, base, adminInvite string) (state, error) {
	var st state
	var err error
	d.admin, _, err = client.Enroll(ctx, client.EnrollOptions{Server: base, Invite: adminInvite, ProfileDir: filepath.Join(dir, "demo-admin"), Label: "demo desk"})
	if err != nil {
		return st, err
	}
	create := func(name, role string) (string, error) {
		var res api.CreateUserResponse
		err := d.admin.Do(ctx, "POST", "/v1/users", api.CreateUserRequest{User: name + "@" + Org, Roles: []string{role}}, &res)
		return res.Invite.Code, err
	}
	code, err := create("security", "security-officer")
	if err != nil {
		return st, err
	}
	if d.desk, _, err = client.Enroll(ctx, client.EnrollOptions{Server: base, Invite: code, ProfileDir: filepath.Join(dir, "demo-security"), Label: "demo desk"}); err != nil {
		return st, err
	}
	for _, p := range People {
		if p.Invite, err = create(p.Name, p.Role); err != nil {
			return st, err
		}
		st.People = append(st.People, p)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return st, err
	}
	return st, os.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}

// URL returns the address that enrols p's browser: p's own origin (so
// each person has separate browser storage, and WebAuthn accepts it), with
// the invite in the fragment, which never reaches the server or its logs.
func (d *Demo) URL(p Person) string {
	q := url.Values{"invite": {p.Invite}, "label": {p.Name + "'s browser"}}
	return "http://" + p.Name + ".localhost:" + strconv.Itoa(d.Port) + "/#" + q.Encode()
}

// approve approves the people's pending browsers as they enrol: at start
// for any already waiting, then on every device.pending event.
func (d *Demo) approve(ctx context.Context) {
	d.approvePending(ctx)
	err := d.desk.Events(ctx, func(m api.StreamMessage) error {
		if m.Type == api.StreamEvent && m.Event == "device.pending" {
			d.approvePending(ctx)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		d.log.Warn("demo: approving browsers stopped", "err", err)
	}
}

func (d *Demo) approvePending(ctx context.Context) {
	for _, p := range d.People {
		var devs []api.Device
		if err := d.desk.Do(ctx, "GET", "/v1/devices?user="+url.QueryEscape(p.User()), nil, &devs); err != nil {
			d.log.Warn("demo: list devices", "user", p.User(), "err", err)
			continue
		}
		for _, dev := range devs {
			if dev.Status != "pending" {
				continue
			}
			for _, approver := range []*client.Client{d.desk, d.admin} {
				var res api.ApproveResponse
				if err := approver.Do(ctx, "POST", "/v1/devices/"+dev.ID+"/approve", nil, &res); err != nil {
					d.log.Warn("demo: approve", "device", dev.ID, "err", err)
					break
				}
				if res.Device.Status == "active" {
					d.log.Info("demo: approved a browser", "user", p.User(), "device", dev.ID)
					break
				}
			}
		}
	}
}

// Invite makes a one-time invite for another device of a person (user ID),
// issued by the demo's security officer; the demo approves the device
// when it enrols, as it does the first.
func (d *Demo) Invite(ctx context.Context, user string) (string, error) {
	var inv api.Invite
	err := d.desk.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: user}, &inv)
	return inv.Code, err
}

// Approve approves a pending device as the demo's security officer (for
// devices of users the demo does not approve by itself: its own).
func (d *Demo) Approve(ctx context.Context, device string) error {
	return d.desk.Do(ctx, "POST", "/v1/devices/"+url.PathEscape(device)+"/approve", nil, nil)
}

// AddRule adds a contact-policy rule as the demo's administrator, such as
// "user:principal@demo.example -> user:counterpart@demo.example : allow",
// which lets the principal call the counterpart directly (an ad-hoc call).
func (d *Demo) AddRule(ctx context.Context, rule string) error {
	return d.admin.Do(ctx, "POST", "/v1/policy", api.AddRuleRequest{Rule: rule}, nil)
}

// Server returns the demo's server.
func (d *Demo) Server() *server.Server { return d.srv }

// Close stops approving and shuts the server down.
func (d *Demo) Close(ctx context.Context) error {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	err := d.srv.Shutdown(ctx)
	if serr := <-d.served; err == nil {
		err = serr
	}
	return err
}
