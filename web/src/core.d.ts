// The protocol core: Hotline's Go client compiled to WebAssembly
// (web/wasm). It keeps the device's keys and conversations, speaks to the
// server, and hands the UI plain objects. Every method that talks to the
// server returns a Promise; a rejected one carries a HotlineError.
//
// Files the core persists are sealed by the core under `wrap` before they
// reach `persist`; the UI stores them as given (IndexedDB) and hands them
// back to open().

export interface HotlineError extends Error {
  code: string; // stable: "contact_refused", "unauthenticated", "bad_request", …
  hint?: string;
}

export type Persist = (name: string, sealed: Uint8Array | null) => void;

export interface Me {
  user: string; // "alice@demo.example"
  device: string;
  org: string;
  label: string;
  roles: string[];
  clearance: string;
  compartments: string[];
  pending: boolean; // enrolled, awaiting approval by another device or a security officer
}

export interface Contact {
  user: string;
  org: string;
  roles: string[];
  clearance: string;
  via_request?: boolean; // policy allows contact only through a call request
  verified: boolean; // safety numbers compared, and their keys unchanged since
  keys_changed?: boolean; // compared once, and their keys changed since
}

export interface Member {
  leaf: number;
  user: string;
  org: string;
  device: string;
  roles: string[];
  clearance: string;
  compartments: string[];
  sig_key?: string; // the device's signing key, from its verified credential
  self?: boolean;
}

export interface Conversation {
  id: string;
  title?: string;
  epoch: number;
  seq: number;
  clearance: string; // the conversation's level, e.g. "secret"
  compartments: string[];
  archive_required?: boolean;
  members: Member[];
  removed?: boolean;
  broken?: string;
}

export interface Attachment {
  name: string;
  media_type: string;
  size: number;
}

export interface Message {
  conversation: string;
  seq: number;
  epoch: number;
  time: string; // RFC 3339
  user: string;
  device: string;
  own?: boolean;
  kind: "text" | "attachment" | "title" | "members" | "desk"; // desk: a call request's purpose, a note or a briefing, as text
  text?: string;
  attachment?: Attachment;
  added?: string[];
  removed?: string[];
}

export interface Update {
  conversation?: string;
  // "message", "members", "joined", "left", "problem"; "epoch" (the
  // conversation's group moved to a new epoch: media keys change);
  // "call" (a call event), "call.quality", "call.slots"; "request" (a
  // call request to the duty desk changed); "desk" (a commitment or an
  // ad-hoc call's readout changed: desk_event says which).
  kind: string;
  message?: Message;
  problem?: string;
  epoch?: number;
  call?: CallUpdate;
  quality?: CallQuality;
  slots?: CallSlots;
  request?: CallRequest;
  desk_event?: string; // kind "desk": commitment.update, commitment.overdue, call.adhoc, readout.missing, hotline.status, linecheck.update
}

// A standing line between two devices, tested end to end on a schedule.
export interface Hotline {
  id: string;
  near_user: string;
  far_user: string;
  interval: number; // seconds
  timeout: number;
  status: "unknown" | "green" | "red";
  last_ok?: string;
  changed: string;
  tests?: { at: string; result: "ok" | "timeout"; latency_ms?: number }[];
}

// A check of both ends of a call request's line: each device's checks
// (credential, online, warm_line, log, group), green or red with a reason.
export interface LineCheck {
  id: string;
  request: string;
  status: "running" | "green" | "red";
  created_at: string;
  ends: { side: string; user: string; device: string; checks: { name: string; status: string; reason?: string }[]; media?: LineMedia }[];
}

// A line check's measurement of the media path (the "media" check): the
// server puts both ends' warm lines in a probe session of its forwarder
// and asks each device to send count probes, one every interval_ms, and
// to echo the far ends' (peers: their device IDs). See src/lineprobe.ts.
export interface LineProbeAsk {
  count: number;
  interval_ms: number;
  peers: string[];
}

// What a device measured: probes sent, echoes of them heard, the round
// trip (median and largest, ms), the largest fraction of a far end's
// probes lost (worst: that device). unsupported says why it could not
// measure ("in_call": a call came first).
export interface LineMedia {
  sent: number;
  echoes: number;
  rtt_ms: number;
  rtt_max_ms: number;
  loss: number;
  worst?: string;
  unsupported?: string;
}

export interface Commitment {
  id: string;
  memcon: string;
  owner: string;
  due: string;
  status: "draft" | "open" | "done" | "cancelled";
  overdue?: boolean;
}

// An ad-hoc call's readout: due, filed or missing (late if filed after).
export interface Readout {
  call: string;
  conversation: string;
  principal: string;
  others: string[];
  placed_at: string;
  due: string;
  status: "due" | "filed" | "missing";
  filed_by?: string;
  filed_at?: string;
  late?: boolean;
  text?: string; // the readout, if this device holds it
}

// A call request to the duty desk: the server's metadata, and (from the
// core's reading of the request's conversations) the purpose, the notes
// and the latest briefing this device holds. Times are RFC 3339.
export interface CallRequest {
  id: string;
  requester: string;
  principal: string;
  urgency: "routine" | "priority" | "flash";
  status: "pending" | "proposed" | "scheduled" | "declined" | "withdrawn";
  conversation: string;
  zone: string; // the requester's IANA time zone
  windows: { start: string; end: string }[];
  scheduled_at?: string;
  duration?: number; // seconds
  decided_by?: string;
  created_at: string;
  updated_at: string;
  briefing?: { conversation: string; by: string; version: number; at: string; acked?: number; acked_at?: string };
  purpose?: string;
  notes?: { user: string; time: string; text: string }[];
  brief?: Briefing;
}

export interface Briefing {
  version: number;
  talking_points?: string[];
  questions?: { question: string; answer: string }[];
  background?: string;
}

export interface Verification {
  user: string;
  safety_number: string;
  verified: boolean;
  changed?: boolean;
}

export interface DeviceReport {
  user: string;
  device: string;
  sig_key: string;
  status: "pending" | "active" | "revoked";
  enrol_index: number;
  approvers?: string[];
  self: boolean;
  accepted: boolean;
}

export interface DevicesReport {
  devices: DeviceReport[];
  unknown: string[];
  problems: string[];
  notices: string[];
}

// A call as the server describes it (metadata only).
export interface CallInfo {
  id: string;
  conversation: string;
  caller: string;
  caller_device: string;
  state: "ringing" | "active" | "ended";
  reason?: string; // how it ended: hangup, cancelled, declined, busy, no_answer, …
  level: string; // the conversation's classification, as the server knows it
  compartments?: string[];
  // held: on hold (nothing forwarded to or from them); preempted: taken
  // out of this routine call for a flash call.
  participants: { user: string; device: string; role: string; state: string; listening?: boolean; held?: boolean; preempted?: boolean }[];
  created_at: string;
}

// A participant identified from the conversation's group (a verified
// credential), not from what the server says.
export interface Participant {
  device: string;
  state: string; // ringing, joined, declined, left, missed, elsewhere
  role: string; // caller, callee, …
  member: Member;
  verified: boolean; // the device is a member of the conversation's group
}

export interface CallUpdate {
  event?: string; // call.ring, call.update, call.elsewhere, call.ended
  call: CallInfo;
  participants: Participant[];
}

export interface CallQuality {
  call: string;
  participants: { device: string; loss_in: number; loss_out: number; jitter_ms: number; rtt_ms: number }[];
}

export interface CallSlots {
  call: string;
  slots: { index: number; mid: string; device: string }[];
}

// What the SFrame worker needs of an epoch; base_key is base64.
export interface CallKeys {
  conversation: string;
  suite: number;
  epoch: number;
  self: number;
  group_size: number;
  base_key: string;
}

export interface StreamStatus {
  connected: boolean;
  error?: { code: string; message: string };
}

export interface Core {
  version: string;
  // enroll generates this browser's device keys and enrols them with an
  // invite code; the server is this page's origin.
  // flushed resolves once everything persist was given so far is stored;
  // the core waits for it before acknowledging anything to the server.
  enroll(o: { invite: string; label: string; wrap?: Uint8Array; persist: Persist; flushed?: () => Promise<void> }): Promise<Me>;
  // open loads a profile from the sealed files persist was given. For a
  // passkey device, ticket is the unlock ticket of the assertion that gave
  // wrap, and unlock proves the passkey again for each later session.
  open(o: { files: Record<string, Uint8Array>; wrap: Uint8Array; persist: Persist; flushed?: () => Promise<void>; ticket?: string; unlock?: () => Promise<string> }): Promise<Me>;
  // Passkeys (src/keys.ts runs the WebAuthn ceremonies). An enrolment
  // without wrap keeps the profile in memory until setWrap.
  passkeyRegister(): Promise<{ ceremony: string; public_key: unknown }>;
  passkeyRegistered(ceremony: string, credentialJSON: string): Promise<{ device: string; created_at: string }>;
  setWrap(secret: Uint8Array): Promise<void>;
  setUnlock(ticket: string, unlock: () => Promise<string>): Promise<void>;
  me(): Promise<Me>;
  contacts(): Promise<Contact[]>;
  conversations(): Promise<Conversation[]>;
  messages(conversation: string): Promise<Message[]>;
  create(o: { title: string; members: string[] }): Promise<Conversation>;
  // direct returns, or first creates, the 1:1 conversation with user.
  direct(user: string): Promise<Conversation>;
  send(conversation: string, text: string): Promise<Message>;
  sendFile(conversation: string, name: string, mediaType: string, data: Uint8Array): Promise<Message>;
  // download fetches and decrypts the attachment of message seq.
  download(conversation: string, seq: number): Promise<{ name: string; media_type: string; data: Uint8Array }>;
  // follow starts the event stream (reconnecting on its own); updates and
  // status changes arrive through the callbacks.
  follow(onUpdate: (u: Update) => void, onStatus: (s: StreamStatus) => void): void;

  // Verification. verifications lists, for each other user of a
  // conversation, the safety number both see (60 digits in groups of 5,
  // from both users' device keys in the group) and whether this user
  // compared it; changed means they compared an older number: that user's
  // keys changed since (a new or replaced device) — warn unmistakably.
  verifications(conversation: string): Promise<Verification[]>;
  // markVerified records a comparison; number must be the current one.
  markVerified(conversation: string, user: string, number: string): Promise<void>;
  // safetyQR draws what the other person's device scans: modules by row.
  safetyQR(otherUser: string, number: string): Promise<{ size: number; rows: string[] }>;
  // devices runs the transparency-log monitor: this user's devices as the
  // log shows them; unknown lists active devices this browser has not
  // accepted (an alert until acceptDevice, or revocation elsewhere).
  // verifyScanned checks a code scanned from the other person's screen
  // against this device's safety number with them and marks them verified
  // if it matches (rejects otherwise); it returns the user verified.
  verifyScanned(conversation: string, payload: string): Promise<string>;
  devices(): Promise<DevicesReport>;
  acceptDevice(id: string): Promise<void>;

  // Calls. The page holds the media: one warm RTCPeerConnection to the
  // server's forwarder (media: its SDP offer → the answer), with SFrame on
  // every frame in a worker keyed by callKeys.
  media(offer: string): Promise<string>;
  // calls lists the calls of this device's conversations that have not
  // ended (a ring that came while the page was closed).
  calls(): Promise<CallUpdate[]>;
  placeCall(conversation: string): Promise<CallUpdate>;
  answerCall(id: string): Promise<CallUpdate>;
  joinCall(id: string): Promise<CallUpdate>;
  declineCall(id: string): Promise<CallUpdate>;
  hangup(id: string): Promise<CallUpdate>;
  callKeys(conversation: string): Promise<CallKeys>;
  memberAt(conversation: string, leaf: number): Promise<Member>;
  // setProber registers what measures the media path when a line check
  // asks (the warm line's, src/lineprobe.ts); the core waits 8 s for it. null
  // drops it: the device then reports that it cannot measure.
  setProber(probe: ((conversation: string, ask: LineProbeAsk) => Promise<LineMedia>) | null): void;

  // The duty desk. Objects go as JSON text; times are RFC 3339.
  // requests: those this user may see (statuses: a JSON array, or "[]").
  requests(statusesJSON: string): Promise<CallRequest[]>;
  request(id: string): Promise<CallRequest>;
  // requestCall: {principal, urgency, start, end, zone, purpose}.
  requestCall(inJSON: string): Promise<CallRequest>;
  // decide: action approve | propose | accept | decline | withdraw, with
  // {at, minutes} | {start, end} and an optional note (required to decline).
  decide(id: string, action: string, inJSON: string): Promise<CallRequest>;
  ackBriefing(id: string): Promise<CallRequest>;
  schedule(from: string, to: string): Promise<CallRequest[]>;
  // liveCalls: every call ringing or under way (duty officers), as the
  // server reports it.
  liveCalls(): Promise<CallInfo[]>;
  // The desk in a call. placeRequestCall places a scheduled request's call
  // from this device, ringing the requester only (this device's call, as
  // placeCall: the page joins it with its media); ringIntoCall rings a
  // member of the call's conversation in (preempt: take them out of
  // another call first, the desk in a flash request's call only);
  // holdInCall puts a user on hold (hold true) or takes them off it;
  // transferCall rings a user in, then this device leaves.
  placeRequestCall(request: string): Promise<CallUpdate>;
  ringIntoCall(call: string, user: string, preempt: boolean): Promise<CallUpdate>;
  holdInCall(call: string, user: string, hold: boolean): Promise<CallUpdate>;
  transferCall(call: string, user: string): Promise<CallUpdate>;
  // commitments: this user's, or with all every one (the desk).
  commitments(all: boolean): Promise<Commitment[]>;
  closeCommitment(id: string, status: "done" | "cancelled"): Promise<Commitment>;
  readouts(): Promise<Readout[]>;
  hotlines(): Promise<Hotline[]>;
  // Line checks (the desk starts them; the ends answer by themselves).
  startLineCheck(request: string): Promise<LineCheck>;
  lineChecks(request: string): Promise<LineCheck[]>;
  // fileReadout sends an ad-hoc call's readout to the duty desk.
  fileReadout(call: string, principal: string, text: string): Promise<Readout>;
}

declare global {
  // Set by the wasm module once it runs.
  var hotlineCore: Core | undefined;
  // From Go's wasm_exec.js.
  class Go {
    importObject: WebAssembly.Imports;
    run(instance: WebAssembly.Instance): Promise<void>;
  }
}
