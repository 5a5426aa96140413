// The duty desk in the browser. For a duty officer, the console: call
// requests to triage (with the purpose, read from the request's MLS
// conversation), today's schedule, and every call ringing or under way.
// For others, their schedule and the requests they made. And the form a
// counterpart (or anyone the policy sends through the desk) uses to ask
// for a call.
//
// Everything is re-fetched, not patched: a "request" update from the
// stream, or every few seconds for live calls while the console is shown.
// Times show in this browser's zone, with the requester's beside them.
//
// The desk places a scheduled call from here: this browser joins it with
// its own media (src/call.ts), ringing the requester only; once they are on
// the line ("please hold for the principal") it connects the principal,
// preempting a routine call of theirs if the request is flash, holds and
// resumes participants, hands the call over, or leaves.

import type { Calls, CallView } from "../call";
import type { CallInfo, CallRequest, Commitment, Core, Hotline, LineCheck, Me, Readout } from "../core";
import { h, replace } from "../dom";
import { describe, guard } from "./errors";
import { levelPill } from "./sidebar";

const LIVE_POLL_MS = 5000;
const REFRESH_DEBOUNCE_MS = 80;
const HERE = Intl.DateTimeFormat().resolvedOptions().timeZone;

function fmt(iso: string, zone?: string, withDay = true): string {
  const o: Intl.DateTimeFormatOptions = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (withDay) Object.assign(o, { weekday: "short", day: "numeric", month: "short" });
  if (zone) o.timeZone = zone;
  return new Intl.DateTimeFormat(undefined, o).format(new Date(iso));
}

function span(start: string, end: string, zone?: string): string {
  return `${fmt(start, zone)}–${fmt(end, zone, false)}`;
}

// theirs is a time in the requester's zone, when it differs from ours.
function theirs(start: string, end: string, zone: string): string | null {
  if (!zone || zone === HERE) return null;
  try {
    return ` (${span(start, end, zone)} ${zone})`;
  } catch {
    return null;
  }
}

// localInput is the value a datetime-local input shows for iso.
function localInput(iso: string): string {
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// CALL_WORDS says in words what the server's error code means for a step
// of the desk in a call; the server's own message follows.
const CALL_WORDS: Record<string, string> = {
  conflict: "Not possible now",
  forbidden: "Not allowed",
  not_found: "No such call or request (it may have ended)",
  not_member: "Not a member of the call's conversation",
  contact_refused: "The contact policy does not allow it",
  contact_via_request: "Reachable only through a call request",
  clearance_insufficient: "Not cleared for the call's level",
  user_disabled: "That user is disabled",
  unauthenticated: "Signed out: open the app again",
  device_revoked: "This device was revoked",
  rate_limited: "Too many attempts: wait a moment",
  unavailable: "The server is unavailable: try again",
  bad_request: "The server refused the request",
  internal: "The server failed",
  client: "This browser could not do it",
};

// stepError is a failed step as the console shows it.
export function stepError(e: unknown): { code: string; text: string } {
  const d = describe(e);
  const words = CALL_WORDS[d.code] ?? "Failed";
  return { code: d.code, text: `${words}: ${d.message}${d.hint ? ` (${d.hint})` : ""}` };
}

// A step of the desk in a call: running (buttons disabled), or failed.
interface Step {
  running?: string; // what is being done, in words
  error?: { code: string; text: string };
}

function inCall(v: CallView | undefined): boolean {
  return v !== undefined && (v.phase === "outgoing" || v.phase === "active" || v.phase === "incoming");
}

function briefState(r: CallRequest): string {
  const b = r.briefing;
  if (!b) return "no brief yet";
  return b.acked === b.version ? `brief v${b.version} read` : `brief v${b.version} unread`;
}

export class DeskPane {
  readonly el: HTMLElement;
  private readonly requestsEl: HTMLElement;
  private readonly scheduleEl: HTMLElement;
  private readonly liveEl: HTMLElement;
  private readonly mineEl: HTMLElement;
  private readonly readoutsEl: HTMLElement;
  private readonly commitmentsEl: HTMLElement;
  private readonly hotlinesEl: HTMLElement;
  private readonly desk: boolean;
  private timer: number | undefined;
  private debounce: number | undefined;
  private loading = false;
  private again = false;
  private closed = false;
  // Inputs being typed into survive a refresh: a request's card is
  // rebuilt only when its request changed.
  private readonly cards = new Map<string, { stamp: string; el: HTMLElement }>();
  // The desk in calls: the steps under way or failed, by request (placing)
  // or call; the scheduled calls by conversation (to connect their
  // principal); the place lines and live cards, updated in place.
  private readonly steps = new Map<string, Step>();
  private readonly scheduled = new Map<string, CallRequest>();
  private readonly places = new Map<string, HTMLElement>();
  private readonly liveCards = new Map<string, { stamp: string; el: HTMLElement }>();
  private live: CallInfo[] = [];
  private callKey = "";
  private stopCalls: (() => void) | undefined;

  // calls, if given, is the page's call (src/call.ts) the desk places and
  // joins calls with.
  constructor(
    private readonly core: Core,
    private readonly me: Me,
    back: () => void,
    private readonly calls: () => Calls | undefined = () => undefined,
  ) {
    this.desk = me.roles.includes("duty-officer");
    this.requestsEl = h("ul", { class: "desk-list", "data-testid": "desk-requests", "aria-label": "Call requests" });
    this.scheduleEl = h("ul", { class: "desk-list", "data-testid": "desk-schedule", "aria-label": "Schedule" });
    this.liveEl = h("ul", { class: "desk-list", "data-testid": "desk-live", "aria-label": "Calls under way" });
    this.mineEl = h("ul", { class: "desk-list", "data-testid": "desk-mine", "aria-label": "Your requests" });
    this.readoutsEl = h("ul", { class: "desk-list", "data-testid": "desk-readouts", "aria-label": "Ad-hoc calls and their readouts" });
    this.commitmentsEl = h("ul", { class: "desk-list", "data-testid": "desk-commitments", "aria-label": "Commitments" });
    this.hotlinesEl = h("ul", { class: "desk-list", "data-testid": "desk-hotlines", "aria-label": "Hotlines" });
    this.el = h(
      "section",
      { class: "pane desk", "data-testid": "desk" },
      h(
        "header",
        { class: "pane-header" },
        h("button", { type: "button", class: "back", "aria-label": "Back to conversations", onclick: back }, "‹ Back"),
        h("h2", { class: "pane-title" }, this.desk ? "Duty desk" : "Schedule"),
      ),
      h(
        "div",
        { class: "desk-body" },
        this.desk ? h("section", null, h("h3", null, "Call requests"), this.requestsEl) : null,
        h("section", null, h("h3", null, this.desk ? "Next 24 hours" : "Your next seven days"), this.scheduleEl),
        this.desk ? h("section", null, h("h3", null, "Calls under way"), this.liveEl) : null,
        h("section", null, h("h3", null, this.desk ? "Ad-hoc calls and readouts" : "Your ad-hoc calls"), this.readoutsEl),
        h("section", null, h("h3", null, this.desk ? "Open commitments" : "Your commitments"), this.commitmentsEl),
        h("section", null, h("h3", null, "Hotlines"), this.hotlinesEl),
        this.desk ? null : h("section", null, h("h3", null, "Requests you made"), this.mineEl),
      ),
    );
    this.reload();
    if (this.desk) {
      this.timer = window.setInterval(() => void this.loadLive(), LIVE_POLL_MS);
      this.watchCalls();
    }
  }

  // watchCalls follows this browser's call: the place lines and the live
  // calls change with it (the server's view of who is on it comes with the
  // next fetch, made at once).
  private watchCalls(): void {
    if (this.closed) return;
    const calls = this.calls();
    if (!calls) {
      // The call line starts after the app: look again shortly.
      window.setTimeout(() => this.watchCalls(), 500);
      return;
    }
    this.stopCalls = calls.onChange((v) => {
      const key = JSON.stringify([v.phase, v.lineUp, v.call?.id, v.call?.state, (v.call?.participants ?? []).map((p) => [p.device, p.state, p.held === true])]);
      if (key === this.callKey) return;
      this.callKey = key;
      this.syncPlaces();
      void this.loadLive();
    });
    this.syncPlaces();
  }

  close(): void {
    this.closed = true;
    this.stopCalls?.();
    if (this.timer !== undefined) window.clearInterval(this.timer);
    if (this.debounce !== undefined) window.clearTimeout(this.debounce);
  }

  // refresh fetches everything again after a short quiet period, never
  // twice at once.
  refresh(): void {
    if (this.closed || this.debounce !== undefined) return;
    this.debounce = window.setTimeout(() => {
      this.debounce = undefined;
      this.reload();
    }, REFRESH_DEBOUNCE_MS);
  }

  private reload(): void {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    void this.load().finally(() => {
      this.loading = false;
      if (this.again && !this.closed) {
        this.again = false;
        this.reload();
      }
    });
  }

  private async load(): Promise<void> {
    // The desk looks at the next 24 hours (and calls begun within the last
    // hour); others at their next seven days.
    const start = new Date();
    if (this.desk) start.setTime(start.getTime() - 3600 * 1000);
    else start.setHours(0, 0, 0, 0);
    const end = new Date(this.desk ? start.getTime() + 25 * 3600 * 1000 : start.getTime() + 7 * 24 * 3600 * 1000);
    await Promise.all([
      this.desk ? this.loadRequests() : this.loadMine(),
      guard("Load the schedule", async () => {
        this.renderSchedule(await this.core.schedule(start.toISOString(), end.toISOString()));
      }),
      this.desk ? this.loadLive() : Promise.resolve(),
      guard("Load readouts", async () => this.renderReadouts(await this.core.readouts())),
      guard("Load commitments", async () => this.renderCommitments(await this.core.commitments(this.desk))),
      guard("Load hotlines", async () => this.renderHotlines(await this.core.hotlines())),
    ]);
  }

  private renderHotlines(hs: Hotline[]): void {
    // Red first.
    hs.sort((a, b) => Number(b.status === "red") - Number(a.status === "red"));
    replace(
      this.hotlinesEl,
      hs.length === 0
        ? h("li", { class: "empty" }, "No hotlines.")
        : hs.map((x) => {
            const ok = (x.tests ?? []).find((t) => t.result === "ok");
            return h(
              "li",
              { class: `desk-item${x.status === "red" ? " urgency-flash" : ""}`, "data-testid": "hotline", "data-id": x.id, "data-status": x.status },
              h(
                "div",
                { class: "desk-line" },
                h("span", { class: `urgency hotline-${x.status}${x.status === "red" ? " urgency-flash" : ""}` }, x.status.toUpperCase()),
                ` ${x.near_user} ⇄ ${x.far_user}, tested every ${x.interval >= 3600 ? `${x.interval / 3600} h` : x.interval >= 60 ? `${x.interval / 60} min` : `${x.interval} s`}`,
              ),
              h(
                "div",
                { class: "desk-sub" },
                x.last_ok ? `Last answered ${fmt(x.last_ok)}${ok?.latency_ms !== undefined ? `, ${ok.latency_ms.toFixed(1)} ms round trip` : ""}` : "Not answered yet",
                x.status === "red" ? ` · red since ${fmt(x.changed)}` : null,
              ),
            );
          }),
    );
  }

  private renderReadouts(rs: Readout[]): void {
    // Missing first, then due, then filed; newest first within each.
    const rank = { missing: 0, due: 1, filed: 2 } as const;
    rs.sort((a, b) => rank[a.status] - rank[b.status] || b.placed_at.localeCompare(a.placed_at));
    replace(
      this.readoutsEl,
      rs.length === 0
        ? h("li", { class: "empty" }, "No ad-hoc calls.")
        : rs.map((r) =>
            h(
              "li",
              { class: `desk-item readout-${r.status}`, "data-testid": "readout", "data-call": r.call, "data-status": r.status },
              h(
                "div",
                { class: "desk-line" },
                h("span", { class: `urgency ${r.status === "missing" ? "urgency-flash" : ""}` }, r.status === "missing" ? "READOUT MISSING" : r.status === "due" ? "READOUT DUE" : r.late ? "FILED LATE" : "FILED"),
                ` ${r.principal} with ${r.others.join(", ")}, ${fmt(r.placed_at)}`,
              ),
              h("div", { class: "desk-sub" }, r.status === "filed" ? `Filed by ${r.filed_by ?? "?"}` : `Due ${fmt(r.due)}`),
              r.text ? h("p", { class: "desk-purpose", "data-testid": "readout-text" }, r.text) : null,
              r.status !== "filed" && (r.principal === this.me.user || this.me.roles.includes("note-taker") || this.desk) ? this.readoutForm(r) : null,
            ),
          ),
    );
  }

  // readoutForm files an ad-hoc call's readout, end-to-end encrypted to the
  // desk.
  private readoutForm(r: Readout): HTMLElement {
    const text = h("textarea", { rows: 2, "data-testid": "readout-input", placeholder: "What was said and agreed (only the duty desk reads it)", "aria-label": "Readout" });
    return h(
      "div",
      { class: "desk-actions" },
      text,
      h(
        "button",
        {
          type: "button",
          class: "primary small",
          "data-testid": "readout-file",
          onclick: async () => {
            if (text.value.trim() === "") {
              text.setAttribute("aria-invalid", "true");
              text.focus();
              return;
            }
            if (await guard("File the readout", () => this.core.fileReadout(r.call, r.principal, text.value))) this.refresh();
          },
        },
        "File the readout",
      ),
    );
  }

  private renderCommitments(cs: Commitment[]): void {
    const open = cs.filter((c) => c.status === "open");
    replace(
      this.commitmentsEl,
      open.length === 0
        ? h("li", { class: "empty" }, "No open commitments.")
        : open.map((c) =>
            h(
              "li",
              { class: `desk-item${c.overdue ? " urgency-flash" : ""}`, "data-testid": "commitment", "data-id": c.id, "data-overdue": String(c.overdue === true) },
              h("div", { class: "desk-line" }, c.overdue ? h("span", { class: "urgency urgency-flash" }, "OVERDUE") : null, ` ${c.owner}, due ${fmt(c.due)}`),
              c.owner === this.me.user || this.desk
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "small",
                      "data-testid": "commitment-done",
                      onclick: async () => {
                        if (await guard("Close the commitment", () => this.core.closeCommitment(c.id, "done"))) this.refresh();
                      },
                    },
                    "Done",
                  )
                : null,
            ),
          ),
    );
  }

  private async loadRequests(): Promise<void> {
    await guard("Load call requests", async () => {
      this.renderRequests(await this.core.requests(JSON.stringify(["pending", "proposed"])));
    });
  }

  private async loadMine(): Promise<void> {
    await guard("Load your requests", async () => {
      const rs = (await this.core.requests("[]")).filter((r) => r.requester === this.me.user);
      replace(
        this.mineEl,
        rs.length === 0
          ? h("li", { class: "empty" }, "None.")
          : rs.map((r) =>
              h(
                "li",
                { class: "desk-item", "data-testid": "my-request", "data-id": r.id, "data-status": r.status },
                h("div", { class: "desk-line" }, this.urgency(r), ` Call with ${r.principal}: `, h("strong", null, r.status)),
                r.scheduled_at ? h("div", null, `At ${fmt(r.scheduled_at)}`) : null,
                (r.notes ?? []).map((n) => h("div", { class: "desk-note" }, `${n.user}: ${n.text}`)),
              ),
            ),
      );
    });
  }

  private async loadLive(): Promise<void> {
    if (this.closed) return;
    await guard("Load calls under way", async () => this.renderLive(await this.core.liveCalls()));
  }

  private urgency(r: CallRequest): HTMLElement {
    return h("span", { class: `urgency urgency-${r.urgency}`, "data-testid": "urgency" }, r.urgency.toUpperCase());
  }

  private renderRequests(rs: CallRequest[]): void {
    if (rs.length === 0) {
      this.cards.clear();
      replace(this.requestsEl, h("li", { class: "empty" }, "No requests awaiting the desk."));
      return;
    }
    // Flash first, then priority, then routine; oldest first within each.
    const rank = { flash: 0, priority: 1, routine: 2 } as const;
    rs.sort((a, b) => rank[a.urgency] - rank[b.urgency] || a.created_at.localeCompare(b.created_at));
    const items: HTMLElement[] = [];
    const seen = new Set<string>();
    for (const r of rs) {
      seen.add(r.id);
      const stamp = `${r.updated_at}|${r.purpose ?? ""}|${(r.notes ?? []).length}`;
      let card = this.cards.get(r.id);
      if (!card || card.stamp !== stamp) {
        card = { stamp, el: this.requestCard(r) };
        this.cards.set(r.id, card);
      }
      items.push(card.el);
    }
    for (const id of [...this.cards.keys()]) if (!seen.has(id)) this.cards.delete(id);
    replace(this.requestsEl, items);
  }

  private requestCard(r: CallRequest): HTMLElement {
    const first = r.windows[0];
    const at = h("input", { type: "datetime-local", "data-testid": "approve-at", "aria-label": "Start", value: first ? localInput(first.start) : "" });
    const minutes = h(
      "select",
      { "data-testid": "approve-minutes", "aria-label": "Length" },
      [15, 20, 30, 45, 60].map((m) => h("option", { value: String(m), selected: m === 30 }, `${m} min`)),
    );
    const note = h("input", { type: "text", "data-testid": "decision-note", placeholder: "Note or reason for the requester", "aria-label": "Note" });
    const decide = async (action: string, body: object) => {
      const done = await guard(`${action[0]!.toUpperCase()}${action.slice(1)} the request`, () =>
        this.core.decide(r.id, action, JSON.stringify({ ...body, note: note.value.trim() || undefined })),
      );
      if (done) this.refresh();
    };
    return h(
      "li",
      { class: `desk-item request urgency-${r.urgency}`, "data-testid": "request", "data-id": r.id, "data-status": r.status, "data-urgency": r.urgency },
      h("div", { class: "desk-line" }, this.urgency(r), " ", h("strong", null, r.requester), " asks for ", h("strong", null, r.principal), r.status === "proposed" ? " — other times proposed" : null),
      r.windows.map((w) => h("div", { class: "desk-when" }, span(w.start, w.end), theirs(w.start, w.end, r.zone))),
      h("p", { class: "desk-purpose", "data-testid": "purpose" }, r.purpose ?? "The purpose has not reached this browser yet."),
      (r.notes ?? []).map((n) => h("div", { class: "desk-note" }, `${n.user}: ${n.text}`)),
      h(
        "div",
        { class: "desk-actions" },
        at,
        minutes,
        h(
          "button",
          {
            type: "button",
            class: "primary small",
            "data-testid": "approve",
            onclick: () => {
              if (at.value === "") return;
              void decide("approve", { at: new Date(at.value).toISOString(), minutes: Number(minutes.value) });
            },
          },
          "Schedule",
        ),
        h(
          "button",
          {
            type: "button",
            class: "small",
            "data-testid": "propose",
            title: "Propose the chosen start and length instead",
            onclick: () => {
              if (at.value === "") return;
              const s = new Date(at.value);
              void decide("propose", { start: s.toISOString(), end: new Date(s.getTime() + Number(minutes.value) * 60000).toISOString() });
            },
          },
          "Propose this time",
        ),
        note,
        h(
          "button",
          {
            type: "button",
            class: "small danger",
            "data-testid": "decline",
            onclick: () => {
              if (note.value.trim() === "") {
                note.focus();
                note.setAttribute("aria-invalid", "true");
                return;
              }
              void decide("decline", {});
            },
          },
          "Decline",
        ),
      ),
    );
  }

  private renderSchedule(rs: CallRequest[]): void {
    this.scheduled.clear();
    this.places.clear();
    for (const r of rs) this.scheduled.set(r.conversation, r);
    replace(
      this.scheduleEl,
      rs.length === 0
        ? h("li", { class: "empty" }, "No calls scheduled.")
        : rs.map((r) => {
            const end = new Date(new Date(r.scheduled_at!).getTime() + (r.duration ?? 0) * 1000).toISOString();
            const principalSide = r.principal === this.me.user;
            return h(
              "li",
              { class: "desk-item", "data-testid": "scheduled", "data-id": r.id },
              h("div", { class: "desk-line" }, h("strong", null, span(r.scheduled_at!, end)), " ", this.urgency(r), ` ${r.principal} with ${r.requester}`),
              r.purpose ? h("p", { class: "desk-purpose" }, r.purpose) : null,
              h("div", { class: "desk-sub", "data-testid": "brief-state" }, briefState(r)),
              this.desk ? this.lineCheckLine(r) : null,
              this.desk ? this.placeLine(r) : null,
              principalSide && r.brief && r.briefing && r.briefing.acked !== r.briefing.version
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "small",
                      "data-testid": "ack-brief",
                      onclick: async () => {
                        if (await guard("Acknowledge the brief", () => this.core.ackBriefing(r.id))) this.refresh();
                      },
                    },
                    "I have read the brief",
                  )
                : null,
            );
          }),
    );
  }

  // lineCheckLine shows a scheduled call's latest line check, and checks
  // the line again on request.
  private lineCheckLine(r: CallRequest): HTMLElement {
    const out = h("span", { class: "desk-sub", "data-testid": "linecheck", "data-status": "none" }, "Line not checked yet.");
    const show = (l: LineCheck | undefined) => {
      if (!l) return;
      out.dataset.status = l.status;
      const red: string[] = [];
      for (const e of l.ends) for (const c of e.checks) if (c.status === "red") red.push(`${e.side} ${c.name}: ${c.reason ?? "?"}`);
      replace(
        out,
        h("span", { class: `urgency ${l.status === "red" ? "urgency-flash" : l.status === "green" ? "hotline-green" : ""}` }, `LINE ${l.status.toUpperCase()}`),
        ` checked ${fmt(l.created_at, undefined, false)}`,
        red.length > 0 ? ` — ${red.join("; ")}` : null,
      );
    };
    void guard("Load line checks", async () => show((await this.core.lineChecks(r.id))[0]));
    return h(
      "div",
      { class: "desk-actions" },
      out,
      h(
        "button",
        {
          type: "button",
          class: "small",
          "data-testid": "check-line",
          onclick: async () => {
            const l = await guard("Check the line", () => this.core.startLineCheck(r.id));
            if (!l) return;
            show(l);
            // The ends answer within seconds; the result comes as a
            // linecheck.update, or by asking again.
            for (let i = 0; i < 30 && !this.closed; i++) {
              await new Promise((res) => window.setTimeout(res, 500));
              const now = (await guard("Load line checks", () => this.core.lineChecks(r.id)))?.find((x) => x.id === l.id);
              show(now);
              if (now && now.status !== "running") break;
            }
          },
        },
        "Check the line",
      ),
    );
  }

  // placeLine places a scheduled call from this browser, and says how it
  // goes.
  private placeLine(r: CallRequest): HTMLElement {
    const el = h("div", { class: "desk-actions desk-place", "data-testid": "place-line", "data-request": r.id });
    this.places.set(r.id, el);
    this.renderPlace(r, el);
    return el;
  }

  private syncPlaces(): void {
    for (const [id, el] of this.places) {
      const r = [...this.scheduled.values()].find((x) => x.id === id);
      if (r) this.renderPlace(r, el);
    }
  }

  private renderPlace(r: CallRequest, el: HTMLElement): void {
    const calls = this.calls();
    const v = calls?.view();
    const step = this.steps.get(r.id);
    const here = v && inCall(v) && v.call?.conversation === r.conversation ? v : undefined;
    let why = "";
    if (!calls) why = "Calls are not available in this browser";
    else if (here) why = "";
    else if (inCall(v)) why = "This browser is in another call";
    else if (!v?.lineUp) why = "Connecting the call line…";
    let status: string | null = null;
    let state = "idle";
    if (step?.running) {
      status = step.running;
      state = "running";
    } else if (here) {
      const ringing = (here.call?.participants ?? []).filter((p) => p.state === "ringing").map((p) => p.user);
      status = here.phase === "active" ? "On the line: see Calls under way" : ringing.length > 0 ? `Ringing ${[...new Set(ringing)].join(", ")}…` : "Placing the call…";
      state = here.phase === "active" ? "active" : "ringing";
    } else if (step?.error) {
      status = step.error.text;
      state = "error";
    }
    el.dataset.state = state;
    if (step?.error && state === "error") el.dataset.code = step.error.code;
    else delete el.dataset.code;
    replace(
      el,
      here
        ? null
        : h(
            "button",
            {
              type: "button",
              class: "primary small",
              "data-testid": "place-call",
              disabled: step?.running !== undefined || why !== "",
              title: why || `Ring ${r.requester} from this browser; connect ${r.principal} once they answer`,
              onclick: () => void this.place(r),
            },
            "Place call",
          ),
      why && !here && !step?.running ? h("span", { class: "desk-sub" }, why) : null,
      status ? h("span", { class: `desk-sub desk-step${state === "error" ? " desk-step-error" : ""}`, "data-testid": "place-status", role: state === "error" ? "alert" : "status" }, status) : null,
    );
  }

  private async place(r: CallRequest): Promise<void> {
    const calls = this.calls();
    if (!calls || this.steps.get(r.id)?.running) return;
    this.steps.set(r.id, { running: `Placing the call: ringing ${r.requester}…` });
    this.syncPlaces();
    try {
      await calls.placeRequest(r.id, r.conversation);
      this.steps.delete(r.id);
    } catch (e) {
      this.steps.set(r.id, { error: stepError(e) });
    }
    this.syncPlaces();
    void this.loadLive();
  }

  // step runs one of the desk's actions on a call, with its buttons
  // disabled and its progress shown until it is done.
  private async step(call: string, running: string, f: () => Promise<unknown>): Promise<void> {
    if (this.steps.get(call)?.running) return;
    this.steps.set(call, { running });
    this.renderLive(this.live);
    try {
      await f();
      this.steps.delete(call);
    } catch (e) {
      this.steps.set(call, { error: stepError(e) });
    }
    this.renderLive(this.live);
    await this.loadLive();
  }

  private renderLive(calls: CallInfo[]): void {
    this.live = calls;
    if (calls.length === 0) {
      this.liveCards.clear();
      replace(this.liveEl, h("li", { class: "empty" }, "No calls under way."));
      return;
    }
    // The calls this browser is in first: those are the desk's to act on.
    const joined = (c: CallInfo) => c.participants.some((p) => p.device === this.me.device && p.state === "joined");
    calls = [...calls.filter(joined), ...calls.filter((c) => !joined(c))];
    const seen = new Set<string>();
    const items: HTMLElement[] = [];
    for (const c of calls) {
      seen.add(c.id);
      const mine = joined(c);
      const step = this.steps.get(c.id);
      const stamp = JSON.stringify([c, mine, step, mine ? this.scheduled.get(c.conversation)?.id : ""]);
      let card = this.liveCards.get(c.id);
      if (!card || card.stamp !== stamp) {
        card = { stamp, el: this.liveCard(c, mine, step) };
        this.liveCards.set(c.id, card);
      }
      items.push(card.el);
    }
    for (const id of [...this.liveCards.keys()]) if (!seen.has(id)) this.liveCards.delete(id);
    for (const id of [...this.steps.keys()]) if (!seen.has(id) && ![...this.scheduled.values()].some((r) => r.id === id)) this.steps.delete(id);
    replace(this.liveEl, items);
  }

  // liveCard is a call ringing or under way; where this browser is in it,
  // with the desk's controls.
  private liveCard(c: CallInfo, mine: boolean, step: Step | undefined): HTMLElement {
    const busy = step?.running !== undefined;
    const r = mine ? this.scheduled.get(c.conversation) : undefined;
    const live = (p: { state: string }) => p.state === "joined" || p.state === "ringing";
    const holdShown = new Set<string>();
    const people = c.participants.map((p) => {
      let hold: HTMLElement | null = null;
      if (mine && p.state === "joined" && p.user !== this.me.user && !holdShown.has(p.user)) {
        holdShown.add(p.user);
        const held = c.participants.some((x) => x.user === p.user && x.state === "joined" && x.held === true);
        hold = h(
          "button",
          {
            type: "button",
            class: "small",
            "data-testid": held ? "resume" : "hold",
            "data-user": p.user,
            disabled: busy,
            onclick: () =>
              void this.step(c.id, held ? `Taking ${p.user} off hold…` : `Putting ${p.user} on hold…`, () => this.core.holdInCall(c.id, p.user, !held)),
          },
          held ? "Resume" : "Hold",
        );
      }
      return h(
        "li",
        { "data-testid": "live-participant", "data-user": p.user, "data-state": p.state, "data-held": String(p.held === true) },
        `${p.user} (${p.role}) — ${p.state}${p.held ? ", on hold" : ""}${p.listening ? ", listening" : ""}${p.preempted ? ", taken out for a flash call" : ""}`,
        hold ? " " : null,
        hold,
      );
    });
    let controls: HTMLElement | null = null;
    if (mine) {
      const principalIn = r ? c.participants.some((p) => p.user === r.principal && live(p)) : true;
      const preempt = r?.urgency === "flash" ? h("input", { type: "checkbox", "data-testid": "preempt" }) : null;
      const conv = h("select", { "data-testid": "transfer-to", "aria-label": "Transfer to", disabled: busy }, h("option", { value: "" }, "Transfer to…"));
      void this.core.conversations().then((cs) => {
        const users = new Set<string>();
        for (const m of cs.find((x) => x.id === c.conversation)?.members ?? []) {
          if (m.user === this.me.user || m.roles.includes("archive") || m.roles.includes("recorder")) continue;
          if (c.participants.some((p) => p.user === m.user && live(p))) continue;
          users.add(m.user);
        }
        for (const u of [...users].sort()) conv.append(h("option", { value: u }, u === r?.principal ? `${u} (principal)` : u));
      }, () => undefined);
      controls = h(
        "div",
        { class: "desk-actions desk-call-actions" },
        r && !principalIn
          ? h(
              "button",
              {
                type: "button",
                class: "primary small",
                "data-testid": "connect",
                disabled: busy,
                title: `Ring ${r.principal} into the call`,
                onclick: () => {
                  const pre = (preempt as HTMLInputElement | null)?.checked === true;
                  void this.step(c.id, pre ? `Ringing ${r.principal}, taking them out of any other call…` : `Ringing ${r.principal}…`, () =>
                    this.core.ringIntoCall(c.id, r.principal, pre),
                  );
                },
              },
              "Connect principal",
            )
          : null,
        r && !principalIn && preempt
          ? h("label", { class: "desk-preempt", title: "A flash call: take the principal out of any routine call they are in" }, preempt, " Preempt")
          : null,
        conv,
        h(
          "button",
          {
            type: "button",
            class: "small",
            "data-testid": "transfer",
            disabled: busy,
            title: "Ring them in, then leave the call",
            onclick: () => {
              const to = conv.value;
              if (to === "") {
                conv.focus();
                conv.setAttribute("aria-invalid", "true");
                return;
              }
              void this.step(c.id, `Handing the call to ${to}…`, async () => {
                const calls = this.calls();
                if (calls?.view().call?.id === c.id) await calls.transfer(to);
                else await this.core.transferCall(c.id, to);
              });
            },
          },
          "Transfer",
        ),
        h(
          "button",
          {
            type: "button",
            class: "small danger",
            "data-testid": "desk-leave",
            disabled: busy,
            title: "Leave the call; the others talk on",
            onclick: () =>
              void this.step(c.id, "Leaving the call…", async () => {
                const calls = this.calls();
                if (calls?.view().call?.id === c.id) await calls.hangup();
                else await this.core.hangup(c.id);
              }),
          },
          "Leave",
        ),
      );
    }
    const status = step?.running ?? step?.error?.text;
    return h(
      "li",
      { class: `desk-item${r?.urgency === "flash" ? " urgency-flash" : ""}`, "data-testid": "live-call", "data-id": c.id, "data-state": c.state, "data-mine": String(mine) },
      h(
        "div",
        { class: "desk-line" },
        levelPill(c.level, "small"),
        ` ${c.state === "ringing" ? "Ringing" : "Talking"} since ${fmt(c.created_at, undefined, false)}`,
        r ? h("span", null, " — ", this.urgency(r), ` ${r.principal} with ${r.requester}`) : null,
        mine ? h("strong", null, " · you are on this call") : null,
      ),
      h("ul", { class: "desk-people" }, people),
      controls,
      status
        ? h(
            "p",
            {
              class: `desk-sub desk-step${step?.error ? " desk-step-error" : ""}`,
              "data-testid": "desk-call-status",
              "data-state": step?.running ? "running" : "error",
              "data-code": step?.error?.code ?? "",
              role: step?.error ? "alert" : "status",
            },
            status,
          )
        : null,
    );
  }
}

// RequestForm asks the duty desk for a call with a principal the policy
// lets this user reach only by request.
export class RequestForm {
  readonly el: HTMLElement;

  constructor(core: Core, principal: string, back: () => void, done: (r: CallRequest) => void) {
    const start = new Date(Date.now() + 60 * 60 * 1000);
    start.setMinutes(0, 0, 0);
    const from = h("input", { type: "datetime-local", required: true, "data-testid": "request-start", value: localInput(start.toISOString()) });
    const to = h("input", { type: "datetime-local", required: true, "data-testid": "request-end", value: localInput(new Date(start.getTime() + 2 * 3600000).toISOString()) });
    const urgency = h(
      "select",
      { "data-testid": "request-urgency" },
      h("option", { value: "routine" }, "Routine"),
      h("option", { value: "priority" }, "Priority"),
      h("option", { value: "flash" }, "Flash — now"),
    );
    const purpose = h("textarea", { required: true, rows: 3, "data-testid": "request-purpose", placeholder: "What the call is about (only the duty desk and the principal read it)" });
    const form = h(
      "form",
      {
        class: "request-form",
        "data-testid": "request-form",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          if (purpose.value.trim() === "") return;
          const r = await guard("Request a call", () =>
            core.requestCall(
              JSON.stringify({
                principal,
                urgency: urgency.value,
                start: new Date(from.value).toISOString(),
                end: new Date(to.value).toISOString(),
                zone: HERE,
                purpose: purpose.value,
              }),
            ),
          );
          if (r) done(r);
        },
      },
      h("label", null, "Urgency ", urgency),
      h("label", null, "Available from ", from),
      h("label", null, "until ", to, ` (${HERE})`),
      h("label", { class: "wide" }, "Purpose", purpose),
      h("button", { type: "submit", class: "primary", "data-testid": "request-send" }, "Send to the duty desk"),
    );
    this.el = h(
      "section",
      { class: "pane desk" },
      h(
        "header",
        { class: "pane-header" },
        h("button", { type: "button", class: "back", "aria-label": "Back to conversations", onclick: back }, "‹ Back"),
        h("h2", { class: "pane-title" }, `Request a call with ${principal}`),
      ),
      h(
        "div",
        { class: "desk-body" },
        h("p", { class: "desk-sub" }, "The contact policy lets you reach this person only through the duty desk. The desk sees your request at once and answers here."),
        form,
      ),
    );
  }
}
