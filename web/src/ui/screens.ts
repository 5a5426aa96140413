// The screens before the app: starting, failed, enrol, awaiting approval.

import type { Me } from "../core";
import { h, replace } from "../dom";
import { report } from "./errors";

function screen(root: HTMLElement, state: string, ...children: HTMLElement[]): void {
  root.dataset.state = state;
  replace(root, h("main", { class: "screen" }, h("div", { class: "card" }, h("h1", { class: "brand" }, "Hotline"), ...children)));
}

export function starting(root: HTMLElement, what: string): void {
  screen(
    root,
    "starting",
    h("p", { class: "starting", "data-testid": "starting", role: "status", "aria-live": "polite" }, h("span", { class: "spinner", "aria-hidden": "true" }), what),
  );
}

// failed is the end of the road: the page cannot go on (the core did not
// load, the profile cannot be opened). The error itself is in the bar.
export function failed(root: HTMLElement, title: string, e: unknown): void {
  report(e, title);
  screen(
    root,
    "failed",
    h(
      "div",
      { "data-testid": "fatal" },
      h("h2", null, title),
      h("p", null, e instanceof Error ? e.message : String(e)),
      h("p", { class: "muted" }, "Reload the page to try again. If this keeps happening, tell your security officer."),
      h("button", { type: "button", onclick: () => location.reload() }, "Reload"),
    ),
  );
}

// enrolForm asks for an invite code and a label for this browser, and
// resolves with the enrolled device once enrol succeeds. Failures are
// reported and leave the form as it was, to correct and try again.
export function enrolForm(
  root: HTMLElement,
  initial: { invite?: string; label: string },
  enrol: (invite: string, label: string) => Promise<Me>,
): Promise<Me> {
  return new Promise((resolve) => {
    const invite = h("input", {
      id: "invite",
      name: "invite",
      "data-testid": "invite",
      required: true,
      autocomplete: "off",
      autocapitalize: "characters",
      spellcheck: "false",
      placeholder: "ABCD-EFGH",
      value: initial.invite ?? "",
    });
    const label = h("input", { id: "label", name: "label", "data-testid": "label", value: initial.label, maxlength: 100 });
    const button = h("button", { type: "submit", class: "primary", "data-testid": "enrol" }, "Enrol this browser");
    const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
    const form = h(
      "form",
      {
        class: "enrol",
        onsubmit: async (ev: SubmitEvent) => {
          ev.preventDefault();
          const code = invite.value.trim();
          if (code === "") {
            invite.focus();
            return;
          }
          button.disabled = true;
          status.textContent = "Generating this browser's keys and enrolling…";
          try {
            resolve(await enrol(code, label.value.trim() || "Web browser"));
          } catch (e) {
            report(e, "Enrol");
            status.textContent = "";
            button.disabled = false;
          }
        },
      },
      h("p", null, "Enrol this browser as one of your devices. Your security officer or another of your devices gives you an invite code."),
      h("label", { for: "invite" }, "Invite code"),
      invite,
      h("label", { for: "label" }, "Name for this browser"),
      label,
      button,
      status,
    );
    screen(root, "enrol", form);
    (initial.invite ? label : invite).focus();
  });
}

// awaitApproval shows that this device is enrolled but not yet approved.
// The returned recheck asks the core again (the caller calls it when the
// stream reports something); done resolves once the device is approved.
export function awaitApproval(
  root: HTMLElement,
  me: Me,
  fetchMe: () => Promise<Me>,
): { done: Promise<Me>; recheck: () => void } {
  let finish!: (m: Me) => void;
  const done = new Promise<Me>((r) => (finish = r));
  let checking = false;
  let finished = false;
  const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const recheck = async (): Promise<void> => {
    if (checking || finished) return;
    checking = true;
    try {
      const m = await fetchMe();
      if (!m.pending) {
        finished = true;
        window.clearInterval(timer);
        finish(m);
        return;
      }
      status.textContent = `Still waiting (checked ${new Date().toLocaleTimeString()}).`;
    } catch (e) {
      report(e, "Check approval");
    } finally {
      checking = false;
    }
  };
  const timer = window.setInterval(() => void recheck(), 15_000);
  screen(
    root,
    "pending",
    h(
      "div",
      { class: "pending", "data-testid": "pending" },
      h("h2", null, "This browser awaits approval"),
      h("p", null, "It is enrolled as a device of ", h("strong", null, me.user), ". Before it can read or send anything, approve it from another of your devices or ask your security officer."),
      h("p", null, "Compare this device ID with the one they see:"),
      h("p", { class: "device-id", "data-testid": "device" }, me.device),
      h("button", { type: "button", onclick: () => void recheck() }, "Check again"),
      status,
    ),
  );
  return { done, recheck: () => void recheck() };
}
