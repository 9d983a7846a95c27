/**
 * MgmcSync against a fake transport (MessageHandler-driven, PUBACKs at once) and a DSO built by hand from the real
 * chain pieces: shipping in order and only when authorized, crash recovery, receipts, headers, bad input, pruning.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { buildDsoBlock, type DsoHeader, type DsoParent, sealDsoBlock } from '../../../agent/dso/chain.js';
import type { DsoGenesis } from '../../../agent/dso/genesis.js';
import { buildReceipts, type DsoEntry, type Receipt } from '../../../agent/dso/receipt.js';
import { toHex } from '../../../agent/identity/bytes.js';
import type { KeyPair } from '../../../agent/identity/keys.js';
import { AnchorStore } from '../../../agent/ledger/anchor-store.js';
import { Ledger } from '../../../agent/ledger/ledger.js';
import { anchorReport, ledgerSource } from '../../../agent/ledger/pruning.js';
import { verifyChain } from '../../../agent/ledger/verify.js';
import { deriveAnonymKey } from '../../../agent/link/anonym.js';
import {
  type Envelope,
  type EnvelopeBody,
  EnvelopeSealer,
  openEnvelope,
  sealEnvelope,
} from '../../../agent/link/envelope.js';
import {
  LinkError,
  type LinkMessage,
  type LinkState,
  type MessageHandler,
  type StateChange,
} from '../../../agent/link/mqtt-client.js';
import {
  createMgmcSync,
  type MgmcSync,
  type RegistrationConfig,
  type SyncTransport,
} from '../../../agent/link/sync.js';
import { LinkTopics, topicMatches } from '../../../agent/link/topics.js';
import { createLogger, silentLogger } from '../../../agent/logger.js';
import { openAgentDatabase } from '../../../agent/store/agent-db.js';
import { LedgerStore } from '../../../agent/store/ledger-store.js';
import { genesisOf, MGMC_A, signer, T0, TempDir, V } from '../dso/helpers.js';

const CHAIN = 4242;
const HOUR = 3_600_000;
const topics = new LinkTopics(CHAIN);
const METER = V[5].address;

interface Sent {
  readonly topic: string;
  readonly envelope: Envelope;
}

/** The MQTT link as MgmcSync sees it: handlers by filter, publishes acknowledged by the "broker" at once. */
class FakeLink implements SyncTransport {
  state: LinkState = 'offline';
  readonly sent: Sent[] = [];
  readonly handlers: { filter: string; handler: MessageHandler }[] = [];
  private readonly listeners = new Set<(change: StateChange) => void>();

  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.state !== 'online') return Promise.reject(new LinkError('offline', 'offline', topic));
    const opened = openEnvelope(payload, { chainId: CHAIN, maxBytes: 8 * 1024 * 1024 });
    if (!opened.ok) throw new Error(opened.detail);
    this.sent.push({ topic, envelope: opened.envelope });
    return Promise.resolve();
  }

  subscribe(filter: string, handler: MessageHandler): Promise<void> {
    this.handlers.push({ filter, handler });
    return new Promise(() => {}); // granted at the next connect, which a unit test never has to wait for
  }

  onState(listener: (change: StateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(state: LinkState): void {
    const previous = this.state;
    this.state = state;
    for (const l of this.listeners) l({ state, previous, connections: 1 });
  }

  deliver(topic: string, payload: Uint8Array | string): void {
    const message: LinkMessage = {
      topic,
      payload: typeof payload === 'string' ? new TextEncoder().encode(payload) : payload,
      retain: false,
      dup: false,
    };
    for (const { filter, handler } of this.handlers) if (topicMatches(filter, topic)) void handler(message);
  }

  of(kind: string): Envelope[] {
    return this.sent.filter((s) => s.envelope.kind === kind).map((s) => s.envelope);
  }
}

/** A DSO built by hand: one validator key seals blocks and envelopes. */
class FakeDso {
  tip: DsoParent;
  readonly sealer: EnvelopeSealer;

  constructor(
    readonly genesis: DsoGenesis,
    readonly validators: readonly KeyPair[],
    key: KeyPair = validators[0] as KeyPair,
  ) {
    this.tip = genesis;
    this.sealer = new EnvelopeSealer({ signer: signer(key), chainId: CHAIN, session: 1, clock });
  }

  envelope(kind: string, body: EnvelopeBody): Uint8Array {
    return this.sealer.seal(kind, body).bytes;
  }

  block(entries: readonly DsoEntry[]): { header: DsoHeader; seals: string[]; receipts: Receipt[] } {
    const header = buildDsoBlock(
      this.tip,
      entries.map((e) => e.headerHash),
      clock.now(),
    );
    const seals = this.validators.map((k) => sealDsoBlock(header, signer(k)));
    this.tip = header;
    return { header, seals, receipts: buildReceipts(header, seals, entries) };
  }
}

let dir: TempDir;
let clock: ManualClock;
beforeEach(() => {
  dir = new TempDir();
  clock = new ManualClock(T0);
});
afterEach(() => dir.cleanup());

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
const wire = (value: unknown) => JSON.parse(JSON.stringify(value));

const REGISTRATION: RegistrationConfig = {
  meters: [METER],
  bus: 'bus-7',
  trade: { buy: true, sell: true },
  anonymEpoch: 0,
};

/** One MGMC process run on a database that survives restarts. */
class Mgmc {
  readonly store: LedgerStore;
  readonly ledger: Ledger;
  readonly sync: MgmcSync;
  readonly anchors: AnchorStore;

  constructor(
    readonly link: FakeLink,
    readonly genesis: DsoGenesis,
    options: { registration?: RegistrationConfig; pruneAfterMs?: number; session?: number } = {},
  ) {
    this.store = dir.track(new LedgerStore(openAgentDatabase(dir.file('agent.db'))));
    this.anchors = new AnchorStore(this.store.db);
    this.ledger = Ledger.open({
      store: this.store,
      signer: signer(MGMC_A),
      clock,
      chainId: CHAIN,
      sealEveryRecords: 1,
      sealEverySeconds: 60,
    });
    const sealer = new EnvelopeSealer({ signer: signer(MGMC_A), chainId: CHAIN, session: options.session ?? 1, clock });
    this.sync = createMgmcSync({
      store: this.store,
      ledger: this.ledger,
      link,
      sealer,
      topics,
      genesis,
      registration: options.registration ?? REGISTRATION,
      privateKey: MGMC_A.privateKey,
      clock,
      logger: process.env.SYNC_LOG ? createLogger({ level: 'debug', destination: process.stderr }) : silentLogger(),
      outboxOptions: { receiptTimeoutMs: 60_000, checkEveryMs: 10_000 },
      ...(options.pruneAfterMs === undefined ? {} : { pruneAfterMs: options.pruneAfterMs }),
    });
  }

  /** `n` readings, one block each (sealEveryRecords 1). */
  readings(n: number): void {
    for (let i = 0; i < n; i++) {
      this.ledger.append([
        { type: 'reading', body: { device: 'm1', point: 'W', t: clock.now(), value: i, unit: 'W' } },
      ]);
    }
  }

  entries(heights: readonly number[]): DsoEntry[] {
    return heights.map((h) => ({
      mgmc: MGMC_A.address,
      mgmcHeight: h,
      headerHash: toHex((this.store.blockAt(h) as { hash: Uint8Array }).hash),
    }));
  }

  close(): void {
    this.sync.stop();
    this.store.close();
  }
}

const receiptsTopic = topics.dsoReceipts(MGMC_A.address);
const messagesTopic = topics.dsoMessages(MGMC_A.address);

function authorize(link: FakeLink, dso: FakeDso, ref: string, status = 'authorized'): void {
  const anonym = deriveAnonymKey(MGMC_A.privateKey, CHAIN, 0).address;
  link.deliver(
    messagesTopic,
    dso.envelope('authorization', {
      mgmc: MGMC_A.address,
      ref,
      status,
      ...(status === 'authorized' ? { anonym } : { reason: 'operator decision' }),
    }),
  );
}

describe('MgmcSync: registration and block shipping', () => {
  const genesis = genesisOf([V[0]]);

  it('registers at once, holds blocks until authorized, then ships them in height order', async () => {
    const link = new FakeLink();
    const dso = new FakeDso(genesis, [V[0]]);
    const mgmc = new Mgmc(link, genesis);
    mgmc.readings(2);
    mgmc.sync.start();
    mgmc.readings(1);
    link.set('online');
    await settle();
    const [registration] = link.of('registration');
    expect(link.sent.map((s) => s.envelope.kind)).toEqual(['registration']);
    expect(link.sent[0]?.topic).toBe(topics.node(MGMC_A.address, 'registration'));
    expect(registration?.body).toMatchObject({
      mgmc: MGMC_A.address,
      meters: [METER],
      bus: 'bus-7',
      anonym: deriveAnonymKey(MGMC_A.privateKey, CHAIN, 0).address,
    });
    const sealed = mgmc.ledger.sealedHeight; // 3 readings and the registration record
    expect(mgmc.sync.stats()).toMatchObject({ authorization: { status: 'unknown' }, shippedHeight: sealed });
    expect(mgmc.sync.stats().outbox).toMatchObject({ heldKinds: ['block'], held: sealed });

    authorize(link, dso, registration?.id as string);
    await settle();
    // The authorization itself is kept in the ledger (a dso-message record), so one more block was sealed.
    expect(mgmc.ledger.sealedHeight).toBe(sealed + 1);
    const blocks = link.of('block');
    expect(blocks.map((b) => (b.body.header as { height: number }).height)).toEqual(
      Array.from({ length: sealed + 1 }, (_, i) => i + 1),
    );
    expect(link.sent.filter((s) => s.envelope.kind === 'block').every((s) => s.topic.endsWith('/blocks'))).toBe(true);
    // The block body is exactly the stored block: header, signature, records in seq order.
    const first = mgmc.store.blockAt(1);
    expect(blocks[0]?.body.signature).toBe(toHex(first?.signature as Uint8Array));
    expect(((blocks[0] as Envelope).body.records as { seq: number }[]).map((r) => r.seq)).toEqual([1]);
    const stats = mgmc.sync.stats();
    expect(stats.authorization).toMatchObject({ status: 'authorized', anonym: registration?.body.anonym });
    expect(stats.registration).toMatchObject({ id: registration?.id, answered: 'authorized' });
    // The registration left the outbox; the blocks wait for their receipts.
    expect(stats.outbox).toMatchObject({ acked: 1, heldKinds: [] });
    // Blocks sealed from now on go out at once.
    mgmc.readings(1);
    await settle();
    expect(link.of('block').length).toBe(mgmc.ledger.sealedHeight);
    mgmc.close();
  });

  it('loses nothing when the agent dies between a seal and its enqueue, and ships nothing twice', async () => {
    const link = new FakeLink();
    const first = new Mgmc(link, genesis);
    first.sync.start();
    first.readings(3);
    const shipped = first.sync.stats().shippedHeight;
    first.close();
    // A run in which blocks were sealed but the link never saw them (as after a crash right after the seal).
    const crashed = new Mgmc(link, genesis);
    crashed.readings(4);
    const sealed = crashed.ledger.sealedHeight;
    expect(sealed).toBeGreaterThan(shipped);
    crashed.store.close();

    const again = new Mgmc(link, genesis, { session: 2 });
    again.sync.start();
    expect(again.sync.stats()).toMatchObject({ shippedHeight: sealed, sealedHeight: sealed });
    const rows = again.store.db.prepare("SELECT payload FROM outbox WHERE kind = 'block' ORDER BY pos").all() as {
      payload: Buffer;
    }[];
    const heights = rows.map((r) => {
      const opened = openEnvelope(new Uint8Array(r.payload), { chainId: CHAIN, maxBytes: 1 << 22 });
      if (!opened.ok) throw new Error(opened.detail);
      return (opened.envelope.body.header as { height: number }).height;
    });
    expect(heights).toEqual(Array.from({ length: sealed }, (_, i) => i + 1));
    again.close();
  });

  it('knows after a restart that it is authorized, and registers again only when the registration changed', async () => {
    const link = new FakeLink();
    const dso = new FakeDso(genesis, [V[0]]);
    const first = new Mgmc(link, genesis);
    first.sync.start();
    link.set('online');
    await settle();
    authorize(link, dso, link.of('registration')[0]?.id as string);
    await settle();
    first.close();
    link.set('offline');

    const same = new Mgmc(link, genesis, { session: 2 });
    same.sync.start();
    same.readings(1);
    link.set('online');
    await settle();
    expect(link.of('registration')).toHaveLength(1); // not sent again
    expect(same.sync.stats().authorization.status).toBe('authorized');
    expect(link.of('block').length).toBeGreaterThan(0); // not held: no need to wait for the DSO
    same.close();
    link.set('offline');

    const changed = new Mgmc(link, genesis, {
      session: 3,
      registration: { ...REGISTRATION, meters: [METER, V[4].address] },
    });
    changed.sync.start();
    link.set('online');
    await settle();
    const registrations = link.of('registration');
    expect(registrations).toHaveLength(2);
    expect(registrations[1]?.body.meters).toHaveLength(2);
    expect(registrations[1]?.id).not.toBe(registrations[0]?.id);
    // Still authorized under the old registration until the DSO answers the new one.
    expect(changed.sync.stats().authorization.status).toBe('authorized');
    changed.close();
  });

  it('keeps an unanswered registration queued across restarts instead of sending a second one', async () => {
    const link = new FakeLink();
    const first = new Mgmc(link, genesis);
    first.sync.start();
    const id = first.sync.stats().registration.id;
    first.close();
    const again = new Mgmc(link, genesis, { session: 2 });
    again.sync.start();
    expect(again.sync.stats().registration.id).toBe(id);
    expect(again.store.db.prepare("SELECT count(*) FROM outbox WHERE kind = 'registration'").pluck().get()).toBe(1);
    again.close();
  });

  it('replaces an unanswered registration that changed, and refuses a registration that cannot be built', async () => {
    const link = new FakeLink();
    const first = new Mgmc(link, genesis);
    first.sync.start();
    const old = first.sync.stats().registration.id as string;
    first.close();
    const changed = new Mgmc(link, genesis, { session: 2, registration: { ...REGISTRATION, bus: 'bus-8' } });
    changed.sync.start();
    const current = changed.sync.stats().registration.id as string;
    expect(current).not.toBe(old);
    const state = (id: string) => changed.store.db.prepare('SELECT state FROM outbox WHERE id = ?').pluck().get(id);
    expect([state(old), state(current)]).toEqual(['acked', 'pending']);
    changed.close();
    expect(() => new Mgmc(link, genesis, { registration: { ...REGISTRATION, meters: [MGMC_A.address] } })).toThrow(
      /own key/,
    );
  });

  it('pending keeps the registration queued; a revocation holds the blocks again', async () => {
    const link = new FakeLink();
    const dso = new FakeDso(genesis, [V[0]]);
    const mgmc = new Mgmc(link, genesis);
    mgmc.sync.start();
    link.set('online');
    await settle();
    const ref = link.of('registration')[0]?.id as string;
    authorize(link, dso, ref, 'pending');
    await settle();
    expect(mgmc.sync.stats()).toMatchObject({ authorization: { status: 'pending' }, outbox: { acked: 0 } });
    authorize(link, dso, ref);
    await settle();
    expect(mgmc.sync.stats().outbox.heldKinds).toEqual([]);
    authorize(link, dso, ref, 'revoked');
    await settle();
    expect(mgmc.sync.stats()).toMatchObject({
      authorization: { status: 'revoked', reason: 'operator decision' },
      outbox: { heldKinds: ['block'] },
    });
    const before = link.of('block').length;
    mgmc.readings(2);
    await settle();
    expect(link.of('block')).toHaveLength(before);
    mgmc.close();
  });
});

describe('MgmcSync: receipts and DSO headers', () => {
  const genesis = genesisOf([V[0]]);

  async function authorized(): Promise<{ link: FakeLink; dso: FakeDso; mgmc: Mgmc }> {
    const link = new FakeLink();
    const dso = new FakeDso(genesis, [V[0]]);
    const mgmc = new Mgmc(link, genesis);
    mgmc.sync.start();
    link.set('online');
    await settle();
    authorize(link, dso, link.of('registration')[0]?.id as string);
    await settle();
    return { link, dso, mgmc };
  }

  const blockId = (link: FakeLink, height: number) =>
    link.of('block').find((b) => (b.body.header as { height: number }).height === height)?.id as string;

  it('anchors blocks with checked receipts and takes them out of the outbox', async () => {
    const { link, dso, mgmc } = await authorized();
    mgmc.readings(2);
    await settle();
    const heights = [1, 2, 3];
    const block = dso.block(mgmc.entries(heights));
    link.deliver(topics.dsoHeaders(), dso.envelope('dso-header', { header: { ...block.header }, seals: block.seals }));
    for (const receipt of block.receipts) {
      const ref = blockId(link, receipt.mgmcHeight);
      link.deliver(receiptsTopic, dso.envelope('receipt', { ref, receipt: wire(receipt) }));
    }
    await settle();
    const stats = mgmc.sync.stats();
    expect(stats).toMatchObject({ anchoredHeight: 3, dsoHeight: 1, receipts: 3, headers: 1 });
    for (const h of heights)
      expect(mgmc.store.db.prepare('SELECT state FROM outbox WHERE id = ?').pluck().get(blockId(link, h))).toBe(
        'acked',
      );
    // A receipt again (a resent block) is a duplicate; a receipt without ref finds the block's item by height.
    link.deliver(receiptsTopic, dso.envelope('receipt', { receipt: wire(block.receipts[0]) }));
    expect(mgmc.sync.stats()).toMatchObject({ receipts: 3, duplicateReceipts: 1 });
    mgmc.close();
  });

  it('anchors every block of a batched receipts envelope, and refuses an empty or oversized batch', async () => {
    const { link, dso, mgmc } = await authorized();
    mgmc.readings(2);
    await settle();
    const block = dso.block(mgmc.entries([1, 2, 3]));
    link.deliver(topics.dsoHeaders(), dso.envelope('dso-header', { header: { ...block.header }, seals: block.seals }));
    link.deliver(receiptsTopic, dso.envelope('receipts', { receipts: block.receipts.map((r) => wire(r)) }));
    await settle();
    expect(mgmc.sync.stats()).toMatchObject({ anchoredHeight: 3, receipts: 3 });
    for (const h of [1, 2, 3])
      expect(mgmc.store.db.prepare('SELECT state FROM outbox WHERE id = ?').pluck().get(blockId(link, h))).toBe(
        'acked',
      );
    link.deliver(receiptsTopic, dso.envelope('receipts', { receipts: [] }));
    expect(mgmc.sync.stats().bad['bad-body']).toBe(1);
    mgmc.close();
  });

  it('asks for the DSO headers it lacks and anchors the kept receipt when they arrive', async () => {
    const { link, dso, mgmc } = await authorized();
    mgmc.readings(2);
    await settle();
    const b1 = dso.block(mgmc.entries([1]));
    const b2 = dso.block(mgmc.entries([2]));
    const b3 = dso.block(mgmc.entries([3]));
    link.deliver(receiptsTopic, dso.envelope('receipt', { ref: blockId(link, 3), receipt: wire(b3.receipts[0]) }));
    await settle();
    const [request] = link.of('headers-request');
    expect(request?.body).toEqual({ from: 1, to: 2 });
    expect(link.sent.find((s) => s.envelope.kind === 'headers-request')?.topic).toBe(
      topics.node(MGMC_A.address, 'messages'),
    );
    expect(mgmc.sync.stats()).toMatchObject({ parkedReceipts: 1, anchoredHeight: 0, headerRequests: 1 });
    // A second receipt for the same gap does not ask again while the request is outstanding.
    link.deliver(receiptsTopic, dso.envelope('receipt', { ref: blockId(link, 2), receipt: wire(b2.receipts[0]) }));
    expect(link.of('headers-request')).toHaveLength(1);
    link.deliver(
      messagesTopic,
      dso.envelope('dso-headers', {
        blocks: [b2, b1].map((b) => ({ header: { ...b.header }, seals: b.seals })),
      }),
    );
    await settle();
    expect(mgmc.sync.stats()).toMatchObject({ parkedReceipts: 0, dsoHeight: 3, receipts: 2 });
    expect(mgmc.anchors.anchorAt(3)).toBeDefined();
    link.deliver(receiptsTopic, dso.envelope('receipt', { ref: blockId(link, 1), receipt: wire(b1.receipts[0]) }));
    expect(mgmc.sync.stats().anchoredHeight).toBe(3);
    mgmc.close();
  });

  it('asks for the headers in between when a DSO header arrives ahead of the light client', async () => {
    const { link, dso, mgmc } = await authorized();
    const b1 = dso.block(mgmc.entries([1]));
    const b2 = dso.block(mgmc.entries([2]));
    link.deliver(topics.dsoHeaders(), dso.envelope('dso-header', { header: { ...b2.header }, seals: b2.seals }));
    await settle();
    expect(link.of('headers-request').map((e) => e.body)).toEqual([{ from: 1, to: 2 }]);
    expect(mgmc.sync.stats()).toMatchObject({ dsoHeight: 0, bad: {} });
    link.deliver(
      messagesTopic,
      dso.envelope('dso-headers', { blocks: [b1, b2].map((b) => ({ header: { ...b.header }, seals: b.seals })) }),
    );
    expect(mgmc.sync.stats()).toMatchObject({ dsoHeight: 2, headers: 2 });
    mgmc.close();
  });

  it('refuses and counts forged receipts, bad headers, foreign senders and malformed messages', async () => {
    const { link, dso, mgmc } = await authorized();
    mgmc.readings(1);
    await settle();
    const b1 = dso.block(mgmc.entries([1, 2]));
    const good = b1.receipts[0] as Receipt;
    const foreign = new FakeDso(genesis, [V[1]]); // a key outside the validator set
    link.deliver(receiptsTopic, foreign.envelope('receipt', { receipt: wire(good) }));
    const rogue = new FakeDso(genesis, [V[1]], V[0]); // a header sealed by someone outside the set
    const forged = rogue.block(mgmc.entries([1]));
    link.deliver(
      topics.dsoHeaders(),
      dso.envelope('dso-header', { header: { ...forged.header }, seals: forged.seals }),
    );
    link.deliver(
      receiptsTopic,
      dso.envelope('receipt', { receipt: { ...wire(good), proof: [toHex(new Uint8Array(32))] } }),
    );
    link.deliver(receiptsTopic, '{"not":"an envelope"');
    link.deliver(receiptsTopic, dso.envelope('authorization', { mgmc: MGMC_A.address }));
    link.deliver(topics.dsoHeaders(), dso.envelope('dso-header', { header: 'nope', seals: [] }));
    // The broker delivers only what matches a subscription; a message on another topic reaching the handler anyway
    // (a subscription left from an earlier run) is refused.
    void link.handlers[0]?.handler({
      topic: topics.dsoReceipts(V[3].address),
      payload: dso.envelope('receipt', { receipt: wire(good) }),
      retain: false,
      dup: false,
    });
    const tooBig = sealEnvelope(signer(V[0]), {
      kind: 'receipt',
      chainId: CHAIN,
      session: 1,
      seq: 99,
      time: clock.now(),
      body: { pad: 'x'.repeat(300 * 1024) },
    });
    link.deliver(receiptsTopic, tooBig.bytes);
    const otherChain = sealEnvelope(signer(V[0]), {
      kind: 'receipt',
      chainId: CHAIN + 1,
      session: 1,
      seq: 100,
      time: clock.now(),
      body: {},
    });
    link.deliver(receiptsTopic, otherChain.bytes);
    await settle();
    expect(mgmc.sync.stats().bad).toEqual({
      'unknown-sender': 1,
      'receipt-bad-proof': 1,
      'header-unknown-validator': 1,
      'malformed-json': 1,
      'wrong-kind': 1,
      'bad-body': 1,
      'wrong-topic': 1,
      oversized: 1,
      'wrong-chain': 1,
    });
    // The bad-proof receipt carried the next DSO header, validly sealed: the header is kept, the receipt is not.
    expect(mgmc.sync.stats()).toMatchObject({ anchoredHeight: 0, dsoHeight: 1, receipts: 0 });
    // A replayed envelope (same id) is dropped once seen.
    const receipt = dso.envelope('receipt', { receipt: wire(good) });
    link.deliver(receiptsTopic, receipt);
    link.deliver(receiptsTopic, receipt);
    expect(mgmc.sync.stats()).toMatchObject({ anchoredHeight: 1, receipts: 1, duplicates: 1 });
    mgmc.close();
  });

  it('counts rejections by code and never acknowledges a rejected block', async () => {
    const { link, dso, mgmc } = await authorized();
    await settle();
    const ref = link.of('block')[0]?.id as string;
    link.deliver(
      messagesTopic,
      dso.envelope('rejection', { ref, reason: 'out-of-order', detail: 'x', height: 2, expected: 1 }),
    );
    link.deliver(
      messagesTopic,
      dso.envelope('rejection', { ref, reason: 'bad-signature', detail: 'forged', height: 1 }),
    );
    link.deliver(messagesTopic, dso.envelope('rejection', { ref, reason: 'unregistered', detail: 'who?' }));
    link.deliver(messagesTopic, dso.envelope('rejection', { ref }));
    await settle();
    const stats = mgmc.sync.stats();
    expect(stats.rejections).toEqual({ 'out-of-order': 1, 'bad-signature': 1, unregistered: 1 });
    expect(stats.bad).toEqual({ 'bad-body': 1 });
    expect(mgmc.store.db.prepare('SELECT state FROM outbox WHERE id = ?').pluck().get(ref)).not.toBe('acked');
    mgmc.close();
  });

  it('keeps the authorized set with the highest serial', async () => {
    const { link, dso, mgmc } = await authorized();
    const a = V[2].address;
    const b = V[3].address;
    link.deliver(topics.dsoAuthorized(), dso.envelope('authorized-set', { anonyms: [a, b], serial: 5 }));
    link.deliver(topics.dsoAuthorized(), dso.envelope('authorized-set', { anonyms: [a], serial: 4 }));
    expect(mgmc.sync.authorizedAnonyms()).toEqual({ serial: 5, anonyms: new Set([a.toLowerCase(), b.toLowerCase()]) });
    link.deliver(topics.dsoAuthorized(), dso.envelope('authorized-set', { anonyms: [b], serial: 6 }));
    expect(mgmc.sync.authorizedAnonyms()?.anonyms).toEqual(new Set([b.toLowerCase()]));
    mgmc.close();
  });
});

describe('MgmcSync: pruning', () => {
  const genesis = genesisOf([V[0]]);

  it('prunes anchored blocks past the retention; verify stays green and reports the pruned range', async () => {
    const link = new FakeLink();
    const dso = new FakeDso(genesis, [V[0]]);
    const mgmc = new Mgmc(link, genesis, { pruneAfterMs: 24 * HOUR });
    mgmc.sync.start();
    link.set('online');
    await settle();
    authorize(link, dso, link.of('registration')[0]?.id as string);
    await settle();
    for (let i = 0; i < 4; i++) {
      mgmc.readings(1);
      clock.advance(HOUR);
    }
    const sealed = mgmc.ledger.sealedHeight;
    const anchoredThrough = sealed - 1; // the newest block stays without a receipt
    const block = dso.block(mgmc.entries(Array.from({ length: anchoredThrough }, (_, i) => i + 1)));
    for (const receipt of block.receipts)
      link.deliver(receiptsTopic, dso.envelope('receipt', { receipt: wire(receipt) }));
    expect(mgmc.sync.stats().anchoredHeight).toBe(anchoredThrough);

    mgmc.sync.runMaintenance();
    expect(mgmc.sync.stats().prunedThroughSeq).toBe(0); // too young
    clock.advance(25 * HOUR);
    mgmc.sync.runMaintenance();
    const through = mgmc.store.blockAt(anchoredThrough) as { firstSeq: number; count: number };
    const lastPruned = through.firstSeq + through.count - 1;
    expect(mgmc.sync.stats().prunedThroughSeq).toBe(lastPruned);
    expect(mgmc.store.recordRange(1, 1)[0]?.body.length).toBe(0);
    expect(mgmc.store.recordRange(lastPruned + 1, 1)[0]?.body.length).toBeGreaterThan(0);

    const report = verifyChain(ledgerSource(mgmc.store), { strict: true });
    expect(report).toMatchObject({
      ok: true,
      blocks: sealed,
      pruned: [{ fromSeq: 1, toSeq: lastPruned, fromHeight: 1, toHeight: anchoredThrough }],
    });
    expect(anchorReport(mgmc.store, mgmc.anchors)).toMatchObject({
      anchoredHeight: anchoredThrough,
      ranges: [{ first: 1, last: anchoredThrough }],
      receipts: anchoredThrough,
      dsoHeight: 1,
      problems: [],
    });
    // A pruned record's kept leaf that was changed is caught by the block's root.
    mgmc.store.db.prepare('UPDATE records SET leaf = ? WHERE seq = 1').run(new Uint8Array(32));
    expect(verifyChain(ledgerSource(mgmc.store)).problem).toMatchObject({ height: 1, kind: 'changed-record' });
    mgmc.close();
  });
});
