/**
 * The simulated site on real sockets and ptys: the default site's devices read over Modbus TCP (a raw request built
 * here, and the agent's own client and SunSpec discovery), the SDM630 grid meter over RTU on a socat pty, a power
 * limit written over TCP that the physics obey, and faults scripted in a site file.
 */
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { HardwareClock } from '../../hardware/clock.js';
import { decodeBlock, encodeValue } from '../../hardware/codec.js';
import { type ModbusBusOptions, openModbusBus } from '../../hardware/modbus/client.js';
import { discoverSunSpec } from '../../hardware/modbus/discovery.js';
import { ModbusError } from '../../hardware/modbus/types.js';
import { loadCatalogue } from '../../hardware/profile/load.js';
import { placeProfile } from '../../hardware/profile/place.js';
import { buildMbapFrame, buildRequestPdu, parseResponsePdu } from '../../sim/modbus/pdu.js';
import type { MeterSnapshot } from '../../sim/physics/meter.js';
import type { PvSnapshot } from '../../sim/physics/pv.js';
import { socatAvailable } from '../../sim/pty.js';
import { type SimEndpoint, type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite, parseSiteText } from '../../sim/site-file.js';
import { describeIfTool } from './modbus-helpers.js';

const HOUR = 3_600_000;
const catalogue = loadCatalogue();
const describeWithSocat = describeIfTool('socat', 'socat', socatAvailable());

/** A wall clock that stands still unless advanced: the physics move only through stepPhysics. */
function stillClock(start = Date.UTC(2030, 0, 1)): HardwareClock {
  return {
    now: () => start,
    setTimeout: () => ({ cancel() {} }),
    setInterval: () => ({ cancel() {} }),
  };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(config = defaultSimSite()): Promise<SimulatedSite> {
  const sim = await startSimulatedSite(config, { clock: stillClock(), catalogue });
  cleanups.push(() => sim.close());
  return sim;
}

function tcpEndpoint(sim: SimulatedSite): Extract<SimEndpoint, { kind: 'tcp' }> {
  const endpoint = sim.endpoints.find((e) => e.kind === 'tcp');
  if (endpoint?.kind !== 'tcp') throw new Error('no tcp endpoint');
  return endpoint;
}

function bus(options: ModbusBusOptions) {
  const handle = openModbusBus({ timeoutMs: 1000, retries: 0, ...options } as ModbusBusOptions, {
    clock: stillClock(),
  });
  cleanups.push(() => handle.close());
  return handle;
}

/** One Modbus TCP read, framed by hand: no client library between the test and the server. */
async function rawRead(host: string, port: number, unit: number, start: number, count: number): Promise<number[]> {
  const socket = connect({ host, port });
  cleanups.push(async () => void socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(buildMbapFrame(0x1234, unit, buildRequestPdu({ fn: 3, start, count })));
  let buffer = Buffer.alloc(0);
  const frame = await new Promise<Buffer>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length >= 6 && buffer.length >= 6 + buffer.readUInt16BE(4)) resolve(buffer);
    });
  });
  expect(frame.readUInt16BE(0)).toBe(0x1234);
  expect(frame[6]).toBe(unit);
  const response = parseResponsePdu(frame.subarray(7));
  if (!('values' in response)) throw new Error(`exception ${JSON.stringify(response)}`);
  return response.values;
}

describeWithSocat('the default simulated site', () => {
  it('serves the PV inverter over Modbus TCP: raw frames, discovery and decoded values agree with the physics', async () => {
    const sim = await start();
    sim.stepPhysics(sim.site.startMs + 12 * HOUR);
    const { host, port, units } = tcpEndpoint(sim);
    expect(host).toBe('127.0.0.1');
    expect(units.map((u) => [u.unit, u.device])).toEqual([
      [1, 'pv'],
      [2, 'battery'],
      [3, 'ev'],
      [4, 'pv-meter'],
    ]);
    expect(await rawRead(host, port, 1, 40000, 4)).toEqual([0x5375, 0x6e53, 1, 66]);

    const tcp = bus({ kind: 'tcp', name: 'lan', host, port });
    const layout = await discoverSunSpec(tcp, 1);
    expect(layout).toMatchObject({ base: 40000, endMarker: true });
    expect(layout.models.map((m) => m.id)).toEqual([1, 103, 120, 123]);
    const model = layout.models[1] as { address: number; length: number };
    const points = placeProfile(catalogue.get('sunspec-103'), model.address);
    const words = await tcp.read(1, 3, model.address, model.length + 2);
    const values = decodeBlock({ function: 3, start: model.address, count: model.length + 2, points }, words);
    const pv = sim.site.snapshot().devices.pv as PvSnapshot;
    expect(pv.acPowerW).toBeGreaterThan(1000);
    expect(values.get('W')).toBeCloseTo(pv.acPowerW, -0.5);
    expect(values.get('Hz')).toBeCloseTo(pv.frequencyHz, 2);
    expect(values.get('WH')).toBeCloseTo(pv.lifetimeEnergyWh, -0.5);
  });

  it('serves the SDM630 grid meter over RTU on the pty', async () => {
    const sim = await start();
    sim.stepPhysics(sim.site.startMs + 9 * HOUR);
    const line = sim.endpoints.find((e) => e.kind === 'rtu');
    if (line?.kind !== 'rtu') throw new Error('no rtu endpoint');
    expect(line.units).toEqual([{ unit: 1, device: 'grid-meter', profiles: ['eastron-sdm630'] }]);
    expect(existsSync(line.path)).toBe(true);
    const rtu = bus({ kind: 'rtu', name: 'rs485', path: line.path, baudRate: line.baudRate });
    const points = placeProfile(catalogue.get('eastron-sdm630'), 0).filter((p) => p.address < 80);
    const values = decodeBlock({ function: 4, start: 0, count: 80, points }, await rtu.read(1, 4, 0, 80));
    const meter = sim.site.snapshot().devices['grid-meter'] as MeterSnapshot;
    expect(values.get('W') as number).toBeCloseTo(meter.activePowerW, 1);
    expect(values.get('PhVphB') as number).toBeCloseTo(meter.phaseVoltageV[1], 3);
    // Counters start at the installed history (tens of MWh): the SDM630's float32 kWh resolves them to ~2^-24.
    expect(meter.importEnergyWh).toBeGreaterThan(1_000_000);
    const resolution = meter.importEnergyWh * 2 ** -23;
    expect(Math.abs((values.get('TotWhImp') as number) - meter.importEnergyWh)).toBeLessThan(1 + resolution);
  });

  it('a WMaxLimPct written over TCP lowers the PV power in the next snapshot; an impossible one is refused', async () => {
    const sim = await start();
    sim.stepPhysics(sim.site.startMs + 12 * HOUR);
    const { host, port } = tcpEndpoint(sim);
    const tcp = bus({ kind: 'tcp', name: 'lan', host, port });
    const registers = sim.devices.get('pv')?.registers;
    if (registers === undefined) throw new Error('pv is not served');
    const before = (sim.site.snapshot().devices.pv as PvSnapshot).acPowerW;
    expect(before).toBeGreaterThan(1000);

    const limit = registers.point('WMaxLimPct');
    const [sfWord] = await tcp.read(1, 3, limit.sfAddress as number, 1);
    const sf = ((sfWord as number) << 16) >> 16;
    await tcp.write(1, limit.address, encodeValue(limit.point, 10, sf));
    await tcp.write(1, registers.point('WMaxLim_Ena').address, [1]);
    sim.stepPhysics(sim.site.time + 1000);
    const after = sim.site.snapshot().devices.pv as PvSnapshot;
    expect(after.powerLimit).toMatchObject({ value: { pct: 10, enabled: true }, active: true });
    expect(after.acPowerW).toBeLessThanOrEqual(900 + 1e-6);
    expect(after.acPowerW).toBeLessThan(before);
    const w = registers.point('sunspec-103.W');
    expect((await tcp.read(1, 3, w.address, 1))[0]).toBeLessThanOrEqual(900);

    const refused = await tcp.write(1, limit.address, encodeValue(limit.point, 120, sf)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ModbusError);
    expect((refused as ModbusError).details.exceptionCode).toBe(3);
  });

  it('prints the agent config for exactly these endpoints, and starts the signing meter on its pty', async () => {
    const sim = await start();
    const lan = tcpEndpoint(sim);
    const line = sim.endpoints.find((e) => e.kind === 'rtu') as Extract<SimEndpoint, { kind: 'rtu' }>;
    const config = parse(sim.agentConfig()) as {
      buses: Array<Record<string, unknown>>;
      devices: Array<Record<string, unknown>>;
      meters: Array<Record<string, unknown>>;
    };
    expect(config.buses).toEqual([
      { name: 'lan', kind: 'tcp', host: '127.0.0.1', port: lan.port },
      { name: 'rs485', kind: 'rtu', path: line.path, baudRate: 9600 },
    ]);
    expect(config.devices).toEqual([
      { name: 'pv', bus: 'lan', unit: 1, profile: 'sunspec', base: 40000 },
      { name: 'battery', bus: 'lan', unit: 2, profile: 'sunspec', base: 40000 },
      { name: 'ev', bus: 'lan', unit: 3, profile: 'alfen-eve' },
      { name: 'pv-meter', bus: 'lan', unit: 4, profile: 'sunspec', base: 40000 },
      { name: 'grid-meter', bus: 'rs485', unit: 1, profile: 'eastron-sdm630' },
    ]);
    const [meter] = sim.signingMeters;
    expect(config.meters).toEqual([
      { name: 'grid-signer', path: meter?.path, baudRate: 115200, address: meter?.address },
    ]);
    expect(existsSync(meter?.path as string)).toBe(true);
    expect(meter?.peer.address).toBe(meter?.address);
  });
});

describe('a site file with scripted faults (TCP only)', () => {
  const SITE = `
name: faulty
start: 2024-06-17T00:00:00+02:00
servers: [ { name: lan, kind: tcp } ]
devices:
  - { kind: pv-inverter, name: pv, server: lan }
  - { kind: meter, name: m, params: { sees: [pv] }, server: lan }
faults:
  - { device: pv, kind: missing-end-marker }
  - { device: pv, kind: stuck, point: W, from: 36000 }
  - { device: m, kind: no-answer, from: 3600, until: 7200 }
`;

  it('discovery stops at the missing end marker, W freezes, the meter is silent in its window', async () => {
    const sim = await start(parseSiteText(SITE, 'faulty.yaml'));
    const startMs = sim.site.startMs;
    const { host, port, units } = tcpEndpoint(sim);
    expect(units.map((u) => [u.unit, u.device, u.profiles.join(' ')])).toEqual([
      [1, 'pv', 'sunspec-1 sunspec-103 sunspec-120 sunspec-123'],
      [2, 'm', 'sunspec-1 sunspec-203'],
    ]);
    const tcp = bus({ kind: 'tcp', name: 'lan', host, port });

    const layout = await discoverSunSpec(tcp, 1);
    expect(layout).toMatchObject({ endMarker: false, stoppedBy: 'illegal-address' });
    expect(layout.models.map((m) => m.id)).toEqual([1, 103, 120, 123]);

    expect(await tcp.read(2, 3, 40000, 2)).toEqual([0x5375, 0x6e53]);
    sim.stepPhysics(startMs + HOUR + 1000);
    const silent = await tcp.read(2, 3, 40000, 2).catch((e: unknown) => e);
    expect(silent).toBeInstanceOf(ModbusError);
    expect((silent as ModbusError).kind).toBe('timeout');
    sim.stepPhysics(startMs + 2 * HOUR);
    const answering = bus({ kind: 'tcp', name: 'lan-2', host, port });
    expect(await answering.read(2, 3, 40000, 2)).toEqual([0x5375, 0x6e53]);

    const registers = sim.devices.get('pv')?.registers;
    const w = registers?.point('sunspec-103.W');
    if (registers === undefined || w === undefined) throw new Error('pv is not served');
    sim.stepPhysics(startMs + 10 * HOUR);
    const frozen = await answering.read(1, 3, w.address, 1);
    sim.stepPhysics(startMs + 13 * HOUR);
    expect(registers.read(3, w.address, 1)).not.toEqual(frozen);
    expect(await answering.read(1, 3, w.address, 1)).toEqual(frozen);
  });
});
