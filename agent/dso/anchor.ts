/**
 * The DSO node's anchoring loop: it collects the MGMC blocks the DSO accepted, and every `sealEverySeconds` or every
 * `sealEveryEntries` entries, whichever comes first, puts their header hashes into a DSO block, gets it sealed, stores
 * it and builds one receipt per entry.
 *
 * Single validator: the node seals locally and the block is final at once. Several validators: the node makes a
 * proposal, seals it itself when it is a validator, and hands it to `onProposal`; other validators' seals come back
 * through `addSeal` (the transport is not this module's business) and the block is stored once more than two thirds
 * have sealed. One proposal is open at a time, and a validator never seals two different headers at one height (the
 * lock is kept in the database, so a restart offers the same proposal again).
 *
 * Durability: pending work is the accepted blocks that no DSO block holds yet (a database query, not memory), so a
 * crash at any point loses no entry and anchors none twice.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { recoverAddress, SIGNATURE_LENGTH } from '../identity/signing.js';
import {
  type BlockHeader,
  decodeHeader,
  encodeHeader,
  headerHash,
  type Signer,
  verifyHeaderSignature,
} from '../ledger/block.js';
import { canonicalBytes, parseCanonical } from '../ledger/canonical.js';
import type { Logger } from '../logger.js';
import {
  buildDsoBlock,
  type DsoBlockKind,
  type DsoCheck,
  type DsoHeader,
  type DsoParent,
  type DsoProblem,
  decodeDsoHeader,
  dsoHeaderDigest,
  dsoHeaderHash,
  encodeDsoHeader,
  entriesRoot,
  packSeals,
  requiredSeals,
  sealDsoBlock,
  unpackSeals,
  ValidatorSetTracker,
  validatorSetHash,
  verifyDsoLink,
} from './chain.js';
import type { DsoChainStore, DsoEntryRow } from './chain-store.js';
import { type DsoGenesis, genesisHash } from './genesis.js';
import { buildReceipts, type DsoEntry, type Receipt } from './receipt.js';

/** A DSO block being sealed. `addSeal` adds to `seals`; everything else is fixed. */
export interface Proposal {
  readonly header: DsoHeader;
  readonly hash: string;
  readonly entries: readonly DsoEntry[];
  /** The set that must seal it (the set in force after its parent). */
  readonly validators: readonly Address[];
  /** Seals so far, by validator address (EIP-55). */
  readonly seals: Map<Address, string>;
}

export type AddSealResult =
  | { readonly ok: true; readonly signer: Address; readonly duplicate: boolean; readonly final: boolean }
  | DsoProblem;

/** A proposal for the block after `prev`, to be sealed by `validators` (the set in force after `prev`). */
export function proposeBlock(
  prev: DsoParent,
  validators: readonly Address[],
  entries: readonly DsoEntry[],
  time: number,
  kind: DsoBlockKind = 'anchor',
  newValidators?: readonly Address[],
): Proposal {
  const header = buildDsoBlock(
    prev,
    entries.map((e) => e.headerHash),
    time,
    kind,
    newValidators,
  );
  if (header.validatorSetHash !== validatorSetHash(header.chainId, validators)) {
    throw new Error(`the validators given are not the set in force after block ${header.height - 1}`);
  }
  return { header, hash: dsoHeaderHash(header), entries: [...entries], validators: [...validators], seals: new Map() };
}

/**
 * Adds one validator's seal. A seal that does not parse or is not from a member is refused; the same validator
 * sealing again is reported as a duplicate and changes nothing (re-delivery is normal).
 */
export function addSeal(proposal: Proposal, seal: string): AddSealResult {
  let signer: Address;
  try {
    signer = recoverAddress(dsoHeaderDigest(proposal.header), fromHex(seal, 'seal', SIGNATURE_LENGTH));
  } catch (err) {
    return {
      ok: false,
      kind: 'bad-seal',
      detail: `not a valid seal of block ${proposal.header.height}: ${message(err)}`,
    };
  }
  const member = proposal.validators.find((v) => v.toLowerCase() === signer.toLowerCase());
  if (member === undefined) {
    return {
      ok: false,
      kind: 'unknown-validator',
      detail: `seal of block ${proposal.header.height} is by ${signer}, who is not in the validator set`,
    };
  }
  const duplicate = proposal.seals.has(member);
  if (!duplicate) proposal.seals.set(member, seal.toLowerCase());
  return { ok: true, signer: member, duplicate, final: isFinal(proposal) };
}

/** True once more than two thirds of the proposal's validators have sealed it. */
export function isFinal(proposal: Proposal): boolean {
  return proposal.seals.size >= requiredSeals(proposal.validators.length);
}

/** The seals in their stored order (by validator address). */
export function proposalSeals(proposal: Proposal): string[] {
  return [...proposal.seals.entries()]
    .sort(([a], [b]) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1))
    .map(([, seal]) => seal);
}

export interface SealedDsoBlock {
  readonly header: DsoHeader;
  readonly hash: string;
  readonly seals: readonly string[];
  readonly entries: readonly DsoEntry[];
  /** One per entry, in entry order. */
  readonly receipts: readonly Receipt[];
}

/** An MGMC block the DSO has accepted (its records verified by the DSO's verifier). */
export interface MgmcBlockInput {
  readonly header: BlockHeader | object;
  /** 0x-hex of the producer's 65-byte signature. */
  readonly signature: string;
  /** The block's records as received, or a reference to where they are kept. */
  readonly records?: Uint8Array;
  readonly recordsRef?: string;
}

export type AcceptResult =
  | {
      readonly status: 'accepted' | 'duplicate';
      readonly mgmc: Address;
      readonly height: number;
      readonly hash: string;
    }
  | { readonly status: 'rejected' | 'conflict'; readonly detail: string };

export interface DsoAnchorOptions {
  readonly store: DsoChainStore;
  readonly genesis: DsoGenesis;
  readonly clock: Clock;
  readonly sealEveryEntries: number;
  readonly sealEverySeconds: number;
  /** This node's validator key. Without one (or when it is not in the set) the node follows but never seals. */
  readonly signer?: Signer;
  readonly logger?: Logger;
  /** A block is final and stored: send its receipts. Errors thrown here are logged, the block stays stored. */
  readonly onSealed?: (block: SealedDsoBlock) => void;
  /** A proposal needs other validators' seals: send it to them. Called again by `seal()` while it is open. */
  readonly onProposal?: (proposal: Proposal) => void;
}

export class DsoAnchorError extends Error {
  override name = 'DsoAnchorError';
}

export class DsoAnchor {
  private tracker: ValidatorSetTracker;
  private open: Proposal | undefined;
  private timer: TimerHandle | undefined;

  private constructor(private readonly options: DsoAnchorOptions) {
    const { store, genesis } = options;
    if (!(Number.isSafeInteger(options.sealEveryEntries) && options.sealEveryEntries >= 1)) {
      throw new DsoAnchorError(`sealEveryEntries must be an integer >= 1, got ${options.sealEveryEntries}`);
    }
    if (!(options.sealEverySeconds > 0)) {
      throw new DsoAnchorError(`sealEverySeconds must be > 0, got ${options.sealEverySeconds}`);
    }
    const genesisId = genesisHash(genesis);
    const stored = store.getMeta('genesisHash');
    if (stored === undefined) store.setMeta('genesisHash', genesisId);
    else if (stored !== genesisId) {
      throw new DsoAnchorError(
        `this DSO database belongs to the chain with genesis hash ${stored}, but the genesis file gives ${genesisId}: ` +
          'use the genesis file this chain started from, or another database',
      );
    }
    const last = store.lastBlock();
    const lastSet = store.lastBlockOfKind('validator-set');
    const tip = last && decodeDsoHeader(last.header, `stored DSO block ${last.height}`);
    if (last && tip && dsoHeaderHash(tip) !== toHex(last.hash)) {
      throw new DsoAnchorError(
        `stored DSO block ${last.height}: its hash does not match its header (database damaged)`,
      );
    }
    this.tracker = ValidatorSetTracker.resume(
      genesis,
      tip,
      lastSet && decodeDsoHeader(lastSet.header, `stored DSO block ${lastSet.height}`),
    );
    this.restoreOwnProposal();
  }

  static open(options: DsoAnchorOptions): DsoAnchor {
    return new DsoAnchor(options);
  }

  /** Height of the last stored DSO block (0 before the first). */
  get height(): number {
    return this.tracker.height;
  }

  /** The validator set that must seal the next block. */
  get validators(): readonly Address[] {
    return this.tracker.validators;
  }

  get pendingCount(): number {
    return this.options.store.pendingCount();
  }

  get proposal(): Proposal | undefined {
    return this.open;
  }

  /**
   * Records an MGMC block the DSO accepted (idempotent: the same block again is 'duplicate'; another block at the
   * same MGMC height is 'conflict'). The header hash and the producer's signature are checked here; the records are
   * the verifier's business. Seals a block when `sealEveryEntries` entries are pending.
   */
  acceptMgmcBlock(block: MgmcBlockInput): AcceptResult {
    if (block.records === undefined && block.recordsRef === undefined) {
      return {
        status: 'rejected',
        detail: 'an accepted MGMC block needs its records or a reference to where they are kept',
      };
    }
    let header: BlockHeader;
    try {
      header = decodeHeader(block.header, 'MGMC block header');
    } catch (err) {
      return { status: 'rejected', detail: message(err) };
    }
    const hash = toHex(headerHash(header));
    if (!verifyHeaderSignature({ header, hash, signature: block.signature })) {
      return {
        status: 'rejected',
        detail: `MGMC block ${header.height}: the signature is not ${header.producer}'s over this header`,
      };
    }
    const outcome = this.options.store.insertAccepted({
      mgmc: header.producer,
      height: header.height,
      hash: fromHex(hash),
      header: encodeHeader(header),
      signature: fromHex(block.signature),
      ...(block.records === undefined ? {} : { records: block.records }),
      ...(block.recordsRef === undefined ? {} : { recordsRef: block.recordsRef }),
      received: this.options.clock.now(),
    });
    if (outcome.status === 'conflict') {
      const detail = `${header.producer} signed two different blocks at height ${header.height}: ${toHex(outcome.storedHash)} (kept) and ${hash}`;
      this.options.logger?.error({ mgmc: header.producer, height: header.height }, detail);
      return { status: 'conflict', detail };
    }
    if (outcome.status === 'inserted' && this.open === undefined) {
      try {
        if (this.pendingCount >= this.options.sealEveryEntries) this.seal();
      } catch (err) {
        // The entry is stored and stays pending; the timer retries. Accepting must not fail for a failed seal.
        this.options.logger?.error({ err }, 'sealing a DSO block failed; the entries stay pending');
      }
    }
    return {
      status: outcome.status === 'inserted' ? 'accepted' : 'duplicate',
      mgmc: header.producer,
      height: header.height,
      hash,
    };
  }

  /**
   * Seals what is pending: with one validator, every pending entry in blocks of at most `sealEveryEntries` (returns
   * the last block); with several, opens one proposal (or offers the open one again) and returns it.
   */
  seal(): SealedDsoBlock | Proposal | undefined {
    if (this.open !== undefined) {
      this.options.onProposal?.(this.open);
      return this.open;
    }
    let last: SealedDsoBlock | Proposal | undefined;
    for (;;) {
      const pending = this.options.store.pendingEntries(this.options.sealEveryEntries);
      if (pending.length === 0) return last;
      const entries = pending.map((p) => ({
        mgmc: p.mgmc,
        mgmcHeight: p.mgmcHeight,
        headerHash: toHex(p.headerHash),
      }));
      last = this.offer(proposeBlock(this.tracker.tip, this.tracker.validators, entries, this.options.clock.now()));
      if (!('receipts' in last)) return last;
    }
  }

  /** Proposes a validator-set block that replaces the set with `validators` from the block after it on. */
  proposeValidatorSet(validators: readonly Address[]): SealedDsoBlock | Proposal {
    if (this.open !== undefined) {
      throw new DsoAnchorError(
        `DSO block ${this.open.header.height} is still being sealed; propose the change after it`,
      );
    }
    const next = validators.map((v, i) => parseAddress(v, `new validator ${i}`));
    return this.offer(
      proposeBlock(this.tracker.tip, this.tracker.validators, [], this.options.clock.now(), 'validator-set', next),
    );
  }

  /** A seal from another validator for the open proposal; stores the block once it is final. */
  addSeal(seal: string): AddSealResult & { readonly sealed?: SealedDsoBlock } {
    const open = this.open;
    if (open === undefined) {
      return { ok: false, kind: 'bad-seal', detail: 'no DSO block is being sealed (the seal came late or twice)' };
    }
    const result = addSeal(open, seal);
    if (!result.ok || !result.final || result.duplicate) return result;
    return { ...result, sealed: this.commit(open.header, proposalSeals(open), open.entries) };
  }

  /**
   * As a validator, seals another node's proposal for the next block: it must extend this node's chain, commit to
   * `entries`, and be the only header this node seals at that height.
   */
  sealProposal(header: DsoHeader, entries: readonly DsoEntry[]): { ok: true; seal: string } | DsoProblem {
    const link = verifyDsoLink(header, this.tracker.tip);
    if (!link.ok) return link;
    const signer = this.validatorSigner();
    if (signer === undefined) {
      return { ok: false, kind: 'unknown-validator', detail: 'this node has no key in the validator set' };
    }
    if (entries.length !== header.count || entriesRoot(entries.map((e) => e.headerHash)) !== header.root) {
      return { ok: false, kind: 'bad-header', detail: `the entries sent do not match block ${header.height}'s root` };
    }
    const again = this.alreadyAnchored(entries);
    if (again !== undefined) return { ok: false, kind: 'bad-header', detail: again };
    return this.sealOwn(link.header, entries, signer);
  }

  /** A block sealed elsewhere (another proposer): checks it against this node's chain and stores it. */
  importBlock(header: DsoHeader, seals: readonly string[], entries: readonly DsoEntry[]): DsoCheck {
    const check = this.tracker.check(header, seals);
    if (!check.ok) return check;
    if (entries.length !== header.count || entriesRoot(entries.map((e) => e.headerHash)) !== header.root) {
      return { ok: false, kind: 'bad-header', detail: `the entries sent do not match block ${header.height}'s root` };
    }
    const again = this.alreadyAnchored(entries);
    if (again !== undefined) return { ok: false, kind: 'bad-header', detail: again };
    this.commit(decodeDsoHeader(header), seals, entries);
    return check;
  }

  /** The receipt for an anchored MGMC block, rebuilt from the store (for re-delivery). */
  receipt(mgmc: Address, mgmcHeight: number): Receipt | undefined {
    const { store } = this.options;
    const anchor = store.anchorOf(mgmc, mgmcHeight);
    if (anchor === undefined) return undefined;
    const block = store.blockAt(anchor.height);
    if (block === undefined) throw new DsoAnchorError(`DSO block ${anchor.height} is missing from the database`);
    const header = decodeDsoHeader(block.header, `stored DSO block ${block.height}`);
    const entries = store.entriesOf(anchor.height).map(entryFromRow);
    const seals = unpackSeals(block.seals);
    return buildReceipts(header, seals, entries)[anchor.index];
  }

  /** Starts time-based sealing. */
  start(): void {
    if (this.timer) return;
    this.timer = this.options.clock.setInterval(() => {
      try {
        this.seal();
      } catch (err) {
        this.options.logger?.error({ err }, 'sealing a DSO block failed; will retry');
      }
    }, this.options.sealEverySeconds * 1000);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private offer(proposal: Proposal): SealedDsoBlock | Proposal {
    const signer = this.validatorSigner();
    if (signer !== undefined) {
      const own = this.sealOwn(proposal.header, proposal.entries, signer);
      if (!own.ok) throw new DsoAnchorError(own.detail);
      addSeal(proposal, own.seal);
    }
    if (isFinal(proposal)) return this.commit(proposal.header, proposalSeals(proposal), proposal.entries);
    this.open = proposal;
    this.options.logger?.debug({ height: proposal.header.height, hash: proposal.hash }, 'proposed DSO block');
    this.options.onProposal?.(proposal);
    return proposal;
  }

  private sealOwn(
    header: DsoHeader,
    entries: readonly DsoEntry[],
    signer: Signer,
  ): { ok: true; seal: string } | DsoProblem {
    const lock = this.options.store.recordOwnSeal({
      height: header.height,
      hash: dsoHeaderDigest(header),
      header: encodeDsoHeader(header),
      entries: canonicalBytes(entries.map((e) => ({ ...e }))),
    });
    if (lock === 'conflict') {
      return {
        ok: false,
        kind: 'duplicate-seal',
        detail: `this validator already sealed another block at height ${header.height}; sealing a second would fork the chain`,
      };
    }
    return { ok: true, seal: sealDsoBlock(header, signer) };
  }

  private commit(header: DsoHeader, seals: readonly string[], entries: readonly DsoEntry[]): SealedDsoBlock {
    const check = this.tracker.check(header, seals);
    if (!check.ok) throw new DsoAnchorError(`DSO block ${header.height} does not verify: ${check.detail}`);
    const receipts = buildReceipts(header, seals, entries);
    const rows: DsoEntryRow[] = entries.map((e, index) => ({
      height: header.height,
      index,
      mgmc: e.mgmc,
      mgmcHeight: e.mgmcHeight,
      headerHash: fromHex(e.headerHash),
    }));
    this.options.store.insertDsoBlock(
      {
        height: header.height,
        hash: fromHex(check.hash),
        kind: header.kind,
        header: encodeDsoHeader(header),
        seals: packSeals(seals),
      },
      rows,
    );
    this.tracker.accept(header, seals);
    if (this.open !== undefined && this.open.header.height <= header.height) this.open = undefined;
    this.options.store.pruneOwnSeals(header.height);
    const sealed: SealedDsoBlock = { header, hash: check.hash, seals: [...seals], entries: [...entries], receipts };
    this.options.logger?.debug(
      { height: header.height, kind: header.kind, entries: entries.length },
      'DSO block sealed and stored',
    );
    try {
      this.options.onSealed?.(sealed);
    } catch (err) {
      this.options.logger?.error({ err, height: header.height }, 'handling a sealed DSO block failed; it is stored');
    }
    return sealed;
  }

  /** After a restart: the proposal this node had sealed for the next height, offered again unchanged. */
  private restoreOwnProposal(): void {
    const own = this.options.store.ownSealAt(this.tracker.height + 1);
    const signer = this.validatorSigner();
    if (own === undefined || signer === undefined) return;
    const header = decodeDsoHeader(own.header, `own seal at height ${own.height}`);
    const entries = (parseCanonical(own.entries, 'own seal entries') as unknown as DsoEntry[]).map((e) => ({
      mgmc: e.mgmc,
      mgmcHeight: e.mgmcHeight,
      headerHash: e.headerHash,
    }));
    if (!verifyDsoLink(header, this.tracker.tip).ok) return;
    const proposal: Proposal = {
      header,
      hash: dsoHeaderHash(header),
      entries,
      validators: [...this.tracker.validators],
      seals: new Map(),
    };
    addSeal(proposal, sealDsoBlock(header, signer));
    if (isFinal(proposal)) this.commit(header, proposalSeals(proposal), entries);
    else this.open = proposal;
  }

  /** An MGMC block is anchored once: names the first entry an earlier DSO block (or this list) already holds. */
  private alreadyAnchored(entries: readonly DsoEntry[]): string | undefined {
    const seen = new Set<string>();
    for (const e of entries) {
      const key = `${e.mgmc.toLowerCase()}/${e.mgmcHeight}`;
      const earlier = this.options.store.anchorOf(e.mgmc, e.mgmcHeight);
      if (earlier !== undefined || seen.has(key)) {
        return `MGMC block ${e.mgmc}/${e.mgmcHeight} is already anchored${earlier ? ` in DSO block ${earlier.height}` : ' in this block'}`;
      }
      seen.add(key);
    }
    return undefined;
  }

  private validatorSigner(): Signer | undefined {
    const signer = this.options.signer;
    if (signer === undefined) return undefined;
    const member = this.tracker.validators.some((v) => v.toLowerCase() === signer.address.toLowerCase());
    return member ? signer : undefined;
  }
}

function entryFromRow(row: DsoEntryRow): DsoEntry {
  return { mgmc: row.mgmc, mgmcHeight: row.mgmcHeight, headerHash: toHex(row.headerHash) };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
