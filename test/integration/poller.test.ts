/**
 * The poller end to end on loopback: a SunSpec inverter and an SDM630-style meter served by the simulator's Modbus
 * TCP server, discovered, planned, read and stored in a real ledger; a dead device costs the others nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { generateKeyPair } from '../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../agent/ledger/block.js';
import { openWritableLedger } from '../../agent/ledger/open.js';
import type { NewRecord } from '../../agent/ledger/records.js';
import { silentLogger } from '../../agent/logger.js';
import { Poller } from '../../agent/poll/poller.js';
import { resolveSite } from '../../agent/poll/resolve.js';
import { encodeValue } from '../../hardware/codec.js';
import type { ModbusBus } from '../../hardware/modbus/types.js';
import { loadCatalogue } from '../../hardware/profile/load.js';
import { placeProfile } from '../../hardware/profile/place.js';
import type { Profile } from '../../hardware/profile/types.js';
import { ArrayRegisterBank } from '../../sim/modbus/bank.js';
import { startModbusTcpServer } from '../../sim/modbus/tcp-server.js';

const catalogue = loadCatalogue();

/** A bank holding `profiles` as a SunSpec chain at 40000, every point set by `values` (engineering units). */
function sunspecDevice(profiles: Profile[], values: Record<string, number>, sf: Record<string, number>) {
  const words: number[] = [0x5375, 0x6e53];
  for (const profile of profiles) {
    const length = profile.sunspec?.length ?? 0;
    const regs = new Array<number>(length + 2).fill(0);
    regs[0] = profile.sunspec?.model ?? 0;
    regs[1] = length;
    for (const placed of placeProfile(profile, 0)) {
      const point = placed.point;
      if (point.name === 'ID' || point.name === 'L') continue;
      let encoded: number[];
      if (point.type === 'sunssf') encoded = encodeValue(point, sf[point.name] ?? 0);
      else if (point.type === 'string') encoded = encodeValue(point, 'SIM');
      else if (values[point.name] !== undefined) {
        const sfValue = point.sf === undefined ? undefined : (sf[point.sf] ?? 0);
        encoded = encodeValue(point, values[point.name] as number, sfValue);
      } else encoded = encodeValue(point, null);
      encoded.forEach((w, i) => {
        regs[placed.address + i] = w;
      });
    }
    words.push(...regs);
  }
  words.push(0xffff, 0);
  return new ArrayRegisterBank({ holding: [{ start: 40000, values: words }] });
}

function meterDevice(values: Record<string, number>): ArrayRegisterBank {
  const profile = catalogue.get('eastron-sdm630');
  const regs = new Array<number>(400).fill(0);
  for (const placed of placeProfile(profile, 0)) {
    const v = values[placed.point.name] ?? 0;
    encodeValue(placed.point, v).forEach((w, i) => {
      regs[placed.address + i] = w;
    });
  }
  return new ArrayRegisterBank({ input: [{ start: 0, values: regs }] });
}

describe('poller against the simulator over Modbus TCP', () => {
  let dir: string;
  let server: Awaited<ReturnType<typeof startModbusTcpServer>>;
  const records: NewRecord[][] = [];
  let buses: Map<string, ModbusBus>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mgmc-poll-'));
    const inverter = sunspecDevice(
      [catalogue.get('sunspec-1'), catalogue.get('sunspec-103')],
      { W: 4321, A: 18.75, PhVphA: 231.4, Hz: 50.02, WH: 1234567 },
      { W_SF: 0, A_SF: -2, V_SF: -1, Hz_SF: -2, WH_SF: 0 },
    );
    const meter = meterDevice({ PhVphA: 229.9, W: -1500, TotWhImp: 987_000, Hz: 49.98 });
    server = await startModbusTcpServer({
      units: new Map([
        [1, inverter],
        [2, meter],
      ]),
      faults: [{ kind: 'no-answer', unit: 9 }],
    });
  });

  afterAll(async () => {
    for (const bus of buses?.values() ?? []) await bus.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('discovers, plans, decodes and stores integer readings; a dead unit is reported and backs off', async () => {
    const clock = systemClock();
    const common = { timeoutMs: 300, retries: 0, maxGap: 8, backoff: { baseMs: 60_000, maxMs: 60_000 } };
    const bus = {
      name: 'lan',
      kind: 'tcp' as const,
      host: server.host,
      port: server.port,
      parity: 'none' as const,
      stopBits: 1,
      ...common,
    };
    const device = { intervalMs: 1000, priority: 5, enabled: true, bus: 'lan' };
    const site = await resolveSite(
      {
        buses: [bus],
        devices: [
          { ...device, name: 'pv1', unit: 1, profile: 'sunspec' },
          { ...device, name: 'grid', unit: 2, profile: 'eastron-sdm630', points: ['W', 'PhVphA', 'TotWhImp', 'Hz'] },
          { ...device, name: 'ghost', unit: 9, profile: 'eastron-sdm630', points: ['W'] },
        ],
      },
      catalogue,
      clock,
      silentLogger(),
    );
    buses = site.buses;
    expect(site.problems).toEqual([]);
    expect(site.targets.map((t) => t.name)).toEqual(['pv1', 'grid', 'ghost']);

    const poller = new Poller(site.targets, {
      clock,
      logger: silentLogger(),
      sink: { append: (batch) => records.push([...batch]) },
    });
    const first = await poller.pollOnce();
    expect(first.failures).toBe(1);
    expect(records).toHaveLength(1);
    const byKey = new Map(
      (records[0] ?? [])
        .filter((r) => r.type === 'reading')
        .map((r) => [`${r.body.device}/${r.body.point}`, [r.body.value, r.body.unit]]),
    );
    expect(byKey.get('pv1/W')).toEqual([4321, 'W']);
    expect(byKey.get('pv1/A')).toEqual([18750, 'mA']);
    expect(byKey.get('pv1/PhVphA')).toEqual([231400, 'mV']);
    expect(byKey.get('pv1/Hz')).toEqual([50020, 'mHz']);
    expect(byKey.get('pv1/WH')).toEqual([1234567, 'Wh']);
    // Not implemented in the bank: no reading at all, never a number.
    expect(byKey.has('pv1/PhVphB')).toBe(false);
    expect(byKey.get('grid/W')).toEqual([-1500, 'W']);
    expect(byKey.get('grid/PhVphA')).toEqual([229900, 'mV']);
    expect(byKey.get('grid/Hz')).toEqual([49980, 'mHz']);
    expect(byKey.has('ghost/W')).toBe(false);
    const events = (records[0] ?? []).filter((r) => r.type === 'event');
    expect(events.map((e) => [e.body.source, e.body.kind])).toEqual([['ghost', 'device-offline']]);

    const status = new Map(poller.status().map((s) => [s.name, s]));
    expect(status.get('pv1')?.state).toBe('online');
    expect(status.get('ghost')?.state).toBe('offline');
    expect(status.get('ghost')?.lastError).toMatch(/unit 9/);

    // The ghost is in back-off: the next cycle sends it nothing, and the others still answer.
    const ghostBefore = server.stats().byUnit.get(9) ?? 0;
    const pvBefore = server.stats().byUnit.get(1) ?? 0;
    const second = await poller.pollOnce();
    expect(second.failures).toBe(1);
    expect(server.stats().byUnit.get(9) ?? 0).toBe(ghostBefore);
    expect(server.stats().byUnit.get(1) ?? 0).toBeGreaterThan(pvBefore);
    const lan = buses.get('lan') as ModbusBus & { stats(): { refusedBackoff: number } };
    expect(lan.stats().refusedBackoff).toBeGreaterThanOrEqual(1);
    // The latest values keep the time they were read.
    const latest = poller.latest('pv1').get('W');
    expect(latest?.value).toBe(4321);
    expect(typeof latest?.t).toBe('number');
  });

  it('appends a cycle to a real ledger in one transaction', async () => {
    const key = generateKeyPair();
    const { ledger, store } = openWritableLedger({
      path: join(dir, 'ledger.db'),
      signer: signerFromPrivateKey(key.privateKey, key.address),
      clock: systemClock(),
      chainId: 1337,
      sealEveryRecords: 1000,
      sealEverySeconds: 10,
    });
    for (const batch of records) ledger.append(batch);
    expect(ledger.lastSeq).toBe(records.flat().length);
    ledger.stop();
    store.close();
  });
});
