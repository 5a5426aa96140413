// Calls in the browser: the warm media line to the server's forwarder and
// the one call on it. Signalling and keys come from the protocol core; the
// media is the browser's own WebRTC, with SFrame on every encoded frame in
// the media worker (src/worker/sframe-worker.ts), so the server forwards
// only ciphertext. The line mirrors the headless client's (internal/voice):
// one sending section, the microphone, and 8 receiving ones (slots), made
// once when the app starts, so a call needs only signalling.

import type { CallInfo, CallKeys, CallQuality, CallSlots, CallUpdate, Core, HotlineError, Me, Participant, Update } from "./core";
import { LineProber } from "./lineprobe";

export const SLOTS = 8;

export type CallPhase = "idle" | "incoming" | "outgoing" | "active" | "ended";

export interface Speaker {
  user: string;
  device: string;
  at: number; // performance.now() of the latest frame
}

export interface CallView {
  phase: CallPhase;
  call?: CallInfo;
  participants: Participant[];
  muted: boolean;
  heard: boolean; // a frame from someone else has been decrypted
  speakers: Speaker[];
  quality?: { loss: number; jitterMs: number; rttMs: number; level: "good" | "fair" | "poor" };
  lineUp: boolean; // the warm line is connected
  endedReason?: string;
  error?: HotlineError;
  stats: { sent: number; dropped: number; received: number; undecryptable: number };
}

const empty = (): CallView => ({
  phase: "idle", participants: [], muted: false, heard: false, speakers: [], lineUp: false,
  stats: { sent: 0, dropped: 0, received: 0, undecryptable: 0 },
});

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000); // enough candidates by then, whatever is still pending
  });
}

export class Calls {
  private v: CallView = empty();
  private listeners: ((v: CallView) => void)[] = [];
  private worker: Worker;
  private pc?: RTCPeerConnection;
  private mic?: RTCRtpTransceiver;
  private micTrack?: MediaStreamTrack;
  private slotDevice = new Map<number, string>();
  private endTimer?: ReturnType<typeof setTimeout>;
  private keyed = -1; // the latest epoch handed to the worker in this call
  readonly audio: HTMLAudioElement[] = [];
  // A line check's measurement of the media path, on the warm line's
  // microphone sender when no call has it (src/lineprobe.ts).
  private prober: LineProber;

  constructor(private core: Core, private me: Me) {
    this.worker = new Worker("sframe-worker.js");
    this.prober = new LineProber(core, this.worker, () => this.mic?.sender, () => this.inCall());
    this.worker.onmessage = (e) => {
      if (!this.prober.fromWorker(e.data)) this.fromWorker(e.data);
    };
  }

  view(): CallView {
    return this.v;
  }

  // onChange calls fn with every new view, until the returned stop.
  onChange(fn: (v: CallView) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((x) => x !== fn);
    };
  }

  private set(p: Partial<CallView>): void {
    this.v = { ...this.v, ...p };
    for (const fn of this.listeners) fn(this.v);
  }

  // start makes the warm line; it is made again whenever it fails.
  async start(): Promise<void> {
    if (typeof RTCRtpScriptTransform === "undefined") {
      throw Object.assign(new Error("this browser cannot encrypt call media end to end (no RTCRtpScriptTransform)"), { code: "client" });
    }
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.mic = pc.addTransceiver("audio", { direction: "sendonly" });
    this.mic.sender.transform = new RTCRtpScriptTransform(this.worker, { side: "send" });
    for (let i = 0; i < SLOTS; i++) {
      const t = pc.addTransceiver("audio", { direction: "recvonly" });
      t.receiver.transform = new RTCRtpScriptTransform(this.worker, { side: "recv", slot: i });
      let el = this.audio[i];
      if (!el) {
        el = document.createElement("audio");
        el.autoplay = true;
        el.dataset.testid = "call-audio";
        el.dataset.slot = String(i);
        el.hidden = true;
        document.body.append(el);
        this.audio[i] = el;
      }
      el.srcObject = new MediaStream([t.receiver.track]);
    }
    pc.onconnectionstatechange = () => {
      const st = pc.connectionState;
      if (pc !== this.pc) return;
      this.set({ lineUp: st === "connected" });
      if (st === "failed") {
        pc.close();
        setTimeout(() => void this.start().catch(() => undefined), 1000);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const answer = await this.core.media(pc.localDescription!.sdp);
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    if (this.micTrack) await this.mic.sender.replaceTrack(this.micTrack);
    this.prober.register(); // the line is up: it can measure a line check's media path
  }

  // The call's lifecycle.

  async place(conversation: string): Promise<void> {
    await this.enter(() => this.core.placeCall(conversation), "outgoing", conversation);
  }

  // placeRequest places a scheduled request's call as the duty desk: it
  // rings the requester only, and this device is on the line with them
  // ("please hold for the principal") until it connects the principal or
  // hands the call over.
  async placeRequest(request: string, conversation: string): Promise<void> {
    await this.enter(() => this.core.placeRequestCall(request), "outgoing", conversation);
  }

  // transfer rings user into this device's call, then leaves it.
  async transfer(user: string): Promise<void> {
    const id = this.v.call?.id;
    if (!id) return;
    const u = await this.core.transferCall(id, user);
    this.ended(u.call, "transferred");
  }

  async answer(): Promise<void> {
    const id = this.v.call?.id;
    if (!id) return;
    await this.enter(() => this.core.answerCall(id), "active", this.v.call?.conversation);
  }

  async decline(): Promise<void> {
    const id = this.v.call?.id;
    if (!id) return;
    const u = await this.core.declineCall(id);
    this.ended(u.call, "declined");
  }

  async hangup(): Promise<void> {
    const id = this.v.call?.id;
    if (!id) return;
    try {
      const u = await this.core.hangup(id);
      this.ended(u.call, "hangup");
    } catch (e) {
      this.ended(this.v.call!, "hangup");
      throw e;
    }
  }

  setMuted(muted: boolean): void {
    if (this.micTrack) this.micTrack.enabled = !muted;
    this.set({ muted });
  }

  // enter runs op (place, answer), with what it needs got at the same
  // time rather than after: the microphone, and the keys of the epoch the
  // conversation is in now, so frames the others send under it open even
  // if this device's own join commit (a new epoch) lands first.
  private async enter(op: () => Promise<CallUpdate>, phase: CallPhase, conversation?: string): Promise<void> {
    clearTimeout(this.endTimer);
    this.prober.abort("in_call"); // calls come first
    const before = conversation ? this.core.callKeys(conversation).catch(() => undefined) : Promise.resolve(undefined);
    const mic = navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    let u: CallUpdate;
    try {
      u = await op();
    } catch (e) {
      void mic.then((s) => s.getTracks().forEach((t) => t.stop()), () => undefined);
      throw e;
    }
    // Key the worker at once with the epoch held before the op: the
    // current keys may wait for this device's own join commit, which holds
    // the conversation until the server answers (~100 ms in a browser).
    const context = crypto.getRandomValues(new Uint16Array(1))[0]!;
    const k0 = await before;
    this.keyed = -1;
    if (k0) {
      this.worker.postMessage({ type: "start", suite: k0.suite, context, keys: k0 });
      this.keyed = k0.epoch;
    }
    void this.core.callKeys(u.call.conversation).then((keys) => {
      if (!k0) {
        this.worker.postMessage({ type: "start", suite: keys.suite, context, keys });
        this.keyed = keys.epoch;
      } else this.rekey(keys);
    }, (e: unknown) => this.set({ error: Object.assign(new Error(`call keys: ${String(e)}`), { code: "client" }) }));
    const active = u.call.participants.filter((p) => p.state === "joined").length > 1;
    this.set({ phase: active ? "active" : phase, call: u.call, participants: u.participants, heard: false, speakers: [], endedReason: undefined, error: undefined });
    // The microphone last: a call without it would be one-way, so a
    // refusal ends it.
    let track: MediaStreamTrack;
    try {
      track = (await mic).getAudioTracks()[0]!;
    } catch (e) {
      void this.hangup().catch(() => undefined);
      throw e;
    }
    this.micTrack = track;
    track.enabled = !this.v.muted;
    await this.mic?.sender.replaceTrack(track);
  }

  // rekey hands the worker a newer epoch's keys; the same epoch may come
  // twice (the stream's epoch update and the keys asked for on entering),
  // and the worker takes each once, in order.
  private rekey(keys: CallKeys): void {
    if (keys.epoch <= this.keyed) return;
    this.keyed = keys.epoch;
    this.worker.postMessage({ type: "epoch", keys });
  }

  private ended(call: CallInfo, reason: string): void {
    // A call may end twice over (an update taking this device out, then
    // the call's end): one timer, or an older one would clear a call that
    // came since.
    clearTimeout(this.endTimer);
    this.worker.postMessage({ type: "stop" });
    this.micTrack?.stop();
    this.micTrack = undefined;
    void this.mic?.sender.replaceTrack(null);
    this.set({ phase: "ended", call, endedReason: call.reason || reason, speakers: [] });
    this.endTimer = setTimeout(() => this.set({ ...empty(), lineUp: this.v.lineUp, stats: this.v.stats }), 4000);
  }

  private inCall(): boolean {
    return this.v.phase === "outgoing" || this.v.phase === "active";
  }

  // handle takes the core's updates: call events, slots, quality, epochs.
  handle(u: Update): void {
    switch (u.kind) {
      case "call":
        if (u.call) this.callEvent(u.call);
        break;
      case "call.slots":
        if (u.slots) this.slots(u.slots);
        break;
      case "call.quality":
        if (u.quality) this.quality(u.quality);
        break;
      case "epoch":
        if (this.inCall() && u.conversation !== undefined && u.conversation === this.v.call?.conversation) {
          void this.core.callKeys(u.conversation).then(
            (keys: CallKeys) => this.rekey(keys),
            () => undefined,
          );
        }
        break;
    }
  }

  private callEvent(u: CallUpdate): void {
    const c = u.call;
    const mine = this.v.call?.id === c.id;
    if (!mine) {
      // A ring while idle; anything else about other calls is not ours.
      // Rung into a call still ringing, or one under way (the desk
      // connecting the principal): this device is what rings.
      const ringsHere = c.state !== "ended" && c.participants.some((p) => p.device === this.me.device && p.state === "ringing");
      if (u.event === "call.ring" && ringsHere && (this.v.phase === "idle" || this.v.phase === "ended")) {
        clearTimeout(this.endTimer);
        this.set({ ...empty(), lineUp: this.v.lineUp, stats: this.v.stats, phase: "incoming", call: c, participants: u.participants });
      }
      return;
    }
    if (u.event === "call.ended" || c.state === "ended") {
      this.ended(c, c.reason || "ended");
      return;
    }
    if (u.event === "call.elsewhere" && this.v.phase === "incoming") {
      clearTimeout(this.endTimer);
      this.set({ phase: "ended", call: c, endedReason: "answered on another device" });
      this.endTimer = setTimeout(() => this.set({ ...empty(), lineUp: this.v.lineUp, stats: this.v.stats }), 2000);
      return;
    }
    const self = c.participants.find((p) => p.device === this.me.device);
    if (this.inCall() && self?.state === "left") {
      // Taken out by a flash call (preempted), or lost.
      this.ended(c, c.participants.some((p) => p.device === this.me.device && p.preempted) ? "preempted" : "dropped");
      return;
    }
    let phase = this.v.phase;
    if (phase === "outgoing" && c.state === "active") phase = "active";
    this.set({ phase, call: c, participants: u.participants });
  }

  private slots(s: CallSlots): void {
    this.slotDevice.clear();
    for (const sl of s.slots ?? []) if (sl.device) this.slotDevice.set(sl.index, sl.device);
  }

  private quality(q: CallQuality): void {
    if (q.call !== this.v.call?.id) return;
    const mine = q.participants.find((p) => p.device === this.me.device);
    if (!mine) return;
    const loss = Math.max(mine.loss_in, mine.loss_out);
    const level = loss > 0.05 || mine.jitter_ms > 50 || mine.rtt_ms > 400 ? "poor" : loss > 0.01 || mine.jitter_ms > 20 || mine.rtt_ms > 200 ? "fair" : "good";
    this.set({ quality: { loss, jitterMs: mine.jitter_ms, rttMs: mine.rtt_ms, level } });
  }

  private fromWorker(m: { type: string; slot?: number; epoch?: number; leaf?: number; message?: string; sent?: number; dropped?: number; received?: number; undecryptable?: number }): void {
    switch (m.type) {
      case "stats":
        this.set({ stats: { sent: m.sent ?? 0, dropped: m.dropped ?? 0, received: m.received ?? 0, undecryptable: m.undecryptable ?? 0 } });
        break;
      case "heard": {
        const conv = this.v.call?.conversation;
        if (!conv || m.leaf === undefined) break;
        // Heard now; who it was may wait for the conversation (this
        // device's own join commit holds it until the server answers).
        if (!this.v.heard) this.set({ heard: true });
        void this.core.memberAt(conv, m.leaf).then((member) => {
          const now = performance.now();
          const speakers = this.v.speakers.filter((s) => s.device !== member.device && now - s.at < 2000);
          speakers.push({ user: member.user, device: member.device, at: now });
          this.set({ heard: true, speakers });
        }, () => this.set({ heard: true }));
        break;
      }
      case "error":
        this.set({ error: Object.assign(new Error(m.message ?? "media worker"), { code: "client" }) });
        break;
    }
  }
}
