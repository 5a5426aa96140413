// The principal app: sidebar (me, conversations, contacts) and the
// conversation pane; on a phone, one of the two at a time.
//
// State comes from the core and is re-fetched, not patched: an update
// from the stream schedules conversations() and, for the open
// conversation, messages(id), each debounced and never run twice at once.
// Unread counts are the UI's own: messages from others that arrived
// through the stream while their conversation was not in view.

import type { Calls, CallView } from "../call";
import type { Contact, Conversation, Core, Me, StreamStatus, Update } from "../core";
import { h, replace } from "../dom";
import { CallScreen } from "./callpanel";
import { ConversationPane } from "./conversation";
import { DeskPane, RequestForm } from "./desk";
import { DeviceAlerts, DeviceMonitor, devicesButton } from "./devices";
import { guard, report } from "./errors";
import { conversationTitle } from "./format";
import { NewConversation, meCard, renderContacts, renderConversations, setStatus, statusDot } from "./sidebar";
import { VerificationStore, openVerifyDialog } from "./verify";

const DEBOUNCE_MS = 60;

// The update kinds the conversation views act on; others (calls, epochs)
// are not theirs.
const CONVERSATION_KINDS = new Set(["message", "members", "joined", "left", "problem"]);
// The update kinds that may change a conversation's safety numbers: its
// group's members or their keys.
const VERIFY_KINDS = new Set(["members", "joined", "epoch"]);
const PHONE = "(max-width: 699.98px)";

// Refresher runs a fetch after a short quiet period, and again if asked
// while it ran, so the last answer shown is never older than the last
// request.
class Refresher {
  private timer: number | undefined;
  private running = false;
  private again = false;

  constructor(private readonly run: () => Promise<void>) {}

  request(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer !== undefined) return;
    this.timer = window.setTimeout(() => {
      this.timer = undefined;
      void this.go();
    }, DEBOUNCE_MS);
  }

  private async go(): Promise<void> {
    this.running = true;
    try {
      await this.run();
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.request();
      }
    }
  }
}

export class App {
  private conversations: Conversation[] = [];
  private contacts: Contact[] = [];
  private readonly unread = new Map<string, number>();
  private readonly drafts = new Map<string, string>();
  private readonly messageRefreshers = new Map<string, Refresher>();
  private readonly conversationsRefresher: Refresher;
  private conversationsAsked = 0;
  private current: string | undefined;
  private opening = 0; // the latest open request; older ones are dropped
  private pane: ConversationPane | undefined;
  private deskPane: DeskPane | undefined;
  private streamError = "";
  private wasConnected = false;
  private everConnected = false;
  private readonly phone = window.matchMedia(PHONE);
  private calls: Calls | undefined;
  private callScreen: CallScreen | undefined;
  private callsUnavailable = "Calls are starting…";
  private ringTitle: string | undefined;
  private baseTitle = "Hotline";
  private readonly verifications: VerificationStore;
  private readonly devices: DeviceMonitor;

  private readonly shell: HTMLElement;
  private readonly status: HTMLElement;
  private readonly convList: HTMLElement;
  private readonly contactList: HTMLElement;
  private readonly main: HTMLElement;
  private readonly callHost: HTMLElement;
  private readonly newForm: NewConversation;

  constructor(
    private readonly core: Core,
    private readonly me: Me,
    root: HTMLElement,
  ) {
    this.conversationsRefresher = new Refresher(() => this.loadConversations());
    this.verifications = new VerificationStore(core);
    this.devices = new DeviceMonitor(core);
    this.status = statusDot();
    this.convList = h("ul", { class: "list", "data-testid": "conversations", "aria-label": "Conversations" });
    this.contactList = h("ul", { class: "list", "data-testid": "contacts", "aria-label": "Contacts" });
    this.newForm = new NewConversation(
      (title, members) => this.create(title, members),
      () => this.newForm.close(),
    );
    this.main = h("main", { class: "main", "aria-label": "Conversation" });
    this.callHost = h("div", { class: "call-host", "data-testid": "call-host" });
    this.shell = h(
      "div",
      { class: "app", "data-view": "list" },
      h(
        "aside",
        { class: "sidebar" },
        h("header", { class: "sidebar-header" }, meCard(me), h("div", { class: "sidebar-tools" }, this.status, devicesButton(this.devices))),
        h(
          "nav",
          { class: "sidebar-lists" },
          h(
            "section",
            { "aria-labelledby": "conversations-heading" },
            h(
              "div",
              { class: "section-head" },
              h("h2", { id: "conversations-heading" }, "Conversations"),
              h(
                "button",
                {
                  type: "button",
                  class: "small",
                  "data-testid": "new-conversation",
                  onclick: () => (this.newForm.open ? this.newForm.close() : this.newForm.show(this.contacts)),
                },
                "New conversation",
              ),
            ),
            this.newForm.el,
            this.convList,
          ),
          h(
            "section",
            { "aria-labelledby": "desk-heading" },
            h(
              "div",
              { class: "section-head" },
              h("h2", { id: "desk-heading" }, me.roles.includes("duty-officer") ? "Duty desk" : "Schedule"),
              h(
                "button",
                { type: "button", class: "small", "data-testid": "open-desk", onclick: () => this.openDesk() },
                me.roles.includes("duty-officer") ? "Open the console" : "Calls and requests",
              ),
            ),
          ),
          h(
            "section",
            { "aria-labelledby": "contacts-heading" },
            h("div", { class: "section-head" }, h("h2", { id: "contacts-heading" }, "Contacts")),
            this.contactList,
          ),
        ),
      ),
      this.callHost,
      this.main,
    );
    root.dataset.state = "app";
    replace(root, this.shell);
    // The unknown-device alert sits above everything the page shows, the
    // error bars included, for as long as the page lives.
    document.querySelector('[data-testid="device-alerts"]')?.remove();
    document.body.prepend(new DeviceAlerts(this.devices).el);
    this.showPlaceholder();
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.current) this.markRead(this.current);
    });
  }

  // start loads contacts and conversations; the stream's callbacks may
  // already be arriving.
  async start(): Promise<void> {
    replace(this.convList, h("li", { class: "empty" }, "Loading…"));
    replace(this.contactList, h("li", { class: "empty" }, "Loading…"));
    // The log monitor goes its own way: a slow log must not hold the lists.
    this.devices.start();
    await Promise.all([this.loadConversations(), this.loadContacts()]);
  }

  onUpdate(u: Update): void {
    if (u.kind === "request" || u.kind === "desk") {
      this.deskPane?.refresh();
      return;
    }
    // A purpose or note arrives as a conversation's message, after the
    // request's own update.
    if (CONVERSATION_KINDS.has(u.kind)) this.deskPane?.refresh();
    // Something went wrong somewhere: check the log of this user's devices
    // too, in case it is why.
    if (u.kind === "problem") this.devices.request();
    if (VERIFY_KINDS.has(u.kind) && u.conversation !== undefined) this.groupChanged(u.conversation);
    if (!CONVERSATION_KINDS.has(u.kind)) return;
    const id = u.conversation;
    const m = u.message;
    if (u.kind === "message" && id !== undefined && m && !m.own && (m.kind === "text" || m.kind === "attachment") && !this.inView(id)) {
      this.unread.set(id, (this.unread.get(id) ?? 0) + 1);
      this.renderList();
    }
    if (u.kind === "problem") {
      const c = this.conversations.find((x) => x.id === id);
      report({ code: "problem", message: u.problem ?? "something went wrong in this conversation" }, c ? conversationTitle(c, this.me) : (id ?? "Live updates"));
    }
    this.conversationsRefresher.request();
    if (id !== undefined && id === this.current) this.messagesRefresher(id).request();
  }

  // groupChanged fetches again the safety numbers of a conversation on
  // screen (open, or in the call) whose group changed, and forgets those
  // of others, to fetch when next shown.
  private groupChanged(id: string): void {
    const call = this.calls?.view();
    if (id === this.current || (call && call.phase !== "idle" && call.call?.conversation === id)) {
      void this.verifications.refresh(id);
    } else {
      this.verifications.forget(id);
    }
  }

  // attachCalls shows calls (the ring, the call panel) and enables the
  // call button. Without calls, unavailable says why there are none.
  attachCalls(calls: Calls | undefined, unavailable?: string): void {
    if (!calls) {
      this.callsUnavailable = unavailable ?? "Calls are not available";
      this.pane?.syncCall();
      return;
    }
    this.calls = calls;
    this.callScreen = new CallScreen(
      {
        calls,
        me: this.me,
        conversation: (id) => this.conversations.find((c) => c.id === id),
        ringing: (title) => {
          this.ringTitle = title;
          this.syncTitle();
        },
        changed: (v) => this.callChanged(v),
        verifications: this.verifications,
        verify: (id) => {
          const c = this.conversations.find((x) => x.id === id);
          openVerifyDialog({ core: this.core, store: this.verifications, conversation: id, title: c ? conversationTitle(c, this.me) : "this call" });
        },
        // The brief of the scheduled call held in this conversation, if
        // this device holds one (the principal and the desk).
        brief: async (id) => {
          const rs = await this.core.requests(JSON.stringify(["scheduled"]));
          return rs.find((r) => r.conversation === id && r.brief)?.brief;
        },
      },
      this.callHost,
    );
  }

  // callLineFailed records why the call line is down, for the call button.
  callLineFailed(why: string): void {
    this.callsUnavailable = why;
    this.pane?.syncCall();
  }

  private callChanged(v: CallView): void {
    if (v.phase === "idle") delete this.shell.dataset.call;
    else this.shell.dataset.call = v.phase;
    this.pane?.syncCall();
  }

  private callable(): { ok: boolean; why: string } {
    const v = this.calls?.view();
    if (!v) return { ok: false, why: this.callsUnavailable };
    if (v.phase === "incoming") return { ok: false, why: "A call is ringing" };
    if (v.phase === "outgoing" || v.phase === "active") return { ok: false, why: "A call is in progress" };
    if (!v.lineUp) return { ok: false, why: this.callsUnavailable === "Calls are starting…" ? "Connecting the call line…" : this.callsUnavailable };
    return { ok: true, why: "" };
  }

  onStatus(s: StreamStatus): void {
    setStatus(this.status, s);
    if (s.connected) {
      this.streamError = "";
      if (!this.wasConnected) {
        // Back after a gap: whatever was missed is in the core now.
        this.conversationsRefresher.request();
        if (this.current) this.messagesRefresher(this.current).request();
        if (this.everConnected) {
          void this.loadContacts();
          // Back after a gap: the log may have grown meanwhile.
          this.devices.request();
        }
        this.everConnected = true;
      }
    } else if (s.error && s.error.code !== this.streamError) {
      // Each new reason once, not every reconnection attempt.
      this.streamError = s.error.code;
      report(s.error, "Live updates");
    }
    this.wasConnected = s.connected;
  }

  private inView(id: string): boolean {
    return this.current === id && document.visibilityState === "visible";
  }

  private async loadConversations(): Promise<void> {
    const gen = ++this.conversationsAsked;
    await guard("Load conversations", async () => {
      const convs = await this.core.conversations();
      if (gen !== this.conversationsAsked) return; // a newer answer is coming
      this.conversations = convs;
      this.renderList();
      this.callScreen?.refresh();
      if (this.current && this.pane?.id === this.current) {
        const c = this.conversations.find((x) => x.id === this.current);
        if (c) this.pane.setConversation(c);
      }
    });
  }

  private async loadContacts(): Promise<void> {
    await guard("Load contacts", async () => {
      this.contacts = await this.core.contacts();
      renderContacts(this.contactList, this.contacts, (user) => {
        if (this.contacts.find((c) => c.user === user)?.via_request) this.openRequestForm(user);
        else void this.openDirect(user);
      });
    });
  }

  private messagesRefresher(id: string): Refresher {
    let r = this.messageRefreshers.get(id);
    if (!r) {
      r = new Refresher(() => this.loadMessages(id));
      this.messageRefreshers.set(id, r);
    }
    return r;
  }

  private async loadMessages(id: string): Promise<void> {
    await guard("Load messages", async () => {
      const msgs = await this.core.messages(id);
      if (this.pane?.id === id) this.pane.setMessages(msgs);
    });
  }

  private renderList(): void {
    renderConversations(this.convList, this.conversations, this.me, this.unread, this.current, (id) => this.open(id));
    let total = 0;
    for (const n of this.unread.values()) total += n;
    this.baseTitle = total > 0 ? `(${total}) Hotline` : "Hotline";
    this.syncTitle();
  }

  // syncTitle shows a ringing call in the page's title, else the unread count.
  private syncTitle(): void {
    document.title = this.ringTitle ?? this.baseTitle;
  }

  private markRead(id: string): void {
    if (this.unread.delete(id)) this.renderList();
  }

  private showPlaceholder(): void {
    replace(
      this.main,
      h("div", { class: "placeholder" }, h("p", null, "Choose a conversation, or a contact to write to.")),
    );
  }

  // open shows conversation id; known is the conversation as the core just
  // returned it (from direct or create), which the list may not hold yet.
  private open(id: string, known?: Conversation): void {
    this.opening++;
    if (known) {
      const i = this.conversations.findIndex((x) => x.id === id);
      if (i >= 0) this.conversations[i] = known;
      else this.conversations = [...this.conversations, known];
    }
    const c = this.conversations.find((x) => x.id === id);
    if (!c) {
      report({ code: "not_found", message: `conversation ${id} is not in the list` }, "Open");
      return;
    }
    this.shell.dataset.view = "conversation";
    if (this.pane?.id === id) {
      this.pane.setConversation(c);
      this.pane.refreshVerifications();
      this.messagesRefresher(id).request();
      return;
    }
    if (this.pane) {
      this.drafts.set(this.pane.id, this.pane.draft);
      this.pane.close();
    }
    this.leaveDesk();
    this.current = id;
    this.pane = new ConversationPane(
      {
        core: this.core,
        me: this.me,
        back: () => this.back(),
        sent: (cid) => this.sent(cid),
        callable: () => this.callable(),
        place: async (cid) => {
          if (!this.calls) throw Object.assign(new Error(this.callsUnavailable), { code: "client" });
          await this.calls.place(cid);
        },
        verifications: this.verifications,
      },
      c,
      this.drafts.get(id) ?? "",
    );
    replace(this.main, this.pane.el);
    this.unread.delete(id);
    this.renderList();
    if (!this.phone.matches) this.pane.focus();
    this.messagesRefresher(id).request();
  }

  // leaveDesk closes the desk's views, if one is shown.
  private leaveDesk(): void {
    this.deskPane?.close();
    this.deskPane = undefined;
  }

  // openDesk shows the duty desk (or, for others, their schedule and
  // requests) in place of a conversation.
  private openDesk(): void {
    this.opening++;
    if (this.pane) {
      this.drafts.set(this.pane.id, this.pane.draft);
      this.pane.close();
    }
    this.leaveDesk();
    this.current = undefined;
    this.pane = undefined;
    this.shell.dataset.view = "conversation";
    this.deskPane = new DeskPane(this.core, this.me, () => this.back(), () => this.calls);
    replace(this.main, this.deskPane.el);
    this.renderList();
  }

  private openRequestForm(principal: string): void {
    this.opening++;
    if (this.pane) {
      this.drafts.set(this.pane.id, this.pane.draft);
      this.pane.close();
    }
    this.leaveDesk();
    this.current = undefined;
    this.pane = undefined;
    this.shell.dataset.view = "conversation";
    const form = new RequestForm(this.core, principal, () => this.back(), () => this.openDesk());
    replace(this.main, form.el);
    this.renderList();
  }

  private back(): void {
    this.leaveDesk();
    this.opening++;
    if (this.pane) {
      this.drafts.set(this.pane.id, this.pane.draft);
      this.pane.close();
    }
    this.current = undefined;
    this.pane = undefined;
    this.shell.dataset.view = "list";
    this.showPlaceholder();
    this.renderList();
  }

  private sent(id: string): void {
    if (this.pane?.id === id) {
      this.pane.followEnd();
      this.messagesRefresher(id).request();
    }
    this.conversationsRefresher.request();
  }

  private async openDirect(user: string): Promise<void> {
    const gen = ++this.opening;
    const prev = this.current;
    this.showOpening(user);
    const c = await guard(`Open conversation with ${user}`, () => this.core.direct(user));
    if (gen !== this.opening) return; // something else was opened meanwhile
    if (c) {
      this.open(c.id, c);
      this.conversationsRefresher.request();
    } else if (prev && this.conversations.some((x) => x.id === prev)) {
      this.open(prev);
    } else {
      this.back();
    }
  }

  // showOpening replaces the pane at once while a direct conversation is
  // found or made, so nothing done meanwhile (a call) goes to the
  // conversation shown before.
  private showOpening(user: string): void {
    this.leaveDesk();
    if (this.pane) {
      this.drafts.set(this.pane.id, this.pane.draft);
      this.pane.close();
    }
    this.current = undefined;
    this.pane = undefined;
    this.shell.dataset.view = "conversation";
    replace(
      this.main,
      h(
        "section",
        { class: "pane opening", "data-testid": "conversation-opening", "aria-busy": "true" },
        h(
          "header",
          { class: "pane-header" },
          h("button", { type: "button", class: "back", "aria-label": "Back to conversations", onclick: () => this.back() }, "‹ Back"),
          h("h2", { class: "pane-title" }, user),
        ),
        h("div", { class: "placeholder" }, h("p", { role: "status" }, `Opening your conversation with ${user}…`)),
      ),
    );
    this.renderList();
  }

  private async create(title: string, members: string[]): Promise<boolean> {
    const c = await guard("Create conversation", () => this.core.create({ title, members }));
    if (!c) return false;
    this.open(c.id, c);
    this.conversationsRefresher.request();
    return true;
  }
}
