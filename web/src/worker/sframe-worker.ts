// The media worker: SFrame (RFC 9605) on every encoded audio frame, through
// WebRTC encoded transforms (RTCRtpScriptTransform). The page's core gives
// each epoch's base key (callKeys); encryption itself is the project's Go
// SFrame, compiled to a small WebAssembly module of its own (web/sframe).
//
// Messages from the page:
//   {type: "start", suite, context, keys}   a call starts: a new session
//   {type: "epoch", keys}                    the group moved: key the new epoch
//   {type: "stop"}                           the call ended: drop every key
// Messages to the page:
//   {type: "ready"} | {type: "error", message}
//   {type: "heard", slot, epoch, leaf}       the first frame from a sender on a slot, and every 50th after
//   {type: "stats", sent, dropped, received, undecryptable}  every second

/// <reference lib="webworker" />
export {};
declare const self: DedicatedWorkerGlobalScope;

interface SFrame {
  start(suite: number, context: number): string;
  addEpoch(epoch: number, self: number, groupSize: number, key: Uint8Array): string;
  encrypt(frame: Uint8Array): Uint8Array | null;
  decrypt(frame: Uint8Array): { data: Uint8Array; epoch: number; leaf: number } | null;
  stop(): void;
}

interface Keys {
  suite: number;
  epoch: number;
  self: number;
  group_size: number;
  base_key: string;
}

declare global {
  var hotlineSFrame: SFrame | undefined;
  var Go: new () => GoRuntime;
}
interface GoRuntime {
  importObject: WebAssembly.Imports;
  run(instance: WebAssembly.Instance): Promise<void>;
}

self.importScripts("wasm_exec.js");

const stats = { sent: 0, dropped: 0, received: 0, undecryptable: 0 };
const heardCount = new Map<string, number>();
let sframe: SFrame | undefined;

const ready: Promise<SFrame> = (async () => {
  const go = new Go();
  const resp = await fetch("sframe.wasm");
  const { instance } = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject);
  void go.run(instance);
  for (let i = 0; i < 500 && !globalThis.hotlineSFrame; i++) await new Promise((r) => setTimeout(r, 10));
  const sf = globalThis.hotlineSFrame;
  if (!sf) throw new Error("the SFrame module did not start");
  sframe = sf;
  return sf;
})();
ready.then(
  () => self.postMessage({ type: "ready" }),
  (e: unknown) => self.postMessage({ type: "error", message: String(e) }),
);

function b64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function key(sf: SFrame, k: Keys): void {
  const err = sf.addEpoch(k.epoch, k.self, k.group_size, b64(k.base_key));
  if (err) self.postMessage({ type: "error", message: "key epoch " + k.epoch + ": " + err });
}

self.onmessage = async (e: MessageEvent) => {
  const m = e.data as { type: string; suite?: number; context?: number; keys?: Keys };
  const sf = await ready;
  switch (m.type) {
    case "start": {
      const err = sf.start(m.suite ?? 0, m.context ?? 0);
      if (err) self.postMessage({ type: "error", message: "start: " + err });
      else if (m.keys) key(sf, m.keys);
      heardCount.clear();
      break;
    }
    case "epoch":
      if (m.keys) key(sf, m.keys);
      break;
    case "stop":
      sf.stop();
      break;
  }
};

setInterval(() => self.postMessage({ type: "stats", ...stats }), 1000);

// Every frame goes through here; until a call is keyed, frames to send are
// dropped (never sent in the clear) and frames received are dropped.
self.onrtctransform = (event: RTCTransformEvent) => {
  const t = event.transformer;
  const opts = (t.options ?? {}) as { side?: string; slot?: number };
  const send = opts.side === "send";
  const slot = opts.slot ?? -1;
  const ts = new TransformStream<RTCEncodedAudioFrame, RTCEncodedAudioFrame>({
    transform(frame, ctl) {
      const sf = sframe;
      if (!sf) {
        if (send) stats.dropped++;
        return;
      }
      if (send) {
        const ct = sf.encrypt(new Uint8Array(frame.data));
        if (!ct) {
          stats.dropped++;
          return;
        }
        frame.data = ct.buffer as ArrayBuffer;
        stats.sent++;
        ctl.enqueue(frame);
        return;
      }
      const pt = sf.decrypt(new Uint8Array(frame.data));
      if (!pt) {
        stats.undecryptable++;
        return;
      }
      stats.received++;
      const who = slot + "/" + pt.epoch + "/" + pt.leaf;
      const n = heardCount.get(who) ?? 0;
      heardCount.set(who, n + 1);
      if (n % 50 === 0) self.postMessage({ type: "heard", slot, epoch: pt.epoch, leaf: pt.leaf });
      frame.data = pt.data.buffer as ArrayBuffer;
      ctl.enqueue(frame);
    },
  });
  void t.readable.pipeThrough(ts).pipeTo(t.writable);
};
