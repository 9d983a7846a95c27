/**
 * Synthetic device readings shaped like the poller's (a PV inverter, a battery and a meter on one site, polled
 * once a second), for trials, demos and benchmarks. Deterministic for a given seed so runs can be compared.
 */
import type { NewRecord } from './records.js';

interface PointSpec {
  readonly device: string;
  readonly point: string;
  readonly unit: string;
  value(second: number, noise: number): number;
}

const DAY_S = 86_400;
const POINTS: readonly PointSpec[] = [
  {
    device: 'pv1',
    point: 'W',
    unit: 'W',
    value: (s, n) => Math.max(0, Math.round(8000 * Math.sin((Math.PI * ((s % DAY_S) - 21_600)) / 43_200) + n * 50)),
  },
  { device: 'pv1', point: 'WH', unit: 'Wh', value: (s) => Math.floor(s * 2.2) },
  { device: 'bat1', point: 'W', unit: 'W', value: (s, n) => Math.round(3000 * Math.sin(s / 3600) + n * 20) },
  { device: 'bat1', point: 'SoC', unit: 'permille', value: (s) => 500 + Math.round(300 * Math.sin(s / 7200)) },
  { device: 'meter1', point: 'W', unit: 'W', value: (s, n) => Math.round(2500 + 1500 * Math.cos(s / 5400) + n * 100) },
  { device: 'meter1', point: 'PhVphA', unit: 'mV', value: (_s, n) => 230_000 + Math.round(n * 1500) },
  { device: 'meter1', point: 'Hz', unit: 'mHz', value: (_s, n) => 50_000 + Math.round(n * 20) },
  { device: 'meter1', point: 'TotWhImp', unit: 'Wh', value: (s) => 1_000_000 + Math.floor(s * 0.8) },
];

/** A small fast PRNG (mulberry32): reproducible noise and test schedules, not for anything secret. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Yields batches of readings (one poll cycle of every point per second of simulated time, `batchSize` records per
 * batch) until `count` readings were produced. `startMs` is the measurement time of the first cycle.
 */
export function* syntheticReadings(
  count: number,
  startMs: number,
  batchSize = 500,
  seed = 1,
): IterableIterator<NewRecord[]> {
  const random = seededRandom(seed);
  let produced = 0;
  let batch: NewRecord[] = [];
  for (let cycle = 0; produced < count; cycle++) {
    const t = startMs + cycle * 1000;
    const second = Math.floor(t / 1000);
    for (const p of POINTS) {
      if (produced >= count) break;
      batch.push({
        type: 'reading',
        body: { device: p.device, point: p.point, t, value: p.value(second, random() - 0.5), unit: p.unit },
      });
      produced++;
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
}
