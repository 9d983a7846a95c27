/**
 * The MGMC's light client of the DSO chain (docs/protocol.md, "DSO chain and receipts").
 *
 * It starts from the DSO genesis file, accepts DSO headers strictly in order (each sealed by more than two thirds of
 * the validator set in force, following validator-set blocks), and accepts a receipt for one of its own blocks only
 * when the receipt's DSO header is one it accepted, the inclusion path leads from the block's header hash to that
 * header's root, and the hash is the one of its own block at that height. Such a block is anchored: the DSO has
 * committed to it outside this gateway, which is what makes pruning its record bodies safe (headers stay).
 *
 * Receipts may arrive before their header when the header is the next one: the receipt carries it with its seals,
 * and it is checked and accepted like any header.
 */

import {
  type DsoHeader,
  type DsoProblemKind,
  decodeDsoHeader,
  dsoHeaderHash,
  encodeDsoHeader,
  packSeals,
  ValidatorSetTracker,
} from '../dso/chain.js';
import { type DsoGenesis, genesisHash } from '../dso/genesis.js';
import {
  checkReceiptInclusion,
  encodeReceipt,
  parseReceipt,
  type Receipt,
  type ReceiptProblemKind,
} from '../dso/receipt.js';
import { fromHex, toHex } from '../identity/bytes.js';
import type { Address } from '../identity/keys.js';
import type { Logger } from '../logger.js';
import type { LedgerStore } from '../store/ledger-store.js';
import type { AnchorStore } from './anchor-store.js';
import { decodeHeader } from './block.js';

/** Ledger meta keys the light client owns. */
export const DSO_GENESIS_META = 'dsoGenesisHash';
export const PRUNED_THROUGH_META = 'prunedThroughSeq';

export interface LightClientOptions {
  readonly genesis: DsoGenesis;
  readonly anchors: AnchorStore;
  /** The MGMC's own ledger: its blocks are what receipts are checked against. */
  readonly ledger: LedgerStore;
  readonly logger?: Logger;
}

export type HeaderResult =
  | { readonly ok: true; readonly height: number; readonly hash: string; readonly duplicate: boolean }
  | { readonly ok: false; readonly kind: DsoProblemKind | 'conflict'; readonly detail: string };

export type ReceiptResult =
  | {
      readonly ok: true;
      readonly mgmcHeight: number;
      readonly dsoHeight: number;
      /** True when the block was already anchored (re-delivery); nothing was written. */
      readonly duplicate: boolean;
    }
  | {
      readonly ok: false;
      readonly kind:
        | ReceiptProblemKind
        | 'conflict'
        | 'not-ours'
        | 'unknown-block'
        | 'unknown-dso-header'
        | 'dso-header-mismatch';
      readonly detail: string;
    };

export interface PrunableRange {
  /** Record seqs fromSeq..toSeq (inclusive) may lose their bodies. */
  readonly fromSeq: number;
  readonly toSeq: number;
  /** The last block the range covers. */
  readonly toHeight: number;
}

export class LightClientError extends Error {
  override name = 'LightClientError';
}

export class DsoLightClient {
  private tracker: ValidatorSetTracker;
  private anchored: number;
  private readonly self: Address;

  private constructor(private readonly options: LightClientOptions) {
    const { anchors, ledger, genesis } = options;
    const producer = ledger.getMeta('producer');
    if (producer === undefined) {
      throw new LightClientError(
        'the ledger has no producer yet: open the ledger (with its key) before the DSO client',
      );
    }
    this.self = producer;
    const id = genesisHash(genesis);
    const stored = ledger.getMeta(DSO_GENESIS_META);
    if (stored === undefined) ledger.setMeta({ [DSO_GENESIS_META]: id });
    else if (stored !== id) {
      throw new LightClientError(
        `this ledger follows the DSO chain with genesis hash ${stored}, but the DSO genesis file gives ${id}: ` +
          'configure the genesis file of the DSO this MGMC is registered with',
      );
    }
    const last = anchors.lastHeader();
    const lastSet = anchors.lastHeaderOfKind('validator-set');
    this.tracker = ValidatorSetTracker.resume(
      genesis,
      last && decodeDsoHeader(last.header, `stored DSO header ${last.height}`),
      lastSet && decodeDsoHeader(lastSet.header, `stored DSO header ${lastSet.height}`),
    );
    this.anchored = anchors.anchoredHeight();
  }

  static open(options: LightClientOptions): DsoLightClient {
    return new DsoLightClient(options);
  }

  /** Height of the last accepted DSO header (0: only the genesis). */
  dsoHeight(): number {
    return this.tracker.height;
  }

  /** The validator set that must seal the next DSO header. */
  validators(): readonly Address[] {
    return this.tracker.validators;
  }

  /** Highest own block height h such that blocks 1..h all hold a checked receipt. */
  anchoredHeight(): number {
    return this.anchored;
  }

  isAnchored(mgmcHeight: number): boolean {
    return mgmcHeight <= this.anchored || this.options.anchors.anchorAt(mgmcHeight) !== undefined;
  }

  /** The stored receipt of an own block, if it is anchored. */
  receipt(mgmcHeight: number): Receipt | undefined {
    const row = this.options.anchors.anchorAt(mgmcHeight);
    return row && parseReceipt(JSON.parse(new TextDecoder().decode(row.receipt)), `stored receipt ${mgmcHeight}`);
  }

  /**
   * Accepts the next DSO header. An already accepted header again is a duplicate (ok); another header at an accepted
   * height is a 'conflict': the validators sealed two blocks at one height, which the operator must see.
   */
  acceptHeader(header: DsoHeader | object, seals: readonly string[]): HeaderResult {
    let parsed: DsoHeader;
    try {
      parsed = decodeDsoHeader(header);
    } catch (err) {
      return { ok: false, kind: 'bad-header', detail: (err as Error).message };
    }
    if (parsed.height <= this.tracker.height) {
      const stored = this.options.anchors.headerAt(parsed.height);
      const hash = dsoHeaderHash(parsed);
      if (stored !== undefined && toHex(stored.hash) === hash)
        return { ok: true, height: parsed.height, hash, duplicate: true };
      const detail = `DSO header ${parsed.height} (${hash}) differs from the accepted one (${stored ? toHex(stored.hash) : 'missing'}): the DSO sealed two blocks at one height`;
      this.options.logger?.error({ height: parsed.height }, detail);
      return { ok: false, kind: 'conflict', detail };
    }
    const check = this.tracker.check(parsed, seals);
    if (!check.ok) return check;
    const insert = this.options.anchors.insertHeader({
      height: parsed.height,
      hash: fromHex(check.hash),
      kind: parsed.kind,
      header: encodeDsoHeader(parsed),
      seals: packSeals(seals),
    });
    if (insert !== 'inserted') {
      return {
        ok: false,
        kind: 'conflict',
        detail: `DSO header ${parsed.height} is already stored (database ahead of client)`,
      };
    }
    this.tracker.accept(parsed, seals);
    if (parsed.kind === 'validator-set') {
      this.options.logger?.info(
        { height: parsed.height, validators: parsed.newValidators },
        'DSO validator set changes from the next block on',
      );
    }
    return { ok: true, height: parsed.height, hash: check.hash, duplicate: false };
  }

  /** Checks a receipt (parsed JSON) for one of this MGMC's blocks and, when it holds, marks the block anchored. */
  acceptReceipt(input: unknown): ReceiptResult {
    let receipt: Receipt;
    try {
      receipt = parseReceipt(input);
    } catch (err) {
      return { ok: false, kind: 'bad-receipt', detail: (err as Error).message };
    }
    if (receipt.mgmc.toLowerCase() !== this.self.toLowerCase()) {
      return { ok: false, kind: 'not-ours', detail: `the receipt is for ${receipt.mgmc}, this MGMC is ${this.self}` };
    }
    const own = this.options.ledger.blockAt(receipt.mgmcHeight);
    if (own === undefined) {
      return {
        ok: false,
        kind: 'unknown-block',
        detail: `the receipt is for block ${receipt.mgmcHeight}, which this ledger does not have`,
      };
    }
    if (toHex(own.hash) !== receipt.mgmcHeaderHash) {
      return {
        ok: false,
        kind: 'wrong-header-hash',
        detail: `the receipt anchors ${receipt.mgmcHeaderHash} as block ${receipt.mgmcHeight}, but that block's hash is ${toHex(own.hash)}`,
      };
    }
    const dso = receipt.dsoHeader;
    let stored = this.options.anchors.headerAt(dso.height);
    if (stored === undefined && dso.height === this.tracker.height + 1) {
      const accepted = this.acceptHeader(dso, receipt.dsoSeals);
      if (!accepted.ok) return accepted;
      stored = this.options.anchors.headerAt(dso.height);
    }
    if (stored === undefined) {
      return {
        ok: false,
        kind: 'unknown-dso-header',
        detail: `the receipt is in DSO block ${dso.height}, but this client has DSO headers up to ${this.tracker.height}: fetch the headers in between first`,
      };
    }
    const dsoHash = dsoHeaderHash(dso);
    if (toHex(stored.hash) !== dsoHash) {
      return {
        ok: false,
        kind: 'dso-header-mismatch',
        detail: `the receipt's DSO header ${dso.height} (${dsoHash}) is not the accepted one (${toHex(stored.hash)})`,
      };
    }
    const inclusion = checkReceiptInclusion(receipt);
    if (!inclusion.ok) return inclusion;
    const insert = this.options.anchors.insertAnchor({
      mgmcHeight: receipt.mgmcHeight,
      dsoHeight: dso.height,
      receipt: encodeReceipt(receipt),
    });
    if (insert === 'inserted' && receipt.mgmcHeight === this.anchored + 1) {
      this.anchored = this.options.anchors.anchoredHeight();
    }
    return { ok: true, mgmcHeight: receipt.mgmcHeight, dsoHeight: dso.height, duplicate: insert !== 'inserted' };
  }

  /**
   * Records whose bodies may be pruned: those of blocks that are anchored (in the run from block 1) and sealed at
   * least `retentionMs` before `now`, after what earlier pruning removed. Stops at the first block that is too young,
   * so a clock that stepped back never lets a young block through. Undefined when nothing is prunable.
   */
  prunableRecords(retentionMs: number, now: number): PrunableRange | undefined {
    const { ledger } = this.options;
    const prunedThrough = Number(ledger.getMeta(PRUNED_THROUGH_META) ?? 0);
    const cutoff = now - retentionMs;
    let fromHeight = 1;
    if (prunedThrough > 0) {
      const block = ledger.blockForSeq(prunedThrough);
      if (block === undefined)
        throw new LightClientError(`pruned record ${prunedThrough} is in no block (run mgmc ledger verify)`);
      fromHeight = block.height + 1;
    }
    let last: { height: number; end: number } | undefined;
    for (const block of ledger.blocks(fromHeight)) {
      if (block.height > this.anchored) break;
      if (decodeHeader(block.header, `block ${block.height}`).time > cutoff) break;
      last = { height: block.height, end: block.firstSeq + block.count - 1 };
    }
    return last && { fromSeq: prunedThrough + 1, toSeq: last.end, toHeight: last.height };
  }
}
