/**
 * The reference for bench grid: a plain Newton-Raphson power flow in polar coordinates on a dense bus admittance
 * matrix, solved with dense LU (partial pivoting) every iteration, the textbook method any power-system tool starts
 * from. It knows nothing of radial structure, so it also checks the sweep on the same feeders: the two must agree.
 */
import type { Feeder } from '../agent/grid/feeder.js';
import type { BusPowers } from '../agent/grid/powerflow.js';

export interface NewtonResult {
  readonly converged: boolean;
  readonly iterations: number;
  /** Largest power mismatch of the last iteration, pu. */
  readonly mismatchPu: number;
  readonly vPu: Float64Array;
  readonly angleRad: Float64Array;
  readonly lossKw: number;
}

/** Solves the feeder's closed lines (any topology) for constant-power loads. */
export function newtonRaphson(
  feeder: Feeder,
  loads: BusPowers,
  options: { tolerancePu?: number; maxIterations?: number } = {},
): NewtonResult {
  const tolerance = options.tolerancePu ?? 1e-10;
  const maxIterations = options.maxIterations ?? 30;
  const n = feeder.buses.length;
  const slack = feeder.topology.slack;
  const g = new Float64Array(n * n);
  const b = new Float64Array(n * n);
  for (const [l, line] of feeder.lines.entries()) {
    if (line.status === 'open') continue;
    const i = feeder.topology.lineFrom[l] as number;
    const k = feeder.topology.lineTo[l] as number;
    const r = line.rOhm / feeder.zBaseOhm;
    const x = line.xOhm / feeder.zBaseOhm;
    const d = r * r + x * x;
    const gl = r / d;
    const bl = -x / d;
    g[i * n + i] = (g[i * n + i] as number) + gl;
    g[k * n + k] = (g[k * n + k] as number) + gl;
    g[i * n + k] = (g[i * n + k] as number) - gl;
    g[k * n + i] = (g[k * n + i] as number) - gl;
    b[i * n + i] = (b[i * n + i] as number) + bl;
    b[k * n + k] = (b[k * n + k] as number) + bl;
    b[i * n + k] = (b[i * n + k] as number) - bl;
    b[k * n + i] = (b[k * n + i] as number) - bl;
  }
  const kwPerPu = feeder.baseMva * 1000;
  const pSpec = new Float64Array(n);
  const qSpec = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    pSpec[i] = -(loads.pKw[i] as number) / kwPerPu;
    qSpec[i] = -(loads.qKvar[i] as number) / kwPerPu;
  }
  // Unknowns: the angle and magnitude of every bus but the slack.
  const unknown: number[] = [];
  for (let i = 0; i < n; i++) if (i !== slack) unknown.push(i);
  const m = unknown.length;
  const vm = new Float64Array(n).fill(feeder.slackVoltagePu);
  const va = new Float64Array(n);
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  const jac = new Float64Array(4 * m * m);
  const rhs = new Float64Array(2 * m);
  const cosT = new Float64Array(n);
  const sinT = new Float64Array(n);

  const injections = (): void => {
    for (let i = 0; i < n; i++) {
      let pi = 0;
      let qi = 0;
      for (let k = 0; k < n; k++) {
        const gik = g[i * n + k] as number;
        const bik = b[i * n + k] as number;
        if (gik === 0 && bik === 0) continue;
        const t = (va[i] as number) - (va[k] as number);
        const c = Math.cos(t);
        const s = Math.sin(t);
        pi += (vm[k] as number) * (gik * c + bik * s);
        qi += (vm[k] as number) * (gik * s - bik * c);
      }
      p[i] = (vm[i] as number) * pi;
      q[i] = (vm[i] as number) * qi;
    }
  };

  let iterations = 0;
  let mismatch = Number.POSITIVE_INFINITY;
  let converged = false;
  for (;;) {
    injections();
    mismatch = 0;
    for (let a = 0; a < m; a++) {
      const i = unknown[a] as number;
      rhs[a] = (pSpec[i] as number) - (p[i] as number);
      rhs[m + a] = (qSpec[i] as number) - (q[i] as number);
      mismatch = Math.max(mismatch, Math.abs(rhs[a] as number), Math.abs(rhs[m + a] as number));
    }
    if (mismatch <= tolerance) {
      converged = true;
      break;
    }
    if (iterations >= maxIterations || !Number.isFinite(mismatch)) break;
    iterations++;
    // The full dense Jacobian [dP/dθ dP/dV; dQ/dθ dQ/dV], 2m x 2m.
    jac.fill(0);
    const w = 2 * m;
    for (let a = 0; a < m; a++) {
      const i = unknown[a] as number;
      const vi = vm[i] as number;
      for (let k = 0; k < n; k++) {
        const t = (va[i] as number) - (va[k] as number);
        cosT[k] = Math.cos(t);
        sinT[k] = Math.sin(t);
      }
      for (let c = 0; c < m; c++) {
        const k = unknown[c] as number;
        const gik = g[i * n + k] as number;
        const bik = b[i * n + k] as number;
        if (i === k) {
          jac[a * w + c] = -(q[i] as number) - bik * vi * vi;
          jac[a * w + m + c] = (p[i] as number) / vi + gik * vi;
          jac[(m + a) * w + c] = (p[i] as number) - gik * vi * vi;
          jac[(m + a) * w + m + c] = (q[i] as number) / vi - bik * vi;
        } else {
          const vk = vm[k] as number;
          const gs = gik * (sinT[k] as number) - bik * (cosT[k] as number);
          const gc = gik * (cosT[k] as number) + bik * (sinT[k] as number);
          jac[a * w + c] = vi * vk * gs;
          jac[a * w + m + c] = vi * gc;
          jac[(m + a) * w + c] = -vi * vk * gc;
          jac[(m + a) * w + m + c] = vi * gs;
        }
      }
    }
    solveDense(jac, rhs, w);
    for (let a = 0; a < m; a++) {
      const i = unknown[a] as number;
      va[i] = (va[i] as number) + (rhs[a] as number);
      vm[i] = (vm[i] as number) + (rhs[m + a] as number);
    }
  }
  // The network's injections sum to its losses.
  let lossPu = 0;
  for (let i = 0; i < n; i++) lossPu += p[i] as number;
  return { converged, iterations, mismatchPu: mismatch, vPu: vm, angleRad: va, lossKw: lossPu * kwPerPu };
}

/**
 * Solves A x = rhs in place (rhs becomes x) by Gaussian elimination with partial pivoting; A is w x w, row-major,
 * overwritten. Rows whose multiplier is zero are skipped, the one liberty taken with the plain dense method.
 */
function solveDense(a: Float64Array, rhs: Float64Array, w: number): void {
  for (let col = 0; col < w; col++) {
    let pivot = col;
    let best = Math.abs(a[col * w + col] as number);
    for (let row = col + 1; row < w; row++) {
      const v = Math.abs(a[row * w + col] as number);
      if (v > best) {
        best = v;
        pivot = row;
      }
    }
    if (best === 0) throw new Error('singular Jacobian');
    if (pivot !== col) {
      for (let j = 0; j < w; j++) {
        const t = a[col * w + j] as number;
        a[col * w + j] = a[pivot * w + j] as number;
        a[pivot * w + j] = t;
      }
      const t = rhs[col] as number;
      rhs[col] = rhs[pivot] as number;
      rhs[pivot] = t;
    }
    const d = a[col * w + col] as number;
    for (let row = col + 1; row < w; row++) {
      const factor = (a[row * w + col] as number) / d;
      if (factor === 0) continue;
      const ro = row * w;
      const co = col * w;
      for (let j = col + 1; j < w; j++) a[ro + j] = (a[ro + j] as number) - factor * (a[co + j] as number);
      rhs[row] = (rhs[row] as number) - factor * (rhs[col] as number);
    }
  }
  for (let row = w - 1; row >= 0; row--) {
    let s = rhs[row] as number;
    for (let j = row + 1; j < w; j++) s -= (a[row * w + j] as number) * (rhs[j] as number);
    rhs[row] = s / (a[row * w + row] as number);
  }
}
