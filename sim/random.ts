/**
 * Seeded randomness for the simulator. Everything random in a simulated site derives from one seed, and every device
 * and process gets a seed of its own derived from the site seed and a name, so adding a device never shifts the
 * numbers another device draws.
 *
 * Two styles: `Rng` is a sequential stream (mulberry32) for draws made once (session jitter); `OuSeries` is an
 * Ornstein-Uhlenbeck process that is a pure function of time (its innovations are keyed by knot index, not drawn from
 * a stream), so the value at a given instant does not depend on how often, or in what order, someone asked.
 */

const TWO_POW_32 = 4294967296;

/** murmur3's 32-bit finalizer: every input bit reaches every output bit, so neighbouring inputs give unrelated words. */
export function fmix32(h: number): number {
  let x = h >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Combines two 32-bit words into one well-mixed word; order matters (mix32(a, b) != mix32(b, a)). */
export function mix32(a: number, b: number): number {
  return fmix32(Math.imul(a >>> 0, 0x9e3779b1) ^ fmix32((b >>> 0) + 0x6d2b79f5));
}

const utf8 = new TextEncoder();

/** 32-bit FNV-1a over the UTF-8 bytes of a name. */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (const byte of utf8.encode(name)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Reduces any safe integer (negative or above 2^32 included) to a 32-bit seed without discarding its high bits. */
export function seedToU32(seed: number): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  return mix32(lo, hi);
}

/** The seed of a named child: depends only on the parent seed and the name, never on draws made so far. */
export function deriveSeed(seed: number, name: string): number {
  return mix32(seed >>> 0, hashName(name));
}

/** One mulberry32 step: returns the new state and a uniform in [0, 1). */
function mulberryStep(state: number): [number, number] {
  const s = (state + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [s, ((t ^ (t >>> 14)) >>> 0) / TWO_POW_32];
}

/** mulberry32 (Tommy Ettinger's 32-bit generator): small, fast, and good enough for a simulation's noise. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    const [s, u] = mulberryStep(state);
    state = s;
    return u;
  };
}

/** Box-Muller: two uniforms to one standard normal; u1 is taken from (0, 1] so the logarithm stays finite. */
function boxMuller(u1: number, u2: number): number {
  return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
}

/** A sequential stream of seeded random numbers. */
export class Rng {
  readonly seed: number;
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.state = this.seed;
  }

  /** Uniform in [0, 1). */
  next(): number {
    const [s, u] = mulberryStep(this.state);
    this.state = s;
    return u;
  }

  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Normal variate (Box-Muller; the second value of each pair is kept for the next call). */
  normal(mean = 0, sd = 1): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return mean + sd * z;
    }
    const u1 = this.next();
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(1 - u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return mean + sd * r * Math.cos(2 * Math.PI * u2);
  }

  /** An independent stream for a named part, derived from this stream's seed (not its state). */
  fork(name: string): Rng {
    return new Rng(deriveSeed(this.seed, name));
  }
}

/** A standard normal keyed by (seed, index): the same pair always gives the same value, in any order of calls. */
export function normalAt(seed: number, index: number): number {
  const lo = index >>> 0;
  const hi = Math.floor(index / TWO_POW_32) >>> 0;
  const [s1, u1] = mulberryStep(mix32(mix32(seed, lo), hi));
  const [, u2] = mulberryStep(s1);
  return boxMuller(u1, u2);
}

/**
 * One exact Ornstein-Uhlenbeck transition over dt (not Euler-Maruyama, so the statistics do not depend on dt):
 * x' = mean + (x - mean)·rho + sd·sqrt(1 - rho²)·z with rho = exp(-dt/tau), sd the stationary deviation, z ~ N(0, 1).
 */
export function ouStep(x: number, mean: number, sd: number, dtS: number, tauS: number, z: number): number {
  const rho = Math.exp(-dtS / tauS);
  return mean + (x - mean) * rho + sd * Math.sqrt(1 - rho * rho) * z;
}

export interface OuSeriesOptions {
  seed: number;
  /** The series starts here (floored to the knot grid); earlier times read the first knot. */
  originMs: number;
  /** Spacing of the knots; values between knots are interpolated linearly. */
  knotMs: number;
  /** Correlation time: a deviation fades to 1/e in this many seconds. */
  tauS: number;
  /** Stationary standard deviation. */
  sd: number;
  mean?: number;
}

/** Knots kept as restart points, so a look-up far behind the cursor costs at most this many transitions. */
const CHECKPOINT_EVERY = 256;

/**
 * An Ornstein-Uhlenbeck process sampled on a fixed knot grid and interpolated linearly, read as a function of time.
 * Being tied to the grid (not to the caller's steps) is what lets a day stepped at 1 s and at 60 s see the same
 * clouds and the same noise. It starts from the stationary distribution, so there is no warm-up transient.
 */
export class OuSeries {
  private readonly seed: number;
  private readonly origin: number;
  private readonly knotMs: number;
  private readonly mean: number;
  private readonly rho: number;
  private readonly innovationSd: number;
  private readonly checkpoints: number[] = [];
  private curK = 0;
  private curX: number;
  private prevX: number;

  constructor(options: OuSeriesOptions) {
    if (!(options.knotMs > 0)) throw new RangeError(`knotMs must be positive, got ${options.knotMs}`);
    if (!(options.tauS > 0)) throw new RangeError(`tauS must be positive, got ${options.tauS}`);
    if (!(options.sd >= 0)) throw new RangeError(`sd must be >= 0, got ${options.sd}`);
    this.seed = options.seed >>> 0;
    this.knotMs = options.knotMs;
    this.origin = Math.floor(options.originMs / options.knotMs) * options.knotMs;
    this.mean = options.mean ?? 0;
    this.rho = Math.exp(-options.knotMs / 1000 / options.tauS);
    this.innovationSd = options.sd * Math.sqrt(1 - this.rho * this.rho);
    this.curX = this.mean + options.sd * normalAt(this.seed, 0);
    this.prevX = this.curX;
    this.checkpoints.push(this.curX);
  }

  at(t: number): number {
    const u = (t - this.origin) / this.knotMs;
    if (u <= 0) return this.knot(0);
    const k = Math.floor(u);
    const frac = u - k;
    const next = this.knot(k + 1);
    if (frac === 0) return this.knot(k);
    return this.knot(k) + (next - this.knot(k)) * frac;
  }

  private transition(x: number, k: number): number {
    return this.mean + (x - this.mean) * this.rho + this.innovationSd * normalAt(this.seed, k);
  }

  private knot(k: number): number {
    if (k === this.curK) return this.curX;
    if (k === this.curK - 1) return this.prevX;
    if (k > this.curK) {
      let x = this.curX;
      let prev = this.prevX;
      for (let j = this.curK + 1; j <= k; j++) {
        prev = x;
        x = this.transition(x, j);
        if (j % CHECKPOINT_EVERY === 0 && this.checkpoints.length === j / CHECKPOINT_EVERY) this.checkpoints.push(x);
      }
      this.curK = k;
      this.curX = x;
      this.prevX = prev;
      return x;
    }
    const c = Math.floor(k / CHECKPOINT_EVERY);
    let x = this.checkpoints[c]!;
    for (let j = c * CHECKPOINT_EVERY + 1; j <= k; j++) x = this.transition(x, j);
    return x;
  }
}
