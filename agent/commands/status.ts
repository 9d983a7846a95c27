/**
 * mgmc status [--config FILE | --url URL] [--json]: asks the running agent (its /status endpoint, agent/health.ts)
 * how it is doing and prints it for a technician: devices and how long ago each answered, the ledger and how much of
 * it the DSO has anchored, the outbox, the broker, the plan in force, the market. Exit 0 when the agent answers and is
 * healthy, 1 when it does not answer or is starting or stopping.
 *
 * With --config only the `metrics` section is read, straight from the YAML: the service's secrets (env:, file:) are
 * in the service's environment, not in the technician's shell, and the status needs none of them.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { DEFAULT_METRICS_PORT } from '../config/metrics-schema.js';
import type { DsoStatusReport, HealthCheck, MgmcStatusReport, StatusReport } from '../health.js';
import { CommandError, EXIT, type Io, table } from './io.js';

export interface StatusOptions {
  /** The agent's config: its metrics.host and metrics.port say where to ask. */
  readonly config?: string;
  /** Where to ask, e.g. http://127.0.0.1:9464; the default port on loopback when neither is given. */
  readonly url?: string;
  readonly json: boolean;
  /** How long to wait for the answer, ms. Default 5000. */
  readonly timeoutMs?: number;
}

export const DEFAULT_STATUS_URL = `http://127.0.0.1:${DEFAULT_METRICS_PORT}`;

export async function statusCommand(io: Io, options: StatusOptions): Promise<number> {
  if (options.config !== undefined && options.url !== undefined) {
    throw new CommandError('give --config or --url, not both', EXIT.usage);
  }
  const base =
    options.url !== undefined
      ? checkUrl(options.url)
      : options.config !== undefined
        ? await urlFromConfig(options.config)
        : DEFAULT_STATUS_URL;
  const answer = await ask(base, options.timeoutMs ?? 5000);
  if (answer.kind === 'unreachable') {
    io.err(`mgmc: no agent answers at ${base}: is it running? \`systemctl status mgmc-agent\` (${answer.detail})`);
    return EXIT.failed;
  }
  if (answer.kind === 'unavailable') {
    io.err(`mgmc: the agent at ${base} is ${answer.health.reason ?? 'not ready'}; ask again in a few seconds`);
    return EXIT.failed;
  }
  const report = answer.report;
  io.out(options.json ? JSON.stringify(report) : formatStatus(report));
  return report.health.status === 'ok' ? EXIT.ok : EXIT.failed;
}

type Answer =
  | { readonly kind: 'report'; readonly report: StatusReport }
  | { readonly kind: 'unavailable'; readonly health: HealthCheck }
  | { readonly kind: 'unreachable'; readonly detail: string };

async function ask(base: string, timeoutMs: number): Promise<Answer> {
  const url = new URL('/status', base);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    return { kind: 'unreachable', detail: failureText(err, timeoutMs) };
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new CommandError(
      `${url} answered ${response.status} but not with JSON: is an mgmc agent listening there? check the URL`,
      EXIT.dataError,
    );
  }
  if (response.status === 503) return { kind: 'unavailable', health: body as HealthCheck };
  const report = body as Partial<StatusReport>;
  if (!response.ok || (report.role !== 'mgmc' && report.role !== 'dso')) {
    throw new CommandError(
      `${url} answered ${response.status} with something that is not an mgmc agent's status: check the URL`,
      EXIT.dataError,
    );
  }
  return { kind: 'report', report: body as StatusReport };
}

/** Why fetch failed, in a few words: fetch hides the socket error in `cause`. */
function failureText(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

function checkUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CommandError(`--url ${text} is not a URL: give e.g. ${DEFAULT_STATUS_URL}`, EXIT.usage);
  }
  if (url.protocol !== 'http:') {
    throw new CommandError(
      `--url ${text}: the agent serves plain http on loopback, e.g. ${DEFAULT_STATUS_URL}`,
      EXIT.usage,
    );
  }
  return url.origin;
}

/** http://host:port from the config's metrics section (defaults filled in as the agent fills them). */
export async function urlFromConfig(file: string): Promise<string> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CommandError(
      `cannot read ${path}: ${code ?? (err as Error).message}`,
      code === 'ENOENT' ? EXIT.noInput : EXIT.config,
    );
  }
  let config: unknown;
  try {
    config = parse(text);
  } catch (err) {
    throw new CommandError(
      `${path} is not valid YAML (${(err as Error).message.split('\n')[0]}): \`mgmc config check ${file}\` shows where`,
      EXIT.config,
    );
  }
  const metrics = (config as { metrics?: unknown } | null)?.metrics ?? {};
  if (typeof metrics !== 'object' || metrics === null) {
    throw new CommandError(`${path}: metrics must be a section (host, port, enabled)`, EXIT.config);
  }
  const { enabled = true, host = '127.0.0.1', port = DEFAULT_METRICS_PORT } = metrics as Record<string, unknown>;
  if (enabled === false) {
    throw new CommandError(
      `${path}: metrics.enabled is false, so the agent serves no status: set it to true and restart the agent`,
      EXIT.config,
    );
  }
  if (typeof host !== 'string' || host === '') {
    throw new CommandError(`${path}: metrics.host must be an address such as 127.0.0.1`, EXIT.config);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CommandError(`${path}: metrics.port must be an integer from 0 to 65535`, EXIT.config);
  }
  if (port === 0) {
    throw new CommandError(
      `${path}: metrics.port is 0, so the agent picked a free port at start: find "health endpoints listening" ` +
        'in its log (journalctl -u mgmc-agent) and give that URL with --url',
      EXIT.usage,
    );
  }
  // An agent listening on every address is reached on loopback.
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The technician's summary

export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  const who = report.role === 'dso' ? 'DSO node' : 'MGMC';
  lines.push(`${who} "${report.site}"  ${report.address}  chain ${report.chainId}`);
  lines.push(
    `health: ${report.health.status}${report.health.reason ? ` (${report.health.reason})` : ''}  ` +
      `up ${duration(report.time - report.startedAt)}  (as of ${utc(report.time)})`,
  );
  const link = report.link;
  lines.push(
    link === null
      ? 'broker: no link configured'
      : `broker: ${link.url} ${link.connected ? 'connected' : link.state}, ${link.connections} connection(s) in this run`,
  );
  if (report.role === 'mgmc') formatMgmc(report, lines);
  else formatDso(report, lines);
  return lines.join('\n');
}

function formatMgmc(report: MgmcStatusReport, lines: string[]): void {
  const now = report.time;
  lines.push('');
  if (report.devices.length === 0) lines.push('devices: none polled');
  else {
    lines.push(
      table(
        ['DEVICE', 'BUS', 'UNIT', 'STATE', 'LAST GOOD READ', 'READS', 'ERRORS', 'LAST ERROR'],
        report.devices.map((d) => [
          d.name,
          d.bus,
          d.unit,
          d.state,
          ago(now, d.lastGood),
          d.reads,
          d.errors,
          d.lastError ?? '',
        ]),
      ),
    );
  }
  for (const u of report.unresolved) lines.push(`not polled: ${u.device}: ${u.message} (retried in the background)`);
  if (report.meters.length > 0) {
    lines.push('');
    lines.push(
      table(
        ['METER', 'LINE', 'FIRMWARE', 'BATCHES', 'LAST BATCH', 'LAST ERROR'],
        report.meters.map((m) => [
          m.name,
          m.connected ? 'open' : 'closed',
          m.firmware ?? '',
          m.batches,
          ago(now, m.lastBatch),
          m.lastError ?? '',
        ]),
      ),
    );
  }
  lines.push('');
  const ledger = report.ledger;
  lines.push(
    `ledger: height ${ledger.height}` +
      (ledger.anchoredHeight === null ? '' : `, anchored by the DSO through ${ledger.anchoredHeight}`) +
      `, last record ${ledger.lastSeq}, ${ledger.unsealed} unsealed`,
  );
  const sync = report.sync;
  if (sync !== null) {
    lines.push(
      `outbox: ${sync.outboxDepth} message(s) waiting for the DSO` +
        (sync.oldestUnacknowledgedMs === null ? '' : `, oldest ${duration(sync.oldestUnacknowledgedMs)}`) +
        `; last receipt ${ago(now, sync.lastReceiptAt)}; DSO authorization: ${sync.authorization}`,
    );
  }
  const optimizer = report.optimizer;
  if (optimizer === null) lines.push('optimizer: off');
  else {
    lines.push(
      `optimizer: ${optimizer.runs} plan(s), ${optimizer.failures} failed; last ${ago(now, optimizer.lastRunAt)}` +
        (optimizer.lastSolveMs === null ? '' : `, solved in ${Math.round(optimizer.lastSolveMs)} ms`),
    );
    const schedule = optimizer.schedule;
    if (schedule === null) lines.push('schedule: none in force yet');
    else {
      const ders = [...new Set(schedule.steps.flatMap((s) => Object.keys(s.ders)))];
      lines.push(`schedule (${schedule.status}, ${duration(schedule.stepMs)} steps, UTC, W):`);
      lines.push(
        table(
          ['FROM', 'NET', ...ders.map((d) => d.toUpperCase())],
          schedule.steps.map((s) => [utc(s.start).slice(11, 16), s.netW, ...ders.map((d) => s.ders[d] ?? '')]),
        ),
      );
    }
  }
  const market = report.market;
  if (market !== null) {
    lines.push(
      `market: ${market.attempts} attempt(s), ${market.finals} cleared, ${market.disputes} dispute(s), ` +
        `${market.settlements} settled, ${market.deliveriesSent} deliveries sent, ${market.seals} seal(s) checked`,
    );
  }
}

function formatDso(report: DsoStatusReport, lines: string[]): void {
  const d = report.dso;
  lines.push('');
  lines.push(
    `DSO chain: height ${d.chainHeight}, ${d.pendingEntries} MGMC block(s) waiting for the next DSO block` +
      (d.anchor ? '' : ' (verifier process: the anchor node seals)'),
  );
  const rejected = Object.entries(d.blocks.rejected);
  const rejectedTotal = rejected.reduce((sum, [, n]) => sum + (n ?? 0), 0);
  lines.push(
    `MGMC blocks: ${d.blocks.accepted} accepted, ${d.blocks.duplicate} duplicate, ${d.blocks.parked} parked, ` +
      `${rejectedTotal} rejected${rejected.length === 0 ? '' : ` (${rejected.map(([r, n]) => `${r} ${n}`).join(', ')})`}`,
  );
  lines.push(
    `sent: ${d.receiptsSent} receipt(s), ${d.headersSent} header(s); ${d.registrations} registration(s) received; ` +
      `${d.publishFailures} publish failure(s)`,
  );
  const dropped = Object.entries(d.dropped);
  if (dropped.length > 0) lines.push(`dropped: ${dropped.map(([r, n]) => `${r} ${n}`).join(', ')}`);
  lines.push('');
  if (report.mgmcs.length === 0) lines.push('MGMCs: none registered yet');
  else {
    lines.push(
      table(
        ['MGMC', 'STATUS', 'BUS', 'ANONYM'],
        report.mgmcs.map((m) => [m.address, m.status, m.bus ?? '', m.anonym ?? '']),
      ),
    );
  }
}

/** "12 s ago", "5 min ago"; "never" for a time that never came. */
export function ago(now: number, time: number | null): string {
  if (time === null) return 'never';
  return `${duration(Math.max(0, now - time))} ago`;
}

/** A duration for a person: 850 ms, 12 s, 5 min, 3 h 20 min, 2 d 4 h. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 24) return min % 60 === 0 ? `${h} h` : `${h} h ${min % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}

function utc(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}
