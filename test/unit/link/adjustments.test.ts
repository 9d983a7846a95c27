/**
 * The MGMC side of grid security against a fake transport: positions out, adjustment contracts in (verified,
 * decrypted, stored, acknowledged, handed to onCaps), replays, expired and superseded contracts refused with reasons,
 * caps per optimizer step, and persistence across a restart.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import {
  type AdjustmentContract,
  adjustmentBody,
  encryptAdjustment,
  newAdjustmentId,
  signAdjustment,
} from '../../../agent/dso/adjustment.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import type { KeyPair } from '../../../agent/identity/keys.js';
import { type CapsEvent, MgmcAdjustments } from '../../../agent/link/adjustments.js';
import { type Envelope, type EnvelopeBody, EnvelopeSealer, openEnvelope } from '../../../agent/link/envelope.js';
import {
  LinkError,
  type LinkMessage,
  type LinkState,
  type MessageHandler,
  type StateChange,
} from '../../../agent/link/mqtt-client.js';
import { LinkTopics, parseTopic, topicMatches } from '../../../agent/link/topics.js';
import { silentLogger } from '../../../agent/logger.js';
import { openAgentDatabase } from '../../../agent/store/agent-db.js';
import type { SqliteDatabase } from '../../../agent/store/database.js';
import { MGMC_A, MGMC_B, signer, T0, TempDir, V } from '../dso/helpers.js';

const CHAIN = 4242;
const topics = new LinkTopics(CHAIN);
const DSO = V[0];
const Q = 900_000;
const INTERVAL = T0 + 12 * 3_600_000;

class FakeLink {
  state: LinkState = 'online';
  readonly sent: { topic: string; envelope: Envelope }[] = [];
  readonly handlers: { filter: string; handler: MessageHandler }[] = [];
  private readonly listeners = new Set<(change: StateChange) => void>();

  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.state !== 'online') return Promise.reject(new LinkError('offline', 'offline', topic));
    const opened = openEnvelope(payload, { chainId: CHAIN });
    if (!opened.ok) throw new Error(opened.detail);
    this.sent.push({ topic, envelope: opened.envelope });
    return Promise.resolve();
  }

  subscribe(filter: string, handler: MessageHandler): Promise<void> {
    this.handlers.push({ filter, handler });
    return Promise.resolve();
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

  deliver(topic: string, payload: Uint8Array): void {
    const message: LinkMessage = { topic, payload, retain: false, dup: false };
    for (const { filter, handler } of this.handlers) if (topicMatches(filter, topic)) void handler(message);
  }

  of(kind: string): { topic: string; envelope: Envelope }[] {
    return this.sent.filter((s) => s.envelope.kind === kind);
  }
}

const flush = () => new Promise((r) => setImmediate(r));

describe('MgmcAdjustments', () => {
  let dir: TempDir;
  let db: SqliteDatabase;
  let clock: ManualClock;
  let link: FakeLink;
  let recorded: unknown[];
  let adjustments: MgmcAdjustments;
  let events: CapsEvent[];
  let dso: EnvelopeSealer;

  const start = (database = db) => {
    const a = new MgmcAdjustments({
      link,
      sealer: new EnvelopeSealer({ signer: signer(MGMC_A), chainId: CHAIN, session: 1, clock }),
      topics,
      db: database,
      privateKey: MGMC_A.privateKey,
      validators: () => [DSO.address],
      clock,
      logger: silentLogger(),
      ledger: { append: (records) => recorded.push(...records) as never },
    });
    a.start();
    a.onCaps((e) => events.push(e));
    return a;
  };

  beforeEach(() => {
    dir = new TempDir();
    db = dir.track(openAgentDatabase(dir.file('agent.db')));
    clock = new ManualClock(INTERVAL - 600_000);
    link = new FakeLink();
    recorded = [];
    events = [];
    dso = new EnvelopeSealer({ signer: signer(DSO), chainId: CHAIN, session: 1, clock });
    adjustments = start();
  });

  afterEach(() => {
    adjustments.stop();
    dir.cleanup();
  });

  const contract = (patch: Partial<AdjustmentContract> = {}): AdjustmentContract => ({
    v: 1,
    id: newAdjustmentId(),
    dso: DSO.address,
    mgmc: MGMC_A.address,
    interval: INTERVAL,
    durationMs: Q,
    issued: clock.now(),
    expiry: INTERVAL + Q,
    iteration: 1,
    positionW: 2_000_000,
    caps: { maxImportW: 1_870_441 },
    reason: 'round 1: line s24 (24-25): 106.5 A, 106.5 % of 100 A',
    ...patch,
  });

  /** Seals an adjustment envelope as the DSO node would and delivers it on A's topic. */
  const deliver = (c: AdjustmentContract, options: { by?: EnvelopeSealer; to?: KeyPair; body?: EnvelopeBody } = {}) => {
    const body =
      options.body ??
      adjustmentBody(encryptAdjustment(signAdjustment(signer(DSO), CHAIN, c), (options.to ?? MGMC_A).publicKey));
    const sealed = (options.by ?? dso).seal('adjustment', body);
    link.deliver(topics.dsoAdjustments(MGMC_A.address), sealed.bytes);
    return sealed.bytes;
  };

  const acks = () =>
    link
      .of('adjustment-ack')
      .map((s) => ({ topic: s.topic, ...(s.envelope.body as { ref?: string; status?: string; reason?: string }) }));

  it('applies a contract: caps stored and handed to onCaps, recorded, and acknowledged', async () => {
    const c = contract();
    deliver(c);
    await flush();
    expect(events).toEqual([
      { interval: INTERVAL, durationMs: Q, caps: { maxImportW: 1_870_441 }, iteration: 1, id: c.id, expiry: c.expiry },
    ]);
    expect(adjustments.capsFor(INTERVAL)).toEqual({ maxImportW: 1_870_441, id: c.id, iteration: 1 });
    expect(acks()).toEqual([
      expect.objectContaining({
        topic: topics.node(MGMC_A.address, 'acks'),
        ref: c.id,
        interval: INTERVAL,
        status: 'applied',
        digest: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      }),
    ]);
    expect(recorded).toEqual([
      expect.objectContaining({ type: 'dso-message', body: expect.objectContaining({ kind: 'adjustment' }) }),
    ]);
    expect(adjustments.stats()).toMatchObject({ accepted: 1, acksSent: 1 });
  });

  it('refuses a replayed contract id with the reason, and drops a redelivered envelope silently', async () => {
    const c = contract();
    const bytes = deliver(c);
    await flush();
    link.deliver(topics.dsoAdjustments(MGMC_A.address), bytes); // the broker redelivers the same envelope
    deliver(c); // the same contract in a new envelope
    await flush();
    expect(events).toHaveLength(1);
    expect(acks().map((a) => [a.status, a.reason])).toEqual([
      ['applied', undefined],
      ['rejected', 'replayed'],
    ]);
    expect(adjustments.stats()).toMatchObject({ accepted: 1, duplicates: 1, rejected: { replayed: 1 } });
  });

  it('refuses an expired contract with the reason', async () => {
    const c = contract();
    clock.advance(INTERVAL + Q - clock.now());
    deliver(c);
    await flush();
    expect(events).toEqual([]);
    expect(adjustments.capsFor(INTERVAL)).toBeUndefined();
    expect(acks()).toEqual([expect.objectContaining({ ref: c.id, status: 'rejected', reason: 'expired' })]);
  });

  it('keeps the newest round in force and refuses an older round that arrives late', async () => {
    const round2 = contract({ iteration: 2, caps: { maxImportW: 1_000_000, maxExportW: 0 } });
    const round1 = contract({ iteration: 1 });
    deliver(round2);
    deliver(round1);
    await flush();
    expect(adjustments.capsFor(INTERVAL)).toEqual({
      maxImportW: 1_000_000,
      maxExportW: 0,
      id: round2.id,
      iteration: 2,
    });
    expect(acks().map((a) => [a.ref, a.status, a.reason])).toEqual([
      [round2.id, 'applied', undefined],
      [round1.id, 'rejected', 'superseded'],
    ]);
  });

  it('refuses without an ack what is not the DSO’s or cannot be read, and acks a tampered one it can name', async () => {
    const rogue = new EnvelopeSealer({ signer: signer(V[4]), chainId: CHAIN, session: 1, clock });
    deliver(contract(), { by: rogue });
    // Encrypted to B, delivered on A's topic: A cannot tell which contract it is.
    deliver(contract({ mgmc: MGMC_B.address }), { to: MGMC_B });
    const body = adjustmentBody(encryptAdjustment(signAdjustment(signer(DSO), CHAIN, contract()), MGMC_A.publicKey));
    const encrypted = body.encrypted as { ct: string };
    const ct = fromHex(encrypted.ct);
    ct[ct.length - 1] = (ct[ct.length - 1] as number) ^ 0x80;
    deliver(contract(), { body: { encrypted: { ...encrypted, ct: toHex(ct) } } });
    await flush();
    expect(events).toEqual([]);
    expect(acks()).toEqual([]);
    expect(adjustments.stats()).toMatchObject({
      bad: { 'unknown-sender': 1 },
      rejected: { 'not-for-me': 1, undecryptable: 1 },
    });
  });

  it('gives the optimizer the tightest caps per step over its horizon', async () => {
    deliver(contract({ interval: INTERVAL, caps: { maxImportW: 500_000 } }));
    deliver(contract({ interval: INTERVAL + 2 * Q, expiry: INTERVAL + 3 * Q, caps: { maxExportW: 300_000 } }));
    await flush();
    // Quarter-hour steps: one per interval.
    expect(adjustments.capsForHorizon(INTERVAL - Q, Q, 5)).toEqual({
      maxImportW: [undefined, 500_000, undefined, undefined, undefined],
      maxExportW: [undefined, undefined, undefined, 300_000, undefined],
    });
    // Five-minute steps: three per interval; an hourly step covering both gets both caps.
    expect(adjustments.capsForHorizon(INTERVAL, 300_000, 4).maxImportW).toEqual([500_000, 500_000, 500_000, undefined]);
    expect(adjustments.capsForHorizon(INTERVAL, 4 * Q, 1)).toEqual({ maxImportW: [500_000], maxExportW: [300_000] });
  });

  it('sends positions, and sends the open ones again after a reconnect', async () => {
    const id = await adjustments.publishPosition(INTERVAL, -1_500_000);
    expect(link.of('position')).toEqual([
      {
        topic: topics.node(MGMC_A.address, 'positions'),
        envelope: expect.objectContaining({ id, from: MGMC_A.address, body: { interval: INTERVAL, netW: -1_500_000 } }),
      },
    ]);
    link.set('offline');
    await expect(adjustments.publishPosition(INTERVAL + Q, 250_000)).rejects.toThrow(LinkError);
    await expect(adjustments.publishPosition(INTERVAL, 1.5)).rejects.toThrow(/not an integer W/);
    link.set('online');
    await flush();
    expect(link.of('position').map((s) => s.envelope.body)).toEqual([
      { interval: INTERVAL, netW: -1_500_000 },
      { interval: INTERVAL, netW: -1_500_000 },
      { interval: INTERVAL + Q, netW: 250_000 },
    ]);
  });

  it('still knows the caps and the contract ids after a restart', async () => {
    const c = contract();
    deliver(c);
    await flush();
    adjustments.stop();
    link.handlers.length = 0;
    adjustments = start();
    expect(adjustments.capsFor(INTERVAL)).toMatchObject({ id: c.id });
    deliver(c);
    await flush();
    expect(acks().at(-1)).toMatchObject({ ref: c.id, status: 'rejected', reason: 'replayed' });
    // Housekeeping forgets contracts a week after they expire; a replay then is refused as expired.
    clock.advance(c.expiry + 7 * 86_400_000 + 1 - clock.now());
    adjustments.runMaintenance();
    expect(adjustments.capsFor(INTERVAL)).toBeUndefined();
    deliver(c);
    await flush();
    expect(acks().at(-1)).toMatchObject({ ref: c.id, status: 'rejected', reason: 'expired' });
  });

  it('has topics of its own that parse back', () => {
    expect(topics.dsoAdjustments(MGMC_A.address)).toBe(
      `mgmc/v1/${CHAIN}/dso/adjustments/${MGMC_A.address.toLowerCase()}`,
    );
    expect(parseTopic(topics.dsoAdjustments(MGMC_A.address))).toEqual({
      kind: 'dso-adjustments',
      chainId: CHAIN,
      address: MGMC_A.address.toLowerCase(),
    });
    for (const channel of ['positions', 'acks'] as const) {
      expect(parseTopic(topics.node(MGMC_A.address, channel))).toMatchObject({ kind: 'node', channel });
    }
  });
});
