/** SunSpec discovery over Modbus TCP against simulated devices with the marker in each of the usual places. */
import { afterEach, describe, expect, it } from 'vitest';
import { openModbusBus } from '../../hardware/modbus/client.js';
import { discoverSunSpec, SunSpecNotFoundError } from '../../hardware/modbus/discovery.js';
import { ModbusError } from '../../hardware/modbus/types.js';
import { ArrayRegisterBank, type RegisterBank } from '../../sim/modbus/bank.js';
import { startModbusTcpServer } from '../../sim/modbus/tcp-server.js';
import { fakeClock, sunspecBank } from './modbus-helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function device(bank: RegisterBank, faults: Parameters<typeof startModbusTcpServer>[0]['faults'] = []) {
  const server = await startModbusTcpServer({ units: new Map([[1, bank]]), faults });
  cleanups.push(() => server.close());
  const bus = openModbusBus(
    { kind: 'tcp', name: 'pv', host: server.host, port: server.port, timeoutMs: 300, retries: 0 },
    { clock: fakeClock() },
  );
  cleanups.push(() => bus.close());
  return { bus, server };
}

const MODELS: Array<[number, number]> = [
  [1, 66],
  [103, 50],
];

describe('discoverSunSpec', () => {
  it('finds "SunS" at 40000 and walks models 1 and 103 to the end marker', async () => {
    const { bus, server } = await device(sunspecBank(40000, MODELS, true));
    expect(await discoverSunSpec(bus, 1)).toEqual({
      base: 40000,
      models: [
        { id: 1, address: 40002, length: 66 },
        { id: 103, address: 40070, length: 50 },
      ],
      endMarker: true,
      stoppedBy: 'end-marker',
    });
    expect(server.stats().requests).toBe(4); // marker, model 1, model 103, end
  });

  it('finds a device whose map starts at 0', async () => {
    const { bus } = await device(sunspecBank(0, MODELS, true));
    const found = await discoverSunSpec(bus, 1);
    expect(found.base).toBe(0);
    expect(found.models.map((m) => [m.id, m.address])).toEqual([
      [1, 2],
      [103, 70],
    ]);
    expect(found.endMarker).toBe(true);
  });

  it('finds a device whose map starts at 50000', async () => {
    const { bus } = await device(sunspecBank(50000, [[1, 66]], true));
    const found = await discoverSunSpec(bus, 1);
    expect(found).toMatchObject({ base: 50000, models: [{ id: 1, address: 50002, length: 66 }], endMarker: true });
  });

  it('stops at an illegal-address exception when the device has no end marker', async () => {
    const { bus } = await device(sunspecBank(40000, MODELS, false));
    const found = await discoverSunSpec(bus, 1);
    expect(found.models.map((m) => m.id)).toEqual([1, 103]);
    expect(found).toMatchObject({ endMarker: false, stoppedBy: 'illegal-address' });
  });

  it('accepts an end marker whose L register is not mapped', async () => {
    const values = [0x5375, 0x6e53, 1, 2, 0, 0, 0xffff];
    const { bus } = await device(new ArrayRegisterBank({ holding: [{ start: 40000, values }] }));
    const found = await discoverSunSpec(bus, 1);
    expect(found).toMatchObject({ models: [{ id: 1, address: 40002, length: 2 }], endMarker: true });
  });

  it('stops after maxModels on a chain that never ends', async () => {
    const models: Array<[number, number]> = Array.from({ length: 10 }, (_, i) => [i + 1, 0]);
    const { bus } = await device(sunspecBank(40000, models, false));
    const found = await discoverSunSpec(bus, 1, { maxModels: 4 });
    expect(found.models.map((m) => m.id)).toEqual([1, 2, 3, 4]);
    expect(found).toMatchObject({ endMarker: false, stoppedBy: 'max-models' });
  });

  it('uses only the bases it is given', async () => {
    const { bus, server } = await device(sunspecBank(40000, MODELS, true));
    await expect(discoverSunSpec(bus, 1, { bases: [0] })).rejects.toBeInstanceOf(SunSpecNotFoundError);
    expect(server.stats().requests).toBe(1);
  });

  it('says clearly when a device is not SunSpec, naming every address tried', async () => {
    const bank = new ArrayRegisterBank({ holding: [{ start: 0, values: [1, 2, 3] }] });
    const { bus } = await device(bank);
    const err = await discoverSunSpec(bus, 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SunSpecNotFoundError);
    const notFound = err as SunSpecNotFoundError;
    expect(notFound.tried).toEqual([
      { address: 40000, found: 'exception 2' },
      { address: 0, found: '0x0001 0x0002' },
      { address: 50000, found: 'exception 2' },
    ]);
    expect(notFound.message).toContain('bus "pv" unit 1: not a SunSpec device: no "SunS" marker');
    expect(notFound.message).toContain('40000 (exception 2), 0 (0x0001 0x0002), 50000 (exception 2)');
    expect(notFound.message).toMatch(/device-specific profile/);
  });

  it('a device that does not answer is a timeout, not "not SunSpec"', async () => {
    const { bus } = await device(sunspecBank(40000, MODELS, true), [{ kind: 'no-answer' }]);
    const err = await discoverSunSpec(bus, 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModbusError);
    expect((err as ModbusError).kind).toBe('timeout');
  });
});
