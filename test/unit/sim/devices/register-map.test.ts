import { describe, expect, it } from 'vitest';
import { decodeBlock, encodeValue, registerCount } from '../../../../hardware/codec.js';
import type { PlacedPoint } from '../../../../hardware/modbus/types.js';
import { loadCatalogue } from '../../../../hardware/profile/load.js';
import { placeProfile } from '../../../../hardware/profile/place.js';
import type { DecodedValue } from '../../../../hardware/profile/types.js';
import {
  defaultProfiles,
  profileMismatch,
  ratedPowerW,
  SimDeviceRegisters,
} from '../../../../sim/devices/register-map.js';
import type { BatterySnapshot } from '../../../../sim/physics/battery.js';
import type { EvSnapshot } from '../../../../sim/physics/ev.js';
import type { MeterSnapshot } from '../../../../sim/physics/meter.js';
import type { PvSnapshot } from '../../../../sim/physics/pv.js';
import { exampleSite, SimSite } from '../../../../sim/physics/site.js';

const catalogue = loadCatalogue();
const HOUR = 3_600_000;

/** The example site at local noon on a June Monday, when the PV produces. */
function noonSite() {
  const description = exampleSite();
  const site = new SimSite(description);
  site.step(site.startMs + 12 * HOUR);
  return { site, description };
}

function device(name: string, profiles: string[], base?: number) {
  const { site, description } = noonSite();
  const registers = new SimDeviceRegisters({
    site,
    name,
    profiles: profiles.map((id) => catalogue.get(id)),
    description,
    ...(base === undefined ? {} : { base }),
  });
  return { site, registers };
}

function words(registers: SimDeviceRegisters, fn: 3 | 4, start: number, count: number): number[] {
  const answer = registers.read(fn, start, count);
  if (!Array.isArray(answer)) throw new Error(`read ${start}+${count} answered exception ${answer.exception}`);
  return answer;
}

/** Walks the SunSpec chain as a client does: "SunS", then ID/L pairs until 0xFFFF. */
function walk(registers: SimDeviceRegisters, base: number) {
  expect(words(registers, 3, base, 2)).toEqual([0x5375, 0x6e53]);
  const models: Array<{ id: number; address: number; length: number }> = [];
  let address = base + 2;
  for (;;) {
    const [id, length] = words(registers, 3, address, 2) as [number, number];
    if (id === 0xffff) {
      expect(length).toBe(0);
      return { models, end: address };
    }
    models.push({ id, address, length });
    address += 2 + length;
  }
}

/** Decodes a whole SunSpec model the way the agent does: one read, scale factors from the same read. */
function decodeModel(registers: SimDeviceRegisters, profileId: string): Map<string, DecodedValue> {
  const profile = catalogue.get(profileId);
  const model = registers.layout.sunspec?.models.find((m) => m.profileId === profileId);
  if (model === undefined) throw new Error(`no model ${profileId}`);
  const points = placeProfile(profile, model.address);
  const block = { function: 3 as const, start: model.address, count: model.length + 2, points };
  return decodeBlock(block, words(registers, 3, model.address, model.length + 2));
}

/** Registers of a write of `value` (engineering units) to a point, scaled with the device's own scale factor. */
function encodeFor(registers: SimDeviceRegisters, key: string, value: number): { start: number; values: number[] } {
  const p: PlacedPoint = registers.point(key);
  const sf = p.point.sf === undefined ? undefined : registers.scaleFactor(`${p.profileId}.${p.point.sf}`);
  return { start: p.address, values: encodeValue(p.point, value, sf) };
}

function write(registers: SimDeviceRegisters, key: string, value: number) {
  const { start, values } = encodeFor(registers, key, value);
  return registers.write(start, values);
}

describe('SunSpec layout', () => {
  it('puts SunS at 40000, chains the models in order and ends with 0xFFFF 0', () => {
    const { registers } = device('pv', ['sunspec-1', 'sunspec-103', 'sunspec-120', 'sunspec-123']);
    const { models, end } = walk(registers, 40000);
    expect(models).toEqual([
      { id: 1, address: 40002, length: 66 },
      { id: 103, address: 40070, length: 50 },
      { id: 120, address: 40122, length: 26 },
      { id: 123, address: 40150, length: 24 },
    ]);
    expect(registers.layout.sunspec?.endAddress).toBe(end);
    // Past the end marker nothing is mapped: a client that reads on gets "illegal data address".
    expect(registers.read(3, end + 2, 1)).toEqual({ exception: 2 });
  });

  it('honours another base', () => {
    const { registers } = device('pv', ['sunspec-1', 'sunspec-103'], 50000);
    expect(walk(registers, 50000).models.map((m) => m.id)).toEqual([1, 103]);
    expect(registers.read(3, 40000, 2)).toEqual({ exception: 2 });
  });

  it('fills the common model', () => {
    const { registers } = device('pv', ['sunspec-1', 'sunspec-103']);
    const common = decodeModel(registers, 'sunspec-1');
    expect(common.get('Mn')).toBe('mgmc-sim');
    expect(common.get('Md')).toBe('sim-pv-inverter');
    expect(common.get('SN')).toBe('SIM-pv');
    expect(common.get('Vr')).toBe('1.0.0');
    expect(common.get('DA')).toBe(1);
  });

  it('refuses a chain that does not start with the common model, and profiles of another kind', () => {
    expect(() => device('pv', ['sunspec-103'])).toThrow(/start with the common model; put sunspec-1 before/);
    expect(() => device('battery', ['sunspec-1', 'sunspec-123'])).toThrow(/a battery takes its setpoints/);
    expect(profileMismatch('ev-charger', catalogue.get('sunspec-203'))).toBeUndefined();
  });
});

describe('values', () => {
  it('the inverter model decodes to the snapshot with fixed scale factors', () => {
    const { site, registers } = device('pv', defaultProfiles('pv-inverter', 'tcp'));
    const pv = site.snapshot().devices.pv as PvSnapshot;
    expect(pv.acPowerW).toBeGreaterThan(1000);
    expect(registers.scaleFactor('W_SF')).toBe(0);
    expect(registers.scaleFactor('A_SF')).toBe(-2);
    expect(registers.scaleFactor('V_SF')).toBe(-1);
    expect(registers.scaleFactor('Hz_SF')).toBe(-2);
    expect(registers.scaleFactor('WH_SF')).toBe(0);
    const m = decodeModel(registers, 'sunspec-103');
    expect(m.get('W')).toBeCloseTo(pv.acPowerW, -0.5);
    expect(m.get('A')).toBeCloseTo(pv.phaseCurrentA[0] + pv.phaseCurrentA[1] + pv.phaseCurrentA[2], 2);
    expect(m.get('PhVphA')).toBeCloseTo(pv.phaseVoltageV[0], 1);
    expect(m.get('Hz')).toBeCloseTo(pv.frequencyHz, 2);
    expect(m.get('WH')).toBeCloseTo(pv.lifetimeEnergyWh, -0.5);
    expect(m.get('DCV')).toBeCloseTo(pv.dcVoltageV, 1);
    expect(m.get('St')).toBe(pv.status === 'mppt' ? 4 : 5);
    // Temperatures are not modelled: they read "not implemented".
    expect(m.get('TmpCab')).toBeNull();
    expect(m.get('StVnd')).toBeNull();
    const nameplate = decodeModel(registers, 'sunspec-120');
    expect(nameplate.get('WRtg')).toBe(9000);
    expect(nameplate.get('DERTyp')).toBe(4);
  });

  it('follows the physics on every update', () => {
    const { site, registers } = device('pv', defaultProfiles('pv-inverter', 'tcp'));
    site.step(site.time + 3 * HOUR);
    registers.updateFromSnapshot(site.snapshot());
    const pv = site.snapshot().devices.pv as PvSnapshot;
    expect(registers.value('sunspec-103.W')).toBeCloseTo(pv.acPowerW, -0.5);
    expect(registers.value('sunspec-103.WH')).toBeCloseTo(pv.lifetimeEnergyWh, -0.5);
  });

  it('a SunSpec meter shows import positive, and the battery its state of charge', () => {
    const { site, registers } = device('pv-meter', ['sunspec-1', 'sunspec-203']);
    const meter = site.snapshot().devices['pv-meter'] as MeterSnapshot;
    const m = decodeModel(registers, 'sunspec-203');
    expect(meter.activePowerW).toBeLessThan(0);
    expect(m.get('W')).toBeCloseTo(meter.activePowerW, -0.5);
    expect(m.get('WphB')).toBeCloseTo(meter.phasePowerW[1], -0.5);
    expect(m.get('TotWhExp')).toBeCloseTo(meter.exportEnergyWh, -0.5);
    expect(m.get('PF')).toBeCloseTo(meter.powerFactor * 100, 0);
    expect(m.get('TotWhExpPhA')).toBeNull();

    const bat = device('battery', defaultProfiles('battery', 'tcp'));
    const b = bat.site.snapshot().devices.battery as BatterySnapshot;
    const storage = decodeModel(bat.registers, 'sunspec-124');
    expect(storage.get('ChaState')).toBeCloseTo(b.socPct, 1);
    expect(storage.get('WChaMax')).toBe(5000);
    expect(storage.get('ChaSt')).toBe(6);
    expect(decodeModel(bat.registers, 'sunspec-120').get('WHRtg')).toBe(10_000);
  });

  it('the SDM630 serves float32 input registers', () => {
    const { site, registers } = device('grid-meter', ['eastron-sdm630']);
    const meter = site.snapshot().devices['grid-meter'] as MeterSnapshot;
    const profile = catalogue.get('eastron-sdm630');
    const points = placeProfile(profile, 0).filter((p) => p.address < 80);
    const m = decodeBlock({ function: 4, start: 0, count: 80, points }, words(registers, 4, 0, 80));
    expect(m.get('W') as number).toBeCloseTo(meter.activePowerW, 1);
    expect(m.get('PhVphA') as number).toBeCloseTo(meter.phaseVoltageV[0], 3);
    expect(m.get('Hz') as number).toBeCloseTo(meter.frequencyHz, 4);
    // A float32 in kWh, as on the real meter: exact to its 24-bit mantissa, not to the Wh, at tens of MWh.
    expect(meter.importEnergyWh).toBeGreaterThan(1_000_000);
    expect(m.get('TotWhImp') as number).toBeCloseTo(Math.fround(meter.importEnergyWh / 1000) * 1000, 3);
    // No holding registers on this meter.
    expect(registers.read(3, 0, 2)).toEqual({ exception: 2 });
    // Unused registers inside a block read as 0 (the meter answers through them); reactive energy is not modelled.
    expect(words(registers, 4, 36, 2)).toEqual([0, 0]);
    expect(registers.value('TotVArhImp')).toBeNull();
  });

  it('scale factors get coarser when the rating would not fit', () => {
    const description = exampleSite();
    const pv = description.devices.find((d) => d.name === 'pv');
    if (pv?.kind !== 'pv-inverter') throw new Error('example changed');
    pv.params = { ...pv.params, acRatingW: 60_000, dcCapacityWp: 66_000 };
    const site = new SimSite(description);
    site.step(site.startMs + 12 * HOUR);
    const registers = new SimDeviceRegisters({
      site,
      name: 'pv',
      profiles: ['sunspec-1', 'sunspec-103'].map((id) => catalogue.get(id)),
      description,
    });
    expect(ratedPowerW(description, 'pv')).toBe(60_000);
    expect(registers.scaleFactor('W_SF')).toBe(1);
    const snapshot = site.snapshot().devices.pv as PvSnapshot;
    expect(Math.abs((registers.value('W') as number) - snapshot.acPowerW)).toBeLessThanOrEqual(5);
  });
});

describe('writes', () => {
  it('WMaxLimPct with WMaxLim_Ena limits the PV power, and the limit reverts', () => {
    const { site, registers } = device('pv', defaultProfiles('pv-inverter', 'tcp'));
    const before = (site.snapshot().devices.pv as PvSnapshot).acPowerW;
    expect(before).toBeGreaterThan(2000);
    expect(write(registers, 'WMaxLimPct_RvrtTms', 60)).toBeUndefined();
    expect(write(registers, 'WMaxLimPct', 20)).toBeUndefined();
    expect(write(registers, 'WMaxLim_Ena', 1)).toBeUndefined();
    const limited = site.snapshot().devices.pv as PvSnapshot;
    expect(limited.powerLimit).toMatchObject({ value: { pct: 20, enabled: true }, active: true, remainingS: 60 });
    expect(limited.acPowerW).toBeLessThanOrEqual(0.2 * 9000 + 1e-6);
    registers.updateFromSnapshot(site.snapshot());
    expect(registers.value('W')).toBeLessThanOrEqual(1800);
    expect(registers.value('St')).toBe(5);

    site.step(site.time + 61_000);
    registers.updateFromSnapshot(site.snapshot());
    // The device clears the enable when the revert timer runs out; the written value stays for read-back.
    expect(registers.value('WMaxLim_Ena')).toBe(0);
    expect(registers.value('WMaxLimPct')).toBe(20);
    expect((site.snapshot().devices.pv as PvSnapshot).acPowerW).toBeGreaterThan(1800);
  });

  it('refuses out-of-range and partial writes with exception 3, and read-only registers with 2', () => {
    const { site, registers } = device('pv', defaultProfiles('pv-inverter', 'tcp'));
    const p = registers.point('WMaxLimPct');
    const raw150 = Math.round(150 / 10 ** registers.scaleFactor('WMaxLimPct_SF'));
    expect(registers.write(p.address, [raw150])).toEqual({ exception: 3 });
    // Rolled back: the register still holds the default.
    expect(registers.value('WMaxLimPct')).toBe(100);
    expect((site.snapshot().devices.pv as PvSnapshot).powerLimit).toBeNull();
    expect(write(registers, 'OutPFSet', 0)).toEqual({ exception: 3 });
    expect(registers.write(registers.point('sunspec-103.W').address, [0])).toEqual({ exception: 2 });

    const ev = device('ev', ['alfen-eve']);
    const max = ev.registers.point('MaxCurrent');
    // Half a float32: the station refuses it.
    expect(ev.registers.write(max.address, [0x4120])).toEqual({ exception: 3 });
    expect(write(ev.registers, 'MaxCurrent', 40)).toEqual({ exception: 3 });
    expect(write(ev.registers, 'ChargePhases', 2)).toEqual({ exception: 3 });
    expect(write(ev.registers, 'ChargePhases', 1)).toBeUndefined();
  });

  it('SunSpec 124 rates, the Victron ESS setpoint and the Alfen current reach the physics', () => {
    const bat = device('battery', defaultProfiles('battery', 'tcp'));
    expect(write(bat.registers, 'InWRte', -40)).toBeUndefined();
    expect(write(bat.registers, 'StorCtl_Mod', 1)).toBeUndefined();
    const b = bat.site.snapshot().devices.battery as BatterySnapshot;
    expect(b.rateSetpoint?.value).toEqual({ storCtlMod: 1, inWRtePct: -40, outWRtePct: 100 });
    expect(b.powerW).toBeCloseTo(2000, 6);
    expect(write(bat.registers, 'OutWRte', 150)).toEqual({ exception: 3 });

    const victron = device('battery', ['victron-vebus']);
    expect(write(victron.registers, 'EssWphA', -3000)).toBeUndefined();
    const v = victron.site.snapshot().devices.battery as BatterySnapshot;
    expect(v.powerSetpoint).toMatchObject({ value: 3000, active: true, remainingS: 60 });
    victron.registers.updateFromSnapshot(victron.site.snapshot());
    expect(victron.registers.value('Soc')).toBeCloseTo(v.socPct, 1);
    expect(victron.registers.value('AcInWphA')).toBeCloseTo(-1000, -1);

    const ev = device('ev', ['alfen-eve']);
    expect(write(ev.registers, 'MaxCurrent', 10)).toBeUndefined();
    const e = ev.site.snapshot().devices.ev as EvSnapshot;
    expect(e.limit).toMatchObject({ value: { currentA: 10 }, active: true, remainingS: 60 });
    ev.registers.updateFromSnapshot(ev.site.snapshot());
    expect(ev.registers.value('MaxCurrent')).toBe(10);
    expect(ev.registers.value('SetpointAccountedFor')).toBe(1);
    expect(ev.registers.value('MaxCurrentValidTime')).toBe(60);
    expect(ev.registers.value('W')).toBeCloseTo(e.powerW, 0);
    expect(['A', 'B1', 'B2', 'C2']).toContain(ev.registers.value('Mode3State'));
  });

  it('stores writes to settings without touching the physics', () => {
    const { site, registers } = device('pv', ['sunspec-1', 'sunspec-103', 'sunspec-121']);
    expect(write(registers, 'DA', 7)).toBeUndefined();
    expect(registers.value('DA')).toBe(7);
    expect(write(registers, 'VMax', 250)).toBeUndefined();
    expect(registers.value('VMax')).toBe(250);
    expect((site.snapshot().devices.pv as PvSnapshot).powerLimit).toBeNull();
    const common = registers.point('DA');
    expect(registerCount(common.point)).toBe(1);
  });
});
