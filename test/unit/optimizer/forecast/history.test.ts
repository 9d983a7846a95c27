/**
 * Reading history out of a real agent database (ledger records written by a Ledger, as the poller does): means per
 * interval, incremental reads, more series and longer windows later, other units, pruned bodies, and warm().
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../agent/clock.js';
import { Ledger } from '../../../../agent/ledger/ledger.js';
import type { NewRecord } from '../../../../agent/ledger/records.js';
import { createLogger } from '../../../../agent/logger.js';
import { LedgerHistory } from '../../../../agent/optimizer/forecast/history.js';
import { openAgentDatabase } from '../../../../agent/store/agent-db.js';
import { LedgerStore } from '../../../../agent/store/ledger-store.js';
import { firstSeqAtOrAfter, lastRecordSeq } from '../../../../agent/store/reading-history.js';
import { MGMC_A, signer, TempDir } from '../../dso/helpers.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const STEP = 15 * MIN;
const T0 = Date.UTC(2026, 4, 12, 6); // a multiple of the step

let dir: TempDir;
let clock: ManualClock;
let store: LedgerStore;
let ledger: Ledger;

beforeEach(() => {
  dir = new TempDir();
  clock = new ManualClock(T0);
  store = dir.track(new LedgerStore(openAgentDatabase(dir.file('agent.db'))));
  ledger = Ledger.open({
    store,
    signer: signer(MGMC_A),
    clock,
    chainId: 4242,
    sealEveryRecords: 5000,
    sealEverySeconds: 60,
  });
});
afterEach(() => dir.cleanup());

const reading = (device: string, point: string, t: number, value: number, unit = 'W'): NewRecord => ({
  type: 'reading',
  time: t,
  body: { device, point, t, value, unit },
});

/** The grid meter's value at t: a level per interval plus a ramp inside it (so the mean is not the first value). */
const gridW = (t: number) => 1000 + Math.floor((t - T0) / STEP) * 10 + (Math.floor(t / 5000) % 3);

/**
 * Polls every 5 s from `from` to `to`: grid meter W and V, PV W, a device 'grid2' whose name extends 'grid'. A
 * minute of polls goes into one append (one transaction), to keep the test fast on a slow disk.
 */
function poll(from: number, to: number): void {
  let batch: NewRecord[] = [];
  for (let t = from; t < to; t += 5000) {
    batch.push(
      reading('grid', 'W', t, gridW(t)),
      reading('grid', 'PhV', t, 230_100, 'mV'),
      reading('pv1', 'W', t, 2000),
      reading('grid2', 'W', t, -99_999),
      { type: 'event', time: t, body: { source: 'test', kind: 'tick', message: 'noise between readings' } },
    );
    if (batch.length >= 60 || t + 5000 >= to) {
      clock.advance(t - clock.now());
      ledger.append(batch);
      batch = [];
    }
  }
}

/** Exact mean of gridW over the 5-s polls of [start, start + STEP). */
function expectedMean(start: number, end = start + STEP): number {
  let sum = 0;
  let n = 0;
  for (let t = start; t < end; t += 5000) {
    sum += gridW(t);
    n++;
  }
  return sum / n;
}

describe('LedgerHistory', () => {
  it('returns the mean of the readings of each interval, interval start as t', () => {
    poll(T0, T0 + 2 * HOUR);
    const history = new LedgerHistory({ db: store.db, stepMs: STEP });
    const samples = history.samples('grid', 'W', T0, T0 + 2 * HOUR);
    expect(samples).toHaveLength(8);
    samples.forEach((s, i) => {
      expect(s.t).toBe(T0 + i * STEP);
      expect(s.w).toBeCloseTo(expectedMean(s.t), 9);
    });
    // A device whose name starts like another one is its own series.
    expect(history.samples('grid2', 'W', T0, T0 + HOUR).every((s) => s.w === -99_999)).toBe(true);
    expect(history.samples('pv1', 'W', T0 + HOUR, T0 + 2 * HOUR).map((s) => s.t)).toEqual(
      [0, 1, 2, 3].map((i) => T0 + HOUR + i * STEP),
    );
    expect(history.samples('nobody', 'W', T0, T0 + 2 * HOUR)).toEqual([]);
  });

  it('reads only what was appended since its last look, and the running interval holds its readings so far', () => {
    poll(T0, T0 + HOUR + 5 * MIN);
    const history = new LedgerHistory({ db: store.db, stepMs: STEP });
    const first = history.samples('grid', 'W', T0, T0 + 2 * HOUR);
    expect(first).toHaveLength(5);
    expect(first[4]?.w).toBeCloseTo(expectedMean(T0 + HOUR, T0 + HOUR + 5 * MIN), 9);
    const scanned = history.recordsScanned;

    poll(T0 + HOUR + 5 * MIN, T0 + 2 * HOUR);
    const second = history.samples('grid', 'W', T0, T0 + 2 * HOUR);
    expect(second).toHaveLength(8);
    for (const s of second) expect(s.w).toBeCloseTo(expectedMean(s.t), 9);
    // 55 min of polls at 5 s of grid.W only: the other points and devices are not even read.
    expect(history.recordsScanned - scanned).toBe((55 * 60) / 5);
  });

  it('backfills a longer window and a new series later without counting anything twice', () => {
    poll(T0, T0 + 3 * HOUR);
    const history = new LedgerHistory({ db: store.db, stepMs: STEP, slackMs: 30 * MIN });
    expect(history.samples('grid', 'W', T0 + 2 * HOUR, T0 + 3 * HOUR)).toHaveLength(4);
    const all = history.samples('grid', 'W', T0, T0 + 3 * HOUR);
    expect(all).toHaveLength(12);
    for (const s of all) expect(s.w).toBeCloseTo(expectedMean(s.t), 9);
    const pv = history.samples('pv1', 'W', T0, T0 + 3 * HOUR);
    expect(pv).toHaveLength(12);
    expect(pv.every((s) => s.w === 2000)).toBe(true);
  });

  it('reads several series in one pass with prefetch', () => {
    poll(T0, T0 + HOUR);
    const history = new LedgerHistory({ db: store.db, stepMs: STEP });
    history.prefetch(
      [
        { device: 'grid', point: 'W' },
        { device: 'pv1', point: 'W' },
      ],
      T0,
      T0 + HOUR,
    );
    const scanned = history.recordsScanned;
    expect(history.samples('pv1', 'W', T0, T0 + HOUR)).toHaveLength(4);
    expect(history.samples('grid', 'W', T0, T0 + HOUR)).toHaveLength(4);
    expect(history.recordsScanned).toBe(scanned);
  });

  it('ignores readings in other units and says so once', () => {
    poll(T0, T0 + 30 * MIN);
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (line: string) => lines.push(line) } });
    const history = new LedgerHistory({ db: store.db, stepMs: STEP, logger });
    expect(history.samples('grid', 'PhV', T0, T0 + HOUR)).toEqual([]);
    poll(T0 + 30 * MIN, T0 + HOUR);
    expect(history.samples('grid', 'PhV', T0, T0 + HOUR)).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("device 'grid' point 'PhV' is recorded in mV, not W");
  });

  it('reads readings whose bodies carry more fields, wherever they sort (the slow paths)', () => {
    const body = (t: number, value: number, extra: Record<string, string | number>) => ({
      device: 'grid',
      point: 'W',
      t,
      value,
      unit: 'W',
      ...extra,
    });
    ledger.append([
      // Sorts between point and t: the usual prefix, parsed by JSON.parse.
      { type: 'reading', time: T0, body: body(T0, 100, { quality: 'good' }) },
      { type: 'reading', time: T0 + 5000, body: body(T0 + 5000, 300, {}) },
      // Sorts before device, or between device and point: found by the needles instead of the prefix.
      { type: 'reading', time: T0 + 10_000, body: body(T0 + 10_000, 500, { channel: 2 }) },
      { type: 'reading', time: T0 + 12_000, body: body(T0 + 12_000, 700, { phase: 1 }) },
      // grid.W nested in a field of a reading of grid2 (which the needles find) is not a reading of grid.W.
      {
        type: 'reading',
        time: T0 + 15_000,
        body: { ...body(T0 + 15_000, 7, { annotation: 'x' }), device: 'grid2', meta: { device: 'grid', point: 'W' } },
      },
    ]);
    const history = new LedgerHistory({ db: store.db, stepMs: STEP });
    expect(history.samples('grid', 'W', T0, T0 + STEP)).toEqual([{ t: T0, w: 400 }]); // (100 + 300 + 500 + 700) / 4
  });

  it('has less history where record bodies were pruned', () => {
    poll(T0, T0 + HOUR);
    // Prune the first half hour's records as pruneRecords would after anchoring (leaf hash kept, body dropped).
    const through = firstSeqAtOrAfter(store.db, T0 + 30 * MIN) - 1;
    const rows = Array.from({ length: through }, (_, i) => ({ seq: i + 1, leaf: new Uint8Array(32) }));
    store.pruneBodies(rows, {});
    const history = new LedgerHistory({ db: store.db, stepMs: STEP });
    expect(history.samples('grid', 'W', T0, T0 + HOUR).map((s) => s.t)).toEqual([T0 + 30 * MIN, T0 + 45 * MIN]);
  });

  it('warm() reads the same history in steps, and later calls read only what is new', async () => {
    poll(T0, T0 + 2 * HOUR);
    const history = new LedgerHistory({ db: store.db, stepMs: STEP, warmStepMs: 20 * MIN });
    await history.warm([{ device: 'grid', point: 'W' }], T0 - 3 * 86_400_000, T0 + 2 * HOUR);
    const scanned = history.recordsScanned;
    const samples = history.samples('grid', 'W', T0, T0 + 2 * HOUR);
    expect(history.recordsScanned).toBe(scanned);
    expect(samples).toHaveLength(8);
    for (const s of samples) expect(s.w).toBeCloseTo(expectedMean(s.t), 9);
  });

  it('finds a time window by bisection on seq', () => {
    poll(T0, T0 + HOUR);
    expect(firstSeqAtOrAfter(store.db, T0)).toBe(1);
    // Five records per poll: the poll at T0 + 30 min is the 361st.
    expect(firstSeqAtOrAfter(store.db, T0 + 30 * MIN)).toBe(360 * 5 + 1);
    expect(firstSeqAtOrAfter(store.db, T0 + 2 * HOUR)).toBe(lastRecordSeq(store.db) + 1);
  });
});
