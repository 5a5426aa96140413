#!/usr/bin/env python3
"""Check a Hotline transparency-log export without Hotline's code.

Usage: verify-log.py EXPORT_DIR

EXPORT_DIR is what `hotline log export --data DIR --out EXPORT_DIR` writes:
  checkpoint  the newest signed checkpoint (C2SP tlog-checkpoint in a signed note)
  entries     every log entry, base64, one per line, in index order
  log-keys    the log's note verifier keys, one per line (every key set's)
  root-key    the organisation's root note verifier key

It recomputes the RFC 6962 Merkle tree hash of the entries with hashlib,
checks it against the checkpoint, and verifies the checkpoint's Ed25519
signature with the openssl command. Only the Python standard library and
OpenSSL 3 are used. Exit status 0 means the export is consistent.
"""
import base64
import hashlib
import os
import subprocess
import sys
import tempfile


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(leaves):
    """RFC 6962 section 2.1, computed level by level."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    # Merge the right edge bottom-up: a stack of (size, hash) of perfect subtrees.
    stack = []
    for h in leaves:
        size = 1
        while stack and stack[-1][0] == size:
            left = stack.pop()[1]
            h, size = node_hash(left, h), size * 2
        stack.append((size, h))
    h = stack.pop()[1]
    while stack:
        h = node_hash(stack.pop()[1], h)
    return h


def parse_key(vkey):
    """A note verifier key: name+hexhash+base64(0x01 || 32-byte Ed25519 key)."""
    name, keyhash, b64 = vkey.strip().split("+", 2)  # base64 may itself contain '+' 
    raw = base64.b64decode(b64)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 note key: " + vkey)
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != keyhash:
        raise ValueError("key hash does not match key: " + vkey)
    return name, want, raw[1:]


def openssl_verify(pub, message, sig):
    spki = bytes.fromhex("302a300506032b6570032100") + pub  # Ed25519 SubjectPublicKeyInfo
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for name, content in (("key.der", spki), ("msg", message), ("sig", sig)):
            paths[name] = os.path.join(d, name)
            with open(paths[name], "wb") as f:
                f.write(content)
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", paths["key.der"],
                            "-rawin", "-in", paths["msg"], "-sigfile", paths["sig"]], capture_output=True)
        return r.returncode == 0


def main(export):
    with open(os.path.join(export, "checkpoint"), "rb") as f:
        note = f.read()
    body, sep, sigs = note.partition(b"\n\n")
    if not sep:
        sys.exit("checkpoint: not a signed note")
    body += b"\n"  # the signed text ends with its last newline
    lines = body.decode().split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])

    with open(os.path.join(export, "entries")) as f:
        entries = [base64.b64decode(l) for l in f.read().split()]
    if len(entries) != size:
        sys.exit("checkpoint covers %d entries but the export holds %d" % (size, len(entries)))
    computed = tree_hash([leaf_hash(e) for e in entries])
    if computed != root:
        sys.exit("tree hash of the entries %s does not match the checkpoint's %s" % (computed.hex(), root.hex()))

    with open(os.path.join(export, "log-keys")) as f:
        keys = [parse_key(l) for l in f if l.strip()]
    verified = False
    for line in sigs.decode().splitlines():
        if not line.startswith("\u2014 "):
            continue
        name, b64 = line[2:].rsplit(" ", 1)
        blob = base64.b64decode(b64)
        for kname, khash, pub in keys:
            if kname == name == origin and blob[:4] == khash:
                verified = verified or openssl_verify(pub, body, blob[4:])
    if not verified:
        sys.exit("no valid signature by a log key named %s" % origin)
    print("OK: %d entries, tree hash %s, signed by %s" % (size, root.hex(), origin))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        main(sys.argv[1])
    except (ValueError, IndexError, OSError) as e:
        sys.exit("malformed export: %s" % e)
