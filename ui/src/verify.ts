// The ledger verifier the viewer runs in the browser: an entry's leaf hash
// recomputed from the entry (the canonical encoding of docs/ledger.md), its
// RFC 6962 inclusion proof checked against a checkpoint's root, and the
// checkpoint's C2SP signed-note Ed25519 signature checked against the
// verifier key `valhalla ledger key` prints. Everything goes through
// WebCrypto (SHA-256, Ed25519); nothing here touches the DOM, so Node's
// test runner checks it against internal/ledger/testdata/vectors.json.

/** Why a verification failed, as the viewer names it. */
export type FailureKind = "leaf mismatch" | "root mismatch" | "bad signature" | "wrong key" | "malformed";

/** A failed verification: what failed and the details a person needs. */
export class VerifyError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
  }
}

const enc = new TextEncoder();

// ---- Bytes. ----

export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new Error(`not hex: ${s}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Decodes standard base64 (with padding), or throws. */
export function fromBase64(s: string): Uint8Array {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) throw new Error("not base64");
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function toBase64(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts) as Uint8Array<ArrayBuffer>));
}

// ---- RFC 8785 canonical JSON, from the JSON text the API returns. ----

/** A JSON value as parsed here: numbers keep their text. */
type JValue = null | boolean | string | { num: string } | JValue[] | Map<string, JValue>;

/** Parses one JSON value, keeping each number's text. */
function parseJSON(text: string): JValue {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i] as string)) i++;
  };
  const fail = (): never => {
    throw new Error(`invalid JSON at ${i}`);
  };
  const value = (): JValue => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const m = new Map<string, JValue>();
      ws();
      if (text[i] === "}") {
        i++;
        return m;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const k = str();
        ws();
        if (text[i++] !== ":") fail();
        m.delete(k); // of duplicate names the last counts, as in jsonb
        m.set(k, value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i++] !== "}") fail();
        return m;
      }
    }
    if (c === "[") {
      i++;
      const a: JValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return a;
      }
      for (;;) {
        a.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i++] !== "]") fail();
        return a;
      }
    }
    if (c === '"') return str();
    for (const [lit, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i));
    if (m === null) return fail();
    i += m[0].length;
    return { num: m[0] };
  };
  const str = (): string => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(i));
    if (m === null) return fail();
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const v = value();
  ws();
  if (i !== text.length) fail();
  return v;
}

function writeJSON(v: JValue): string {
  if (v === null || typeof v === "boolean") return String(v);
  if (typeof v === "string") return JSON.stringify(v); // escapes exactly what RFC 8785 §3.2.2.2 does
  if (Array.isArray(v)) return `[${v.map(writeJSON).join(",")}]`;
  if (v instanceof Map) {
    // Default sort compares UTF-16 code units, as RFC 8785 §3.2.3 asks.
    const names = [...v.keys()].sort();
    return `{${names.map((k) => `${JSON.stringify(k)}:${writeJSON(v.get(k) as JValue)}`).join(",")}}`;
  }
  const n = Number(v.num);
  // ECMAScript's Number::toString; a number no finite double holds keeps its text.
  return Number.isFinite(n) ? String(n) : v.num;
}

/** The RFC 8785 canonical form of the JSON text, as the Go ledger computes it. */
export function canonicalJSON(text: string): string {
  return writeJSON(parseJSON(text));
}

// ---- The canonical entry encoding and leaf hash (docs/ledger.md). ----

/** An entry as the API returns it; context is the JSON text of its object. */
export interface LedgerEntry {
  id: string;
  timestamp: string;
  level: string;
  category: string;
  message: string;
  correlation_id: string;
  user_id: string | null;
  trace_id: string | null;
  actor: string;
  /** The context object's JSON text as received (numbers as sent). */
  contextJSON: string;
}

/** The context object's JSON text inside an entry's JSON text. */
export function entryFromJSON(text: string): LedgerEntry {
  const v = parseJSON(text);
  if (!(v instanceof Map)) throw new Error("an entry is a JSON object");
  const s = (k: string): string => {
    const x = v.get(k);
    if (typeof x !== "string") throw new Error(`entry field ${k} is not a string`);
    return x;
  };
  const opt = (k: string): string | null => (v.get(k) === null || v.get(k) === undefined ? null : s(k));
  const ctx = v.get("context");
  return {
    id: s("id"), timestamp: s("timestamp"), level: s("level"), category: s("category"), message: s("message"),
    correlation_id: s("correlation_id"), user_id: opt("user_id"), trace_id: opt("trace_id"), actor: s("actor"),
    contextJSON: ctx === undefined ? "{}" : writeJSON(ctx),
  };
}

function uuidBytes(id: string): Uint8Array {
  const h = id.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`not a UUID: ${id}`);
  return fromHex(h);
}

/** Microseconds since the Unix epoch of an RFC 3339 instant (finer digits are cut, as in the database). */
export function unixMicros(ts: string): bigint {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/.exec(ts);
  if (m === null) throw new Error(`not an RFC 3339 timestamp: ${ts}`);
  const [, y, mo, d, hh, mi, ss, frac = "", zone = "Z"] = m;
  let secs = BigInt(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(hh), Number(mi), Number(ss)) / 1000);
  if (zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "-" ? -1n : 1n;
    secs -= sign * (BigInt(Number(zone.slice(1, 3)) * 3600 + Number(zone.slice(4, 6)) * 60));
  }
  return secs * 1_000_000n + BigInt((frac + "000000").slice(0, 6));
}

function str(s: string): Uint8Array {
  const b = enc.encode(s);
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, b.length);
  out.set(b, 4);
  return out;
}

function opt(s: string | null): Uint8Array {
  return s === null ? Uint8Array.of(0) : concat(Uint8Array.of(1), str(s));
}

/** The canonical encoding, version 1, of an entry. */
export function encodeEntry(e: LedgerEntry): Uint8Array {
  const ts = new Uint8Array(8);
  new DataView(ts.buffer).setBigInt64(0, unixMicros(e.timestamp));
  return concat(Uint8Array.of(1), uuidBytes(e.id), ts, str(e.level), str(e.category), str(e.message),
    str(e.correlation_id), opt(e.user_id), opt(e.trace_id), str(e.actor), str(canonicalJSON(e.contextJSON)));
}

/** RFC 6962 leaf hash: SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(0), data);
}

/** RFC 6962 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(1), left, right);
}

/**
 * The root an inclusion proof gives for leaf (0-based index) in a tree of
 * size leaves (RFC 9162 §2.1.3.2), or a VerifyError("root mismatch") when
 * the proof's shape does not fit the index and size.
 */
export async function rootFromInclusion(index: number, size: number, leaf: Uint8Array, proof: Uint8Array[]): Promise<Uint8Array> {
  if (index < 0 || index >= size) throw new VerifyError("root mismatch", `leaf ${index} is not in a tree of ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new VerifyError("root mismatch", "the proof is longer than the tree is deep");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new VerifyError("root mismatch", "the proof is shorter than the tree is deep");
  return r;
}

// ---- Signed notes (c2sp.org/signed-note) and checkpoints (c2sp.org/tlog-checkpoint). ----

/** A parsed Ed25519 note verifier key, name+hash+base64(0x01 || key). */
export interface VerifierKey {
  name: string;
  /** The key hash: the first 4 bytes of SHA-256(name || "\n" || 0x01 || key). */
  hash: number;
  key: CryptoKey;
}

/** Parses a verifier key as `valhalla ledger key` prints it, or throws VerifyError("malformed"). */
export async function parseVerifierKey(text: string): Promise<VerifierKey> {
  const parts = text.trim().split("+");
  const [name = "", hashHex = "", ...rest] = parts;
  const bad = (why: string): never => {
    throw new VerifyError("malformed", `not a verifier key (name+hash+key): ${why}`);
  };
  if (name === "" || /[\s+]/.test(name) || rest.length === 0) bad("three parts separated by +");
  if (!/^[0-9a-f]{8}$/.test(hashHex)) bad("the hash is 8 hex digits");
  let raw: Uint8Array = new Uint8Array();
  try {
    raw = fromBase64(rest.join("+"));
  } catch {
    bad("the key is not base64");
  }
  if (raw.length !== 33 || raw[0] !== 1) bad("not an Ed25519 key");
  const digest = await sha256(enc.encode(`${name}\n`), raw);
  const hash = new DataView(digest.buffer).getUint32(0);
  if (hash !== parseInt(hashHex, 16)) bad("its hash does not match its name and key");
  const key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
  return { name, hash, key };
}

/** A checkpoint: the origin, the tree size and the root hash. */
export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
}

/**
 * Verifies the signed note against key and returns its checkpoint. It
 * throws VerifyError "wrong key" when no signature is by this key,
 * "bad signature" when the key's signature does not verify, and
 * "malformed" when the note or checkpoint does not parse or the origin is
 * not the key's name.
 */
export async function openCheckpoint(note: string, key: VerifierKey): Promise<Checkpoint> {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new VerifyError("malformed", "not a signed note (no signature block)");
  const text = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split("\n");
  const signers: string[] = [];
  let signature: Uint8Array | undefined;
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (m === null) throw new VerifyError("malformed", `not a signature line: ${line}`);
    const [, name = "", b64 = ""] = m;
    let raw: Uint8Array;
    try {
      raw = fromBase64(b64);
    } catch {
      throw new VerifyError("malformed", `signature of ${name} is not base64`);
    }
    if (raw.length < 5) throw new VerifyError("malformed", `signature of ${name} is too short`);
    const hash = new DataView(raw.buffer).getUint32(0);
    signers.push(`${name}+${hash.toString(16).padStart(8, "0")}`);
    if (name === key.name && hash === key.hash) signature = raw.slice(4);
  }
  if (signature === undefined) {
    throw new VerifyError("wrong key", `the checkpoint is signed by ${signers.join(", ")}, not by the key ${key.name}+${key.hash.toString(16).padStart(8, "0")}`);
  }
  const ok = signature.length === 64 &&
    (await crypto.subtle.verify({ name: "Ed25519" }, key.key, signature as Uint8Array<ArrayBuffer>, enc.encode(text)));
  if (!ok) throw new VerifyError("bad signature", `the checkpoint's signature by ${key.name} does not verify: its text was changed or it was not signed with this key`);
  const lines = text.split("\n");
  const [origin = "", sizeText = "", rootText = ""] = lines;
  if (lines.length < 4 || !/^(0|[1-9]\d*)$/.test(sizeText)) throw new VerifyError("malformed", "the note is not a checkpoint (origin, size, root)");
  let root: Uint8Array;
  try {
    root = fromBase64(rootText);
  } catch {
    throw new VerifyError("malformed", "the checkpoint's root is not base64");
  }
  if (root.length !== 32) throw new VerifyError("malformed", "the checkpoint's root is not a SHA-256 hash");
  if (origin !== key.name) throw new VerifyError("malformed", `the checkpoint's origin ${origin} is not the key's name ${key.name}`);
  return { origin, size: Number(sizeText), root };
}

/** An inclusion proof as GET /system/logs/{id}/proof returns it. */
export interface InclusionProof {
  seq: number;
  leaf_hash: string;
  tree_size: number;
  proof: string[];
  checkpoint: string;
}

/** What a successful verification established. */
export interface Verified {
  seq: number;
  size: number;
  root: string;
  leaf: string;
}

/**
 * Verifies that entry is sealed: its recomputed leaf is the proof's leaf,
 * the proof leads from it to the root of the proof's checkpoint, and that
 * checkpoint is signed by key. latest, when given, is the signed latest
 * checkpoint, which must be signed by key too and be no smaller.
 */
export async function verifyEntry(entry: LedgerEntry, p: InclusionProof, key: VerifierKey, latest?: string): Promise<Verified> {
  if (latest !== undefined) {
    const l = await openCheckpoint(latest, key);
    if (l.size < p.tree_size) throw new VerifyError("malformed", `the latest checkpoint (${l.size}) is older than the proof's (${p.tree_size})`);
  }
  const cp = await openCheckpoint(p.checkpoint, key);
  if (cp.size !== p.tree_size) throw new VerifyError("malformed", `the proof is for a tree of ${p.tree_size}, its checkpoint for ${cp.size}`);
  const leaf = await leafHash(encodeEntry(entry));
  const sealed = fromBase64(p.leaf_hash);
  if (!equal(leaf, sealed)) {
    throw new VerifyError("leaf mismatch", `the entry as stored hashes to ${toBase64(leaf)}, but the leaf sealed at seq ${p.seq} is ${p.leaf_hash}: the entry was changed after it was sealed`);
  }
  const root = await rootFromInclusion(p.seq - 1, p.tree_size, sealed, p.proof.map(fromBase64));
  if (!equal(root, cp.root)) {
    throw new VerifyError("root mismatch", `the proof leads to root ${toBase64(root)}, but checkpoint ${cp.size} signs ${toBase64(cp.root)}`);
  }
  return { seq: p.seq, size: cp.size, root: toBase64(cp.root), leaf: toBase64(leaf) };
}
