// The browser's measurement of the media path for a line check: the page's
// side. The server puts both ends' warm lines in a probe session of its
// forwarder and asks each device (linecheck.run) to send probes and echo
// the far ends'; the core asks the page through the function registered
// here (core.setProber). The media worker does the measuring, on the warm
// line's microphone sender (src/worker/lineprobe.ts); this side keys it
// like a call in the conversation (callKeys), tells it which leaves are
// the far ends', gives the sender a track while it measures, and sums the
// result up as the headless device does (internal/voice/probe.go).

import type { Core, LineMedia, LineProbeAsk } from "./core";

// The worker's report of a probe (ProbeResult in src/worker/lineprobe.ts).
interface Probed {
  type: "probed";
  id: number;
  unsupported?: string;
  sent: number;
  rtts: number[];
  heard: [number, number][];
}

// Bounds on what a line check may ask, as the headless device's.
const MAX_PROBES = 500;
const MIN_EVERY = 5;
const MAX_EVERY = 1000;
// GIVE_UP: the core waits 8 s for the page (web/core probeWait); the
// worker is told to stop a little before.
const GIVE_UP = 7500;

// A tone while measuring: the sender has no track outside a call, and the
// encoder makes a frame (every 20 ms) only from one. What it carries is
// replaced by probes and echoes in the worker; it is never sent.
interface Tone {
  track: MediaStreamTrack;
  stop(): void;
}

// Chromium's MediaStreamTrackGenerator (not in TypeScript's DOM types).
type TrackGenerator = new (init: { kind: "audio" }) => MediaStreamTrack & { writable: WritableStream<AudioData> };

export class LineProber {
  private next = 1;
  private waiting = new Map<number, (p: Probed) => void>();
  private tone?: Promise<Tone>; // while probes are under way
  private running = 0; // probes under way

  constructor(
    private core: Core,
    private worker: Worker,
    private sender: () => RTCRtpSender | undefined,
    private inCall: () => boolean,
  ) {}

  // register makes this page the device's prober.
  register(): void {
    this.core.setProber((conv, ask) => this.measure(conv, ask));
  }

  // fromWorker takes the worker's report of a probe; it says whether m was
  // one.
  fromWorker(m: { type: string }): boolean {
    if (m.type !== "probed") return false;
    const p = m as Probed;
    this.waiting.get(p.id)?.(p);
    this.waiting.delete(p.id);
    return true;
  }

  // abort stops the probe under way (a call starting: "in_call").
  abort(reason: string): void {
    if (this.running > 0) this.worker.postMessage({ type: "probe-stop", reason });
  }

  async measure(conv: string, ask: LineProbeAsk): Promise<LineMedia> {
    const none = (unsupported: string): LineMedia => ({ sent: 0, echoes: 0, rtt_ms: 0, rtt_max_ms: 0, loss: 0, unsupported });
    if (this.inCall()) return none("in_call");
    const sender = this.sender();
    if (!sender) return none("no_media_line");
    const count = Math.min(Math.max(Math.trunc(ask.count) || 1, 1), MAX_PROBES);
    const interval = Math.min(Math.max(Math.trunc(ask.interval_ms) || 0, MIN_EVERY), MAX_EVERY);
    const peers = [...new Set(ask.peers ?? [])];
    let keys;
    try {
      keys = await this.core.callKeys(conv);
    } catch {
      return none("group_unusable");
    }
    // The far ends' leaves in the keyed epoch: a frame's sender is known
    // by its leaf (from the SFrame KID), the far ends by their devices.
    const leafOf = new Map<string, number>();
    await Promise.all(
      Array.from({ length: keys.group_size }, (_, leaf) =>
        this.core.memberAt(conv, leaf).then((m) => {
          if (peers.includes(m.device)) leafOf.set(m.device, leaf);
        }, () => undefined),
      ),
    );
    if (this.inCall()) return none("in_call");

    const id = this.next++;
    const done = new Promise<Probed>((resolve) => this.waiting.set(id, resolve));
    this.running++;
    const giveUp = setTimeout(() => this.worker.postMessage({ type: "probe-stop", id, reason: "timeout" }), GIVE_UP);
    try {
      await this.startTone(sender);
      const context = crypto.getRandomValues(new Uint16Array(1))[0]!;
      this.worker.postMessage({ type: "probe", id, suite: keys.suite, context, keys, count, interval, peers: [...leafOf.values()] });
      const p = await done;
      if (p.unsupported) return none(p.unsupported);
      return summary(p, count, peers, leafOf);
    } catch {
      this.waiting.delete(id);
      return none("no_tone");
    } finally {
      clearTimeout(giveUp);
      this.running--;
      if (this.running === 0) await this.stopTone(sender);
    }
  }

  // startTone gives the sender a track (one for probes that overlap).
  private startTone(sender: RTCRtpSender): Promise<Tone> {
    this.tone ??= tone().then(async (t) => {
      if (!this.inCall()) await sender.replaceTrack(t.track);
      return t;
    });
    return this.tone;
  }

  // stopTone takes the track away again, unless a call has the sender.
  private async stopTone(sender: RTCRtpSender): Promise<void> {
    const p = this.tone;
    this.tone = undefined;
    const t = await p?.catch(() => undefined);
    if (!t) return;
    if (!this.inCall() && sender.track === t.track) await sender.replaceTrack(null).catch(() => undefined);
    t.stop();
  }
}

// tone makes the track: a quiet oscillator, rendered by the browser's
// audio thread. A page the user has not interacted with yet may not start
// an AudioContext (the autoplay policy); there, where the browser has one,
// a track generator written from a timer takes its place. With neither,
// the worker reports "no_frames".
async function tone(): Promise<Tone> {
  const ac = new AudioContext({ sampleRate: 48000 });
  const osc = ac.createOscillator();
  const gain = ac.createGain();
  gain.gain.value = 0.01;
  const dest = ac.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  await Promise.race([ac.resume(), new Promise((r) => setTimeout(r, 150))]).catch(() => undefined);
  const gen = (globalThis as { MediaStreamTrackGenerator?: TrackGenerator }).MediaStreamTrackGenerator;
  if (ac.state === "running" || !gen) {
    const track = dest.stream.getAudioTracks()[0]!;
    const stop = () => {
      track.stop();
      void ac.close().catch(() => undefined);
    };
    return { track, stop };
  }
  void ac.close().catch(() => undefined);
  const track = new gen({ kind: "audio" });
  const w = track.writable.getWriter();
  const data = new Float32Array(480); // 10 ms at 48 kHz
  for (let i = 0; i < data.length; i++) data[i] = 0.01 * Math.sin((2 * Math.PI * 440 * i) / 48000);
  const t0 = performance.now();
  let written = 0; // µs of audio
  const write = () => {
    // Up to 20 ms ahead of the clock, catching up after a late timer.
    for (const due = (performance.now() - t0) * 1000 + 20_000; written < due; written += 10_000) {
      const frame = new AudioData({ format: "f32-planar", sampleRate: 48000, numberOfFrames: 480, numberOfChannels: 1, timestamp: written, data });
      void w.write(frame).catch(() => undefined);
    }
  };
  write();
  const timer = setInterval(write, 10);
  return {
    track,
    stop: () => {
      clearInterval(timer);
      void w.close().catch(() => undefined);
      track.stop();
    },
  };
}

// summary is the measurement as the headless device sums it up: the
// median and largest round trip, and the far end that lost the most.
function summary(p: Probed, count: number, peers: string[], leafOf: Map<string, number>): LineMedia {
  const us = (ms: number) => Math.round(ms * 1000) / 1000;
  const rtts = [...p.rtts].sort((a, b) => a - b);
  const m: LineMedia = { sent: p.sent, echoes: rtts.length, rtt_ms: 0, rtt_max_ms: 0, loss: 0 };
  if (rtts.length > 0) {
    m.rtt_ms = us(rtts[Math.floor(rtts.length / 2)]!);
    m.rtt_max_ms = us(rtts[rtts.length - 1]!);
  }
  const heard = new Map(p.heard);
  for (const d of [...peers].sort()) {
    const leaf = leafOf.get(d);
    const n = leaf === undefined ? 0 : (heard.get(leaf) ?? 0);
    const loss = 1 - n / count;
    if (loss > m.loss || m.worst === undefined) {
      m.loss = loss;
      m.worst = d;
    }
  }
  return m;
}
