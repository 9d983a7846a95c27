/**
 * Grid security end to end through a real mosquitto: a DSO node with the IEEE 33-bus feeder and three MGMCs (built
 * from the same parts the MGMC runtime wires: ledger, link, MgmcSync, MgmcAdjustments). The MGMCs register and are
 * authorized, publish their net positions for one market interval (solar exports at the end of the main feeder push
 * the voltage above 1.05 pu, a factory's import overloads a lateral), the DSO detects it and sends encrypted
 * adjustment contracts, the capped MGMCs acknowledge them and get their caps through onCaps, re-trade within them and
 * report again; the DSO's second round finds the interval secure and sends nothing more.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../agent/clock.js';
import { checkNetwork } from '../../agent/dso/network-check.js';
import { type RunningDso, startDso } from '../../agent/dso/node.js';
import { createFeeder } from '../../agent/grid/feeder.js';
import { ieee33 } from '../../agent/grid/ieee33.js';
import { busLoads } from '../../agent/grid/powerflow.js';
import { generateKeyPair, type KeyPair } from '../../agent/identity/keys.js';
import type { CapsEvent } from '../../agent/link/adjustments.js';
import { type Logger, silentLogger } from '../../agent/logger.js';
import { createInlineSolver, type Solver } from '../../agent/optimizer/solver.js';
import { type TestGenesis, until, writeDsoNode } from '../helpers/dso-node.js';
import { LinkedMgmc } from '../helpers/linked-mgmc.js';
import { type MosquittoBroker, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

const CHAIN = 515;
const Q = 900_000;

/** One MGMC's link side (test/helpers/linked-mgmc.ts), keeping the caps it is sent. */
class TestMgmc extends LinkedMgmc {
  readonly caps: CapsEvent[] = [];

  constructor(
    name: string,
    key: KeyPair,
    bus: string,
    dir: string,
    url: string,
    genesis: TestGenesis,
    clock: Clock,
    logger: Logger,
  ) {
    super({ name, key, bus, dir, url, genesis, clock, logger });
    this.adjustments.onCaps((event) => this.caps.push(event));
    this.connect();
  }
}

// requireMosquitto() warns loudly when mosquitto is missing, and throws in CI where it must be installed.
const describeMosquitto = describe.skipIf(!requireMosquitto());

describeMosquitto('grid security through mosquitto', () => {
  let dir: string;
  let broker: MosquittoBroker;
  let dso: RunningDso | undefined;
  let solver: Solver;
  const mgmcs: TestMgmc[] = [];
  const feeder = createFeeder(ieee33());
  const halfLoad = busLoads(feeder, { scale: 0.5 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mgmc-grid-security-'));
    broker = await startMosquitto();
    solver = await createInlineSolver();
  });

  afterAll(async () => {
    for (const m of mgmcs) await m.stop();
    await dso?.stop();
    await solver?.close();
    await broker?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('detects the violation, sends encrypted caps, gets acks, and the re-traded interval is secure', async () => {
    const clock = systemClock();
    const logger = silentLogger();
    const keys = { end: generateKeyPair(), mid: generateKeyPair(), factory: generateKeyPair() };
    const { genesis, config } = await writeDsoNode(dir, {
      chainId: CHAIN,
      brokerUrl: broker.url,
      allow: Object.values(keys).map((k) => k.address),
    });
    dso = await startDso(config, {
      clock,
      logger,
      registryRefreshMs: 200,
      grid: { feeder, solver, base: () => halfLoad, settleMs: 300, resendMs: 1_000 },
    });
    const node = dso;
    const grid = node.grid;
    if (grid === undefined) throw new Error('the DSO started without grid security');
    await until('the DSO online', () => node.link.online);

    const end = new TestMgmc('end', keys.end, '18', dir, broker.url, genesis, clock, logger);
    const mid = new TestMgmc('mid', keys.mid, '14', dir, broker.url, genesis, clock, logger);
    const factory = new TestMgmc('factory', keys.factory, '25', dir, broker.url, genesis, clock, logger);
    mgmcs.push(end, mid, factory);
    await until('every MGMC authorized', () =>
      mgmcs.every((m) => m.sync.authorizationState().status === 'authorized' && m.link.online),
    );

    // An interval well ahead, so it is still open when the rounds are done.
    const interval = Math.ceil(Date.now() / Q) * Q + Q;
    const planned = new Map<TestMgmc, number>([
      [end, -2_000_000],
      [mid, -500_000],
      [factory, 2_000_000],
    ]);
    for (const [m, netW] of planned) await m.adjustments.publishPosition(interval, netW);

    // Round 1: the DSO finds overvoltage at the end of the main feeder and an overload at bus 25.
    await until('adjustments acknowledged', () => {
      const s = grid.stats();
      return s.rounds >= 1 && s.contractsSent >= 2 && s.acked === s.contractsSent;
    });
    await until('caps at the capped MGMCs', () => end.caps.length === 1 && factory.caps.length === 1);
    expect(mid.caps).toEqual([]);
    const endCaps = end.caps[0] as CapsEvent;
    const factoryCaps = factory.caps[0] as CapsEvent;
    expect(endCaps).toMatchObject({ interval, durationMs: Q, iteration: 1 });
    expect(endCaps.caps.maxExportW).toBeLessThan(2_000_000);
    expect(endCaps.caps.maxImportW).toBeUndefined();
    expect(factoryCaps.caps.maxImportW).toBeLessThan(2_000_000);
    expect(end.adjustments.capsFor(interval)).toMatchObject({ id: endCaps.id, maxExportW: endCaps.caps.maxExportW });
    expect(end.adjustments.stats()).toMatchObject({ accepted: 1, rejected: {} });
    // The MGMC keeps the signed contract in its ledger, for auditors.
    const records = end.store
      .recordRange(1, end.store.lastSeq())
      .map((r) => JSON.parse(new TextDecoder().decode(r.body)) as { type: string; body: Record<string, unknown> });
    const kept = records.find((r) => r.type === 'dso-message' && r.body.kind === 'adjustment');
    expect(kept?.body.payload).toMatchObject({
      contract: { id: endCaps.id, mgmc: keys.end.address },
      sig: expect.any(String),
    });

    // The MGMCs re-trade within their caps and report again; the DSO's next round finds the interval secure.
    const sentBefore = grid.stats().contractsSent;
    await end.adjustments.publishPosition(interval, -(endCaps.caps.maxExportW as number));
    await factory.adjustments.publishPosition(interval, factoryCaps.caps.maxImportW as number);
    await until('the second round', () => grid.stats().rounds >= 2);
    expect(grid.stats().contractsSent).toBe(sentBefore);
    expect(grid.stats()).toMatchObject({ pendingAcks: 0, notSecure: 0 });

    const final = await checkNetwork(feeder, grid.positions(interval), solver, { base: halfLoad });
    expect(final.status).toBe('secure');
    expect(final.after.maxVoltage.pu).toBeLessThanOrEqual(1.05);
    expect(final.after.maxLoading?.pct).toBeLessThanOrEqual(100);
    expect(grid.positions(interval)).toHaveLength(3);
    expect(node.stats().dropped).toEqual({});
  });
});
