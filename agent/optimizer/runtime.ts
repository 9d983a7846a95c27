/**
 * The optimizer inside a running MGMC: a warm solver in a worker thread, forecasts over the agent's own ledger, the
 * state from the poller, the setpoint keeper and the dispatcher, and the rolling service that ties them together.
 * main.ts calls startOptimizer() once the poller runs and stop() before the buses close.
 */
import type { ModbusBus, PlacedPoint } from '../../hardware/modbus/types.js';
import type { Clock } from '../clock.js';
import type { AgentConfig } from '../config/schema.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../logger.js';
import type { PointValue } from '../poll/poller.js';
import { SetpointKeeper } from '../poll/setpoints.js';
import type { SqliteDatabase } from '../store/database.js';
import { Dispatcher, resolveDispatchDevices } from './dispatch.js';
import { createLedgerHistory } from './forecast/history.js';
import type { CommittedTrade, Horizon, NetPositionCaps } from './model.js';
import { scheduleRecords } from './schedule-record.js';
import { OptimizerService } from './service.js';
import { dispatchConfigs, forecasterFromConfig, forecastSeries, pollerState } from './setup.js';
import { createWorkerSolver, type Solver } from './solver.js';

export interface OptimizerRuntimeDeps {
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly ledger: Ledger;
  readonly db: SqliteDatabase;
  /** The poller's latest values of a device (undefined for a device it does not poll). */
  readonly latest: (device: string) => ReadonlyMap<string, PointValue> | undefined;
  /** Every resolved device with its bus and all its placed points (controls included). */
  readonly devices: readonly { name: string; bus: ModbusBus; unit: number; points: readonly PlacedPoint[] }[];
  /** A solver to use instead of a fresh worker (tests). */
  readonly solver?: Solver;
  readonly commitments?: (horizon: Horizon) => { trades: readonly CommittedTrade[]; caps: NetPositionCaps };
  /** False when the market reports the net positions (the positions its trades leave); default true. */
  readonly publishPositions?: boolean;
  /** The DSO's adjustment contracts: caps in, net positions out (agent/link/adjustments.ts fits). */
  readonly dso?: {
    capsForHorizon(start: number, stepMs: number, steps: number): NetPositionCaps;
    onCaps(listener: () => void): () => void;
    publishPosition(interval: number, netW: number, durationMs?: number): Promise<unknown>;
  };
}

export interface OptimizerRuntime {
  readonly service: OptimizerService;
  readonly dispatcher: Dispatcher | undefined;
  /** Call after every poll cycle: the dispatcher samples the DERs' response. */
  sample(): void;
  stop(): Promise<void>;
}

export function startOptimizer(deps: OptimizerRuntimeDeps): OptimizerRuntime {
  const { config, clock, logger } = deps;
  const log = logger.child({ module: 'optimizer' });
  const solver = deps.solver ?? createWorkerSolver({ logger: log });
  const history = createLedgerHistory({ db: deps.db, logger: log });
  const revertSeconds = config.optimizer.revertSeconds;
  // Controls without a revert register (StorCtl_Mod, Victron ESS, a read-only validity timer) are renewed on this
  // period; half the revert time keeps them alive as long as the ones with a timer.
  const keeper = new SetpointKeeper({
    clock,
    logger: logger.child({ module: 'setpoints' }),
    sink: deps.ledger,
    revertSeconds,
    refreshMs: Math.min(30_000, (revertSeconds * 1000) / 2),
  });
  let dispatcher: Dispatcher | undefined;
  if (config.optimizer.dispatch) {
    const resolved = resolveDispatchDevices(dispatchConfigs(config), deps.devices);
    for (const p of resolved.problems) log.warn({ device: p.device }, `${p.message}; it is planned but not dispatched`);
    for (const p of resolved.warnings) log.warn({ device: p.device }, p.message);
    dispatcher = new Dispatcher({
      keeper,
      devices: resolved.devices,
      sink: deps.ledger,
      clock,
      logger: log,
      limits: { exportLimitW: Object.fromEntries(config.buildings.map((b) => [b.name, b.exportLimitW])) },
      latest: (device) => deps.latest(device) ?? new Map(),
      // The connection meters let the dispatcher absorb unplanned surplus into the battery in real time.
      buildings: Object.fromEntries(
        config.buildings.flatMap((b) =>
          b.load.meter === undefined ? [] : [[b.name, { device: b.load.meter, point: b.load.meterPoint }]],
        ),
      ),
    });
  }
  const service = new OptimizerService({
    config,
    clock,
    logger: log,
    solver,
    forecasts: forecasterFromConfig(config, history),
    state: pollerState(config, deps.latest, () => clock.now()),
    record: (records) => deps.ledger.append(records),
    toRecords: scheduleRecords,
    ...(dispatcher === undefined ? {} : { dispatcher }),
    commitments: (h) => {
      const base = deps.commitments?.(h) ?? { trades: [], caps: {} };
      const dsoCaps = deps.dso?.capsForHorizon(h.start, h.stepMs, h.steps);
      return { trades: base.trades, caps: mergeCaps(base.caps, dsoCaps) };
    },
    onPlanned: (schedule) => {
      // The DSO checks the feeder with the next hour's net positions (an equivalent load, no building detail).
      const dso = deps.dso;
      if (dso === undefined || deps.publishPositions === false || schedule.status !== 'optimal') return;
      const h = schedule.horizon;
      for (let t = 0; t < Math.min(h.steps, Math.ceil(3_600_000 / h.stepMs)); t++) {
        dso
          .publishPosition(h.start + t * h.stepMs, Math.round(schedule.netPositionW[t] ?? 0), h.stepMs)
          .catch((error: unknown) => log.warn({ err: error }, 'could not report the net position to the DSO'));
      }
    },
  });
  // New caps from the DSO: plan again at once, within them.
  const unsubscribe = deps.dso?.onCaps(() => {
    void service.runOnce();
  });
  // The first read of two weeks of history takes seconds on a gateway: done in slices that yield to the event loop,
  // so polling goes on; planning starts once it is in memory (later reads fetch only what was appended).
  let stopped = false;
  const now = clock.now();
  history
    .warm(forecastSeries(config), now - 15 * 86_400_000, now)
    .catch((error: unknown) =>
      log.warn({ err: error }, 'reading the history for the forecasts failed; planning without'),
    )
    .finally(() => {
      if (!stopped) service.start();
    });
  log.info(
    {
      buildings: config.buildings.length,
      dispatch: dispatcher !== undefined,
      stepMinutes: config.optimizer.stepMinutes,
    },
    'optimizer started',
  );
  return {
    service,
    dispatcher,
    sample: () => dispatcher?.sample(),
    async stop() {
      stopped = true;
      unsubscribe?.();
      service.stop();
      // Hand the devices back before the buses close: batteries to their own mode, PV to 100 %.
      if (dispatcher !== undefined) {
        try {
          await dispatcher.releaseAll();
        } catch (error) {
          log.warn({ err: error }, 'could not hand every device back; their revert timers will');
        }
      }
      keeper.stop();
      if (deps.solver === undefined) await solver.close();
    },
  };
}

/** The tighter of two caps per interval. */
function mergeCaps(a: NetPositionCaps, b: NetPositionCaps | undefined): NetPositionCaps {
  if (b === undefined) return a;
  const min = (x: readonly (number | undefined)[] | undefined, y: readonly (number | undefined)[] | undefined) => {
    if (x === undefined) return y;
    if (y === undefined) return x;
    return Array.from({ length: Math.max(x.length, y.length) }, (_, i) => {
      const u = x[i];
      const v = y[i];
      return u === undefined ? v : v === undefined ? u : Math.min(u, v);
    });
  };
  const maxImportW = min(a.maxImportW, b.maxImportW);
  const maxExportW = min(a.maxExportW, b.maxExportW);
  return { ...(maxImportW === undefined ? {} : { maxImportW }), ...(maxExportW === undefined ? {} : { maxExportW }) };
}
