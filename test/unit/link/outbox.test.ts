import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { fromHex } from '../../../agent/identity/bytes.js';
import { keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../../agent/ledger/block.js';
import { EnvelopeSealer, openEnvelope } from '../../../agent/link/envelope.js';
import { LinkError, type LinkState, type StateChange } from '../../../agent/link/mqtt-client.js';
import { Outbox, type OutboxTransport } from '../../../agent/link/outbox.js';
import { OutboxStore } from '../../../agent/link/outbox-store.js';
import { silentLogger } from '../../../agent/logger.js';
import { openAgentDatabase } from '../../../agent/store/agent-db.js';
import type { SqliteDatabase } from '../../../agent/store/database.js';

const KEY = keyPairFromPrivateKey(fromHex(`0x${'11'.repeat(32)}`));
const CHAIN = 7;
const TOPIC = 'mgmc/v1/7/node/x/blocks';

interface Sent {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly retain: boolean | undefined;
  resolve(): void;
  reject(err: Error): void;
}

/** A transport whose PUBACKs the test gives by hand. */
class FakeTransport implements OutboxTransport {
  state: LinkState = 'offline';
  readonly sent: Sent[] = [];
  private readonly listeners = new Set<(change: StateChange) => void>();

  publish(topic: string, payload: Uint8Array, options?: { retain?: boolean }): Promise<void> {
    if (this.state !== 'online') return Promise.reject(new LinkError('offline', 'offline', topic));
    return new Promise((resolve, reject) =>
      this.sent.push({ topic, payload, retain: options?.retain, resolve, reject }),
    );
  }

  onState(listener: (change: StateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(state: LinkState): void {
    const previous = this.state;
    this.state = state;
    for (const l of this.listeners) l({ state, previous, connections: 0 });
  }

  /** Drops the connection: every publish without PUBACK fails as MqttLink fails it. */
  drop(): void {
    for (const s of this.sent.splice(0)) s.reject(new LinkError('closed before PUBACK', 'offline'));
    this.set('offline');
  }

  ids(): string[] {
    return this.sent.map((s) => envelopeOf(s.payload).id);
  }
}

function envelopeOf(payload: Uint8Array) {
  const opened = openEnvelope(payload, { chainId: CHAIN });
  if (!opened.ok) throw new Error(opened.detail);
  return opened.envelope;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

let dir: string;
let db: SqliteDatabase;
let clock: ManualClock;
let store: OutboxStore;
let transport: FakeTransport;
let outbox: Outbox;

function makeOutbox(options: { maxInFlight?: number; receiptTimeoutMs?: number } = {}): Outbox {
  const sealer = new EnvelopeSealer({
    signer: signerFromPrivateKey(KEY.privateKey, KEY.address),
    chainId: CHAIN,
    session: 1,
    clock,
  });
  return new Outbox({ store, transport, sealer, clock, logger: silentLogger(), checkEveryMs: 1000, ...options });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mgmc-outbox-loop-'));
  db = openAgentDatabase(join(dir, 'agent.db'));
  clock = new ManualClock(Date.UTC(2025, 0, 1));
  store = new OutboxStore(db, clock);
  transport = new FakeTransport();
  outbox = makeOutbox({ maxInFlight: 4, receiptTimeoutMs: 10_000 });
});

afterEach(() => {
  outbox.stop();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Outbox', () => {
  it('keeps items while offline and sends them in order, at most maxInFlight at a time, after connect', async () => {
    outbox.start();
    const ids = Array.from({ length: 10 }, (_, i) => outbox.enqueue(TOPIC, 'block', { height: i + 1 }).envelope.id);
    await settle();
    expect(transport.sent).toEqual([]);
    expect(outbox.stats()).toMatchObject({ pending: 10, sent: 0, inFlight: 0 });
    transport.set('online');
    await settle();
    expect(transport.ids()).toEqual(ids.slice(0, 4));
    expect(store.counts().sent).toBe(0); // nothing is "sent" before its PUBACK
    for (const s of transport.sent.slice(0, 2)) s.resolve();
    await settle();
    expect(store.counts().sent).toBe(2);
    expect(transport.ids()).toEqual(ids.slice(0, 6));
    for (let round = 0; round < 10 && store.counts().sent < 10; round++) {
      expect(outbox.stats().inFlight).toBeLessThanOrEqual(4);
      for (const s of transport.sent) s.resolve();
      await settle();
    }
    expect(transport.ids()).toEqual(ids);
    expect(store.counts()).toEqual({ pending: 0, sent: 10, acked: 0 });
  });

  it('flags items created before the connection as historical, re-signed with the same id and seq', async () => {
    outbox.start();
    const before = outbox.enqueue(TOPIC, 'block', { height: 1 }).envelope;
    clock.advance(5);
    transport.set('online');
    await settle();
    const live = outbox.enqueue(TOPIC, 'block', { height: 2 }).envelope;
    await settle();
    const [first, second] = transport.sent.map((s) => envelopeOf(s.payload));
    expect(first).toMatchObject({ id: before.id, seq: before.seq, session: 1, historical: true });
    expect(second?.id).toBe(live.id);
    expect(second?.historical).toBeUndefined();
  });

  it('resends what had no PUBACK when the connection dropped, and sent-but-unacked items after reconnect', async () => {
    outbox.start();
    transport.set('online');
    const ids = [1, 2, 3].map((h) => outbox.enqueue(TOPIC, 'block', { height: h }).envelope.id);
    await settle();
    transport.sent[0]?.resolve(); // PUBACK for 1 only
    await settle();
    outbox.acknowledge(ids[0]!); // and its receipt
    transport.sent[1]?.resolve(); // PUBACK for 2, but no receipt
    await settle();
    transport.drop(); // 3 never got its PUBACK
    await settle();
    expect(store.counts()).toEqual({ pending: 1, sent: 1, acked: 1 });
    clock.advance(1);
    transport.set('online');
    await settle();
    expect(transport.ids()).toEqual([ids[1], ids[2]]);
    expect(transport.sent.every((s) => envelopeOf(s.payload).historical === true)).toBe(true);
    for (const s of transport.sent) s.resolve();
    await settle();
    expect(outbox.acknowledge(ids[1]!)).toBe('acked');
    expect(outbox.acknowledge(ids[2]!)).toBe('acked');
    expect(outbox.acknowledge(ids[2]!)).toBe('already-acked');
    expect(outbox.stats()).toMatchObject({ pending: 0, sent: 0, acked: 3, inFlight: 0 });
  });

  it('sends again an item that got no receipt within the receipt timeout', async () => {
    outbox.start();
    transport.set('online');
    const { id } = outbox.enqueue(TOPIC, 'block', { height: 1 }).envelope;
    await settle();
    transport.sent[0]?.resolve();
    await settle();
    clock.advance(9_000);
    await settle();
    expect(transport.sent).toHaveLength(1);
    clock.advance(2_000);
    await settle();
    expect(transport.ids()).toEqual([id, id]);
    transport.sent[1]?.resolve();
    await settle();
    expect(store.get(id)?.attempts).toBe(2);
    outbox.acknowledge(id);
    clock.advance(60_000);
    await settle();
    expect(transport.sent).toHaveLength(2);
  });

  it('holds an item the broker refused (ACL) with back-off while later items go on', async () => {
    outbox.start();
    transport.set('online');
    const bad = outbox.enqueue('mgmc/v1/7/node/other/blocks', 'block', { height: 1 }).envelope.id;
    const good = outbox.enqueue(TOPIC, 'block', { height: 2 }).envelope.id;
    await settle();
    transport.sent[0]?.reject(new LinkError('not authorized', 'refused', undefined, 0x87));
    transport.sent[1]?.resolve();
    await settle();
    expect(transport.ids()).toEqual([bad, good]);
    expect(store.get(good)?.state).toBe('sent');
    expect(store.get(bad)?.state).toBe('pending');
    clock.advance(999);
    await settle();
    expect(transport.sent).toHaveLength(2);
    clock.advance(1);
    await settle();
    expect(transport.ids()).toEqual([bad, good, bad]);
    transport.sent[2]?.reject(new LinkError('not authorized', 'refused', undefined, 0x87));
    await settle();
    clock.advance(1999);
    await settle();
    expect(transport.sent).toHaveLength(3); // the second wait is twice as long
    clock.advance(1);
    await settle();
    expect(transport.sent).toHaveLength(4);
  });

  it('holds items of held kinds while others go on, and sends them in order once released', async () => {
    outbox.hold('block');
    outbox.start();
    transport.set('online');
    const b1 = outbox.enqueue(TOPIC, 'block', { height: 1 }).envelope.id;
    const reg = outbox.enqueue(TOPIC, 'registration', { n: 1 }).envelope.id;
    const b2 = outbox.enqueue(TOPIC, 'block', { height: 2 }).envelope.id;
    await settle();
    expect(transport.ids()).toEqual([reg]);
    expect(outbox.stats()).toMatchObject({ heldKinds: ['block'], held: 2, pending: 3 });
    outbox.release('block');
    await settle();
    expect(transport.ids()).toEqual([reg, b1, b2]);
    for (const s of transport.sent) s.resolve();
    await settle();
    // Held again: a block without a receipt is not resent while held, and is resent once released.
    outbox.hold('block');
    clock.advance(11_000);
    await settle();
    expect(transport.ids()).toEqual([reg, b1, b2, reg]);
    outbox.release('block');
    await settle();
    expect(transport.ids()).toEqual([reg, b1, b2, reg, b1, b2]);
    expect(outbox.isHeld('block')).toBe(false);
  });

  it("enqueues in the caller's transaction and sends only what was committed", async () => {
    outbox.start();
    transport.set('online');
    expect(() =>
      db.transaction(() => {
        outbox.enqueue(TOPIC, 'block', { height: 1 });
        throw new Error('rolled back');
      })(),
    ).toThrow('rolled back');
    const kept = db.transaction(() => outbox.enqueue(TOPIC, 'block', { height: 2 }).envelope.id)();
    await settle();
    expect(transport.ids()).toEqual([kept]);
    expect(outbox.acknowledge('0x0000000000000000000000000000dead')).toBe('unknown');
  });
});
