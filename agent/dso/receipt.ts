/**
 * Receipts: the DSO's proof that it anchored one MGMC block. A receipt carries the sealed DSO header and the RFC 9162
 * inclusion path of the MGMC header hash in that header's root, so the MGMC (or an auditor) can check it with the
 * validator set alone. Every field is an integer or a 0x-hex string, so a receipt is canonical-JSON encodable.
 */
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { type CanonicalValue, canonicalBytes } from '../ledger/canonical.js';
import { inclusionProof, leafHash, nodeHash, verifyInclusion } from '../ledger/merkle.js';
import {
  type DsoHeader,
  type DsoProblemKind,
  decodeDsoHeader,
  dsoHeaderHash,
  entriesRoot,
  entryLeaves,
  verifyDsoSeals,
} from './chain.js';

export const RECEIPT_VERSION = 1;

export interface DsoEntry {
  readonly mgmc: Address;
  readonly mgmcHeight: number;
  /** 0x-hex MGMC block-header hash (its signing digest). */
  readonly headerHash: string;
}

export interface Receipt {
  readonly version: number;
  readonly mgmc: Address;
  readonly mgmcHeight: number;
  readonly mgmcHeaderHash: string;
  readonly dsoHeader: DsoHeader;
  readonly dsoSeals: readonly string[];
  /** Position of the MGMC header hash among the DSO block's entries (0-based); the tree size is dsoHeader.count. */
  readonly index: number;
  /** RFC 9162 inclusion path, 0x-hex, from the leaf's sibling up. */
  readonly proof: readonly string[];
}

export type ReceiptProblemKind = DsoProblemKind | 'bad-receipt' | 'wrong-header-hash' | 'bad-proof';

export type ReceiptCheck =
  | { readonly ok: true; readonly dsoHeight: number; readonly dsoHash: string }
  | { readonly ok: false; readonly kind: ReceiptProblemKind; readonly detail: string };

/** The receipt for entry `index` of a sealed DSO block whose entries are `entries`. */
export function buildReceipt(
  header: DsoHeader,
  seals: readonly string[],
  entries: readonly DsoEntry[],
  index: number,
): Receipt {
  const hashes = entries.map((e) => e.headerHash);
  if (entries.length !== header.count || entriesRoot(hashes) !== header.root) {
    throw new Error(`the ${entries.length} entries given are not the ones DSO block ${header.height} commits to`);
  }
  const entry = entries[index];
  if (entry === undefined) throw new RangeError(`DSO block ${header.height} has no entry ${index}`);
  return {
    version: RECEIPT_VERSION,
    mgmc: entry.mgmc,
    mgmcHeight: entry.mgmcHeight,
    mgmcHeaderHash: entry.headerHash,
    dsoHeader: header,
    dsoSeals: [...seals],
    index,
    proof: inclusionProof(entryLeaves(hashes), index).map(toHex),
  };
}

/**
 * Receipts for every entry of a sealed block. Builds the tree once and reads each path off it (n log n hashes instead
 * of n per receipt): pairing neighbours level by level and carrying an odd last node up unchanged is exactly RFC
 * 9162's tree (see merkle.ts), so a leaf's path is its sibling at every level where it has one.
 */
export function buildReceipts(header: DsoHeader, seals: readonly string[], entries: readonly DsoEntry[]): Receipt[] {
  const hashes = entries.map((e) => e.headerHash);
  if (entries.length !== header.count || entriesRoot(hashes) !== header.root) {
    throw new Error(`the ${entries.length} entries given are not the ones DSO block ${header.height} commits to`);
  }
  const levels: Uint8Array[][] = [entryLeaves(hashes)];
  for (let level = levels[0] as Uint8Array[]; level.length > 1; ) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2)
      next.push(nodeHash(level[i] as Uint8Array, level[i + 1] as Uint8Array));
    if (level.length % 2 === 1) next.push(level[level.length - 1] as Uint8Array);
    levels.push(next);
    level = next;
  }
  return entries.map((entry, index) => {
    const proof: string[] = [];
    let at = index;
    for (const level of levels.slice(0, -1)) {
      const sibling = level[at % 2 === 0 ? at + 1 : at - 1];
      if (sibling !== undefined) proof.push(toHex(sibling));
      at = Math.floor(at / 2);
    }
    return {
      version: RECEIPT_VERSION,
      mgmc: entry.mgmc,
      mgmcHeight: entry.mgmcHeight,
      mgmcHeaderHash: entry.headerHash,
      dsoHeader: header,
      dsoSeals: [...seals],
      index,
      proof,
    };
  });
}

/** Canonical bytes of a receipt (what is stored and sent). */
export function encodeReceipt(receipt: Receipt): Uint8Array {
  return canonicalBytes(receipt as unknown as CanonicalValue);
}

/** Parses a receipt (a parsed JSON object); throws an Error naming the bad field. */
export function parseReceipt(input: unknown, where = 'receipt'): Receipt {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error(`${where}: not an object`);
  const value = input as Record<string, unknown>;
  const allowed = ['version', 'mgmc', 'mgmcHeight', 'mgmcHeaderHash', 'dsoHeader', 'dsoSeals', 'index', 'proof'];
  for (const key of Object.keys(value))
    if (!allowed.includes(key)) throw new Error(`${where}: unexpected field ${key}`);
  if (value.version !== RECEIPT_VERSION) {
    throw new Error(
      `${where}: version ${JSON.stringify(value.version)} is not supported (expected ${RECEIPT_VERSION})`,
    );
  }
  const uint = (key: string, min: number): number => {
    const v = value[key];
    if (!Number.isSafeInteger(v) || (v as number) < min)
      throw new Error(`${where}: ${key} must be an integer >= ${min}`);
    return v as number;
  };
  const hexList = (key: string, bytes: number): string[] => {
    const v = value[key];
    if (!Array.isArray(v)) throw new Error(`${where}: ${key} must be an array of 0x-hex strings`);
    return v.map((item, i) => {
      fromHex(item as string, `${where}: ${key}[${i}]`, bytes);
      if (item !== (item as string).toLowerCase()) throw new Error(`${where}: ${key}[${i}] must be lower-case hex`);
      return item as string;
    });
  };
  const mgmc = parseAddress(value.mgmc as string, `${where}: mgmc`);
  const mgmcHeaderHash = value.mgmcHeaderHash;
  if (typeof mgmcHeaderHash !== 'string' || !/^0x[0-9a-f]{64}$/.test(mgmcHeaderHash)) {
    throw new Error(`${where}: mgmcHeaderHash must be a 32-byte lower-case 0x-hex hash`);
  }
  return {
    version: RECEIPT_VERSION,
    mgmc,
    mgmcHeight: uint('mgmcHeight', 1),
    mgmcHeaderHash,
    dsoHeader: decodeDsoHeader((value.dsoHeader ?? null) as object, `${where}: dsoHeader`),
    dsoSeals: hexList('dsoSeals', 65),
    index: uint('index', 0),
    proof: hexList('proof', 32),
  };
}

/**
 * The inclusion part alone: the MGMC header hash is leaf `index` of the DSO header's root. Used by a light client
 * that already holds (and has checked) the DSO header.
 */
export function checkReceiptInclusion(receipt: Receipt): ReceiptCheck {
  const header = receipt.dsoHeader;
  if (receipt.index >= header.count) {
    return fail('bad-proof', `index ${receipt.index} is outside DSO block ${header.height}'s ${header.count} entries`);
  }
  let ok: boolean;
  try {
    ok = verifyInclusion(
      leafHash(fromHex(receipt.mgmcHeaderHash, 'mgmcHeaderHash', 32)),
      receipt.index,
      header.count,
      receipt.proof.map((p, i) => fromHex(p, `proof[${i}]`, 32)),
      fromHex(header.root, 'root', 32),
    );
  } catch (err) {
    return fail('bad-proof', (err as Error).message);
  }
  if (!ok) {
    return fail(
      'bad-proof',
      `the inclusion path does not lead from MGMC header ${receipt.mgmcHeaderHash} to DSO block ${header.height}'s root`,
    );
  }
  return { ok: true, dsoHeight: header.height, dsoHash: dsoHeaderHash(header) };
}

/**
 * Checks a receipt (parsed JSON) against the validator set in force at its DSO block and the MGMC header hash the
 * checker expects: the header hash matches, the DSO header is sealed by more than two thirds of `validators`, and the
 * inclusion path leads to its root. Never throws.
 */
export function checkReceipt(input: unknown, validators: readonly Address[], expectedHeaderHash: string): ReceiptCheck {
  let receipt: Receipt;
  try {
    receipt = parseReceipt(input);
  } catch (err) {
    return fail('bad-receipt', (err as Error).message);
  }
  if (receipt.mgmcHeaderHash !== expectedHeaderHash.toLowerCase()) {
    return fail(
      'wrong-header-hash',
      `the receipt is for MGMC header ${receipt.mgmcHeaderHash}, but block ${receipt.mgmcHeight} has hash ${expectedHeaderHash}`,
    );
  }
  const seals = verifyDsoSeals(receipt.dsoHeader, receipt.dsoSeals, validators);
  if (!seals.ok) return seals;
  return checkReceiptInclusion(receipt);
}

function fail(kind: ReceiptProblemKind, detail: string): ReceiptCheck {
  return { ok: false, kind, detail };
}
