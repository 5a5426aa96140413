// tolerant wraps the core so that the views can trust the shapes
// core.d.ts promises. The core's objects come from Go through JSON, where
// an empty list may arrive as null; a view reading .length of null would
// take the whole page down, so lists are made lists here, once.

import type { Contact, Conversation, Core, Me, Member, Message } from "./core";

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
    follow: (onUpdate, onStatus) =>
      core.follow(
        (u) => onUpdate(u.message ? { ...u, message: message(u.message) } : u),
        onStatus,
      ),
  };
}
