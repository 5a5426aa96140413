// The passkey that protects this browser's keys. The core seals every file
// of the profile under a wrapping secret before the page stores it; that
// secret is the output of the WebAuthn PRF extension of a passkey this
// browser registers right after enrolling, evaluated with a salt the server
// keeps. Without the authenticator the stored files do not open, and the
// server gives a passkey device a session only with a ticket earned by a
// fresh assertion (docs/api.md "Passkeys"). The PRF's output never leaves
// this page: it is deleted from what is posted to the server.
//
// IndexedDB "meta" holds, in the clear, only what is needed to ask for the
// passkey: the device ID ("device"), and "protection": "passkey". Or
// "pending", with a random "wrap" secret beside the files, between
// enrolling and making the passkey (so a closed tab loses nothing); or
// "none", the same, for a browser whose user chose to go on without a
// passkey (then the app says so, always).

import type { Core, HotlineError } from "./core";
import { deleteMeta, getMeta, putMeta } from "./store";

export type Protection = "passkey" | "pending" | "none";

export interface Stored {
  device?: string;
  protection?: Protection;
  wrap?: Uint8Array; // protection "pending" or "none" only
}

export async function stored(): Promise<Stored> {
  const device = await getMeta("device");
  const protection = await getMeta("protection");
  const wrap = await getMeta("wrap");
  return {
    device: typeof device === "string" ? device : undefined,
    protection: protection === "passkey" || protection === "pending" || protection === "none" ? protection : undefined,
    wrap: wrap instanceof Uint8Array ? wrap : undefined,
  };
}

function hotlineError(code: string, message: string, hint?: string): HotlineError {
  return Object.assign(new Error(message), { code, hint });
}

// A WebAuthn failure, in the app's terms (the caller's report says what
// was being done).
function webauthnError(e: unknown): HotlineError {
  if (e instanceof DOMException) {
    switch (e.name) {
      case "NotAllowedError":
        return hotlineError("passkey_cancelled", "the passkey was not used (cancelled, timed out, or no authenticator holds it)", "try again, with your security key or device ready");
      case "NotSupportedError":
      case "SecurityError":
        return hotlineError("passkey_unsupported", `this browser cannot use a passkey here (${e.message})`);
      case "InvalidStateError":
        return hotlineError("passkey_invalid", e.message);
    }
  }
  if (e instanceof Error && "code" in e) return e as HotlineError;
  return hotlineError("client", String(e));
}

function prfOutput(cred: PublicKeyCredential): Uint8Array | undefined {
  const ext = cred.getClientExtensionResults() as { prf?: { enabled?: boolean; results?: { first?: BufferSource } } };
  const first = ext.prf?.results?.first;
  if (!first) return undefined;
  const out = first instanceof ArrayBuffer ? new Uint8Array(first) : new Uint8Array(first.buffer, first.byteOffset, first.byteLength);
  return new Uint8Array(out); // a copy
}

// What is posted of a credential: its JSON form without the PRF's output.
function postable(cred: PublicKeyCredential): string {
  const json = cred.toJSON() as { clientExtensionResults?: { prf?: { results?: unknown } } };
  if (json.clientExtensionResults?.prf) delete json.clientExtensionResults.prf.results;
  return JSON.stringify(json);
}

async function post<T>(path: string, body: string): Promise<T> {
  const resp = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body });
  const data = (await resp.json().catch(() => ({}))) as T & { code?: string; message?: string; hint?: string };
  if (!resp.ok) throw hotlineError(data.code ?? "client", data.message ?? `HTTP ${resp.status}`, data.hint);
  return data;
}

// unlock proves the device's passkey: it returns the wrapping secret (the
// PRF's output) and a one-time ticket for the next session.
export async function unlock(device: string): Promise<{ wrap: Uint8Array; ticket: string }> {
  const c = await post<{ ceremony: string; public_key: PublicKeyCredentialRequestOptionsJSON }>("/v1/passkeys/unlock", JSON.stringify({ device }));
  let cred: PublicKeyCredential;
  try {
    const got = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(c.public_key) });
    if (!(got instanceof PublicKeyCredential)) throw hotlineError("passkey_invalid", "the browser returned no passkey");
    cred = got;
  } catch (e) {
    throw webauthnError(e);
  }
  const wrap = prfOutput(cred);
  if (!wrap) throw hotlineError("passkey_unsupported", "the passkey gave no PRF output, so it cannot open this browser's keys");
  const t = await post<{ unlock: string }>("/v1/passkeys/unlock/" + encodeURIComponent(c.ceremony), postable(cred));
  return { wrap, ticket: t.unlock };
}

// register makes this browser's passkey, right after enrolling, and
// returns the wrapping secret. It also gives the core its way to prove
// the passkey for later sessions.
export async function register(core: Core, device: string): Promise<Uint8Array> {
  const c = await core.passkeyRegister();
  let cred: PublicKeyCredential;
  try {
    const made = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(c.public_key as PublicKeyCredentialCreationOptionsJSON) });
    if (!(made instanceof PublicKeyCredential)) throw hotlineError("passkey_invalid", "the browser made no passkey");
    cred = made;
  } catch (e) {
    throw webauthnError(e);
  }
  await core.passkeyRegistered(c.ceremony, postable(cred));
  // Authenticators that do not evaluate the PRF while creating give it at
  // the first assertion.
  let wrap = prfOutput(cred);
  let ticket = "";
  if (!wrap) ({ wrap, ticket } = await unlock(device));
  await core.setUnlock(ticket, () => unlock(device).then((u) => u.ticket));
  return wrap;
}

// unprotected keeps a random wrapping secret beside the files: while the
// passkey is made ("pending"), or for good when the user goes on without
// one ("none"), which protects nothing against whoever can read this
// browser's storage.
export async function unprotected(device: string, protection: "pending" | "none"): Promise<Uint8Array> {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  await putMeta("device", device);
  await putMeta("wrap", secret);
  await putMeta("protection", protection);
  return secret;
}

export function setProtection(p: Protection): Promise<void> {
  return putMeta("protection", p);
}

// passkeyDone records that the files are now sealed by the passkey alone
// (call it once every file sealed under it is stored): the random secret
// goes.
export async function passkeyDone(): Promise<void> {
  await putMeta("protection", "passkey");
  await deleteMeta("wrap");
}
