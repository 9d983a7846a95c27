/**
 * What the DSO link remembers across restarts, in the agent database (store/agent-db.ts, schema version 4): which
 * own blocks were handed to the outbox (and in which envelope), the registration last sent, the DSO's last answer,
 * the authorized set, and the link session counter. Meta values are JSON text in the ledger's meta table.
 */
import type { SqliteDatabase } from '../store/database.js';
import type { LedgerStore } from '../store/ledger-store.js';

/** Own blocks 1..N were enqueued (meta, moved in the same transaction as each enqueue). */
export const SHIPPED_META = 'link.shippedHeight';
export const REGISTRATION_META = 'link.registration';
export const AUTHORIZATION_META = 'link.authorization';
export const AUTHORIZED_SET_META = 'link.authorizedSet';
export const SESSION_META = 'link.session';

export class SyncStoreError extends Error {
  override name = 'SyncStoreError';
}

export class SyncStore {
  readonly db: SqliteDatabase;
  private readonly insertShippedStmt;
  private readonly envelopeStmt;
  private readonly pruneShippedStmt;

  /** `ledger` must be open on the agent database with AGENT_DB_MIGRATIONS. */
  constructor(readonly ledger: LedgerStore) {
    this.db = ledger.db;
    const table = this.db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'shipped_blocks'")
      .get();
    if (table === undefined) {
      throw new SyncStoreError(
        `database ${this.db.name} has no shipped_blocks table: open it with AGENT_DB_MIGRATIONS (store/agent-db.ts)`,
      );
    }
    this.insertShippedStmt = this.db.prepare(
      'INSERT INTO shipped_blocks (height, envelope_id) VALUES (?, ?) ON CONFLICT (height) DO UPDATE SET envelope_id = excluded.envelope_id',
    );
    this.envelopeStmt = this.db.prepare('SELECT envelope_id FROM shipped_blocks WHERE height = ?').pluck();
    // Mappings are needed until the block's outbox item is acknowledged; after that (and anchoring) they can go.
    this.pruneShippedStmt = this.db.prepare(
      `DELETE FROM shipped_blocks WHERE height <= ?
         AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id = shipped_blocks.envelope_id AND outbox.state <> 'acked')`,
    );
  }

  /** Highest own block handed to the outbox (0: none). */
  shippedHeight(): number {
    return Number(this.ledger.getMeta(SHIPPED_META) ?? 0);
  }

  /** Notes that block `height` travels in envelope `envelopeId`; call inside the transaction that enqueued it. */
  recordShipped(height: number, envelopeId: string): void {
    this.insertShippedStmt.run(height, envelopeId);
    this.ledger.setMeta({ [SHIPPED_META]: String(height) });
  }

  /** The outbox envelope id that carries own block `height`, while it is remembered. */
  envelopeFor(height: number): string | undefined {
    return (this.envelopeStmt.get(height) as string | undefined) ?? undefined;
  }

  /** Forgets the envelope ids of blocks up to `height` whose outbox items are acknowledged or gone. */
  pruneShipped(height: number): number {
    return this.pruneShippedStmt.run(height).changes;
  }

  getJson<T>(key: string): T | undefined {
    const text = this.ledger.getMeta(key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new SyncStoreError(`meta ${key} in ${this.db.name} is not JSON: the database was changed by hand`);
    }
  }

  setJson(key: string, value: unknown): void {
    this.ledger.setMeta({ [key]: JSON.stringify(value) });
  }
}

/**
 * The link session of this process run (docs/protocol.md section 11: +1 per start, persisted), counted in the
 * agent database. Call once per start, before building the EnvelopeSealer.
 */
export function nextLinkSession(ledger: LedgerStore): number {
  const next = Number(ledger.getMeta(SESSION_META) ?? 0) + 1;
  ledger.setMeta({ [SESSION_META]: String(next) });
  return next;
}
