/**
 * Setpoints against the simulated PV inverter (SunSpec 123 WMaxLimPct with a revert timer): written with read-back,
 * renewed before the timer runs out, and every refused or failed write recorded as a ledger event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../agent/clock.js';
import type { NewRecord } from '../../agent/ledger/records.js';
import { silentLogger } from '../../agent/logger.js';
import { SetpointKeeper } from '../../agent/poll/setpoints.js';
import { openModbusBus } from '../../hardware/modbus/client.js';
import { discoverSunSpec } from '../../hardware/modbus/discovery.js';
import type { ModbusBus, PlacedPoint } from '../../hardware/modbus/types.js';
import { controlFor, writeSetpoint } from '../../hardware/modbus/writer.js';
import { loadCatalogue } from '../../hardware/profile/load.js';
import { placeProfile } from '../../hardware/profile/place.js';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite } from '../../sim/site-file.js';

describe('setpoint keeper against the simulated inverter', () => {
  let sim: SimulatedSite;
  let bus: ModbusBus;
  let placed: PlacedPoint[];

  beforeAll(async () => {
    sim = await startSimulatedSite(defaultSimSite(), { speed: 1 });
    const lan = sim.endpoints.find((e) => e.kind === 'tcp');
    if (lan?.kind !== 'tcp') throw new Error('the default site has no TCP server');
    bus = openModbusBus({ name: 'lan', kind: 'tcp', host: lan.host, port: lan.port }, { clock: systemClock() });
    const catalogue = loadCatalogue();
    const layout = await discoverSunSpec(bus, 1);
    placed = layout.models.flatMap((m) => {
      const profile = catalogue.bySunspecModel(m.id);
      return profile === undefined ? [] : placeProfile(profile, m.address);
    });
  });

  afterAll(async () => {
    await bus?.close();
    await sim?.close();
  });

  it('writes with read-back, renews before the revert timer, and records refused writes', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const events: NewRecord[] = [];
    const keeper = new SetpointKeeper({
      clock,
      logger: silentLogger(),
      sink: { append: (records) => events.push(...records) },
      revertSeconds: 30,
    });
    const point = placed.find((p) => p.point.name === 'WMaxLimPct');
    if (point === undefined) throw new Error('model 123 WMaxLimPct not found');
    const target = { device: 'pv', bus, unit: 1, control: controlFor(point, placed) };
    expect(target.control.revertTimeout?.point.name).toBe('WMaxLimPct_RvrtTms');
    expect(target.control.enable?.point.name).toBe('WMaxLim_Ena');

    const first = await keeper.set(target, 40);
    expect(first?.ok).toBe(true);
    expect(first?.readBack).toBe(40);
    const registers = sim.devices.get('pv')?.registers;
    expect(registers?.value('WMaxLimPct_RvrtTms')).toBe(30);
    expect(registers?.value('WMaxLim_Ena')).toBe(1);
    expect(events).toEqual([]);

    // Renewal at half the revert timeout: the same value goes out again.
    const sentBefore = (bus as ModbusBus & { stats(): { sent: number } }).stats().sent;
    clock.advance(15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect((bus as ModbusBus & { stats(): { sent: number } }).stats().sent).toBeGreaterThan(sentBefore);
    expect(registers?.value('WMaxLimPct')).toBe(40);

    // Outside the profile's range: nothing is sent, the ledger gets an event.
    const refused = await keeper.set(target, 150);
    expect(refused).toBeUndefined();
    expect(events.map((e) => e.body.kind)).toEqual(['setpoint-failed']);
    expect(String(events[0]?.body.message)).toMatch(/WMaxLimPct.*150.*outside its range 0\.\.100/);
    expect(registers?.value('WMaxLimPct')).toBe(40);
    keeper.stop();
  });

  it('writes an Alfen MaxCurrent whose revert point is read-only without touching that point', async () => {
    const profile = loadCatalogue().get('alfen-eve');
    const points = placeProfile(profile, 0);
    const point = points.find((p) => p.point.name === 'MaxCurrent');
    if (point === undefined) throw new Error('alfen-eve MaxCurrent not found');
    const control = controlFor(point, points);
    expect(control.revertTimeout?.point.access).toBe('r');
    const outcome = await writeSetpoint(bus, 3, control, 10, { revertSeconds: 30 });
    expect(outcome.ok).toBe(true);
    expect(outcome.readBack).toBe(10);
    // The charger's own countdown restarts from its validity time once the simulator's physics take the write.
    const registers = sim.devices.get('ev')?.registers;
    for (let i = 0; i < 40 && Number(registers?.value('MaxCurrentValidTime')) === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(Number(registers?.value('MaxCurrentValidTime'))).toBeGreaterThan(30);
  });
});
