// The browser's ledger verifier (verify.ts) against the Go ledger's test
// vectors (internal/ledger/testdata/vectors.json): encodings, leaf hashes,
// roots, every inclusion proof and a signed checkpoint, and each way a
// verification fails.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  canonicalJSON, encodeEntry, fromHex, hex, leafHash, nodeHash, openCheckpoint, parseVerifierKey,
  rootFromInclusion, toBase64, unixMicros, verifyEntry, VerifyError, type FailureKind, type LedgerEntry,
} from "./verify.js";

interface Vectors {
  entries: (Record<string, unknown> & { encoding: string; leaf_hash: string })[];
  roots: string[];
  proofs: { tree_size: number; index: number; proof: string[] }[];
  checkpoint: { verifier_key: string; note: string };
}

const file = new URL("../../internal/ledger/testdata/vectors.json", import.meta.url);
const raw = readFileSync(file, "utf8");
const vectors = JSON.parse(raw) as Vectors;

/** The entry as the API would send it, from the vectors' own JSON text. */
function entry(i: number): LedgerEntry {
  const v = vectors.entries[i];
  assert.ok(v);
  return {
    id: v["id"] as string, timestamp: v["timestamp"] as string, level: v["level"] as string,
    category: v["category"] as string, message: v["message"] as string, correlation_id: v["correlation_id"] as string,
    user_id: v["user_id"] as string | null, trace_id: v["trace_id"] as string | null, actor: v["actor"] as string,
    contextJSON: contextTexts[i] as string,
  };
}

/** Each entry's context exactly as the file spells it (numbers such as 123456789012345678901234 as written). */
const contextTexts: string[] = (() => {
  const out: string[] = [];
  let from = 0;
  for (;;) {
    const at = raw.indexOf('"context": ', from);
    if (at < 0) return out;
    let i = at + '"context": '.length;
    const start = i;
    let depth = 0;
    let inString = false;
    for (; ; i++) {
      const c = raw[i];
      if (inString) {
        if (c === "\\") i++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) break;
      }
    }
    out.push(raw.slice(start, i + 1));
    from = i;
  }
})();

async function rejects(p: Promise<unknown>, kind: FailureKind): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof VerifyError && e.kind === kind, `want ${kind}`);
}

test("every vector encodes and hashes as the Go ledger does", async () => {
  assert.equal(contextTexts.length, vectors.entries.length);
  for (let i = 0; i < vectors.entries.length; i++) {
    const enc = encodeEntry(entry(i));
    assert.equal(hex(enc), vectors.entries[i]?.encoding, `entry ${i} encoding`);
    assert.equal(hex(await leafHash(enc)), vectors.entries[i]?.leaf_hash, `entry ${i} leaf hash`);
  }
});

test("the RFC 6962 tree of every prefix has the vectors' root", async () => {
  const leaves = vectors.entries.map((v) => fromHex(v.leaf_hash));
  const mth = async (l: Uint8Array[]): Promise<Uint8Array> => {
    if (l.length === 1) return l[0] as Uint8Array;
    let k = 1;
    while (k * 2 < l.length) k *= 2;
    return nodeHash(await mth(l.slice(0, k)), await mth(l.slice(k)));
  };
  for (let n = 1; n <= leaves.length; n++) {
    assert.equal(hex(await mth(leaves.slice(0, n))), vectors.roots[n - 1], `root of ${n}`);
  }
});

test("every inclusion proof leads to its tree's root, and a wrong one does not", async () => {
  assert.ok(vectors.proofs.length >= 60);
  for (const p of vectors.proofs) {
    const leaf = fromHex(vectors.entries[p.index]?.leaf_hash ?? "");
    const root = await rootFromInclusion(p.index, p.tree_size, leaf, p.proof.map(fromHex));
    assert.equal(hex(root), vectors.roots[p.tree_size - 1], `proof of ${p.index} in ${p.tree_size}`);
    if (p.tree_size > 1) {
      const other = fromHex(vectors.entries[(p.index + 1) % p.tree_size]?.leaf_hash ?? "");
      const wrong = await rootFromInclusion(p.index, p.tree_size, other, p.proof.map(fromHex));
      assert.notEqual(hex(wrong), vectors.roots[p.tree_size - 1]);
      await rejects(rootFromInclusion(p.index, p.tree_size, leaf, [...p.proof.map(fromHex), leaf]), "root mismatch");
    }
  }
});

test("canonical JSON follows RFC 8785 and keeps numbers no double holds", () => {
  assert.equal(canonicalJSON(`{"b":[1.0,1E30,0.000001,1e-7,-0],"a":"\\u00e9\\u0001\\/"}`), `{"a":"é\\u0001/","b":[1,1e+30,0.000001,1e-7,0]}`);
  assert.equal(canonicalJSON(`{"a":1e400}`), `{"a":1e400}`);
  assert.equal(canonicalJSON(`{"a":1,"a":2}`), `{"a":2}`);
  assert.equal(canonicalJSON(`{"\u20ac":1,"\ud83d\ude00":2,"\ufb01":3}`), `{"€":1,"😀":2,"ﬁ":3}`);
  assert.throws(() => canonicalJSON(`{"a":1,}`));
});

test("timestamps are microseconds since the epoch, in any offset", () => {
  assert.equal(unixMicros("1970-01-01T00:00:00Z"), 0n);
  assert.equal(unixMicros("1999-12-31T23:59:59.999999Z"), 946684799999999n);
  assert.equal(unixMicros("2000-01-01T01:00:00.5+01:00"), 946684800500000n);
  assert.throws(() => unixMicros("yesterday"));
});

test("the vectors' checkpoint verifies, and each failure is named", async () => {
  const { verifier_key: vkey, note } = vectors.checkpoint;
  const key = await parseVerifierKey(vkey);
  const cp = await openCheckpoint(note, key);
  const n = vectors.entries.length;
  assert.equal(cp.size, n);
  assert.equal(hex(cp.root), vectors.roots[n - 1]);

  // A changed size: the signature no longer covers the text.
  await rejects(openCheckpoint(note.replace(`\n${n}\n`, `\n${n + 1}\n`), key), "bad signature");
  // Another key of the same name: its hash differs, so no signature is by it.
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const name = key.name;
  const kh = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array([...new TextEncoder().encode(`${name}\n`), 1, ...pub])));
  const other = await parseVerifierKey(`${name}+${hex(kh.slice(0, 4))}+${toBase64(new Uint8Array([1, ...pub]))}`);
  await rejects(openCheckpoint(note, other), "wrong key");
  await rejects(parseVerifierKey(vkey.replace(/\+[0-9a-f]{8}\+/, "+00000000+")), "malformed");
  await rejects(parseVerifierKey("not a key"), "malformed");
});

test("verifyEntry: verified, or leaf mismatch, root mismatch, bad signature", async () => {
  // Sign checkpoints of the vectors' trees with a key of our own, as the server would.
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const name = "valhalla-ledger-test";
  const kh = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array([...new TextEncoder().encode(`${name}\n`), 1, ...pub])));
  const key = await parseVerifierKey(`${name}+${hex(kh.slice(0, 4))}+${toBase64(new Uint8Array([1, ...pub]))}`);
  const sign = async (size: number, rootHex: string): Promise<string> => {
    const text = `${name}\n${size}\n${toBase64(fromHex(rootHex))}\n`;
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, new TextEncoder().encode(text)));
    return `${text}\n\u2014 ${name} ${toBase64(new Uint8Array([...kh.slice(0, 4), ...sig]))}\n`;
  };
  const p = vectors.proofs.find((x) => x.tree_size === 7 && x.index === 4);
  assert.ok(p);
  const proof = {
    seq: 5, tree_size: 7, leaf_hash: toBase64(fromHex(vectors.entries[4]?.leaf_hash ?? "")),
    proof: p.proof.map((h) => toBase64(fromHex(h))), checkpoint: await sign(7, vectors.roots[6] ?? ""),
  };
  const ok = await verifyEntry(entry(4), proof, key, await sign(11, vectors.roots[10] ?? ""));
  assert.deepEqual([ok.seq, ok.size], [5, 7]);

  await rejects(verifyEntry({ ...entry(4), message: "changed" }, proof, key), "leaf mismatch");
  await rejects(verifyEntry({ ...entry(4), contextJSON: `{"n":1}` }, proof, key), "leaf mismatch");
  await rejects(verifyEntry(entry(4), { ...proof, checkpoint: await sign(7, vectors.roots[5] ?? "") }, key), "root mismatch");
  // One character of the signature itself (past the key hash) changed.
  const at = proof.checkpoint.lastIndexOf(" ") + 20;
  const c = proof.checkpoint[at] === "A" ? "B" : "A";
  const forged = proof.checkpoint.slice(0, at) + c + proof.checkpoint.slice(at + 1);
  await rejects(verifyEntry(entry(4), { ...proof, checkpoint: forged }, key), "bad signature");
  await rejects(verifyEntry(entry(4), proof, await parseVerifierKey(vectors.checkpoint.verifier_key)), "wrong key");
});
