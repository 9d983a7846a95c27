/**
 * The Solver the optimizer talks to: HiGHS either in this thread (tests, short CLI runs) or in one warm worker thread
 * (the gateway: a solve takes milliseconds to a second of CPU and polling must never wait for it).
 *
 * The worker is started on first use and warmed with a tiny LP; requests go one at a time in order. A request that
 * takes longer than the timeout terminates the worker (HiGHS cannot be interrupted from outside) and rejects; a crashed
 * worker rejects the request it was working on. Either way the next request starts a fresh worker.
 */
import { Worker } from 'node:worker_threads';
import { type Logger, silentLogger } from '../logger.js';
import { type HighsEngine, loadHighsEngine } from './highs.js';
import type { LinearProgram, LpResult, LpVariant, SolveOptions, VariantResult } from './lp.js';
import type { WorkerReply, WorkerRequest } from './solver-worker.js';

export type { LpVariant, SolveOptions, VariantResult };

export interface SolverStats {
  /** Completed solve() calls. */
  readonly solves: number;
  /** Variants solved by solveVariants() calls. */
  readonly variants: number;
  /** Wall time of all completed requests, ms (from sending to the answer; time queued behind others excluded). */
  readonly totalSolveMs: number;
  readonly lastSolveMs: number;
  /** Times the solver was started again after a timeout, a crash or an aborted runtime. */
  readonly restarts: number;
}

export interface Solver {
  /** Solves one program; resolves with status 'error' (and a message) for solver failures. */
  solve(lp: LinearProgram, options?: SolveOptions): Promise<LpResult>;
  /** Solves the base program once per variant (see HighsEngine.solveVariants), reporting `reportCols`. */
  solveVariants(
    lp: LinearProgram,
    variants: readonly LpVariant[],
    reportCols: readonly number[],
    options?: SolveOptions,
  ): Promise<VariantResult[]>;
  stats(): SolverStats;
  /** Releases the solver (terminates the worker); later requests reject. */
  close(): Promise<void>;
}

export class SolverError extends Error {
  override name = 'SolverError';
}

class Stats {
  solves = 0;
  variants = 0;
  totalSolveMs = 0;
  lastSolveMs = 0;
  restarts = 0;

  record(ms: number, variants: number | undefined): void {
    if (variants === undefined) this.solves++;
    else this.variants += variants;
    this.totalSolveMs += ms;
    this.lastSolveMs = ms;
  }

  snapshot(): SolverStats {
    return { ...this };
  }
}

/** HiGHS in this thread: each call blocks the event loop for the length of the solve. */
export async function createInlineSolver(): Promise<Solver> {
  let engine: HighsEngine | undefined = await loadHighsEngine();
  const stats = new Stats();
  const usable = async (): Promise<HighsEngine> => {
    if (engine === undefined) throw new SolverError('the solver is closed');
    if (engine.broken !== undefined) {
      engine = await loadHighsEngine();
      stats.restarts++;
    }
    return engine;
  };
  return {
    async solve(lp, options) {
      const e = await usable();
      const t0 = performance.now();
      const result = e.solve(lp, options);
      stats.record(performance.now() - t0, undefined);
      return result;
    },
    async solveVariants(lp, variants, reportCols, options) {
      const e = await usable();
      const t0 = performance.now();
      const results = e.solveVariants(lp, variants, reportCols, options);
      stats.record(performance.now() - t0, variants.length);
      return results;
    },
    stats: () => stats.snapshot(),
    async close() {
      engine = undefined;
    },
  };
}

export interface WorkerSolverOptions {
  /** The compiled worker; default solver-worker.js next to this module (exists in dist/ only). */
  readonly workerUrl?: URL;
  /** Longest wait for one answer (and for the worker to start), ms; default 30 s. */
  readonly requestTimeoutMs?: number;
  readonly logger?: Logger;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** HiGHS in a worker thread, started on first use. Nothing happens until the first request. */
export function createWorkerSolver(options: WorkerSolverOptions = {}): Solver {
  return new WorkerSolver(
    options.workerUrl ?? new URL('./solver-worker.js', import.meta.url),
    options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS,
    (options.logger ?? silentLogger()).child({ module: 'solver' }),
  );
}

type Outgoing = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface InFlight {
  readonly id: number;
  readonly what: string;
  settle(reply: WorkerReply | Error): void;
}

interface Running {
  readonly worker: Worker;
  /** Resolves when the worker said ready; rejects if it dies or stalls first. */
  readonly ready: Promise<void>;
  /** The worker's last uncaught error, for the exit message. */
  lastError?: string;
}

class WorkerSolver implements Solver {
  private running: Running | undefined;
  private inFlight: InFlight | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private starts = 0;
  private closed = false;
  private readonly counters = new Stats();

  constructor(
    private readonly url: URL,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  solve(lp: LinearProgram, options?: SolveOptions): Promise<LpResult> {
    return this.enqueue({ kind: 'solve', lp, ...(options === undefined ? {} : { options }) }, lp, undefined).then(
      (reply) => (reply as Extract<WorkerReply, { kind: 'solved' }>).result,
    );
  }

  solveVariants(
    lp: LinearProgram,
    variants: readonly LpVariant[],
    reportCols: readonly number[],
    options?: SolveOptions,
  ): Promise<VariantResult[]> {
    const request: Outgoing = {
      kind: 'variants',
      lp,
      variants,
      reportCols,
      ...(options === undefined ? {} : { options }),
    };
    return this.enqueue(request, lp, variants.length).then((reply) => [
      ...(reply as Extract<WorkerReply, { kind: 'variants' }>).results,
    ]);
  }

  stats(): SolverStats {
    return this.counters.snapshot();
  }

  async close(): Promise<void> {
    this.closed = true;
    const running = this.running;
    this.running = undefined;
    this.inFlight?.settle(new SolverError('the solver was closed while a solve was running'));
    if (running !== undefined) await running.worker.terminate();
  }

  /** One request at a time, in call order: each waits for the one before it to settle, whatever its outcome. */
  private enqueue(request: Outgoing, lp: LinearProgram, variants: number | undefined): Promise<WorkerReply> {
    const what =
      `LP ${lp.name} (${lp.colNames.length} columns, ${lp.rowNames.length} rows` +
      `${variants === undefined ? '' : `, ${variants} variants`})`;
    const turn = async (): Promise<WorkerReply> => {
      if (this.closed) throw new SolverError(`the solver is closed; ${what} was not solved`);
      const running = this.start();
      await running.ready;
      const t0 = performance.now();
      const reply = await this.send(running, request, what);
      this.counters.record(performance.now() - t0, variants);
      return reply;
    };
    const result = this.queue.then(turn, turn);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private start(): Running {
    if (this.running !== undefined) return this.running;
    this.starts++;
    if (this.starts > 1) this.counters.restarts++;
    let worker: Worker;
    try {
      worker = new Worker(this.url);
    } catch (error) {
      throw new SolverError(`cannot start the solver worker ${this.url}: ${(error as Error).message}`);
    }
    let readyResolve!: () => void;
    let readyReject!: (error: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    // Awaited by the request that started the worker; never an unhandled rejection if that request is gone.
    ready.catch(() => undefined);
    const running: Running = { worker, ready };
    this.running = running;
    let isReady = false;
    const startTimer = setTimeout(() => {
      readyReject(new SolverError(`the solver worker did not start within ${this.timeoutMs / 1000} s (${this.url})`));
      this.stop(running);
    }, this.timeoutMs);

    worker.on('message', (reply: WorkerReply) => {
      if (reply.kind === 'ready') {
        isReady = true;
        clearTimeout(startTimer);
        this.log.info(
          { version: reply.version, loadMs: Math.round(reply.loadMs), warmMs: Math.round(reply.warmMs) },
          'solver worker ready',
        );
        worker.unref();
        readyResolve();
      } else if (reply.kind === 'fatal') {
        clearTimeout(startTimer);
        running.lastError = reply.error;
        readyReject(new SolverError(`the solver worker could not start: ${reply.error}`));
      } else if (this.inFlight !== undefined && this.inFlight.id === reply.id) {
        this.inFlight.settle(reply);
      }
    });
    worker.on('error', (error) => {
      running.lastError = error.message;
    });
    worker.on('exit', (code) => {
      clearTimeout(startTimer);
      if (this.running === running) this.running = undefined;
      const why = `exit code ${code}${running.lastError === undefined ? '' : `, ${running.lastError}`}`;
      if (!isReady) {
        readyReject(new SolverError(`the solver worker stopped while starting (${why}) (${this.url})`));
        return;
      }
      if (this.inFlight !== undefined && this.running === undefined && !this.closed) {
        this.log.error({ code, error: running.lastError }, 'solver worker crashed');
        this.inFlight.settle(
          new SolverError(
            `the solver worker crashed (${why}) while solving ${this.inFlight.what}; the next request starts a fresh worker`,
          ),
        );
      }
    });
    return running;
  }

  private stop(running: Running): void {
    if (this.running === running) this.running = undefined;
    void running.worker.terminate();
  }

  private send(running: Running, request: Outgoing, what: string): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.log.error({ what, timeoutMs: this.timeoutMs }, 'solve timed out; restarting the solver worker');
        flight.settle(
          new SolverError(
            `solving ${what} exceeded ${this.timeoutMs / 1000} s; the solver worker was stopped and ` +
              'the next request starts a fresh one',
          ),
        );
        this.stop(running);
      }, this.timeoutMs);
      const flight: InFlight = {
        id,
        what,
        settle: (reply) => {
          if (this.inFlight !== flight) return;
          this.inFlight = undefined;
          clearTimeout(timer);
          // An idle worker must not keep the process alive (a CLI that forgot close() still ends).
          running.worker.unref();
          if (reply instanceof Error) reject(reply);
          else if (reply.kind === 'failed') reject(new SolverError(`solving ${what}: ${reply.error}`));
          else resolve(reply);
        },
      };
      this.inFlight = flight;
      running.worker.ref();
      // Typed arrays are copied (structured clone): the caller keeps its program intact.
      running.worker.postMessage({ ...request, id } as WorkerRequest);
    });
  }
}
