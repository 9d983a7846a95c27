/**
 * The worker solver: HiGHS in a real worker thread from the compiled dist/agent/optimizer/solver-worker.js (vitest
 * runs TypeScript sources, a worker thread cannot), and the queue, timeout, crash and close mechanics against a
 * stand-in worker written here that speaks the same protocol and hangs, crashes or throws on request.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LinearProgram, LpBuilder, type LpVariant } from '../../agent/optimizer/lp.js';
import { createInlineSolver, createWorkerSolver, type Solver } from '../../agent/optimizer/solver.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORKER = join(ROOT, 'dist', 'agent', 'optimizer', 'solver-worker.js');
const INF = Number.POSITIVE_INFINITY;

/** What the compiled worker runs: its own source and everything it imports. */
const WORKER_SOURCES = ['solver-worker', 'highs', 'lp'].map((m) => join('agent', 'optimizer', `${m}.ts`));

const haveDist = existsSync(WORKER);
if (!haveDist) {
  process.stderr.write(
    `\n*** SKIPPING the real solver worker tests: ${WORKER} is missing. Run \`npm run build\` first ` +
      '(`npm test` builds before testing).\n\n',
  );
}

function staleSources(): string[] {
  return WORKER_SOURCES.filter((source) => {
    const built = join(ROOT, 'dist', source.replace(/\.ts$/, '.js'));
    return !existsSync(built) || statSync(built).mtimeMs < statSync(join(ROOT, source)).mtimeMs;
  });
}

/** min Σ cost·x over `n` boxed columns with a few covering rows; `tag` makes each program distinct. */
function program(name: string, n: number, tag: number, integer = false): LinearProgram {
  const b = new LpBuilder(name);
  const cols = Array.from({ length: n }, (_, j) => b.addColumn(`x${j}`, 0, 5, 1 + ((j * 7 + tag) % 5), integer));
  for (let i = 0; i + 3 <= n; i += 2) {
    b.addRow(`cover${i}`, 2.5 + (tag % 3), INF, [
      [cols[i]!, 1],
      [cols[i + 1]!, 2],
      [cols[i + 2]!, 1],
    ]);
  }
  b.addOffset(tag);
  return b.build();
}

describe.skipIf(!haveDist)('worker solver with HiGHS (dist/agent/optimizer/solver-worker.js)', () => {
  let inline: Solver;
  let solver: Solver;
  beforeAll(async () => {
    // Testing an old build would pass or fail for the wrong reasons.
    const stale = staleSources();
    if (stale.length > 0) throw new Error(`dist/ is older than ${stale.join(', ')}: run \`npm run build\``);
    inline = await createInlineSolver();
    solver = createWorkerSolver({ workerUrl: pathToFileURL(WORKER) });
  });
  afterAll(async () => {
    await solver?.close();
    await inline?.close();
  });

  it('solves an LP and a MIP exactly as the inline solver does', async () => {
    for (const lp of [program('lp', 40, 1), program('mip', 30, 2, true)]) {
      const viaWorker = await solver.solve(lp);
      const here = await inline.solve(lp);
      expect(viaWorker.status).toBe('optimal');
      expect(viaWorker.objective).toBe(here.objective);
      expect(viaWorker.colValue).toBeInstanceOf(Float64Array);
      expect([...viaWorker.colValue]).toEqual([...here.colValue]);
      expect([...viaWorker.rowDual]).toEqual([...here.rowDual]);
    }
    expect(solver.stats()).toMatchObject({ solves: 2, variants: 0, restarts: 0 });
    expect(solver.stats().lastSolveMs).toBeGreaterThan(0);
  });

  it('answers queued requests one at a time in the order they were made', async () => {
    const finished: number[] = [];
    const done =
      <T>(k: number) =>
      (r: T): T => {
        finished.push(k);
        return r;
      };
    // Largest first: if requests ran side by side, small ones would finish first.
    const lps = Array.from({ length: 6 }, (_, k) => program(`queued_${k}`, 20 + 30 * (5 - k), k));
    const variants: LpVariant[] = [{}, { colCosts: [{ col: 0, cost: 0 }] }];
    const requests = [
      ...lps.slice(0, 3).map((lp, k) => solver.solve(lp).then(done(k))),
      solver.solveVariants(lps[3]!, variants, [0, 1]).then(done(3)),
      ...lps.slice(4).map((lp, k) => solver.solve(lp).then(done(k + 4))),
    ];
    const results = await Promise.all(requests);
    expect(finished).toEqual([0, 1, 2, 3, 4, 5]);
    for (const [k, r] of results.entries()) {
      if (Array.isArray(r)) {
        expect(r).toEqual(await inline.solveVariants(lps[k]!, variants, [0, 1]));
      } else {
        const expected = await inline.solve(lps[k]!);
        expect([r.status, r.objective, [...r.colValue]]).toEqual([
          'optimal',
          expected.objective,
          [...expected.colValue],
        ]);
      }
    }
    expect(solver.stats().variants).toBe(2);
  });

  it('leaves the caller its program: the request is copied, not moved', async () => {
    const lp = program('kept', 12, 4);
    await solver.solve(lp);
    expect(lp.colCost.length).toBe(12);
    expect(lp.value.length).toBeGreaterThan(0);
  });

  it('resolves with status error for a program HiGHS cannot take, and rejects a variant of a missing column', async () => {
    const lp = program('broken_arrays', 10, 5);
    const bad = await solver.solve({ ...lp, colUpper: new Float64Array(3) });
    expect(bad.status).toBe('error');
    expect(bad.message).toMatch(/colUpper has 3 entries for 10 columns/);
    await expect(solver.solveVariants(lp, [{ colCosts: [{ col: 99, cost: 1 }] }], [0])).rejects.toThrow(
      /solving LP broken_arrays \(10 columns, 4 rows, 1 variants\): LP broken_arrays: variant #0 refers to column 99/,
    );
    // The worker is still the same one and still answers.
    expect((await solver.solve(lp)).status).toBe('optimal');
    expect(solver.stats().restarts).toBe(0);
  });

  it('rejects requests after close()', async () => {
    const own = createWorkerSolver({ workerUrl: pathToFileURL(WORKER) });
    expect((await own.solve(program('before_close', 8, 6))).status).toBe('optimal');
    await own.close();
    await expect(own.solve(program('after_close', 8, 6))).rejects.toThrow(/the solver is closed; LP after_close/);
  });
});

/** A stand-in worker: answers like the real one, but hangs on LP "hang", exits on "crash", throws on "throw". */
const FAKE_WORKER = `
import { appendFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
appendFileSync(new URL('./started.log', import.meta.url), 'started\\n');
const mode = process.env.FAKE_SOLVER_MODE ?? '';
if (mode === 'fatal') {
  parentPort.postMessage({ kind: 'fatal', error: 'no WASM here' });
  process.exit(1);
}
if (mode !== 'silent') parentPort.postMessage({ kind: 'ready', version: 'fake', loadMs: 0, warmMs: 0 });
parentPort.on('message', (request) => {
  const name = request.lp.name;
  if (name === 'hang') for (;;) {}
  if (name === 'crash') process.exit(3);
  if (name === 'throw') throw new Error('the fake worker blew up');
  const empty = new Float64Array(0);
  parentPort.postMessage({
    kind: 'solved',
    id: request.id,
    result: { status: 'optimal', objective: request.lp.offset, colValue: empty, rowDual: empty, solveMs: 0 },
  });
});
`;

describe('worker solver mechanics (stand-in worker)', () => {
  let dir: string;
  let fake: URL;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mgmc-solver-worker-'));
    const file = join(dir, 'fake-worker.mjs');
    writeFileSync(file, FAKE_WORKER);
    fake = pathToFileURL(file);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const named = (name: string, offset = 0): LinearProgram => {
    const b = new LpBuilder(name);
    b.addColumn('x', 0, 1, 1);
    b.addOffset(offset);
    return b.build();
  };

  it('stops a solve that exceeds the timeout, rejects it, and answers the next one from a fresh worker', async () => {
    const solver = createWorkerSolver({ workerUrl: fake, requestTimeoutMs: 300 });
    try {
      const hung = solver.solve(named('hang'));
      const next = solver.solve(named('after_hang', 42));
      await Promise.all([
        expect(hung).rejects.toThrow(
          /solving LP hang \(1 columns, 0 rows\) exceeded 0.3 s; the solver worker was stopped and the next request starts a fresh one/,
        ),
        expect(next).resolves.toMatchObject({ objective: 42 }),
      ]);
      expect(solver.stats()).toMatchObject({ solves: 1, restarts: 1 });
    } finally {
      await solver.close();
    }
  });

  it('rejects the request a worker crashed on and carries on with a fresh worker, in order', async () => {
    const solver = createWorkerSolver({ workerUrl: fake });
    try {
      const order: string[] = [];
      const track = <T>(label: string, p: Promise<T>) =>
        p.then(
          (v) => {
            order.push(label);
            return v;
          },
          (e: unknown) => {
            order.push(`${label} failed`);
            throw e;
          },
        );
      const first = track('first', solver.solve(named('first', 1)));
      const crash = track('crash', solver.solve(named('crash')));
      const second = track('second', solver.solve(named('second', 2)));
      const thrown = track('throw', solver.solve(named('throw')));
      const third = track('third', solver.solve(named('third', 3)));
      // Every expectation attached before anything settles: no rejection goes unhandled.
      await Promise.all([
        expect(first).resolves.toMatchObject({ objective: 1 }),
        expect(crash).rejects.toThrow(
          /the solver worker crashed \(exit code 3\) while solving LP crash \(1 columns, 0 rows\); the next request starts a fresh worker/,
        ),
        expect(second).resolves.toMatchObject({ objective: 2 }),
        expect(thrown).rejects.toThrow(/the solver worker crashed \(exit code 1, the fake worker blew up\)/),
        expect(third).resolves.toMatchObject({ objective: 3 }),
      ]);
      expect(order).toEqual(['first', 'crash failed', 'second', 'throw failed', 'third']);
      expect(solver.stats()).toMatchObject({ solves: 3, restarts: 2 });
    } finally {
      await solver.close();
    }
  });

  it('rejects, with the reason, when the worker cannot start', async () => {
    const missing = createWorkerSolver({ workerUrl: pathToFileURL(join(dir, 'no-such-worker.mjs')) });
    await expect(missing.solve(named('x'))).rejects.toThrow(
      /the solver worker stopped while starting \(exit code 1, .*no-such-worker/,
    );
    await missing.close();

    const env = process.env.FAKE_SOLVER_MODE;
    try {
      process.env.FAKE_SOLVER_MODE = 'fatal';
      const fatal = createWorkerSolver({ workerUrl: fake });
      await expect(fatal.solve(named('x'))).rejects.toThrow(/the solver worker could not start: no WASM here/);
      await fatal.close();

      process.env.FAKE_SOLVER_MODE = 'silent';
      const silent = createWorkerSolver({ workerUrl: fake, requestTimeoutMs: 300 });
      await expect(silent.solve(named('x'))).rejects.toThrow(/the solver worker did not start within 0.3 s/);
      await silent.close();
    } finally {
      if (env === undefined) delete process.env.FAKE_SOLVER_MODE;
      else process.env.FAKE_SOLVER_MODE = env;
    }
  });

  it('close() stops a running solve and refuses later ones', async () => {
    const solver = createWorkerSolver({ workerUrl: fake, requestTimeoutMs: 60_000 });
    expect((await solver.solve(named('warm', 5))).objective).toBe(5);
    const hung = solver.solve(named('hang'));
    const queued = solver.solve(named('queued'));
    // One turn of the event loop: the worker is running, so the hang request is sent at once.
    await new Promise((resolve) => setImmediate(resolve));
    const hungFails = expect(hung).rejects.toThrow(/the solver was closed while a solve was running/);
    const queuedFails = expect(queued).rejects.toThrow(/the solver is closed; LP queued/);
    await solver.close();
    await hungFails;
    await queuedFails;
  });

  it('starts the worker on the first request, not before, and only once', async () => {
    const started = () => (existsSync(join(dir, 'started.log')) ? readFileSync(join(dir, 'started.log'), 'utf8') : '');
    const before = started();
    const solver = createWorkerSolver({ workerUrl: fake });
    await new Promise((resolve) => setImmediate(resolve));
    expect(started()).toBe(before);
    expect(solver.stats()).toEqual({ solves: 0, variants: 0, totalSolveMs: 0, lastSolveMs: 0, restarts: 0 });
    await Promise.all([solver.solve(named('a')), solver.solve(named('b'))]);
    await solver.solve(named('c'));
    expect(started()).toBe(`${before}started\n`);
    await solver.close();
  });
});
