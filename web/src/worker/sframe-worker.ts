// The media worker: SFrame (RFC 9605) on every encoded audio frame, through
// WebRTC encoded transforms (RTCRtpScriptTransform). The page's core gives
// each epoch's base key (callKeys); encryption itself is the project's Go
// SFrame, compiled to a small WebAssembly module of its own (web/sframe).
//
// It also measures the media path for a line check (src/worker/
// lineprobe.ts): the warm line then carries probes and echoes instead of
// a call, and nothing it hears is played. A call takes precedence.
//
// Messages from the page:
//   {type: "start", suite, context, keys}   a call starts: a new session (a probe under way stops: "in_call")
//   {type: "epoch", keys}                    the group moved: key the new epoch
//   {type: "stop"}                           the call ended: drop every key
//   {type: "probe", suite, context, keys, id, count, interval, peers}   measure (peers: the far ends' leaves)
//   {type: "probe-stop", id?, reason}        give up the probe under way (if id, only that one)
// Messages to the page:
//   {type: "ready"} | {type: "error", message}
//   {type: "heard", slot, epoch, leaf}       the first frame from a sender on a slot, and every 50th after
//   {type: "stats", sent, dropped, received, undecryptable}  every second
//   {type: "probed", id, unsupported?, sent, rtts, heard}    a probe is over (ProbeResult)

/// <reference lib="webworker" />
import { LineProbe } from "./lineprobe";
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

// What the session is for: nothing (idle), a call, or a line check's
// probe.
let mode: "idle" | "call" | "probe" = "idle";
let probe: LineProbe | undefined;
let probeTimer: ReturnType<typeof setInterval> | undefined;

// Frames heard while idle are kept a moment: a far end's first probes can
// arrive before this device has read the line check's request.
const IDLE_KEEP = 3000;
const IDLE_MAX = 256;
let idle: { data: Uint8Array; at: number }[] = [];

function keepIdle(data: Uint8Array, at: number): void {
  idle = idle.filter((f) => at - f.at <= IDLE_KEEP);
  if (idle.length >= IDLE_MAX) idle.splice(0, idle.length - IDLE_MAX + 1);
  idle.push({ data, at });
}

// arrived is when a received frame arrived: the time its last packet was
// received, where the browser says (RTCEncodedAudioFrameMetadata's
// receiveTime, in this worker's clock), rather than when the worker got
// to it.
function arrived(frame: RTCEncodedAudioFrame): number {
  const now = performance.now();
  const t = (frame.getMetadata() as { receiveTime?: number }).receiveTime;
  return typeof t === "number" && t <= now && now - t < 1000 ? t : now;
}

// endProbe ends the probe under way, if any, and tells the page; its
// session goes, unless a call has taken it over.
function endProbe(sf: SFrame, unsupported?: string): void {
  const p = probe;
  if (!p) return;
  probe = undefined;
  clearInterval(probeTimer);
  if (mode === "probe") {
    sf.stop();
    mode = "idle";
  }
  self.postMessage(p.result(unsupported));
}

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
  const m = e.data as {
    type: string; suite?: number; context?: number; keys?: Keys;
    id?: number; count?: number; interval?: number; peers?: number[]; reason?: string;
  };
  const sf = await ready;
  switch (m.type) {
    case "start": {
      mode = "call"; // calls come first
      endProbe(sf, "in_call");
      idle = [];
      const err = sf.start(m.suite ?? 0, m.context ?? 0);
      if (err) self.postMessage({ type: "error", message: "start: " + err });
      else if (m.keys) key(sf, m.keys);
      heardCount.clear();
      break;
    }
    case "epoch":
      if (m.keys && mode === "call") key(sf, m.keys);
      break;
    case "stop":
      if (mode === "call") {
        sf.stop();
        mode = "idle";
      }
      break;
    case "probe": {
      const id = m.id ?? 0;
      const none = (unsupported: string) => self.postMessage({ type: "probed", id, unsupported, sent: 0, rtts: [], heard: [] });
      if (mode === "call" || !m.keys) {
        none(mode === "call" ? "in_call" : "group_unusable");
        break;
      }
      endProbe(sf, "superseded");
      let err = sf.start(m.suite ?? 0, m.context ?? 0);
      if (!err) err = sf.addEpoch(m.keys.epoch, m.keys.self, m.keys.group_size, b64(m.keys.base_key));
      if (err) {
        sf.stop();
        none("group_unusable");
        break;
      }
      mode = "probe";
      const p = new LineProbe({ id, count: m.count ?? 1, interval: m.interval ?? 20, epoch: m.keys.epoch, peers: m.peers ?? [] });
      probe = p;
      // What came before the request: the far ends may have begun.
      for (const f of idle) {
        const pt = sf.decrypt(f.data);
        if (pt) p.received(pt.data, pt.epoch, pt.leaf, f.at);
      }
      idle = [];
      probeTimer = setInterval(() => {
        const o = p.over(performance.now());
        if (o.done && probe === p) endProbe(sf, o.unsupported);
      }, 20);
      break;
    }
    case "probe-stop":
      if (m.id === undefined || probe?.ask.id === m.id) endProbe(sf, m.reason ?? "cancelled");
      break;
  }
};

setInterval(() => self.postMessage({ type: "stats", ...stats }), 1000);

// Every frame goes through here; until a call is keyed, frames to send are
// dropped (never sent in the clear) and frames received are dropped (kept
// a moment while idle, for a probe about to start). During a probe, what
// is sent carries only probes and echoes, and what is received is
// measured, never played.
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
      if (mode === "probe" && probe) {
        if (send) {
          const pt = probe.outgoing(performance.now());
          const ct = pt && sf.encrypt(pt);
          if (!ct) return;
          frame.data = ct.buffer as ArrayBuffer;
          ctl.enqueue(frame);
        } else {
          const at = arrived(frame);
          const pt = sf.decrypt(new Uint8Array(frame.data));
          if (pt) probe.received(pt.data, pt.epoch, pt.leaf, at);
        }
        return;
      }
      if (!send && mode === "idle") {
        keepIdle(new Uint8Array(frame.data), arrived(frame));
        stats.undecryptable++;
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
