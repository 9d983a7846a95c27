/**
 * Tables of the MGMC's DSO light client, in the ledger database: the DSO headers it accepted (in order, from height
 * 1) and one anchor per own block (the DSO receipt that proves the DSO committed to it). Stores and fetches bytes;
 * what they mean is agent/ledger/light-client.ts's business.
 *
 * The tables are version 3 of the agent database, whose whole schema is AGENT_DB_MIGRATIONS (store/agent-db.ts).
 */
import { equalBytes } from '../identity/bytes.js';
import { ANCHOR_MIGRATIONS } from '../store/agent-db.js';
import type { SqliteDatabase } from '../store/database.js';

export { ANCHOR_MIGRATIONS };

export interface DsoHeaderRow {
  readonly height: number;
  readonly hash: Uint8Array;
  readonly kind: string;
  /** Canonical header bytes. */
  readonly header: Uint8Array;
  /** 65-byte seals, concatenated. */
  readonly seals: Uint8Array;
}

export interface AnchorRow {
  readonly mgmcHeight: number;
  readonly dsoHeight: number;
  /** Canonical JSON of the receipt. */
  readonly receipt: Uint8Array;
}

export type AnchorInsert = 'inserted' | 'duplicate' | 'conflict';

interface RawAnchor {
  mgmc_height: number;
  dso_height: number;
  receipt: Buffer;
}

const toAnchor = (r: RawAnchor): AnchorRow => ({
  mgmcHeight: r.mgmc_height,
  dsoHeight: r.dso_height,
  receipt: r.receipt,
});

export class AnchorStore {
  private readonly insertHeaderStmt;
  private readonly headerAtStmt;
  private readonly lastHeaderStmt;
  private readonly lastOfKindStmt;
  private readonly insertAnchorStmt;
  private readonly anchorAtStmt;
  private readonly anchoredStmt;
  private readonly countStmt;
  private readonly rangesStmt;
  private readonly allStmt;

  constructor(readonly db: SqliteDatabase) {
    this.insertHeaderStmt = db.prepare(
      'INSERT INTO dso_headers (height, hash, kind, header, seals) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    );
    this.headerAtStmt = db.prepare('SELECT * FROM dso_headers WHERE height = ?');
    this.lastHeaderStmt = db.prepare('SELECT * FROM dso_headers ORDER BY height DESC LIMIT 1');
    this.lastOfKindStmt = db.prepare('SELECT * FROM dso_headers WHERE kind = ? ORDER BY height DESC LIMIT 1');
    this.insertAnchorStmt = db.prepare(
      'INSERT INTO anchors (mgmc_height, dso_height, receipt) VALUES (?, ?, ?) ON CONFLICT (mgmc_height) DO NOTHING',
    );
    this.anchorAtStmt = db.prepare('SELECT * FROM anchors WHERE mgmc_height = ?');
    // The end of the run of consecutive anchored heights that starts at 1 (0 when block 1 has none).
    this.anchoredStmt = db
      .prepare(
        `SELECT CASE WHEN EXISTS (SELECT 1 FROM anchors WHERE mgmc_height = 1)
           THEN (SELECT min(a.mgmc_height) FROM anchors a
                 WHERE NOT EXISTS (SELECT 1 FROM anchors b WHERE b.mgmc_height = a.mgmc_height + 1))
           ELSE 0 END`,
      )
      .pluck();
    this.countStmt = db.prepare('SELECT count(*) FROM anchors').pluck();
    // Runs of consecutive heights: height - row_number() is constant along a run.
    this.rangesStmt = db.prepare(
      `SELECT min(mgmc_height) AS first, max(mgmc_height) AS last FROM
         (SELECT mgmc_height, mgmc_height - row_number() OVER (ORDER BY mgmc_height) AS run FROM anchors)
       GROUP BY run ORDER BY first`,
    );
    this.allStmt = db.prepare('SELECT * FROM anchors ORDER BY mgmc_height');
  }

  /** Stores a DSO header once: the same header again is 'duplicate', another at that height 'conflict'. */
  insertHeader(row: DsoHeaderRow): AnchorInsert {
    const result = this.insertHeaderStmt.run(row.height, row.hash, row.kind, row.header, row.seals);
    if (result.changes === 1) return 'inserted';
    const stored = this.headerAt(row.height);
    return stored !== undefined && equalBytes(stored.hash, row.hash) ? 'duplicate' : 'conflict';
  }

  headerAt(height: number): DsoHeaderRow | undefined {
    return (this.headerAtStmt.get(height) as DsoHeaderRow | undefined) ?? undefined;
  }

  lastHeader(): DsoHeaderRow | undefined {
    return (this.lastHeaderStmt.get() as DsoHeaderRow | undefined) ?? undefined;
  }

  lastHeaderOfKind(kind: string): DsoHeaderRow | undefined {
    return (this.lastOfKindStmt.get(kind) as DsoHeaderRow | undefined) ?? undefined;
  }

  /** Stores the first receipt for an own block; a second one for the same block is 'duplicate' and not written. */
  insertAnchor(row: AnchorRow): AnchorInsert {
    const result = this.insertAnchorStmt.run(row.mgmcHeight, row.dsoHeight, row.receipt);
    return result.changes === 1 ? 'inserted' : 'duplicate';
  }

  anchorAt(mgmcHeight: number): AnchorRow | undefined {
    const row = this.anchorAtStmt.get(mgmcHeight) as RawAnchor | undefined;
    return row && toAnchor(row);
  }

  /** Highest h such that own blocks 1..h all have an anchor. */
  anchoredHeight(): number {
    return (this.anchoredStmt.get() as number | null) ?? 0;
  }

  anchorCount(): number {
    return this.countStmt.get() as number;
  }

  /** Own block heights that hold a receipt, as runs of consecutive heights [first, last], in order. */
  anchorRanges(): { readonly first: number; readonly last: number }[] {
    return this.rangesStmt.all() as { first: number; last: number }[];
  }

  /** Every anchor, in own-block height order (an iterator: memory stays flat). */
  *anchors(): IterableIterator<AnchorRow> {
    for (const row of this.allStmt.iterate() as IterableIterator<RawAnchor>) yield toAnchor(row);
  }
}
