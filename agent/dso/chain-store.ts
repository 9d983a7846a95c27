/**
 * Tables of the DSO node's own database (a separate file from any MGMC ledger, so its migrations number from 1):
 *
 * - accepted_mgmc_blocks: every MGMC block the DSO accepted, unique on (mgmc, height); `id` is the arrival order.
 *   Rows not yet in dso_entries are the anchor loop's pending work, so a crash loses nothing.
 * - dso_blocks / dso_entries: the sealed DSO chain and, per block, the MGMC header hashes its root commits to.
 *   (mgmc, mgmc_height) is unique in dso_entries: an MGMC block is anchored once, and the index finds its anchor.
 * - own_seals: the headers this node sealed as a validator (with the entries they commit to), so it never seals two
 *   different headers at one height, and after a restart it offers the same proposal again instead of a new one.
 *
 * Like agent/store/ledger-store.ts this module stores and fetches bytes; what they mean is agent/dso's business.
 */
import { equalBytes } from '../identity/bytes.js';
import type { Migration, SqliteDatabase } from '../store/database.js';

export const DSO_CHAIN_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'DSO chain: accepted MGMC blocks, DSO blocks and their entries, own seals',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE accepted_mgmc_blocks (
        id          INTEGER PRIMARY KEY,
        mgmc        TEXT NOT NULL,
        height      INTEGER NOT NULL,
        hash        BLOB NOT NULL,
        header      BLOB NOT NULL,
        signature   BLOB NOT NULL,
        records     BLOB,
        records_ref TEXT,
        received    INTEGER NOT NULL,
        CHECK (records IS NOT NULL OR records_ref IS NOT NULL)
      ) STRICT;
      CREATE UNIQUE INDEX accepted_mgmc_blocks_mgmc_height ON accepted_mgmc_blocks (mgmc, height);
      CREATE TABLE dso_blocks (
        height INTEGER PRIMARY KEY,
        hash   BLOB NOT NULL UNIQUE,
        kind   TEXT NOT NULL CHECK (kind IN ('anchor', 'validator-set')),
        header BLOB NOT NULL,
        seals  BLOB NOT NULL
      ) STRICT;
      CREATE INDEX dso_blocks_kind ON dso_blocks (kind, height);
      CREATE TABLE dso_entries (
        height      INTEGER NOT NULL REFERENCES dso_blocks (height),
        idx         INTEGER NOT NULL,
        mgmc        TEXT NOT NULL,
        mgmc_height INTEGER NOT NULL,
        header_hash BLOB NOT NULL,
        PRIMARY KEY (height, idx)
      ) STRICT;
      CREATE UNIQUE INDEX dso_entries_mgmc ON dso_entries (mgmc, mgmc_height);
      CREATE TABLE own_seals (
        height  INTEGER PRIMARY KEY,
        hash    BLOB NOT NULL,
        header  BLOB NOT NULL,
        entries BLOB NOT NULL
      ) STRICT;
    `,
  },
];

export interface AcceptedBlockRow {
  readonly mgmc: string;
  readonly height: number;
  readonly hash: Uint8Array;
  /** Canonical header bytes. */
  readonly header: Uint8Array;
  readonly signature: Uint8Array;
  /** The block's records (e.g. canonical JSON lines), or a reference to where they are kept; at least one. */
  readonly records?: Uint8Array;
  readonly recordsRef?: string;
  readonly received: number;
}

export interface StoredAcceptedBlock extends AcceptedBlockRow {
  /** Arrival order. */
  readonly id: number;
}

export type InsertOutcome =
  | { readonly status: 'inserted' }
  /** The same block again (same hash): nothing written. */
  | { readonly status: 'duplicate' }
  /** Another block under the same key: nothing written; the stored hash is returned for the error message. */
  | { readonly status: 'conflict'; readonly storedHash: Uint8Array };

export interface DsoBlockRow {
  readonly height: number;
  readonly hash: Uint8Array;
  readonly kind: string;
  readonly header: Uint8Array;
  /** 65-byte seals, concatenated. */
  readonly seals: Uint8Array;
}

export interface DsoEntryRow {
  readonly height: number;
  readonly index: number;
  readonly mgmc: string;
  readonly mgmcHeight: number;
  readonly headerHash: Uint8Array;
}

export interface PendingEntry {
  readonly id: number;
  readonly mgmc: string;
  readonly mgmcHeight: number;
  readonly headerHash: Uint8Array;
}

export interface OwnSealRow {
  readonly height: number;
  readonly hash: Uint8Array;
  /** Canonical header bytes. */
  readonly header: Uint8Array;
  /** Canonical JSON of the entries: [{headerHash, mgmc, mgmcHeight}, …]. */
  readonly entries: Uint8Array;
}

interface RawAccepted {
  id: number;
  mgmc: string;
  height: number;
  hash: Buffer;
  header: Buffer;
  signature: Buffer;
  records: Buffer | null;
  records_ref: string | null;
  received: number;
}

interface RawEntry {
  height: number;
  idx: number;
  mgmc: string;
  mgmc_height: number;
  header_hash: Buffer;
}

function toAccepted(r: RawAccepted | undefined): StoredAcceptedBlock | undefined {
  if (r === undefined) return undefined;
  return {
    id: r.id,
    mgmc: r.mgmc,
    height: r.height,
    hash: r.hash,
    header: r.header,
    signature: r.signature,
    ...(r.records === null ? {} : { records: r.records }),
    ...(r.records_ref === null ? {} : { recordsRef: r.records_ref }),
    received: r.received,
  };
}

const toEntry = (r: RawEntry): DsoEntryRow => ({
  height: r.height,
  index: r.idx,
  mgmc: r.mgmc,
  mgmcHeight: r.mgmc_height,
  headerHash: r.header_hash,
});

export class DsoChainStore {
  private readonly insertAcceptedStmt;
  private readonly acceptedStmt;
  private readonly lastAcceptedStmt;
  private readonly lastAcceptedHeightStmt;
  private readonly acceptedHashStmt;
  private readonly pendingStmt;
  private readonly pendingCountStmt;
  private readonly insertBlockStmt;
  private readonly insertEntryStmt;
  private readonly lastBlockStmt;
  private readonly blockAtStmt;
  private readonly blocksStmt;
  private readonly lastOfKindStmt;
  private readonly entriesStmt;
  private readonly anchorStmt;
  private readonly ownSealStmt;
  private readonly insertOwnSealStmt;
  private readonly pruneOwnSealsStmt;
  private readonly getMetaStmt;
  private readonly setMetaStmt;
  private readonly insertBlockTx;
  private readonly runTx;

  constructor(readonly db: SqliteDatabase) {
    this.insertAcceptedStmt = db.prepare(
      `INSERT INTO accepted_mgmc_blocks (mgmc, height, hash, header, signature, records, records_ref, received)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mgmc, height) DO NOTHING`,
    );
    this.acceptedStmt = db.prepare('SELECT * FROM accepted_mgmc_blocks WHERE mgmc = ? AND height = ?');
    // Both walk the unique (mgmc, height) index backwards: one row, no sort.
    this.lastAcceptedStmt = db.prepare(
      'SELECT * FROM accepted_mgmc_blocks WHERE mgmc = ? ORDER BY height DESC LIMIT 1',
    );
    this.lastAcceptedHeightStmt = db
      .prepare('SELECT height FROM accepted_mgmc_blocks WHERE mgmc = ? ORDER BY height DESC LIMIT 1')
      .pluck();
    this.acceptedHashStmt = db.prepare('SELECT hash FROM accepted_mgmc_blocks WHERE mgmc = ? AND height = ?').pluck();
    this.pendingStmt = db.prepare(
      `SELECT a.id, a.mgmc, a.height, a.hash FROM accepted_mgmc_blocks a
       WHERE NOT EXISTS (SELECT 1 FROM dso_entries e WHERE e.mgmc = a.mgmc AND e.mgmc_height = a.height)
       ORDER BY a.id LIMIT ?`,
    );
    this.pendingCountStmt = db
      .prepare(
        `SELECT count(*) FROM accepted_mgmc_blocks a
         WHERE NOT EXISTS (SELECT 1 FROM dso_entries e WHERE e.mgmc = a.mgmc AND e.mgmc_height = a.height)`,
      )
      .pluck();
    this.insertBlockStmt = db.prepare(
      'INSERT INTO dso_blocks (height, hash, kind, header, seals) VALUES (?, ?, ?, ?, ?)',
    );
    this.insertEntryStmt = db.prepare(
      'INSERT INTO dso_entries (height, idx, mgmc, mgmc_height, header_hash) VALUES (?, ?, ?, ?, ?)',
    );
    this.lastBlockStmt = db.prepare('SELECT * FROM dso_blocks ORDER BY height DESC LIMIT 1');
    this.blockAtStmt = db.prepare('SELECT * FROM dso_blocks WHERE height = ?');
    this.blocksStmt = db.prepare('SELECT * FROM dso_blocks WHERE height >= ? ORDER BY height');
    this.lastOfKindStmt = db.prepare('SELECT * FROM dso_blocks WHERE kind = ? ORDER BY height DESC LIMIT 1');
    this.entriesStmt = db.prepare('SELECT * FROM dso_entries WHERE height = ? ORDER BY idx');
    this.anchorStmt = db.prepare('SELECT * FROM dso_entries WHERE mgmc = ? AND mgmc_height = ?');
    this.ownSealStmt = db.prepare('SELECT height, hash, header, entries FROM own_seals WHERE height = ?');
    this.insertOwnSealStmt = db.prepare('INSERT INTO own_seals (height, hash, header, entries) VALUES (?, ?, ?, ?)');
    this.pruneOwnSealsStmt = db.prepare('DELETE FROM own_seals WHERE height < ?');
    this.getMetaStmt = db.prepare('SELECT value FROM meta WHERE key = ?').pluck();
    this.setMetaStmt = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.runTx = db.transaction((fn: () => unknown) => fn());
    this.insertBlockTx = db.transaction((block: DsoBlockRow, entries: readonly DsoEntryRow[]) => {
      this.insertBlockStmt.run(block.height, block.hash, block.kind, block.header, block.seals);
      for (const e of entries) this.insertEntryStmt.run(e.height, e.index, e.mgmc, e.mgmcHeight, e.headerHash);
    });
  }

  /**
   * Stores an accepted MGMC block once. Re-delivery of the same block (same hash) reports 'duplicate'; a different
   * block at an (mgmc, height) already taken reports 'conflict' (an MGMC that signed two blocks at one height, which
   * the caller should log as evidence). Neither writes anything.
   */
  insertAccepted(row: AcceptedBlockRow): InsertOutcome {
    if (row.records === undefined && row.recordsRef === undefined) {
      throw new Error(`accepted block ${row.mgmc}/${row.height} needs its records or a reference to them`);
    }
    const result = this.insertAcceptedStmt.run(
      row.mgmc,
      row.height,
      row.hash,
      row.header,
      row.signature,
      row.records ?? null,
      row.recordsRef ?? null,
      row.received,
    );
    if (result.changes === 1) return { status: 'inserted' };
    const stored = this.acceptedBlock(row.mgmc, row.height);
    if (stored !== undefined && equalBytes(stored.hash, row.hash)) return { status: 'duplicate' };
    return { status: 'conflict', storedHash: stored?.hash ?? new Uint8Array(0) };
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction: the write lock is taken up front, so another process writing meanwhile
   * makes this wait (busy timeout) instead of failing on commit, and everything `fn` inserts costs one commit (one
   * fsync). Inside another transaction it joins it (a savepoint). Rolls back and rethrows when `fn` throws.
   */
  transaction<T>(fn: () => T): T {
    return this.runTx.immediate(fn) as T;
  }

  acceptedBlock(mgmc: string, height: number): StoredAcceptedBlock | undefined {
    return toAccepted(this.acceptedStmt.get(mgmc, height) as RawAccepted | undefined);
  }

  /** The accepted block of `mgmc` with the greatest height (the one the next block must follow), if any. */
  lastAccepted(mgmc: string): StoredAcceptedBlock | undefined {
    return toAccepted(this.lastAcceptedStmt.get(mgmc) as RawAccepted | undefined);
  }

  /** Height of the last accepted block of `mgmc`, 0 before its first; reads the index only. */
  lastAcceptedHeight(mgmc: string): number {
    return (this.lastAcceptedHeightStmt.get(mgmc) as number | undefined) ?? 0;
  }

  /** Hash of the accepted block of `mgmc` at `height`, without reading its records. */
  acceptedHash(mgmc: string, height: number): Uint8Array | undefined {
    return (this.acceptedHashStmt.get(mgmc, height) as Buffer | undefined) ?? undefined;
  }

  /** Accepted blocks not yet in any DSO block, in arrival order. */
  pendingEntries(limit = Number.MAX_SAFE_INTEGER): PendingEntry[] {
    return (this.pendingStmt.all(limit) as { id: number; mgmc: string; height: number; hash: Buffer }[]).map((r) => ({
      id: r.id,
      mgmc: r.mgmc,
      mgmcHeight: r.height,
      headerHash: r.hash,
    }));
  }

  pendingCount(): number {
    return this.pendingCountStmt.get() as number;
  }

  /** Stores a sealed DSO block and its entries in one transaction. Throws when the height or an entry is taken. */
  insertDsoBlock(block: DsoBlockRow, entries: readonly DsoEntryRow[]): void {
    this.insertBlockTx.immediate(block, entries);
  }

  lastBlock(): DsoBlockRow | undefined {
    return (this.lastBlockStmt.get() as DsoBlockRow | undefined) ?? undefined;
  }

  blockAt(height: number): DsoBlockRow | undefined {
    return (this.blockAtStmt.get(height) as DsoBlockRow | undefined) ?? undefined;
  }

  *blocks(fromHeight = 1): IterableIterator<DsoBlockRow> {
    for (const row of this.blocksStmt.iterate(fromHeight) as IterableIterator<DsoBlockRow>) yield row;
  }

  /** The newest block of a kind: the last 'validator-set' block names the set in force. */
  lastBlockOfKind(kind: string): DsoBlockRow | undefined {
    return (this.lastOfKindStmt.get(kind) as DsoBlockRow | undefined) ?? undefined;
  }

  entriesOf(height: number): DsoEntryRow[] {
    return (this.entriesStmt.all(height) as RawEntry[]).map(toEntry);
  }

  /** Where an MGMC block was anchored, if it was. */
  anchorOf(mgmc: string, mgmcHeight: number): DsoEntryRow | undefined {
    const row = this.anchorStmt.get(mgmc, mgmcHeight) as RawEntry | undefined;
    return row && toEntry(row);
  }

  /**
   * Records that this node seals header `hash` at `height` (with the header bytes and the entries it commits to).
   * 'conflict' means it already sealed another header there and must not seal this one: two valid blocks at one
   * height would fork the chain.
   */
  recordOwnSeal(seal: OwnSealRow): 'recorded' | 'same' | 'conflict' {
    const stored = this.ownSealAt(seal.height);
    if (stored !== undefined) return equalBytes(stored.hash, seal.hash) ? 'same' : 'conflict';
    this.insertOwnSealStmt.run(seal.height, seal.hash, seal.header, seal.entries);
    return 'recorded';
  }

  ownSealAt(height: number): OwnSealRow | undefined {
    return (this.ownSealStmt.get(height) as OwnSealRow | undefined) ?? undefined;
  }

  /** Drops the seal records below `height` (heights the chain has passed no longer need a lock). */
  pruneOwnSeals(belowHeight: number): void {
    this.pruneOwnSealsStmt.run(belowHeight);
  }

  getMeta(key: string): string | undefined {
    return (this.getMetaStmt.get(key) as string | undefined) ?? undefined;
  }

  setMeta(key: string, value: string): void {
    this.setMetaStmt.run(key, value);
  }

  close(): void {
    this.db.close();
  }
}
