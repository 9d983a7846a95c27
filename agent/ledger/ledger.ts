/**
 * The MGMC's own chain: numbers and stores records, seals them into signed blocks every `sealEverySeconds` or
 * `sealEveryRecords`, whichever comes first.
 *
 * Durability contract: `append` returns only after its records are committed in one transaction; a crash (power cut)
 * after that loses none of them. Sealing is a separate transaction, so a crash between the two leaves unsealed
 * records, which `open` finds again and seals first. Records are never rewritten.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { fromHex, toHex } from '../identity/bytes.js';
import type { Logger } from '../logger.js';
import type { LedgerStore, RecordRow } from '../store/ledger-store.js';
import {
  BLOCK_VERSION,
  decodeHeader,
  encodeHeader,
  type SignedBlock,
  type Signer,
  signHeader,
  ZERO_HASH,
} from './block.js';
import { CanonicalError } from './canonical.js';
import { leafHash, merkleRoot } from './merkle.js';
import { decodeRecord, encodeRecord, type LedgerRecord, type NewRecord, RecordError, validateBody } from './records.js';

export interface LedgerOptions {
  readonly store: LedgerStore;
  readonly signer: Signer;
  readonly clock: Clock;
  readonly chainId: number;
  readonly sealEveryRecords: number;
  readonly sealEverySeconds: number;
  readonly logger?: Logger;
}

export interface AppendResult {
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/** A block that was just sealed and stored. */
export interface SealedBlockEvent {
  readonly block: SignedBlock;
  /** seq of the block's first record; its records are firstSeq .. firstSeq + header.count - 1. */
  readonly firstSeq: number;
}

export type SealedBlockListener = (event: SealedBlockEvent) => void;

export class LedgerError extends Error {
  override name = 'LedgerError';
}

export class Ledger {
  private nextSeq: number;
  private height: number;
  private prevHash: string;
  /** Leaf hashes of committed but unsealed records, in seq order, starting at `pendingFirstSeq`. */
  private pending: Uint8Array[] = [];
  private pendingFirstSeq: number;
  private timer: TimerHandle | undefined;
  private readonly sealedListeners = new Set<SealedBlockListener>();

  private constructor(private readonly options: LedgerOptions) {
    const { store, chainId, signer } = options;
    if (!(options.sealEveryRecords >= 1)) throw new LedgerError('sealEveryRecords must be >= 1');
    if (!(options.sealEverySeconds > 0)) throw new LedgerError('sealEverySeconds must be > 0');
    checkChainIdentity(store, chainId, signer.address);
    const last = store.lastBlock();
    if (last) {
      const header = decodeHeader(last.header, `block ${last.height}`);
      this.height = last.height;
      this.prevHash = toHex(last.hash);
      this.pendingFirstSeq = last.firstSeq + last.count;
      if (header.count !== last.count)
        throw new LedgerError(`block ${last.height}: stored count differs from its header`);
    } else {
      this.height = 0;
      this.prevHash = ZERO_HASH;
      this.pendingFirstSeq = 1;
    }
    // Records committed before a crash but not yet sealed: they are sealed before anything new.
    for (const row of store.records(this.pendingFirstSeq)) {
      const expected = this.pendingFirstSeq + this.pending.length;
      if (row.seq !== expected) {
        throw new LedgerError(`unsealed record ${expected} is missing (found ${row.seq}): run mgmc ledger verify`);
      }
      decodeRecord(row.body, `unsealed record ${row.seq}`);
      this.pending.push(leafHash(row.body));
    }
    this.nextSeq = this.pendingFirstSeq + this.pending.length;
  }

  static open(options: LedgerOptions): Ledger {
    return new Ledger(options);
  }

  get address(): string {
    return this.options.signer.address;
  }

  /** Height of the last sealed block (0 before the first). */
  get sealedHeight(): number {
    return this.height;
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  get unsealedCount(): number {
    return this.pending.length;
  }

  /**
   * Validates, numbers and commits records in one transaction, then seals full blocks. Nothing is written when any
   * record is invalid: the error names the record's index in the batch and the field.
   */
  append(records: readonly NewRecord[]): AppendResult {
    if (records.length === 0) return { firstSeq: this.nextSeq, lastSeq: this.nextSeq - 1 };
    const now = this.options.clock.now();
    const rows: RecordRow[] = new Array(records.length);
    const leaves: Uint8Array[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const input = records[i] as NewRecord;
      validateBody(input.type, input.body, `record ${i} of the batch`);
      if (input.time !== undefined && !(Number.isSafeInteger(input.time) && input.time >= 0)) {
        throw new RecordError(
          `record ${i} of the batch: time must be ms since the Unix epoch (an integer >= 0), got ${input.time}`,
        );
      }
      const record: LedgerRecord = {
        seq: this.nextSeq + i,
        time: input.time ?? now,
        type: input.type,
        body: input.body,
      };
      let body: Uint8Array;
      try {
        body = encodeRecord(record);
      } catch (err) {
        if (err instanceof CanonicalError) throw new RecordError(`record ${i} of the batch: ${err.message}`);
        throw err;
      }
      rows[i] = { seq: record.seq, time: record.time, type: record.type, body };
      leaves[i] = leafHash(body);
    }
    this.options.store.insertRecords(rows);
    const firstSeq = this.nextSeq;
    this.nextSeq += records.length;
    for (const leaf of leaves) this.pending.push(leaf);
    try {
      while (this.pending.length >= this.options.sealEveryRecords) this.sealSome(this.options.sealEveryRecords);
    } catch (err) {
      // The records are committed: throwing now would make a caller retry and store them twice. They stay pending
      // and the next append or timer tick seals them.
      this.options.logger?.error({ err }, 'sealing a block failed; the records are stored and will be sealed later');
    }
    return { firstSeq, lastSeq: this.nextSeq - 1 };
  }

  /** Seals every unsealed record now (in blocks of at most sealEveryRecords). Returns the last block sealed. */
  seal(): SignedBlock | undefined {
    let last: SignedBlock | undefined;
    while (this.pending.length > 0) last = this.sealSome(Math.min(this.pending.length, this.options.sealEveryRecords));
    return last;
  }

  /**
   * Calls `listener` after each block is sealed and stored, in height order. A listener that throws is logged and
   * does not fail the seal (the block is stored); one that must not miss a block after a crash keeps its own
   * high-water mark and catches up from the store on start (the DSO link does). Returns a function that stops it.
   */
  onSealed(listener: SealedBlockListener): () => void {
    this.sealedListeners.add(listener);
    return () => this.sealedListeners.delete(listener);
  }

  /** Starts the time-based sealing. */
  start(): void {
    if (this.timer) return;
    this.timer = this.options.clock.setInterval(() => {
      try {
        this.seal();
      } catch (err) {
        // A failed seal leaves the records pending; the next tick retries. The agent must not die for it.
        this.options.logger?.error({ err }, 'sealing a block failed; will retry');
      }
    }, this.options.sealEverySeconds * 1000);
  }

  /** Stops the timer and seals what is pending, so a clean shutdown leaves nothing unsealed. */
  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.seal();
  }

  private sealSome(count: number): SignedBlock {
    const { store, signer, chainId, clock } = this.options;
    const leaves = this.pending.slice(0, count);
    const header = {
      version: BLOCK_VERSION,
      chainId,
      height: this.height + 1,
      prev: this.prevHash,
      root: toHex(merkleRoot(leaves)),
      time: clock.now(),
      count,
      producer: signer.address,
    };
    const block = signHeader(header, signer);
    store.insertBlock({
      height: header.height,
      firstSeq: this.pendingFirstSeq,
      count,
      hash: fromHex(block.hash),
      header: encodeHeader(header),
      signature: fromHex(block.signature),
    });
    this.height = header.height;
    this.prevHash = block.hash;
    this.pending = this.pending.slice(count);
    this.pendingFirstSeq += count;
    this.options.logger?.debug({ height: header.height, count }, 'sealed block');
    const event: SealedBlockEvent = { block, firstSeq: this.pendingFirstSeq - count };
    for (const listener of this.sealedListeners) {
      try {
        listener(event);
      } catch (err) {
        this.options.logger?.error(
          { err, height: header.height },
          `a sealed-block listener failed on block ${header.height}; the block is stored`,
        );
      }
    }
    return block;
  }
}

/** A database belongs to one chain and one producer; opening it with another key or chain id is a mistake. */
function checkChainIdentity(store: LedgerStore, chainId: number, producer: string): void {
  const storedChain = store.getMeta('chainId');
  const storedProducer = store.getMeta('producer');
  if (storedChain === undefined && storedProducer === undefined) {
    store.setMeta({ chainId: String(chainId), producer });
    return;
  }
  if (storedChain !== String(chainId)) {
    throw new LedgerError(
      `this ledger database belongs to chain id ${storedChain}, but the config says ${chainId}: fix chainId or use another database`,
    );
  }
  if (storedProducer !== producer) {
    throw new LedgerError(
      `this ledger database was signed by ${storedProducer}, but the key given is ${producer}: use the same keystore or another database`,
    );
  }
}
