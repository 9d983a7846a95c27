/**
 * The solver worker thread: loads HiGHS once, warms it with a tiny LP (the first solve in a runtime is the slow one),
 * says `ready`, then answers one request at a time. Started by createWorkerSolver (solver.ts) from the compiled
 * dist/agent/optimizer/solver-worker.js; never imported for its code (solver.ts imports its types only).
 */
import { parentPort } from 'node:worker_threads';
import { type HighsEngine, loadHighsEngine } from './highs.js';
import {
  type LinearProgram,
  LpBuilder,
  type LpResult,
  type LpVariant,
  type SolveOptions,
  type VariantResult,
} from './lp.js';

/** Main thread -> worker. */
export type WorkerRequest =
  | { readonly id: number; readonly kind: 'solve'; readonly lp: LinearProgram; readonly options?: SolveOptions }
  | {
      readonly id: number;
      readonly kind: 'variants';
      readonly lp: LinearProgram;
      readonly variants: readonly LpVariant[];
      readonly reportCols: readonly number[];
      readonly options?: SolveOptions;
    };

/** Worker -> main thread. */
export type WorkerReply =
  | { readonly kind: 'ready'; readonly version: string; readonly loadMs: number; readonly warmMs: number }
  /** The engine could not load; the worker exits after saying so. */
  | { readonly kind: 'fatal'; readonly error: string }
  | { readonly kind: 'solved'; readonly id: number; readonly result: LpResult }
  | { readonly kind: 'variants'; readonly id: number; readonly results: readonly VariantResult[] }
  | { readonly kind: 'failed'; readonly id: number; readonly error: string };

/** A two-column LP: enough to run the whole solve path once. */
function warmUpLp(): LinearProgram {
  const b = new LpBuilder('warm_up');
  const x = b.addColumn('x', 0, 10, 1);
  const y = b.addColumn('y', 0, 10, 2);
  b.addRow('need', 3, Number.POSITIVE_INFINITY, [
    [x, 1],
    [y, 1],
  ]);
  return b.build();
}

function answer(engine: HighsEngine, request: WorkerRequest): { reply: WorkerReply; transfer: ArrayBuffer[] } {
  try {
    if (request.kind === 'solve') {
      const result = engine.solve(request.lp, request.options);
      return {
        reply: { kind: 'solved', id: request.id, result },
        transfer: distinctBuffers([result.colValue, result.rowDual]),
      };
    }
    const results = engine.solveVariants(request.lp, request.variants, request.reportCols, request.options);
    return {
      reply: { kind: 'variants', id: request.id, results },
      transfer: distinctBuffers(results.map((r) => r.values)),
    };
  } catch (error) {
    return {
      reply: { kind: 'failed', id: request.id, error: error instanceof Error ? error.message : String(error) },
      transfer: [],
    };
  }
}

/** Result arrays move to the main thread instead of being copied; each buffer may be listed once only. */
function distinctBuffers(arrays: readonly Float64Array[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const a of arrays) if (a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
  return [...buffers];
}

async function serve(): Promise<void> {
  const port = parentPort;
  if (port === null) {
    throw new Error('solver-worker.js runs as a worker thread (new Worker(...) from solver.ts), not as a program');
  }
  let engine: HighsEngine;
  const t0 = performance.now();
  try {
    engine = await loadHighsEngine();
  } catch (error) {
    port.postMessage({ kind: 'fatal', error: error instanceof Error ? error.message : String(error) } as WorkerReply);
    process.exit(1);
  }
  const t1 = performance.now();
  const warm = engine.solve(warmUpLp());
  if (warm.status !== 'optimal') {
    port.postMessage({ kind: 'fatal', error: `HiGHS failed its warm-up LP: ${warm.message ?? warm.status}` });
    process.exit(1);
  }
  port.on('message', (request: WorkerRequest) => {
    const { reply, transfer } = answer(engine, request);
    port.postMessage(reply, transfer);
    // An aborted WASM runtime is unusable: end the thread so the next request gets a fresh one.
    if (engine.broken !== undefined) process.exit(2);
  });
  port.postMessage({
    kind: 'ready',
    version: engine.version,
    loadMs: t1 - t0,
    warmMs: performance.now() - t1,
  } satisfies WorkerReply);
}

await serve();
