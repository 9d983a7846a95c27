/**
 * The DSO's grid-security loop without a broker: positions in (only from authorized MGMCs at known buses, for open
 * intervals), rounds of the network check, encrypted contracts out (readable by their MGMC only), caps merged across
 * rounds, acks, resends, the round limit and the automatic round after positions settle.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { openAdjustment } from '../../../agent/dso/adjustment.js';
import { GridSecurity, type GridSecurityOptions } from '../../../agent/dso/grid-security.js';
import type { RegistryEntry } from '../../../agent/dso/registry.js';
import { createFeeder } from '../../../agent/grid/feeder.js';
import { ieee33 } from '../../../agent/grid/ieee33.js';
import { busLoads } from '../../../agent/grid/powerflow.js';
import type { KeyPair } from '../../../agent/identity/keys.js';
import { type EnvelopeBody, EnvelopeSealer } from '../../../agent/link/envelope.js';
import { LinkTopics } from '../../../agent/link/topics.js';
import { silentLogger } from '../../../agent/logger.js';
import { createInlineSolver, type Solver } from '../../../agent/optimizer/solver.js';
import { MGMC_A, MGMC_B, signer, T0, V } from './helpers.js';

const CHAIN = 4242;
const Q = 900_000;
const INTERVAL = T0 + 12 * 3_600_000;
const DSO = V[0];
const MGMC_C = V[3];
const topics = new LinkTopics(CHAIN);
const feeder = createFeeder(ieee33());
const halfLoad = busLoads(feeder, { scale: 0.5 });

let solver: Solver;
beforeAll(async () => {
  solver = await createInlineSolver();
});
afterAll(async () => {
  await solver.close();
});

interface Published {
  readonly topic: string;
  readonly kind: string;
  readonly body: EnvelopeBody;
}

describe('GridSecurity', () => {
  let clock: ManualClock;
  let published: Published[];
  let grid: GridSecurity;
  const buses = new Map<string, string>([
    [MGMC_A.address, '18'],
    [MGMC_B.address, '30'],
    [MGMC_C.address, 'nowhere'],
  ]);
  const registry = {
    lookup: (address: string) => {
      const bus = buses.get(address);
      return bus === undefined ? undefined : ({ mgmc: address, status: 'authorized', bus } as unknown as RegistryEntry);
    },
  };
  const make = (settings: Partial<GridSecurityOptions> = {}) =>
    new GridSecurity({
      feeder,
      solver,
      registry,
      signer: signer(DSO),
      chainId: CHAIN,
      topics,
      clock,
      logger: silentLogger(),
      base: () => halfLoad,
      publish: async (topic, kind, body) => {
        published.push({ topic, kind, body });
      },
      ...settings,
    });
  const sealers = new Map<string, EnvelopeSealer>();
  const position = (who: KeyPair, netW: number, interval = INTERVAL) => {
    let sealer = sealers.get(who.address);
    if (sealer === undefined) {
      sealer = new EnvelopeSealer({ signer: signer(who), chainId: CHAIN, session: 1, clock });
      sealers.set(who.address, sealer);
    }
    return sealer.seal('position', { interval, netW }).envelope;
  };
  const ack = (who: KeyPair, body: EnvelopeBody) =>
    new EnvelopeSealer({ signer: signer(who), chainId: CHAIN, session: 1, clock }).seal('adjustment-ack', body)
      .envelope;
  const decrypt = (who: KeyPair, body: EnvelopeBody) =>
    openAdjustment(body, { privateKey: who.privateKey, chainId: CHAIN, validators: [DSO.address], now: clock.now() });

  beforeEach(() => {
    clock = new ManualClock(INTERVAL - 600_000);
    published = [];
    sealers.clear();
    grid = make();
  });
  afterEach(() => grid.stop());

  it('takes positions only from authorized MGMCs at known buses, for open market intervals', () => {
    expect(grid.acceptPosition(position(MGMC_A, -2_000_000))).toEqual({ ok: true });
    expect(grid.acceptPosition(position(V[4], 1))).toMatchObject({ ok: false, reason: 'unregistered' });
    expect(grid.acceptPosition(position(MGMC_C, 1))).toMatchObject({ ok: false, reason: 'unknown-bus' });
    expect(grid.acceptPosition(position(MGMC_B, 1, INTERVAL + 1))).toMatchObject({ ok: false, reason: 'bad-field' });
    const kilowatts = new EnvelopeSealer({ signer: signer(MGMC_B), chainId: CHAIN, session: 2, clock });
    expect(
      grid.acceptPosition(kilowatts.seal('position', { interval: INTERVAL, netW: '1.5 kW' }).envelope),
    ).toMatchObject({ ok: false, reason: 'bad-field' });
    expect(grid.acceptPosition(position(MGMC_B, 1, INTERVAL - 2 * Q))).toMatchObject({ ok: false, reason: 'stale' });
    // A newer position replaces the older one.
    expect(grid.acceptPosition(position(MGMC_A, -1_900_000))).toEqual({ ok: true });
    expect(grid.positions(INTERVAL)).toEqual([{ mgmc: MGMC_A.address, bus: '18', netW: -1_900_000 }]);
  });

  it('sends an encrypted contract to the MGMC it curtails, and nothing to the others', async () => {
    grid.acceptPosition(position(MGMC_A, -2_000_000));
    grid.acceptPosition(position(MGMC_B, 300_000));
    const round = await grid.checkInterval(INTERVAL);
    expect(round.check?.status).toBe('secured');
    expect(round.sent).toHaveLength(1);
    expect(published).toHaveLength(1);
    const [msg] = published as [Published];
    expect(msg.topic).toBe(topics.dsoAdjustments(MGMC_A.address));
    expect(msg.kind).toBe('adjustment');
    const opened = decrypt(MGMC_A, msg.body);
    if (!opened.ok) throw new Error(opened.detail);
    const cap = round.check?.caps[0];
    expect(opened.signed.contract).toMatchObject({
      id: round.sent[0]?.id,
      dso: DSO.address,
      mgmc: MGMC_A.address,
      interval: INTERVAL,
      durationMs: Q,
      expiry: INTERVAL + Q,
      iteration: 1,
      positionW: -2_000_000,
      caps: { maxExportW: cap?.maxExportW },
    });
    expect(opened.signed.contract.reason).toMatch(
      /^round 1: bus 18: 1\.0\d{3} pu, above 1\.05 pu; .*; these caps make the interval secure$/,
    );
    expect(decrypt(MGMC_B, msg.body)).toMatchObject({ ok: false, reason: 'not-for-me' });
  });

  it('sends contracts again until acknowledged, and only their MGMC can acknowledge them', async () => {
    grid.acceptPosition(position(MGMC_A, -2_000_000));
    const round = await grid.checkInterval(INTERVAL);
    const id = round.sent[0]?.id as string;
    clock.advance(15_000);
    expect(published).toHaveLength(2);
    expect(published[1]?.body).toEqual(published[0]?.body);
    expect(grid.acceptAck(ack(MGMC_B, { ref: id, interval: INTERVAL, status: 'applied' }))).toMatchObject({
      ok: false,
      reason: 'wrong-sender',
    });
    expect(grid.acceptAck(ack(MGMC_A, { ref: id, interval: INTERVAL, status: 'applied' }))).toEqual({ ok: true });
    clock.advance(15_000);
    expect(published).toHaveLength(2);
    expect(grid.stats()).toMatchObject({ contractsSent: 1, resent: 1, acked: 1, pendingAcks: 0 });
    // An ack that refuses is counted by reason; a contract is never sent after it expires.
    grid.acceptPosition(position(MGMC_A, -2_000_000, INTERVAL + Q));
    const next = await grid.checkInterval(INTERVAL + Q);
    grid.acceptAck(ack(MGMC_A, { ref: next.sent[0]?.id as string, status: 'rejected', reason: 'expired' }));
    expect(grid.stats().refusedByMgmc).toEqual({ expired: 1 });
  });

  it('merges the caps of later rounds with the earlier ones, and stops at the round limit', async () => {
    grid.stop();
    grid = make({ maxRounds: 2 });
    grid.acceptPosition(position(MGMC_A, -2_000_000));
    const first = await grid.checkInterval(INTERVAL);
    const exportCap = first.sent[0]?.caps.maxExportW as number;
    // Round 2: A keeps to its cap, B now imports so much at bus 30 that the voltage there falls below 0.95 pu.
    grid.acceptPosition(position(MGMC_A, -exportCap));
    grid.acceptPosition(position(MGMC_B, 2_500_000));
    const second = await grid.checkInterval(INTERVAL);
    expect(second.round).toBe(2);
    expect(second.check?.secure).toBe(true);
    const toA = second.sent.find((s) => s.mgmc === MGMC_A.address);
    // Whatever A is asked now, its export cap from round 1 still travels with it.
    if (toA !== undefined) expect(toA.caps.maxExportW).toBeLessThanOrEqual(exportCap);
    expect(grid.capsInForce(INTERVAL).get(MGMC_A.address.toLowerCase())?.maxExportW).toBeLessThanOrEqual(exportCap);
    expect(second.sent.find((s) => s.mgmc === MGMC_B.address)?.caps.maxImportW).toBeLessThan(2_500_000);
    const third = await grid.checkInterval(INTERVAL);
    expect(third).toMatchObject({ round: 2, sent: [], skipped: expect.stringMatching(/round limit 2/) });
  });

  it('runs a round on its own once positions have settled', async () => {
    grid.stop();
    grid = make({ settleMs: 2_000 });
    grid.acceptPosition(position(MGMC_A, -2_000_000));
    clock.advance(1_500);
    grid.acceptPosition(position(MGMC_B, 100_000));
    clock.advance(1_500);
    expect(grid.stats().rounds).toBe(0);
    clock.advance(500);
    for (let i = 0; i < 50 && published.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(grid.stats().rounds).toBe(1);
    expect(published.map((p) => p.topic)).toEqual([topics.dsoAdjustments(MGMC_A.address)]);
  });
});
