import { getMeta, putMeta, StorageError } from "./store";

const WRAP = "wrap";
const WRAP_LEN = 32;

// wrapSecret returns the 32-byte secret the core seals this device's files
// under; with create, it makes one if there is none yet.
//
// For now it is random bytes kept next to the files in IndexedDB, which
// protects nothing against someone who can read this browser's storage. A
// later change derives it from a passkey instead (the WebAuthn PRF
// extension's output for this site), so that the profile opens only after
// the user's gesture on their authenticator; that change belongs here and
// nowhere else.
export async function wrapSecret(create: boolean): Promise<Uint8Array> {
  const stored = await getMeta(WRAP);
  if (stored instanceof Uint8Array && stored.length === WRAP_LEN) return stored;
  if (stored !== undefined) {
    throw new StorageError("the stored wrap secret is damaged");
  }
  if (!create) {
    throw new StorageError("this browser's profile has no wrap secret");
  }
  const secret = crypto.getRandomValues(new Uint8Array(WRAP_LEN));
  await putMeta(WRAP, secret);
  return secret;
}
