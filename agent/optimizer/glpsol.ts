/**
 * GLPK's glpsol (Debian `glpk-utils`) as an independent reference solver: CPLEX LP text in, status, objective and
 * values by column name out. Used by tests and the benchmark to check HiGHS, never on the control path.
 *
 * glpsol writes the solution with `-w` (plain text, columns by number) and the problem with `--wglp` (which names
 * each column number), so values are matched to names as glpsol itself numbered them.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { LpStatus } from './lp.js';

export interface GlpsolResult {
  readonly status: LpStatus;
  /** Objective as glpsol reports it (15 significant digits); NaN without a solution. */
  readonly objective: number;
  /** Column name -> value (every column glpsol read, `__offset` included); empty without a solution. */
  readonly values: Map<string, number>;
  /** Wall time of the glpsol process(es), ms. */
  readonly wallMs: number;
}

export interface GlpsolOptions {
  /** glpsol's --tmlim (whole seconds, rounded up). */
  readonly timeLimitSeconds?: number;
}

/** Where glpsol is on PATH, or undefined. */
export function glpsolPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'glpsol');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** Solves CPLEX LP text with glpsol. Throws when glpsol is missing, cannot read the text, or says nothing usable. */
export async function solveWithGlpsol(lpText: string, options: GlpsolOptions = {}): Promise<GlpsolResult> {
  const binary = glpsolPath();
  if (binary === undefined) {
    throw new Error('glpsol is not installed or not on PATH: install the Debian package glpk-utils');
  }
  const dir = mkdtempSync(join(tmpdir(), 'mgmc-glpsol-'));
  const t0 = performance.now();
  try {
    const files = { lp: join(dir, 'model.lp'), glp: join(dir, 'model.glp'), sol: join(dir, 'model.sol') };
    writeFileSync(files.lp, lpText);
    const limit = options.timeLimitSeconds;
    const args = ['--lp', files.lp, '--wglp', files.glp, '-w', files.sol];
    if (limit !== undefined) args.push('--tmlim', String(Math.max(1, Math.ceil(limit))));
    // A watchdog on the process, far beyond glpsol's own limit: a hung reference must fail the test, not stall it.
    const killAfterMs = ((limit ?? 600) + 60) * 1000;

    let outcome = interpret(await run(binary, args, killAfterMs), files);
    if (outcome.status === undefined && outcome.kind === 'bas') {
      // With its presolver glpsol reports any LP that is not optimal as "undefined"; without it the simplex says
      // which of infeasible or unbounded holds.
      outcome = interpret(await run(binary, [...args, '--nopresol'], killAfterMs), files);
    }
    if (outcome.status === undefined) {
      throw new Error(`glpsol ended without a usable status (solution status "${outcome.code}"):\n${outcome.tail}`);
    }
    const solved = outcome.status === 'optimal' || (outcome.status === 'time-limit' && outcome.feasible);
    return {
      status: outcome.status,
      objective: solved ? outcome.objective : Number.NaN,
      values: solved ? outcome.values : new Map(),
      wallMs: performance.now() - t0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Run {
  readonly code: number;
  readonly output: string;
}

function run(binary: string, args: readonly string[], killAfterMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      args,
      { timeout: killAfterMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        if (error && (error as { killed?: boolean }).killed) {
          reject(new Error(`glpsol did not finish within ${killAfterMs / 1000} s and was killed:\n${tail(output)}`));
          return;
        }
        if (error && typeof (error as { code?: unknown }).code !== 'number') {
          reject(new Error(`could not run ${binary}: ${error.message}`));
          return;
        }
        resolve({ code: error ? Number((error as { code?: unknown }).code) : 0, output });
      },
    );
  });
}

interface Outcome {
  readonly kind: 'bas' | 'mip' | 'ipt';
  readonly status: LpStatus | undefined;
  /** glpsol's status letters from the `s` line, for messages. */
  readonly code: string;
  readonly feasible: boolean;
  readonly objective: number;
  readonly values: Map<string, number>;
  readonly tail: string;
}

function interpret(result: Run, files: { glp: string; sol: string }): Outcome {
  if (result.code !== 0) {
    throw new Error(`glpsol could not solve the LP (exit code ${result.code}):\n${tail(result.output)}`);
  }
  let solution: string;
  let problem: string;
  try {
    solution = readFileSync(files.sol, 'utf8');
    problem = readFileSync(files.glp, 'utf8');
  } catch (error) {
    throw new Error(`glpsol wrote no solution file (${(error as Error).message}):\n${tail(result.output)}`);
  }

  // --wglp: "n j <number> <name>" names column <number>.
  const names = new Map<number, string>();
  for (const line of problem.split('\n')) {
    const m = /^n j (\d+) (\S+)/.exec(line);
    if (m) names.set(Number(m[1]), m[2] ?? '');
  }

  // -w: "s bas <rows> <cols> <primal> <dual> <obj>" or "s mip <rows> <cols> <status> <obj>"; then
  // "j <number> <status> <value> <dual>" (bas) or "j <number> <value>" (mip).
  const lines = solution.split('\n');
  const head = lines
    .find((line) => line.startsWith('s '))
    ?.trim()
    .split(/\s+/);
  if (head === undefined) throw new Error(`glpsol's solution file has no status line:\n${tail(result.output)}`);
  const kind = head[1] as Outcome['kind'];
  const values = new Map<string, number>();
  for (const line of lines) {
    if (!line.startsWith('j ')) continue;
    const parts = line.trim().split(/\s+/);
    const number = Number(parts[1]);
    const value = Number(kind === 'mip' ? parts[2] : parts[3]);
    values.set(names.get(number) ?? `#${number}`, value);
  }
  const output = result.output;
  const says = (pattern: RegExp) => pattern.test(output);
  let status: LpStatus | undefined;
  let feasible = false;
  let code: string;
  if (kind === 'mip') {
    code = head[4] ?? '?';
    feasible = code === 'o' || code === 'f';
    if (code === 'o') status = 'optimal';
    else if (says(/TIME LIMIT EXCEEDED/)) status = 'time-limit';
    else if (code === 'n' || says(/NO (PRIMAL|INTEGER) FEASIBLE|incorrect bounds/)) status = 'infeasible';
    // The LP relaxation is unbounded: glpsol stops there, as HiGHS does.
    else if (says(/UNBOUNDED|NO DUAL FEASIBLE/)) status = 'unbounded';
  } else {
    const primal = head[4] ?? '?';
    const dual = head[5] ?? '?';
    code = `${primal}${dual}`;
    feasible = primal === 'f';
    if (primal === 'f' && dual === 'f') status = 'optimal';
    else if (primal === 'n' || says(/incorrect bounds/)) status = 'infeasible';
    else if (primal === 'f' && dual === 'n') status = 'unbounded';
    else if (says(/TIME LIMIT EXCEEDED/)) status = 'time-limit';
  }
  const objective = Number(head[head.length - 1]);
  return { kind, status, code, feasible, objective, values, tail: tail(output) };
}

/** The last lines of glpsol's output: where it says what went wrong. */
function tail(output: string, lines = 12): string {
  return output.trimEnd().split('\n').slice(-lines).join('\n');
}
