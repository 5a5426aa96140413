// Identity verification: the safety numbers this user compares with each
// other member of a conversation, in person or by scanning a QR code, and
// the warning when someone's keys changed since they were compared.
//
// The core computes the numbers from the device keys in each
// conversation's group and remembers which were compared; the views here
// only show what it says. VerificationStore keeps the latest answer per
// conversation for the banner, the call screens and the dialog.

import type { Core, Verification } from "../core";
import { h, replace } from "../dom";
import { scanQR } from "./scan";
import { describe, report } from "./errors";

// VerificationStore holds core.verifications per conversation: fetched on
// request, never twice at once for the same conversation, and again if
// asked while a fetch ran, so the last answer is never older than the last
// request.
export class VerificationStore {
  private readonly cache = new Map<string, Verification[]>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly reported = new Map<string, string>(); // conversation → the error last shown
  private readonly listeners = new Set<(conversation: string) => void>();

  constructor(private readonly core: Core) {}

  // get is the latest answer for conversation, if there is one.
  get(conversation: string): Verification[] | undefined {
    return this.cache.get(conversation);
  }

  // loading says a fetch for conversation is under way.
  loading(conversation: string): boolean {
    return this.running.has(conversation);
  }

  // ensure fetches conversation's verifications unless known or coming.
  ensure(conversation: string): void {
    if (!this.cache.has(conversation) && !this.running.has(conversation)) void this.refresh(conversation);
  }

  // forget drops what is known of conversation, so the next view fetches
  // it afresh: for conversations nobody shows while their group changes.
  forget(conversation: string): void {
    if (!this.running.has(conversation)) this.cache.delete(conversation);
    else this.again.add(conversation); // the answer under way may predate the change
  }

  // refresh fetches conversation's verifications now, or once more after
  // the fetch under way. It never rejects: failures go to the error bar.
  refresh(conversation: string): Promise<void> {
    const run = this.running.get(conversation);
    if (run) {
      this.again.add(conversation);
      return run;
    }
    const p = (async () => {
      try {
        do {
          this.again.delete(conversation);
          await this.load(conversation);
        } while (this.again.has(conversation));
      } finally {
        this.running.delete(conversation);
      }
    })();
    this.running.set(conversation, p);
    return p;
  }

  // mark records that this user compared number with user, then fetches
  // again every known conversation user is in: a comparison is of a user,
  // not of one conversation. It rejects if the core refuses.
  async mark(conversation: string, user: string, number: string): Promise<void> {
    await this.core.markVerified(conversation, user, number);
    const others = [...this.cache.entries()]
      .filter(([id, vs]) => id !== conversation && vs.some((v) => v.user === user))
      .map(([id]) => id);
    await Promise.all([this.refresh(conversation), ...others.map((id) => this.refresh(id))]);
  }

  // onChange calls fn with a conversation's id whenever what is known of
  // it changed; the returned function stops that.
  onChange(fn: (conversation: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private async load(conversation: string): Promise<void> {
    let vs: Verification[];
    try {
      vs = await this.core.verifications(conversation);
    } catch (e) {
      // Each reason once per conversation, not at every refresh.
      const err = describe(e);
      const key = `${err.code}:${err.message}`;
      if (this.reported.get(conversation) !== key) {
        this.reported.set(conversation, key);
        report(e, "Check identities");
      }
      return;
    }
    this.reported.delete(conversation);
    const before = this.cache.get(conversation);
    this.cache.set(conversation, vs);
    if (before && JSON.stringify(before) === JSON.stringify(vs)) return;
    for (const fn of [...this.listeners]) {
      try {
        fn(conversation);
      } catch (e) {
        report(e, "Show identities");
      }
    }
  }
}

// Summary is what the banner and the call panel say of a conversation's
// verifications.
export interface Summary {
  known: boolean; // an answer arrived
  total: number; // other users
  verified: number;
  all: boolean; // at least one other user, and every one verified
  changed: string[]; // users whose keys changed since they were compared
}

export function summarize(vs: readonly Verification[] | undefined): Summary {
  const list = vs ?? [];
  const verified = list.filter((v) => v.verified).length;
  return {
    known: vs !== undefined,
    total: list.length,
    verified,
    all: list.length > 0 && verified === list.length,
    changed: list.filter((v) => v.changed === true).map((v) => v.user),
  };
}

// identitiesText is the banner's words: "Identities verified",
// "2 of 3 identities verified", "Identities not verified".
export function identitiesText(s: Summary): string {
  if (s.known && s.total === 0) return "No one else to verify";
  if (s.all) return "Identities verified";
  if (s.verified > 0) return `${s.verified} of ${s.total} identities verified`;
  return "Identities not verified";
}

// comparedText is the call panel's words for the same state.
export function comparedText(s: Summary): string {
  if (!s.known) return "Safety numbers: checking…";
  if (s.total === 0) return "No one else to compare with";
  if (s.all) return s.total === 1 ? "Safety number compared" : "Safety numbers compared";
  if (s.verified > 0) return `${s.verified} of ${s.total} safety numbers compared`;
  return s.total === 1 ? "Safety number not compared" : "Safety numbers not compared";
}

// names joins users as a sentence does: "a", "a and b", "a, b and c".
export function names(users: readonly string[]): string {
  if (users.length <= 1) return users[0] ?? "";
  return `${users.slice(0, -1).join(", ")} and ${users[users.length - 1]}`;
}

export function keyChangedText(users: readonly string[]): string {
  return `The keys of ${names(users)} changed since you verified them: a new or replaced device. Compare safety numbers again before you rely on this conversation.`;
}

// KeyChangedWarning is the red alert shown while someone's keys changed
// since they were compared. It is one element, updated in place: an alert
// re-inserted at every refresh would be announced again and again.
export class KeyChangedWarning {
  readonly el: HTMLElement;
  private readonly text: HTMLElement;
  private shown = "";

  // compare, if given, adds a button that opens the verification dialog.
  constructor(testid: string, compare?: () => void) {
    this.text = h("span", { class: "key-changed-text" });
    this.el = h(
      "div",
      { class: "key-changed", "data-testid": testid, role: "alert", hidden: true },
      warningIcon(),
      this.text,
      compare
        ? h("button", { type: "button", class: "key-changed-compare", "data-testid": `${testid}-compare`, onclick: () => compare() }, "Compare safety numbers")
        : null,
    );
  }

  set(users: readonly string[]): void {
    const key = users.join("\n");
    if (key === this.shown) return;
    this.shown = key;
    this.el.hidden = users.length === 0;
    this.el.dataset.users = users.join(" ");
    this.text.textContent = users.length > 0 ? keyChangedText(users) : "";
  }
}

// warningIcon is a triangle with an exclamation mark, drawn inline.
export function warningIcon(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "22");
  svg.setAttribute("height", "22");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon warn-icon");
  const tri = document.createElementNS(ns, "path");
  tri.setAttribute("d", "M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z");
  const bar = document.createElementNS(ns, "path");
  bar.setAttribute("d", "M12 9v4M12 17h.01");
  svg.append(tri, bar);
  return svg;
}

const QUIET_ZONE = 4; // modules of light border every QR reader expects
const QR_TARGET_PX = 232;

// qrSVG draws a QR code's modules (rows[y][x] === "1" is dark) as one
// path, dark on light whatever the colour scheme, with its quiet zone.
export function qrSVG(rows: readonly string[], label: string): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const n = rows.length + 2 * QUIET_ZONE;
  const px = n * Math.max(2, Math.floor(QR_TARGET_PX / n)); // whole pixels per module
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${n} ${n}`);
  svg.setAttribute("width", String(px));
  svg.setAttribute("height", String(px));
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("class", "safety-qr");
  svg.setAttribute("data-testid", "safety-qr");
  const title = document.createElementNS(ns, "title");
  title.textContent = label;
  const bg = document.createElementNS(ns, "rect");
  bg.setAttribute("width", String(n));
  bg.setAttribute("height", String(n));
  bg.setAttribute("fill", "#ffffff");
  // One run of dark modules per subpath.
  let d = "";
  rows.forEach((row, y) => {
    for (let x = 0; x < row.length; ) {
      if (row[x] !== "1") {
        x++;
        continue;
      }
      let end = x;
      while (row[end] === "1") end++;
      d += `M${x + QUIET_ZONE} ${y + QUIET_ZONE}h${end - x}v1h${x - end}z`;
      x = end;
    }
  });
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000000");
  svg.append(title, bg, path);
  return svg;
}

// safetyGrid shows the 60 digits as 12 groups of 5 in 4 columns and 3
// rows; its text is the number as the core gave it.
function safetyGrid(number: string, user: string): HTMLElement {
  const groups = number.split(/\s+/).filter((g) => g !== "");
  const children: (HTMLElement | string)[] = [];
  groups.forEach((g, i) => {
    if (i > 0) children.push(" "); // not rendered in the grid; keeps the text readable
    children.push(h("span", { class: "safety-group" }, g));
  });
  return h(
    "div",
    { class: "safety-number", "data-testid": "safety-number", "data-number": number, role: "group", "aria-label": `Safety number with ${user}` },
    ...children,
  );
}

export interface VerifyDialogContext {
  core: Core;
  store: VerificationStore;
  conversation: string;
  title: string; // the conversation's title
}

// openVerifyDialog shows, for each other user of the conversation, the
// safety number to compare and its QR code, and records a match. Escape
// or Close closes it; focus returns where it was.
export function openVerifyDialog(ctx: VerifyDialogContext): void {
  document.querySelector<HTMLDialogElement>('dialog[data-testid="verify-dialog"]')?.close();
  const headingId = "verify-heading";
  const body = h("div", { class: "verify-users" }, h("p", { class: "muted", role: "status" }, "Loading safety numbers…"));
  const close = h("button", { type: "button", class: "dialog-close", "data-testid": "verify-close" }, "Close");
  const dialog = h(
    "dialog",
    { class: "dialog verify-dialog", "data-testid": "verify-dialog", "data-conversation": ctx.conversation, "aria-labelledby": headingId },
    h(
      "header",
      { class: "dialog-header" },
      h("h2", { id: headingId }, "Verify identities"),
      close,
    ),
    h("p", { class: "dialog-sub" }, "In ", h("strong", null, ctx.title)),
    h(
      "p",
      { class: "muted" },
      "A safety number is made from both your devices' keys. If it is the same on both screens, nobody — not even the server — stands between you.",
    ),
    body,
  );
  const sections = new Map<string, { key: string; el: HTMLElement }>();
  const qrs = new Map<string, SVGSVGElement>(); // user|number → drawn code

  const render = (): void => {
    const vs = ctx.store.get(ctx.conversation);
    if (!vs) {
      if (!ctx.store.loading(ctx.conversation)) {
        replace(body, h("p", { class: "muted", role: "status" }, "The safety numbers could not be loaded; see the error above."));
      }
      return;
    }
    if (vs.length === 0) {
      sections.clear();
      replace(body, h("p", { class: "muted", "data-testid": "verify-empty" }, "There is no one else in this conversation to verify."));
      return;
    }
    // Sections stay in place when unchanged, so focus stays on them.
    const keep = new Set<string>();
    const els: HTMLElement[] = [];
    for (const v of vs) {
      const key = JSON.stringify([v.safety_number, v.verified, v.changed === true]);
      let s = sections.get(v.user);
      if (!s || s.key !== key) {
        const hadFocus = s?.el.contains(document.activeElement) === true;
        s = { key, el: section(v) };
        sections.set(v.user, s);
        if (hadFocus) window.setTimeout(() => s!.el.querySelector<HTMLElement>(".verify-name")?.focus(), 0);
      }
      keep.add(v.user);
      els.push(s.el);
    }
    for (const u of [...sections.keys()]) if (!keep.has(u)) sections.delete(u);
    const same = els.length === body.children.length && els.every((el, i) => body.children[i] === el);
    if (!same) {
      // Insert in order without detaching sections that stay.
      for (const child of [...body.children]) if (!els.includes(child as HTMLElement)) child.remove();
      els.forEach((el, i) => {
        if (body.children[i] !== el) body.insertBefore(el, body.children[i] ?? null);
      });
    }
  };

  const section = (v: Verification): HTMLElement => {
    const changed = v.changed === true;
    const state = v.verified ? "verified" : changed ? "changed" : "unverified";
    const qrHost = h("div", { class: "safety-qr-host" });
    const qrKey = `${v.user}|${v.safety_number}`;
    const drawn = qrs.get(qrKey);
    if (drawn) {
      qrHost.append(drawn);
    } else {
      qrHost.append(h("span", { class: "muted" }, "Drawing the code…"));
      ctx.core.safetyQR(v.user, v.safety_number).then(
        (q) => {
          const svg = qrSVG(q.rows, `QR code of your safety number with ${v.user}`);
          qrs.set(qrKey, svg);
          replace(qrHost, svg);
        },
        (e: unknown) => {
          replace(qrHost, h("span", { class: "muted" }, "The code could not be drawn; compare the numbers."));
          report(e, `QR code for ${v.user}`);
        },
      );
    }
    const note = h("p", { class: "verify-note", role: "status", "aria-live": "polite" });
    const mark = v.verified
      ? null
      : h(
          "button",
          {
            type: "button",
            class: "primary",
            "data-testid": "mark-verified",
            "data-user": v.user,
            onclick: async (ev: MouseEvent) => {
              const b = ev.currentTarget as HTMLButtonElement;
              b.disabled = true;
              note.textContent = "Recording…";
              try {
                await ctx.store.mark(ctx.conversation, v.user, v.safety_number);
                note.textContent = "";
              } catch (e) {
                note.textContent = `Not marked: ${describe(e).message}`;
                report(e, `Mark ${v.user} as verified`);
                b.disabled = false;
              }
            },
          },
          "They match — mark as verified",
        );
    // Or scan their code: the core checks it against this device's number.
    const scanHost = h("div", { class: "scan-host" });
    let scanning: AbortController | undefined;
    const scan = h(
      "button",
      {
        type: "button",
        "data-testid": "scan-qr",
        "data-user": v.user,
        onclick: async (ev: MouseEvent) => {
          const b = ev.currentTarget as HTMLButtonElement;
          if (scanning) {
            scanning.abort();
            return;
          }
          scanning = new AbortController();
          b.textContent = "Stop scanning";
          note.textContent = `Point the camera at ${v.user}'s code.`;
          try {
            const text = await scanQR(scanHost, scanning.signal);
            if (text === undefined) {
              note.textContent = "No code was read.";
              return;
            }
            await ctx.core.verifyScanned(ctx.conversation, text);
            note.textContent = `Verified by scanning ${v.user}'s code.`;
            await ctx.store.refresh(ctx.conversation);
          } catch (e) {
            const d = describe(e);
            note.textContent = `Not verified: ${d.message}`;
            note.dataset.mismatch = "true";
            report(e, `Scan ${v.user}'s code`);
          } finally {
            scanning = undefined;
            b.textContent = "Scan their code";
          }
        },
      },
      "Scan their code",
    );
    return h(
      "section",
      {
        class: `verify-user state-${state}`,
        "data-testid": "verify-user",
        "data-user": v.user,
        "data-verified": String(v.verified),
        "data-changed": String(changed),
        "aria-label": v.user,
      },
      h(
        "div",
        { class: "verify-head" },
        h("h3", { class: "verify-name", tabindex: -1 }, v.user),
        h(
          "span",
          { class: `verify-status ${state}`, "data-testid": "verify-status", "data-state": state },
          v.verified ? "✓ Verified" : changed ? "⚠ CHANGED since you verified" : "Not verified",
        ),
      ),
      changed
        ? h(
            "p",
            { class: "verify-changed" },
            `${v.user}'s keys changed since you compared: a new or replaced device. Compare the new number before you mark it.`,
          )
        : null,
      h(
        "div",
        { class: "verify-body" },
        safetyGrid(v.safety_number, v.user),
        qrHost,
      ),
      h(
        "p",
        { class: "verify-how" },
        `Compare these numbers with ${v.user} in person or over a trusted call, or let them scan this code.`,
      ),
      h("div", { class: "verify-actions" }, mark, v.verified ? null : scan, note),
      scanHost,
    );
  };

  const stop = ctx.store.onChange((id) => {
    if (id === ctx.conversation) render();
  });
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    stop();
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  if (ctx.store.get(ctx.conversation)) render();
  void ctx.store.refresh(ctx.conversation).then(render);
}
