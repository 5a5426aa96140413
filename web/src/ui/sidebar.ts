// The sidebar: who I am and the stream's state, conversations, contacts,
// and the form for a new conversation.

import type { Contact, Conversation, Me, StreamStatus } from "../core";
import { h, replace } from "../dom";
import { conversationTitle, level, levelLabel, list, participants } from "./format";

export function levelPill(clearance: string, extra?: string): HTMLElement {
  return h("span", { class: `pill level-${level(clearance)}${extra ? ` ${extra}` : ""}` }, levelLabel(clearance));
}

export function meCard(me: Me): HTMLElement {
  return h(
    "div",
    {
      class: "me",
      "data-testid": "me",
      "data-user": me.user,
      "data-org": me.org,
      "data-clearance": me.clearance,
      title: `Device ${me.device} (${me.label})`,
    },
    h("span", { class: "me-user" }, me.user),
    " ",
    h("span", { class: "me-sub me-org" }, me.org),
    " ",
    h(
      "span",
      { class: "me-sub" },
      "Clearance ",
      levelPill(me.clearance),
      me.compartments.length > 0 ? h("span", { class: "compartments" }, ` ${list(me.compartments)}`) : null,
    ),
  );
}

export function statusDot(): HTMLElement {
  const el = h(
    "span",
    { class: "status", "data-testid": "stream-status", "data-connected": "false", role: "status" },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "status-text" }, "Connecting"),
  );
  return el;
}

export function setStatus(el: HTMLElement, s: StreamStatus): void {
  el.dataset.connected = String(s.connected);
  const text = s.connected ? "Online" : s.error ? "Offline" : "Connecting";
  const label = el.querySelector(".status-text");
  if (label) label.textContent = text;
  el.title = s.connected ? "Receiving live updates" : s.error ? `${s.error.message} (${s.error.code}); reconnecting` : "Connecting to the server";
}

// Lists are rebuilt only when what they show changed: a refresh that
// changes nothing must not swap the buttons under a click or take the
// keyboard focus away.
const shown = new WeakMap<HTMLElement, string>();

function unchanged(ul: HTMLElement, key: string): boolean {
  if (shown.get(ul) === key) return true;
  shown.set(ul, key);
  return false;
}

// keepFocus rebuilds ul with build, and gives the focus back to the item
// that had it (same data-testid and key attribute), if any.
function keepFocus(ul: HTMLElement, attr: string, build: () => void): void {
  const had = document.activeElement instanceof HTMLElement && ul.contains(document.activeElement) ? document.activeElement : null;
  const which = had?.getAttribute(attr);
  build();
  if (which) {
    for (const el of ul.querySelectorAll<HTMLElement>(`[${attr}]`)) {
      if (el.getAttribute(attr) === which) {
        el.focus();
        break;
      }
    }
  }
}

export function renderConversations(
  ul: HTMLElement,
  convs: readonly Conversation[],
  me: Me,
  unread: ReadonlyMap<string, number>,
  current: string | undefined,
  open: (id: string) => void,
): void {
  const key = JSON.stringify([
    current ?? "",
    convs.map((c) => [c.id, conversationTitle(c, me), c.clearance, participants(c.members, me).length, !!c.removed, !!c.broken, unread.get(c.id) ?? 0]),
  ]);
  if (unchanged(ul, key)) return;
  if (convs.length === 0) {
    replace(ul, h("li", { class: "empty" }, "No conversations yet. Pick a contact or start one."));
    return;
  }
  keepFocus(ul, "data-id", () => replace(
    ul,
    convs.map((c) => {
      const n = unread.get(c.id) ?? 0;
      const people = participants(c.members, me).length;
      return h(
        "li",
        null,
        h(
          "button",
          {
            type: "button",
            class: `item conversation${c.removed ? " removed" : ""}`,
            "data-testid": "conversation",
            "data-id": c.id,
            "aria-current": c.id === current ? "true" : null,
            onclick: () => open(c.id),
          },
          h(
            "span",
            { class: "item-main" },
            h("span", { class: "item-title" }, conversationTitle(c, me)),
            h(
              "span",
              { class: "item-sub" },
              levelPill(c.clearance, "small"),
              ` ${people} ${people === 1 ? "person" : "people"}`,
              c.removed ? " · removed" : null,
              c.broken ? " · problem" : null,
            ),
          ),
          n > 0 ? h("span", { class: "badge", "data-testid": "unread", "aria-label": `${n} unread` }, n > 99 ? "99+" : String(n)) : null,
        ),
      );
    }),
  ));
}

export function renderContacts(ul: HTMLElement, contacts: readonly Contact[], open: (user: string) => void): void {
  if (unchanged(ul, JSON.stringify(contacts))) return;
  if (contacts.length === 0) {
    replace(ul, h("li", { class: "empty" }, "No contacts."));
    return;
  }
  replace(
    ul,
    contacts.map((c) =>
      h(
        "li",
        null,
        h(
          "button",
          {
            type: "button",
            class: "item contact",
            "data-testid": "contact",
            "data-user": c.user,
            "data-org": c.org,
            "data-clearance": c.clearance,
            "data-verified": String(c.verified),
            title: c.via_request ? "Policy allows contact only through a call request" : `Message ${c.user}`,
            onclick: () => open(c.user),
          },
          h(
            "span",
            { class: "item-main" },
            h("span", { class: "item-title" }, c.user),
            h(
              "span",
              { class: "item-sub" },
              levelPill(c.clearance, "small"),
              " ",
              c.org,
              c.roles.length > 0 ? ` · ${list(c.roles)}` : null,
            ),
            c.via_request ? h("span", { class: "item-note" }, "By call request only") : null,
            c.keys_changed
              ? h("span", { class: "item-note warn", "data-testid": "contact-keys-changed" }, "⚠ Keys changed since you verified")
              : c.verified
                ? h("span", { class: "item-note ok", "data-testid": "contact-verified" }, "✓ Verified")
                : null,
          ),
        ),
      ),
    ),
  );
}

// NewConversation is the small form behind the "New conversation" button.
export class NewConversation {
  readonly el: HTMLFormElement;
  private readonly title: HTMLInputElement;
  private readonly members: HTMLElement;
  private readonly create: HTMLButtonElement;

  constructor(submit: (title: string, members: string[]) => Promise<boolean>, cancel: () => void) {
    this.title = h("input", { id: "new-title", "data-testid": "new-title", maxlength: 200, placeholder: "Optional" });
    this.members = h("div", { class: "new-members" });
    this.create = h("button", { type: "submit", class: "primary", "data-testid": "create" }, "Create");
    this.el = h(
      "form",
      {
        class: "new-conversation",
        hidden: true,
        "aria-label": "New conversation",
        onsubmit: async (ev: SubmitEvent) => {
          ev.preventDefault();
          const chosen = [...this.members.querySelectorAll<HTMLInputElement>("input:checked")].map((i) => i.value);
          this.create.disabled = true;
          try {
            if (await submit(this.title.value.trim(), chosen)) this.close();
          } finally {
            this.create.disabled = false;
          }
        },
        onkeydown: (ev: KeyboardEvent) => {
          if (ev.key === "Escape") cancel();
        },
      },
      h("label", { for: "new-title" }, "Title"),
      this.title,
      h("fieldset", null, h("legend", null, "Members"), this.members),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", onclick: () => cancel() }, "Cancel"),
        this.create,
      ),
    );
  }

  get open(): boolean {
    return !this.el.hidden;
  }

  show(contacts: readonly Contact[]): void {
    this.title.value = "";
    if (contacts.length === 0) {
      replace(this.members, h("p", { class: "muted" }, "No contacts to add."));
    } else {
      replace(
        this.members,
        contacts.map((c) =>
          h(
            "label",
            { class: "check" },
            h("input", { type: "checkbox", value: c.user, "data-testid": "new-member", "data-user": c.user }),
            h("span", null, c.user, h("span", { class: "muted" }, ` · ${levelLabel(c.clearance)}`)),
          ),
        ),
      );
    }
    this.el.hidden = false;
    this.title.focus();
  }

  close(): void {
    this.el.hidden = true;
  }
}
