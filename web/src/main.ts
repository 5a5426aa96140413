// Boot: start the protocol core (hotline.wasm), open or enrol this
// browser's profile, follow the event stream, and show the app.

import { Calls } from "./call";
import type { Core, Me, Update, StreamStatus } from "./core";
import { passkeyDone, register, setProtection, stored, unlock, unprotected } from "./keys";
import { FileQueue, loadFiles } from "./store";
import { tolerant } from "./tolerant";
import { App } from "./ui/app";
import { clearErrors, describe, mountErrors, report } from "./ui/errors";
import { awaitApproval, enrolForm, failed, locked, protect, starting, warnUnprotected } from "./ui/screens";

declare global {
  interface Window {
    // For tests and the curious: flushed resolves once every file the core
    // persisted so far is in IndexedDB. calls is the call state machine
    // once the app runs (calls.view() says what the call screens show).
    hotlineUI?: { flushed(): Promise<void>; calls?: Calls };
  }
}

const CORE_TIMEOUT_MS = 30_000;
const DEFAULT_LABEL = "Web browser";

// startCore runs hotline.wasm and waits for it to publish hotlineCore.
async function startCore(): Promise<Core> {
  if (typeof Go !== "function") {
    throw new Error("wasm_exec.js did not load, so the protocol core cannot start");
  }
  const go = new Go();
  const resp = await fetch("hotline.wasm");
  if (!resp.ok) throw new Error(`loading hotline.wasm: HTTP ${resp.status}`);
  let instance: WebAssembly.Instance;
  if (resp.headers.get("Content-Type")?.split(";")[0]?.trim() === "application/wasm") {
    ({ instance } = await WebAssembly.instantiateStreaming(resp, go.importObject));
  } else {
    // instantiateStreaming insists on the MIME type; the bytes are the same.
    ({ instance } = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject));
  }
  let exited: unknown;
  // run resolves only when the Go program exits, which it should not.
  go.run(instance).then(
    () => (exited = new Error("the protocol core exited")),
    (e: unknown) => (exited = e),
  );
  const deadline = performance.now() + CORE_TIMEOUT_MS;
  for (;;) {
    const core = globalThis.hotlineCore;
    if (core) return tolerant(core);
    if (exited !== undefined) throw exited;
    if (performance.now() > deadline) throw new Error("the protocol core did not start in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

// invitation reads "#invite=CODE&label=…" from the address.
function invitation(): { invite?: string; label: string } {
  const p = new URLSearchParams(location.hash.replace(/^#/, ""));
  const invite = p.get("invite")?.trim();
  const label = p.get("label")?.trim() || DEFAULT_LABEL;
  return invite ? { invite, label } : { label };
}

function forgetFragment(): void {
  if (location.hash !== "") history.replaceState(history.state, "", location.pathname + location.search);
}

async function boot(root: HTMLElement): Promise<void> {
  const queue = new FileQueue((e) => report(e, "Save this device's profile"));
  window.hotlineUI = { flushed: () => queue.flushed() };

  starting(root, "Starting…");
  let core: Core;
  let files: Record<string, Uint8Array>;
  try {
    [core, files] = await Promise.all([startCore(), loadFiles()]);
  } catch (e) {
    failed(root, "Hotline could not start", e);
    return;
  }

  const inv = invitation();
  const keys = await stored();
  // Enrolling keeps the profile in memory, then seals it under a random
  // secret kept beside it ("pending": a closed tab loses nothing), then,
  // once the passkey exists, under the passkey's PRF output.
  const enrol = async (invite: string, label: string): Promise<Me> => {
    const m = await core.enroll({ invite, label, persist: queue.persist, flushed: () => queue.flushed() });
    clearErrors(); // earlier attempts' errors are moot now
    return m;
  };
  const guard = async (device: string): Promise<void> => {
    const temp = await unprotected(device, "pending");
    await core.setWrap(temp);
    await queue.flushed();
  };
  const protectKeys = (device: string): Promise<void> =>
    protect(
      root,
      async () => {
        const wrap = await register(core, device);
        await core.setWrap(wrap);
        await queue.flushed();
        await passkeyDone();
      },
      async () => {
        await setProtection("none");
        warnUnprotected();
      },
    );

  let me: Me;
  if (Object.keys(files).length > 0) {
    // An invite in the address is moot: this browser is enrolled already.
    forgetFragment();
    try {
      if (keys.protection === "passkey" && keys.device) {
        const device = keys.device;
        me = await locked(root, undefined, async () => {
          const u = await unlock(device);
          return core.open({ files, wrap: u.wrap, ticket: u.ticket, unlock: () => unlock(device).then((x) => x.ticket), persist: queue.persist, flushed: () => queue.flushed() });
        });
      } else if ((keys.protection === "none" || keys.protection === "pending") && keys.wrap && keys.device) {
        starting(root, "Opening your profile…");
        me = await core.open({ files, wrap: keys.wrap, persist: queue.persist, flushed: () => queue.flushed() });
        if (keys.protection === "pending") await protectKeys(keys.device);
        else warnUnprotected();
      } else {
        throw Object.assign(new Error("this browser's profile was made by an older version: clear this site's data and enrol again"), { code: "client" });
      }
    } catch (e) {
      failed(root, "This browser's profile could not be opened", e);
      return;
    }
  } else {
    if (inv.invite) {
      starting(root, "Enrolling this browser…");
      try {
        me = await enrol(inv.invite, inv.label);
        forgetFragment();
      } catch (e) {
        // Most likely a used or mistyped code: show it in the form, and
        // keep it out of the address so a reload does not try it again.
        forgetFragment();
        report(e, "Enrol");
        me = await enrolForm(root, inv, enrol);
      }
    } else {
      me = await enrolForm(root, inv, enrol);
    }
    await guard(me.device);
    await protectKeys(me.device);
  }

  let app: App | undefined;
  let calls: Calls | undefined;
  let approval: ReturnType<typeof awaitApproval> | undefined;
  const updates: Update[] = [];
  let status: StreamStatus | undefined;
  core.follow(
    (u) => {
      // The core calls this from Go: an exception thrown back into it
      // would stop the core, so each view's failure stays its own.
      if (app) {
        safely("Show an update", () => app!.onUpdate(u));
        if (calls) safely("Calls", () => calls!.handle(u));
      } else {
        updates.push(u);
        approval?.recheck();
      }
    },
    (s) => {
      status = s;
      if (app) app.onStatus(s);
      else approval?.recheck();
    },
  );

  if (me.pending) {
    approval = awaitApproval(root, me, () => core.me());
    me = await approval.done;
    approval = undefined;
  }

  app = new App(core, me, root);
  calls = startCalls(core, me, app, updates);
  if (status) app.onStatus(status);
  await app.start();
  // Anything that arrived before the app existed is in what start loaded;
  // replaying it only counts unread messages.
  for (const u of updates.splice(0)) app.onUpdate(u);
}

// safely runs f, reporting what it throws instead of passing it on.
function safely(context: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    report(e, context);
  }
}

// startCalls makes the call state machine, hands it what the stream said
// before it existed, and brings up the warm media line. Calls failing to
// start leave the app usable, without calls.
function startCalls(core: Core, me: Me, app: App, earlier: readonly Update[]): Calls | undefined {
  let calls: Calls;
  try {
    calls = new Calls(core, me);
  } catch (e) {
    report(e, "Calls");
    app.attachCalls(undefined, `Calls are not available: ${describe(e).message}`);
    return undefined;
  }
  // In order, before any newer update can arrive: a ring, then its end.
  for (const u of earlier) safely("Calls", () => calls.handle(u));
  app.attachCalls(calls);
  if (window.hotlineUI) window.hotlineUI.calls = calls;
  calls.start().catch((e: unknown) => {
    report(e, "Call line");
    app.callLineFailed(`The call line is down: ${describe(e).message}`);
  });
  // A call already ringing this device when the page loaded (it was
  // closed, or reloaded, while the call rang) shows as a ring now.
  core.calls().then(
    (us) => {
      for (const u of us) {
        const mine = u.call.participants.some((p) => p.device === me.device && p.state === "ringing");
        if (u.call.state === "ringing" && mine) safely("Calls", () => calls.handle({ kind: "call", conversation: u.call.conversation, call: { ...u, event: "call.ring" } }));
      }
    },
    (e: unknown) => report(e, "Calls ringing"),
  );
  return calls;
}

const root = document.getElementById("app");
if (root) {
  const errors = document.getElementById("errors");
  if (errors) mountErrors(errors);
  boot(root).catch((e: unknown) => failed(root, "Hotline stopped", e));
} else {
  console.error("hotline: index.html has no #app element");
}
