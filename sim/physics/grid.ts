/**
 * The public grid the site hangs on, and what every device model shares about that bus: phases, the power flow a
 * device presents to meters, and the time grid energy is integrated on.
 *
 * The grid is an infinite bus: voltage and frequency move by themselves (slow drift, per-phase noise, frequency
 * deviation as Ornstein-Uhlenbeck processes) and the site's own flows do not move them. That keeps every device a
 * function of time and its own setpoints, so devices can be stepped in any order.
 */
import { deriveSeed, OuSeries } from '../random.js';

/** Values for phases L1, L2, L3. */
export type Phases = readonly [number, number, number];
export type PhaseNumber = 1 | 2 | 3;

export interface GridParams {
  /** Phase-to-neutral nominal voltage, V. Default 230. */
  nominalVoltageV?: number;
  /** Default 50. */
  nominalFrequencyHz?: number;
  /** Standard deviation of the slow voltage drift common to all phases (correlation time 30 min), % of nominal. Default 1. */
  voltageDriftPct?: number;
  /** Standard deviation of each phase's own fast fluctuation (correlation time 30 s), % of nominal. Default 0.3. */
  phaseNoisePct?: number;
  /** Standard deviation of the frequency deviation (correlation time 60 s), Hz. Default 0.02 (typical of Continental Europe). */
  frequencySdHz?: number;
}

export interface GridState {
  readonly phaseVoltageV: Phases;
  /** L1-L2, L2-L3, L3-L1, assuming 120° between phases. */
  readonly lineVoltageV: Phases;
  readonly frequencyHz: number;
}

export class GridModel {
  readonly nominalVoltageV: number;
  readonly nominalFrequencyHz: number;
  private readonly drift: OuSeries;
  private readonly phaseNoise: readonly [OuSeries, OuSeries, OuSeries];
  private readonly frequencyDeviation: OuSeries;

  constructor(params: GridParams, env: { seed: number; startMs: number }) {
    this.nominalVoltageV = positive(params.nominalVoltageV ?? 230, 'grid.nominalVoltageV');
    this.nominalFrequencyHz = positive(params.nominalFrequencyHz ?? 50, 'grid.nominalFrequencyHz');
    const driftPct = nonNegative(params.voltageDriftPct ?? 1, 'grid.voltageDriftPct');
    const noisePct = nonNegative(params.phaseNoisePct ?? 0.3, 'grid.phaseNoisePct');
    const fSd = nonNegative(params.frequencySdHz ?? 0.02, 'grid.frequencySdHz');
    const series = (name: string, knotMs: number, tauS: number, sd: number) =>
      new OuSeries({ seed: deriveSeed(env.seed, name), originMs: env.startMs, knotMs, tauS, sd });
    this.drift = series('voltage-drift', 60_000, 1800, driftPct / 100);
    this.phaseNoise = [
      series('voltage-l1', 10_000, 30, noisePct / 100),
      series('voltage-l2', 10_000, 30, noisePct / 100),
      series('voltage-l3', 10_000, 30, noisePct / 100),
    ];
    this.frequencyDeviation = series('frequency', 10_000, 60, fSd);
  }

  voltage(t: number, phase: PhaseNumber): number {
    return this.nominalVoltageV * (1 + this.drift.at(t) + this.phaseNoise[phase - 1]!.at(t));
  }

  phaseVoltages(t: number): Phases {
    return [this.voltage(t, 1), this.voltage(t, 2), this.voltage(t, 3)];
  }

  frequency(t: number): number {
    return this.nominalFrequencyHz + this.frequencyDeviation.at(t);
  }

  state(t: number): GridState {
    const v = this.phaseVoltages(t);
    return { phaseVoltageV: v, lineVoltageV: lineVoltages(v), frequencyHz: this.frequency(t) };
  }
}

/** Line-to-line voltages from phase voltages 120° apart: |Va - Vb| = sqrt(Va² + Vb² + Va·Vb). */
export function lineVoltages(v: Phases): Phases {
  const ll = (a: number, b: number) => Math.sqrt(a * a + b * b + a * b);
  return [ll(v[0], v[1]), ll(v[1], v[2]), ll(v[2], v[0])];
}

/**
 * What a device presents to the meters that see it, in the load convention: power drawn from the bus is positive,
 * power fed into it (PV, battery discharge) negative. Reactive power drawn (inductive) is positive.
 */
export interface PowerFlow {
  readonly name: string;
  /** Active power per phase at the device's last step, W. */
  phasePowerW(): Phases;
  /** Reactive power per phase at the device's last step, var. */
  phaseReactiveVar(): Phases;
  /** Net energy drawn from the bus since the model started, Wh; meters take differences of it between steps. */
  netEnergyWh(): number;
}

/** How a device's connection splits its power: evenly over three phases, or all on one. */
export function phaseShares(phases: 1 | 3, phase: PhaseNumber): Phases {
  if (phases === 3) return [1 / 3, 1 / 3, 1 / 3];
  return [phase === 1 ? 1 : 0, phase === 2 ? 1 : 0, phase === 3 ? 1 : 0];
}

export function scalePhases(shares: Phases, total: number): Phases {
  return [shares[0] * total, shares[1] * total, shares[2] * total];
}

/** Mean voltage over the phases a device is connected to. */
export function connectedVoltage(v: Phases, shares: Phases): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < 3; i++) {
    if (shares[i]! > 0) {
      sum += v[i]!;
      n++;
    }
  }
  return n === 0 ? 0 : sum / n;
}

/** Phase currents for an apparent power split by `shares`. */
export function phaseCurrents(apparentVA: number, shares: Phases, v: Phases): Phases {
  const c = (i: 0 | 1 | 2) => (v[i] > 0 ? (apparentVA * shares[i]) / v[i] : 0);
  return [c(0), c(1), c(2)];
}

/**
 * Exogenous inputs (sun, load noise, grid voltage) are integrated on this fixed grid, anchored at the Unix epoch, so
 * a caller stepping every second and one stepping every minute sum the same pieces.
 */
export const INTEGRATION_GRID_MS = 10_000;

/**
 * The ends of the pieces [t0, t1] is integrated in: every grid point and every event strictly inside, then t1.
 * Events are the instants where a model's behaviour jumps (a setpoint expires, a car arrives).
 */
export function integrationPoints(t0: number, t1: number, events: readonly number[], gridMs = INTEGRATION_GRID_MS) {
  const points: number[] = [];
  if (Number.isFinite(gridMs)) {
    for (let g = Math.floor(t0 / gridMs) * gridMs + gridMs; g < t1; g += gridMs) points.push(g);
  }
  for (const e of events) if (e > t0 && e < t1) points.push(e);
  points.push(t1);
  if (points.length > 1) points.sort((a, b) => a - b);
  return points.filter((p, i) => i === 0 || p !== points[i - 1]);
}

/**
 * A setpoint that reverts when not re-sent in time, as SunSpec's *_RvrtTms points: a timeout of 0 (or none) keeps it
 * until replaced. `expiresAt` is the first instant at which it no longer applies.
 */
export interface TimedSetpoint<T> {
  readonly value: T;
  readonly setAt: number;
  readonly expiresAt: number | undefined;
}

export function timedSetpoint<T>(value: T, setAt: number, revertTimeoutS: number | undefined): TimedSetpoint<T> {
  const timeout = revertTimeoutS ?? 0;
  if (!(timeout >= 0) || !Number.isFinite(timeout)) {
    throw new RangeError(`revertTimeoutS must be a finite number >= 0, got ${revertTimeoutS}`);
  }
  return { value, setAt, expiresAt: timeout > 0 ? setAt + timeout * 1000 : undefined };
}

export function isActive(sp: TimedSetpoint<unknown> | undefined, t: number): boolean {
  return sp !== undefined && (sp.expiresAt === undefined || t < sp.expiresAt);
}

/** The public view of a timed setpoint in snapshots. */
export function describeSetpoint<T>(
  sp: TimedSetpoint<T> | undefined,
  t: number,
): { value: T; active: boolean; remainingS: number | null } | null {
  if (sp === undefined) return null;
  const active = isActive(sp, t);
  const remainingS = sp.expiresAt === undefined ? null : Math.max(0, (sp.expiresAt - t) / 1000);
  return { value: sp.value, active, remainingS };
}

/** Active power carried through a piece where the potential power moves linearly from pa to pb and is capped. */
export function integrateCappedWs(pa: number, pb: number, cap: number, dtS: number): number {
  if (pa <= cap && pb <= cap) return ((pa + pb) / 2) * dtS;
  if (pa >= cap && pb >= cap) return cap * dtS;
  const f = (cap - pa) / (pb - pa);
  if (pa < cap) return ((pa + cap) / 2) * f * dtS + cap * (1 - f) * dtS;
  return cap * f * dtS + ((cap + pb) / 2) * (1 - f) * dtS;
}

/** Reactive power for an active power and a signed power factor: positive pf gives positive var. */
export function reactiveForPowerFactor(p: number, pf: number): number {
  const abs = Math.abs(pf);
  if (abs >= 1) return 0;
  return Math.sign(pf) * Math.abs(p) * (Math.sqrt(1 - abs * abs) / abs);
}

/** P/S signed like P; 1 when nothing flows. */
export function powerFactorOf(p: number, q: number): number {
  const s = Math.hypot(p, q);
  return s === 0 ? 1 : p / s;
}

export function positive(value: number, what: string): number {
  if (!(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw new RangeError(`${what} must be a number > 0, got ${String(value)}`);
  }
  return value;
}

export function nonNegative(value: number, what: string): number {
  if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
    throw new RangeError(`${what} must be a number >= 0, got ${String(value)}`);
  }
  return value;
}

export function inRange(value: number, min: number, max: number, what: string): number {
  if (!(typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max)) {
    throw new RangeError(`${what} must be a number in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

export function checkPhases(phases: unknown, phase: unknown, what: string): { phases: 1 | 3; phase: PhaseNumber } {
  const p = phases ?? 3;
  if (p !== 1 && p !== 3) throw new RangeError(`${what}.phases must be 1 or 3, got ${String(phases)}`);
  const ph = phase ?? 1;
  if (ph !== 1 && ph !== 2 && ph !== 3) throw new RangeError(`${what}.phase must be 1, 2 or 3, got ${String(phase)}`);
  return { phases: p, phase: ph };
}

/** Time may not run backwards: a model's state is the integral up to its last step. */
export function checkForward(t: number, last: number, what: string): void {
  if (!Number.isFinite(t)) throw new RangeError(`${what}: step time must be finite, got ${t}`);
  if (t < last) {
    throw new RangeError(
      `${what}: time went backwards (${new Date(t).toISOString()} < ${new Date(last).toISOString()})`,
    );
  }
}

/**
 * Parses an ISO 8601 instant that names its offset ('2024-06-17T08:00:00Z', '...+02:00'). Without one, JavaScript
 * would read it in the machine's time zone and the same site file would simulate differently on another machine.
 */
export function parseInstant(text: string, what: string): number {
  if (typeof text !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(text)) {
    throw new RangeError(
      `${what} must be an ISO 8601 time with an offset, e.g. 2024-06-17T08:00:00Z; got ${String(text)}`,
    );
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new RangeError(`${what} is not a valid time: ${text}`);
  return ms;
}
