/**
 * The outbox table: signed envelopes waiting to reach the DSO, in the ledger's SQLite file, so an item can be
 * enqueued in the same transaction as the ledger writes it reports on (a power cut leaves both or neither).
 *
 * An item moves pending -> sent (the broker's PUBACK) -> acked (the DSO's signed receipt). Only acked items have left
 * the outbox; sent items go back to pending when no receipt came in time or the connection was lost. Acked rows
 * are kept until pruneAcked() (for `mgmc status` and audits).
 *
 * The table is version 2 of the agent database, whose whole schema is AGENT_DB_MIGRATIONS (store/agent-db.ts): open
 * the database with that list (or openAgentDatabase), never with a part of it.
 */
import type { Clock } from '../clock.js';
import { OUTBOX_MIGRATIONS, OUTBOX_SCHEMA_VERSION } from '../store/agent-db.js';
import type { SqliteDatabase } from '../store/database.js';

export { OUTBOX_MIGRATIONS, OUTBOX_SCHEMA_VERSION };

export type OutboxState = 'pending' | 'sent' | 'acked';

export interface NewOutboxItem {
  /** The envelope id: receivers dedup by it, receipts name it. */
  readonly id: string;
  readonly topic: string;
  readonly kind: string;
  /** The sealed envelope's bytes. */
  readonly payload: Uint8Array;
  readonly retain?: boolean;
}

export interface OutboxItem {
  /** Position in the outbox: items are sent in this order. */
  readonly pos: number;
  readonly id: string;
  readonly topic: string;
  readonly kind: string;
  readonly payload: Uint8Array;
  readonly retain: boolean;
  readonly created: number;
  /** Times the broker acknowledged (PUBACK) this item. */
  readonly attempts: number;
  readonly state: OutboxState;
  readonly sentAt: number | undefined;
  readonly ackedAt: number | undefined;
  /** Created before the connection it is (re)sent on: the DSO sees it as a replay. */
  readonly historical: boolean;
}

export type AckResult = 'acked' | 'already-acked' | 'unknown';

export interface OutboxCounts {
  readonly pending: number;
  readonly sent: number;
  readonly acked: number;
}

interface RawItem {
  pos: number;
  id: string;
  topic: string;
  kind: string;
  payload: Buffer;
  retain: number;
  created: number;
  attempts: number;
  state: OutboxState;
  sent_at: number | null;
  acked_at: number | null;
  historical: number;
}

const toItem = (r: RawItem): OutboxItem => ({
  pos: r.pos,
  id: r.id,
  topic: r.topic,
  kind: r.kind,
  payload: new Uint8Array(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength),
  retain: r.retain === 1,
  created: r.created,
  attempts: r.attempts,
  state: r.state,
  sentAt: r.sent_at ?? undefined,
  ackedAt: r.acked_at ?? undefined,
  historical: r.historical === 1,
});

export class OutboxError extends Error {
  override name = 'OutboxError';
}

export class OutboxStore {
  private readonly insertStmt;
  private readonly nextStmt;
  private readonly nextUnheldStmt;
  private readonly countKindsStmt;
  private readonly getStmt;
  private readonly markSentStmt;
  private readonly ackStmt;
  private readonly stateStmt;
  private readonly sentBeforeStmt;
  private readonly requeueStmt;
  private readonly replaySentStmt;
  private readonly replayHistoricalStmt;
  private readonly countsStmt;
  private readonly depthStmt;
  private readonly oldestStmt;
  private readonly pruneStmt;
  private readonly payloadStmt;

  /** `db` must have been opened with AGENT_DB_MIGRATIONS (store/agent-db.ts). */
  constructor(
    readonly db: SqliteDatabase,
    private readonly clock: Clock,
  ) {
    const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").get();
    if (table === undefined) {
      throw new OutboxError(
        `database ${db.name} has no outbox table: open it with AGENT_DB_MIGRATIONS (store/agent-db.ts; the outbox is schema version ${OUTBOX_SCHEMA_VERSION})`,
      );
    }
    this.insertStmt = db
      .prepare('INSERT INTO outbox (id, topic, kind, payload, retain, created) VALUES (?, ?, ?, ?, ?, ?) RETURNING pos')
      .pluck();
    // The redundant "state <> 'acked'" terms let SQLite use the partial index outbox_open.
    this.nextStmt = db.prepare(
      "SELECT * FROM outbox WHERE state = 'pending' AND pos > ? AND state <> 'acked' ORDER BY pos LIMIT ?",
    );
    // Held kinds travel as a JSON array, so one prepared statement serves any set of them.
    this.nextUnheldStmt = db.prepare(
      `SELECT * FROM outbox WHERE state = 'pending' AND pos > ? AND state <> 'acked'
         AND kind NOT IN (SELECT value FROM json_each(?)) ORDER BY pos LIMIT ?`,
    );
    this.countKindsStmt = db
      .prepare("SELECT count(*) FROM outbox WHERE state <> 'acked' AND kind IN (SELECT value FROM json_each(?))")
      .pluck();
    this.getStmt = db.prepare('SELECT * FROM outbox WHERE id = ?');
    this.markSentStmt = db.prepare(
      "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ? AND state <> 'acked'",
    );
    this.ackStmt = db.prepare("UPDATE outbox SET state = 'acked', acked_at = ? WHERE id = ? AND state <> 'acked'");
    this.stateStmt = db.prepare('SELECT state FROM outbox WHERE id = ?').pluck();
    this.sentBeforeStmt = db.prepare(
      "SELECT * FROM outbox WHERE state = 'sent' AND state <> 'acked' AND sent_at <= ? ORDER BY pos LIMIT ?",
    );
    this.requeueStmt = db.prepare("UPDATE outbox SET state = 'pending' WHERE id = ? AND state = 'sent'");
    this.replaySentStmt = db.prepare("UPDATE outbox SET state = 'pending' WHERE state = 'sent'");
    this.replayHistoricalStmt = db.prepare(
      "UPDATE outbox SET historical = 1 WHERE state <> 'acked' AND historical = 0 AND created < ?",
    );
    this.countsStmt = db.prepare('SELECT state, count(*) AS n FROM outbox GROUP BY state');
    this.depthStmt = db.prepare("SELECT count(*) FROM outbox WHERE state <> 'acked'").pluck();
    this.oldestStmt = db.prepare("SELECT min(created) FROM outbox WHERE state <> 'acked'").pluck();
    this.pruneStmt = db.prepare("DELETE FROM outbox WHERE state = 'acked' AND acked_at < ?");
    this.payloadStmt = db.prepare("UPDATE outbox SET payload = ? WHERE id = ? AND state <> 'acked'");
  }

  /**
   * Adds one item; returns its position. A plain INSERT: called inside the caller's db.transaction(...), it commits
   * or rolls back with the caller's other writes. Throws an OutboxError for a duplicate id.
   */
  enqueue(item: NewOutboxItem): number {
    try {
      return this.insertStmt.get(
        item.id,
        item.topic,
        item.kind,
        item.payload,
        item.retain === true ? 1 : 0,
        this.clock.now(),
      ) as number;
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new OutboxError(`outbox already holds a message with id ${item.id} (${item.kind} to ${item.topic})`);
      }
      throw err;
    }
  }

  /** Adds items in one transaction (all or none); returns their positions. */
  enqueueMany(items: readonly NewOutboxItem[]): number[] {
    return this.db.transaction(() => items.map((item) => this.enqueue(item))).immediate();
  }

  /** Pending items after position `afterPos`, in order, leaving out items of the `heldKinds`. */
  nextBatch(limit: number, afterPos = 0, heldKinds: readonly string[] = []): OutboxItem[] {
    const rows =
      heldKinds.length === 0
        ? this.nextStmt.all(afterPos, limit)
        : this.nextUnheldStmt.all(afterPos, JSON.stringify(heldKinds), limit);
    return (rows as RawItem[]).map(toItem);
  }

  /** Unacknowledged items of these kinds (pending or sent). */
  depthOfKinds(kinds: readonly string[]): number {
    return kinds.length === 0 ? 0 : (this.countKindsStmt.get(JSON.stringify(kinds)) as number);
  }

  get(id: string): OutboxItem | undefined {
    const row = this.getStmt.get(id) as RawItem | undefined;
    return row && toItem(row);
  }

  /** The broker has these items (PUBACK): pending/sent -> sent, one transaction. Acked items stay acked. */
  markSent(ids: string | readonly string[]): void {
    const list = typeof ids === 'string' ? [ids] : ids;
    if (list.length === 0) return;
    const now = this.clock.now();
    this.db.transaction(() => {
      for (const id of list) this.markSentStmt.run(now, id);
    })();
  }

  /** The DSO has the item (signed receipt). Idempotent: a second receipt for the same id changes nothing. */
  markAcked(id: string): AckResult {
    const changed = this.ackStmt.run(this.clock.now(), id).changes;
    if (changed === 1) return 'acked';
    return this.stateStmt.get(id) === undefined ? 'unknown' : 'already-acked';
  }

  /** Sent items whose PUBACK came at or before `time` and that have no receipt yet, oldest first. */
  sentBefore(time: number, limit: number): OutboxItem[] {
    return (this.sentBeforeStmt.all(time, limit) as RawItem[]).map(toItem);
  }

  /** sent -> pending for these ids (no receipt in time: send again). Returns how many moved. */
  requeue(ids: readonly string[]): number {
    return this.db.transaction(() => ids.reduce((n, id) => n + this.requeueStmt.run(id).changes, 0))();
  }

  /**
   * After a (re)connect at `connectedAt`: every sent-but-unacked item becomes pending again (the DSO may not have
   * it), and every unacked item created before `connectedAt` is flagged historical.
   */
  prepareReplay(connectedAt: number): { requeued: number; historical: number } {
    return this.db.transaction(() => ({
      requeued: this.replaySentStmt.run().changes,
      historical: this.replayHistoricalStmt.run(connectedAt).changes,
    }))();
  }

  /** Replaces unacked items' payloads in one transaction (the outbox re-signs replays with the historical flag). */
  replacePayloads(items: readonly { readonly id: string; readonly payload: Uint8Array }[]): void {
    if (items.length === 0) return;
    this.db.transaction(() => {
      for (const item of items) this.payloadStmt.run(item.payload, item.id);
    })();
  }

  /** Items per state (acked rows count until pruneAcked removes them). */
  counts(): OutboxCounts {
    const counts = { pending: 0, sent: 0, acked: 0 };
    for (const row of this.countsStmt.all() as { state: OutboxState; n: number }[]) counts[row.state] = row.n;
    return counts;
  }

  /** Items not yet acknowledged by the DSO (pending + sent). */
  depth(): number {
    return this.depthStmt.get() as number;
  }

  /** ms since the oldest unacknowledged item was enqueued; undefined when there is none. */
  oldestPendingAge(): number | undefined {
    const oldest = this.oldestStmt.get() as number | null;
    return oldest === null ? undefined : Math.max(0, this.clock.now() - oldest);
  }

  /** Deletes acked items acknowledged before `before` (ms); returns how many. */
  pruneAcked(before: number): number {
    return this.pruneStmt.run(before).changes;
  }
}
