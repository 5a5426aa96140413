//go:build js && wasm

// Command wasm is the web client's protocol core: web/core bound to
// JavaScript as globalThis.hotlineCore (web/src/core.d.ts). The page loads
// it with Go's wasm_exec.js.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall/js"

	"hotline/internal/api"
	"hotline/web/core"
)

const version = "hotline-web-core 1"

type binding struct {
	mu     sync.Mutex
	core   *core.Core
	stop   context.CancelFunc
	prober js.Value // the page's line-check measurement (setProber), for every core opened
}

func main() {
	b := &binding{}
	obj := js.Global().Get("Object").New()
	obj.Set("version", version)
	set := func(name string, fn func(args []js.Value) (any, error)) {
		obj.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any { return promise(func() (any, error) { return fn(args) }) }))
	}
	set("enroll", b.enroll)
	set("open", b.open)
	set("me", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Me(context.Background()) })
	})
	set("contacts", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Contacts(context.Background()) })
	})
	set("conversations", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Conversations() })
	})
	set("messages", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Messages(arg(a, 0).String()) })
	})
	set("create", func(a []js.Value) (any, error) {
		o := arg(a, 0)
		var members []string
		for i := range o.Get("members").Length() {
			members = append(members, o.Get("members").Index(i).String())
		}
		return b.with(func(k *core.Core) (any, error) {
			return k.Create(context.Background(), o.Get("title").String(), members)
		})
	})
	set("direct", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Direct(context.Background(), arg(a, 0).String()) })
	})
	set("send", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			return k.Send(context.Background(), arg(a, 0).String(), arg(a, 1).String())
		})
	})
	set("sendFile", func(a []js.Value) (any, error) {
		data := bytesOf(arg(a, 3))
		return b.with(func(k *core.Core) (any, error) {
			return k.SendFile(context.Background(), arg(a, 0).String(), arg(a, 1).String(), arg(a, 2).String(), data)
		})
	})
	set("download", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			f, err := k.Download(context.Background(), arg(a, 0).String(), int64(arg(a, 1).Int()))
			if err != nil {
				return nil, err
			}
			o := js.Global().Get("Object").New()
			o.Set("name", f.Name)
			o.Set("media_type", f.MediaType)
			o.Set("data", uint8Array(f.Data))
			return o, nil
		})
	})
	// Passkeys: the page runs the WebAuthn ceremonies; the core talks to
	// the server with its session and seals the profile with the PRF's
	// output.
	set("passkeyRegister", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.PasskeyRegister(context.Background()) })
	})
	set("passkeyRegistered", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			return k.PasskeyRegistered(context.Background(), arg(a, 0).String(), json.RawMessage(arg(a, 1).String()))
		})
	})
	set("setWrap", func(a []js.Value) (any, error) {
		secret := bytesOf(arg(a, 0))
		return b.with(func(k *core.Core) (any, error) { return nil, k.SetWrap(secret) })
	})
	set("setUnlock", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			setUnlock(k, arg(a, 0), arg(a, 1))
			return nil, nil
		})
	})

	// Verification: safety numbers and the log monitor (web/core/verify.go).
	set("verifications", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Verifications(arg(a, 0).String()) })
	})
	set("markVerified", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			return nil, k.MarkVerified(arg(a, 0).String(), arg(a, 1).String(), arg(a, 2).String())
		})
	})
	set("safetyQR", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			return core.SafetyQR(k.Client().Profile().User, arg(a, 0).String(), arg(a, 1).String())
		})
	})
	set("verifyScanned", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.VerifyScanned(arg(a, 0).String(), arg(a, 1).String()) })
	})
	set("devices", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Devices(context.Background()) })
	})
	set("acceptDevice", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return nil, k.AcceptDevice(arg(a, 0).String()) })
	})

	// Calls: signalling and keys; the page holds the media (web/core/calls.go).
	str := func(a []js.Value, i int) string { return arg(a, i).String() }
	set("media", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Media(context.Background(), str(a, 0)) })
	})
	set("calls", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			cs, err := k.Calls(context.Background())
			out := []core.CallUpdate{}
			for _, v := range cs {
				out = append(out, core.CallUpdate{Call: v, Participants: k.Participants(v)})
			}
			return out, err
		})
	})
	for name, fn := range map[string]func(*core.Core) func(context.Context, string) (api.Call, error){
		"placeCall":   func(k *core.Core) func(context.Context, string) (api.Call, error) { return k.PlaceCall },
		"answerCall":  func(k *core.Core) func(context.Context, string) (api.Call, error) { return k.AnswerCall },
		"joinCall":    func(k *core.Core) func(context.Context, string) (api.Call, error) { return k.JoinCall },
		"declineCall": func(k *core.Core) func(context.Context, string) (api.Call, error) { return k.DeclineCall },
		"hangup":      func(k *core.Core) func(context.Context, string) (api.Call, error) { return k.Hangup },
	} {
		set(name, func(a []js.Value) (any, error) {
			return b.with(func(k *core.Core) (any, error) {
				v, err := fn(k)(context.Background(), str(a, 0))
				if err != nil {
					return nil, err
				}
				return core.CallUpdate{Call: v, Participants: k.Participants(v)}, nil
			})
		})
	}
	// The duty desk in a call: place a request's call (this device's call,
	// like placeCall), ring someone in, hold, transfer.
	callOut := func(k *core.Core, v api.Call, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return core.CallUpdate{Call: v, Participants: k.Participants(v)}, nil
	}
	set("placeRequestCall", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			v, err := k.PlaceRequestCall(context.Background(), str(a, 0))
			return callOut(k, v, err)
		})
	})
	set("ringIntoCall", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			v, err := k.RingIntoCall(context.Background(), str(a, 0), str(a, 1), arg(a, 2).Truthy())
			return callOut(k, v, err)
		})
	})
	set("holdInCall", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			v, err := k.HoldInCall(context.Background(), str(a, 0), str(a, 1), arg(a, 2).Truthy())
			return callOut(k, v, err)
		})
	})
	set("transferCall", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			v, err := k.TransferCall(context.Background(), str(a, 0), str(a, 1))
			return callOut(k, v, err)
		})
	})
	set("callKeys", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.CallKeys(str(a, 0)) })
	})
	set("memberAt", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.MemberAt(str(a, 0), uint32(arg(a, 1).Int())) })
	})
	// A line check's measurement of the media path is the page's
	// (web/core/probe.go): setProber(fn) registers fn(conversation, ask),
	// which returns a Promise of the measurement; setProber(null) drops it.
	obj.Set("setProber", js.FuncOf(func(_ js.Value, a []js.Value) any {
		b.mu.Lock()
		b.prober = arg(a, 0)
		k, fn := b.core, proberFunc(b.prober)
		b.mu.Unlock()
		if k != nil {
			k.SetProber(fn)
		}
		return nil
	}))
	// The duty desk (web/core/desk.go). Objects come as JSON text.
	set("requests", func(a []js.Value) (any, error) {
		var statuses []string
		if err := jsonArg(a, 0, &statuses); err != nil {
			return nil, err
		}
		return b.with(func(k *core.Core) (any, error) { return k.Requests(context.Background(), statuses) })
	})
	set("request", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Request(context.Background(), str(a, 0)) })
	})
	set("requestCall", func(a []js.Value) (any, error) {
		var in core.RequestIn
		if err := jsonArg(a, 0, &in); err != nil {
			return nil, err
		}
		return b.with(func(k *core.Core) (any, error) { return k.RequestCall(context.Background(), in) })
	})
	set("decide", func(a []js.Value) (any, error) {
		var in core.DecideIn
		if err := jsonArg(a, 2, &in); err != nil {
			return nil, err
		}
		return b.with(func(k *core.Core) (any, error) { return k.Decide(context.Background(), str(a, 0), str(a, 1), in) })
	})
	set("ackBriefing", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.AckBriefing(context.Background(), str(a, 0)) })
	})
	set("schedule", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Schedule(context.Background(), str(a, 0), str(a, 1)) })
	})
	set("commitments", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Commitments(context.Background(), arg(a, 0).Truthy()) })
	})
	set("closeCommitment", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.CloseCommitment(context.Background(), str(a, 0), str(a, 1)) })
	})
	set("fileReadout", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) {
			return k.FileReadout(context.Background(), str(a, 0), str(a, 1), str(a, 2))
		})
	})
	set("startLineCheck", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.StartLineCheck(context.Background(), str(a, 0)) })
	})
	set("lineChecks", func(a []js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.LineChecks(context.Background(), str(a, 0)) })
	})
	set("hotlines", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Hotlines(context.Background()) })
	})
	set("readouts", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.Readouts(context.Background()) })
	})
	set("liveCalls", func([]js.Value) (any, error) {
		return b.with(func(k *core.Core) (any, error) { return k.LiveCalls(context.Background()) })
	})
	obj.Set("follow", js.FuncOf(func(_ js.Value, a []js.Value) any {
		onUpdate, onStatus := arg(a, 0), arg(a, 1)
		b.mu.Lock()
		k := b.core
		if b.stop != nil {
			b.stop()
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.stop = cancel
		b.mu.Unlock()
		if k == nil {
			return nil
		}
		go k.Follow(ctx,
			func(u core.Update) { onUpdate.Invoke(toJS(u)) },
			func(s core.Status) { onStatus.Invoke(toJS(s)) })
		return nil
	}))
	js.Global().Set("hotlineCore", obj)
	select {}
}

func (b *binding) with(fn func(*core.Core) (any, error)) (any, error) {
	b.mu.Lock()
	k := b.core
	b.mu.Unlock()
	if k == nil {
		return nil, errors.New("no device yet: enrol or open a profile first")
	}
	return fn(k)
}

func persistFunc(fn js.Value) core.Persist {
	return func(name string, sealed []byte) {
		if sealed == nil {
			fn.Invoke(name, js.Null())
			return
		}
		fn.Invoke(name, uint8Array(sealed))
	}
}

// flushedFunc waits for the page's flushed() promise: every file handed to
// persist is stored.
func flushedFunc(fn js.Value) func(context.Context) error {
	if fn.Type() != js.TypeFunction {
		return nil
	}
	return func(ctx context.Context) error {
		_, err := await(ctx, fn.Invoke())
		return err
	}
}

func (b *binding) enroll(a []js.Value) (any, error) {
	o := arg(a, 0)
	k, err := core.Enroll(context.Background(), js.Global().Get("location").Get("origin").String(),
		o.Get("invite").String(), o.Get("label").String(), bytesOf(o.Get("wrap")), persistFunc(o.Get("persist")), flushedFunc(o.Get("flushed")))
	if err != nil {
		return nil, err
	}
	return b.started(k)
}

func (b *binding) open(a []js.Value) (any, error) {
	o := arg(a, 0)
	files := map[string][]byte{}
	jf := o.Get("files")
	keys := js.Global().Get("Object").Call("keys", jf)
	for i := range keys.Length() {
		name := keys.Index(i).String()
		files[name] = bytesOf(jf.Get(name))
	}
	k, err := core.Open(files, bytesOf(o.Get("wrap")), persistFunc(o.Get("persist")), flushedFunc(o.Get("flushed")))
	if err != nil {
		return nil, err
	}
	if fn := o.Get("unlock"); fn.Type() == js.TypeFunction {
		setUnlock(k, o.Get("ticket"), fn)
	}
	return b.started(k)
}

// setUnlock makes the core prove the passkey for each new session: the
// first with ticket (if a string), the next ones with what the page's fn
// (a WebAuthn assertion) resolves to.
func setUnlock(k *core.Core, ticket, fn js.Value) {
	first := ""
	if ticket.Type() == js.TypeString {
		first = ticket.String()
	}
	k.SetUnlock(first, func(ctx context.Context) (string, error) {
		v, err := await(ctx, fn.Invoke())
		if err != nil {
			return "", err
		}
		return v.String(), nil
	})
}

func (b *binding) started(k *core.Core) (any, error) {
	b.mu.Lock()
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
	b.core = k
	fn := proberFunc(b.prober)
	b.mu.Unlock()
	k.SetProber(fn)
	return k.Me(context.Background())
}

// proberFunc is the page's measurement of a line check's media path: fn
// (conversation, ask) returns a Promise of an api.LineMedia. It is nil if
// fn is not a function.
func proberFunc(fn js.Value) core.ProbeFunc {
	if fn.Type() != js.TypeFunction {
		return nil
	}
	return func(ctx context.Context, conv string, ask api.LineProbeAsk) (m api.LineMedia, err error) {
		defer func() {
			if r := recover(); r != nil { // the page's function threw
				err = fmt.Errorf("line check prober: %v", r)
			}
		}()
		v, err := await(ctx, js.Global().Get("Promise").Call("resolve", fn.Invoke(conv, toJS(ask))))
		if err != nil {
			return m, err
		}
		text := js.Global().Get("JSON").Call("stringify", v)
		if text.Type() != js.TypeString {
			return m, errors.New("line check prober: no measurement")
		}
		return m, json.Unmarshal([]byte(text.String()), &m)
	}
}

// promise runs fn on its own goroutine (it may block on the network, which
// a JavaScript callback must not) and settles a Promise with its result.
func promise(fn func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, a []js.Value) any {
		resolve, reject := a[0], a[1]
		go func() {
			defer executor.Release()
			v, err := fn()
			if err != nil {
				reject.Invoke(jsError(err))
				return
			}
			resolve.Invoke(toJS(v))
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

// await waits for a JavaScript promise (on a goroutine: never on the
// event loop's own callback).
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var ok, fail js.Func
	ok = js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{v: arg(a, 0)}
		return nil
	})
	fail = js.FuncOf(func(_ js.Value, a []js.Value) any {
		e := arg(a, 0)
		msg := "rejected"
		if e.Type() == js.TypeObject && e.Get("message").Type() == js.TypeString {
			msg = e.Get("message").String()
		} else if e.Type() == js.TypeString {
			msg = e.String()
		}
		ch <- result{err: errors.New(msg)}
		return nil
	})
	p.Call("then", ok, fail)
	select {
	case r := <-ch:
		ok.Release()
		fail.Release()
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err() // the callbacks stay: the promise may still settle
	}
}

// toJS turns a Go value into a plain JavaScript object through JSON; a
// js.Value passes as it is.
func toJS(v any) any {
	if jv, ok := v.(js.Value); ok {
		return jv
	}
	b, err := json.Marshal(v)
	if err != nil {
		return jsError(err)
	}
	return js.Global().Get("JSON").Call("parse", string(b))
}

func jsError(err error) js.Value {
	e := core.UIError(err)
	je := js.Global().Get("Error").New(e.Message)
	je.Set("code", string(e.Code))
	if e.Hint != "" {
		je.Set("hint", e.Hint)
	}
	return je
}

// jsonArg decodes argument i, JSON text, into v; an absent one leaves v.
func jsonArg(a []js.Value, i int, v any) error {
	x := arg(a, i)
	if x.IsUndefined() || x.IsNull() {
		return nil
	}
	if err := json.Unmarshal([]byte(x.String()), v); err != nil {
		return fmt.Errorf("argument %d: %v", i+1, err)
	}
	return nil
}

func arg(a []js.Value, i int) js.Value {
	if i < len(a) {
		return a[i]
	}
	return js.Undefined()
}

func bytesOf(v js.Value) []byte {
	if v.IsUndefined() || v.IsNull() {
		return nil
	}
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

func uint8Array(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}
