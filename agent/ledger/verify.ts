/**
 * Verification of a whole chain, from the database or from an export: every header's hash and signature, every link,
 * every record's canonical form and place, every Merkle root, every meter signature inside. Stops at the first bad
 * block and says what is wrong with it, because everything after a broken block is unanchored anyway.
 *
 * Pruned records (bodies dropped after the DSO anchored their block) come from the source as their leaf hash: the
 * block's Merkle root is still checked over every leaf, so a pruned range cannot have been altered, only its contents
 * can no longer be read. The report lists the pruned ranges.
 */
import { equalBytes, fromHex, toHex, utf8 } from '../identity/bytes.js';
import { SignatureVerifier } from '../identity/signing.js';
import { type BlockHeader, decodeHeader, headerHash, verifyHeaderSignature, ZERO_HASH } from './block.js';
import { leafHash, merkleRoot } from './merkle.js';
import { checkMeterBatch } from './meter-batch.js';
import { decodeRecord, type LedgerRecord, recordFromObject } from './records.js';

export type ProblemKind =
  | 'missing-block'
  | 'bad-header'
  | 'wrong-chain'
  | 'wrong-producer'
  | 'broken-link'
  | 'bad-signature'
  | 'missing-record'
  | 'reordered-record'
  | 'changed-record'
  | 'bad-record'
  | 'bad-meter-signature'
  | 'unreadable';

export interface Problem {
  /** Height of the first bad block; for an unreadable source, the block being read (or 0 before the first). */
  readonly height: number;
  readonly kind: ProblemKind;
  readonly detail: string;
  readonly seq?: number;
}

/** A run of consecutive pruned records and the blocks it spans. */
export interface PrunedRange {
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly fromHeight: number;
  readonly toHeight: number;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly chainId?: number;
  readonly producer?: string;
  /** Blocks and sealed records that verified. */
  readonly blocks: number;
  readonly records: number;
  /** Records after the last block (committed, waiting for the next seal). */
  readonly unsealed: number;
  readonly headHash?: string;
  /** Records verified by their leaf hash only (bodies pruned), as runs; absent when nothing was pruned. */
  readonly pruned?: readonly PrunedRange[];
  readonly problem?: Problem;
}

/** One stored block as a source gives it: header as canonical bytes (database) or as an object (export). */
export interface SourceBlock {
  readonly height: number;
  readonly header: Uint8Array | object;
  readonly hash?: Uint8Array;
  readonly signature: Uint8Array | string;
  /** Where the source says the block's records start; checked against the running count. */
  readonly firstSeq?: number;
}

/** A record as a source gives it: its bytes, or, when its body was pruned, its leaf hash. */
export type SourceRecord = StoredSourceRecord | PrunedSourceRecord;

export interface StoredSourceRecord {
  /** The seq the source filed the record under (row id or line order). */
  readonly seq: number;
  /** Canonical bytes, or text for exports. */
  readonly bytes: Uint8Array | string;
  readonly leaf?: undefined;
}

export interface PrunedSourceRecord {
  readonly seq: number;
  /** SHA-256(0x00 ‖ canonical record bytes), kept when the body was pruned. */
  readonly leaf: Uint8Array;
  readonly bytes?: undefined;
}

export interface ChainSource {
  blocks(): Iterable<SourceBlock>;
  /** Records filed under first <= seq < end, in filing order. */
  records(first: number, end: number): Iterable<SourceRecord>;
  /** Number of records filed after `afterSeq`. */
  countAfter(afterSeq: number): number;
}

export interface VerifyOptions {
  /** Expected chain id; default: the first block's. */
  readonly chainId?: number;
  /** Expected producer; default: the first block's. */
  readonly producer?: string;
  /**
   * Also require every record to be in canonical form and fully valid (slower). Off, a record is still covered by
   * the Merkle root; on, a producer that signed non-canonical bytes is caught too. The DSO verifies strictly.
   */
  readonly strict?: boolean;
}

class Bad extends Error {
  constructor(
    readonly kind: ProblemKind,
    readonly detail: string,
    readonly seq?: number,
  ) {
    super(detail);
  }
}

export function verifyChain(source: ChainSource, options: VerifyOptions = {}): VerifyReport {
  const verifier = new SignatureVerifier();
  let chainId = options.chainId;
  let producer = options.producer;
  let expectedHeight = 1;
  let prev = ZERO_HASH;
  let nextSeq = 1;
  let blocks = 0;
  let height = 0;
  const pruned: PrunedRange[] = [];
  const notePruned = (seqs: readonly number[], at: number): void => {
    for (const seq of seqs) {
      const last = pruned[pruned.length - 1];
      if (last !== undefined && last.toSeq + 1 === seq)
        pruned[pruned.length - 1] = { ...last, toSeq: seq, toHeight: at };
      else pruned.push({ fromSeq: seq, toSeq: seq, fromHeight: at, toHeight: at });
    }
  };
  const result = (problem?: Problem): VerifyReport => {
    let unsealed = 0;
    if (problem === undefined) {
      try {
        unsealed = source.countAfter(nextSeq - 1);
      } catch (err) {
        problem = {
          height,
          kind: 'unreadable',
          detail: `cannot read records after the last block: ${(err as Error).message}`,
        };
      }
    }
    return {
      ok: problem === undefined,
      ...(chainId === undefined ? {} : { chainId }),
      ...(producer === undefined ? {} : { producer }),
      blocks,
      records: nextSeq - 1,
      unsealed,
      ...(blocks > 0 ? { headHash: prev } : {}),
      ...(pruned.length > 0 ? { pruned } : {}),
      ...(problem === undefined ? {} : { problem }),
    };
  };
  try {
    for (const block of source.blocks()) {
      height = block.height;
      try {
        if (block.height !== expectedHeight) {
          throw new Bad(
            'missing-block',
            block.height > expectedHeight
              ? `block ${expectedHeight}${block.height - 1 > expectedHeight ? `..${block.height - 1}` : ''} is missing (next block found is ${block.height})`
              : `block ${block.height} appears again or out of order (expected ${expectedHeight})`,
          );
        }
        const header = parseHeader(block);
        chainId ??= header.chainId;
        producer ??= header.producer;
        if (header.chainId !== chainId) throw new Bad('wrong-chain', `chain id ${header.chainId}, expected ${chainId}`);
        if (header.producer !== producer) {
          throw new Bad('wrong-producer', `producer ${header.producer}, expected ${producer}`);
        }
        const digest = headerHash(header);
        if (block.hash !== undefined && !equalBytes(block.hash, digest)) {
          throw new Bad('bad-header', 'stored header hash does not match the header (header or hash was changed)');
        }
        if (header.prev !== prev) {
          throw new Bad('broken-link', `prev is ${header.prev} but block ${block.height - 1} has hash ${prev}`);
        }
        const signature = typeof block.signature === 'string' ? block.signature : toHex(block.signature);
        if (!verifyHeaderSignature({ header, hash: toHex(digest), signature }, verifier)) {
          throw new Bad('bad-signature', `signature is not ${header.producer}'s signature over this header`);
        }
        if (block.firstSeq !== undefined && block.firstSeq !== nextSeq) {
          throw new Bad(
            'bad-header',
            `block is filed as starting at record ${block.firstSeq}, but the chain says ${nextSeq}`,
          );
        }
        notePruned(checkRecords(source, header, nextSeq, options.strict ?? false), block.height);
        prev = toHex(digest);
        nextSeq += header.count;
        blocks++;
        expectedHeight++;
      } catch (err) {
        if (err instanceof Bad) {
          return result({
            height: block.height,
            kind: err.kind,
            detail: err.detail,
            ...(err.seq ? { seq: err.seq } : {}),
          });
        }
        throw err;
      }
    }
  } catch (err) {
    return result({
      height: Math.max(height, expectedHeight),
      kind: 'unreadable',
      detail: `the ledger could not be read: ${(err as Error).message}`,
    });
  }
  return result();
}

function parseHeader(block: SourceBlock): BlockHeader {
  try {
    return decodeHeader(block.header, 'header');
  } catch (err) {
    throw new Bad('bad-header', (err as Error).message);
  }
}

/** Checks one block's records; returns the seqs that were verified by their leaf hash only (pruned). */
function checkRecords(source: ChainSource, header: BlockHeader, firstSeq: number, strict: boolean): number[] {
  const end = firstSeq + header.count;
  const rows: SourceRecord[] = [];
  for (const row of source.records(firstSeq, end)) {
    const expected = firstSeq + rows.length;
    if (row.seq !== expected) {
      throw new Bad('missing-record', `record ${expected} is missing (found ${row.seq} in its place)`, expected);
    }
    rows.push(row);
  }
  if (rows.length !== header.count) {
    // An export files records by position, so a dropped line shifts the rest up: the first record that carries a
    // later seq than its place names the one that is gone.
    const shifted = rows.find((row) => (seqInside(row) ?? 0) > row.seq);
    const missing = shifted ? shifted.seq : firstSeq + rows.length;
    throw new Bad(
      'missing-record',
      `block has ${header.count} records, found ${rows.length}: record ${missing} is missing`,
      missing,
    );
  }
  // The root is checked first, over the raw bytes: when it holds, the bytes are exactly what the producer signed,
  // and the per-record checks below only look for what a producer could have got wrong.
  const prunedSeqs: number[] = [];
  const leaves = rows.map((row) => {
    if (row.leaf !== undefined) {
      if (row.leaf.length !== 32) {
        throw new Bad('changed-record', `record ${row.seq} was pruned but its kept leaf hash is not 32 bytes`, row.seq);
      }
      prunedSeqs.push(row.seq);
      return row.leaf;
    }
    return leafHash(typeof row.bytes === 'string' ? utf8(row.bytes) : row.bytes);
  });
  if (!equalBytes(merkleRoot(leaves), fromHex(header.root))) {
    const moved = rows.find((row) => {
      const inside = seqInside(row);
      return inside !== undefined && inside !== row.seq;
    });
    if (moved) {
      throw new Bad(
        'reordered-record',
        `record ${moved.seq} holds record ${seqInside(moved)}: records were reordered or moved`,
        moved.seq,
      );
    }
    throw new Bad(
      'changed-record',
      `${firstRecordProblem(rows)}the records do not match the signed Merkle root: a record was changed` +
        (prunedSeqs.length > 0 ? ` (or the leaf hash kept for one of the ${prunedSeqs.length} pruned records)` : ''),
    );
  }
  for (const row of rows) {
    // A pruned record is covered by the root (checked above); there is no body left to look into.
    if (row.leaf !== undefined) continue;
    let record: LedgerRecord;
    try {
      record = strict
        ? decodeRecord(row.bytes, `record ${row.seq}`)
        : recordFromObject(
            JSON.parse(typeof row.bytes === 'string' ? row.bytes : textOf(row.bytes)),
            `record ${row.seq}`,
          );
    } catch (err) {
      throw new Bad(
        'bad-record',
        `record ${row.seq} was signed but is not a valid record: ${(err as Error).message}`,
        row.seq,
      );
    }
    if (record.seq !== row.seq) {
      throw new Bad(
        'reordered-record',
        `the record filed as ${row.seq} is record ${record.seq}: records were reordered`,
        row.seq,
      );
    }
    if (record.type === 'meter-batch') {
      const problem = checkMeterBatch(record.body);
      if (problem !== undefined) throw new Bad('bad-meter-signature', `record ${row.seq}: ${problem}`, row.seq);
    }
  }
  return prunedSeqs;
}

/** When the root fails, a record that no longer parses is the likeliest culprit: name it. */
function firstRecordProblem(rows: readonly SourceRecord[]): string {
  for (const row of rows) {
    if (row.leaf !== undefined) continue;
    try {
      decodeRecord(row.bytes, `record ${row.seq}`);
    } catch {
      return `record ${row.seq} no longer decodes; `;
    }
  }
  return '';
}

/** The seq a record's own bytes claim, when they parse far enough to say. */
function seqInside(row: SourceRecord): number | undefined {
  if (row.leaf !== undefined) return undefined;
  try {
    const seq = (JSON.parse(typeof row.bytes === 'string' ? row.bytes : textOf(row.bytes)) as { seq?: unknown }).seq;
    return Number.isSafeInteger(seq) ? (seq as number) : undefined;
  } catch {
    return undefined;
  }
}

const decoder = new TextDecoder();
function textOf(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
