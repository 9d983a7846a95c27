import { describe, expect, it } from 'vitest';
import { loadCatalogue } from '../../../../hardware/profile/load.js';
import { defaultProfiles, SimDeviceRegisters } from '../../../../sim/devices/register-map.js';
import type { BatterySnapshot } from '../../../../sim/physics/battery.js';
import type { EvSnapshot } from '../../../../sim/physics/ev.js';
import { SERVICE_YEARS, serviceYears, specificYieldKwhPerKwp } from '../../../../sim/physics/history.js';
import type { LoadSnapshot } from '../../../../sim/physics/load.js';
import type { MeterSnapshot } from '../../../../sim/physics/meter.js';
import type { PvSnapshot } from '../../../../sim/physics/pv.js';
import { exampleSite, SimSite, type SiteDescription } from '../../../../sim/physics/site.js';
import { seedToU32 } from '../../../../sim/random.js';
import { DAY, HOUR } from './helpers.js';

const catalogue = loadCatalogue();

function start(description: SiteDescription = exampleSite()) {
  const site = new SimSite(description);
  const d = site.snapshot().devices;
  return {
    site,
    pv: d.pv as PvSnapshot,
    battery: d.battery as BatterySnapshot,
    office: d.office as LoadSnapshot,
    ev: d.ev as EvSnapshot,
    grid: d['grid-meter'] as MeterSnapshot,
    pvMeter: d['pv-meter'] as MeterSnapshot,
  };
}

describe('installed history', () => {
  it('starts every counter of the example site at a plausible lifetime value, in whole Wh', () => {
    const s = start();
    const seed = seedToU32(exampleSite().seed);
    const years = serviceYears(seed, 'pv');
    expect(years).toBeGreaterThanOrEqual(SERVICE_YEARS[0]);
    expect(years).toBeLessThanOrEqual(SERVICE_YEARS[1]);
    // 10 kWp near Munich: about 1,000 kWh per kWp and year, give or take 15 % for the weather.
    const typical = 10 * specificYieldKwhPerKwp(48.14) * 1000 * years;
    expect(specificYieldKwhPerKwp(48.14)).toBeCloseTo(1028, 0);
    expect(s.pv.lifetimeEnergyWh).toBeGreaterThan(0.85 * typical);
    expect(s.pv.lifetimeEnergyWh).toBeLessThan(1.15 * typical);
    expect(s.pv.lifetimeEnergyWh).toBeGreaterThan(2_000_000);

    // 150-300 cycles a year of 10 kWh; what came out is what went in times the round trip.
    const batteryYears = serviceYears(seed, 'battery');
    expect(s.battery.chargedEnergyWh).toBeGreaterThanOrEqual(10_000 * 150 * batteryYears - 1);
    expect(s.battery.chargedEnergyWh).toBeLessThanOrEqual(10_000 * 300 * batteryYears + 1);
    expect(s.battery.dischargedEnergyWh / s.battery.chargedEnergyWh).toBeCloseTo(0.96 * 0.96, 4);
    expect(s.battery.selfDischargeEnergyWh).toBe(0);

    expect(s.office.energyWh).toBeGreaterThan(10_000_000);
    // The commuter's 20 kWh on 90 % of weekdays: about 4.7 MWh a year.
    const evYears = serviceYears(seed, 'ev');
    expect(s.ev.lifetimeEnergyWh / evYears).toBeGreaterThan(0.85 * 20_000 * 0.9 * 261);
    expect(s.ev.lifetimeEnergyWh / evYears).toBeLessThan(1.15 * 20_000 * 0.9 * 261);

    for (const wh of [
      s.pv.lifetimeEnergyWh,
      s.battery.chargedEnergyWh,
      s.office.energyWh,
      s.ev.lifetimeEnergyWh,
      s.grid.importEnergyWh,
      s.grid.exportEnergyWh,
      s.pvMeter.importEnergyWh,
      s.pvMeter.exportEnergyWh,
    ]) {
      expect(Number.isInteger(wh)).toBe(true);
      expect(wh).toBeGreaterThan(0);
    }
  });

  it('starts meters from what the devices they see exchanged, plus the inverters standby draw', () => {
    const s = start();
    // The production meter exported the inverter's lifetime yield and imported its night-time standby.
    expect(s.pvMeter.exportEnergyWh).toBe(s.pv.lifetimeEnergyWh);
    expect(s.pvMeter.importEnergyWh).toBeCloseTo(0.003 * s.pv.lifetimeEnergyWh, -1);
    // At the connection point, import - export is the devices' lifetime net (and the standby), to rounding.
    const consumed = s.office.energyWh + s.ev.lifetimeEnergyWh + s.battery.chargedEnergyWh;
    const produced = s.pv.lifetimeEnergyWh + s.battery.dischargedEnergyWh;
    const standby = 0.003 * s.pv.lifetimeEnergyWh;
    expect(Math.abs(s.grid.importEnergyWh - s.grid.exportEnergyWh - (consumed - produced + standby))).toBeLessThan(2);
    // Part of the production was used in the building: the meter exported less than was produced.
    expect(s.grid.exportEnergyWh).toBeLessThan(0.7 * produced);
    expect(s.grid.exportEnergyWh).toBeGreaterThan(0.4 * produced);
    expect(s.grid.importEnergyWh).toBeGreaterThan(10_000_000);
  });

  it('is deterministic for a seed, differs for another, and adding a device changes no other history', () => {
    const a = start();
    expect(start().site.snapshot()).toEqual(a.site.snapshot());
    const other = start({ ...exampleSite(), seed: 7 });
    expect(other.pv.lifetimeEnergyWh).not.toBe(a.pv.lifetimeEnergyWh);
    expect(other.battery.chargedEnergyWh).not.toBe(a.battery.chargedEnergyWh);

    const more = exampleSite();
    more.devices = [
      { kind: 'pv-inverter', name: 'carport', params: { dcCapacityWp: 5000, acRatingW: 5000 } },
      ...more.devices,
    ];
    const b = start(more);
    for (const name of ['pv', 'battery', 'office', 'ev', 'grid-meter', 'pv-meter']) {
      expect(b.site.snapshot().devices[name]).toEqual(a.site.snapshot().devices[name]);
    }
    expect((b.site.snapshot().devices.carport as PvSnapshot).lifetimeEnergyWh).toBeGreaterThan(1_000_000);
  });

  it('keeps the counters a description gives, 0 included', () => {
    const d = exampleSite();
    d.devices = d.devices.map((dev) => {
      if (dev.kind === 'pv-inverter') return { ...dev, params: { ...dev.params, initialEnergyWh: 0 } };
      if (dev.kind === 'battery') return { ...dev, params: { ...dev.params, initialChargedWh: 1000 } };
      if (dev.name === 'grid-meter' && dev.kind === 'meter') {
        return { ...dev, params: { ...dev.params, initialImportWh: 5, initialExportWh: 6 } };
      }
      return dev;
    });
    const s = start(d);
    expect(s.pv.lifetimeEnergyWh).toBe(0);
    expect(s.battery.chargedEnergyWh).toBe(1000);
    // Only the counter left out is filled in.
    expect(s.battery.dischargedEnergyWh).toBeGreaterThan(1_000_000);
    expect(s.grid.importEnergyWh).toBe(5);
    expect(s.grid.exportEnergyWh).toBe(6);
    // A production meter seeing an inverter with no history starts at 0 as well.
    expect(s.pvMeter.exportEnergyWh).toBe(0);
    expect(s.pvMeter.importEnergyWh).toBe(0);
  });

  it('counters advance with the physics from where the history left them', () => {
    const s = start();
    const before = { pv: s.pv.lifetimeEnergyWh, pvExport: s.pvMeter.exportEnergyWh, grid: s.grid.importEnergyWh };
    s.site.step(s.site.startMs + DAY);
    const d = s.site.snapshot().devices;
    const pv = d.pv as PvSnapshot;
    const pvMeter = d['pv-meter'] as MeterSnapshot;
    const grid = d['grid-meter'] as MeterSnapshot;
    // A June day in Munich: tens of kWh from 10 kWp.
    expect(pv.lifetimeEnergyWh - before.pv).toBeGreaterThan(20_000);
    expect(pv.lifetimeEnergyWh - before.pv).toBeLessThan(90_000);
    expect(pvMeter.exportEnergyWh - before.pvExport).toBeCloseTo(pv.lifetimeEnergyWh - before.pv, 6);
    expect(grid.importEnergyWh).toBeGreaterThan(before.grid);
  });

  it('leaves a broken description to the model to report', () => {
    const d = exampleSite();
    d.devices = d.devices.map((dev) =>
      dev.kind === 'pv-inverter' ? { ...dev, params: { ...dev.params, dcCapacityWp: -1 } } : dev,
    );
    expect(() => new SimSite(d)).toThrow(/dcCapacityWp/);
  });

  it('a fresh site serves WH and TotWhImp as numbers, not as "not implemented" (acc32 0)', () => {
    const description = exampleSite();
    const site = new SimSite(description);
    // Midnight: nothing has been produced since the start, so only the history makes the counters non-zero.
    const registers = (name: string, profiles: string[]) => {
      const r = new SimDeviceRegisters({ site, name, profiles: profiles.map((id) => catalogue.get(id)), description });
      r.updateFromSnapshot(site.snapshot());
      return r;
    };
    const pv = registers('pv', defaultProfiles('pv-inverter', 'tcp'));
    expect(pv.value('sunspec-103.WH')).toBe((site.snapshot().devices.pv as PvSnapshot).lifetimeEnergyWh);
    const battery = registers('battery', defaultProfiles('battery', 'tcp'));
    expect(battery.value('sunspec-103.WH')).toBeGreaterThan(1_000_000);
    const meter = registers('pv-meter', ['sunspec-1', 'sunspec-203']);
    expect(meter.value('sunspec-203.TotWhImp')).toBeGreaterThan(0);
    expect(meter.value('sunspec-203.TotWhExp')).toBeGreaterThan(1_000_000);
    site.step(site.startMs + 13 * HOUR);
    meter.updateFromSnapshot(site.snapshot());
    expect(meter.value('sunspec-203.TotWhExp')).toBe(
      Math.round((site.snapshot().devices['pv-meter'] as MeterSnapshot).exportEnergyWh),
    );
  });

  it('an accumulator rolls over at 2^32 instead of sticking at its largest value', () => {
    const description = exampleSite();
    description.devices = description.devices.map((dev) =>
      dev.kind === 'pv-inverter' ? { ...dev, params: { ...dev.params, initialEnergyWh: 2 ** 32 + 5 } } : dev,
    );
    const site = new SimSite(description);
    const r = new SimDeviceRegisters({
      site,
      name: 'pv',
      profiles: defaultProfiles('pv-inverter', 'tcp').map((id) => catalogue.get(id)),
      description,
    });
    r.updateFromSnapshot(site.snapshot());
    expect(r.value('sunspec-103.WH')).toBe(5);
  });
});
