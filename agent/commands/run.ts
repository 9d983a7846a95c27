/**
 * mgmc run --config FILE: the agent as a service, in the role its config names (mgmc or dso). Logs are pino JSON on
 * stdout, one `module` per part. The health endpoints (/metrics, /healthz, /status on metrics.host:port) listen from
 * before the agent starts, so a taken port fails at once, before any device is touched.
 *
 * SIGTERM or SIGINT stops it cleanly (polling stopped with the reads in flight stored, meters closed, the last block
 * sealed, 'offline' published to the broker, the database closed) and exits 0. The stop has a hard deadline below
 * systemd's and the 5 s we promise: past it the log names the part that did not finish and the process exits 70
 * rather than hang; what was committed is sealed at the next start. A bad config exits 78 so systemd does not
 * restart into the same error.
 */
import { resolve } from 'node:path';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { type AgentConfig, loadConfig } from '../config/index.js';
import { DEFAULT_METRICS_PORT } from '../config/metrics-schema.js';
import { type RunningDso, type StartDsoOptions, startDso } from '../dso/node.js';
import { loadFeederFile } from '../grid/feeder-file.js';
import {
  type AgentPhase,
  dsoStatus,
  type HealthServer,
  HealthServerError,
  type HealthServerOptions,
  healthOf,
  mgmcStatus,
  type ReportContext,
  type StatusReport,
  startHealthServer,
} from '../health.js';
import { createLogger, type Logger } from '../logger.js';
import { type RunningMgmc, startMgmc } from '../main.js';
import { dsoMarketOptions } from '../market/config.js';
import { AgentMetrics } from '../metrics.js';
import { CommandError, EXIT, type Io } from './io.js';

/** Under the 5 s a stop may take (docs/cli.md), with room for the process to exit. */
export const STOP_DEADLINE_MS = 4500;

export interface RunOptions {
  readonly config: string;
  /** For tests: resolves to stop instead of waiting for a signal. */
  readonly until?: Promise<unknown>;
  /** How long stopping may take, ms (default STOP_DEADLINE_MS). */
  readonly stopDeadlineMs?: number;
  /**
   * Ends the process when the stop failed or missed its deadline (default process.exit): whatever did not finish
   * (a socket, a timer) would otherwise keep it alive. Tests pass their own.
   */
  readonly exit?: (code: number) => void;
}

/** The DSO node's grid security (`dso.grid`) and market sequencer (`dso.market`), as startDso takes them. */
export async function dsoRunOptions(config: AgentConfig): Promise<Pick<StartDsoOptions, 'grid' | 'market'>> {
  const { grid, market } = config.dso;
  return {
    ...(grid === undefined
      ? {}
      : {
          grid: {
            feeder: await loadFeederFile(grid.feeder),
            intervalMs: grid.intervalMinutes * 60_000,
            // With a market its sequencer runs the network check after each bargaining attempt; the grid's own settle
            // timer would check (and send caps) on the first positions that arrive, in the middle of the bargaining.
            ...(market === undefined ? { settleMs: grid.settleSeconds * 1000 } : {}),
            maxRounds: grid.maxRounds,
          },
        }),
    ...(market === undefined ? {} : { market: dsoMarketOptions(market) }),
  };
}

export async function runAgent(io: Io, options: RunOptions): Promise<number> {
  const config = await loadConfig(resolve(options.config), { env: io.env });
  const clock = systemClock();
  const logger = createLogger({ level: config.log.level });
  const log = logger.child({ module: 'run' });
  const startedAt = clock.now();
  let phase: AgentPhase = 'starting';
  let agent: Started | undefined;
  const health = () => healthOf(phase, agent?.databaseOpen() ?? false);
  const context = () => ({
    site: config.site.name,
    chainId: config.chainId,
    startedAt,
    now: clock.now(),
    health: health(),
  });
  const metrics = new AgentMetrics({ processMetrics: true });
  const server = config.metrics.enabled
    ? await startEndpoints(config.metrics, logger, {
        metrics,
        health,
        // Once the database is closed (the end of a stop) there is nothing left to read: 503 with the reason.
        status: () => (agent?.databaseOpen() ? agent.status(context()) : undefined),
      })
    : undefined;

  try {
    agent =
      config.role === 'dso'
        ? await startDsoRole(config, clock, logger, metrics)
        : await startMgmcRole(config, clock, logger, metrics);
  } catch (err) {
    await server?.close();
    throw err;
  }
  phase = 'running';
  const running = agent;

  const stopSignal = new Promise<string>((done) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      done(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    options.until?.then(() => onSignal('SIGTERM'));
  });
  const signal = await stopSignal;
  phase = 'stopping';
  log.info({ signal }, 'stopping');

  const code = await stopWithin(
    async (step) => {
      await running.stop(step);
      step('health endpoints');
      await server?.close();
    },
    {
      clock,
      log,
      deadlineMs: options.stopDeadlineMs ?? STOP_DEADLINE_MS,
      exit: options.exit ?? ((code) => process.exit(code)),
    },
  );
  if (code === EXIT.ok) log.info({ signal }, 'stopped cleanly');
  return code;
}

export interface StopOptions {
  readonly clock: Clock;
  readonly log: Logger;
  readonly deadlineMs: number;
  /** Ends the process; called only when the stop failed or missed the deadline. */
  readonly exit: (code: number) => void;
}

/**
 * Runs `stop` (which names each part as it begins) against a deadline. On time: EXIT.ok. Late or failed: logs the
 * part it was at and the parts that finished, calls exit(70) and returns 70, so a hung socket or device cannot keep
 * the service from ending (systemd would otherwise wait, then SIGKILL it, with nothing in the log to say why).
 */
export async function stopWithin(
  stop: (step: (name: string) => void) => Promise<void>,
  options: StopOptions,
): Promise<number> {
  const { clock, log, deadlineMs } = options;
  const finished: string[] = [];
  let current = 'stopping';
  const step = (name: string) => {
    finished.push(current);
    current = name;
  };
  let timer: TimerHandle | undefined;
  const deadline = new Promise<'late'>((done) => {
    timer = clock.setTimeout(() => done('late'), deadlineMs);
  });
  let outcome: 'stopped' | 'late';
  try {
    outcome = await Promise.race([stop(step).then(() => 'stopped' as const), deadline]);
  } catch (err) {
    log.error({ err, step: current, finished }, `stopping failed at ${current}: ${(err as Error).message}`);
    options.exit(EXIT.software);
    return EXIT.software;
  } finally {
    timer?.cancel();
  }
  if (outcome === 'late') {
    log.error(
      { deadlineMs, step: current, finished },
      `the stop did not finish within ${deadlineMs} ms: still at ${current}; exiting anyway ` +
        '(records already stored are sealed at the next start)',
    );
    options.exit(EXIT.software);
    return EXIT.software;
  }
  return EXIT.ok;
}

/** A started role, as runAgent drives it. */
interface Started {
  status(context: ReportContext): StatusReport;
  databaseOpen(): boolean;
  stop(step: (name: string) => void): Promise<void>;
}

async function startMgmcRole(
  config: AgentConfig,
  clock: Clock,
  logger: Logger,
  metrics: AgentMetrics,
): Promise<Started> {
  const mgmc: RunningMgmc = await startMgmc(config, { clock, logger, onRead: metrics.observeRead });
  metrics.watchMgmc(mgmc);
  return {
    status: (context) => mgmcStatus(mgmc, context),
    databaseOpen: () => mgmc.store.db.open,
    stop: (step) => mgmc.stop(step),
  };
}

async function startDsoRole(
  config: AgentConfig,
  clock: Clock,
  logger: Logger,
  metrics: AgentMetrics,
): Promise<Started> {
  const dso: RunningDso = await startDso(config, { clock, logger, ...(await dsoRunOptions(config)) });
  metrics.watchDso(dso);
  return {
    status: (context) => dsoStatus(dso, context),
    databaseOpen: () => dso.store.db.open,
    stop: async (step) => {
      step('the DSO node (last DSO block, broker, database)');
      await dso.stop();
    },
  };
}

/**
 * Listens on metrics.host:port. A port written in the config must be free: the agent refuses to start (exit 78)
 * naming it. The default port may be taken by another agent on the same host (a DSO node beside an MGMC): then this
 * one runs without the endpoints and says so in its log.
 */
export async function startEndpoints(
  metricsConfig: AgentConfig['metrics'],
  logger: Logger,
  parts: Pick<HealthServerOptions, 'metrics' | 'health' | 'status'>,
  defaultPort = DEFAULT_METRICS_PORT,
): Promise<HealthServer | undefined> {
  const { host, port } = metricsConfig;
  try {
    return await startHealthServer({ host, port: port ?? defaultPort, logger, ...parts });
  } catch (err) {
    if (!(err instanceof HealthServerError)) throw err;
    if (port === undefined && err.code === 'EADDRINUSE') {
      logger.child({ module: 'run' }).error({ host, port: defaultPort }, `${err.message}; running without them`);
      return undefined;
    }
    throw new CommandError(err.message, EXIT.config);
  }
}
