/**
 * The Forecaster: consumption reconstructed from meter, PV, battery and EV readings, the PV plant's own readings,
 * config mistakes reported by name, and the whole chain over a real ledger.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../agent/clock.js';
import { Ledger } from '../../../../agent/ledger/ledger.js';
import type { NewRecord } from '../../../../agent/ledger/records.js';
import type { HistorySource, PowerSample } from '../../../../agent/optimizer/forecast/history.js';
import { LedgerHistory } from '../../../../agent/optimizer/forecast/history.js';
import {
  type BuildingLoadSource,
  consumptionTerms,
  createLedgerForecaster,
  type PvPlantSource,
} from '../../../../agent/optimizer/forecast/index.js';
import { clearSkyPvW, meanOverInterval } from '../../../../agent/optimizer/forecast/solar.js';
import type { Horizon } from '../../../../agent/optimizer/model.js';
import { openAgentDatabase } from '../../../../agent/store/agent-db.js';
import { LedgerStore } from '../../../../agent/store/ledger-store.js';
import { MGMC_A, signer, TempDir } from '../../dso/helpers.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const STEP = 15 * MIN;
const NOW = Date.UTC(2026, 4, 13, 8); // Wednesday 10:00 in Berlin

/** Interval means kept in memory: a HistorySource for tests. */
class MemoryHistory implements HistorySource {
  readonly stepMs = STEP;
  readonly series = new Map<string, PowerSample[]>();
  prefetched: string[] = [];

  add(device: string, point: string, t: number, w: number): void {
    const key = `${device}/${point}`;
    const list = this.series.get(key) ?? [];
    list.push({ t, w });
    this.series.set(key, list);
  }

  samples(device: string, point: string, from: number, to: number): PowerSample[] {
    return (this.series.get(`${device}/${point}`) ?? []).filter((s) => s.t >= from && s.t < to);
  }

  prefetch(series: readonly { device: string; point: string }[]): void {
    this.prefetched.push(...series.map((s) => `${s.device}/${s.point}`));
  }
}

const BERLIN_OFFSET_SUMMER = 2 * HOUR;
/** True consumption by local hour: 600 W at night, 2400 W from 17 to 21 local. */
const consumption = (t: number) => {
  const hour = ((((t + BERLIN_OFFSET_SUMMER) % DAY) + DAY) % DAY) / HOUR;
  return hour >= 17 && hour < 21 ? 2400 : 600;
};
const pvW = (t: number) => {
  const hour = (t % DAY) / HOUR;
  return hour >= 5 && hour < 18 ? 3000 * Math.sin(((hour - 5) / 13) * Math.PI) : undefined; // asleep at night
};
const batteryW = (t: number) => (((t / STEP) % 8) - 4) * 250; // charging and discharging in turns
const evW = (t: number) => ((t % DAY) / HOUR >= 20 ? 7000 : 0);

const building: BuildingLoadSource = {
  terms: consumptionTerms({
    meter: { device: 'meter', point: 'W' },
    pv: [{ device: 'inv', point: 'W' }],
    batteries: [{ device: 'bat', point: 'W' }],
    controllableLoads: [{ device: 'wallbox', point: 'W' }],
  }),
  defaultLoadW: 1500,
  timeZone: 'Europe/Berlin',
};

const plant: PvPlantSource = {
  device: 'inv',
  point: 'W',
  plant: { peakWp: 8000, acRatingW: 7000, tiltDeg: 35, azimuthDeg: 180, performanceRatio: 0.85 },
  location: { latitudeDeg: 48.14, longitudeDeg: 11.58 },
};

const horizon: Horizon = { start: NOW, stepMs: STEP, steps: 96 };

/** 14 days of the building's meters: meter = consumption - PV - battery + EV (import positive). */
function buildingHistory(): MemoryHistory {
  const h = new MemoryHistory();
  for (let t = NOW - 14 * DAY; t < NOW; t += STEP) {
    const pv = pvW(t);
    const meter = consumption(t) - (pv ?? 0) - batteryW(t) + evW(t);
    // A meter outage: those intervals must not turn into a consumption of PV + battery alone.
    if (!(t >= NOW - 3 * DAY && t < NOW - 3 * DAY + 6 * HOUR)) h.add('meter', 'W', t, meter);
    if (pv !== undefined) h.add('inv', 'W', t, pv);
    h.add('bat', 'W', t, batteryW(t));
    h.add('wallbox', 'W', t, evW(t));
  }
  return h;
}

describe('consumptionTerms', () => {
  it('adds meter, PV and battery, subtracts the loads the optimizer plans, and lets a sleeping inverter be 0 W', () => {
    expect(building.terms).toEqual([
      { device: 'meter', point: 'W', sign: 1 },
      { device: 'inv', point: 'W', sign: 1, zeroWhenMissing: true },
      { device: 'bat', point: 'W', sign: 1 },
      { device: 'wallbox', point: 'W', sign: -1 },
    ]);
  });
});

describe('createLedgerForecaster', () => {
  it('forecasts the building consumption reconstructed from its meters, not what the meter saw', () => {
    const history = buildingHistory();
    const f = createLedgerForecaster({ history, buildings: { home: building }, plants: {} });
    const { forecastW, basis } = f.load('home', horizon, NOW);
    expect(forecastW).toHaveLength(96);
    for (let i = 0; i < 96; i++) {
      const t = NOW + i * STEP;
      expect(Math.abs((forecastW[i] as number) - consumption(t))).toBeLessThan(1e-6);
    }
    expect(basis).toMatch(/^consumption = meter\.W \+ inv\.W \+ bat\.W - wallbox\.W: weekday\/weekend profile/);
    expect(history.prefetched).toEqual(['meter/W', 'inv/W', 'bat/W', 'wallbox/W']);
  });

  it('forecasts a PV plant from its own readings, with its sign', () => {
    const history = new MemoryHistory();
    const now = Date.UTC(2026, 4, 13, 10);
    for (let t = now - 3 * HOUR; t < now; t += STEP) {
      const cs = meanOverInterval((x) => clearSkyPvW(plant.plant, plant.location, x), t, STEP, 60);
      history.add('inv', 'W', t, -0.4 * cs); // this inverter reads production negative
    }
    const f = createLedgerForecaster({ history, buildings: {}, plants: { roof: { ...plant, sign: -1 } } });
    const { forecastW, basis } = f.pv('roof', { start: now, stepMs: STEP, steps: 8 }, now);
    expect(basis).toMatch(/^inv\.W: clear-sky output × 0\.40 measured over 12 daylight sample/);
    const cs = meanOverInterval((x) => clearSkyPvW(plant.plant, plant.location, x), now, STEP, 15);
    expect((forecastW[0] as number) / cs).toBeGreaterThan(0.4);
    expect((forecastW[0] as number) / cs).toBeLessThan(0.43);
  });

  it('says when there is no meter and no history', () => {
    const f = createLedgerForecaster({
      history: new MemoryHistory(),
      buildings: { shed: { terms: [], defaultLoadW: 300, utcOffsetMinutes: 60 }, home: building },
      plants: {},
    });
    expect(f.load('shed', horizon, NOW)).toEqual({
      forecastW: new Array(96).fill(300),
      basis: 'no meter configured: no history: default 300 W; no recent measurement to persist',
    });
    expect(f.load('home', horizon, NOW).basis).toContain('no history: default 1500 W');
  });

  it('names what is wrong in the settings it is given', () => {
    const history = new MemoryHistory();
    expect(() =>
      createLedgerForecaster({ history, buildings: { a: { ...building, timeZone: 'Mars/Olympus' } }, plants: {} }),
    ).toThrow(/building 'a': unknown time zone "Mars\/Olympus"/);
    expect(() =>
      createLedgerForecaster({
        history,
        buildings: {},
        plants: { roof: { ...plant, plant: { ...plant.plant, performanceRatio: 1.5, tiltDeg: 120 } } },
      }),
    ).toThrow(/PV plant 'roof' \(device inv\): tiltDeg must be 0..90 \(got 120\); performanceRatio must be/);
    const f = createLedgerForecaster({ history, buildings: { home: building }, plants: {} });
    expect(() => f.load('hom', horizon, NOW)).toThrow(/no load forecast is set up for 'hom' \(known: home\)/);
    expect(() => f.pv('roof', horizon, NOW)).toThrow(/no PV forecast is set up for 'roof' \(none is\)/);
  });
});

describe('createLedgerForecaster over a real ledger', () => {
  let dir: TempDir | undefined;
  afterEach(() => dir?.cleanup());

  it('learns the load from readings the ledger holds', () => {
    dir = new TempDir();
    const start = NOW - 6 * HOUR;
    const clock = new ManualClock(start);
    const store = dir.track(new LedgerStore(openAgentDatabase(dir.file('agent.db'))));
    const ledger = Ledger.open({
      store,
      signer: signer(MGMC_A),
      clock,
      chainId: 4242,
      sealEveryRecords: 5000,
      sealEverySeconds: 60,
    });
    for (let t = start; t < NOW; t += 60_000) {
      clock.advance(t - clock.now());
      // 900 W of consumption, 400 W of it from the battery; a minute of 10-s polls per append.
      const records: NewRecord[] = [];
      for (let u = t; u < t + 60_000; u += 10_000) {
        records.push(
          { type: 'reading', time: u, body: { device: 'meter', point: 'W', t: u, value: 500, unit: 'W' } },
          { type: 'reading', time: u, body: { device: 'bat', point: 'W', t: u, value: 400, unit: 'W' } },
        );
      }
      ledger.append(records);
    }
    const history = new LedgerHistory({ db: store.db, stepMs: STEP });
    const f = createLedgerForecaster({
      history,
      buildings: {
        home: {
          terms: consumptionTerms({
            meter: { device: 'meter', point: 'W' },
            batteries: [{ device: 'bat', point: 'W' }],
          }),
          defaultLoadW: 3000,
          timeZone: 'Europe/Berlin',
        },
      },
      plants: {},
    });
    const { forecastW, basis } = f.load('home', horizon, NOW);
    // Six hours of history fill 24 slots; the rest of the day is interpolated between their ends: 900 W everywhere.
    for (const w of forecastW) expect(w).toBeCloseTo(900, 9);
    expect(basis).toContain('all-days profile by local time (Europe/Berlin) learned from 1 day(s) of history');
    expect(basis).toContain('72 empty slot(s) interpolated');
  });
});
