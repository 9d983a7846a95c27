/**
 * Proof that one record is in a signed block: the record, its RFC 9162 inclusion path, and the signed header. A
 * third party checks it with nothing but this file and the producer's address.
 */
import { fromHex, toHex } from '../identity/bytes.js';
import type { LedgerStore } from '../store/ledger-store.js';
import { type BlockHeader, decodeHeader, headerHash, verifyHeaderSignature } from './block.js';
import { type CanonicalValue, canonicalBytes } from './canonical.js';
import { inclusionProof, leafHash, verifyInclusion } from './merkle.js';
import { decodeRecord, type LedgerRecord, recordFromObject } from './records.js';

export const PROOF_KIND = 'mgmc-record-proof';

export interface RecordProof {
  readonly kind: typeof PROOF_KIND;
  readonly version: 1;
  readonly record: LedgerRecord;
  /** Position of the record in its block (0-based) and the block's record count: the Merkle tree's size. */
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly path: readonly string[];
  readonly block: { readonly header: BlockHeader; readonly hash: string; readonly signature: string };
}

export function buildRecordProof(store: LedgerStore, seq: number): RecordProof {
  const block = store.blockForSeq(seq);
  if (block === undefined) {
    const last = store.lastSeq();
    throw new Error(
      seq > last || seq < 1
        ? `record ${seq} does not exist (this ledger has records 1..${last})`
        : `record ${seq} is not sealed into a block yet: wait for the next seal`,
    );
  }
  const rows = store.recordRange(block.firstSeq, block.count);
  if (rows.length !== block.count) throw new Error(`block ${block.height} is missing records: run mgmc ledger verify`);
  const leaves = rows.map((r) => leafHash(r.body));
  const index = seq - block.firstSeq;
  const row = rows[index];
  if (row === undefined) throw new Error(`record ${seq} is missing from block ${block.height}`);
  return {
    kind: PROOF_KIND,
    version: 1,
    record: decodeRecord(row.body, `record ${seq}`),
    leafIndex: index,
    treeSize: block.count,
    path: inclusionProof(leaves, index).map(toHex),
    block: { header: decodeHeader(block.header), hash: toHex(block.hash), signature: toHex(block.signature) },
  };
}

export interface ProofCheck {
  readonly ok: boolean;
  readonly detail: string;
}

/** Checks a proof (as parsed JSON). `producer`, when given, must be the block's signer. */
export function checkRecordProof(input: unknown, producer?: string): ProofCheck {
  try {
    const proof = input as RecordProof;
    if (proof?.kind !== PROOF_KIND || proof.version !== 1) return fail('not an mgmc record proof (version 1)');
    if (typeof proof.block !== 'object' || proof.block === null) return fail('the proof has no block');
    if (!Array.isArray(proof.path)) return fail('the proof has no inclusion path');
    const header = decodeHeader(proof.block.header, 'proof block header');
    const record = recordFromObject(proof.record, 'proof record');
    if (producer !== undefined && header.producer.toLowerCase() !== producer.toLowerCase()) {
      return fail(`the block was produced by ${header.producer}, not by ${producer}`);
    }
    const hash = toHex(headerHash(header));
    if (proof.block.hash !== undefined && proof.block.hash !== hash)
      return fail('the header hash does not match the header');
    if (!verifyHeaderSignature({ header, hash, signature: proof.block.signature })) {
      return fail(`the block signature is not ${header.producer}'s`);
    }
    if (proof.treeSize !== header.count)
      return fail(`tree size ${proof.treeSize} differs from the block's count ${header.count}`);
    const leaf = leafHash(canonicalBytes(record as unknown as CanonicalValue));
    const path = proof.path.map((p) => fromHex(p, 'proof path entry', 32));
    if (!verifyInclusion(leaf, proof.leafIndex, proof.treeSize, path, fromHex(header.root, 'root', 32))) {
      return fail('the inclusion path does not lead from this record to the signed Merkle root');
    }
    return {
      ok: true,
      detail: `record ${record.seq} is in block ${header.height} of chain ${header.chainId}, signed by ${header.producer}`,
    };
  } catch (err) {
    return fail((err as Error).message);
  }
}

function fail(detail: string): ProofCheck {
  return { ok: false, detail };
}
