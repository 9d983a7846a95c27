import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import {
  type NewOutboxItem,
  OUTBOX_MIGRATIONS,
  OUTBOX_SCHEMA_VERSION,
  OutboxError,
  OutboxStore,
} from '../../../agent/link/outbox-store.js';
import { AGENT_DB_MIGRATIONS, AGENT_DB_VERSION } from '../../../agent/store/agent-db.js';
import { openDatabase, type SqliteDatabase } from '../../../agent/store/database.js';
import { LEDGER_MIGRATIONS, LedgerStore } from '../../../agent/store/ledger-store.js';

const T0 = Date.UTC(2025, 0, 1);
let dir: string;
let path: string;
let clock: ManualClock;
const opened: SqliteDatabase[] = [];

function open(): { db: SqliteDatabase; store: OutboxStore } {
  const db = openDatabase(path, AGENT_DB_MIGRATIONS);
  opened.push(db);
  return { db, store: new OutboxStore(db, clock) };
}

const item = (i: number, extra: Partial<NewOutboxItem> = {}): NewOutboxItem => ({
  id: `0x${i.toString(16).padStart(32, '0')}`,
  topic: 'mgmc/v1/7/node/0x0000000000000000000000000000000000000001/blocks',
  kind: 'block',
  payload: new TextEncoder().encode(`{"n":${i}}`),
  ...extra,
});
const idOf = (i: number) => item(i).id;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mgmc-outbox-'));
  path = join(dir, 'agent.db');
  clock = new ManualClock(T0);
});

afterEach(() => {
  for (const db of opened.splice(0)) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('OUTBOX_MIGRATIONS', () => {
  it('continues the ledger numbering and lives beside the ledger tables in one file', () => {
    expect(OUTBOX_MIGRATIONS.map((m) => m.version)).toEqual([OUTBOX_SCHEMA_VERSION]);
    expect(Math.min(...OUTBOX_MIGRATIONS.map((m) => m.version))).toBeGreaterThan(
      Math.max(...LEDGER_MIGRATIONS.map((m) => m.version)),
    );
    expect(AGENT_DB_MIGRATIONS.map((m) => m.version)).toContain(OUTBOX_SCHEMA_VERSION);
    const { db } = open();
    expect(db.pragma('user_version', { simple: true })).toBe(AGENT_DB_VERSION);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    expect(tables).toEqual(expect.arrayContaining(['blocks', 'meta', 'outbox', 'records']));
  });

  it('upgrades a ledger-only database and refuses a store on a database without the table', () => {
    const ledgerOnly = openDatabase(path, LEDGER_MIGRATIONS);
    expect(() => new OutboxStore(ledgerOnly, clock)).toThrow(/AGENT_DB_MIGRATIONS/);
    ledgerOnly.close();
    const { store } = open();
    expect(store.depth()).toBe(0);
  });
});

describe('OutboxStore', () => {
  it('leaves out held kinds from the next batch and counts their unacknowledged items', () => {
    const { store } = open();
    store.enqueueMany([item(1), item(2, { kind: 'registration' }), item(3), item(4, { kind: 'headers-request' })]);
    expect(store.nextBatch(10, 0, ['block']).map((x) => x.id)).toEqual([idOf(2), idOf(4)]);
    expect(store.nextBatch(10, 0, ['block', 'registration']).map((x) => x.id)).toEqual([idOf(4)]);
    expect(store.nextBatch(10, 0, []).map((x) => x.id)).toEqual([1, 2, 3, 4].map(idOf));
    expect(store.depthOfKinds(['block'])).toBe(2);
    store.markAcked(idOf(1));
    expect(store.depthOfKinds(['block'])).toBe(1);
    expect(store.depthOfKinds([])).toBe(0);
  });

  it('hands out pending items in enqueue order, in batches after a position', () => {
    const { store } = open();
    const positions = store.enqueueMany([1, 2, 3, 4, 5].map((i) => item(i)));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(store.nextBatch(2).map((x) => x.id)).toEqual([idOf(1), idOf(2)]);
    expect(store.nextBatch(10, positions[2]).map((x) => x.id)).toEqual([idOf(4), idOf(5)]);
    const first = store.get(idOf(1))!;
    expect(first).toMatchObject({ topic: item(1).topic, kind: 'block', retain: false, created: T0, attempts: 0 });
    expect(first).toMatchObject({ state: 'pending', sentAt: undefined, ackedAt: undefined, historical: false });
    expect(new TextDecoder().decode(first.payload)).toBe('{"n":1}');
  });

  it('moves pending -> sent -> acked, with times and attempts, and acked is idempotent', () => {
    const { store } = open();
    store.enqueue(item(1, { retain: true }));
    clock.advance(100);
    store.markSent(idOf(1));
    expect(store.get(idOf(1))).toMatchObject({ state: 'sent', sentAt: T0 + 100, attempts: 1, retain: true });
    expect(store.nextBatch(10)).toEqual([]);
    clock.advance(100);
    expect(store.markAcked(idOf(1))).toBe('acked');
    expect(store.markAcked(idOf(1))).toBe('already-acked');
    expect(store.markAcked(idOf(99))).toBe('unknown');
    expect(store.get(idOf(1))).toMatchObject({ state: 'acked', ackedAt: T0 + 200 });
    store.markSent(idOf(1)); // a late PUBACK after the receipt changes nothing
    expect(store.get(idOf(1))?.state).toBe('acked');
  });

  it('counts, depth and the age of the oldest unacknowledged item', () => {
    const { store } = open();
    expect(store.oldestPendingAge()).toBeUndefined();
    store.enqueue(item(1));
    clock.advance(1000);
    store.enqueueMany([item(2), item(3)]);
    store.markSent([idOf(2), idOf(3)]);
    store.markAcked(idOf(3));
    clock.advance(500);
    expect(store.counts()).toEqual({ pending: 1, sent: 1, acked: 1 });
    expect(store.depth()).toBe(2);
    expect(store.oldestPendingAge()).toBe(1500);
    store.markAcked(idOf(1));
    expect(store.oldestPendingAge()).toBe(500);
  });

  it('finds sent items without a receipt and requeues them', () => {
    const { store } = open();
    store.enqueueMany([item(1), item(2), item(3)]);
    store.markSent([idOf(1), idOf(2)]);
    clock.advance(60_000);
    store.markSent(idOf(3));
    const due = store.sentBefore(T0, 10);
    expect(due.map((x) => x.id)).toEqual([idOf(1), idOf(2)]);
    expect(store.requeue(due.map((x) => x.id))).toBe(2);
    expect(store.requeue([idOf(1)])).toBe(0);
    expect(store.nextBatch(10).map((x) => x.id)).toEqual([idOf(1), idOf(2)]);
  });

  it('prepares a replay after reconnect: sent -> pending, older unacked items flagged historical', () => {
    const { store } = open();
    store.enqueueMany([item(1), item(2), item(3)]);
    store.markSent([idOf(1), idOf(2)]);
    store.markAcked(idOf(2));
    clock.advance(10);
    const connectedAt = clock.now();
    store.enqueue(item(4)); // created during the new connection
    expect(store.prepareReplay(connectedAt)).toEqual({ requeued: 1, historical: 2 });
    const batch = store.nextBatch(10);
    expect(batch.map((x) => [x.id, x.historical])).toEqual([
      [idOf(1), true],
      [idOf(3), true],
      [idOf(4), false],
    ]);
    expect(store.get(idOf(2))?.historical).toBe(false);
    store.replacePayloads([{ id: idOf(1), payload: new Uint8Array([1, 2]) }]);
    expect(store.get(idOf(1))?.payload).toEqual(new Uint8Array([1, 2]));
  });

  it("enqueues inside the caller's transaction: a rollback leaves neither the ledger write nor the item", () => {
    const { db, store } = open();
    const ledger = new LedgerStore(db);
    const write = (fail: boolean) =>
      db.transaction(() => {
        ledger.insertRecords([{ seq: 1, time: T0, type: 'event', body: new Uint8Array([1]) }]);
        store.enqueue(item(1));
        if (fail) throw new Error('power cut');
      })();
    expect(() => write(true)).toThrow('power cut');
    expect(ledger.lastSeq()).toBe(0);
    expect(store.depth()).toBe(0);
    write(false);
    expect(ledger.lastSeq()).toBe(1);
    expect(store.depth()).toBe(1);
  });

  it('refuses a duplicate id, naming it; enqueueMany is all or nothing', () => {
    const { store } = open();
    store.enqueue(item(1));
    expect(() => store.enqueue(item(1))).toThrow(OutboxError);
    expect(() => store.enqueue(item(1))).toThrow(new RegExp(idOf(1)));
    expect(() => store.enqueueMany([item(2), item(1)])).toThrow(OutboxError);
    expect(store.get(idOf(2))).toBeUndefined();
  });

  it('survives reopening (the items are on disk) and prunes old acked rows', () => {
    const first = open();
    first.store.enqueueMany([item(1), item(2)]);
    first.store.markSent(idOf(1));
    first.store.markAcked(idOf(1));
    first.db.close();
    const { store } = open();
    expect(store.counts()).toEqual({ pending: 1, sent: 0, acked: 1 });
    expect(store.pruneAcked(T0)).toBe(0);
    clock.advance(1);
    expect(store.pruneAcked(clock.now())).toBe(1);
    expect(store.get(idOf(1))).toBeUndefined();
    expect(store.depth()).toBe(1);
  });
});
