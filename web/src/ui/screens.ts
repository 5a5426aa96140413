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

// locked: this browser's keys are sealed by a passkey. open runs the
// unlock (a WebAuthn assertion) and opens the profile; it is tried at
// once, and again from the button after a failure (reported in the bar).
export function locked(root: HTMLElement, user: string | undefined, open: () => Promise<Me>): Promise<Me> {
  return new Promise((resolve) => {
    const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
    const button = h("button", { type: "button", class: "primary", "data-testid": "unlock" }, "Unlock with your passkey");
    const attempt = async (): Promise<void> => {
      button.disabled = true;
      status.textContent = "Waiting for your passkey…";
      try {
        resolve(await open());
      } catch (e) {
        report(e, "Unlock");
        status.textContent = "Still locked.";
        button.disabled = false;
      }
    };
    button.addEventListener("click", () => void attempt());
    screen(
      root,
      "locked",
      h(
        "div",
        { class: "locked", "data-testid": "locked" },
        h("h2", null, "This browser's keys are locked"),
        h("p", null, "Hotline keeps ", user ? h("strong", null, user) : "your", " keys on this browser sealed by a passkey. Use it to open them: without it, they cannot be read, and the server will not open a session for this device."),
        button,
        status,
      ),
    );
    void attempt();
  });
}

// protect asks for a passkey to protect the keys just made. register runs
// the ceremony; on failure the user may try again, or go on without a
// passkey (skip) — the app then says, everywhere, that the keys are not
// protected.
export function protect(root: HTMLElement, register: () => Promise<void>, skip: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
    const retry = h("button", { type: "button", class: "primary", "data-testid": "passkey-retry" }, "Create a passkey");
    const without = h("button", { type: "button", "data-testid": "passkey-skip" }, "Continue without a passkey");
    const run = async (f: () => Promise<void>, what: string): Promise<void> => {
      retry.disabled = without.disabled = true;
      status.textContent = what;
      try {
        await f();
        resolve();
      } catch (e) {
        report(e, "Passkey");
        status.textContent = "";
        retry.disabled = without.disabled = false;
      }
    };
    retry.addEventListener("click", () => void run(register, "Waiting for your authenticator…"));
    without.addEventListener("click", () => void run(skip, "Keeping the keys without a passkey…"));
    screen(
      root,
      "protect",
      h(
        "div",
        { class: "protect", "data-testid": "protect" },
        h("h2", null, "Protect this browser's keys"),
        h("p", null, "This browser is enrolled. Its keys are sealed by a passkey (a security key, or your device's own authenticator with PRF support), so that nobody who copies this browser's storage can use them."),
        h("p", { class: "warn" }, "Without a passkey the keys are kept unprotected in this browser's storage: anyone who can read it can act as you."),
        h("div", { class: "actions" }, retry, without),
        status,
      ),
    );
    void run(register, "Waiting for your authenticator…");
  });
}

// warnUnprotected shows, for as long as the page lives, that this
// browser's keys are not protected by a passkey.
export function warnUnprotected(): void {
  if (document.querySelector('[data-testid="unprotected"]')) return;
  document.body.prepend(
    h("div", { class: "unprotected", role: "alert", "data-testid": "unprotected" }, "This browser's keys are not protected by a passkey: anyone who can read its storage can act as you."),
  );
}
