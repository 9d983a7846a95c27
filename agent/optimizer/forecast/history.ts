/**
 * Measured history for the forecasts, read from the agent's own ledger: `reading` records, body {device, point, t,
 * value, unit} (agent/ledger/records.ts), as the poller writes them, downsampled to the mean per interval.
 *
 * Reading 14 days of 5-s readings means scanning millions of records, so LedgerHistory keeps the interval sums of
 * the series it was asked for in memory (a few thousand numbers per series) and afterwards reads only the records
 * appended since its last look: the first call for a series pays for the window, every later one for one interval.
 * `warm()` does the first read in steps of a few hours that yield to the event loop, so a starting agent does not stall
 * its polling while the forecasts learn.
 *
 * Only readings in W count (the poller records every power point in W, whatever the device's own unit); a series
 * whose readings come in another unit is logged once, as a config mistake (an energy counter given as a power point).
 * Pruned records have no body any more: there is simply less history.
 */
import type { Logger } from '../../logger.js';
import type { SqliteDatabase } from '../../store/database.js';
import { firstSeqAtOrAfter, lastRecordSeq, readingTexts } from '../../store/reading-history.js';
import type { PowerSample } from './pv.js';

export type { PowerSample } from './pv.js';

/** Where the forecasts get measurements: means per interval of one device point, W. */
export interface HistorySource {
  /** Length of the intervals the samples are means over, ms. */
  readonly stepMs: number;
  /**
   * One sample per interval that has readings, `t` its start (a multiple of stepMs since the epoch), `w` the mean of
   * its readings, for intervals starting in [from, to) (from rounded down to the step), in time order. Intervals
   * without readings are left out; the interval still running at `to` holds the readings so far.
   */
  samples(device: string, point: string, from: number, to: number): PowerSample[];
  /** Optional hint: several series will be asked for over [from, to); a source may read them in one pass. */
  prefetch?(series: readonly SeriesRef[], from: number, to: number): void;
}

export interface SeriesRef {
  readonly device: string;
  readonly point: string;
}

export interface LedgerHistoryOptions {
  /** The agent database (store/agent-db.ts); a read-only connection is enough. */
  readonly db: SqliteDatabase;
  /** Interval of the means, ms. Default 15 min. */
  readonly stepMs?: number;
  /** History kept in memory and served, ms: older intervals are dropped. Default 15 days. */
  readonly keepMs?: number;
  /**
   * How far a record's append time may trail its reading's time or run ahead of it, ms (the time window is found by
   * bisection on seq, see store/reading-history.ts). The poller appends a cycle's readings as soon as they are read,
   * so seconds would do. Default 15 min.
   */
  readonly slackMs?: number;
  /** History warm() reads between two yields to the event loop, ms. Default 6 h. */
  readonly warmStepMs?: number;
  /** Records read per query, to bound memory. Default 100,000. */
  readonly chunkRecords?: number;
  readonly logger?: Logger;
}

const DAY_MS = 86_400_000;

interface SeriesState {
  readonly device: string;
  readonly point: string;
  /** Intervals starting at or after this time are complete up to `through` (Infinity: nothing read yet). */
  coveredFrom: number;
  /** Interval start -> sum and count of the readings in W. */
  readonly sums: Map<number, { sum: number; count: number }>;
  warnedUnit: boolean;
}

/**
 * The canonical text of a 5-field reading (what the poller writes): device and point as JSON strings, then t, unit
 * and value. Anything else (a body with more fields) takes the slow path through JSON.parse.
 */
const FAST_READING =
  /^\{"body":\{"device":("(?:[^"\\]|\\.)*"),"point":("(?:[^"\\]|\\.)*"),"t":(\d+),"unit":("(?:[^"\\]|\\.)*"),"value":(-?\d+)\},"seq":/;

const seriesKey = (device: string, point: string) => `${JSON.stringify(device)}${JSON.stringify(point)}`;

/** HistorySource over the ledger in the agent database, with an in-memory cache of interval sums. */
export class LedgerHistory implements HistorySource {
  readonly stepMs: number;
  private readonly db: SqliteDatabase;
  private readonly keepMs: number;
  private readonly slackMs: number;
  private readonly warmStepMs: number;
  private readonly chunkRecords: number;
  private readonly logger: Logger | undefined;
  private readonly series = new Map<string, SeriesState>();
  /** Every tracked series holds the records with seq <= through (undefined: nothing read yet). */
  private through: number | undefined;
  private scanned = 0;

  constructor(options: LedgerHistoryOptions) {
    this.db = options.db;
    this.stepMs = options.stepMs ?? 15 * 60_000;
    this.keepMs = options.keepMs ?? 15 * DAY_MS;
    this.slackMs = options.slackMs ?? 15 * 60_000;
    this.warmStepMs = options.warmStepMs ?? 6 * 3_600_000;
    this.chunkRecords = options.chunkRecords ?? 100_000;
    this.logger = options.logger;
    if (!(Number.isInteger(this.stepMs) && this.stepMs > 0)) {
      throw new RangeError(`ledger history: stepMs must be a positive integer, got ${this.stepMs}`);
    }
  }

  /** Records read from the database so far (for the benchmark and for status). */
  get recordsScanned(): number {
    return this.scanned;
  }

  samples(device: string, point: string, from: number, to: number): PowerSample[] {
    const s = this.track(device, point);
    const start = this.alignDown(Math.max(from, to - this.keepMs));
    this.extend([s], start);
    this.catchUp();
    this.evict(to);
    const out: PowerSample[] = [];
    for (const [t, { sum, count }] of s.sums) {
      if (t >= start && t < to) out.push({ t, w: sum / count });
    }
    return out.sort((a, b) => a.t - b.t);
  }

  prefetch(series: readonly SeriesRef[], from: number, to: number): void {
    const start = this.alignDown(Math.max(from, to - this.keepMs));
    this.extendAll(
      series.map((r) => this.track(r.device, r.point)),
      start,
    );
    this.catchUp();
  }

  /**
   * Reads the history of `series` back to `from` in steps of warmStepMs, newest first, yielding to the event loop
   * between steps; afterwards `samples` over [from, to) reads only what was appended since.
   */
  async warm(series: readonly SeriesRef[], from: number, to: number): Promise<void> {
    const states = series.map((r) => this.track(r.device, r.point));
    const start = this.alignDown(Math.max(from, to - this.keepMs));
    const step = Math.max(this.stepMs, this.alignDown(this.warmStepMs));
    for (let edge = this.alignDown(to - step); ; edge -= step) {
      this.extendAll(states, Math.max(edge, start));
      if (edge <= start) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.catchUp();
  }

  private track(device: string, point: string): SeriesState {
    const key = seriesKey(device, point);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { device, point, coveredFrom: Number.POSITIVE_INFINITY, sums: new Map(), warnedUnit: false };
      this.series.set(key, s);
    }
    return s;
  }

  private alignDown(t: number): number {
    return t - (((t % this.stepMs) + this.stepMs) % this.stepMs);
  }

  /** Extends every series to `from`, one pass per group of series that are covered from the same time. */
  private extendAll(states: readonly SeriesState[], from: number): void {
    const groups = new Map<number, SeriesState[]>();
    for (const s of states) {
      if (from >= s.coveredFrom) continue;
      const group = groups.get(s.coveredFrom);
      if (group === undefined) groups.set(s.coveredFrom, [s]);
      else group.push(s);
    }
    for (const group of groups.values()) this.extend(group, from);
  }

  /**
   * Reads the readings with from <= t < coveredFrom of series that share `coveredFrom`, among the records up to
   * `through` (the records after it are catchUp's).
   */
  private extend(group: readonly SeriesState[], from: number): void {
    const covered = (group[0] as SeriesState).coveredFrom;
    if (from >= covered) return;
    this.through ??= lastRecordSeq(this.db);
    const lower = firstSeqAtOrAfter(this.db, from - this.slackMs) - 1;
    const upper = Number.isFinite(covered)
      ? Math.min(this.through, firstSeqAtOrAfter(this.db, covered + this.slackMs) - 1)
      : this.through;
    this.scan(lower, upper, group, (s, t) => t >= from && t < s.coveredFrom);
    for (const s of group) s.coveredFrom = from;
  }

  /** Reads what was appended since the last look, for every series read so far. */
  private catchUp(): void {
    if (this.through === undefined) return;
    const last = lastRecordSeq(this.db);
    if (last <= this.through) return;
    const states = [...this.series.values()].filter((s) => Number.isFinite(s.coveredFrom));
    this.scan(this.through, last, states, (s, t) => t >= s.coveredFrom);
    this.through = last;
  }

  private evict(to: number): void {
    const limit = this.alignDown(to - this.keepMs);
    for (const s of this.series.values()) {
      // Only once a day's worth is stale: a per-call sweep of every map would cost more than the memory it saves.
      if (!(limit - s.coveredFrom >= DAY_MS)) continue;
      for (const t of s.sums.keys()) if (t < limit) s.sums.delete(t);
      s.coveredFrom = limit;
    }
  }

  /** Adds the W readings of `states` with afterSeq < seq <= throughSeq that `accept` takes. */
  private scan(
    afterSeq: number,
    throughSeq: number,
    states: readonly SeriesState[],
    accept: (s: SeriesState, t: number) => boolean,
  ): void {
    if (states.length === 0 || throughSeq <= afterSeq) return;
    const byKey = new Map(states.map((s) => [seriesKey(s.device, s.point), s]));
    const series = states.map((s) => ({ device: s.device, point: s.point }));
    const step = this.stepMs;
    for (let lo = afterSeq; lo < throughSeq; lo += this.chunkRecords) {
      const texts = readingTexts(this.db, {
        afterSeq: lo,
        throughSeq: Math.min(throughSeq, lo + this.chunkRecords),
        series,
      });
      this.scanned += texts.length;
      for (const text of texts) {
        const reading = parseReading(text, byKey);
        if (reading === undefined || !accept(reading.series, reading.t)) continue;
        if (reading.unit !== 'W') {
          this.warnUnit(reading.series, reading.unit);
          continue;
        }
        const start = reading.t - (reading.t % step);
        const slot = reading.series.sums.get(start);
        if (slot === undefined) reading.series.sums.set(start, { sum: reading.value, count: 1 });
        else {
          slot.sum += reading.value;
          slot.count++;
        }
      }
    }
  }

  private warnUnit(s: SeriesState, unit: string): void {
    if (s.warnedUnit) return;
    s.warnedUnit = true;
    this.logger?.warn(
      { device: s.device, point: s.point, unit },
      `device '${s.device}' point '${s.point}' is recorded in ${unit}, not W: the forecasts ignore it; ` +
        'name the power point (W) of this device in the building or PV config',
    );
  }
}

interface ParsedReading {
  readonly series: SeriesState;
  readonly t: number;
  readonly value: number;
  readonly unit: string;
}

/** t/value/unit of a canonical reading record of one of the series in `byKey`; undefined for anything else. */
function parseReading(text: string, byKey: ReadonlyMap<string, SeriesState>): ParsedReading | undefined {
  const m = FAST_READING.exec(text);
  if (m !== null) {
    const series = byKey.get(`${m[1]}${m[2]}`);
    if (series === undefined) return undefined;
    // The unit is parsed only when it is not the usual "W": a JSON.parse per reading would cost more than the regex.
    const unit = m[4] === '"W"' ? 'W' : (JSON.parse(m[4] as string) as string);
    return { series, t: Number(m[3]), value: Number(m[5]), unit };
  }
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch {
    return undefined;
  }
  const body = (record as { body?: Record<string, unknown> } | null)?.body;
  if (typeof body !== 'object' || body === null) return undefined;
  const { device, point, t, value, unit } = body;
  if (typeof device !== 'string' || typeof point !== 'string' || typeof unit !== 'string') return undefined;
  if (!Number.isSafeInteger(t) || !Number.isSafeInteger(value)) return undefined;
  const series = byKey.get(seriesKey(device, point));
  return series === undefined ? undefined : { series, t: t as number, value: value as number, unit };
}

/** A LedgerHistory over the agent database (see LedgerHistoryOptions for the defaults). */
export function createLedgerHistory(options: LedgerHistoryOptions): LedgerHistory {
  return new LedgerHistory(options);
}
