/**
 * Tables of the ledger: records (canonical bytes, numbered by seq) and blocks (header bytes, hash, signature).
 * A block covers the contiguous seq range [first_seq, first_seq + count); records above the last block are unsealed.
 * This module stores and fetches bytes; what they mean and whether they verify is agent/ledger's business.
 *
 * Pruning (schema version 4, store/agent-db.ts): a record of an anchored block may lose its body; its row stays with
 * an empty body and its Merkle leaf hash in `leaf`, so the block's root can still be checked. LEDGER_MIGRATIONS is
 * version 1 only: open the agent database with AGENT_DB_MIGRATIONS.
 */
import type { Migration, SqliteDatabase } from './database.js';

export const LEDGER_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'ledger records and blocks',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE records (
        seq  INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        type TEXT NOT NULL,
        body BLOB NOT NULL
      ) STRICT;
      CREATE TABLE blocks (
        height    INTEGER PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        hash      BLOB NOT NULL,
        header    BLOB NOT NULL,
        signature BLOB NOT NULL
      ) STRICT;
      CREATE UNIQUE INDEX blocks_first_seq ON blocks (first_seq);
    `,
  },
];

export interface RecordRow {
  readonly seq: number;
  readonly time: number;
  readonly type: string;
  /** Canonical record bytes; empty once the record was pruned. */
  readonly body: Uint8Array;
}

/** A record row that says whether it was pruned: `leaf` (its Merkle leaf hash) is set exactly when it was. */
export interface RecordRowWithLeaf extends RecordRow {
  readonly leaf: Uint8Array | undefined;
}

/** The part of a prepared statement the lazily prepared queries use. */
interface Statement {
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): { changes: number };
}

interface RawLeafRow {
  seq: number;
  time: number;
  type: string;
  body: Buffer;
  leaf: Buffer | null;
}

export class LedgerStoreError extends Error {
  override name = 'LedgerStoreError';
}

export interface BlockRow {
  readonly height: number;
  readonly firstSeq: number;
  readonly count: number;
  readonly hash: Uint8Array;
  readonly header: Uint8Array;
  readonly signature: Uint8Array;
}

interface RawBlockRow {
  height: number;
  first_seq: number;
  count: number;
  hash: Buffer;
  header: Buffer;
  signature: Buffer;
}

const toBlock = (r: RawBlockRow): BlockRow => ({
  height: r.height,
  firstSeq: r.first_seq,
  count: r.count,
  hash: r.hash,
  header: r.header,
  signature: r.signature,
});

export class LedgerStore {
  private readonly insertRecord;
  private readonly insertBlockStmt;
  private readonly lastBlockStmt;
  private readonly lastSeqStmt;
  private readonly countFromStmt;
  private readonly rangeStmt;
  private readonly blocksStmt;
  private readonly blockAtStmt;
  private readonly blockForSeqStmt;
  private readonly getMetaStmt;
  private readonly setMetaStmt;
  private readonly insertMany;
  private readonly containsStmt;
  // Prepared on first use: they need schema version 4, which a database opened with LEDGER_MIGRATIONS alone lacks.
  private leafRangeStmt: Statement | undefined;
  private pruneStmt: Statement | undefined;

  constructor(readonly db: SqliteDatabase) {
    this.insertRecord = db.prepare('INSERT INTO records (seq, time, type, body) VALUES (?, ?, ?, ?)');
    this.insertBlockStmt = db.prepare(
      'INSERT INTO blocks (height, first_seq, count, hash, header, signature) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.lastBlockStmt = db.prepare('SELECT * FROM blocks ORDER BY height DESC LIMIT 1');
    this.lastSeqStmt = db.prepare('SELECT max(seq) AS seq FROM records').pluck();
    this.countFromStmt = db.prepare('SELECT count(*) FROM records WHERE seq >= ?').pluck();
    this.rangeStmt = db.prepare('SELECT seq, time, type, body FROM records WHERE seq >= ? AND seq < ? ORDER BY seq');
    this.blocksStmt = db.prepare('SELECT * FROM blocks WHERE height >= ? ORDER BY height');
    this.blockAtStmt = db.prepare('SELECT * FROM blocks WHERE height = ?');
    this.blockForSeqStmt = db.prepare('SELECT * FROM blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1');
    this.getMetaStmt = db.prepare('SELECT value FROM meta WHERE key = ?').pluck();
    this.setMetaStmt = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.containsStmt = db.prepare('SELECT 1 FROM records WHERE type = ? AND instr(body, ?) > 0 LIMIT 1').pluck();
    this.insertMany = db.transaction((rows: readonly RecordRow[]) => {
      for (const r of rows) this.insertRecord.run(r.seq, r.time, r.type, r.body);
    });
  }

  /** Inserts records in one transaction: all of them are durable when this returns, or none is. */
  insertRecords(rows: readonly RecordRow[]): void {
    if (rows.length > 0) this.insertMany.immediate(rows);
  }

  /**
   * Whether a record of `type` holds `needle` in its canonical body, e.g. a meter signature: how a restarted agent
   * tells a batch it already stored from a new one. A scan, meant for the rare case after a restart.
   */
  hasRecordContaining(type: string, needle: string): boolean {
    return this.containsStmt.get(type, Buffer.from(needle, 'utf8')) !== undefined;
  }

  insertBlock(block: BlockRow): void {
    this.insertBlockStmt.run(block.height, block.firstSeq, block.count, block.hash, block.header, block.signature);
  }

  lastBlock(): BlockRow | undefined {
    const row = this.lastBlockStmt.get() as RawBlockRow | undefined;
    return row && toBlock(row);
  }

  lastSeq(): number {
    return (this.lastSeqStmt.get() as number | null) ?? 0;
  }

  /** Records with first <= seq < end, in seq order (an iterator: memory stays flat for any range). */
  *records(first: number, end: number = Number.MAX_SAFE_INTEGER): IterableIterator<RecordRow> {
    for (const row of this.rangeStmt.iterate(first, end) as IterableIterator<RecordRow>) yield row;
  }

  /** Number of records with seq >= first (counted by the index, without reading their bodies). */
  countRecordsFrom(first: number): number {
    return this.countFromStmt.get(first) as number;
  }

  recordRange(first: number, count: number): RecordRow[] {
    return this.rangeStmt.all(first, first + count) as RecordRow[];
  }

  /** Like recordRange, and says which records were pruned (their leaf hash instead of their body). */
  recordRangeWithLeaves(first: number, count: number): RecordRowWithLeaf[] {
    this.leafRangeStmt ??= this.prepareV4(
      'SELECT seq, time, type, body, leaf FROM records WHERE seq >= ? AND seq < ? ORDER BY seq',
    );
    return (this.leafRangeStmt.all(first, first + count) as RawLeafRow[]).map((r) => ({
      seq: r.seq,
      time: r.time,
      type: r.type,
      body: r.body,
      leaf: r.leaf ?? undefined,
    }));
  }

  /**
   * Drops the bodies of these records, keeping each one's leaf hash, and sets `meta`, in one transaction. A record
   * already pruned is left as it is. The caller has checked that the leaves are the records' (agent/ledger/pruning.ts).
   */
  pruneBodies(
    rows: readonly { readonly seq: number; readonly leaf: Uint8Array }[],
    meta: Readonly<Record<string, string>>,
  ): number {
    this.pruneStmt ??= this.prepareV4("UPDATE records SET body = x'', leaf = ? WHERE seq = ? AND leaf IS NULL");
    const stmt = this.pruneStmt;
    return this.db
      .transaction(() => {
        let changed = 0;
        for (const row of rows) changed += stmt.run(row.leaf, row.seq).changes;
        for (const [key, value] of Object.entries(meta)) this.setMetaStmt.run(key, value);
        return changed;
      })
      .immediate();
  }

  *blocks(fromHeight = 1): IterableIterator<BlockRow> {
    for (const row of this.blocksStmt.iterate(fromHeight) as IterableIterator<RawBlockRow>) yield toBlock(row);
  }

  blockAt(height: number): BlockRow | undefined {
    const row = this.blockAtStmt.get(height) as RawBlockRow | undefined;
    return row && toBlock(row);
  }

  /** The block whose range contains `seq`, if it is sealed. */
  blockForSeq(seq: number): BlockRow | undefined {
    const row = this.blockForSeqStmt.get(seq) as RawBlockRow | undefined;
    if (row === undefined || seq >= row.first_seq + row.count) return undefined;
    return toBlock(row);
  }

  getMeta(key: string): string | undefined {
    return (this.getMetaStmt.get(key) as string | undefined) ?? undefined;
  }

  /** Sets meta keys in one transaction, so that a crash leaves all of them or none. */
  setMeta(entries: Readonly<Record<string, string>>): void {
    this.db
      .transaction(() => {
        for (const [key, value] of Object.entries(entries)) this.setMetaStmt.run(key, value);
      })
      .immediate();
  }

  counts(): { records: number; blocks: number; sealedRecords: number } {
    const records = this.lastSeq();
    const last = this.lastBlock();
    return { records, blocks: last?.height ?? 0, sealedRecords: last ? last.firstSeq + last.count - 1 : 0 };
  }

  close(): void {
    this.db.close();
  }

  private prepareV4(sql: string): Statement {
    try {
      return this.db.prepare(sql);
    } catch (err) {
      throw new LedgerStoreError(
        `database ${this.db.name} has no pruning columns (schema version 4): open it with AGENT_DB_MIGRATIONS ` +
          `(store/agent-db.ts) — ${(err as Error).message}`,
      );
    }
  }
}
