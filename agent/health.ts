/**
 * The agent's HTTP window for technicians and monitoring, on `metrics.host:metrics.port` (loopback by default):
 *   GET /metrics  Prometheus text (agent/metrics.ts)
 *   GET /healthz  200 {"status":"ok"} while the ledger is open and the agent is not stopping; 503 with the reason
 *   GET /status   the JSON `mgmc status` prints (StatusReport below); 503 like /healthz while starting
 * Anything else is 404; methods other than GET and HEAD are 405. The endpoints only read: nothing here can change
 * the agent, so no authentication is needed as long as the port stays on loopback.
 *
 * The status builders (mgmcStatus, dsoStatus) read what the running parts keep in memory; only the DSO's list of
 * MGMCs reads its database, which a technician's occasional request can afford.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { DsoStats } from './dso/node.js';
import type { RegistryEntry } from './dso/registry.js';
import type { LinkState } from './link/mqtt-client.js';
import type { AuthorizationStatus, SyncStats } from './link/sync.js';
import type { Logger } from './logger.js';
import type { MeterStatus } from './main.js';
import type { ParticipantStats } from './market/session.js';
import type { SiteSchedule } from './optimizer/schedule.js';
import type { OptimizerStats } from './optimizer/service.js';
import type { DeviceState, DeviceStatus } from './poll/poller.js';

// ---------------------------------------------------------------------------------------------------------------
// What /healthz and /status answer

export interface HealthCheck {
  readonly status: 'ok' | 'unavailable';
  /** Why not ok: starting, stopping, the ledger database closed. */
  readonly reason?: string;
}

/** The agent's phase as runAgent sees it. */
export type AgentPhase = 'starting' | 'running' | 'stopping';

export interface LinkStatus {
  readonly url: string;
  readonly state: LinkState;
  readonly connected: boolean;
  /** Connections made in this run (1 + reconnects). */
  readonly connections: number;
}

export interface DeviceReport {
  readonly name: string;
  readonly bus: string;
  readonly unit: number;
  readonly state: DeviceState;
  /** Times in ms since the Unix epoch; null when it never happened in this run. */
  readonly lastGood: number | null;
  readonly lastAttempt: number | null;
  readonly lastError: string | null;
  readonly consecutiveFailures: number;
  readonly reads: number;
  readonly errors: number;
}

export interface ScheduleStep {
  /** Start of the step, ms since the epoch. */
  readonly start: number;
  /** The site's planned net position, W: + import, - export. */
  readonly netW: number;
  /** Planned power of each DER, W, keyed `building/der`: pv output, battery + discharge / - charge, loads consumption. */
  readonly ders: Readonly<Record<string, number>>;
}

export interface ScheduleReport {
  readonly status: SiteSchedule['status'];
  readonly stepMs: number;
  /** The step in force and the next few. */
  readonly steps: readonly ScheduleStep[];
}

interface StatusBase {
  readonly site: string;
  readonly address: string;
  readonly chainId: number;
  /** The agent's clock when the report was made (ages are computed against it, not the reader's clock). */
  readonly time: number;
  readonly startedAt: number;
  readonly health: HealthCheck;
  readonly link: LinkStatus | null;
}

export interface MgmcStatusReport extends StatusBase {
  readonly role: 'mgmc';
  readonly devices: readonly DeviceReport[];
  /** Configured devices that could not be resolved (discovery failed); retried in the background. */
  readonly unresolved: readonly { readonly device: string; readonly message: string }[];
  readonly meters: readonly {
    readonly name: string;
    readonly connected: boolean;
    readonly firmware: string | null;
    readonly batches: number;
    readonly lastBatch: number | null;
    readonly lastError: string | null;
  }[];
  readonly ledger: {
    readonly height: number;
    /** Highest block with a DSO receipt; null without a link. */
    readonly anchoredHeight: number | null;
    readonly lastSeq: number;
    readonly unsealed: number;
  };
  /** The DSO link's store-and-forward state; null without a link. */
  readonly sync: {
    readonly authorization: AuthorizationStatus;
    /** Messages to the DSO not yet acknowledged (blocks without a receipt, a registration). */
    readonly outboxDepth: number;
    /** Age of the oldest of them, ms; null when the outbox is empty. */
    readonly oldestUnacknowledgedMs: number | null;
    readonly shippedHeight: number;
    readonly dsoHeight: number;
    readonly receipts: number;
    readonly lastReceiptAt: number | null;
  } | null;
  readonly optimizer: {
    readonly runs: number;
    readonly failures: number;
    readonly lastRunAt: number | null;
    readonly lastSolveMs: number | null;
    readonly schedule: ScheduleReport | null;
  } | null;
  readonly market: {
    readonly attempts: number;
    readonly finals: number;
    readonly disputes: number;
    readonly settlements: number;
    readonly deliveriesSent: number;
    readonly seals: number;
  } | null;
}

export interface DsoStatusReport extends StatusBase {
  readonly role: 'dso';
  readonly dso: {
    readonly anchor: boolean;
    readonly chainHeight: number;
    readonly pendingEntries: number;
    readonly blocks: DsoStats['blocks'];
    readonly receiptsSent: number;
    readonly headersSent: number;
    readonly registrations: number;
    readonly dropped: Readonly<Record<string, number>>;
    readonly publishFailures: number;
  };
  readonly mgmcs: readonly {
    readonly address: string;
    readonly status: RegistryEntry['status'];
    readonly bus: string | null;
    readonly anonym: string | null;
  }[];
}

export type StatusReport = MgmcStatusReport | DsoStatusReport;

/** How many steps of the plan /status shows: the one in force and the next three. */
export const SCHEDULE_STEPS = 4;

// ---------------------------------------------------------------------------------------------------------------
// Building the reports from a running agent

export interface ReportContext {
  readonly site: string;
  readonly chainId: number;
  readonly startedAt: number;
  readonly now: number;
  readonly health: HealthCheck;
}

interface LinkSource {
  readonly url: string;
  readonly state: LinkState;
  readonly online: boolean;
  readonly connectionCount: number;
}

/** The parts of a running MGMC the status reads (RunningMgmc fits). */
export interface MgmcStatusSource {
  readonly address: string;
  devices(): readonly DeviceStatus[];
  unresolved(): readonly { device: string; message: string }[];
  meters(): readonly MeterStatus[];
  readonly ledger: { readonly sealedHeight: number; readonly lastSeq: number; readonly unsealedCount: number };
  readonly link: LinkSource | undefined;
  readonly sync:
    | {
        stats(): Pick<
          SyncStats,
          'authorization' | 'outboxDepth' | 'outbox' | 'shippedHeight' | 'dsoHeight' | 'receipts' | 'anchoredHeight'
        >;
        lastReceiptTime(): number | undefined;
      }
    | undefined;
  readonly optimizer:
    | { readonly service: { stats(): OptimizerStats; current(): SiteSchedule | undefined } }
    | undefined;
  readonly market:
    | { readonly market: { stats(): { seals: number }; readonly participant: { stats(): ParticipantStats } } }
    | undefined;
}

/** The parts of a running DSO node the status reads (RunningDso fits). */
export interface DsoStatusSource {
  readonly address: string;
  readonly link: LinkSource;
  stats(): DsoStats;
  readonly registry: { list(): readonly RegistryEntry[] };
}

export function mgmcStatus(agent: MgmcStatusSource, context: ReportContext): MgmcStatusReport {
  const sync = agent.sync?.stats();
  const optimizer = agent.optimizer?.service;
  const optimizerStats = optimizer?.stats();
  const market = agent.market?.market;
  const participant = market?.participant.stats();
  return {
    role: 'mgmc',
    ...base(agent.address, agent.link, context),
    devices: agent.devices().map((d) => ({
      name: d.name,
      bus: d.bus,
      unit: d.unit,
      state: d.state,
      lastGood: d.lastGood ?? null,
      lastAttempt: d.lastAttempt ?? null,
      lastError: d.lastError ?? null,
      consecutiveFailures: d.consecutiveFailures,
      reads: d.cycles,
      errors: d.failedCycles,
    })),
    unresolved: agent.unresolved().map((u) => ({ device: u.device, message: u.message })),
    meters: agent.meters().map((m) => ({
      name: m.name,
      connected: m.connected,
      firmware: m.firmware ?? null,
      batches: m.batches,
      lastBatch: m.lastBatch ?? null,
      lastError: m.lastError ?? null,
    })),
    ledger: {
      height: agent.ledger.sealedHeight,
      anchoredHeight: sync?.anchoredHeight ?? null,
      lastSeq: agent.ledger.lastSeq,
      unsealed: agent.ledger.unsealedCount,
    },
    sync:
      sync === undefined
        ? null
        : {
            authorization: sync.authorization.status,
            outboxDepth: sync.outboxDepth,
            oldestUnacknowledgedMs: sync.outbox.oldestPendingAgeMs ?? null,
            shippedHeight: sync.shippedHeight,
            dsoHeight: sync.dsoHeight,
            receipts: sync.receipts,
            lastReceiptAt: agent.sync?.lastReceiptTime() ?? null,
          },
    optimizer:
      optimizerStats === undefined
        ? null
        : {
            runs: optimizerStats.runs,
            failures: optimizerStats.failures,
            lastRunAt: optimizerStats.lastRunAt ?? null,
            lastSolveMs: optimizerStats.lastSolveMs ?? null,
            schedule: scheduleReport(optimizer?.current(), context.now),
          },
    market:
      market === undefined || participant === undefined
        ? null
        : {
            attempts: participant.attempts,
            finals: participant.finals,
            disputes: participant.disputes,
            settlements: participant.settlements,
            deliveriesSent: participant.sent,
            seals: market.stats().seals,
          },
  };
}

export function dsoStatus(dso: DsoStatusSource, context: ReportContext): DsoStatusReport {
  const stats = dso.stats();
  return {
    role: 'dso',
    ...base(dso.address, dso.link, context),
    dso: {
      anchor: stats.anchor,
      chainHeight: stats.dsoHeight,
      pendingEntries: stats.pendingEntries,
      blocks: stats.blocks,
      receiptsSent: stats.receiptsSent,
      headersSent: stats.headersSent,
      registrations: stats.registrations,
      dropped: stats.dropped,
      publishFailures: stats.publishFailures,
    },
    mgmcs: dso.registry.list().map((e) => ({
      address: e.mgmc,
      status: e.status,
      bus: e.bus ?? null,
      anonym: e.anonym ?? null,
    })),
  };
}

function base(address: string, link: LinkSource | undefined, context: ReportContext): StatusBase {
  return {
    site: context.site,
    address,
    chainId: context.chainId,
    time: context.now,
    startedAt: context.startedAt,
    health: context.health,
    link:
      link === undefined
        ? null
        : { url: link.url, state: link.state, connected: link.online, connections: link.connectionCount },
  };
}

/** The step of the plan in force at `now` and the next few; null before the first plan or after its horizon. */
export function scheduleReport(schedule: SiteSchedule | undefined, now: number): ScheduleReport | null {
  if (schedule === undefined) return null;
  const { start, stepMs, steps } = schedule.horizon;
  const first = Math.max(0, Math.floor((now - start) / stepMs));
  if (first >= steps) return null;
  const out: ScheduleStep[] = [];
  for (let t = first; t < Math.min(steps, first + SCHEDULE_STEPS); t++) {
    const ders: Record<string, number> = {};
    for (const building of schedule.buildings) {
      for (const der of building.ders) ders[`${building.name}/${der.name}`] = Math.round(der.powerW[t] ?? 0);
    }
    out.push({ start: start + t * stepMs, netW: Math.round(schedule.netPositionW[t] ?? 0), ders });
  }
  return { status: schedule.status, stepMs, steps: out };
}

/** Healthy while the agent runs and its database is open; otherwise the reason, for /healthz and `mgmc status`. */
export function healthOf(phase: AgentPhase, databaseOpen: boolean): HealthCheck {
  if (phase === 'starting') return { status: 'unavailable', reason: 'starting' };
  if (phase === 'stopping') return { status: 'unavailable', reason: 'stopping' };
  if (!databaseOpen) return { status: 'unavailable', reason: 'the ledger database is closed' };
  return { status: 'ok' };
}

// ---------------------------------------------------------------------------------------------------------------
// The HTTP server

export interface HealthServerOptions {
  /** Address to listen on (config metrics.host). */
  readonly host: string;
  /** 0 picks a free port (config metrics.port). */
  readonly port: number;
  readonly logger: Logger;
  readonly metrics: { text(): Promise<string>; readonly contentType: string };
  readonly health: () => HealthCheck;
  /** Undefined while there is nothing to report yet (the agent is starting): /status answers 503 with health(). */
  readonly status: () => StatusReport | undefined;
}

export interface HealthServer {
  /** http://host:port, with the port actually bound. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections (a scraper's keep-alive must not hold the agent's exit). */
  close(): Promise<void>;
}

/** The server could not listen; `code` is Node's (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...). */
export class HealthServerError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'HealthServerError';
  }
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const log = options.logger.child({ module: 'health' });
  const server = createServer((request, response) => {
    handle(request, response, options).catch((err: unknown) => {
      log.error({ err, url: request.url }, `answering ${request.method} ${request.url} failed`);
      if (!response.headersSent) send(response, 500, { error: (err as Error).message });
      else response.destroy();
    });
  });
  await listen(server, options.host, options.port);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `http://${host}:${port}`;
  log.info({ url }, `health endpoints listening on ${url} (/metrics, /healthz, /status)`);
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function listen(server: Server, host: string, port: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new HealthServerError(listenProblem(host, port, code, (err as Error).message), code);
  }
}

function listenProblem(host: string, port: number, code: string | undefined, detail: string): string {
  const where = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return (
        `cannot serve metrics and status on ${where}: port ${port} is in use (another agent or program listens ` +
        'there): set metrics.port in the config to a free port, or 0 for any free port'
      );
    case 'EACCES':
      return `cannot serve metrics and status on ${where}: port ${port} needs privileges: set metrics.port to 1024 or above`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot serve metrics and status on ${where}: ${host} is not an address of this machine: fix metrics.host (127.0.0.1 for loopback)`;
    default:
      return `cannot serve metrics and status on ${where}: ${detail}: check metrics.host and metrics.port`;
  }
}

async function handle(request: IncomingMessage, response: ServerResponse, options: HealthServerOptions) {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  const known = path === '/metrics' || path === '/healthz' || path === '/status';
  if (!known) {
    send(response, 404, { error: `no such endpoint: ${path}; there are /metrics, /healthz and /status` });
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    send(response, 405, { error: `${request.method} is not served here: use GET` });
    return;
  }
  switch (path) {
    case '/metrics': {
      const text = await options.metrics.text();
      response.writeHead(200, { 'Content-Type': options.metrics.contentType, 'Cache-Control': 'no-store' });
      response.end(request.method === 'HEAD' ? undefined : text);
      return;
    }
    case '/healthz': {
      const health = options.health();
      send(response, health.status === 'ok' ? 200 : 503, health, request.method === 'HEAD');
      return;
    }
    default: {
      const report = options.status();
      if (report === undefined) send(response, 503, options.health(), request.method === 'HEAD');
      else send(response, 200, report, request.method === 'HEAD');
    }
  }
}

function send(response: ServerResponse, status: number, body: unknown, headOnly = false): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  response.end(headOnly ? undefined : text);
}
