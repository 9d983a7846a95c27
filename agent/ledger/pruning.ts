/**
 * Pruning record bodies after anchoring, and reading a pruned ledger back.
 *
 * Once the DSO has anchored a block (a checked receipt) and the retention has passed, its record bodies may go: the
 * DSO holds them, the MGMC keeps what proves them: headers, signatures, receipts and, per record, its Merkle leaf
 * hash, so `mgmc ledger verify` still checks every root and every link. Pruning goes block by block and first checks
 * that the records still hash to the block's signed root: a damaged record is never pruned out of sight.
 */
import { dsoHeaderHash } from '../dso/chain.js';
import { checkReceiptInclusion, parseReceipt } from '../dso/receipt.js';
import { equalBytes, fromHex, toHex } from '../identity/bytes.js';
import type { LedgerStore } from '../store/ledger-store.js';
import type { AnchorStore } from './anchor-store.js';
import { decodeHeader } from './block.js';
import { PRUNED_THROUGH_META, type PrunableRange } from './light-client.js';
import { leafHash, merkleRoot } from './merkle.js';
import { storeSource } from './sources.js';
import type { ChainSource } from './verify.js';

export class PruneError extends Error {
  override name = 'PruneError';
}

export interface PruneResult {
  /** Records whose bodies were dropped by this call. */
  readonly records: number;
  /** Last record now pruned (the new PRUNED_THROUGH_META), 0 when nothing was. */
  readonly throughSeq: number;
  readonly throughHeight: number;
}

export interface PruneOptions {
  /** Records per transaction (whole blocks; a block larger than this is one transaction). Default 10,000. */
  readonly batchRecords?: number;
  /**
   * Stop after the block that brings this call to this many records (whole blocks), so a large backlog is pruned over
   * several calls instead of blocking the agent for long. Default: the whole range.
   */
  readonly maxRecords?: number;
}

/**
 * Drops the bodies of the records in `range` (as DsoLightClient.prunableRecords gives it: whole blocks, starting
 * right after what was pruned before), keeping their leaf hashes. Each batch of blocks is one transaction with the
 * pruned-through mark, so a crash leaves a consistent ledger. Throws a PruneError, pruning nothing more, at a block
 * whose records no longer match its signed root.
 */
export function pruneRecords(store: LedgerStore, range: PrunableRange, options: PruneOptions = {}): PruneResult {
  const batchRecords = options.batchRecords ?? 10_000;
  const already = Number(store.getMeta(PRUNED_THROUGH_META) ?? 0);
  if (range.fromSeq !== already + 1) {
    throw new PruneError(
      `records are pruned through ${already}, so the next range starts at ${already + 1}, not ${range.fromSeq}`,
    );
  }
  let rows: { seq: number; leaf: Uint8Array }[] = [];
  let pruned = 0;
  let through = { seq: already, height: 0 };
  let last = through;
  const flush = (seq: number, height: number) => {
    pruned += store.pruneBodies(rows, { [PRUNED_THROUGH_META]: String(seq) });
    through = { seq, height };
    rows = [];
  };
  // The blocks checked so far are pruned before a bad one stops the run: they are fine, and the next run starts there.
  const fail = (message: string): never => {
    if (last.seq > through.seq) flush(last.seq, last.height);
    throw new PruneError(message);
  };
  const first = store.blockForSeq(range.fromSeq);
  if (first === undefined || first.firstSeq !== range.fromSeq) {
    throw new PruneError(`record ${range.fromSeq} does not start a sealed block: nothing pruned`);
  }
  // Block by block with point queries: writing while a statement iterates the blocks table is not allowed.
  for (let height = first.height; height <= range.toHeight; height++) {
    const block = store.blockAt(height);
    if (block === undefined) return fail(`block ${height} is missing: not pruned (run mgmc ledger verify)`);
    const header = decodeHeader(block.header, `block ${block.height}`);
    const records = store.recordRangeWithLeaves(block.firstSeq, block.count);
    if (records.length !== block.count) {
      return fail(
        `block ${block.height} has ${records.length} of its ${block.count} records: not pruned (run mgmc ledger verify)`,
      );
    }
    const leaves = records.map((r) => r.leaf ?? leafHash(r.body));
    if (!equalBytes(merkleRoot(leaves), fromHex(header.root))) {
      return fail(
        `the records of block ${block.height} do not match its signed root: not pruned (run mgmc ledger verify)`,
      );
    }
    records.forEach((r, i) => {
      if (r.leaf === undefined) rows.push({ seq: r.seq, leaf: leaves[i] as Uint8Array });
    });
    const end = block.firstSeq + block.count - 1;
    last = { seq: end, height: block.height };
    const enough = end - already >= (options.maxRecords ?? Number.POSITIVE_INFINITY);
    if (rows.length >= batchRecords || block.height === range.toHeight || enough) flush(end, block.height);
    if (enough) break;
  }
  if (last.seq > through.seq) flush(last.seq, last.height);
  return { records: pruned, throughSeq: through.seq, throughHeight: through.height };
}

/**
 * The agent database as a chain source for verifyChain, pruned records included (as their leaf hashes). Use this
 * instead of sources.ts's storeSource for a database that may have been pruned.
 */
export function ledgerSource(store: LedgerStore): ChainSource {
  return {
    ...storeSource(store),
    records: (first, end) =>
      store
        .recordRangeWithLeaves(first, end - first)
        .map((row) => (row.leaf === undefined ? { seq: row.seq, bytes: row.body } : { seq: row.seq, leaf: row.leaf })),
  };
}

/** What the stored receipts say about the chain, for `mgmc ledger verify`. */
export interface AnchorReport {
  /** Blocks 1..anchoredHeight all hold a receipt. */
  readonly anchoredHeight: number;
  /** Blocks with a receipt, as runs [first, last]. */
  readonly ranges: readonly { readonly first: number; readonly last: number }[];
  readonly receipts: number;
  /** Height of the last DSO header the light client accepted (0: none). */
  readonly dsoHeight: number;
  /** Receipts that do not hold against the stored blocks and DSO headers (the first few). */
  readonly problems: readonly { readonly height: number; readonly detail: string }[];
}

/**
 * Checks every stored receipt against what it proves: the own block at its height has the receipt's header hash, the
 * inclusion path leads to the DSO header's root, and that DSO header is the one the light client accepted (whose
 * seals it checked, in order from the genesis, when it accepted it).
 */
export function anchorReport(store: LedgerStore, anchors: AnchorStore, maxProblems = 10): AnchorReport {
  const problems: { height: number; detail: string }[] = [];
  const problem = (height: number, detail: string) => {
    if (problems.length < maxProblems) problems.push({ height, detail });
  };
  let receipts = 0;
  const decoder = new TextDecoder();
  for (const row of anchors.anchors()) {
    receipts++;
    try {
      const receipt = parseReceipt(JSON.parse(decoder.decode(row.receipt)), `receipt of block ${row.mgmcHeight}`);
      const own = store.blockAt(row.mgmcHeight);
      if (own === undefined) {
        problem(row.mgmcHeight, `a receipt is stored for block ${row.mgmcHeight}, which the ledger does not have`);
        continue;
      }
      if (receipt.mgmcHeight !== row.mgmcHeight || receipt.mgmcHeaderHash !== toHex(own.hash)) {
        problem(row.mgmcHeight, `the stored receipt is not for block ${row.mgmcHeight} (hash ${toHex(own.hash)})`);
        continue;
      }
      const inclusion = checkReceiptInclusion(receipt);
      if (!inclusion.ok) {
        problem(row.mgmcHeight, inclusion.detail);
        continue;
      }
      const dso = anchors.headerAt(receipt.dsoHeader.height);
      if (dso === undefined || toHex(dso.hash) !== dsoHeaderHash(receipt.dsoHeader)) {
        problem(
          row.mgmcHeight,
          `the receipt's DSO header ${receipt.dsoHeader.height} is not the one the light client accepted`,
        );
      }
    } catch (err) {
      problem(row.mgmcHeight, `the stored receipt does not parse: ${(err as Error).message}`);
    }
  }
  return {
    anchoredHeight: anchors.anchoredHeight(),
    ranges: anchors.anchorRanges(),
    receipts,
    dsoHeight: anchors.lastHeader()?.height ?? 0,
    problems,
  };
}
