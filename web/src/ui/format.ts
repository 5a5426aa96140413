// Formatting shared by the views: classification levels, names, times,
// sizes. Pure functions of the core's objects.

import type { Conversation, Me, Member } from "../core";

export type Level = "unclassified" | "restricted" | "confidential" | "secret" | "top-secret" | "unknown";

// level maps a clearance or classification ("secret", "TOP_SECRET",
// "Top Secret") to the colour family the banner uses.
export function level(clearance: string): Level {
  const k = clearance.trim().toLowerCase().replace(/[\s_]+/g, "-");
  switch (k) {
    case "unclassified":
    case "restricted":
    case "confidential":
    case "secret":
    case "top-secret":
      return k;
    case "topsecret":
      return "top-secret";
    default:
      return "unknown";
  }
}

// levelLabel is the level as a desk phone's display shows it: "TOP SECRET".
export function levelLabel(clearance: string): string {
  const s = clearance.trim().replace(/[-_\s]+/g, " ").toUpperCase();
  return s === "" ? "UNMARKED" : s;
}

// Roles that put someone on the record. Whoever holds one is shown
// prominently in every conversation they are in: nobody may listen in
// unseen.
export const RECORD_ROLES: ReadonlyMap<string, string> = new Map([
  ["note-taker", "Note-taker"],
  ["archive", "Archive"],
  ["recorder", "Recorder"],
]);

export function onRecord(roles: readonly string[]): string[] {
  return roles.filter((r) => RECORD_ROLES.has(r));
}

export interface Participant {
  user: string;
  org: string;
  roles: string[];
  clearance: string;
  devices: number;
  self: boolean;
}

// participants folds a conversation's members (one per device) into one
// entry per user, in order of first appearance.
export function participants(members: readonly Member[], me: Me): Participant[] {
  const byUser = new Map<string, Participant>();
  for (const m of members) {
    let p = byUser.get(m.user);
    if (!p) {
      p = { user: m.user, org: m.org, roles: [], clearance: m.clearance, devices: 0, self: m.user === me.user };
      byUser.set(m.user, p);
    }
    p.devices++;
    for (const r of m.roles) if (!p.roles.includes(r)) p.roles.push(r);
  }
  return [...byUser.values()];
}

// conversationTitle is the title, or else the other participants' names.
export function conversationTitle(c: Conversation, me: Me): string {
  if (c.title && c.title.trim() !== "") return c.title;
  const others = participants(c.members, me).filter((p) => !p.self).map((p) => p.user);
  return others.length > 0 ? others.join(", ") : "Only you";
}

export function parseTime(rfc3339: string): Date | undefined {
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

export function clock(d: Date): string {
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

export function day(d: Date): string {
  return d.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

export function fullTime(d: Date): string {
  return d.toLocaleString(undefined, { dateStyle: "full", timeStyle: "long" });
}

export function size(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "? B";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function list(items: readonly string[]): string {
  return items.join(", ");
}
