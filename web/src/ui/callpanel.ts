// The call screens: the ring panel while a call rings this device, and
// the call panel while one is placed, going on or just over. Both are
// views of Calls (src/call.ts): they render its CallView and send the
// user's choices back to it, nothing more.
//
// What a secure desk phone's display says comes first: the call's level,
// whether the people on it are who their credentials say, and who is on
// the record. Identity comes from the core's `verified` participants (a
// device in the conversation's group), never from the server's word alone:
// their credentials are checked. Whether this user compared safety
// numbers with them (and whether someone's keys changed since) is the
// conversation's verifications, shown beside it.

import type { Calls, CallView } from "../call";
import type { Briefing, CallInfo, Conversation, Me, Participant } from "../core";
import { h, replace } from "../dom";
import { report } from "./errors";
import { RECORD_ROLES, conversationTitle, level, levelLabel, list, onRecord, participants as people } from "./format";
import { KeyChangedWarning, comparedText, summarize, type VerificationStore } from "./verify";

const SPEAKING_MS = 2000;
const TICK_MS = 500;

// The preemption warning, as in MLPP: a steady 440 Hz + 620 Hz tone for
// 3 seconds when a flash call takes someone out of a call; the banner
// saying who stays a while longer.
export const PREEMPT_TONE_HZ = [440, 620] as const;
export const PREEMPT_TONE_MS = 3000;
const PREEMPT_BANNER_MS = 15000;

declare global {
  // The latest preemption tone: what it sends to the speakers passes
  // through analyser, so a test can measure it (as window.hotlineUI
  // exposes the call).
  var hotlineTone: { analyser: AnalyserNode; started: number; ms: number } | undefined;
}

let toneContext: AudioContext | undefined;

// preemptionTone sounds the preemption warning with WebAudio.
export function preemptionTone(): void {
  if (typeof AudioContext === "undefined") return;
  try {
    toneContext ??= new AudioContext();
    const ac = toneContext;
    void ac.resume().catch(() => undefined);
    const t0 = ac.currentTime + 0.05;
    const t1 = t0 + PREEMPT_TONE_MS / 1000;
    const gain = ac.createGain();
    // Short ramps: no click at either end.
    gain.gain.setValueAtTime(0, t0);
    gain.gain.linearRampToValueAtTime(0.2, t0 + 0.02);
    gain.gain.setValueAtTime(0.2, t1 - 0.02);
    gain.gain.linearRampToValueAtTime(0, t1);
    const analyser = ac.createAnalyser();
    analyser.fftSize = 4096;
    analyser.smoothingTimeConstant = 0;
    gain.connect(analyser);
    analyser.connect(ac.destination);
    let left: number = PREEMPT_TONE_HZ.length;
    for (const hz of PREEMPT_TONE_HZ) {
      const o = ac.createOscillator();
      o.frequency.value = hz;
      o.connect(gain);
      o.onended = () => {
        o.disconnect();
        if (--left === 0) gain.disconnect();
      };
      o.start(t0);
      o.stop(t1);
    }
    globalThis.hotlineTone = { analyser, started: performance.now(), ms: PREEMPT_TONE_MS };
  } catch (e) {
    report(e, "Preemption tone");
  }
}

export interface CallScreenContext {
  calls: Calls;
  me: Me;
  // conversation is the conversation as the app last loaded it, if known.
  conversation(id: string): Conversation | undefined;
  // ringing sets (or, with undefined, clears) the page title while a call rings.
  ringing(title: string | undefined): void;
  // changed tells the app the view changed (phase, line), after rendering.
  changed(v: CallView): void;
  // verifications holds the safety numbers' state per conversation.
  verifications: VerificationStore;
  // verify opens the verification dialog of a conversation.
  verify(conversation: string): void;
  // brief returns the briefing this device holds for the call in a
  // conversation (a scheduled request's), if any.
  brief(conversation: string): Promise<Briefing | undefined>;
}

// briefAside shows a briefing beside the call: talking points, questions
// with suggested answers, background. Empty and hidden until filled.
export function briefAside(testid: string): HTMLElement {
  return h("aside", { class: "call-brief", "data-testid": testid, hidden: true, "aria-label": "Briefing" });
}

export function fillBrief(el: HTMLElement, b: Briefing | undefined): void {
  if (!b) return;
  replace(
    el,
    h("h3", null, `Brief (version ${b.version})`),
    (b.talking_points ?? []).length > 0 ? h("ul", { class: "brief-points" }, (b.talking_points ?? []).map((p) => h("li", null, p))) : null,
    (b.questions ?? []).map((q) => h("div", { class: "brief-qa" }, h("strong", null, `Q: ${q.question}`), h("div", null, `A: ${q.answer}`))),
    b.background ? h("p", { class: "brief-background" }, b.background) : null,
  );
  el.hidden = false;
}

// reasonText says in words why a call ended.
export function reasonText(reason: string | undefined): string {
  switch (reason) {
    case undefined:
    case "":
    case "ended":
      return "Call ended";
    case "hangup":
      return "Call ended: hung up";
    case "cancelled":
      return "The caller hung up";
    case "declined":
      return "Declined";
    case "busy":
      return "Busy: in another call";
    case "no_answer":
      return "No answer";
    case "dropped":
      return "Connection lost";
    case "revoked":
      return "A device on the call was revoked";
    case "missed":
      return "Missed call";
    case "preempted":
      return "Preempted by a flash call";
    default:
      return reason.charAt(0).toUpperCase() + reason.slice(1).replace(/_/g, " ");
  }
}

// stateText is a participant's state as the panel shows it.
export function stateText(state: string): string {
  switch (state) {
    case "ringing":
      return "Ringing…";
    case "joined":
      return "On the call";
    case "declined":
      return "Declined";
    case "left":
      return "Left";
    case "missed":
      return "Missed";
    case "elsewhere":
      return "Answered elsewhere";
    default:
      return state.replace(/_/g, " ");
  }
}

// elapsed is "4:05" or "1:02:09".
export function elapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

// qualityText is "loss 0.3% · jitter 4 ms · RTT 12 ms".
export function qualityText(q: NonNullable<CallView["quality"]>): string {
  const loss = q.loss * 100;
  return `loss ${loss < 10 ? loss.toFixed(1) : Math.round(loss)}% · jitter ${Math.round(q.jitterMs)} ms · RTT ${Math.round(q.rttMs)} ms`;
}

// Person is one user on a call: their devices folded into one entry, shown
// through the device that matters most (joined, else ringing, else the first).
interface Person {
  user: string;
  org: string;
  roles: string[];
  record: string[]; // roles that put them on the record
  state: string;
  device: string;
  devices: number;
  deviceIds: string[];
  verified: boolean; // every device that carries their voice (or would) is in the group
  self: boolean;
  listening: boolean; // on the record but silent: the server forwards their audio to nobody
}

const STATE_RANK: Record<string, number> = { joined: 0, ringing: 1 };

function rank(state: string): number {
  return STATE_RANK[state] ?? 2;
}

// who is what the panel may say of a participant: the group's word if the
// device is verified, else only the server's.
function who(p: Participant, call: CallInfo | undefined): { user: string; org: string; roles: string[] } {
  const server = call?.participants.find((x) => x.device === p.device);
  if (p.verified) return { user: p.member.user, org: p.member.org, roles: p.member.roles };
  return { user: p.member.user || server?.user || "unknown", org: "", roles: server?.role ? [server.role] : [] };
}

function fold(ps: readonly Participant[], call: CallInfo | undefined, me: Me): Person[] {
  const byUser = new Map<string, { person: Person; parts: Participant[] }>();
  for (const p of ps) {
    const w = who(p, call);
    let e = byUser.get(w.user);
    if (!e) {
      e = {
        person: { user: w.user, org: w.org, roles: [], record: [], state: p.state, device: p.device, devices: 0, deviceIds: [], verified: p.verified, self: w.user === me.user, listening: false },
        parts: [],
      };
      byUser.set(w.user, e);
    }
    e.parts.push(p);
    const q = e.person;
    q.devices++;
    q.deviceIds.push(p.device);
    if (!q.org && w.org) q.org = w.org;
    // Roles from any device, and the server's role too: being on the record
    // is shown whoever claims it.
    const seen = call?.participants.find((x) => x.device === p.device);
    const server = seen?.role;
    for (const r of [...w.roles, ...(server ? [server] : [])]) if (!q.roles.includes(r)) q.roles.push(r);
    if (seen?.listening === true && (p.state === "joined" || p.state === "ringing")) q.listening = true;
    if (rank(p.state) < rank(q.state)) {
      q.state = p.state;
      q.device = p.device;
    }
  }
  const out: Person[] = [];
  for (const { person, parts } of byUser.values()) {
    const live = parts.filter((p) => p.state === "joined" || p.state === "ringing");
    person.verified = (live.length > 0 ? live : parts).every((p) => p.verified);
    person.record = onRecord(person.roles).map((r) => RECORD_ROLES.get(r) ?? r);
    person.roles = person.roles.filter((r) => r !== "member" || person.roles.length === 1);
    out.push(person);
  }
  // Whoever is on the record comes first: nobody listens in unseen.
  return [...out.filter((p) => p.record.length > 0), ...out.filter((p) => p.record.length === 0)];
}

// current is the participants with their states from the call itself,
// which may be newer (the view of the hang-up that ended it); who each
// device is stays the group's word.
function current(v: CallView): Participant[] {
  const c = v.call;
  return v.participants.map((p) => {
    const st = c?.participants.find((x) => x.device === p.device)?.state;
    return st && st !== p.state ? { ...p, state: st } : p;
  });
}

function callerOf(v: CallView): Participant | undefined {
  const c = v.call;
  return (
    v.participants.find((p) => c !== undefined && p.device === c.caller_device) ??
    v.participants.find((p) => p.role === "caller")
  );
}

function compartments(c: CallInfo): string {
  return (c.compartments ?? []).map((x) => x.toUpperCase()).join(" / ");
}

// levelBand is the coloured strip: level, compartments.
function levelBand(c: CallInfo, testid: string): HTMLElement {
  const lvl = level(c.level);
  const comps = compartments(c);
  return h(
    "div",
    { class: `call-band level-${lvl}`, "data-testid": testid, "data-level": lvl, "data-clearance": c.level },
    h("span", { class: "call-level-label" }, levelLabel(c.level)),
    comps ? h("span", { class: "call-compartments" }, comps) : null,
  );
}

// phoneIcon is a handset, drawn inline (no fetches).
export function phoneIcon(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute(
    "d",
    "M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1.9.4 1.8.7 2.7a2 2 0 0 1-.5 2.1L8 9.8a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.7.7a2 2 0 0 1 1.7 2z",
  );
  svg.append(path);
  return svg;
}

// CallScreen renders the ring panel or the call panel into host.
export class CallScreen {
  private ring?: { id: string; el: HTMLElement; answer: HTMLButtonElement; decline: HTMLButtonElement; keyChanged: KeyChangedWarning };
  private fetchedFor?: string; // the call whose conversation's verifications were fetched
  private panel?: CallPanel;
  private shownError?: unknown;
  private tick?: number;
  // Preemptions announced (call|device), and the banner saying so.
  private readonly announced = new Set<string>();
  private banner?: { el: HTMLElement; timer: number };

  constructor(
    private readonly ctx: CallScreenContext,
    private readonly host: HTMLElement,
  ) {
    ctx.calls.onChange((v) => this.render(v));
    ctx.verifications.onChange((id) => {
      const v = ctx.calls.view();
      if (v.phase !== "idle" && v.call?.conversation === id) this.render(v);
    });
    this.render(ctx.calls.view());
  }

  // refresh re-renders, for when what the app knows (titles) changed.
  refresh(): void {
    this.render(this.ctx.calls.view());
  }

  private render(v: CallView): void {
    if (v.error && v.error !== this.shownError) {
      this.shownError = v.error;
      report(v.error, "Call media");
    }
    // A ring or a call: ask afresh whether anyone's keys changed (a new
    // device calling is exactly when they would have).
    if (v.call && v.phase !== "idle" && v.phase !== "ended" && this.fetchedFor !== v.call.id) {
      this.fetchedFor = v.call.id;
      void this.ctx.verifications.refresh(v.call.conversation);
    }
    if (v.phase === "incoming" && v.call) {
      this.clearPanel();
      this.showRing(v, v.call);
    } else if ((v.phase === "outgoing" || v.phase === "active" || v.phase === "ended") && v.call) {
      const hadFocus = this.host.contains(document.activeElement) || document.activeElement === document.body || document.activeElement?.getAttribute("data-testid") === "call";
      this.clearRing();
      if (!this.panel || this.panel.id !== v.call.id) {
        this.panel?.el.remove();
        this.panel = new CallPanel(this.ctx, v.call.id);
        replace(this.host, this.panel.el);
        if (hadFocus && v.phase !== "ended") this.panel.focus();
      }
      this.panel.update(v);
    } else {
      this.clearRing();
      this.clearPanel();
    }
    this.preemption(v);
    if (this.banner && this.host.firstElementChild !== this.banner.el) this.host.prepend(this.banner.el);
    const live = v.phase === "outgoing" || v.phase === "active";
    if (live && this.tick === undefined) {
      this.tick = window.setInterval(() => this.panel?.update(this.ctx.calls.view()), TICK_MS);
    } else if (!live && this.tick !== undefined) {
      window.clearInterval(this.tick);
      this.tick = undefined;
    }
    this.ctx.changed(v);
  }

  // preemption warns, once per call and device, when the server's view of
  // this device's call says a flash call took someone out of it: this
  // user ("Preempted"), or others on it. The banner outlives the call's
  // panel: the flash call rings this device at once.
  private preemption(v: CallView): void {
    const c = v.call;
    if (!c || v.phase === "idle" || v.phase === "incoming") return;
    const fresh = c.participants.filter((p) => p.preempted === true && !this.announced.has(`${c.id}|${p.device}`));
    if (fresh.length === 0) return;
    for (const p of fresh) this.announced.add(`${c.id}|${p.device}`);
    const me = this.ctx.me;
    const self = fresh.some((p) => p.user === me.user);
    // Named as the group knows them where it does.
    const names = [...new Set(fresh.filter((p) => p.user !== me.user).map((p) => {
      const q = v.participants.find((x) => x.device === p.device);
      return q ? who(q, c).user : p.user;
    }))];
    const text = self
      ? "Preempted: taken out for a flash call"
      : `${names.join(", ")} ${names.length === 1 ? "was" : "were"} taken out for a flash call`;
    this.showBanner(text, self, names);
    preemptionTone();
  }

  private showBanner(text: string, self: boolean, users: string[]): void {
    this.clearBanner();
    const el = h(
      "div",
      { class: "preempt-banner", role: "alert", "data-testid": "preempt-banner", "data-self": String(self), "data-users": users.join(" ") },
      h("span", { class: "preempt-text" }, text),
      h("button", { type: "button", class: "preempt-dismiss", "aria-label": "Dismiss", onclick: () => this.clearBanner() }, "×"),
    );
    this.banner = { el, timer: window.setTimeout(() => this.clearBanner(), PREEMPT_BANNER_MS) };
    this.host.prepend(el);
  }

  private clearBanner(): void {
    if (!this.banner) return;
    window.clearTimeout(this.banner.timer);
    this.banner.el.remove();
    this.banner = undefined;
  }

  private clearPanel(): void {
    if (!this.panel) return;
    this.panel.el.remove();
    this.panel = undefined;
  }

  private clearRing(): void {
    if (!this.ring) return;
    this.ring.el.remove();
    this.ring = undefined;
    this.ctx.ringing(undefined);
  }

  private showRing(v: CallView, c: CallInfo): void {
    const caller = callerOf(v);
    const verified = caller?.verified === true;
    const name = caller ? (verified ? caller.member.user : caller.member.user || c.caller) : c.caller;
    const org = verified ? caller!.member.org : "";
    const roles = verified ? caller!.member.roles : [];
    const conv = this.ctx.conversation(c.conversation);
    const showTitle = conv && (conv.title?.trim() || people(conv.members, this.ctx.me).length > 2);
    const recorded = fold(v.participants, c, this.ctx.me).filter((p) => p.record.length > 0);
    const lvl = level(c.level);
    const mismatch = conv && levelLabel(conv.clearance) !== levelLabel(c.level);
    // The caller's safety number changed since this user compared it.
    const callerUser = caller?.member.user || c.caller;
    const changed = summarize(this.ctx.verifications.get(c.conversation)).changed.filter((u) => u === callerUser);

    if (this.ring?.id === c.id) {
      // Same call: only who is on it may have changed; the buttons keep focus.
      const rec = this.ring.el.querySelector<HTMLElement>(".ring-record");
      if (rec) replace(rec, this.recordLine(recorded));
      if (rec) rec.hidden = recorded.length === 0;
      this.ring.keyChanged.set(changed);
      return;
    }
    this.clearRing();
    const ringBrief = briefAside("ring-brief");
    void this.ctx.brief(c.conversation).then((b) => fillBrief(ringBrief, b), () => undefined);
    const keyChanged = new KeyChangedWarning("ring-key-changed");
    keyChanged.set(changed);

    const answer = h(
      "button",
      { type: "button", class: "ring-answer", "data-testid": "answer", onclick: () => void this.act("Answer", () => this.ctx.calls.answer()) },
      phoneIcon(),
      "Answer",
    );
    const decline = h(
      "button",
      { type: "button", class: "ring-decline", "data-testid": "decline", onclick: () => void this.act("Decline", () => this.ctx.calls.decline()) },
      phoneIcon(),
      "Decline",
    );
    const el = h(
      "section",
      {
        class: "ring",
        "data-testid": "ring",
        "data-call": c.id,
        "data-level": lvl,
        "data-verified": String(verified),
        "aria-labelledby": "ring-heading",
        "aria-describedby": "ring-caller",
        tabindex: -1,
      },
      levelBand(c, "ring-level"),
      h(
        "div",
        { class: "ring-body" },
        h(
          "p",
          { class: "ring-kicker", id: "ring-heading", role: "alert" },
          h("span", { class: "ring-pulse", "aria-hidden": "true" }),
          "Incoming call",
          h("span", { class: "sr-only" }, ` from ${name}, ${levelLabel(c.level)}${verified ? "" : ", credential not checked"}`),
        ),
        h("h2", { class: "ring-caller", id: "ring-caller", "data-testid": "ring-caller", "data-user": name }, name),
        org || roles.length > 0 ? h("p", { class: "ring-org" }, [org, list(roles)].filter(Boolean).join(" · ")) : null,
        h(
          "p",
          { class: `ring-verified ${verified ? "ok" : "warn"}`, "data-testid": "ring-verified", "data-verified": String(verified) },
          verified
            ? "✓ Credential checked: this device holds a verified credential in the conversation's group"
            : "⚠ Credential NOT checked: only the server names this caller; their device is not in the conversation's group",
        ),
        keyChanged.el,
        showTitle ? h("p", { class: "ring-conversation", "data-testid": "ring-conversation" }, "In ", h("strong", null, conversationTitle(conv!, this.ctx.me))) : null,
        mismatch
          ? h("p", { class: "ring-verified warn", "data-testid": "ring-level-mismatch" }, `⚠ The server calls this ${levelLabel(c.level)}; the conversation is ${levelLabel(conv!.clearance)}`)
          : null,
        h("p", { class: "ring-record", "data-testid": "ring-on-record", hidden: recorded.length === 0 }, this.recordLine(recorded)),
        ringBrief,
      ),
      h("div", { class: "ring-actions" }, decline, answer),
    );
    this.ring = { id: c.id, el, answer, decline, keyChanged };
    replace(this.host, el);
    this.ctx.ringing(`Incoming call — ${name}`);
    // Focus moves only if nothing has it: a keystroke meant for the
    // composer must not answer or decline.
    if (document.activeElement === document.body || document.activeElement === null) el.focus();
  }

  private recordLine(recorded: Person[]): (string | HTMLElement)[] {
    if (recorded.length === 0) return [];
    return [
      h("strong", null, "On the record: "),
      recorded.map((p) => `${p.record.join(", ")} ${p.user}`).join("; "),
    ];
  }

  private async act(what: string, f: () => Promise<void>): Promise<void> {
    const r = this.ring;
    if (r) {
      r.answer.disabled = true;
      r.decline.disabled = true;
      r.el.setAttribute("aria-busy", "true");
    }
    try {
      await f();
    } catch (e) {
      report(e, what);
    } finally {
      if (r && this.ring === r) {
        r.answer.disabled = false;
        r.decline.disabled = false;
        r.el.removeAttribute("aria-busy");
      }
    }
  }
}

// CallPanel is one call's panel: built once, then updated in place so the
// buttons keep focus.
class CallPanel {
  readonly el: HTMLElement;
  private readonly band: HTMLElement;
  private readonly bandLevel: HTMLElement;
  private readonly checked: HTMLElement;
  private readonly compared: HTMLButtonElement;
  private readonly keyChanged: KeyChangedWarning;
  private readonly title: HTMLElement;
  private readonly status: HTMLElement;
  private readonly clock: HTMLElement;
  private readonly heard: HTMLElement;
  private readonly quality: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly brief: HTMLElement;
  private briefAsked = false;
  private readonly mute: HTMLButtonElement;
  private readonly hangup: HTMLButtonElement;
  private readonly controls: HTMLElement;
  private activeSince?: number;
  private lastPeople = "";

  constructor(
    private readonly ctx: CallScreenContext,
    readonly id: string,
  ) {
    // The band's marks and the key-changed alert are built once and
    // updated in place: the compare button keeps focus, the alert is not
    // announced anew at every tick.
    this.bandLevel = h("div", { class: "call-band-level" });
    this.checked = h("span", { class: "verified call-verified", "data-testid": "call-verified", "data-all": "false" });
    this.compared = h("button", {
      type: "button",
      class: "verified call-compared",
      "data-testid": "call-compared",
      "data-all": "false",
      "aria-haspopup": "dialog",
      onclick: () => {
        const c = this.ctx.calls.view().call;
        if (c) this.ctx.verify(c.conversation);
      },
    });
    this.keyChanged = new KeyChangedWarning("call-key-changed", () => {
      const c = this.ctx.calls.view().call;
      if (c) this.ctx.verify(c.conversation);
    });
    this.band = h("div", { class: "call-band-row" }, this.bandLevel, this.keyChanged.el);
    this.title = h("h2", { class: "call-title", "data-testid": "call-title", tabindex: -1 });
    this.status = h("p", { class: "call-status", "data-testid": "call-status", role: "status", "aria-live": "polite" });
    this.clock = h("span", { class: "call-elapsed", "data-testid": "call-elapsed", hidden: true, "aria-label": "Elapsed time" });
    this.heard = h("span", { class: "call-heard", "data-testid": "heard", "data-heard": "false" });
    this.quality = h("span", { class: "call-quality", "data-testid": "call-quality", "data-level": "unknown" });
    this.list = h("ul", { class: "call-participants", "aria-label": "On the call" });
    this.brief = briefAside("call-brief");
    this.mute = h(
      "button",
      {
        type: "button",
        class: "call-mute",
        "data-testid": "mute",
        "aria-pressed": "false",
        onclick: () => {
          const v = this.ctx.calls.view();
          this.ctx.calls.setMuted(!v.muted);
        },
      },
      "Mute",
    );
    this.hangup = h(
      "button",
      {
        type: "button",
        class: "call-hangup",
        "data-testid": "hangup",
        onclick: () => void this.leave(),
      },
      phoneIcon(),
      "Hang up",
    );
    this.controls = h("div", { class: "call-controls" }, this.mute, this.hangup);
    this.el = h(
      "section",
      { class: "call-panel", "data-testid": "call-panel", "data-call": id, "data-state": "outgoing", "aria-labelledby": `call-title-${id}` },
      this.band,
      h(
        "div",
        { class: "call-head" },
        this.title,
        h("div", { class: "call-line" }, this.status, this.clock),
        h("div", { class: "call-indicators" }, this.heard, this.quality),
      ),
      h("div", { class: "call-body" }, this.list, this.brief),
      this.controls,
    );
    this.title.id = `call-title-${id}`;
  }

  focus(): void {
    this.title.focus();
  }

  update(v: CallView): void {
    const c = v.call;
    if (!c) return;
    if (!this.briefAsked) {
      this.briefAsked = true;
      void this.ctx.brief(c.conversation).then((b) => fillBrief(this.brief, b), () => undefined);
    }
    const me = this.ctx.me;
    this.el.dataset.state = v.phase;

    // The band: level, compartments, credentials of everyone joined, and
    // whether this user compared safety numbers with the conversation's
    // members.
    const conv = this.ctx.conversation(c.conversation);
    const parts = current(v);
    // Once over, the band keeps saying who was on it.
    const joined = (v.phase === "ended" ? v.participants : parts).filter((p) => p.state === "joined");
    const unverified = joined.filter((p) => !p.verified);
    const all = unverified.length === 0;
    const mismatch = conv && levelLabel(conv.clearance) !== levelLabel(c.level);
    const bandKey = [c.level, compartments(c), mismatch ? conv!.clearance : ""].join("|");
    if (this.bandLevel.dataset.key !== bandKey) {
      this.bandLevel.dataset.key = bandKey;
      // The marks move into the new strip (a focused compare button loses
      // focus then; the level changes at most once a call).
      const band = levelBand(c, "call-level");
      band.append(this.checked, this.compared);
      replace(
        this.bandLevel,
        band,
        mismatch
          ? h("p", { class: "call-warning", "data-testid": "call-level-mismatch" }, `⚠ The server calls this ${levelLabel(c.level)}; the conversation is ${levelLabel(conv!.clearance)}`)
          : null,
      );
    }
    const checkedText = all
      ? joined.length > 0
        ? "Credentials checked"
        : "No one on the call yet"
      : `Credentials not checked: ${[...new Set(unverified.map((p) => who(p, c).user))].join(", ")}`;
    if (this.checked.textContent !== checkedText) {
      this.checked.textContent = checkedText;
      this.checked.dataset.all = String(all);
      this.checked.className = `verified call-verified${all ? " ok" : " warn"}`;
      this.checked.title = all
        ? "Every device on the call is in the conversation's group with a verified credential"
        : "These devices are not in the conversation's group: only the server vouches for them";
    }
    const sum = summarize(this.ctx.verifications.get(c.conversation));
    const comparedWords = comparedText(sum);
    const comparedKey = JSON.stringify([comparedWords, sum.all, sum.changed]);
    if (this.compared.dataset.key !== comparedKey) {
      this.compared.dataset.key = comparedKey;
      this.compared.textContent = comparedWords;
      this.compared.dataset.all = String(sum.all);
      this.compared.dataset.changed = String(sum.changed.length > 0);
      this.compared.className = `verified call-compared${sum.all ? " ok" : sum.changed.length > 0 ? " changed" : " warn"}`;
      this.compared.title = "Compare safety numbers with the conversation's members";
    }
    this.keyChanged.set(sum.changed);

    const title = conv ? conversationTitle(conv, me) : "Call";
    if (this.title.textContent !== title) this.title.textContent = title;

    // Status and time.
    const now = performance.now();
    if (v.phase === "active" && this.activeSince === undefined) this.activeSince = now;
    let status: string;
    switch (v.phase) {
      case "outgoing": {
        const ringing = new Set(parts.filter((p) => p.state === "ringing").map((p) => who(p, c).user)).size;
        status = ringing > 0 ? `Calling… ringing ${ringing} ${ringing === 1 ? "person" : "people"}` : "Calling…";
        break;
      }
      case "active":
        status = v.muted ? "On the call · you are muted" : "On the call";
        break;
      default:
        status = reasonText(v.endedReason);
    }
    if (this.status.textContent !== status) this.status.textContent = status;
    this.el.dataset.reason = v.phase === "ended" ? (v.endedReason ?? "") : "";
    if (this.activeSince !== undefined && v.phase === "active") {
      this.clock.hidden = false;
      this.clock.textContent = elapsed(now - this.activeSince);
    } else if (v.phase !== "ended") {
      this.clock.hidden = true;
    }

    // Heard and quality.
    this.heard.dataset.heard = String(v.heard);
    this.heard.textContent = v.heard ? "Receiving audio" : v.phase === "ended" ? "" : "No audio received yet";
    this.heard.title = v.heard ? "Frames from others arrive and decrypt: the call is end-to-end encrypted" : "Nothing decrypted from anyone else yet";
    this.heard.hidden = v.phase === "ended";
    const q = v.quality;
    const qlevel = q?.level ?? "unknown";
    const qdetail = q ? qualityText(q) : "not measured yet";
    this.quality.dataset.level = qlevel;
    this.quality.title = `Call quality: ${qdetail}`;
    this.quality.setAttribute("aria-label", `Call quality ${qlevel}: ${qdetail}`);
    const qtext = `${q ? q.level.charAt(0).toUpperCase() + q.level.slice(1) : "Quality —"}${q ? ` · ${qdetail}` : ""}`;
    if (this.quality.textContent !== qtext) {
      replace(this.quality, h("span", { class: "bars", "aria-hidden": "true" }, h("i", null), h("i", null), h("i", null)), qtext);
    }
    this.quality.hidden = v.phase === "ended";

    // Who is on it, and who speaks.
    const speaking = new Set(v.speakers.filter((s) => now - s.at < SPEAKING_MS).map((s) => s.device));
    const folded = fold(parts, c, me);
    const isSpeaking = (p: Person) => p.state === "joined" && p.deviceIds.some((d) => speaking.has(d));
    const key = JSON.stringify(folded.map((p) => [p.user, p.org, p.state, p.verified, p.roles, p.devices, isSpeaking(p)]));
    if (key !== this.lastPeople) {
      this.lastPeople = key;
      replace(this.list, folded.map((p) => this.person(p, isSpeaking(p))));
    }

    // Controls.
    this.mute.setAttribute("aria-pressed", String(v.muted));
    this.mute.textContent = v.muted ? "Unmute" : "Mute";
    this.mute.classList.toggle("on", v.muted);
    this.controls.hidden = v.phase === "ended";
  }

  private person(p: Person, speaking: boolean): HTMLElement {
    const other = p.roles.filter((r) => !RECORD_ROLES.has(r));
    return h(
      "li",
      {
        class: `call-participant${p.record.length > 0 ? " recorded" : ""}${speaking ? " speaking" : ""}${p.verified ? "" : " unverified"}`,
        "data-testid": "call-participant",
        "data-user": p.user,
        "data-device": p.device,
        "data-state": p.state,
        "data-verified": String(p.verified),
        "data-speaking": String(speaking),
        "data-roles": p.roles.join(" "),
        "data-listening": String(p.listening),
      },
      h("span", { class: "speaking-dot", "aria-hidden": "true" }),
      h(
        "span",
        { class: "cp-main" },
        p.record.length > 0 ? h("strong", { class: "cp-record", "data-testid": "call-on-record" }, `${p.record.join(", ")} — on the record`) : null,
        h("span", { class: "cp-name" }, p.self ? `${p.user} (you)` : p.user),
        h(
          "span",
          { class: "cp-sub" },
          [p.org, list(other), p.devices > 1 ? `${p.devices} devices` : "", p.listening ? "listening, not heard" : ""].filter(Boolean).join(" · "),
        ),
      ),
      h(
        "span",
        { class: "cp-side" },
        h("span", { class: `cp-state state-${p.state}` }, stateText(p.state)),
        speaking ? h("span", { class: "cp-speaking" }, "Speaking") : null,
        p.verified ? null : h("span", { class: "cp-unverified", title: "This device is not in the conversation's group" }, "Not verified"),
      ),
    );
  }

  private async leave(): Promise<void> {
    this.hangup.disabled = true;
    try {
      await this.ctx.calls.hangup();
    } catch (e) {
      report(e, "Hang up");
    } finally {
      this.hangup.disabled = false;
    }
  }
}
