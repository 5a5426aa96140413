// A ts-mls client driven over standard input and output, one JSON object
// per line each way, for Hotline's MLS interoperability tests.
//
// Requests: {"op": ..., ...}; every response is {"ok": true, ...} or
// {"ok": false, "error": "..."}. Binary values are hex. Handshake messages
// are sent as PublicMessage, as Hotline's delivery service requires.
//
//   hello   {suite: 1|83, name}    -> {key_package}   make identity and key package
//   create  {group_id}             -> {}              new group with this member alone
//   add     {key_package}          -> {commit, welcome}
//   update  {}                     -> {commit}        empty commit with a path (new leaf key)
//   remove  {leaf}                 -> {commit}        commit removing the member at leaf
//   leaf    {}                     -> {leaf}          this member's leaf index
//   group_info {}                  -> {group_info}    GroupInfo with external_pub and ratchet tree
//   external_join {group_info}     -> {commit}        join by external commit (tree from the GroupInfo)
//   join    {welcome}              -> {}              (ratchet tree from the Welcome's extension)
//   process {message}              -> {kind: "application", data} | {kind: "commit"}
//   send    {data}                 -> {message}       an application message
//   state   {}                     -> {epoch, epoch_authenticator}
//   bench   {suite, n, count}      -> {add, update, remove: {commit_ns, process_ns}}
//           times, inside Node, commits of each kind in a group of n
//           members made by ts-mls, and a member processing them: the
//           mean of count runs, each from the same state (ts-mls states
//           are immutable), in ns per operation.
//
// `node harness.mjs --selftest` runs two clients against each other.
import * as mls from "ts-mls";
import { createInterface } from "node:readline";

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));
const suiteNames = { 1: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", 83: "MLS_256_XWING_AES256GCM_SHA512_Ed25519" };

export class Client {
  async hello({ suite, name }) {
    if (!suiteNames[suite]) throw new Error(`suite ${suite} not offered by the harness`);
    this.impl = await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(suiteNames[suite]));
    const credential = { credentialType: "basic", identity: new TextEncoder().encode(name) };
    this.kp = await mls.generateKeyPackage(credential, mls.defaultCapabilities(), mls.defaultLifetime, [], this.impl);
    return { key_package: hex(mls.encodeMlsMessage({ keyPackage: this.kp.publicPackage, wireformat: "mls_key_package", version: "mls10" })) };
  }
  async create({ group_id }) {
    this.state = await mls.createGroup(unhex(group_id), this.kp.publicPackage, this.kp.privatePackage, [], this.impl);
    return {};
  }
  decode(h, wireformat) {
    const [m] = mls.decodeMlsMessage(unhex(h), 0) ?? [];
    if (!m || (wireformat && m.wireformat !== wireformat)) throw new Error(`expected ${wireformat ?? "an MLS message"}`);
    return m;
  }
  async commit(options) {
    const r = await mls.createCommit({ state: this.state, cipherSuite: this.impl }, { wireAsPublicMessage: true, ratchetTreeExtension: true, ...options });
    this.state = r.newState;
    r.consumed.forEach(mls.zeroOutUint8Array);
    const out = { commit: hex(mls.encodeMlsMessage(r.commit)) };
    if (r.welcome) out.welcome = hex(mls.encodeMlsMessage({ welcome: r.welcome, wireformat: "mls_welcome", version: "mls10" }));
    return out;
  }
  async add({ key_package }) {
    const kp = this.decode(key_package, "mls_key_package").keyPackage;
    return this.commit({ extraProposals: [{ proposalType: "add", add: { keyPackage: kp } }] });
  }
  async update() {
    return this.commit({});
  }
  async remove({ leaf }) {
    return this.commit({ extraProposals: [{ proposalType: "remove", remove: { removed: leaf } }] });
  }
  async group_info() {
    const gi = await mls.createGroupInfoWithExternalPubAndRatchetTree(this.state, [], this.impl);
    return { group_info: hex(mls.encodeMlsMessage({ groupInfo: gi, wireformat: "mls_group_info", version: "mls10" })) };
  }
  async external_join({ group_info }) {
    const gi = this.decode(group_info, "mls_group_info").groupInfo;
    const r = await mls.joinGroupExternal(gi, this.kp.publicPackage, this.kp.privatePackage, false, this.impl);
    this.state = r.newState;
    return { commit: hex(mls.encodeMlsMessage({ publicMessage: r.publicMessage, wireformat: "mls_public_message", version: "mls10" })) };
  }
  async leaf() {
    return { leaf: this.state.privatePath.leafIndex };
  }
  async join({ welcome }) {
    const w = this.decode(welcome, "mls_welcome").welcome;
    this.state = await mls.joinGroup(w, this.kp.publicPackage, this.kp.privatePackage, mls.emptyPskIndex, this.impl);
    return {};
  }
  async process({ message }) {
    const m = this.decode(message);
    if (m.wireformat === "mls_private_message") {
      const r = await mls.processPrivateMessage(this.state, m.privateMessage, mls.emptyPskIndex, this.impl);
      this.state = r.newState;
      r.consumed?.forEach(mls.zeroOutUint8Array);
      return r.kind === "applicationMessage" ? { kind: "application", data: hex(r.message) } : { kind: "commit" };
    }
    if (m.wireformat === "mls_public_message") {
      const r = await mls.processPublicMessage(this.state, m.publicMessage, mls.emptyPskIndex, this.impl);
      this.state = r.newState;
      return { kind: "commit" };
    }
    throw new Error(`cannot process ${m.wireformat}`);
  }
  async send({ data }) {
    const r = await mls.createApplicationMessage(this.state, unhex(data), this.impl);
    this.state = r.newState;
    r.consumed.forEach(mls.zeroOutUint8Array);
    return { message: hex(mls.encodeMlsMessage({ privateMessage: r.privateMessage, wireformat: "mls_private_message", version: "mls10" })) };
  }
  async state_() {
    return { epoch: Number(this.state.groupContext.epoch), epoch_authenticator: hex(this.state.keySchedule.epochAuthenticator) };
  }
}

// bench builds a group of n members in ts-mls (a creator adding n-1 key
// packages in one commit, and the member at leaf 1 joining), then times
// the creator's commits of each kind and leaf 1 processing them.
async function bench({ suite, n, count }) {
  const a = new Client(), b = new Client();
  await a.hello({ suite, name: "bench creator" });
  const { key_package } = await b.hello({ suite, name: "bench member" });
  await a.create({ group_id: hex(new TextEncoder().encode("bench group")) });
  const kp = (name) => mls.generateKeyPackage({ credentialType: "basic", identity: new TextEncoder().encode(name) }, mls.defaultCapabilities(), mls.defaultLifetime, [], a.impl);
  const adds = [{ proposalType: "add", add: { keyPackage: b.decode(key_package, "mls_key_package").keyPackage } }];
  for (let i = 2; i < n; i++) adds.push({ proposalType: "add", add: { keyPackage: (await kp(`member ${i}`)).publicPackage } });
  const { welcome } = await a.commit({ extraProposals: adds });
  await b.join({ welcome });
  const fresh = (await kp("newcomer")).publicPackage;
  const kinds = {
    add: [{ proposalType: "add", add: { keyPackage: fresh } }],
    update: [],
    remove: [{ proposalType: "remove", remove: { removed: n - 1 } }],
  };
  const out = {};
  for (const [kind, extraProposals] of Object.entries(kinds)) {
    const opts = { wireAsPublicMessage: true, ratchetTreeExtension: false, extraProposals };
    let commit;
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      commit = (await mls.createCommit({ state: a.state, cipherSuite: a.impl }, opts)).commit;
    }
    const commitNs = Number(process.hrtime.bigint() - t0) / count;
    t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      await mls.processPublicMessage(b.state, commit.publicMessage, mls.emptyPskIndex, b.impl);
    }
    out[kind] = { commit_ns: commitNs, process_ns: Number(process.hrtime.bigint() - t0) / count };
  }
  return out;
}

async function serve() {
  const c = new Client();
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let res;
    try {
      const req = JSON.parse(line);
      const fn = { hello: c.hello, create: c.create, add: c.add, update: c.update, join: c.join, process: c.process, send: c.send, state: c.state_,
        remove: c.remove, leaf: c.leaf, group_info: c.group_info, external_join: c.external_join, bench }[req.op];
      if (!fn) throw new Error(`unknown op ${req.op}`);
      res = { ok: true, ...(await fn.call(c, req)) };
    } catch (e) {
      res = { ok: false, error: String(e?.message ?? e) };
    }
    process.stdout.write(JSON.stringify(res) + "\n");
  }
}

async function selftest() {
  for (const suite of [1, 83]) {
    const a = new Client(), b = new Client();
    await a.hello({ suite, name: "alice" });
    const { key_package } = await b.hello({ suite, name: "bob" });
    await a.create({ group_id: hex(new TextEncoder().encode("g")) });
    const { welcome } = await a.add({ key_package });
    await b.join({ welcome });
    const { commit } = await b.update();
    await a.process({ message: commit });
    const { message } = await a.send({ data: hex(new TextEncoder().encode("hello bob")) });
    const got = await b.process({ message });
    const [sa, sb] = [await a.state_(), await b.state_()];
    if (got.data !== hex(new TextEncoder().encode("hello bob")) || sa.epoch_authenticator !== sb.epoch_authenticator || sa.epoch !== 2) {
      throw new Error(`suite ${suite}: self-test failed ${JSON.stringify({ got, sa, sb })}`);
    }
    console.log(`suite ${suite}: ok (epoch ${sa.epoch})`);
  }
}

if (process.argv.includes("--selftest")) await selftest();
else await serve();
