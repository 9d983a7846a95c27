/**
 * The DSO adjustment contracts an MGMC accepted, in the agent database (store/agent-db.ts, schema version 5): one row
 * per contract id, with its caps and the signed contract bytes. For each market interval the contract in force is the
 * one of the highest DSO round (`iteration`), the latest issued among equals. Rows are kept until well after they
 * expire: a replay of an id still stored is refused as a replay, and one pruned is refused as expired anyway.
 */
import type { SqliteDatabase } from '../store/database.js';

export interface StoredAdjustment {
  readonly id: string;
  readonly interval: number;
  readonly durationMs: number;
  readonly iteration: number;
  readonly issued: number;
  readonly expiry: number;
  readonly maxImportW: number | undefined;
  readonly maxExportW: number | undefined;
  readonly dso: string;
  /** Canonical bytes of {contract, sig}. */
  readonly signed: Uint8Array;
  readonly received: number;
}

interface Row {
  id: string;
  interval_start: number;
  duration_ms: number;
  iteration: number;
  issued: number;
  expiry: number;
  max_import_w: number | null;
  max_export_w: number | null;
  dso: string;
  signed: Buffer;
  received: number;
}

export class AdjustmentStoreError extends Error {
  override name = 'AdjustmentStoreError';
}

function fromRow(row: Row): StoredAdjustment {
  return {
    id: row.id,
    interval: row.interval_start,
    durationMs: row.duration_ms,
    iteration: row.iteration,
    issued: row.issued,
    expiry: row.expiry,
    maxImportW: row.max_import_w ?? undefined,
    maxExportW: row.max_export_w ?? undefined,
    dso: row.dso,
    signed: new Uint8Array(row.signed),
    received: row.received,
  };
}

export class AdjustmentStore {
  private readonly hasStmt;
  private readonly insertStmt;
  private readonly inForceStmt;
  private readonly overlappingStmt;
  private readonly pruneStmt;

  /** `db` is the agent database opened with AGENT_DB_MIGRATIONS. */
  constructor(readonly db: SqliteDatabase) {
    const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'dso_adjustments'").get();
    if (table === undefined) {
      throw new AdjustmentStoreError(
        `database ${db.name} has no dso_adjustments table: open it with AGENT_DB_MIGRATIONS (store/agent-db.ts)`,
      );
    }
    this.hasStmt = db.prepare('SELECT 1 FROM dso_adjustments WHERE id = ?').pluck();
    this.insertStmt = db.prepare(
      `INSERT INTO dso_adjustments (id, interval_start, duration_ms, iteration, issued, expiry, max_import_w,
         max_export_w, dso, signed, received)
       VALUES (@id, @interval, @durationMs, @iteration, @issued, @expiry, @maxImportW, @maxExportW, @dso, @signed,
         @received)`,
    );
    this.inForceStmt = db.prepare(
      'SELECT * FROM dso_adjustments WHERE interval_start = ? ORDER BY iteration DESC, issued DESC, received DESC LIMIT 1',
    );
    // Intervals starting before `to` that may reach past `from`; the longest interval bounds how far back to look.
    this.overlappingStmt = db.prepare(
      `SELECT * FROM dso_adjustments WHERE interval_start < @to AND interval_start + duration_ms > @from
       ORDER BY interval_start, iteration DESC, issued DESC, received DESC`,
    );
    this.pruneStmt = db.prepare('DELETE FROM dso_adjustments WHERE expiry < ?');
  }

  has(id: string): boolean {
    return this.hasStmt.get(id) !== undefined;
  }

  insert(adjustment: StoredAdjustment): void {
    this.insertStmt.run({
      ...adjustment,
      maxImportW: adjustment.maxImportW ?? null,
      maxExportW: adjustment.maxExportW ?? null,
      signed: Buffer.from(adjustment.signed),
    });
  }

  /** The contract in force for the interval starting at `interval`. */
  inForce(interval: number): StoredAdjustment | undefined {
    const row = this.inForceStmt.get(interval) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  /** The contract in force for each interval that overlaps [from, to), in interval order. */
  inForceBetween(from: number, to: number): StoredAdjustment[] {
    const out: StoredAdjustment[] = [];
    let last: number | undefined;
    for (const row of this.overlappingStmt.all({ from, to }) as Row[]) {
      if (row.interval_start === last) continue; // the first row of an interval is the one in force
      last = row.interval_start;
      out.push(fromRow(row));
    }
    return out;
  }

  /** Deletes contracts that expired before `before`; returns how many. */
  prune(before: number): number {
    return this.pruneStmt.run(before).changes;
  }
}
