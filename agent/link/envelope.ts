/**
 * Signed envelopes: every MQTT payload of the DSO link is one (docs/protocol.md, "MQTT link").
 *
 * An envelope is canonical JSON
 *
 *   {"body":{...},"chainId":C,"from":"0x…EIP-55","historical":true?,"id":"0x…16 bytes","kind":"…","seq":N,
 *    "session":S,"sig":"0x…65 bytes","time":T,"v":1}
 *
 * with sig = r ‖ s ‖ v over signingDigest('mgmc/link/v1', chainId, canonical bytes of the envelope without sig).
 * `id` is 16 random bytes, unique per message: receivers dedup by it. `session` is the sender's process run
 * (persisted, +1 per start) and `seq` counts the envelopes the sender sealed in that session from 1; seq 0 marks an
 * envelope sealed ahead of time outside the sequence (the last will). `historical` is set when the outbox replays
 * an item created before the current broker connection.
 *
 * openEnvelope never throws on bad input: it returns a typed rejection a receiver can log and count.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { type SignatureVerifier, signingDigest, verifyDigest } from '../identity/signing.js';
import type { Signer } from '../ledger/block.js';
import { type CanonicalValue, canonicalBytes } from '../ledger/canonical.js';
import { canonicalText } from '../ledger/canonical-text.js';

export const ENVELOPE_VERSION = 1;
export const ENVELOPE_TAG = 'mgmc/link/v1';
/** Default largest envelope a receiver parses (bytes on the wire). */
export const DEFAULT_MAX_ENVELOPE_BYTES = 256 * 1024;

export type EnvelopeBody = { readonly [key: string]: CanonicalValue | undefined };

export interface Envelope {
  readonly v: 1;
  /** 0x + 32 lower-case hex digits. */
  readonly id: string;
  readonly kind: string;
  /** EIP-55 address of the signer. */
  readonly from: Address;
  readonly chainId: number;
  readonly session: number;
  readonly seq: number;
  /** ms since the Unix epoch (UTC) when the envelope was sealed. */
  readonly time: number;
  readonly historical?: true;
  readonly body: EnvelopeBody;
  /** 0x-hex of the 65-byte signature. */
  readonly sig: string;
}

export interface EnvelopeFields {
  /** Default: 16 random bytes. */
  readonly id?: string;
  readonly kind: string;
  readonly chainId: number;
  readonly session: number;
  readonly seq: number;
  readonly time: number;
  readonly historical?: boolean;
  readonly body: EnvelopeBody;
}

export interface SealedEnvelope {
  readonly envelope: Envelope;
  /** The canonical bytes that go on the wire. */
  readonly bytes: Uint8Array;
}

export type RejectionReason =
  | 'oversized'
  | 'malformed-json'
  | 'not-canonical'
  | 'missing-field'
  | 'unknown-field'
  | 'bad-field'
  | 'unsupported-version'
  | 'wrong-chain'
  | 'wrong-sender'
  | 'bad-signature';

export interface EnvelopeRejection {
  readonly ok: false;
  readonly reason: RejectionReason;
  /** What is wrong, for a person: names the field and, when known, the envelope id and sender. */
  readonly detail: string;
  readonly id?: string;
  readonly from?: string;
}

export type OpenResult = { readonly ok: true; readonly envelope: Envelope } | EnvelopeRejection;

export interface OpenOptions {
  readonly maxBytes?: number;
  /** The receiver's chain: an envelope signed for another chain is refused. */
  readonly chainId: number;
  /** When set, the envelope must come from this address (e.g. the address in the topic). */
  readonly expectedFrom?: string;
  /** A cached verifier (faster for many envelopes from few senders). */
  readonly verifier?: SignatureVerifier;
}

const ID_RE = /^0x[0-9a-f]{32}$/;
const KIND_RE = /^[a-z][a-z0-9.-]{0,63}$/;
const FIELDS = ['v', 'id', 'kind', 'from', 'chainId', 'session', 'seq', 'time', 'body', 'sig'] as const;
const OPTIONAL_FIELDS = ['historical'];

export class EnvelopeError extends Error {
  override name = 'EnvelopeError';
}

export function newEnvelopeId(): string {
  return toHex(randomBytes(16));
}

/** The digest a sender signs: everything but `sig`, canonical, under the link's type tag and the envelope's chain. */
export function envelopeDigest(envelope: Omit<Envelope, 'sig'> & { readonly sig?: string }): Uint8Array {
  const { sig: _sig, ...unsigned } = envelope;
  return signingDigest(ENVELOPE_TAG, envelope.chainId, canonicalBytes(unsigned as unknown as CanonicalValue));
}

/** Seals `fields` with `signer`. Throws an EnvelopeError naming the bad field when the fields are invalid. */
export function sealEnvelope(signer: Signer, fields: EnvelopeFields): SealedEnvelope {
  const unsigned = {
    v: ENVELOPE_VERSION,
    id: fields.id ?? newEnvelopeId(),
    kind: fields.kind,
    from: signer.address,
    chainId: fields.chainId,
    session: fields.session,
    seq: fields.seq,
    time: fields.time,
    ...(fields.historical === true ? { historical: true as const } : {}),
    body: fields.body,
  };
  const problem = checkFields(unsigned as unknown as Record<string, unknown>, false);
  if (problem !== undefined) throw new EnvelopeError(`cannot seal a ${fields.kind} envelope: ${problem.detail}`);
  let digest: Uint8Array;
  try {
    digest = envelopeDigest(unsigned as Omit<Envelope, 'sig'>);
  } catch (err) {
    throw new EnvelopeError(`cannot seal a ${fields.kind} envelope: body ${(err as Error).message}`);
  }
  const envelope = { ...unsigned, sig: toHex(signer.signDigest(digest)) } as Envelope;
  return { envelope, bytes: canonicalBytes(envelope as unknown as CanonicalValue) };
}

/**
 * The same envelope (id, session, seq, time, body) flagged `historical` and signed again: what the outbox sends when
 * it replays an item created before the current connection. The receiver dedups by id, as for any resend.
 */
export function resealHistorical(signer: Signer, envelope: Envelope): SealedEnvelope {
  if (envelope.historical === true) return { envelope, bytes: canonicalBytes(envelope as unknown as CanonicalValue) };
  if (envelope.from !== signer.address) {
    throw new EnvelopeError(
      `envelope ${envelope.id} is from ${envelope.from}, not from the signing key ${signer.address}`,
    );
  }
  return sealEnvelope(signer, { ...envelope, historical: true });
}

/**
 * Parses and verifies received bytes. Checks in order: size, JSON, canonical form, fields, version, chain, sender,
 * signature. Never throws.
 */
export function openEnvelope(bytes: Uint8Array, options: OpenOptions): OpenResult {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
  if (!(bytes instanceof Uint8Array)) return reject('malformed-json', 'payload is not bytes');
  if (bytes.length > maxBytes) {
    return reject('oversized', `envelope is ${bytes.length} bytes, more than the ${maxBytes} bytes a receiver accepts`);
  }
  let text: string;
  try {
    // ignoreBOM keeps a leading byte order mark in the text, so the canonical check sees (and refuses) it: the text
    // must be exactly the bytes, because the signed bytes are cut out of the received ones below.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return reject('malformed-json', 'payload is not valid UTF-8');
  }
  if (text.charCodeAt(0) === 0xfeff) {
    return reject('not-canonical', 'envelope starts with a byte order mark (U+FEFF): canonical JSON has none');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return reject('malformed-json', `payload is not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return reject('malformed-json', 'payload is JSON but not an object');
  }
  const record = value as Record<string, unknown>;
  const known = {
    id: typeof record.id === 'string' ? record.id.slice(0, 80) : undefined,
    from: typeof record.from === 'string' ? record.from.slice(0, 80) : undefined,
  };
  const rejectKnown = (reason: RejectionReason, detail: string): EnvelopeRejection => {
    const who = [known.id && `id ${known.id}`, known.from && `from ${known.from}`].filter(Boolean).join(', ');
    return { ok: false, reason, detail: who === '' ? detail : `${detail} (${who})`, ...known };
  };
  let canonical: string;
  try {
    // Same text and errors as canonicalize, but a parsed canonical envelope is already sorted, so this is one walk
    // and a native JSON.stringify instead of a sort and string building per object.
    canonical = canonicalText(record as CanonicalValue);
  } catch (err) {
    return rejectKnown('not-canonical', `envelope cannot be canonical: ${(err as Error).message}`);
  }
  if (canonical !== text) {
    return rejectKnown('not-canonical', 'envelope is not in canonical form (key order, whitespace or escapes differ)');
  }
  if (record.v === undefined) return rejectKnown('missing-field', 'envelope has no version field v');
  if (record.v !== ENVELOPE_VERSION) {
    return rejectKnown(
      'unsupported-version',
      `envelope version ${JSON.stringify(record.v)} is not supported (this agent reads v ${ENVELOPE_VERSION}): upgrade mgmc-agent`,
    );
  }
  const problem = checkFields(record, true);
  if (problem !== undefined) return rejectKnown(problem.reason, problem.detail);
  const envelope = record as unknown as Envelope;
  if (envelope.chainId !== options.chainId) {
    return rejectKnown(
      'wrong-chain',
      `envelope is for chain ${envelope.chainId}, this link is chain ${options.chainId}: check the sender's chainId`,
    );
  }
  if (options.expectedFrom !== undefined && envelope.from.toLowerCase() !== options.expectedFrom.toLowerCase()) {
    return rejectKnown(
      'wrong-sender',
      `envelope is signed as ${envelope.from}, but the topic belongs to ${options.expectedFrom}`,
    );
  }
  const signature = fromHex(envelope.sig, 'sig');
  const unsigned = unsignedBytes(bytes, text, envelope);
  let digest: Uint8Array;
  try {
    digest =
      unsigned === undefined ? envelopeDigest(envelope) : signingDigest(ENVELOPE_TAG, envelope.chainId, unsigned);
  } catch (err) {
    return rejectKnown('not-canonical', `envelope cannot be encoded: ${(err as Error).message}`);
  }
  const valid = options.verifier
    ? options.verifier.verify(digest, signature, envelope.from)
    : verifyDigest(digest, signature, envelope.from);
  if (!valid) {
    return rejectKnown('bad-signature', `signature is not ${envelope.from}'s over this envelope (forged or altered)`);
  }
  return { ok: true, envelope };
}

/**
 * The canonical bytes of `envelope` without `sig`, cut out of the received `bytes` instead of encoding the envelope
 * again (that second encoding cost as much as the canonical check). Only for an envelope whose `text` (the exact
 * decoding of `bytes`) passed the canonical check and whose fields passed checkFields: then the text is the
 * canonical encoding, the members after `sig` in key order can only be `time` and `v`, and all of that tail is
 * ASCII, so it has as many bytes as characters. Dropping the member `,"sig":"0x…"` from the canonical encoding
 * gives the canonical encoding without it (`body` always comes first, so the member has a leading comma).
 *
 * Returns undefined when the text does not end exactly as that reasoning says (it always does); the caller then
 * encodes the envelope again, so a mistake here costs time, never a wrong digest.
 */
function unsignedBytes(bytes: Uint8Array, text: string, envelope: Envelope): Uint8Array | undefined {
  const member = `,"sig":"${envelope.sig}"`;
  const tail = `${member},"time":${envelope.time},"v":${envelope.v}}`;
  if (!text.endsWith(tail)) return undefined;
  const start = bytes.length - tail.length;
  const end = start + member.length;
  const out = new Uint8Array(bytes.length - member.length);
  out.set(bytes.subarray(0, start), 0);
  out.set(bytes.subarray(end), start);
  return out;
}

function reject(reason: RejectionReason, detail: string): EnvelopeRejection {
  return { ok: false, reason, detail };
}

function checkFields(
  record: Record<string, unknown>,
  withSig: boolean,
): { reason: RejectionReason; detail: string } | undefined {
  const required = withSig ? FIELDS : FIELDS.filter((f) => f !== 'sig');
  const missing = required.filter((f) => record[f] === undefined);
  if (missing.length > 0) {
    return {
      reason: 'missing-field',
      detail: `envelope lacks field${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`,
    };
  }
  const unknown = Object.keys(record).filter(
    (k) => !(required as readonly string[]).includes(k) && !OPTIONAL_FIELDS.includes(k),
  );
  if (unknown.length > 0) {
    return {
      reason: 'unknown-field',
      detail: `envelope has unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`,
    };
  }
  const bad = (detail: string) => ({ reason: 'bad-field' as const, detail });
  const int = (key: string, min: number): boolean =>
    Number.isSafeInteger(record[key]) && (record[key] as number) >= min;
  if (typeof record.id !== 'string' || !ID_RE.test(record.id)) {
    return bad(`envelope id must be 0x + 32 lower-case hex digits, got ${JSON.stringify(record.id)}`);
  }
  if (typeof record.kind !== 'string' || !KIND_RE.test(record.kind)) {
    return bad(
      `envelope kind must be lower-case a-z 0-9 . - starting with a letter, got ${JSON.stringify(record.kind)}`,
    );
  }
  if (typeof record.from !== 'string' || !isChecksummed(record.from)) {
    return bad(`envelope from must be an EIP-55 checksummed address, got ${JSON.stringify(record.from)}`);
  }
  if (!int('chainId', 0)) return bad(`envelope chainId must be an integer >= 0, got ${JSON.stringify(record.chainId)}`);
  if (!int('session', 1)) return bad(`envelope session must be an integer >= 1, got ${JSON.stringify(record.session)}`);
  if (!int('seq', 0)) return bad(`envelope seq must be an integer >= 0, got ${JSON.stringify(record.seq)}`);
  if (!int('time', 0))
    return bad(`envelope time must be ms since the epoch (integer >= 0), got ${JSON.stringify(record.time)}`);
  if (record.historical !== undefined && record.historical !== true) {
    return bad('envelope historical must be true when present (omitted otherwise)');
  }
  const body = record.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('envelope body must be an object');
  if (withSig && (typeof record.sig !== 'string' || !/^0x[0-9a-f]{130}$/.test(record.sig))) {
    return bad('envelope sig must be 0x + 130 lower-case hex digits (65 bytes r ‖ s ‖ v)');
  }
  return undefined;
}

function isChecksummed(text: string): boolean {
  try {
    return parseAddress(text) === text;
  } catch {
    return false;
  }
}

export interface EnvelopeSealerOptions {
  readonly signer: Signer;
  readonly chainId: number;
  /** This process run's session number (persisted by the caller, +1 per start). */
  readonly session: number;
  readonly clock: Clock;
}

/**
 * Seals the envelopes of one sender session, numbering them 1, 2, 3, ... One sealer per process, shared by the
 * MQTT link (birth, availability) and the outbox, so (session, seq) orders everything the sender sealed.
 */
export class EnvelopeSealer {
  readonly signer: Signer;
  readonly chainId: number;
  readonly session: number;
  private readonly clock: Clock;
  private seq = 0;

  constructor(options: EnvelopeSealerOptions) {
    if (!Number.isSafeInteger(options.session) || options.session < 1) {
      throw new EnvelopeError(`link session must be an integer >= 1, got ${options.session}`);
    }
    this.signer = options.signer;
    this.chainId = options.chainId;
    this.session = options.session;
    this.clock = options.clock;
  }

  get address(): Address {
    return this.signer.address;
  }

  /** The seq the next sealed envelope gets. */
  get nextSeq(): number {
    return this.seq + 1;
  }

  seal(kind: string, body: EnvelopeBody, id?: string): SealedEnvelope {
    const sealed = sealEnvelope(this.signer, {
      ...(id === undefined ? {} : { id }),
      kind,
      chainId: this.chainId,
      session: this.session,
      seq: this.seq + 1,
      time: this.clock.now(),
      body,
    });
    this.seq += 1;
    return sealed;
  }

  /** An envelope outside the sequence (seq 0): sealed now, sent later or never (the last will). */
  sealUnsequenced(kind: string, body: EnvelopeBody): SealedEnvelope {
    return sealEnvelope(this.signer, {
      kind,
      chainId: this.chainId,
      session: this.session,
      seq: 0,
      time: this.clock.now(),
      body,
    });
  }

  reseal(envelope: Envelope): SealedEnvelope {
    return resealHistorical(this.signer, envelope);
  }
}

export type ReplayVerdict =
  /** Seen before (same sender, same id): drop it, but acknowledge again if it asks for a receipt. */
  | { readonly fresh: false; readonly order: 'duplicate' }
  /** The first envelope from this sender since the guard started. */
  | { readonly fresh: true; readonly order: 'first' }
  /** The next one in the sender's current session. */
  | { readonly fresh: true; readonly order: 'next' }
  /** Ahead of the next one: `missing` envelopes of this session were not seen (yet); they may come as replays. */
  | { readonly fresh: true; readonly order: 'gap'; readonly missing: number }
  /** A newer session: the sender restarted. */
  | { readonly fresh: true; readonly order: 'restart'; readonly previousSession: number }
  /**
   * Older than the newest seen (an earlier session or a lower seq) and its id is not remembered: a replay of an item
   * the guard never saw (outbox after reconnect) or one it forgot (memory is bounded). Check durable storage.
   */
  | { readonly fresh: true; readonly order: 'late' }
  /** seq 0: outside the sequence (a last will). */
  | { readonly fresh: true; readonly order: 'unsequenced' };

export interface ReplayGuardOptions {
  /** Ids remembered per sender (oldest forgotten first). Default 4096. */
  readonly idsPerSender?: number;
  /** Senders remembered (least recently heard forgotten first). Default 10000. */
  readonly maxSenders?: number;
}

interface SenderState {
  session: number;
  seq: number;
  readonly ids: Set<string>;
}

type Identified = Pick<Envelope, 'id' | 'from' | 'session' | 'seq'>;

/**
 * Makes a receiver idempotent: remembers the ids it saw per sender (bounded) and each sender's highest
 * (session, seq), so it can tell a duplicate from a new message, a restart (new session) from a gap.
 */
export class ReplayGuard {
  private readonly senders = new Map<string, SenderState>();
  private readonly idsPerSender: number;
  private readonly maxSenders: number;

  constructor(options: ReplayGuardOptions = {}) {
    this.idsPerSender = options.idsPerSender ?? 4096;
    this.maxSenders = options.maxSenders ?? 10_000;
    if (!(this.idsPerSender >= 1) || !(this.maxSenders >= 1)) throw new RangeError('ReplayGuard limits must be >= 1');
  }

  /** What `envelope` is relative to what was recorded, without recording it. */
  check(envelope: Identified): ReplayVerdict {
    const state = this.senders.get(envelope.from.toLowerCase());
    if (state === undefined)
      return envelope.seq === 0 ? { fresh: true, order: 'unsequenced' } : { fresh: true, order: 'first' };
    if (state.ids.has(envelope.id)) return { fresh: false, order: 'duplicate' };
    if (envelope.seq === 0) return { fresh: true, order: 'unsequenced' };
    if (state.session === 0) return { fresh: true, order: 'first' };
    if (envelope.session > state.session) return { fresh: true, order: 'restart', previousSession: state.session };
    if (envelope.session < state.session || envelope.seq <= state.seq) return { fresh: true, order: 'late' };
    if (envelope.seq === state.seq + 1) return { fresh: true, order: 'next' };
    return { fresh: true, order: 'gap', missing: envelope.seq - state.seq - 1 };
  }

  /** Remembers `envelope` (call once it has been processed). */
  record(envelope: Identified): void {
    const key = envelope.from.toLowerCase();
    let state = this.senders.get(key);
    if (state === undefined) {
      if (this.senders.size >= this.maxSenders) {
        const oldest = this.senders.keys().next().value;
        if (oldest !== undefined) this.senders.delete(oldest);
      }
      state = { session: 0, seq: 0, ids: new Set() };
    } else {
      this.senders.delete(key); // re-insert: the map's order is least recently heard first
    }
    this.senders.set(key, state);
    if (!state.ids.has(envelope.id)) {
      state.ids.add(envelope.id);
      if (state.ids.size > this.idsPerSender) {
        const oldest = state.ids.values().next().value;
        if (oldest !== undefined) state.ids.delete(oldest);
      }
    }
    if (envelope.seq === 0) return;
    if (envelope.session > state.session) {
      state.session = envelope.session;
      state.seq = envelope.seq;
    } else if (envelope.session === state.session && envelope.seq > state.seq) {
      state.seq = envelope.seq;
    }
  }

  /** check() and, when fresh, record(): the usual one-step use. */
  admit(envelope: Identified): ReplayVerdict {
    const verdict = this.check(envelope);
    if (verdict.fresh) this.record(envelope);
    return verdict;
  }

  /** The highest (session, seq) seen from `from`, if any. */
  position(from: string): { session: number; seq: number } | undefined {
    const state = this.senders.get(from.toLowerCase());
    return state && state.session > 0 ? { session: state.session, seq: state.seq } : undefined;
  }
}
