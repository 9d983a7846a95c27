/**
 * Building cases for the optimizer's tests and benchmark: named cases covering each part of the model (PV only, PV
 * and battery, EV, flexible loads, trades and caps, negative prices) and seeded random sites for property tests.
 * Shapes are plain: a PV bell over the day, an office load, a two-level or a wavy price. Deterministic for a seed.
 */
import type { Battery, BuildingModel, Horizon, SiteModel } from '../agent/optimizer/model.js';
import { Rng } from '../sim/random.js';

export const CASE_START = Date.UTC(2026, 5, 22, 0, 0, 0); // a Monday in June, 00:00 UTC

export function dayHorizon(steps = 96, start = CASE_START): Horizon {
  return { start, stepMs: (24 * 3_600_000) / 96, steps };
}

function hourOf(h: Horizon, t: number): number {
  return ((((h.start + (t + 0.5) * h.stepMs) / 3_600_000) % 24) + 24) % 24;
}

/** Clear-day PV bell between 05:00 and 21:00 UTC, peak `peakW`, scaled per day by `cloud` (1 = clear). */
export function pvShape(h: Horizon, peakW: number, cloud: (day: number) => number = () => 1): number[] {
  return Array.from({ length: h.steps }, (_, t) => {
    const hour = hourOf(h, t);
    const day = Math.floor((t * h.stepMs) / 86_400_000);
    const x = (hour - 13) / 8;
    return Math.abs(x) >= 1 ? 0 : peakW * Math.cos((x * Math.PI) / 2) ** 2 * cloud(day);
  });
}

/** Office load: base at night, high 08:00-18:00 UTC. */
export function officeLoad(h: Horizon, baseW: number, peakW: number): number[] {
  return Array.from({ length: h.steps }, (_, t) => {
    const hour = hourOf(h, t);
    return hour >= 8 && hour < 18 ? peakW - ((peakW - baseW) * 0.3 * Math.abs(hour - 13)) / 5 : baseW;
  });
}

/** Time-of-use import price: cheap at night, expensive in the evening peak. */
export function touPrice(h: Horizon, night = 0.22, day = 0.3, peak = 0.42): number[] {
  return Array.from({ length: h.steps }, (_, t) => {
    const hour = hourOf(h, t);
    if (hour < 6 || hour >= 22) return night;
    return hour >= 17 && hour < 21 ? peak : day;
  });
}

/** A day-ahead-like price: a wave with a midday dip and an evening peak, plus seeded noise. */
export function dynamicPrice(h: Horizon, rng: Rng, mean = 0.28, swing = 0.12): number[] {
  return Array.from({ length: h.steps }, (_, t) => {
    const hour = hourOf(h, t);
    const wave = -Math.cos(((hour - 1) / 24) * 2 * Math.PI) * 0.5 - Math.exp(-((hour - 13) ** 2) / 8) * 0.6;
    return Math.round((mean + swing * wave + rng.normal(0, 0.01)) * 10_000) / 10_000;
  });
}

const flat = (h: Horizon, v: number) => new Array<number>(h.steps).fill(v);

export function battery(overrides: Partial<Battery> = {}): Battery {
  return {
    name: 'battery',
    capacityWh: 10_000,
    energyWh: 5_000,
    socMinPct: 10,
    socMaxPct: 95,
    reservePct: 20,
    maxChargeW: 5_000,
    maxDischargeW: 5_000,
    chargeEfficiency: 0.96,
    dischargeEfficiency: 0.96,
    degradationCostPerKWh: 0.03,
    terminal: 'keep',
    ...overrides,
  };
}

function office(h: Horizon, overrides: Partial<BuildingModel> = {}): BuildingModel {
  return {
    name: 'office',
    grid: { importLimitW: 43_000, exportLimitW: 30_000, importPrice: touPrice(h), exportPrice: flat(h, 0.08) },
    criticalLoadW: officeLoad(h, 1_500, 9_000),
    pv: [{ name: 'pv', forecastW: pvShape(h, 9_000), curtailable: true, ratedW: 9_000 }],
    batteries: [],
    evs: [],
    flexibleLoads: [],
    ...overrides,
  };
}

function site(h: Horizon, buildings: BuildingModel[], extra: Partial<SiteModel> = {}): SiteModel {
  return { horizon: h, buildings, trades: [], caps: {}, ...extra };
}

/** The named cases the glpsol comparison runs; each adds one part of the model. */
export function namedCases(steps = 96): { name: string; site: SiteModel }[] {
  const h = dayHorizon(steps);
  const at = (hour: number) => h.start + hour * 3_600_000;
  return [
    { name: 'pv-only', site: site(h, [office(h)]) },
    { name: 'pv-battery', site: site(h, [office(h, { batteries: [battery()] })]) },
    {
      name: 'pv-battery-ev',
      site: site(h, [
        office(h, {
          batteries: [battery()],
          evs: [
            {
              name: 'ev',
              maxPowerW: 11_000,
              arrival: at(8.5),
              departure: at(17.5),
              energyWh: 20_000,
              shortfallCostPerKWh: 1,
            },
          ],
        }),
      ]),
    },
    {
      name: 'flexible-loads',
      site: site(h, [
        office(h, {
          batteries: [battery()],
          flexibleLoads: [
            {
              name: 'boiler',
              kind: 'shiftable',
              maxPowerW: 3_000,
              energyWh: 6_000,
              earliest: at(6),
              latest: at(20),
              costPerKWh: 0.5,
            },
            {
              name: 'hvac',
              kind: 'curtailable',
              maxPowerW: 4_000,
              baselineW: officeLoad(h, 0, 4_000),
              maxShedFraction: 0.3,
              costPerKWh: 0.35,
            },
          ],
        }),
      ]),
    },
    {
      name: 'trades-caps',
      site: site(h, [office(h, { batteries: [battery()] }), office(h, { name: 'depot', pv: [] })], {
        trades: [
          { step: Math.floor(steps * 0.5), powerW: -4_000, price: 0.2 },
          { step: Math.floor(steps * 0.8), powerW: 3_000, price: 0.25 },
        ],
        caps: {
          maxImportW: Array.from({ length: steps }, (_, t) =>
            t >= steps * 0.7 && t < steps * 0.8 ? 6_000 : undefined,
          ),
          maxExportW: Array.from({ length: steps }, (_, t) =>
            t >= steps * 0.45 && t < steps * 0.55 ? 2_000 : undefined,
          ),
        },
      }),
    },
    {
      name: 'negative-prices',
      site: site(h, [
        office(h, {
          batteries: [battery()],
          grid: {
            importLimitW: 43_000,
            exportLimitW: 30_000,
            importPrice: touPrice(h).map((p, t) => (t >= steps * 0.5 && t < steps * 0.6 ? -0.05 : p)),
            exportPrice: flat(h, 0.08).map((p, t) => (t >= steps * 0.5 && t < steps * 0.6 ? -0.1 : p)),
          },
          pv: [{ name: 'pv', forecastW: pvShape(h, 9_000), curtailable: false, ratedW: 9_000 }],
        }),
      ]),
    },
  ];
}

/** A seeded random site: 1-3 buildings, each with a random subset of DERs, prices and limits. */
export function randomSite(seed: number, steps = 96): SiteModel {
  const rng = new Rng(seed);
  const h = dayHorizon(steps);
  const at = (hour: number) => h.start + hour * 3_600_000;
  const buildings: BuildingModel[] = [];
  const n = rng.int(1, 3);
  for (let i = 0; i < n; i++) {
    const peak = rng.uniform(0, 15_000);
    const b: BuildingModel = {
      name: `b${i}`,
      grid: {
        importLimitW: rng.uniform(8_000, 40_000),
        exportLimitW: rng.next() < 0.2 ? 0 : rng.uniform(3_000, 30_000),
        importPrice: dynamicPrice(h, rng),
        exportPrice: flat(h, rng.uniform(0.02, 0.1)),
      },
      criticalLoadW: officeLoad(h, rng.uniform(300, 3_000), rng.uniform(3_000, 12_000)),
      pv:
        peak > 1_000 ? [{ name: 'pv', forecastW: pvShape(h, peak), curtailable: rng.next() < 0.7, ratedW: peak }] : [],
      batteries:
        rng.next() < 0.7
          ? [
              battery({
                capacityWh: rng.uniform(5_000, 30_000),
                energyWh: 0,
                maxChargeW: rng.uniform(2_000, 10_000),
                maxDischargeW: rng.uniform(2_000, 10_000),
                reservePct: rng.uniform(10, 40),
                degradationCostPerKWh: rng.uniform(0, 0.08),
                terminal: rng.next() < 0.5 ? 'keep' : 'free',
              }),
            ]
          : [],
      evs:
        rng.next() < 0.5
          ? [
              {
                name: 'ev',
                maxPowerW: rng.uniform(3_700, 11_000),
                arrival: at(rng.uniform(6, 10)),
                departure: at(rng.uniform(14, 20)),
                energyWh: rng.uniform(5_000, 40_000),
                shortfallCostPerKWh: 1,
              },
            ]
          : [],
      flexibleLoads:
        rng.next() < 0.5
          ? [
              {
                name: 'boiler',
                kind: 'shiftable',
                maxPowerW: 3_000,
                energyWh: rng.uniform(1_000, 9_000),
                earliest: at(rng.uniform(0, 8)),
                latest: at(rng.uniform(12, 24)),
                costPerKWh: 0.5,
              },
            ]
          : [],
    };
    const bat = b.batteries[0];
    if (bat !== undefined) {
      (b.batteries as Battery[])[0] = { ...bat, energyWh: (bat.capacityWh * rng.uniform(25, 90)) / 100 };
    }
    buildings.push(b);
  }
  const trades =
    rng.next() < 0.5 ? [{ step: rng.int(0, steps - 1), powerW: rng.uniform(-5_000, 5_000), price: 0.2 }] : [];
  return { horizon: h, buildings, trades, caps: {} };
}
