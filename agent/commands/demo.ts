/**
 * mgmc demo — the whole system for one accelerated day (agent/demo/run-demo.ts): a broker, the DSO and N MGMCs on
 * the IEEE 33-bus feeder with simulated devices. Prints a line per market interval and a summary, writes the HTML
 * report, and exits 1 when a check failed (a chain that does not verify, a block the DSO does not hold, no trades).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { socatAvailable } from '../../sim/pty.js';
import { renderReport } from '../demo/report.js';
import type { DemoReportData } from '../demo/report-data.js';
import { type DemoEvent, type IntervalLine, runDemo } from '../demo/run-demo.js';
import { DEMO_MICROGRIDS } from '../demo/scenario.js';
import { createLogger, type LogLevel } from '../logger.js';
import type { Solver } from '../optimizer/solver.js';
import { CommandError, EXIT, type Io, table } from './io.js';

export interface DemoOptions {
  readonly dir: string;
  /** Simulated hours after a warm-up hour. */
  readonly duration: number;
  /** Local hour the simulated period starts at. */
  readonly from: number;
  readonly mgmcs: number;
  readonly seed: number;
  readonly speed: number;
  readonly report: string;
  /** Write the agents' JSON logs (warnings and errors) here; they are dropped when left out. */
  readonly log?: string;
  readonly json: boolean;
  /** For tests: each MGMC's LP solver (in-process instead of a worker thread). */
  readonly createSolver?: () => Promise<Solver>;
}

export async function demo(io: Io, options: DemoOptions): Promise<number> {
  if (!(options.mgmcs >= 1 && options.mgmcs <= DEMO_MICROGRIDS.length)) {
    throw new CommandError(`--mgmcs must be 1 to ${DEMO_MICROGRIDS.length}`, EXIT.usage);
  }
  if (!(options.speed > 0 && Number.isFinite(options.speed))) {
    throw new CommandError('--speed must be a number > 0 (simulated seconds per wall-clock second)', EXIT.usage);
  }
  if (!socatAvailable()) {
    throw new CommandError(
      "the demo's signing meters talk over pseudo-terminals made by socat, which is not installed: " +
        'apt-get install socat (Debian, Raspberry Pi OS) or brew install socat (macOS), then run it again',
      EXIT.failed,
    );
  }
  const logPath = options.log === undefined ? undefined : resolve(options.log);
  if (logPath !== undefined) mkdirSync(dirname(logPath), { recursive: true });
  const logger =
    logPath === undefined
      ? createLogger({ level: 'silent' })
      : createLogger({
          level: (io.env.MGMC_DEMO_LOG_LEVEL as LogLevel | undefined) ?? 'warn',
          destination: { write: (line: string) => writeFileSync(logPath, line, { flag: 'a' }) },
        });
  const say = (text: string) => {
    if (!options.json) io.out(text);
  };
  let header = false;
  const progress = (event: DemoEvent) => {
    if (event.kind === 'phase') {
      say(`== ${event.text}`);
      return;
    }
    if (!header) {
      say(INTERVAL_HEADER);
      header = true;
    }
    say(formatInterval(event.line));
  };
  const result = await runDemo({
    dir: options.dir,
    hours: options.duration,
    fromHour: options.from,
    mgmcs: options.mgmcs,
    seed: options.seed,
    speed: options.speed,
    logger,
    progress,
    ...(options.createSolver === undefined ? {} : { createSolver: options.createSolver }),
  });
  const reportPath = resolve(options.report);
  mkdirSync(dirname(reportPath), { recursive: true });
  writeFileSync(reportPath, renderReport(result.report));
  if (options.json) {
    io.out(JSON.stringify({ ok: result.ok, report: reportPath, summary: result.report }, null, 2));
  } else {
    say(`\n${summaryText(result.report)}`);
    say(`\nreport: ${reportPath}`);
    say(
      `data, configs and ledgers: ${resolve(options.dir)} (try: mgmc ledger verify --db ${resolve(options.dir)}/${result.report.microgrids[0]?.name}/mgmc.db)`,
    );
    if (logPath !== undefined) say(`agent logs: ${logPath}`);
    say(result.ok ? 'every check passed' : 'SOME CHECKS FAILED (see above)');
  }
  return result.ok ? EXIT.ok : EXIT.failed;
}

const INTERVAL_HEADER =
  'interval (UTC)  attempts  trades  traded kWh  avg price  DSO caps  closed by   MGMC blocks anchored  DSO height';

function formatInterval(l: IntervalLine): string {
  const when = new Date(l.interval).toISOString().slice(11, 16);
  const price = l.priceAvg === null ? '-' : l.priceAvg.toFixed(3);
  return [
    when.padEnd(15),
    String(l.attempts).padStart(8),
    String(l.trades).padStart(7),
    (l.volumeWh / 1000).toFixed(1).padStart(11),
    price.padStart(10),
    String(l.adjustments).padStart(9),
    ` ${l.closedBy.padEnd(10)}`,
    String(l.anchored).padStart(21),
    String(l.dsoHeight).padStart(11),
  ].join(' ');
}

/** The summary tables: costs per MGMC, ledgers and the DSO, and the checks. */
export function summaryText(r: DemoReportData): string {
  const kwh = (wh: number) => (wh / 1000).toFixed(1);
  const money = (x: number) => x.toFixed(2);
  const costs = table(
    ['MGMC', 'bus', 'cost without trading', 'cost with the market', 'saving', 'sold kWh', 'bought kWh'],
    r.microgrids.map((m) => [
      m.name,
      m.bus,
      money(m.costBaseline),
      money(m.costActual),
      `${money(m.costBaseline - m.costActual)} (${pct(m.costBaseline - m.costActual, Math.abs(m.costBaseline))})`,
      kwh(m.soldWh),
      kwh(m.boughtWh),
    ]),
  );
  const traded = r.market.reduce((a, m) => a + m.volumeWh, 0);
  const adjustments = r.market.reduce((a, m) => a + m.adjustments, 0);
  const retraded = r.market.filter((m) => m.attempts > 1).length;
  const ledgers = table(
    ['ledger', 'blocks signed', 'records', 'anchored by the DSO', 'held by the DSO', 'verified'],
    [
      ...r.ledgers.map((l) => [
        l.name,
        l.blocksSigned,
        l.records,
        l.anchoredHeight,
        l.heldByDso,
        l.chainOk ? 'ok' : 'FAILED',
      ]),
      [
        'DSO chain',
        r.dso.chainHeight,
        '-',
        '-',
        `${r.dso.blocksVerified} verified of ${r.dso.blocksReceived} received, ${r.dso.blocksRejected} rejected`,
        r.dso.chainOk ? 'ok' : 'FAILED',
      ],
    ],
  );
  const checks = table(
    ['check', 'result', 'detail'],
    r.checks.map((c) => [c.name, c.ok ? 'ok' : 'FAILED', c.detail]),
  );
  return [
    `== summary: ${r.options.mgmcs} MGMCs, ${r.options.durationHours} h at ${r.options.speed}x in ${r.wallSeconds.toFixed(0)} s wall time`,
    `energy cost (${r.currency}; the same metered flows, priced at the tariff alone vs with the P2P trades):`,
    costs,
    `market: ${r.market.length} intervals, ${kwh(traded)} kWh traded peer to peer, ${adjustments} adjustment contract(s) sent by the DSO, ${retraded} interval(s) traded again within the caps`,
    ledgers,
    checks,
  ].join('\n');
}

function pct(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)} %`;
}
