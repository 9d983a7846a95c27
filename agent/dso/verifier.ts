/**
 * The DSO's verification of incoming MGMC blocks (docs/protocol.md section 11, "DSO verification of a block"), in the
 * documented order, the first failure being the rejection reason:
 *
 *   1. from = header.producer = the topic address (wrong-producer); header.chainId = the DSO's (wrong-chain);
 *   2. the producer is authorized (unregistered) and not revoked (revoked);
 *   3. the header decodes (bad-header) and its signature is the producer's (bad-signature);
 *   4. the height follows the producer's last accepted block (out-of-order, with `expected`; a height already
 *      accepted is a duplicate with the same hash, a conflict with another); prev is that block's hash (broken-link);
 *   5. exactly `count` records with seqs following the last accepted block's (missing-record), each a valid canonical
 *      record (bad-record), hashing to `root` (changed-record);
 *   6. every meter batch is signed by the meter it names (bad-meter-signature), a meter registered for this MGMC
 *      (unknown-meter).
 *
 * A block that is too large is `oversized` before anything else when the caller gives its wire size, and as soon as
 * its encoded records pass the limit otherwise.
 *
 * Acceptance is one INSERT into the DSO database (DsoChainStore.insertAccepted) with the records kept as canonical
 * JSON lines: the record bytes the Merkle leaves hash, one per line, in seq order ('\n' never occurs inside canonical
 * JSON). The DSO can re-serve and re-verify a block from that row alone. The anchor (agent/dso/anchor.ts) needs no
 * call: it seals whatever accepted rows no DSO block holds yet (DsoChainStore.pendingEntries), whichever process
 * inserted them. The unique (mgmc, height) index makes acceptance idempotent across processes sharing one database
 * file: whoever inserts second gets 'duplicate' (same hash) or 'conflict' (another block), never an error.
 * verifyBatch() verifies many blocks in one transaction (one commit, one fsync): the way to drain a backlog.
 *
 * A block ahead of the next expected height is parked in memory for `parkMs`: blocks may arrive out of order through
 * a shared subscription, and the previous block may be accepted by another process. `retryParked()` settles parked
 * blocks; the caller runs it on a timer and after each acceptance.
 *
 * Speed: the producer's header signature and each meter batch signature go through a cached-key SignatureVerifier
 * (share it with the envelope opener so each key has one table); every record is encoded once and hashed once; the
 * last accepted block of each MGMC is cached and revalidated with one index lookup.
 */
import type { Clock } from '../clock.js';
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { SignatureVerifier, signingDigest } from '../identity/signing.js';
import { BLOCK_HEADER_TAG, type BlockHeader, decodeHeader, encodeHeader, ZERO_HASH } from '../ledger/block.js';
import type { CanonicalValue } from '../ledger/canonical.js';
import { canonicalText } from '../ledger/canonical-text.js';
import { merkleRoot } from '../ledger/merkle.js';
import { checkMeterBatch, METER_BATCH_FORMAT_V1, meterBatchDigest } from '../ledger/meter-batch.js';
import { recordLines } from '../ledger/record-lines.js';
import { type RecordBody, recordFromObject } from '../ledger/records.js';
import type { Envelope, EnvelopeBody } from '../link/envelope.js';
import type { Logger } from '../logger.js';
import type { DsoChainStore, StoredAcceptedBlock } from './chain-store.js';

/** What the DSO's registry knows of an MGMC (agent/dso's registry implements the lookup). */
export interface RegistryEntry {
  readonly status: 'pending' | 'authorized' | 'rejected' | 'revoked';
  /** The MGMC's registered signing meters, lower-case 0x-hex addresses. */
  readonly meters: ReadonlySet<string>;
}

export interface RegistryLookup {
  /** `mgmc` is the lower-case 0x-hex address (as in topics). */
  lookup(mgmc: string): RegistryEntry | undefined;
}

/** The `rejection` codes of docs/protocol.md section 11. */
export type BlockRejectionCode =
  | 'unregistered'
  | 'revoked'
  | 'wrong-producer'
  | 'wrong-chain'
  | 'bad-header'
  | 'bad-signature'
  | 'out-of-order'
  | 'broken-link'
  | 'conflict'
  | 'missing-record'
  | 'bad-record'
  | 'changed-record'
  | 'bad-meter-signature'
  | 'unknown-meter'
  | 'oversized';

export const BLOCK_REJECTION_CODES: readonly BlockRejectionCode[] = [
  'unregistered',
  'revoked',
  'wrong-producer',
  'wrong-chain',
  'bad-header',
  'bad-signature',
  'out-of-order',
  'broken-link',
  'conflict',
  'missing-record',
  'bad-record',
  'changed-record',
  'bad-meter-signature',
  'unknown-meter',
  'oversized',
];

/** Every outcome names the block envelope it answers (`ref`, its id) and, when known, the MGMC and height. */
export type BlockOutcome =
  /** Stored: it is pending for the next DSO block, whose receipt will follow. */
  | {
      readonly status: 'accepted';
      readonly ref: string;
      readonly mgmc: Address;
      readonly height: number;
      readonly hash: string;
    }
  /** Already stored with this hash (re-delivery): send the receipt again if the block is anchored, else nothing. */
  | {
      readonly status: 'duplicate';
      readonly ref: string;
      readonly mgmc: Address;
      readonly height: number;
      readonly hash: string;
    }
  /** Ahead of `expected`: held for up to parkMs; retryParked() settles it. Send nothing yet. */
  | {
      readonly status: 'parked';
      readonly ref: string;
      readonly mgmc: Address;
      readonly height: number;
      readonly hash: string;
      readonly expected: number;
    }
  | BlockRejected;

export interface BlockRejected {
  readonly status: 'rejected';
  readonly ref: string;
  readonly reason: BlockRejectionCode;
  /** For a person: what is wrong, where, what to do. */
  readonly detail: string;
  /** The producer when the header named a usable one, else the topic's address. */
  readonly mgmc: string;
  readonly height?: number;
  /** out-of-order only: the next height the DSO wants from this MGMC. */
  readonly expected?: number;
}

export interface BlockVerifierOptions {
  readonly store: DsoChainStore;
  readonly registry: RegistryLookup;
  /** The chain id every block header must carry (the DSO's). */
  readonly chainId: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Largest block: its wire size when given to verify(), else its encoded records. Default 4 MiB. */
  readonly maxBlockBytes?: number;
  /** How long a block ahead of the expected height waits for the blocks before it. Default 2000 ms. */
  readonly parkMs?: number;
  /** Most blocks parked at once; beyond that an early block is rejected out-of-order at once. Default 1024. */
  readonly maxParked?: number;
  /** A cached-key verifier to share with the envelope opener (one table per key). Default: a private one. */
  readonly signatures?: SignatureVerifier;
}

/** One received block message, for verifyBatch. */
export interface BlockDelivery {
  readonly envelope: Envelope;
  /** The address in the topic it arrived on (lower-case hex). */
  readonly topicAddress: string;
  /** Its size on the wire, when known (checked against maxBlockBytes first). */
  readonly wireBytes?: number;
}

/** Counts per outcome, for metrics. */
export interface BlockVerifierStats {
  accepted: number;
  duplicate: number;
  parked: number;
  rejected: Partial<Record<BlockRejectionCode, number>>;
}

export const DEFAULT_MAX_BLOCK_BYTES = 4 * 1024 * 1024;
export const DEFAULT_PARK_MS = 2000;
export const DEFAULT_MAX_PARKED = 1024;
/** A rejection's detail travels in an envelope: keep it readable, not a copy of the input. */
const MAX_DETAIL = 600;
const BODY_FIELDS = new Set(['header', 'records', 'signature']);
const NEWLINE = 0x0a;

/** A block that passed steps 1 and 3 (the part that never changes): kept while parked. */
interface Candidate {
  readonly envelope: Envelope;
  readonly header: BlockHeader;
  /** Canonical header bytes (stored). */
  readonly headerBytes: Uint8Array;
  readonly digest: Uint8Array;
  readonly hash: string;
  readonly signature: Uint8Array;
  /** As received: checked in step 5. */
  readonly records: unknown;
  /** Lower-case producer address: registry and parking key. */
  readonly key: string;
}

interface Parked {
  readonly candidate: Candidate;
  readonly parkedAt: number;
}

/** The last accepted block of one MGMC, as the next block must continue it. */
interface Head {
  readonly height: number;
  readonly hash: string;
  /** Seq of its last record; undefined when the stored row keeps its records elsewhere (records_ref). */
  readonly lastSeq: number | undefined;
}

const NO_HEAD: Head = { height: 0, hash: ZERO_HASH, lastSeq: 0 };

class Rejection extends Error {
  constructor(
    readonly reason: BlockRejectionCode,
    readonly detail: string,
    readonly expected?: number,
  ) {
    super(detail);
  }
}

export class BlockVerifier {
  private readonly store: DsoChainStore;
  private readonly registry: RegistryLookup;
  private readonly chainId: number;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly maxBlockBytes: number;
  private readonly parkMs: number;
  private readonly maxParked: number;
  private readonly signatures: SignatureVerifier;
  private readonly heads = new Map<string, Head>();
  private readonly parked = new Map<string, Parked>();
  /** Meter address text → EIP-55, so a meter's checksum is computed once, not per batch. */
  private readonly meterAddresses = new Map<string, Address>();
  private readonly counts: BlockVerifierStats = { accepted: 0, duplicate: 0, parked: 0, rejected: {} };

  constructor(options: BlockVerifierOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.chainId = options.chainId;
    this.clock = options.clock;
    this.logger = options.logger;
    this.maxBlockBytes = options.maxBlockBytes ?? DEFAULT_MAX_BLOCK_BYTES;
    this.parkMs = options.parkMs ?? DEFAULT_PARK_MS;
    this.maxParked = options.maxParked ?? DEFAULT_MAX_PARKED;
    this.signatures = options.signatures ?? new SignatureVerifier();
    if (!(Number.isSafeInteger(this.chainId) && this.chainId >= 0)) {
      throw new RangeError(`chainId must be an integer >= 0, got ${this.chainId}`);
    }
    if (!(Number.isSafeInteger(this.maxBlockBytes) && this.maxBlockBytes >= 1024)) {
      throw new RangeError(`maxBlockBytes must be an integer >= 1024, got ${this.maxBlockBytes}`);
    }
    if (!(this.parkMs >= 0)) throw new RangeError(`parkMs must be >= 0, got ${this.parkMs}`);
    if (!(Number.isSafeInteger(this.maxParked) && this.maxParked >= 0)) {
      throw new RangeError(`maxParked must be an integer >= 0, got ${this.maxParked}`);
    }
  }

  /**
   * Verifies the `block` envelope received on the blocks topic of `topicAddress` (its envelope already opened and its
   * signature checked by the caller) and stores it when it is valid. `wireBytes`, the payload size, lets an oversized
   * block be refused before any work. Bad input never throws: it is a 'rejected' outcome. Throws only when the
   * database fails; then the block is neither accepted nor rejected and must not be acknowledged.
   */
  verify(envelope: Envelope, topicAddress: string, wireBytes?: number): BlockOutcome {
    let candidate: Candidate;
    try {
      candidate = this.decode(envelope, topicAddress, wireBytes);
    } catch (err) {
      if (err instanceof Rejection) return this.rejected(envelope, topicAddress, err);
      throw err;
    }
    const outcome = this.settle(candidate, undefined);
    return outcome ?? this.park(candidate);
  }

  /**
   * Verifies several deliveries in one database transaction: the same outcomes as verify() one after the other, but
   * one commit (one fsync) for every block accepted, which is what lets a backlog drain fast with synchronous=FULL.
   * Outcomes are returned after the commit. When the database fails nothing of the batch is stored and the error is
   * thrown: no outcome of the batch may be acted on.
   */
  verifyBatch(deliveries: readonly BlockDelivery[]): BlockOutcome[] {
    return this.atomically(() => deliveries.map((d) => this.verify(d.envelope, d.topicAddress, d.wireBytes)));
  }

  /**
   * Settles parked blocks (of one MGMC when `mgmc` is given): those whose turn has come are verified and stored,
   * those still ahead after parkMs are rejected out-of-order, the rest stay parked. Returns the new outcomes, lowest
   * height first, after one commit. Call it on a timer and after each acceptance. Never throws: when the database
   * fails, the blocks stay parked for the next call and the error is logged.
   */
  retryParked(mgmc?: string): BlockOutcome[] {
    const only = mgmc?.toLowerCase();
    const due = [...this.parked.values()]
      .filter((p) => only === undefined || p.candidate.key === only)
      .sort((a, b) =>
        a.candidate.key === b.candidate.key
          ? a.candidate.header.height - b.candidate.header.height
          : a.candidate.key < b.candidate.key
            ? -1
            : 1,
      );
    if (due.length === 0) return [];
    const before = new Map(this.parked);
    try {
      return this.atomically(() => {
        const outcomes: BlockOutcome[] = [];
        for (const entry of due) {
          const slot = parkingKey(entry.candidate);
          if (this.parked.get(slot) !== entry) continue;
          this.parked.delete(slot);
          const outcome = this.settle(entry.candidate, entry);
          if (outcome === undefined) this.parked.set(slot, entry);
          else outcomes.push(outcome);
        }
        return outcomes;
      });
    } catch (err) {
      this.parked.clear();
      for (const [slot, entry] of before) this.parked.set(slot, entry);
      this.logger?.error({ err, parked: this.parked.size }, 'retrying parked blocks failed; they stay parked');
      return [];
    }
  }

  /** Blocks waiting for their predecessors. */
  get parkedCount(): number {
    return this.parked.size;
  }

  /** Counts per outcome since start (parked counts each parking, not each retry). */
  stats(): BlockVerifierStats {
    return { ...this.counts, rejected: { ...this.counts.rejected } };
  }

  /** Steps 1, 2 and the decoding of step 3, with the shape of the body. */
  private decode(envelope: Envelope, topicAddress: string, wireBytes: number | undefined): Candidate {
    if (wireBytes !== undefined && wireBytes > this.maxBlockBytes) {
      throw new Rejection(
        'oversized',
        `the block message is ${wireBytes} bytes, more than the ${this.maxBlockBytes} this DSO accepts: seal smaller blocks (ledger.sealEveryRecords)`,
      );
    }
    if (envelope.kind !== 'block') {
      throw new Rejection('bad-header', `a ${JSON.stringify(envelope.kind)} message arrived on the blocks topic`);
    }
    const body = envelope.body;
    const unexpected = Object.keys(body).filter((k) => !BODY_FIELDS.has(k));
    if (unexpected.length > 0) {
      throw new Rejection('bad-header', `the block body has unexpected field(s) ${unexpected.join(', ')}`);
    }
    const rawHeader = body.header;
    if (typeof rawHeader !== 'object' || rawHeader === null || Array.isArray(rawHeader)) {
      throw new Rejection('bad-header', 'the block body has no header object');
    }
    // Step 1, on the raw header: who it claims to be and which chain, before anything costs.
    const producer = (rawHeader as Record<string, unknown>).producer;
    const topic = topicAddress.toLowerCase();
    if (envelope.from.toLowerCase() !== topic) {
      throw new Rejection('wrong-producer', `the message is from ${envelope.from}, but the topic belongs to ${topic}`);
    }
    if (typeof producer !== 'string' || producer.toLowerCase() !== topic) {
      throw new Rejection(
        'wrong-producer',
        `the header names producer ${describe(producer)}, but the block was sent by ${envelope.from}: an MGMC sends its own blocks only`,
      );
    }
    const chainId = (rawHeader as Record<string, unknown>).chainId;
    if (chainId !== this.chainId) {
      throw new Rejection(
        'wrong-chain',
        `the header is for chain ${describe(chainId)}, this DSO is chain ${this.chainId}: check the MGMC's chainId`,
      );
    }
    this.checkRegistry(topic, producer);
    let header: BlockHeader;
    try {
      header = decodeHeader(rawHeader, 'block header');
    } catch (err) {
      throw new Rejection('bad-header', (err as Error).message);
    }
    let signature: Uint8Array;
    try {
      signature = fromHex(body.signature as string, 'block signature', 65);
    } catch (err) {
      throw new Rejection('bad-signature', (err as Error).message);
    }
    const headerBytes = encodeHeader(header);
    const digest = signingDigest(BLOCK_HEADER_TAG, header.chainId, headerBytes);
    return {
      envelope,
      header,
      headerBytes,
      digest,
      hash: toHex(digest),
      signature,
      records: body.records,
      key: topic,
    };
  }

  /** Step 2. Runs again for a parked block: an MGMC revoked meanwhile gets nothing accepted. */
  private checkRegistry(key: string, who: string): RegistryEntry {
    const entry = this.registry.lookup(key);
    if (entry === undefined) {
      throw new Rejection('unregistered', `${who} is not registered with this DSO: send a registration first`);
    }
    if (entry.status === 'revoked') {
      throw new Rejection('revoked', `${who}'s registration was revoked by the DSO operator`);
    }
    if (entry.status !== 'authorized') {
      throw new Rejection(
        'unregistered',
        entry.status === 'pending'
          ? `${who}'s registration waits for the DSO operator's approval (mgmc dso approve ${who})`
          : `${who}'s registration was rejected: register again with the DSO operator's agreement`,
      );
    }
    return entry;
  }

  /**
   * Steps 3 (signature), 4, 5 and 6 and the insert. Returns undefined when the block stays parked. `parked` is the
   * parking entry when this is a retry (its signature was checked when it arrived).
   */
  private settle(candidate: Candidate, parked: Parked | undefined): BlockOutcome | undefined {
    const { header, envelope } = candidate;
    try {
      // Looked up again (a cheap map read): for a parked block the registry may have changed since it arrived.
      const entry = this.checkRegistry(candidate.key, header.producer);
      if (parked === undefined && !this.signatures.verify(candidate.digest, candidate.signature, header.producer)) {
        throw new Rejection(
          'bad-signature',
          `block ${header.height}: the signature is not ${header.producer}'s over this header (forged or altered)`,
        );
      }
      const head = this.head(header.producer);
      const expected = head.height + 1;
      if (header.height < expected) return this.already(candidate);
      if (header.height > expected) {
        const waited = parked === undefined ? 0 : this.clock.now() - parked.parkedAt;
        if (parked !== undefined && waited >= this.parkMs) {
          throw new Rejection(
            'out-of-order',
            `block ${header.height} waited ${waited} ms for block ${expected}, which did not come: send blocks in order from ${expected}`,
            expected,
          );
        }
        if (parked === undefined && this.parked.size >= this.maxParked && !this.parked.has(parkingKey(candidate))) {
          throw new Rejection(
            'out-of-order',
            `block ${header.height} is ahead of block ${expected} and too many blocks already wait here: send blocks in order from ${expected}`,
            expected,
          );
        }
        return undefined;
      }
      if (header.prev !== head.hash) {
        throw new Rejection(
          'broken-link',
          `block ${header.height} says prev ${header.prev}, but the block ${head.height === 0 ? 'before the first is none (prev must be zero)' : `${head.height} accepted here has hash ${head.hash}`}`,
        );
      }
      const { blob, firstSeq } = this.checkRecords(candidate, head);
      this.checkMeters(candidate, entry);
      return this.insert(candidate, blob, firstSeq);
    } catch (err) {
      if (err instanceof Rejection) return this.rejected(envelope, candidate.key, err, candidate);
      throw err;
    }
  }

  /** A height this DSO already accepted: the same block again, or another one (the MGMC forked its chain). */
  private already(candidate: Candidate): BlockOutcome {
    const { header } = candidate;
    const stored = this.store.acceptedHash(header.producer, header.height);
    if (stored !== undefined && toHex(stored) === candidate.hash) return this.duplicate(candidate);
    throw new Rejection(
      'conflict',
      `${header.producer} already had block ${header.height} accepted with hash ${stored === undefined ? 'unknown' : toHex(stored)}; this one has ${candidate.hash}: the MGMC signed two different blocks at one height`,
    );
  }

  /** Step 5: count and seqs, each record valid and canonical, the Merkle root. Returns the records as stored. */
  private checkRecords(candidate: Candidate, head: Head): { blob: Uint8Array; firstSeq: number } {
    const { header, records } = candidate;
    if (!Array.isArray(records)) {
      throw new Rejection('missing-record', `block ${header.height} carries no records array`);
    }
    if (records.length !== header.count) {
      throw new Rejection(
        'missing-record',
        `block ${header.height} declares ${header.count} records but carries ${records.length}: send the block with exactly its records`,
      );
    }
    // When the stored head keeps its records elsewhere, its last seq is unknown here: the block's own first seq is
    // taken, and the records must still follow each other.
    const first = seqOf(records[0]);
    const firstSeq = head.lastSeq === undefined ? (first ?? 1) : head.lastSeq + 1;
    for (let i = 0; i < records.length; i++) {
      const seq = seqOf(records[i]);
      if (seq !== firstSeq + i) {
        throw new Rejection(
          'missing-record',
          `block ${header.height}: record ${firstSeq + i} is missing (position ${i} holds ${seq === undefined ? 'a record without a seq' : `seq ${seq}`}); block ${header.height} must start at seq ${firstSeq}`,
        );
      }
    }
    // Each record is encoded once: its canonical text goes into the stored lines, and the Merkle leaves hash those
    // very bytes in place (record-lines.ts). Records parsed from a canonical envelope are already sorted, so canonicalText's native path applies.
    const texts: string[] = new Array(records.length);
    let size = 0;
    for (let i = 0; i < records.length; i++) {
      const seq = firstSeq + i;
      let text: string;
      try {
        const record = recordFromObject(records[i], `record ${seq}`);
        text = canonicalText({ body: record.body, seq: record.seq, time: record.time, type: record.type });
      } catch (err) {
        throw new Rejection('bad-record', `block ${header.height}: ${(err as Error).message}`);
      }
      // UTF-16 length: a lower bound of the UTF-8 size, so an oversized block stops early; the exact check follows.
      size += text.length + 1;
      if (size > this.maxBlockBytes + 1) throw this.oversized(header, seq);
      texts[i] = text;
    }
    const { lines: blob, leaves } = recordLines(texts);
    if (blob.length > this.maxBlockBytes) throw this.oversized(header, firstSeq + records.length - 1);
    if (toHex(merkleRoot(leaves)) !== header.root) {
      throw new Rejection(
        'changed-record',
        `block ${header.height}: its records do not hash to the signed root ${header.root}: a record was changed after sealing`,
      );
    }
    return { blob, firstSeq };
  }

  private oversized(header: BlockHeader, seq: number): Rejection {
    return new Rejection(
      'oversized',
      `block ${header.height}: its records pass ${this.maxBlockBytes} bytes at record ${seq}: seal smaller blocks (ledger.sealEveryRecords)`,
    );
  }

  /** Step 6: each meter batch's signature, then its meter among the MGMC's registered ones. */
  private checkMeters(candidate: Candidate, entry: RegistryEntry): void {
    const { header, records } = candidate;
    // Step 5 passed: records is an array of valid records.
    for (const record of records as { type: string; seq: number; body: RecordBody }[]) {
      if (record.type !== 'meter-batch') continue;
      const body = record.body;
      const meterText = body.meter as string;
      const registered = entry.meters.has(meterText.toLowerCase());
      // Registered meters go through the cached-key verifier; an unregistered one is checked once, uncached, so a
      // block full of strangers cannot fill the key cache.
      const problem = registered ? this.checkRegisteredBatch(body) : checkMeterBatch(body);
      if (problem !== undefined) {
        throw new Rejection('bad-meter-signature', `block ${header.height}, record ${record.seq}: ${problem}`);
      }
      if (!registered) {
        throw new Rejection(
          'unknown-meter',
          `block ${header.height}, record ${record.seq}: meter ${meterText} is not registered for ${header.producer}: register it (a new registration lists every meter)`,
        );
      }
    }
  }

  /** checkMeterBatch's verdict through the cached verifier; only a failure asks checkMeterBatch for its words. */
  private checkRegisteredBatch(body: RecordBody): string | undefined {
    if (body.format === METER_BATCH_FORMAT_V1) {
      try {
        const text = body.meter as string;
        let meter = this.meterAddresses.get(text);
        if (meter === undefined) {
          meter = parseAddress(text, 'meter');
          if (this.meterAddresses.size >= 4096) this.meterAddresses.clear();
          this.meterAddresses.set(text, meter);
        }
        const digest = meterBatchDigest(fromHex(body.payload as string, 'payload'));
        if (this.signatures.verify(digest, fromHex(body.sig as string, 'sig', 65), meter)) return undefined;
      } catch {
        // malformed: checkMeterBatch says how
      }
    }
    return checkMeterBatch(body) ?? 'meter batch signature does not verify';
  }

  private insert(candidate: Candidate, blob: Uint8Array, firstSeq: number): BlockOutcome {
    const { header } = candidate;
    const result = this.store.insertAccepted({
      mgmc: header.producer,
      height: header.height,
      hash: candidate.digest,
      header: candidate.headerBytes,
      signature: candidate.signature,
      records: blob,
      received: this.clock.now(),
    });
    if (result.status === 'conflict') {
      throw new Rejection(
        'conflict',
        `${header.producer} already had block ${header.height} accepted with hash ${toHex(result.storedHash)}; this one has ${candidate.hash}: the MGMC signed two different blocks at one height`,
      );
    }
    // Inserted or not (another process was first), this block is now the head.
    this.heads.set(header.producer, {
      height: header.height,
      hash: candidate.hash,
      lastSeq: firstSeq + header.count - 1,
    });
    if (result.status === 'duplicate') return this.duplicate(candidate);
    this.forgetParked(candidate);
    this.counts.accepted++;
    this.logger?.debug({ mgmc: header.producer, height: header.height, records: header.count }, 'MGMC block accepted');
    return {
      status: 'accepted',
      ref: candidate.envelope.id,
      mgmc: header.producer,
      height: header.height,
      hash: candidate.hash,
    };
  }

  private duplicate(candidate: Candidate): BlockOutcome {
    const { header } = candidate;
    this.forgetParked(candidate);
    this.counts.duplicate++;
    this.logger?.debug({ mgmc: header.producer, height: header.height }, 'MGMC block received again');
    return {
      status: 'duplicate',
      ref: candidate.envelope.id,
      mgmc: header.producer,
      height: header.height,
      hash: candidate.hash,
    };
  }

  private park(candidate: Candidate): BlockOutcome {
    const { header } = candidate;
    const slot = parkingKey(candidate);
    const earlier = this.parked.get(slot);
    // A re-delivery keeps its first parking time, so a block cannot wait forever by being sent again.
    const parkedAt =
      earlier !== undefined && earlier.candidate.hash === candidate.hash ? earlier.parkedAt : this.clock.now();
    this.parked.set(slot, { candidate, parkedAt });
    const expected = this.head(header.producer).height + 1;
    this.counts.parked++;
    this.logger?.debug(
      { mgmc: header.producer, height: header.height, expected },
      'MGMC block parked until its predecessor arrives',
    );
    return {
      status: 'parked',
      ref: candidate.envelope.id,
      mgmc: header.producer,
      height: header.height,
      hash: candidate.hash,
      expected,
    };
  }

  /** A parked copy of a block that is now stored is settled: nothing more to say about it. */
  private forgetParked(candidate: Candidate): void {
    const slot = parkingKey(candidate);
    const parked = this.parked.get(slot);
    if (
      parked !== undefined &&
      parked.candidate.hash === candidate.hash &&
      parked.candidate.envelope.id === candidate.envelope.id
    ) {
      this.parked.delete(slot);
    }
  }

  private rejected(envelope: Envelope, topic: string, err: Rejection, candidate?: Candidate): BlockRejected {
    const rawHeight = (envelope.body.header as { height?: unknown } | undefined)?.height;
    const height =
      candidate?.header.height ??
      (Number.isSafeInteger(rawHeight) && (rawHeight as number) >= 1 ? (rawHeight as number) : undefined);
    const mgmc = candidate?.header.producer ?? topic.toLowerCase();
    const detail = err.detail.length > MAX_DETAIL ? `${err.detail.slice(0, MAX_DETAIL - 1)}…` : err.detail;
    this.counts.rejected[err.reason] = (this.counts.rejected[err.reason] ?? 0) + 1;
    // debug: the caller logs the rejection it answers (at a level that suits the reason), counted here.
    this.logger?.debug({ mgmc, height, reason: err.reason, ref: envelope.id }, `MGMC block rejected: ${detail}`);
    return {
      status: 'rejected',
      ref: envelope.id,
      reason: err.reason,
      detail,
      mgmc,
      ...(height === undefined ? {} : { height }),
      ...(err.expected === undefined ? {} : { expected: err.expected }),
    };
  }

  /** Runs `fn` in one transaction; on failure forgets what the rolled-back work taught the caches and counters. */
  private atomically<T>(fn: () => T): T {
    const counts = this.stats();
    try {
      return this.store.transaction(fn);
    } catch (err) {
      this.heads.clear();
      Object.assign(this.counts, counts);
      throw err;
    }
  }

  /**
   * The MGMC's last accepted block. The cached head is trusted only while the database's last height for the MGMC
   * is the same (one index lookup): another process sharing the file may have accepted the next block.
   */
  private head(mgmc: Address): Head {
    const height = this.store.lastAcceptedHeight(mgmc);
    if (height === 0) return NO_HEAD;
    const cached = this.heads.get(mgmc);
    if (cached !== undefined && cached.height === height) return cached;
    const row = this.store.lastAccepted(mgmc);
    if (row === undefined) return NO_HEAD;
    const head: Head = { height: row.height, hash: toHex(row.hash), lastSeq: lastSeqOf(row) };
    if (this.heads.size >= 100_000) this.heads.clear();
    this.heads.set(mgmc, head);
    return head;
  }
}

/** Splits a stored records blob back into the canonical bytes of each record (re-exported for callers here). */
export { splitRecordLines } from '../ledger/record-lines.js';

/** The body of the `rejection` envelope answering a rejected block (docs/protocol.md section 11). */
export function rejectionBody(outcome: BlockRejected, ref: string = outcome.ref): EnvelopeBody {
  return {
    ref,
    reason: outcome.reason,
    detail: outcome.detail,
    ...(outcome.height === undefined ? {} : { height: outcome.height }),
    ...(outcome.expected === undefined ? {} : { expected: outcome.expected }),
  };
}

const decoder = new TextDecoder();

/** Seq of the last record of a stored block, read from the last line of its records. */
function lastSeqOf(row: StoredAcceptedBlock): number | undefined {
  if (row.records === undefined) return undefined;
  const line = row.records.subarray(row.records.lastIndexOf(NEWLINE) + 1);
  const seq = seqOf(JSON.parse(decoder.decode(line)) as unknown);
  if (seq === undefined) {
    throw new Error(`stored block ${row.mgmc}/${row.height}: its last record has no seq (database damaged)`);
  }
  return seq;
}

function seqOf(record: unknown): number | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const seq = (record as { seq?: unknown }).seq;
  return Number.isSafeInteger(seq) ? (seq as number) : undefined;
}

function parkingKey(candidate: Candidate): string {
  return `${candidate.key}/${candidate.header.height}`;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value as CanonicalValue) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
