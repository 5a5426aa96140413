// The log monitor's view of this user's own devices: the "Your devices"
// panel, and the alert, on every screen, while a device this browser has
// not seen is active on the account — the sign that someone else may be
// reading as this user.

import type { Core, DeviceReport, DevicesReport } from "../core";
import { h, replace } from "../dom";
import { describe, report } from "./errors";
import { warningIcon } from "./verify";

export const DEVICES_EVERY_MS = 5 * 60_000;
const DEBOUNCE_MS = 100;

// DeviceMonitor runs core.devices(): at start, every five minutes and when
// asked (a problem reported, the stream back), never twice at once, and
// once more if asked while it ran.
export class DeviceMonitor {
  private last: DevicesReport | undefined;
  private checked: Date | undefined;
  private current: Promise<void> | undefined;
  private again = false;
  private timer: number | undefined;
  private interval: number | undefined;
  private failure = ""; // the error last reported, so each is shown once
  private logFailure: string | undefined;
  private problemsShown = "";
  private readonly listeners = new Set<() => void>();

  constructor(private readonly core: Core) {}

  get report(): DevicesReport | undefined {
    return this.last;
  }

  get checkedAt(): Date | undefined {
    return this.checked;
  }

  // failed is why the last check found the log itself wrong (rolled back,
  // forked, badly signed), when it did: then there is no report to trust.
  get failed(): string | undefined {
    return this.logFailure;
  }

  // problems is everything wrong that the last check found.
  get problems(): string[] {
    return [...(this.logFailure ? [this.logFailure] : []), ...(this.last?.problems ?? [])];
  }

  get busy(): boolean {
    return this.current !== undefined;
  }

  // start checks now and then every DEVICES_EVERY_MS.
  start(): void {
    if (this.interval !== undefined) return;
    this.interval = window.setInterval(() => this.request(), DEVICES_EVERY_MS);
    void this.run();
  }

  // request checks soon: requests close together make one check.
  request(): void {
    if (this.current) {
      this.again = true;
      return;
    }
    if (this.timer !== undefined) return;
    this.timer = window.setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, DEBOUNCE_MS);
  }

  // accept records that device id is this user's, then checks again.
  async accept(id: string): Promise<void> {
    await this.core.acceptDevice(id);
    await this.run();
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // run checks now, or once more after the check under way.
  // It never rejects: failures go to the error bar.
  run(): Promise<void> {
    if (this.current) {
      this.again = true;
      return this.current;
    }
    this.current = (async () => {
      try {
        do {
          this.again = false;
          await this.check();
        } while (this.again);
      } finally {
        this.current = undefined;
        this.emit();
      }
    })();
    this.emit();
    return this.current;
  }

  private async check(): Promise<void> {
    let r: DevicesReport;
    try {
      r = await this.core.devices();
    } catch (e) {
      const err = describe(e);
      // The core reports a log it cannot verify at all as a failure, not
      // in a report. Until it gives that a code of its own, its words say so.
      if (err.code === "log_problem" || err.message.startsWith("transparency log problem")) {
        this.logFailure = err.message;
      }
      // A server out of reach fails every five minutes: say it once.
      const key = `${err.code}:${err.message}`;
      if (key !== this.failure) {
        this.failure = key;
        report(e, "Check your devices");
      }
      return;
    }
    this.failure = "";
    this.logFailure = undefined;
    this.last = r;
    this.checked = new Date();
    // The log not verifying is news wherever the user is; problems about
    // an unknown device are the alert's to tell.
    const news = r.problems.filter((p) => !r.unknown.some((id) => p.includes(id)));
    const key = news.join("\n");
    if (key !== this.problemsShown) {
      this.problemsShown = key;
      if (news.length > 0) {
        report({ code: "log_problem", message: news.join(" "), hint: "Open “Your devices” and tell your security officer." }, "The transparency log did not verify");
      }
    }
  }

  private emit(): void {
    for (const fn of [...this.listeners]) {
      try {
        fn();
      } catch (e) {
        report(e, "Show your devices");
      }
    }
  }
}

// DeviceAlerts is the bar, above everything, naming each active device of
// this user that this browser has not accepted. It cannot be dismissed:
// it goes when the user says the device is theirs, or it is revoked.
export class DeviceAlerts {
  readonly el: HTMLElement;
  private shown = "";

  constructor(private readonly monitor: DeviceMonitor) {
    this.el = h("div", { class: "device-alerts", "data-testid": "device-alerts" });
    monitor.onChange(() => this.render());
    this.render();
  }

  private render(): void {
    const unknown = this.monitor.report?.unknown ?? [];
    const key = unknown.join("\n");
    if (key === this.shown) return;
    this.shown = key;
    replace(
      this.el,
      unknown.map((id) => {
        const note = h("span", { class: "device-alert-note", role: "status" });
        const accept = h(
          "button",
          {
            type: "button",
            class: "device-alert-accept",
            "data-testid": "accept-device",
            "data-device": id,
            onclick: async () => {
              accept.disabled = true;
              note.textContent = "Recording…";
              try {
                await this.monitor.accept(id);
              } catch (e) {
                report(e, `Accept device ${id}`);
              } finally {
                accept.disabled = false;
                note.textContent = "";
              }
            },
          },
          "It's mine",
        );
        return h(
          "div",
          { class: "device-alert", role: "alert", "data-testid": "device-alert", "data-device": id },
          warningIcon(),
          h(
            "p",
            { class: "device-alert-text" },
            "A device you have not seen was added to your account: ",
            h("code", { class: "device-alert-id" }, id),
            ". If it is not yours, ask your security officer to revoke it now.",
          ),
          note,
          accept,
        );
      }),
    );
  }
}

// devicesButton opens the panel; it turns red while something is wrong.
export function devicesButton(monitor: DeviceMonitor): HTMLButtonElement {
  const b = h(
    "button",
    { type: "button", class: "small devices-button", "data-testid": "devices-button", "aria-haspopup": "dialog", onclick: () => openDevices(monitor) },
    "Your devices",
  );
  const sync = (): void => {
    const r = monitor.report;
    const state = monitor.problems.length > 0 || (r?.unknown.length ?? 0) > 0 ? "problem" : r ? "ok" : "unknown";
    b.dataset.state = state;
    b.title =
      state === "problem"
        ? "Your devices: something needs your attention"
        : state === "ok"
          ? `Your devices: the log verified${monitor.checkedAt ? ` at ${monitor.checkedAt.toLocaleTimeString()}` : ""}`
          : "Your devices: not checked yet";
  };
  monitor.onChange(sync);
  sync();
  return b;
}

const STATUS_TEXT: Record<string, string> = { pending: "Pending approval", active: "Active", revoked: "Revoked" };

function deviceItem(d: DeviceReport): HTMLElement {
  const approvers = d.approvers ?? [];
  const unknown = d.status === "active" && !d.self && !d.accepted;
  return h(
    "li",
    {
      class: `device status-${d.status}${unknown ? " unknown" : ""}`,
      "data-testid": "device",
      "data-device": d.device,
      "data-status": d.status,
      "data-self": String(d.self),
      "data-accepted": String(d.accepted),
    },
    h(
      "div",
      { class: "device-head" },
      h("code", { class: "device-id" }, d.device),
      d.self ? h("span", { class: "device-self", "data-testid": "device-self" }, "this browser") : null,
      h("span", { class: `device-status ${d.status}` }, STATUS_TEXT[d.status] ?? d.status),
    ),
    h(
      "p",
      { class: "device-sub" },
      d.self
        ? "You are using it now."
        : d.accepted
          ? "Accepted: you know this device."
          : unknown
            ? "Not accepted: this browser has not seen it. See the alert at the top."
            : "Not accepted by this browser.",
    ),
    approvers.length > 0 ? h("p", { class: "device-sub" }, `Approved by ${approvers.join(", ")}`) : null,
  );
}

function renderDevices(body: HTMLElement, monitor: DeviceMonitor): void {
  const r = monitor.report;
  const problems = monitor.problems;
  const problemBox =
    problems.length > 0
      ? h(
          "div",
          { class: "device-problems", "data-testid": "device-problems", role: "alert" },
          h("h3", null, warningIcon(), "The log did not verify"),
          h("ul", null, problems.map((p) => h("li", null, p))),
          h("p", null, "Tell your security officer: the server may be showing a different set of devices than the one it publishes."),
          monitor.failed && r ? h("p", null, "Below is what the log showed when it last verified.") : null,
        )
      : null;
  if (!r) {
    replace(body, problemBox ?? h("p", { class: "muted", role: "status" }, monitor.busy ? "Checking the log…" : "Not checked yet; see the error above if the check failed."));
    return;
  }
  const order = (d: DeviceReport) => (d.self ? -1 : d.status === "revoked" ? 1 : 0);
  const devices = [...r.devices].sort((a, b) => order(a) - order(b) || a.enrol_index - b.enrol_index);
  replace(
    body,
    problemBox ?? h("p", { class: "device-ok", "data-testid": "device-ok" }, "✓ The transparency log verified: these are all the devices it lists for you."),
    r.notices.length > 0
      ? h("div", { class: "device-notices", "data-testid": "device-notices" }, h("ul", null, r.notices.map((n) => h("li", null, n))))
      : null,
    devices.length > 0
      ? h("ul", { class: "device-list", "aria-label": "Devices" }, devices.map(deviceItem))
      : h("p", { class: "muted" }, "The log lists no devices for you."),
  );
}

// openDevices shows the panel; it follows the monitor while open.
export function openDevices(monitor: DeviceMonitor): void {
  document.querySelector<HTMLDialogElement>('dialog[data-testid="devices"]')?.close();
  const body = h("div", { class: "devices-body" });
  const checked = h("p", { class: "muted device-checked", role: "status" });
  const check = h("button", { type: "button", "data-testid": "devices-refresh", onclick: () => void monitor.run() }, "Check now");
  const close = h("button", { type: "button", class: "dialog-close", "data-testid": "devices-close" }, "Close");
  const dialog = h(
    "dialog",
    { class: "dialog devices-dialog", "data-testid": "devices", "aria-labelledby": "devices-heading" },
    h("header", { class: "dialog-header" }, h("h2", { id: "devices-heading" }, "Your devices"), close),
    h(
      "p",
      { class: "muted" },
      "Every device that can read as you is in the transparency log. This browser checks the log and lists yours, so none is added unseen.",
    ),
    body,
    h("div", { class: "dialog-actions" }, checked, check),
  );
  let shown: string | undefined;
  const sync = (): void => {
    check.disabled = monitor.busy;
    const at = monitor.checkedAt;
    checked.textContent = monitor.busy ? "Checking the log…" : at ? `Checked at ${at.toLocaleTimeString()}` : "";
    // Rebuilt only when the report changed: its alert is not re-announced.
    const key = JSON.stringify([monitor.report ?? null, monitor.failed ?? null, monitor.report ? false : monitor.busy]);
    if (key === shown) return;
    shown = key;
    renderDevices(body, monitor);
  };
  const stop = monitor.onChange(sync);
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    stop();
    dialog.remove();
  });
  sync();
  document.body.append(dialog);
  dialog.showModal();
  if (!monitor.report) void monitor.run();
}
