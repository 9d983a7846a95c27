/**
 * Rolling re-optimization inside the running agent: at every interval boundary (UTC, so a DST change never skips or
 * doubles a run) the site is re-planned from the present state and fresh forecasts, the schedule is signed into the
 * ledger, and the current interval is dispatched. The solver runs in a worker, so polling never waits for it; a run
 * that is still solving when the next boundary comes is not started twice.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { AgentConfig } from '../config/schema.js';
import type { NewRecord } from '../ledger/records.js';
import type { Logger } from '../logger.js';
import type { CommittedTrade, Horizon, NetPositionCaps } from './model.js';
import { optimizeSite, type PriceResponseCurve, priceResponse } from './optimize.js';
import type { SiteSchedule } from './schedule.js';
import { alignedHorizon, buildSiteModel, type ForecastSource, type SiteState } from './site-model.js';
import type { Solver } from './solver.js';

export interface ScheduleDispatcher {
  /** Writes the setpoints of the interval containing `now`. */
  apply(schedule: SiteSchedule, now: number): Promise<unknown>;
  /** Records how the DERs followed the last interval's setpoints. */
  recordDeviations?(now: number): void;
}

export interface OptimizerServiceDeps {
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly solver: Solver;
  readonly forecasts: ForecastSource;
  readonly state: SiteState;
  /** Appends records to the ledger (signed when the block seals). */
  readonly record: (records: NewRecord[]) => void;
  readonly toRecords: (schedule: SiteSchedule) => NewRecord[];
  readonly dispatcher?: ScheduleDispatcher;
  /** The market's committed trades and the DSO's caps over a horizon, when those parts run. */
  readonly commitments?: (horizon: Horizon) => { trades: readonly CommittedTrade[]; caps: NetPositionCaps };
  /** Called with every new schedule (the DSO link reports the net position from it). */
  readonly onPlanned?: (schedule: SiteSchedule) => void;
}

export interface OptimizerStats {
  readonly runs: number;
  readonly failures: number;
  readonly lastRunAt: number | undefined;
  readonly lastSolveMs: number | undefined;
  readonly lastStatus: SiteSchedule['status'] | undefined;
}

export class OptimizerService {
  private timer: TimerHandle | undefined;
  private running: Promise<SiteSchedule | undefined> | undefined;
  private latest: SiteSchedule | undefined;
  private stopped = false;
  private runs = 0;
  private failures = 0;
  private lastRunAt: number | undefined;

  constructor(private readonly deps: OptimizerServiceDeps) {}

  /** Plans now, then at every interval boundary. */
  start(): void {
    this.stopped = false;
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** The schedule in force (undefined before the first run). */
  current(): SiteSchedule | undefined {
    return this.latest;
  }

  stats(): OptimizerStats {
    return {
      runs: this.runs,
      failures: this.failures,
      lastRunAt: this.lastRunAt,
      lastSolveMs: this.latest?.solveMs,
      lastStatus: this.latest?.status,
    };
  }

  /** Plans once for `now` (the clock's time by default); concurrent calls share one run. */
  runOnce(now = this.deps.clock.now()): Promise<SiteSchedule | undefined> {
    if (this.running !== undefined) return this.running;
    this.running = this.plan(now).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The market's question: net quantity the site would trade in these intervals at these prices. */
  async priceResponse(steps: readonly number[], now = this.deps.clock.now()): Promise<PriceResponseCurve[]> {
    const { site } = this.model(now);
    return priceResponse(site, this.deps.solver, { steps });
  }

  private model(now: number) {
    const opt = this.deps.config.optimizer;
    const c = this.deps.commitments?.(alignedHorizon(now, opt.stepMinutes, opt.horizonHours));
    return buildSiteModel(this.deps.config, {
      now,
      state: this.deps.state,
      forecasts: this.deps.forecasts,
      ...(c === undefined ? {} : { trades: c.trades, caps: c.caps }),
    });
  }

  private async plan(now: number): Promise<SiteSchedule | undefined> {
    const log = this.deps.logger;
    this.lastRunAt = now;
    try {
      this.deps.dispatcher?.recordDeviations?.(now);
      const { site } = this.model(now);
      const schedule = await optimizeSite(site, this.deps.solver, {
        timeLimitSeconds: this.deps.config.optimizer.timeLimitSeconds,
      });
      this.runs++;
      this.latest = schedule;
      for (const d of schedule.diagnosis) {
        (d.severity === 'error' ? log.error : log.warn).call(log, { building: d.building, der: d.der }, d.message);
      }
      log.info(
        {
          status: schedule.status,
          solveMs: Math.round(schedule.solveMs),
          cost: Number(schedule.cost.total.toFixed(4)),
        },
        `planned ${site.horizon.steps} intervals from ${new Date(site.horizon.start).toISOString()}`,
      );
      this.deps.record(this.deps.toRecords(schedule));
      try {
        this.deps.onPlanned?.(schedule);
      } catch (error) {
        log.warn({ err: error }, `reporting the new schedule failed: ${(error as Error).message}`);
      }
      if (this.deps.config.optimizer.dispatch && this.deps.dispatcher !== undefined) {
        await this.deps.dispatcher.apply(schedule, this.deps.clock.now());
      }
      return schedule;
    } catch (error) {
      this.failures++;
      log.error({ err: error }, `planning failed: ${(error as Error).message}; the previous schedule stays in force`);
      return undefined;
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    await this.runOnce();
    if (this.stopped) return;
    const stepMs = this.deps.config.optimizer.stepMinutes * 60_000;
    const now = this.deps.clock.now();
    // The next boundary in UTC; a few ms after it, so the new interval's state is what gets planned.
    const wait = stepMs - (now % stepMs) + 5;
    this.timer = this.deps.clock.setTimeout(() => void this.tick(), wait);
  }
}
