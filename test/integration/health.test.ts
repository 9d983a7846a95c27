/**
 * The health endpoints over real HTTP on a free loopback port: /metrics in Prometheus text, /healthz following the
 * agent's phase, /status built from a running MGMC's parts, 404 and 405 for the rest, a clear refusal when the port
 * is taken, and a close() that does not wait for a scraper's keep-alive connection.
 */
import { Agent, request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandError, EXIT } from '../../agent/commands/io.js';
import { startEndpoints } from '../../agent/commands/run.js';
import {
  type AgentPhase,
  type HealthServer,
  HealthServerError,
  healthOf,
  type MgmcStatusReport,
  type MgmcStatusSource,
  mgmcStatus,
  scheduleReport,
  startHealthServer,
} from '../../agent/health.js';
import { createLogger, silentLogger } from '../../agent/logger.js';
import { AgentMetrics } from '../../agent/metrics.js';
import type { SiteSchedule } from '../../agent/optimizer/schedule.js';

const NOW = Date.UTC(2026, 5, 22, 12, 7);
const STEP = 15 * 60_000;

/** A plan of 8 quarter hours from 11:45 UTC: step t has net position 100 t W, the battery -10 t W. */
function schedule(): SiteSchedule {
  const steps = 8;
  const netPositionW = Array.from({ length: steps }, (_, t) => 100 * t);
  return {
    horizon: { start: NOW - 22 * 60_000, stepMs: STEP, steps },
    status: 'optimal',
    buildings: [
      {
        name: 'home',
        ders: [
          { name: 'battery', kind: 'battery', powerW: netPositionW.map((w) => -w / 10) },
          { name: 'pv', kind: 'pv', powerW: netPositionW.map(() => 1500.4) },
        ],
      },
    ],
    netPositionW,
    solveMs: 12.3,
  } as unknown as SiteSchedule;
}

function mgmcSource(): MgmcStatusSource {
  return {
    address: '0x00000000000000000000000000000000000000A1',
    devices: () => [
      {
        name: 'pv',
        bus: 'lan',
        unit: 1,
        state: 'online',
        lastGood: NOW - 400,
        lastAttempt: NOW - 400,
        lastError: undefined,
        consecutiveFailures: 0,
        cycles: 50,
        failedCycles: 1,
        overruns: 0,
      },
    ],
    unresolved: () => [],
    meters: () => [],
    ledger: { sealedHeight: 9, lastSeq: 450, unsealedCount: 0 },
    link: { url: 'mqtt://127.0.0.1:1883', state: 'online', online: true, connectionCount: 1 },
    sync: {
      stats: () =>
        ({
          authorization: { status: 'authorized' },
          outboxDepth: 1,
          outbox: { oldestPendingAgeMs: 800 },
          shippedHeight: 9,
          dsoHeight: 4,
          receipts: 8,
          anchoredHeight: 8,
        }) as never,
      lastReceiptTime: () => NOW - 2000,
    },
    optimizer: {
      service: {
        stats: () => ({ runs: 3, failures: 0, lastRunAt: NOW - 60_000, lastSolveMs: 12.3, lastStatus: 'optimal' }),
        current: schedule,
      },
    },
    market: undefined,
  };
}

let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(phase: { value: AgentPhase; open: boolean }): Promise<HealthServer> {
  const metrics = new AgentMetrics();
  const source = mgmcSource();
  metrics.watchMgmc({ ...source, market: undefined });
  const health = () => healthOf(phase.value, phase.open);
  server = await startHealthServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    metrics,
    health,
    status: () =>
      phase.value === 'starting'
        ? undefined
        : mgmcStatus(source, { site: 'test site', chainId: 7, startedAt: NOW - 3_600_000, now: NOW, health: health() }),
  });
  return server;
}

describe('the health endpoints over HTTP', () => {
  it('serve /metrics, /healthz and /status on a free port, 404 elsewhere and 405 for writes', async () => {
    const phase = { value: 'running' as AgentPhase, open: true };
    const { url, port } = await serve(phase);
    expect(port).toBeGreaterThan(0);
    expect(url).toBe(`http://127.0.0.1:${port}`);

    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).toMatch(/^mgmc_ledger_sealed_height 9$/m);
    expect(text).toMatch(/^mgmc_outbox_depth 1$/m);
    expect(text).toMatch(/^mgmc_broker_connected 1$/m);

    const healthz = await fetch(`${url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toEqual({ status: 'ok' });

    const status = await fetch(`${url}/status?verbose=1`);
    expect(status.status).toBe(200);
    expect(status.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const report = (await status.json()) as MgmcStatusReport;
    expect(report).toMatchObject({
      role: 'mgmc',
      site: 'test site',
      address: '0x00000000000000000000000000000000000000A1',
      chainId: 7,
      time: NOW,
      startedAt: NOW - 3_600_000,
      health: { status: 'ok' },
      link: { url: 'mqtt://127.0.0.1:1883', state: 'online', connected: true, connections: 1 },
      devices: [{ name: 'pv', state: 'online', lastGood: NOW - 400, lastError: null, reads: 50, errors: 1 }],
      ledger: { height: 9, anchoredHeight: 8, lastSeq: 450, unsealed: 0 },
      sync: { authorization: 'authorized', outboxDepth: 1, oldestUnacknowledgedMs: 800, lastReceiptAt: NOW - 2000 },
      optimizer: { runs: 3, failures: 0, lastSolveMs: 12.3, schedule: { status: 'optimal', stepMs: STEP } },
      market: null,
    });
    expect(report.optimizer?.schedule?.steps).toHaveLength(4);

    const missing = await fetch(`${url}/nothing`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: string }).error).toContain('/metrics, /healthz and /status');
    const post = await fetch(`${url}/status`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    await post.body?.cancel();
  });

  it('/healthz and /status answer 503 with the reason while starting, stopping or with the database closed', async () => {
    const phase = { value: 'starting' as AgentPhase, open: false };
    const { url } = await serve(phase);
    const check = async (path: string) => {
      const response = await fetch(`${url}${path}`);
      return { status: response.status, body: (await response.json()) as { health?: unknown } };
    };
    expect(await check('/healthz')).toEqual({ status: 503, body: { status: 'unavailable', reason: 'starting' } });
    expect(await check('/status')).toEqual({ status: 503, body: { status: 'unavailable', reason: 'starting' } });
    phase.value = 'running';
    expect(await check('/healthz')).toEqual({
      status: 503,
      body: { status: 'unavailable', reason: 'the ledger database is closed' },
    });
    phase.open = true;
    expect((await check('/healthz')).status).toBe(200);
    phase.value = 'stopping';
    expect(await check('/healthz')).toEqual({ status: 503, body: { status: 'unavailable', reason: 'stopping' } });
    // /status still tells what the agent is doing while it stops.
    const status = await check('/status');
    expect(status.status).toBe(200);
    expect(status.body.health).toEqual({ status: 'unavailable', reason: 'stopping' });
  });

  it('refuses a port that is in use, naming the port and the config key', async () => {
    const first = await serve({ value: 'running', open: true });
    const error = await startHealthServer({
      host: '127.0.0.1',
      port: first.port,
      logger: silentLogger(),
      metrics: new AgentMetrics(),
      health: () => ({ status: 'ok' }),
      status: () => undefined,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HealthServerError);
    expect((error as HealthServerError).code).toBe('EADDRINUSE');
    expect((error as Error).message).toBe(
      `cannot serve metrics and status on 127.0.0.1:${first.port}: port ${first.port} is in use (another agent or ` +
        'program listens there): set metrics.port in the config to a free port, or 0 for any free port',
    );
  });

  it('closes at once even while a client keeps its connection alive', async () => {
    const { url } = await serve({ value: 'running', open: true });
    const agent = new Agent({ keepAlive: true });
    const body = await new Promise<string>((resolve, reject) => {
      request(`${url}/healthz`, { agent }, (response) => {
        let text = '';
        response.on('data', (chunk) => {
          text += chunk;
        });
        response.on('end', () => resolve(text));
      })
        .on('error', reject)
        .end();
    });
    expect(JSON.parse(body)).toEqual({ status: 'ok' });
    // Without dropping the idle keep-alive socket, close() would wait for the client to hang up.
    const closed = server?.close();
    server = undefined;
    await expect(closed).resolves.toBeUndefined();
    agent.destroy();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});

describe("mgmc run's endpoints", () => {
  const parts = { metrics: new AgentMetrics(), health: () => ({ status: 'ok' as const }), status: () => undefined };

  it('refuse to start on a port written in the config that is taken (exit 78, naming the key)', async () => {
    const taken = await serve({ value: 'running', open: true });
    const error = await startEndpoints(
      { enabled: true, host: '127.0.0.1', port: taken.port },
      silentLogger(),
      parts,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).exitCode).toBe(EXIT.config);
    expect((error as Error).message).toContain(`port ${taken.port} is in use`);
    expect((error as Error).message).toContain('set metrics.port in the config');
  });

  it('run without them, logging why, when only the default port is taken (another agent on this host)', async () => {
    const taken = await serve({ value: 'running', open: true });
    const lines: string[] = [];
    const logger = createLogger({ destination: { write: (line: string) => lines.push(line) } });
    const none = await startEndpoints({ enabled: true, host: '127.0.0.1' }, logger, parts, taken.port);
    expect(none).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      level: 50,
      module: 'run',
      port: taken.port,
      msg: expect.stringMatching(/is in use .*; running without them$/),
    });
  });

  it('refuse an address that is not this machine, naming metrics.host', async () => {
    const error = await startEndpoints({ enabled: true, host: '192.0.2.1', port: 0 }, silentLogger(), parts).catch(
      (e: unknown) => e,
    );
    expect((error as CommandError).exitCode).toBe(EXIT.config);
    expect((error as Error).message).toContain('192.0.2.1 is not an address of this machine: fix metrics.host');
  });
});

describe('the schedule in /status', () => {
  it('shows the step in force and the next three, power rounded to W', () => {
    const report = scheduleReport(schedule(), NOW);
    // 12:07 is in the step that began at 12:00 (the second of the plan).
    expect(report?.steps.map((s) => new Date(s.start).toISOString().slice(11, 16))).toEqual([
      '12:00',
      '12:15',
      '12:30',
      '12:45',
    ]);
    expect(report?.steps[0]).toEqual({
      start: Date.UTC(2026, 5, 22, 12, 0),
      netW: 100,
      ders: { 'home/battery': -10, 'home/pv': 1500 },
    });
  });

  it('has nothing to show before the first plan or past its horizon', () => {
    expect(scheduleReport(undefined, NOW)).toBeNull();
    expect(scheduleReport(schedule(), NOW + 3 * 3_600_000)).toBeNull();
    // 13:22 is in the last but one step (13:15), so only two are left.
    expect(scheduleReport(schedule(), NOW + 75 * 60_000)?.steps).toHaveLength(2);
  });
});
