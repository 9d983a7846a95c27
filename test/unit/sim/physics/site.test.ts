import { describe, expect, it } from 'vitest';
import type { BatterySnapshot } from '../../../../sim/physics/battery.js';
import type { EvSnapshot } from '../../../../sim/physics/ev.js';
import type { LoadSnapshot } from '../../../../sim/physics/load.js';
import type { MeterSnapshot } from '../../../../sim/physics/meter.js';
import type { PvSnapshot } from '../../../../sim/physics/pv.js';
import { exampleSite, SimSite, type SiteDescription, type SiteSnapshot } from '../../../../sim/physics/site.js';
import { DAY, HOUR } from './helpers.js';

interface Example {
  pv: PvSnapshot;
  battery: BatterySnapshot;
  office: LoadSnapshot;
  ev: EvSnapshot;
  grid: MeterSnapshot;
  pvMeter: MeterSnapshot;
}

function parts(s: SiteSnapshot): Example {
  const d = s.devices;
  return {
    pv: d.pv as PvSnapshot,
    battery: d.battery as BatterySnapshot,
    office: d.office as LoadSnapshot,
    ev: d.ev as EvSnapshot,
    grid: d['grid-meter'] as MeterSnapshot,
    pvMeter: d['pv-meter'] as MeterSnapshot,
  };
}

/** The site's energy counters, Wh. */
function energies(p: Example) {
  return {
    pv: p.pv.lifetimeEnergyWh,
    office: p.office.energyWh,
    ev: p.ev.lifetimeEnergyWh,
    charged: p.battery.chargedEnergyWh,
    discharged: p.battery.dischargedEnergyWh,
    gridImport: p.grid.importEnergyWh,
    gridExport: p.grid.exportEnergyWh,
    pvExport: p.pvMeter.exportEnergyWh,
  };
}
type Energies = ReturnType<typeof energies>;

/** What each counter advanced by since `start`. */
function since(start: Energies, end: Energies): Energies {
  return Object.fromEntries(
    Object.entries(end).map(([k, v]) => [k, v - start[k as keyof Energies]]),
  ) as unknown as Energies;
}

/** A day of the example site with a battery schedule; `each` sees every snapshot. */
function simulateDay(stepMs: number, description = exampleSite(), each?: (s: SiteSnapshot) => void) {
  const site = new SimSite(description);
  const schedule = new Map<number, number>([
    [site.startMs + 9 * HOUR, -5000],
    [site.startMs + 13 * HOUR, 0],
    [site.startMs + 17 * HOUR, 4500],
  ]);
  for (let t = site.startMs + stepMs; t <= site.startMs + DAY; t += stepMs) {
    const w = schedule.get(t - stepMs);
    if (w !== undefined) site.setBatteryPower('battery', { w });
    site.step(t);
    each?.(site.snapshot());
  }
  return site;
}

describe('SimSite', () => {
  it('runs a day at 1 s steps and conserves energy at the grid meter', () => {
    let integralWs = 0;
    let prev: number | undefined;
    let steps = 0;
    let worstPowerMismatch = 0;
    const start = energies(parts(new SimSite(exampleSite()).snapshot()));
    const site = simulateDay(1000, exampleSite(), (s) => {
      const p = parts(s);
      // Load convention: what the building draws.
      const net = p.office.powerW + p.ev.powerW - p.battery.powerW - p.pv.acPowerW;
      worstPowerMismatch = Math.max(worstPowerMismatch, Math.abs(p.grid.activePowerW - net));
      if (prev !== undefined) integralWs += ((prev + net) / 2) * 1;
      prev = net;
      steps++;
    });
    expect(steps).toBe(86_400);
    expect(worstPowerMismatch).toBeLessThan(1e-6);
    // The counters start at the installed history; what the day added is what must balance.
    const day = since(start, energies(parts(site.snapshot())));
    const meterNet = day.gridImport - day.gridExport;
    const devices = day.office + day.ev + day.charged - day.discharged - day.pv;
    // Exact against the devices' own integrals; within sampling error against the 1 s trapezoid of their powers.
    expect(Math.abs(meterNet - devices)).toBeLessThan(1e-6 * day.gridImport);
    expect(Math.abs(meterNet - integralWs / 3600) / day.gridImport).toBeLessThan(1e-3);
    expect(day.pvExport).toBeCloseTo(day.pv, 6);
    expect(day.ev).toBeGreaterThan(0);
    expect(day.charged).toBeGreaterThan(0);
    expect(day.discharged).toBeGreaterThan(0);
  });

  it('gives the same energies at 1 s and 60 s steps', () => {
    const residential = exampleSite();
    // A small load makes the site export at midday, so the import/export split is exercised too.
    residential.devices = residential.devices.map((d) =>
      d.kind === 'building-load' ? { ...d, params: { profile: 'residential', peakW: 4000 } } : d,
    );
    const start = energies(parts(new SimSite(residential).snapshot()));
    const a = since(start, energies(parts(simulateDay(1000, residential).snapshot())));
    const b = since(start, energies(parts(simulateDay(60_000, residential).snapshot())));
    const close = (x: number, y: number, rel: number) =>
      expect(Math.abs(x - y)).toBeLessThanOrEqual(rel * Math.max(1, x));
    close(a.pv, b.pv, 1e-4);
    close(a.office, b.office, 1e-4);
    close(a.ev, b.ev, 1e-4);
    close(a.charged, b.charged, 1e-4);
    close(a.discharged, b.discharged, 1e-4);
    expect(a.gridExport).toBeGreaterThan(1000);
    close(a.gridImport - a.gridExport, b.gridImport - b.gridExport, 1e-3);
    close(a.gridImport, b.gridImport, 5e-3);
    close(a.gridExport, b.gridExport, 5e-3);
  });

  it('is deterministic for a seed and differs for another seed', () => {
    const snapshots = (description: SiteDescription) => {
      const out: SiteSnapshot[] = [];
      const site = new SimSite(description);
      for (let i = 1; i <= 48; i++) {
        site.step(site.startMs + i * 1_800_000);
        out.push(site.snapshot());
      }
      return out;
    };
    const a = snapshots(exampleSite());
    expect(snapshots(exampleSite())).toEqual(a);
    const other = snapshots({ ...exampleSite(), seed: 7 });
    expect(other).not.toEqual(a);
    const office = (s: SiteSnapshot[]) => s.map((x) => (x.devices.office as LoadSnapshot).powerW);
    expect(office(other)).not.toEqual(office(a));
  });

  it('keeps every device on its own random stream: adding a device changes nobody else', () => {
    const base = exampleSite();
    const more = exampleSite();
    more.devices = [
      { kind: 'building-load', name: 'annex', params: { profile: 'commercial', peakW: 5000 } },
      ...more.devices,
    ];
    const a = new SimSite(base);
    const b = new SimSite(more);
    a.step(a.startMs + 12 * HOUR);
    b.step(b.startMs + 12 * HOUR);
    const sa = a.snapshot();
    const sb = b.snapshot();
    for (const name of ['pv', 'battery', 'office', 'ev', 'pv-meter'])
      expect(sb.devices[name]).toEqual(sa.devices[name]);
    expect(sb.grid).toEqual(sa.grid);
  });

  it('routes setpoints to devices and steps to the write time first', () => {
    const site = new SimSite(exampleSite());
    const noon = site.startMs + 12 * HOUR;
    site.setPvPowerLimit('pv', { pct: 10, revertTimeoutS: 300 }, noon);
    expect(site.time).toBe(noon);
    site.step(noon + 60_000);
    expect((site.snapshot().devices.pv as PvSnapshot).acPowerW).toBeLessThanOrEqual(900 + 1e-9);
    site.setLoadCurtailment('office', { pct: 100 });
    site.setEvLimit('ev', { currentA: 0 });
    site.setBatteryRates('battery', { storCtlMod: 2, inWRtePct: 100, outWRtePct: -20 });
    site.setPvPowerFactor('pv', { pf: 0.95 });
    site.step(noon + 120_000);
    const p = parts(site.snapshot());
    expect(p.office.powerW).toBeCloseTo(p.office.uncurtailedPowerW * 0.8, 9);
    expect(p.ev.powerW).toBe(0);
    expect(p.battery.powerW).toBe(-1000);
    expect(p.pv.reactivePowerVar).toBeGreaterThan(0);
    expect(() => site.pv('battery')).toThrow(/not a pv-inverter/);
    expect(() => site.device('nope')).toThrow(/no device named nope/);
    expect(() => site.step(noon)).toThrow(/backwards/);
  });

  it('rejects broken topologies and descriptions with clear messages', () => {
    const withDevices = (devices: SiteDescription['devices']): SiteDescription => ({ ...exampleSite(), devices });
    const load = { kind: 'building-load', name: 'l', params: { profile: 'office', peakW: 1000 } } as const;
    expect(() => new SimSite(withDevices([load, { kind: 'meter', name: 'm', params: { sees: ['x'] } }]))).toThrow(
      /m sees x, which is not a device; devices: l, m/,
    );
    expect(
      () =>
        new SimSite(
          withDevices([
            { kind: 'meter', name: 'a', params: { sees: ['b'] } },
            { kind: 'meter', name: 'b', params: { sees: ['a'] } },
          ]),
        ),
    ).toThrow(/cycle: a -> b -> a/);
    expect(
      () =>
        new SimSite(
          withDevices([
            load,
            { kind: 'meter', name: 'sub', params: { sees: ['l'] } },
            { kind: 'meter', name: 'main', params: { sees: ['l', 'sub'] } },
          ]),
        ),
    ).toThrow(/main sees l twice/);
    expect(() => new SimSite(withDevices([load, load]))).toThrow(/used twice/);
    expect(() => new SimSite({ ...exampleSite(), start: '2024-06-17 00:00' })).toThrow(/start must be an ISO 8601/);
    expect(() => new SimSite({ ...exampleSite(), seed: 0.5 })).toThrow(/seed/);
    expect(() => new SimSite({ ...exampleSite(), cloudiness: 2 })).toThrow(/cloudiness/);
  });

  it('describes a realistic example site that survives a JSON round trip', () => {
    const d = exampleSite();
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
    const site = new SimSite(d);
    expect(site.deviceNames.sort()).toEqual(['battery', 'ev', 'grid-meter', 'office', 'pv', 'pv-meter']);
    site.step(site.startMs + 12 * HOUR);
    const snap = site.snapshot();
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    const p = parts(snap);
    expect(p.office.powerW).toBeGreaterThan(8000);
    expect(p.pv.acPowerW).toBeGreaterThan(0);
    expect(p.grid.activePowerW).toBeCloseTo(p.office.powerW + p.ev.powerW - p.battery.powerW - p.pv.acPowerW, 6);
  });
});
