// tolerant wraps the core so that the views can trust the shapes
// core.d.ts promises. The core's objects come from Go through JSON, where
// an empty list may arrive as null; a view reading .length of null would
// take the whole page down, so lists are made lists here, once.

import type {
  CallInfo,
  CallRequest,
  CallQuality,
  CallSlots,
  CallUpdate,
  Contact,
  Conversation,
  LineCheck,
  Core,
  DeviceReport,
  DevicesReport,
  Me,
  Member,
  Message,
  Participant,
  Update,
  Verification,
} from "./core";

function list<T>(v: readonly T[] | null | undefined): T[] {
  return Array.isArray(v) ? [...v] : [];
}

function me(m: Me): Me {
  return { ...m, roles: list(m.roles), compartments: list(m.compartments) };
}

function contact(c: Contact): Contact {
  return { ...c, roles: list(c.roles) };
}

function member(m: Member): Member {
  return { ...m, roles: list(m.roles), compartments: list(m.compartments) };
}

function conversation(c: Conversation): Conversation {
  return { ...c, compartments: list(c.compartments), members: list(c.members).map(member) };
}

function message(m: Message): Message {
  const out: Message = { ...m };
  if (m.added != null) out.added = list(m.added);
  if (m.removed != null) out.removed = list(m.removed);
  return out;
}

function callInfo(c: CallInfo): CallInfo {
  return { ...c, compartments: list(c.compartments), participants: list(c.participants) };
}

function participant(p: Participant): Participant {
  return { ...p, member: member(p.member ?? { leaf: 0, user: "", org: "", device: p.device, roles: [], clearance: "", compartments: [] }) };
}

function callUpdate(u: CallUpdate): CallUpdate {
  return { ...u, call: callInfo(u.call), participants: list(u.participants).map(participant) };
}

function quality(q: CallQuality): CallQuality {
  return { ...q, participants: list(q.participants) };
}

function slots(s: CallSlots): CallSlots {
  return { ...s, slots: list(s.slots) };
}

function verification(v: Verification): Verification {
  return { ...v, safety_number: v.safety_number ?? "", verified: v.verified === true };
}

function deviceReport(d: DeviceReport): DeviceReport {
  const out: DeviceReport = { ...d };
  if (d.approvers != null) out.approvers = list(d.approvers);
  return out;
}

function devicesReport(r: DevicesReport): DevicesReport {
  return {
    devices: list(r?.devices).map(deviceReport),
    unknown: list(r?.unknown),
    problems: list(r?.problems),
    notices: list(r?.notices),
  };
}

function qr(q: { size: number; rows: string[] }): { size: number; rows: string[] } {
  const rows = list(q?.rows);
  return { size: typeof q?.size === "number" ? q.size : rows.length, rows };
}

function callRequest(r: CallRequest): CallRequest {
  const out: CallRequest = { ...r, windows: list(r.windows) };
  if (r.notes != null) out.notes = list(r.notes);
  if (r.brief) out.brief = { ...r.brief, talking_points: list(r.brief.talking_points), questions: list(r.brief.questions) };
  return out;
}

function lineCheck(l: LineCheck): LineCheck {
  return { ...l, ends: list(l.ends).map((e) => ({ ...e, checks: list(e.checks) })) };
}

function update(u: Update): Update {
  const out: Update = { ...u };
  if (u.message) out.message = message(u.message);
  if (u.call) out.call = callUpdate(u.call);
  if (u.quality) out.quality = quality(u.quality);
  if (u.slots) out.slots = slots(u.slots);
  if (u.request) out.request = callRequest(u.request);
  return out;
}

export function tolerant(core: Core): Core {
  return {
    version: core.version,
    enroll: async (o) => me(await core.enroll(o)),
    open: async (o) => me(await core.open(o)),
    me: async () => me(await core.me()),
    contacts: async () => list(await core.contacts()).map(contact),
    conversations: async () => list(await core.conversations()).map(conversation),
    messages: async (id) => list(await core.messages(id)).map(message),
    create: async (o) => conversation(await core.create(o)),
    direct: async (user) => conversation(await core.direct(user)),
    send: async (id, text) => message(await core.send(id, text)),
    sendFile: async (id, name, type, data) => message(await core.sendFile(id, name, type, data)),
    download: (id, seq) => core.download(id, seq),
    follow: (onUpdate, onStatus) => core.follow((u) => onUpdate(update(u)), onStatus),

    verifications: async (id) => list(await core.verifications(id)).map(verification),
    markVerified: async (id, user, number) => {
      await core.markVerified(id, user, number);
    },
    safetyQR: async (user, number) => qr(await core.safetyQR(user, number)),
    verifyScanned: (conversation, payload) => core.verifyScanned(conversation, payload),
    devices: async () => devicesReport(await core.devices()),
    acceptDevice: async (id) => {
      await core.acceptDevice(id);
    },

    media: (offer) => core.media(offer),
    calls: async () => list(await core.calls()).map(callUpdate),
    placeCall: async (id) => callUpdate(await core.placeCall(id)),
    answerCall: async (id) => callUpdate(await core.answerCall(id)),
    joinCall: async (id) => callUpdate(await core.joinCall(id)),
    declineCall: async (id) => callUpdate(await core.declineCall(id)),
    hangup: async (id) => callUpdate(await core.hangup(id)),
    callKeys: (conversation) => core.callKeys(conversation),
    memberAt: async (conversation, leaf) => member(await core.memberAt(conversation, leaf)),
    setProber: (probe) => core.setProber(probe),

    passkeyRegister: () => core.passkeyRegister(),
    passkeyRegistered: (ceremony, json) => core.passkeyRegistered(ceremony, json),
    setWrap: (secret) => core.setWrap(secret),
    setUnlock: (ticket, unlock) => core.setUnlock(ticket, unlock),

    requests: async (statuses) => list(await core.requests(statuses)).map(callRequest),
    request: async (id) => callRequest(await core.request(id)),
    requestCall: async (o) => callRequest(await core.requestCall(o)),
    decide: async (id, action, o) => callRequest(await core.decide(id, action, o)),
    ackBriefing: async (id) => callRequest(await core.ackBriefing(id)),
    schedule: async (from, to) => list(await core.schedule(from, to)).map(callRequest),
    liveCalls: async () => list(await core.liveCalls()).map(callInfo),
    placeRequestCall: async (id) => callUpdate(await core.placeRequestCall(id)),
    ringIntoCall: async (call, user, preempt) => callUpdate(await core.ringIntoCall(call, user, preempt)),
    holdInCall: async (call, user, hold) => callUpdate(await core.holdInCall(call, user, hold)),
    transferCall: async (call, user) => callUpdate(await core.transferCall(call, user)),
    commitments: async (all) => list(await core.commitments(all)),
    closeCommitment: (id, status) => core.closeCommitment(id, status),
    fileReadout: async (call, principal, text) => {
      const r = await core.fileReadout(call, principal, text);
      return { ...r, others: list(r.others) };
    },
    startLineCheck: async (id) => lineCheck(await core.startLineCheck(id)),
    lineChecks: async (id) => list(await core.lineChecks(id)).map(lineCheck),
    hotlines: async () => list(await core.hotlines()).map((x) => ({ ...x, tests: list(x.tests) })),
    readouts: async () => list(await core.readouts()).map((r) => ({ ...r, others: list(r.others) })),
  };
}
