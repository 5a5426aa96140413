//go:build js && wasm

// Command sframe is the web client's media encryption: the project's
// SFrame (internal/sframe, RFC 9605) for the page's encoded-transform
// worker, which runs it on every audio frame the browser sends and
// receives. It is a module of its own, much smaller than the protocol
// core, because a worker cannot share the page's: the page's core exports
// each epoch's base key (web/core CallKeys) and the worker hands it here.
//
// globalThis.hotlineSFrame:
//
//	start(suite, contextID)                 a new session; drops the old one
//	addEpoch(epoch, self, groupSize, key)   key a new epoch (older ones kept: 2)
//	encrypt(frame) → Uint8Array | null      null while no epoch is keyed
//	decrypt(frame) → {data, epoch, leaf} | null   null when it does not authenticate
//	stop()
package main

import (
	"bytes"
	"fmt"
	"sync"
	"syscall/js"

	"hotline/internal/sframe"
)

var (
	mu  sync.Mutex
	ctx *sframe.MLSContext
)

func main() {
	obj := js.Global().Get("Object").New()
	obj.Set("start", js.FuncOf(func(_ js.Value, a []js.Value) any {
		c, err := sframe.NewMLSContext(sframe.CipherSuite(a[0].Int()), sframe.MLSOptions{ContextID: uint64(a[1].Int()), RetainEpochs: 2})
		if err != nil {
			return err.Error()
		}
		mu.Lock()
		if ctx != nil {
			ctx.DropEpochsBefore(^uint64(0))
		}
		ctx = c
		mu.Unlock()
		return ""
	}))
	obj.Set("addEpoch", js.FuncOf(func(_ js.Value, a []js.Value) any {
		key := bytesOf(a[3])
		ep := sframe.MLSEpoch{Number: uint64(a[0].Int()), Self: uint32(a[1].Int()), GroupSize: uint32(a[2].Int()),
			Export: func(label string, context []byte, n int) ([]byte, error) {
				if label != sframe.ExporterLabel || len(context) != 0 || n != len(key) {
					return nil, fmt.Errorf("sframe worker: asked for %q/%d, holds the base key only", label, n)
				}
				return bytes.Clone(key), nil
			}}
		mu.Lock()
		defer mu.Unlock()
		if ctx == nil {
			return "no session: call start first"
		}
		if err := ctx.AddEpoch(ep); err != nil {
			return err.Error()
		}
		return ""
	}))
	obj.Set("encrypt", js.FuncOf(func(_ js.Value, a []js.Value) any {
		mu.Lock()
		c := ctx
		mu.Unlock()
		if c == nil {
			return js.Null()
		}
		ct, err := c.Encrypt(nil, bytesOf(a[0]))
		if err != nil {
			return js.Null() // no epoch keyed yet: the frame is dropped, never sent in the clear
		}
		return uint8Array(ct)
	}))
	obj.Set("decrypt", js.FuncOf(func(_ js.Value, a []js.Value) any {
		mu.Lock()
		c := ctx
		mu.Unlock()
		if c == nil {
			return js.Null()
		}
		pt, sender, err := c.Decrypt(nil, bytesOf(a[0]))
		if err != nil {
			return js.Null()
		}
		o := js.Global().Get("Object").New()
		o.Set("data", uint8Array(pt))
		o.Set("epoch", float64(sender.Epoch))
		o.Set("leaf", float64(sender.Leaf))
		return o
	}))
	obj.Set("stop", js.FuncOf(func(js.Value, []js.Value) any {
		mu.Lock()
		if ctx != nil {
			ctx.DropEpochsBefore(^uint64(0))
			ctx = nil
		}
		mu.Unlock()
		return nil
	}))
	js.Global().Set("hotlineSFrame", obj)
	select {}
}

func bytesOf(v js.Value) []byte {
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

func uint8Array(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}
