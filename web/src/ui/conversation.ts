// The conversation pane: header, the classification banner, the messages
// and the composer.

import type { Conversation, Core, Me, Message } from "../core";
import { h, replace } from "../dom";
import { phoneIcon } from "./callpanel";
import { report } from "./errors";
import { KeyChangedWarning, identitiesText, openVerifyDialog, summarize, type VerificationStore } from "./verify";
import {
  RECORD_ROLES,
  clock,
  conversationTitle,
  day,
  fullTime,
  level,
  levelLabel,
  list,
  onRecord,
  parseTime,
  participants,
  size,
  type Participant,
} from "./format";

export interface PaneContext {
  core: Core;
  me: Me;
  // back returns to the list (phone layout).
  back(): void;
  // sent tells the app that this device changed the conversation.
  sent(conversation: string): void;
  // callable says whether a call can be placed now, and if not, why not.
  callable(): { ok: boolean; why: string };
  // place places a call in the conversation.
  place(conversation: string): Promise<void>;
  // verifications holds what the core says of the members' identities.
  verifications: VerificationStore;
}

const NEAR_BOTTOM_PX = 80;

export class ConversationPane {
  readonly el: HTMLElement;
  readonly id: string;
  private conv: Conversation;
  private readonly header: HTMLElement;
  private readonly banner: HTMLElement;
  private readonly bannerTop: HTMLElement;
  private readonly bannerMarks: HTMLElement;
  private readonly verifiedButton: HTMLButtonElement;
  private readonly keyChanged: KeyChangedWarning;
  private readonly participantList: HTMLElement;
  private readonly stopVerifications: () => void;
  private readonly notice: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly compose: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly attachButton: HTMLButtonElement;
  private readonly fileInput: HTMLInputElement;
  private readonly progress: HTMLElement;
  private readonly callButton: HTMLButtonElement;
  private placing = false;
  private rendered: number[] = []; // seqs in the list, in order
  private lastDay = "";
  private busy = false;
  private toEnd = true; // scroll to the newest message on the next render

  constructor(
    private readonly ctx: PaneContext,
    conv: Conversation,
    draft: string,
  ) {
    this.id = conv.id;
    this.conv = conv;
    this.header = h("header", { class: "pane-header" });
    // The banner's parts stay in place across re-renders: the verified
    // button keeps focus, and the key-changed alert is not announced anew
    // at every refresh.
    this.bannerMarks = h("span", { class: "banner-marks" });
    this.verifiedButton = h(
      "button",
      {
        type: "button",
        class: "verified",
        "data-testid": "verified",
        "data-all": "false",
        "aria-haspopup": "dialog",
        "aria-busy": "true",
        onclick: () => this.openVerify(),
      },
      "Identities not verified",
    );
    this.bannerTop = h("div", { class: "banner-top" }, this.bannerMarks, this.verifiedButton);
    this.keyChanged = new KeyChangedWarning("key-changed", () => this.openVerify());
    this.participantList = h("ul", { class: "participants", "data-testid": "participants", "aria-label": "Participants" });
    this.banner = h(
      "section",
      { class: "banner", "data-testid": "banner", "aria-label": "Classification and participants" },
      this.bannerTop,
      this.keyChanged.el,
      this.participantList,
    );
    this.notice = h("div", { class: "notice", hidden: true });
    this.list = h("ol", { class: "messages", "data-testid": "messages", "aria-label": "Messages", role: "log" });
    replace(this.list, h("li", { class: "empty" }, "Loading messages…"));

    this.compose = h("textarea", {
      class: "compose",
      "data-testid": "compose",
      rows: 1,
      "aria-label": "Message",
      onkeydown: (ev: KeyboardEvent) => {
        if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          void this.send();
        }
      },
      oninput: () => this.grow(),
    });
    this.compose.value = draft;
    this.sendButton = h("button", { type: "submit", class: "primary send", "data-testid": "send" }, "Send");
    this.fileInput = h("input", {
      type: "file",
      hidden: true,
      "data-testid": "attach-input",
      onchange: () => void this.sendFiles(),
    });
    this.attachButton = h(
      "button",
      { type: "button", class: "attach", "data-testid": "attach", "aria-label": "Attach a file", title: "Attach a file", onclick: () => this.fileInput.click() },
      paperclip(),
      h("span", { class: "attach-label" }, "Attach"),
    );
    this.callButton = h(
      "button",
      { type: "button", class: "call", "data-testid": "call", disabled: true, onclick: () => void this.call() },
      phoneIcon(),
      "Call",
    );
    this.progress = h("div", { class: "progress", role: "status", "aria-live": "polite", "data-testid": "sending" });
    const composer = h(
      "form",
      {
        class: "composer",
        onsubmit: (ev: SubmitEvent) => {
          ev.preventDefault();
          void this.send();
        },
      },
      this.progress,
      h("div", { class: "composer-row" }, this.attachButton, this.fileInput, this.compose, this.sendButton),
    );

    this.el = h(
      "section",
      { class: "pane", "data-testid": "conversation-pane", "data-id": conv.id },
      this.header,
      this.banner,
      this.notice,
      this.list,
      composer,
    );
    this.setConversation(conv);
    this.stopVerifications = ctx.verifications.onChange((id) => {
      if (id === this.id) this.renderVerification();
    });
    this.renderVerification();
    void ctx.verifications.refresh(conv.id).then(() => this.renderVerification());
  }

  // close stops the pane following the core; the app calls it when it
  // shows something else.
  close(): void {
    this.stopVerifications();
  }

  // refreshVerifications asks the core again who is verified (the group
  // changed).
  refreshVerifications(): void {
    void this.ctx.verifications.refresh(this.id);
  }

  get draft(): string {
    return this.compose.value;
  }

  // followEnd makes the next render scroll to the newest message.
  followEnd(): void {
    this.toEnd = true;
  }

  focus(): void {
    this.compose.focus();
  }

  // setConversation re-renders everything that depends on the
  // conversation's state (title, level, members), not the messages.
  setConversation(conv: Conversation): void {
    this.conv = conv;
    const title = conversationTitle(conv, this.ctx.me);
    replace(
      this.header,
      h("button", { type: "button", class: "back", "data-testid": "back", "aria-label": "Back to conversations", onclick: () => this.ctx.back() }, "‹ Back"),
      h("h2", { class: "pane-title", "data-testid": "title", title }, title),
      this.callButton,
    );
    this.renderBanner();
    const problems: string[] = [];
    if (conv.removed) problems.push("You are no longer a member of this conversation. You can read its history but not send.");
    if (conv.broken) problems.push(`This conversation has a problem: ${conv.broken}`);
    replace(this.notice, problems.map((p) => h("p", null, p)));
    this.notice.hidden = problems.length === 0;
    this.notice.dataset.testid = conv.removed ? "removed" : "broken";
    this.compose.placeholder = conv.removed ? "You cannot send here" : `Message at ${levelLabel(conv.clearance)}`;
    this.syncControls();
  }

  private renderBanner(): void {
    const c = this.conv;
    const lvl = level(c.clearance);
    this.banner.dataset.level = lvl;
    this.banner.dataset.clearance = c.clearance;
    const people = participants(c.members, this.ctx.me);
    const recorded = people.filter((p) => onRecord(p.roles).length > 0);

    this.bannerTop.className = `banner-top level-${lvl}`;
    replace(
      this.bannerMarks,
      h("span", { class: "level", "data-testid": "level" }, levelLabel(c.clearance)),
      c.compartments.length > 0
        ? h("span", { class: "compartments", "data-testid": "compartments" }, c.compartments.map((x) => x.toUpperCase()).join(" / "))
        : null,
    );
    replace(
      this.participantList,
      // Whoever is on the record comes first and stands out: nobody
      // takes notes, archives or records unseen.
      recorded.length > 0 || c.archive_required ? h("li", { class: "on-record-label" }, "On the record:") : null,
      recorded.map((p) => this.participant(p, true)),
      c.archive_required && !recorded.some((p) => p.roles.includes("archive"))
        ? h("li", { class: "participant recorded warn", "data-testid": "archive-missing" }, h("strong", null, "Archive required"), " but not a member yet")
        : null,
      recorded.length > 0 || c.archive_required
        ? [h("li", { class: "break", "aria-hidden": "true" }), h("li", { class: "on-record-label" }, "With:")]
        : null,
      people.filter((p) => !recorded.includes(p)).map((p) => this.participant(p, false)),
    );
  }

  // renderVerification shows whether the safety numbers with everyone
  // else were compared, and warns while someone's keys changed since.
  private renderVerification(): void {
    const vs = this.ctx.verifications.get(this.id);
    const s = summarize(vs);
    const b = this.verifiedButton;
    const text = identitiesText(s);
    b.dataset.all = String(s.all);
    b.dataset.verified = String(s.verified);
    b.dataset.total = String(s.total);
    b.dataset.changed = String(s.changed.length > 0);
    b.classList.toggle("ok", s.all);
    b.classList.toggle("changed", s.changed.length > 0);
    if (s.known) b.removeAttribute("aria-busy");
    else b.setAttribute("aria-busy", "true");
    // The ✓ or ⚠ before the words is the stylesheet's.
    if (b.textContent !== text) b.textContent = text;
    b.title = s.known
      ? s.total === 0
        ? "There is no one else in this conversation"
        : "Compare safety numbers with the other members"
      : "Checking the members' identities…";
    this.keyChanged.set(s.changed);
  }

  private openVerify(): void {
    openVerifyDialog({
      core: this.ctx.core,
      store: this.ctx.verifications,
      conversation: this.id,
      title: conversationTitle(this.conv, this.ctx.me),
    });
  }

  private participant(p: Participant, recorded: boolean): HTMLElement {
    const name = p.self ? `${p.user} (you)` : p.user;
    const title = `${p.user}, ${p.org}, clearance ${levelLabel(p.clearance)}, ${p.devices} ${p.devices === 1 ? "device" : "devices"}`;
    const attrs = {
      class: `participant${recorded ? " recorded" : ""}`,
      "data-testid": "participant",
      "data-user": p.user,
      "data-roles": p.roles.join(" "),
      title,
    };
    if (recorded) {
      const record = onRecord(p.roles).map((r) => RECORD_ROLES.get(r) ?? r);
      const other = p.roles.filter((r) => !RECORD_ROLES.has(r));
      return h(
        "li",
        attrs,
        h("strong", { class: "record-role" }, record.join(", ")),
        " ",
        h("span", { class: "participant-user" }, name),
        other.length > 0 ? h("span", { class: "participant-roles" }, list(other)) : null,
      );
    }
    return h(
      "li",
      attrs,
      h("span", { class: "participant-user" }, name),
      p.roles.length > 0 ? h("span", { class: "participant-roles" }, list(p.roles)) : null,
    );
  }

  // setMessages shows the conversation's messages. Messages are immutable
  // and numbered, so new ones at the end are appended; anything else
  // rebuilds the list.
  setMessages(msgs: readonly Message[]): void {
    const sorted = [...msgs].sort((a, b) => a.seq - b.seq);
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < NEAR_BOTTOM_PX;
    const appendOnly =
      this.rendered.length > 0 &&
      this.rendered.length <= sorted.length &&
      this.rendered.every((seq, i) => sorted[i]?.seq === seq);
    if (!appendOnly) {
      this.list.replaceChildren();
      this.rendered = [];
      this.lastDay = "";
      if (sorted.length === 0) {
        this.list.append(h("li", { class: "empty" }, "No messages yet."));
        this.toEnd = true;
        return;
      }
    }
    for (const m of sorted.slice(this.rendered.length)) {
      const d = parseTime(m.time);
      const dayText = d ? day(d) : "";
      if (dayText !== "" && dayText !== this.lastDay) {
        this.list.append(h("li", { class: "day", role: "separator" }, dayText));
        this.lastDay = dayText;
      }
      this.list.append(this.message(m, d));
      this.rendered.push(m.seq);
    }
    if (this.toEnd || nearBottom || !appendOnly) this.list.scrollTop = this.list.scrollHeight;
    this.toEnd = false;
  }

  private message(m: Message, d: Date | undefined): HTMLElement {
    const own = m.own === true;
    const sender = own ? "You" : m.user;
    const time = h("time", { class: "time", datetime: m.time, title: d ? fullTime(d) : m.time }, d ? clock(d) : m.time);
    const attrs = {
      "data-testid": "message",
      "data-seq": m.seq,
      "data-own": String(own),
      "data-kind": m.kind,
    };
    if (m.kind === "title" || m.kind === "members") {
      return h("li", { ...attrs, class: "message system" }, h("span", { class: "system-text" }, systemText(m, sender)), " ", time);
    }
    let body: HTMLElement;
    if (m.kind === "attachment" && m.attachment) {
      const a = m.attachment;
      const button: HTMLButtonElement = h(
        "button",
        {
          type: "button",
          class: "attachment",
          "data-testid": "attachment",
          title: `Download ${a.name} (${a.media_type})`,
          onclick: () => void this.download(m.seq, a.name, button),
        },
        h("span", { class: "attachment-name" }, a.name),
        h("span", { class: "attachment-size" }, size(a.size)),
      );
      body = button;
    } else {
      body = h("div", { class: "text", "data-testid": "text" }, m.text ?? "");
    }
    return h(
      "li",
      { ...attrs, class: `message${own ? " own" : ""}` },
      h("div", { class: "message-meta" }, h("span", { class: "sender", title: `${m.user}, device ${m.device}` }, sender), " ", time),
      body,
    );
  }

  private async download(seq: number, name: string, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const f = await this.ctx.core.download(this.id, seq);
      // Saved, never shown: an octet-stream Blob cannot render as a page
      // of this origin, whatever type the sender claimed.
      const blob = new Blob([new Uint8Array(f.data)], { type: "application/octet-stream" });
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: f.name || name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      report(e, `Download ${name}`);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  private async send(): Promise<void> {
    const text = this.compose.value;
    if (this.busy || this.conv.removed || text.trim() === "") return;
    this.setBusy("Sending…");
    try {
      await this.ctx.core.send(this.id, text);
      this.compose.value = "";
      this.grow();
      this.ctx.sent(this.id);
    } catch (e) {
      report(e, "Send");
    } finally {
      this.setBusy(null);
      this.compose.focus();
    }
  }

  private async sendFiles(): Promise<void> {
    const files = [...(this.fileInput.files ?? [])];
    this.fileInput.value = "";
    if (files.length === 0 || this.busy || this.conv.removed) return;
    try {
      for (const f of files) {
        this.setBusy(`Encrypting and sending ${f.name} (${size(f.size)})…`);
        try {
          const data = new Uint8Array(await f.arrayBuffer());
          await this.ctx.core.sendFile(this.id, f.name, f.type || "application/octet-stream", data);
          this.ctx.sent(this.id);
        } catch (e) {
          report(e, `Send ${f.name}`);
          return;
        }
      }
    } finally {
      this.setBusy(null);
    }
  }

  private setBusy(what: string | null): void {
    this.busy = what !== null;
    this.progress.textContent = what ?? "";
    this.compose.readOnly = this.busy; // keeps the text as sent until we know
    this.el.toggleAttribute("data-sending", this.busy);
    this.syncControls();
  }

  private syncControls(): void {
    const off = this.busy || this.conv.removed === true;
    this.sendButton.disabled = off;
    this.attachButton.disabled = off;
    this.compose.disabled = this.conv.removed === true;
    this.syncCall();
  }

  // syncCall enables the call button when a call can be placed here.
  syncCall(): void {
    const st = this.ctx.callable();
    const ok = st.ok && !this.placing && this.conv.removed !== true;
    this.callButton.disabled = !ok;
    this.callButton.title = this.conv.removed ? "You are no longer a member of this conversation" : this.placing ? "Calling…" : st.ok ? `Call everyone in this conversation (${levelLabel(this.conv.clearance)})` : st.why;
  }

  private async call(): Promise<void> {
    if (this.placing || !this.ctx.callable().ok) return;
    this.placing = true;
    this.syncCall();
    try {
      await this.ctx.place(this.id);
    } catch (e) {
      report(e, "Call");
    } finally {
      this.placing = false;
      this.syncCall();
    }
  }

  private grow(): void {
    this.compose.style.height = "auto";
    this.compose.style.height = `${this.compose.scrollHeight}px`;
  }
}

function systemText(m: Message, sender: string): string {
  if (m.kind === "title") {
    return m.text ? `${sender} named the conversation “${m.text}”` : `${sender} removed the title`;
  }
  const parts: string[] = [];
  if (m.added && m.added.length > 0) parts.push(`added ${list(m.added)}`);
  if (m.removed && m.removed.length > 0) parts.push(`removed ${list(m.removed)}`);
  return parts.length > 0 ? `${sender} ${parts.join(" and ")}` : `${sender} changed the members`;
}

// paperclip is the attach button's icon, drawn inline (no fetches).
function paperclip(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M9 13V6.5a3.5 3.5 0 0 1 7 0V16a5 5 0 0 1-10 0V8");
  svg.append(path);
  return svg;
}
