/**
 * mgmc optimize: plans the configured buildings for the present state and forecast and prints the schedule and its
 * cost breakdown; --export-lp writes the model as a CPLEX LP file any solver can read. Reads the agent database
 * (read-only, so a running agent is not disturbed) for the history the forecasts learn from; without one, the
 * forecasts say they rest on defaults.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config/index.js';
import type { AgentConfig } from '../config/schema.js';
import type { HistorySource } from '../optimizer/forecast/history.js';
import { createLedgerHistory } from '../optimizer/forecast/history.js';
import { formulate } from '../optimizer/formulate.js';
import { toCplexLp } from '../optimizer/lp-format.js';
import { optimizeSite } from '../optimizer/optimize.js';
import type { SiteSchedule } from '../optimizer/schedule.js';
import { forecasterFromConfig, overrideState } from '../optimizer/setup.js';
import { buildSiteModel } from '../optimizer/site-model.js';
import { createInlineSolver } from '../optimizer/solver.js';
import { openAgentDatabase } from '../store/agent-db.js';
import type { SqliteDatabase } from '../store/database.js';
import { CommandError, EXIT, type Io, table } from './io.js';

export interface OptimizeOptions {
  readonly config: string;
  readonly at?: string;
  readonly json: boolean;
  readonly exportLp?: string;
  readonly soc: readonly string[];
  readonly plugged: readonly string[];
}

function parseAt(text: string | undefined, now: number): number {
  if (text === undefined) return now;
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new CommandError(
      `--at ${JSON.stringify(text)} is not a time: use ISO 8601, e.g. 2026-06-22T08:00:00+02:00`,
      EXIT.usage,
    );
  }
  return t;
}

function parseSoc(items: readonly string[], config: AgentConfig): Map<string, number> {
  const batteries = config.buildings.flatMap((b) => b.batteries.map((k) => k.device));
  const out = new Map<string, number>();
  for (const item of items) {
    const m = /^([^=]+)=(\d+(?:\.\d+)?)$/.exec(item);
    const pct = m === null ? Number.NaN : Number(m[2]);
    if (m === null || !(pct >= 0 && pct <= 100)) {
      throw new CommandError(`--soc ${item}: expected DEVICE=PERCENT, e.g. --soc battery=65`, EXIT.usage);
    }
    const device = m[1] as string;
    if (!batteries.includes(device)) {
      throw new CommandError(
        `--soc ${item}: no battery '${device}' in the config (batteries: ${batteries.join(', ') || 'none'})`,
        EXIT.usage,
      );
    }
    out.set(device, pct);
  }
  return out;
}

/** Without a database the forecasts have no history: an empty source makes them say so. */
const NO_HISTORY: HistorySource = { stepMs: 900_000, samples: () => [] };

export async function optimizeCommand(io: Io, options: OptimizeOptions): Promise<number> {
  const config = await loadConfig(resolve(options.config), { env: io.env });
  if (config.buildings.length === 0) {
    throw new CommandError(
      `${options.config} has no buildings to plan: add tariffs: and buildings: sections (see examples/site.yaml)`,
      EXIT.config,
    );
  }
  const now = parseAt(options.at, systemClock().now());
  const soc = parseSoc(options.soc, config);
  const evs = config.buildings.flatMap((b) => b.evChargers.map((e) => e.device));
  for (const device of options.plugged) {
    if (!evs.includes(device)) {
      throw new CommandError(
        `--plugged ${device}: no EV charger '${device}' in the config (chargers: ${evs.join(', ') || 'none'})`,
        EXIT.usage,
      );
    }
  }
  let db: SqliteDatabase | undefined;
  if (existsSync(config.store.path)) {
    try {
      db = openAgentDatabase(config.store.path, { readonly: true });
    } catch (error) {
      io.err(`note: cannot read ${config.store.path} (${(error as Error).message}); forecasting without history`);
    }
  }
  const solver = await createInlineSolver();
  try {
    const history = db === undefined ? NO_HISTORY : createLedgerHistory({ db });
    const { site, notes } = buildSiteModel(config, {
      now,
      state: overrideState(soc, new Set(options.plugged)),
      forecasts: forecasterFromConfig(config, history),
    });
    if (options.exportLp !== undefined) {
      const out = resolve(options.exportLp);
      await writeFile(out, toCplexLp(formulate(site).lp), { flag: 'w' });
      if (!options.json) io.out(`wrote the model to ${out} (CPLEX LP; e.g. glpsol --lp ${out} -o solution.txt)`);
    }
    const schedule = await optimizeSite(site, solver, { timeLimitSeconds: config.optimizer.timeLimitSeconds });
    if (options.json) io.out(JSON.stringify({ at: now, notes, schedule }, null, 2));
    else printSchedule(io, schedule, notes, config.optimizer.timeZone);
    return schedule.status === 'optimal' ? EXIT.ok : EXIT.failed;
  } finally {
    await solver.close();
    db?.close();
  }
}

function money(x: number): string {
  return x.toFixed(2);
}

function kw(w: number | undefined): string {
  return w === undefined ? '' : (w / 1000).toFixed(2);
}

function printSchedule(io: Io, s: SiteSchedule, notes: readonly string[], timeZone: string): void {
  const h = s.horizon;
  const fmt = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  io.out(
    `schedule from ${new Date(h.start).toISOString()} for ${h.steps} intervals of ${h.stepMs / 60_000} min ` +
      `(times in ${timeZone}); ${s.status}${s.mip ? ', MILP' : ''}, solved in ${s.solveMs.toFixed(1)} ms`,
  );
  for (const n of notes) io.out(`  ${n}`);
  for (const d of s.diagnosis) io.out(`${d.severity}: ${d.building ? `${d.building}: ` : ''}${d.message}`);
  for (const b of s.buildings) {
    io.out('');
    io.out(`building ${b.name} (kW; battery + discharging; price = marginal value of a kWh)`);
    const headers = [
      'time',
      'import',
      'export',
      ...b.ders.map((d) => `${d.name}${d.kind === 'battery' ? ' (SoC %)' : ''}`),
      'price',
    ];
    const rows = Array.from({ length: h.steps }, (_, t) => [
      fmt.format(new Date(h.start + t * h.stepMs)),
      kw(b.gridImportW[t]),
      kw(b.gridExportW[t]),
      ...b.ders.map((d) =>
        d.kind === 'battery' ? `${kw(d.powerW[t])} (${(d.socPct?.[t] ?? 0).toFixed(0)})` : kw(d.powerW[t]),
      ),
      Number.isFinite(b.marginalPrice[t]) ? (b.marginalPrice[t] as number).toFixed(3) : '',
    ]);
    io.out(table(headers, rows));
  }
  io.out('');
  io.out('cost breakdown (currency)');
  const rows = [...s.buildings.map((b) => ({ name: b.name, cost: b.cost })), { name: 'site', cost: s.cost }].map(
    (r) => [
      r.name,
      money(r.cost.import),
      money(-r.cost.export),
      money(r.cost.degradation),
      money(r.cost.trades),
      money(r.cost.curtailment),
      money(r.cost.penalties),
      money(r.cost.total),
    ],
  );
  io.out(table(['', 'import', 'export', 'degradation', 'trades', 'curtailment', 'penalties', 'total'], rows));
}
