// The device's profile in IndexedDB: database "hotline", version 1.
//
//   files  name → Uint8Array, sealed by the core (opaque to the UI)
//   meta   "wrap" → Uint8Array(32), the secret the core seals files under
//
// The core reports every change of a file through its persist callback,
// synchronously and in order. Store.persist queues them and applies them
// in that order, batch by batch, each batch in one transaction, so none is
// lost and a later write of a name wins over an earlier one.

const DB_NAME = "hotline";
const DB_VERSION = 1;
const FILES = "files";
const META = "meta";

let opening: Promise<IDBDatabase> | undefined;

// database opens (and on first use creates) the database, once per page.
export function database(): Promise<IDBDatabase> {
  opening ??= new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(FILES)) db.createObjectStore(FILES);
      if (!db.objectStoreNames.contains(META)) db.createObjectStore(META);
    };
    req.onsuccess = () => {
      const db = req.result;
      // Another tab upgrading the schema: step aside rather than block it.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(storageError("open the browser's storage", req.error));
    req.onblocked = () =>
      reject(storageError("open the browser's storage", new Error("blocked by another tab of Hotline")));
  }).catch((e: unknown) => {
    opening = undefined; // the next call tries again
    throw e;
  });
  return opening;
}

// StorageError is how the UI's own failures look to the error bar: the
// same shape as the core's HotlineError.
export class StorageError extends Error {
  readonly code = "storage";
  readonly hint = "Check that this browser allows this site to store data (not a private window, storage not full).";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageError";
  }
}

function storageError(what: string, cause: unknown): StorageError {
  const detail = cause instanceof Error || cause instanceof DOMException ? `: ${cause.message}` : "";
  return new StorageError(`${what}${detail}`, { cause });
}

function done(tx: IDBTransaction, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(storageError(what, tx.error));
    tx.onabort = () => reject(storageError(what, tx.error ?? new Error("transaction aborted")));
  });
}

function result<T>(req: IDBRequest<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(storageError(what, req.error));
  });
}

export async function getMeta(key: string): Promise<unknown> {
  const db = await database();
  return result(db.transaction(META, "readonly").objectStore(META).get(key), `read ${key}`);
}

export async function putMeta(key: string, value: unknown): Promise<void> {
  const db = await database();
  const tx = db.transaction(META, "readwrite");
  tx.objectStore(META).put(value, key);
  await done(tx, `save ${key}`);
}

export async function deleteMeta(key: string): Promise<void> {
  const db = await database();
  const tx = db.transaction(META, "readwrite");
  tx.objectStore(META).delete(key);
  await done(tx, `delete ${key}`);
}

// loadFiles returns every sealed file, as open() wants them.
export async function loadFiles(): Promise<Record<string, Uint8Array>> {
  const db = await database();
  const tx = db.transaction(FILES, "readonly");
  const store = tx.objectStore(FILES);
  const [keys, values] = await Promise.all([
    result(store.getAllKeys(), "read the profile"),
    result(store.getAll(), "read the profile"),
  ]);
  const files: Record<string, Uint8Array> = {};
  keys.forEach((k, i) => {
    const v: unknown = values[i];
    if (typeof k !== "string" || !(v instanceof Uint8Array)) {
      throw new StorageError(`the stored profile holds an unexpected entry ${String(k)}`);
    }
    files[k] = v;
  });
  return files;
}

type Write = { name: string; data: Uint8Array | null };
type Waiter = { resolve: () => void; reject: (e: unknown) => void };

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

// FileQueue applies the core's writes to the files store in order.
export class FileQueue {
  private queue: Write[] = [];
  private running = false;
  private waiters: Waiter[] = [];
  private retryMs = RETRY_FIRST_MS;
  private retryTimer: number | undefined;

  // onError hears of every failed batch; the batch stays queued and is
  // retried, with back-off, so a passing failure loses nothing.
  constructor(private readonly onError: (e: unknown) => void) {}

  // persist is the core's callback: sealed null deletes the file.
  readonly persist = (name: string, sealed: Uint8Array | null): void => {
    // A copy: the core may reuse its buffer once the call returns.
    this.queue.push({ name, data: sealed === null ? null : sealed.slice() });
    this.kick();
  };

  // flushed resolves once every write queued so far, and any queued while
  // waiting, is stored; it rejects if a batch fails (the batch is retried).
  flushed(): Promise<void> {
    if (this.queue.length === 0 && !this.running) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private kick(): void {
    if (this.running || this.retryTimer !== undefined) return;
    this.running = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.queue.length);
      try {
        const db = await database();
        const tx = db.transaction(FILES, "readwrite");
        const store = tx.objectStore(FILES);
        // Requests in one transaction apply in the order they are made.
        for (const w of batch) {
          if (w.data === null) store.delete(w.name);
          else store.put(w.data, w.name);
        }
        await done(tx, "save the profile");
        this.retryMs = RETRY_FIRST_MS;
      } catch (e) {
        this.queue.unshift(...batch);
        this.running = false;
        this.settle(e);
        this.onError(e);
        this.retryTimer = window.setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
        return;
      }
    }
    this.running = false;
    this.settle();
  }

  private settle(err?: unknown): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) err === undefined ? w.resolve() : w.reject(err);
  }
}
