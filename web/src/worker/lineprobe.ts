// A line check's measurement of the media path, the media worker's side:
// the same probes and echoes as the headless device's (internal/voice/
// probe.go, the reference), each frame SFrame-encrypted under the
// conversation's current epoch like call audio.
//
// The plaintext of a probe frame is one or more records of RECORD bytes:
// "hlp1", kind (1 probe, 2 echo), the prober's nonce (8 bytes), sequence
// number (uint16 BE), the prober's send time (uint64 BE, µs since it
// started) and, in an echo, how long the echoing device held the probe
// before answering (uint32 BE, µs; 0 in a probe). Here the encoder sets
// the pace (a frame every 20 ms), so a frame carries the probes due and
// the echoes pending, several records at once; the headless device reads
// each. A frame with any record that is not one is ignored whole.
//
// A far end's probe counts as heard only if it arrived at most LATE
// behind that device's quickest (arrival less send time: the two clocks'
// offset is the same for every probe): a jitter buffer waits about that
// long, so a later probe is as good as lost. A far end's probes are told
// apart by its nonce, new for each measurement: what is left of an
// earlier check, kept while idle, does not count for this one.

export const RECORD = 4 + 1 + 8 + 2 + 8 + 4;
const MAGIC = [0x68, 0x6c, 0x70, 0x31]; // "hlp1"
const PROBE = 1;
const ECHO = 2;
// At most this many records in a frame (under a kilobyte); the rest wait
// for the next.
const PER_FRAME = 36;

// LINGER: how long a device listens on after its last probe once nothing
// new arrives; GRACE caps the whole wait after it.
const LINGER = 1000;
const GRACE = 5000;
// NO_FRAMES: a probe whose line gives no frame to send this long after it
// began cannot measure (the line is down, or the page's tone never ran).
const NO_FRAMES = 2000;
const LATE = 200;

export interface ProbeAsk {
  id: number;
  count: number;
  interval: number; // ms
  epoch: number; // the epoch keyed for the probe
  peers: number[]; // the far ends' leaves in it
}

interface Rec {
  kind: number;
  nonce: Uint8Array;
  seq: number;
  sent: bigint; // µs
  held: number; // µs
}

// What the worker reports of a probe to the page, which knows the devices
// behind the leaves.
export interface ProbeResult {
  type: "probed";
  id: number;
  unsupported?: string;
  sent: number;
  rtts: number[]; // ms, one per echo of this device's probes
  heard: [number, number][]; // [leaf, distinct probes heard in time] for every peer
}

interface Pending {
  nonce: Uint8Array;
  seq: number;
  sent: bigint;
  at: number; // when the probe arrived
}

export class LineProbe {
  private readonly nonce = crypto.getRandomValues(new Uint8Array(8));
  private readonly began = performance.now();
  private start = -1; // the first frame sent: the clock of this device's probes
  private next = 0; // the next probe's sequence number
  private sentAll = -1; // when the last probe went
  private last = -1; // when the latest probe or echo arrived
  private readonly echoes: Pending[] = [];
  // The far ends' probes heard, by leaf and by their nonce: sequence
  // number → arrival less send time (ms).
  private readonly heard = new Map<number, Map<string, Map<number, number>>>();
  private readonly rtts: number[] = [];

  constructor(readonly ask: ProbeAsk) {
    for (const leaf of ask.peers) this.heard.set(leaf, new Map());
  }

  // outgoing is the plaintext of the frame to send at now: the probes due
  // and the echoes pending, or null when there is nothing to send (the
  // frame is then dropped: what the microphone carries is never sent).
  outgoing(now: number): Uint8Array | null {
    if (this.start < 0) this.start = now;
    const recs: Uint8Array[] = [];
    while (this.next < this.ask.count && recs.length < PER_FRAME && now - this.start >= this.next * this.ask.interval) {
      recs.push(record(PROBE, this.nonce, this.next, BigInt(Math.round((now - this.start) * 1000)), 0));
      this.next++;
      if (this.next === this.ask.count) this.sentAll = now;
    }
    while (this.echoes.length > 0 && recs.length < PER_FRAME) {
      const e = this.echoes.shift()!;
      recs.push(record(ECHO, e.nonce, e.seq, e.sent, Math.round((now - e.at) * 1000)));
    }
    if (recs.length === 0) return null;
    const out = new Uint8Array(recs.length * RECORD);
    recs.forEach((r, i) => out.set(r, i * RECORD));
    return out;
  }

  // received handles a decrypted frame from leaf (of epoch) that arrived
  // at: a far end's probe is counted and echoed, an echo of this device's
  // gives a round trip. Anything else is ignored.
  received(pt: Uint8Array, epoch: number, leaf: number, at: number): void {
    const recs = epoch === this.ask.epoch ? parse(pt) : null;
    if (!recs) return;
    this.last = Math.max(this.last, at);
    for (const r of recs) this.record(r, leaf, at);
  }

  private record(r: Rec, leaf: number, at: number): void {
    const own = r.nonce.every((b, i) => b === this.nonce[i]);
    if (r.kind === PROBE && !own) {
      const byNonce = this.heard.get(leaf);
      if (byNonce && r.seq < this.ask.count) {
        // A far end's: counted, with when it came.
        const key = r.nonce.join(",");
        const h = byNonce.get(key) ?? new Map<number, number>();
        byNonce.set(key, h);
        if (!h.has(r.seq)) h.set(r.seq, at - Number(r.sent) / 1000);
      }
      // Every probe is answered, whoever sent it: its sender measures.
      this.echoes.push({ nonce: r.nonce, seq: r.seq, sent: r.sent, at });
    } else if (r.kind === ECHO && own && this.start >= 0) {
      const rtt = at - this.start - Number(r.sent) / 1000 - r.held / 1000;
      if (rtt >= 0) this.rtts.push(rtt);
    }
  }

  // over says whether the probe is over at now, and why if it could not
  // measure: every probe sent, and every far end's probe and every echo
  // in (and the echoes owed sent), or nothing new for LINGER, or GRACE
  // gone.
  over(now: number): { done: boolean; unsupported?: string } {
    if (this.start < 0) return now - this.began >= NO_FRAMES ? { done: true, unsupported: "no_frames" } : { done: false };
    if (this.sentAll < 0) return { done: false };
    let complete = this.rtts.length >= this.ask.count * this.heard.size && this.echoes.length === 0;
    for (const h of this.heard.values()) complete &&= current(h).size >= this.ask.count;
    const quiet = now - Math.max(this.last, this.sentAll) >= LINGER;
    return { done: complete || quiet || now - this.sentAll >= GRACE };
  }

  result(unsupported?: string): ProbeResult {
    const onTime = (h: Map<number, number>) => {
      const first = Math.min(...h.values());
      return [...h.values()].filter((off) => off - first <= LATE).length;
    };
    const r: ProbeResult = { type: "probed", id: this.ask.id, sent: this.next, rtts: [...this.rtts], heard: [...this.heard].map(([leaf, h]) => [leaf, onTime(current(h))]) };
    if (unsupported) r.unsupported = unsupported;
    return r;
  }
}

// current is a far end's measurement under way: of its nonces, the one
// with the most probes heard.
function current(byNonce: Map<string, Map<number, number>>): Map<number, number> {
  let best = new Map<number, number>();
  for (const h of byNonce.values()) if (h.size >= best.size) best = h;
  return best;
}

// parse reads a probe frame's records: null if any is not one.
function parse(pt: Uint8Array): Rec[] | null {
  if (pt.length === 0 || pt.length % RECORD !== 0) return null;
  const recs: Rec[] = [];
  for (let off = 0; off < pt.length; off += RECORD) {
    const r = pt.subarray(off, off + RECORD);
    if (!MAGIC.every((b, i) => r[i] === b) || (r[4] !== PROBE && r[4] !== ECHO)) return null;
    const v = new DataView(r.buffer, r.byteOffset, RECORD);
    recs.push({ kind: r[4], nonce: r.slice(5, 13), seq: v.getUint16(13), sent: v.getBigUint64(15), held: v.getUint32(23) });
  }
  return recs;
}

function record(kind: number, nonce: Uint8Array, seq: number, sent: bigint, heldUs: number): Uint8Array {
  const r = new Uint8Array(RECORD);
  const v = new DataView(r.buffer);
  r.set(MAGIC, 0);
  r[4] = kind;
  r.set(nonce, 5);
  v.setUint16(13, seq);
  v.setBigUint64(15, sent);
  v.setUint32(23, Math.min(Math.max(heldUs, 0), 0xffffffff));
  return r;
}
