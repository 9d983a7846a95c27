/**
 * mgmc grid powerflow | reconfigure | check: the DSO's view of a feeder. `powerflow` solves one operating point and
 * prints bus voltages, line loadings, losses and limit violations; `reconfigure` chooses switch states that keep the
 * feeder radial and lower losses and violations; `check` runs the DSO's network check on MGMC net positions per
 * market interval and prints the caps the DSO would send. The feeder is a file (docs/feeder-format.md) or a built-in
 * one (ieee33).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { checkNetwork, type NetworkCheck } from '../dso/network-check.js';
import { type IntervalPositions, loadPositionsFile } from '../dso/positions-file.js';
import { createFeeder, type Feeder, FeederError, openSwitches } from '../grid/feeder.js';
import { FeederFileError, feederToYaml, loadFeederFile, loadLoadsFile } from '../grid/feeder-file.js';
import { ieee33 } from '../grid/ieee33.js';
import { checkLimits, type LimitReport } from '../grid/limits.js';
import { type BusPowers, busLoads, type PowerFlowResult, powerFlow } from '../grid/powerflow.js';
import { type ReconfigureResult, reconfigure } from '../grid/reconfigure.js';
import { createInlineSolver } from '../optimizer/solver.js';
import { CommandError, EXIT, type Io, table } from './io.js';

/** Feeders that ship with the agent, by the name --feeder takes instead of a file. */
const BUILT_IN: Readonly<Record<string, () => Feeder>> = {
  ieee33: () => createFeeder(ieee33()),
};

export interface GridPowerflowOptions {
  readonly feeder: string;
  readonly loads?: string;
  readonly tolerance?: number;
  readonly maxIterations?: number;
  readonly json: boolean;
}

export interface GridReconfigureOptions {
  readonly feeder: string;
  readonly loads?: string;
  /** kW of cost per percentage point of violation; 0 reconfigures for losses alone. */
  readonly penalty?: number;
  /** Write the reconfigured feeder here (never overwritten). */
  readonly out?: string;
  readonly json: boolean;
}

export interface GridCheckOptions {
  readonly feeder: string;
  readonly positions: string;
  /** LP solves per interval at most. */
  readonly maxIterations?: number;
  readonly json: boolean;
}

/** A built-in feeder by name, else a feeder file; bad files end the command with exit 78. */
export async function openFeeder(name: string): Promise<Feeder> {
  const builtIn = BUILT_IN[name];
  if (builtIn !== undefined) return builtIn();
  if (!existsSync(name)) {
    throw new CommandError(
      `feeder file ${name} does not exist (give a feeder file, see docs/feeder-format.md, or a built-in feeder: ` +
        `${Object.keys(BUILT_IN).join(', ')})`,
      EXIT.noInput,
    );
  }
  return asCommandError(() => loadFeederFile(name));
}

async function loadsFor(feeder: Feeder, file: string | undefined): Promise<BusPowers> {
  if (file === undefined) return busLoads(feeder);
  if (!existsSync(file)) throw new CommandError(`loads file ${file} does not exist`, EXIT.noInput);
  const adjustment = await asCommandError(() => loadLoadsFile(file, feeder));
  return busLoads(feeder, adjustment);
}

async function asCommandError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof FeederFileError) throw new CommandError(error.message, EXIT.config);
    if (error instanceof FeederError) throw new CommandError(error.message, EXIT.dataError);
    throw error;
  }
}

function describeFeeder(feeder: Feeder): string {
  const open = openSwitches(feeder);
  const switches = open.length === 0 ? 'no open switch' : `open switches ${open.join(', ')}`;
  return (
    `feeder ${feeder.name}: ${feeder.buses.length} buses, ${feeder.lines.length} lines (${switches}), ` +
    `${feeder.baseKv} kV, base ${feeder.baseMva} MVA, substation bus ${feeder.slack}`
  );
}

function f(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value);
}

/** The result without its per-unit state arrays, for --json. */
function resultJson(result: PowerFlowResult, report: LimitReport): Record<string, unknown> {
  const { state: _state, ...rest } = result;
  return { ...rest, ok: report.ok, violations: report.violations };
}

/**
 * Solves one operating point. Exit 0 when the power flow converged (violations are part of the answer, not a
 * failure), 1 when it did not, naming the bus where the voltage fell furthest.
 */
export async function gridPowerflow(io: Io, options: GridPowerflowOptions): Promise<number> {
  const feeder = await openFeeder(options.feeder);
  const loads = await loadsFor(feeder, options.loads);
  const result = powerFlow(feeder, loads, {
    ...(options.tolerance === undefined ? {} : { tolerancePu: options.tolerance }),
    ...(options.maxIterations === undefined ? {} : { maxIterations: options.maxIterations }),
  });
  const report = checkLimits(feeder, result);
  if (options.json) {
    io.out(JSON.stringify({ feeder: feeder.name, openSwitches: openSwitches(feeder), ...resultJson(result, report) }));
    return result.converged ? EXIT.ok : EXIT.failed;
  }
  io.out(describeFeeder(feeder));
  if (!result.converged) {
    io.err(`mgmc: ${result.problem ?? 'the power flow did not converge'}`);
    return EXIT.failed;
  }
  io.out(
    `power flow: converged in ${result.iterations} sweeps (last voltage change ${result.mismatchPu.toExponential(1)} pu)`,
  );
  io.out('');
  io.out(
    table(
      ['BUS', 'V (pu)', 'ANGLE (deg)', 'P (kW)', 'Q (kvar)', ''],
      result.buses.map((b) => [
        b.name,
        f(b.vPu, 4),
        f(b.angleDeg, 3),
        f(b.pKw, 1),
        f(b.qKvar, 1),
        b.vPu < feeder.voltageBand.min ? 'LOW' : b.vPu > feeder.voltageBand.max ? 'HIGH' : '',
      ]),
    ),
  );
  io.out('');
  io.out(
    table(
      ['LINE', 'FROM', 'TO', 'STATE', 'P (kW)', 'Q (kvar)', 'I (A)', 'LIMIT (A)', 'LOADING (%)', 'LOSS (kW)'],
      result.lines.map((l) => [
        l.name,
        l.from,
        l.to,
        l.inService ? (feeder.lines[feeder.lineIndex.get(l.name) as number]?.status ?? 'fixed') : 'open',
        l.inService ? f(l.pKw, 1) : '-',
        l.inService ? f(l.qKvar, 1) : '-',
        l.inService ? f(l.currentA, 1) : '-',
        l.ampacityA,
        l.inService ? `${f(l.loadingPct, 1)}${l.loadingPct > 100 ? ' OVER' : ''}` : '-',
        l.inService ? f(l.lossKw, 3) : '-',
      ]),
    ),
  );
  io.out('');
  io.out(
    `load ${f(result.loadKw, 1)} kW / ${f(result.loadKvar, 1)} kvar; substation ${f(result.slackKw, 1)} kW / ` +
      `${f(result.slackKvar, 1)} kvar; losses ${f(result.lossKw, 2)} kW / ${f(result.lossKvar, 2)} kvar`,
  );
  io.out(
    `voltage: min ${f(result.minVoltage.pu, 4)} pu at bus ${result.minVoltage.bus}, max ${f(result.maxVoltage.pu, 4)} ` +
      `pu at bus ${result.maxVoltage.bus}` +
      (report.maxLoading === undefined
        ? ''
        : `; most loaded line ${report.maxLoading.line} at ${f(report.maxLoading.pct, 1)} %`),
  );
  io.out(describeViolations(feeder, report));
  return EXIT.ok;
}

function describeViolations(feeder: Feeder, report: LimitReport): string {
  const band = `${feeder.voltageBand.min}-${feeder.voltageBand.max} pu`;
  if (report.ok) return `violations: none (voltage band ${band}, lines up to 100 % of ampacity)`;
  return [
    `violations: ${report.violations.length} (voltage band ${band}, lines up to 100 % of ampacity)`,
    ...report.violations.map((v) => `  ${v.kind.padEnd(12)}  ${v.message}`),
  ].join('\n');
}

/** Chooses switch states by branch exchange and prints the configuration before and after. */
export async function gridReconfigure(io: Io, options: GridReconfigureOptions): Promise<number> {
  if (options.out !== undefined && existsSync(options.out)) {
    throw new CommandError(`${options.out} exists; give --out a new file name`, EXIT.cantCreate);
  }
  const feeder = await openFeeder(options.feeder);
  const loads = await loadsFor(feeder, options.loads);
  const chosen = reconfigure(feeder, {
    loads,
    ...(options.penalty === undefined ? {} : { violationPenaltyKw: options.penalty }),
  });
  if (options.out !== undefined) await writeFile(options.out, feederToYaml(chosen.feeder), { flag: 'wx' });
  if (options.json) {
    io.out(JSON.stringify(reconfigureJson(chosen)));
  } else {
    io.out(describeFeeder(feeder));
    io.out(describeReconfiguration(chosen));
    if (options.out !== undefined) io.out(`reconfigured feeder written to ${options.out}`);
  }
  if (!chosen.after.converged) {
    io.err(`mgmc: no configuration has a power flow solution: ${chosen.result.problem ?? ''}`);
    return EXIT.failed;
  }
  return EXIT.ok;
}

function reconfigureJson(chosen: ReconfigureResult): Record<string, unknown> {
  return {
    feeder: chosen.feeder.name,
    before: chosen.before,
    after: chosen.after,
    exchanges: chosen.exchanges,
    powerFlows: chosen.powerFlows,
    penaltyKw: chosen.penaltyKw,
    violations: chosen.report.violations,
  };
}

function describeReconfiguration(chosen: ReconfigureResult): string {
  const { before, after } = chosen;
  const change = before.lossKw > 0 ? ` (${f((100 * (after.lossKw - before.lossKw)) / before.lossKw, 1)} %)` : '';
  const voltage = (s: typeof before) => `${f(s.minVoltage.pu, 4)} pu at bus ${s.minVoltage.bus}`;
  const lines = [
    `branch exchange: ${chosen.exchanges.length} exchange(s), ${chosen.powerFlows} configurations solved; ` +
      (chosen.penaltyKw > 0
        ? `cost = losses + ${chosen.penaltyKw} kW per percentage point of violation`
        : 'cost = losses'),
    '',
    table(
      ['', 'BEFORE', 'AFTER'],
      [
        ['open switches', before.openSwitches.join(', '), after.openSwitches.join(', ')],
        ['losses (kW)', f(before.lossKw, 2), `${f(after.lossKw, 2)}${change}`],
        ['min voltage', voltage(before), voltage(after)],
        ['violations', before.violations, after.violations],
        ...(chosen.penaltyKw > 0 ? [['cost (kW)', f(before.cost, 2), f(after.cost, 2)]] : []),
      ],
    ),
  ];
  if (chosen.exchanges.length > 0) {
    lines.push('', 'exchanges made:');
    for (const e of chosen.exchanges) {
      // With a violation penalty an exchange may add a little loss to remove a violation: the cost says why.
      const cost = chosen.penaltyKw > 0 ? `, cost ${f(e.cost, 2)} kW` : '';
      const phase = e.objective === 'losses' ? ' (losses alone)' : '';
      lines.push(`  close ${e.close}, open ${e.open}${phase}: losses ${f(e.lossKw, 2)} kW${cost}`);
    }
  } else {
    lines.push('', 'no exchange lowers the cost: the present configuration stays');
  }
  return lines.join('\n');
}

/**
 * The DSO's network check for every interval of a positions file: violations at the reported positions and the caps
 * the DSO would send. Exit 0 when every interval is secure (as reported or with the caps), 1 when one cannot be made
 * secure.
 */
export async function gridCheck(io: Io, options: GridCheckOptions): Promise<number> {
  const feeder = await openFeeder(options.feeder);
  if (!existsSync(options.positions)) {
    throw new CommandError(`positions file ${options.positions} does not exist`, EXIT.noInput);
  }
  const intervals = await asCommandError(() => loadPositionsFile(options.positions, feeder));
  const solver = await createInlineSolver();
  const checks: { interval: IntervalPositions; check: NetworkCheck }[] = [];
  try {
    for (const interval of intervals) {
      const check = await asCommandError(() =>
        checkNetwork(feeder, interval.positions, solver, {
          base: interval.base,
          ...(interval.start === undefined ? {} : { interval: interval.start }),
          ...(options.maxIterations === undefined ? {} : { maxIterations: options.maxIterations }),
        }),
      );
      checks.push({ interval, check });
    }
  } finally {
    await solver.close();
  }
  const code = checks.every((c) => c.check.secure) ? EXIT.ok : EXIT.failed;
  if (options.json) {
    io.out(
      JSON.stringify({
        feeder: feeder.name,
        secure: code === EXIT.ok,
        intervals: checks.map(({ interval, check }) => ({
          interval: interval.label,
          ...(interval.start === undefined ? {} : { start: interval.start }),
          positions: interval.positions,
          status: check.status,
          secure: check.secure,
          ...(check.reason === undefined ? {} : { reason: check.reason }),
          caps: check.caps,
          curtailedW: check.curtailedW,
          iterations: check.iterations,
          powerFlows: check.powerFlows,
          lpMs: check.lpMs,
          violationsBefore: check.before.violations,
          violationsAfter: check.after.violations,
        })),
      }),
    );
    return code;
  }
  io.out(describeFeeder(feeder));
  for (const { interval, check } of checks) {
    io.out('');
    io.out(describeCheck(feeder, interval, check));
  }
  io.out('');
  const notSecure = checks.filter((c) => !c.check.secure).map((c) => c.interval.label);
  io.out(
    notSecure.length === 0
      ? `all ${checks.length} interval(s) secure${checks.some((c) => c.check.caps.length > 0) ? ' with the caps above' : ''}`
      : `not secure: ${notSecure.join(', ')}`,
  );
  return code;
}

function kw(w: number | undefined): string {
  return w === undefined ? '-' : f(w / 1000, 1);
}

function describeCheck(feeder: Feeder, interval: IntervalPositions, check: NetworkCheck): string {
  const imports = interval.positions.filter((p) => p.netW > 0).reduce((a, p) => a + p.netW, 0);
  const exports = interval.positions.filter((p) => p.netW < 0).reduce((a, p) => a - p.netW, 0);
  const lines = [
    `interval ${interval.label}: ${interval.positions.length} position(s), import ${kw(imports)} kW, export ` +
      `${kw(exports)} kW`,
    indent(describeViolations(feeder, check.before)),
  ];
  if (check.status === 'secure') {
    lines.push('  secure as reported: the DSO sends no caps');
    return lines.join('\n');
  }
  const how =
    `${check.iterations} LP iteration(s), ${check.powerFlows} power flows, LP ${f(check.lpMs, 1)} ms; ` +
    `curtailment ${kw(check.curtailedW)} kW`;
  lines.push(
    check.status === 'secured' ? `  the caps below make it secure (${how})` : `  NOT SECURE (${how}): ${check.reason}`,
  );
  if (check.caps.length > 0) {
    lines.push(
      indent(
        table(
          ['MGMC', 'BUS', 'POSITION (kW)', 'MAX IMPORT (kW)', 'MAX EXPORT (kW)', 'CURTAILED (kW)'],
          check.caps.map((c) => [c.mgmc, c.bus, kw(c.positionW), kw(c.maxImportW), kw(c.maxExportW), kw(c.curtailedW)]),
        ),
      ),
    );
    const untouched = interval.positions.length - check.caps.length;
    if (untouched > 0) lines.push(`  ${untouched} other position(s) keep their trades (no cap)`);
  }
  const after = check.after;
  lines.push(
    `  with the caps: voltage ${f(after.minVoltage.pu, 4)}-${f(after.maxVoltage.pu, 4)} pu` +
      (after.maxLoading === undefined
        ? ''
        : `, most loaded line ${after.maxLoading.line} at ${f(after.maxLoading.pct, 1)} %`),
  );
  if (!after.ok) lines.push(indent(describeViolations(feeder, after)));
  return lines.join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

function number(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be a number >= ${min}`);
    }
    return n;
  };
}

function integer(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

/** Adds `mgmc grid powerflow`, `reconfigure` and `check`; `done` receives the exit code, as in agent/cli.ts. */
export function registerGridCommands(program: Command, io: Io, done: (code: number) => void): void {
  const grid = program
    .command('grid')
    .description('the distribution feeder: power flow, reconfiguration and the network check of MGMC positions');
  const feederHelp = `feeder file (docs/feeder-format.md) or a built-in feeder: ${Object.keys(BUILT_IN).join(', ')}`;
  grid
    .command('powerflow')
    .description('solve the feeder: bus voltages, line loadings, losses and limit violations')
    .requiredOption('--feeder <file|name>', feederHelp)
    .option('--loads <file>', 'load overrides: scale, per-bus loads, MGMC net positions (docs/feeder-format.md)')
    .option(
      '--tolerance <pu>',
      'largest voltage change between sweeps that counts as converged',
      number('--tolerance', 0),
    )
    .option('--max-iterations <n>', 'sweeps before giving up', integer('--max-iterations', 1))
    .option('--json', 'print as JSON', false)
    .action(async (o: GridPowerflowOptions) => done(await gridPowerflow(io, o)));
  grid
    .command('reconfigure')
    .description('choose switch states (branch exchange) that keep the feeder radial and lower losses and violations')
    .requiredOption('--feeder <file|name>', feederHelp)
    .option('--loads <file>', 'load overrides to reconfigure for (docs/feeder-format.md)')
    .option(
      '--penalty <kW>',
      'cost in kW per percentage point of limit violation (default 10; 0: losses alone)',
      number('--penalty', 0),
    )
    .option('--out <file>', 'write the reconfigured feeder as a feeder file (never overwritten)')
    .option('--json', 'print as JSON', false)
    .action(async (o: GridReconfigureOptions) => done(await gridReconfigure(io, o)));
  grid
    .command('check')
    .description("the DSO's network check: violations at MGMC net positions and the caps the DSO would send")
    .requiredOption('--feeder <file|name>', feederHelp)
    .requiredOption('--positions <file>', 'net positions per MGMC and market interval (docs/feeder-format.md)')
    .option('--max-iterations <n>', 'LP solves per interval at most (default 10)', integer('--max-iterations', 1))
    .option('--json', 'print as JSON', false)
    .action(async (o: GridCheckOptions) => done(await gridCheck(io, o)));
}
