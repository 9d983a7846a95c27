/**
 * Tables of the ledger: records (canonical bytes, numbered by seq) and blocks (header bytes, hash, signature).
 * A block covers the contiguous seq range [first_seq, first_seq + count); records above the last block are unsealed.
 * This module stores and fetches bytes; what they mean and whether they verify is agent/ledger's business.
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
  readonly body: Uint8Array;
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
}
