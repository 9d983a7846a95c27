/**
 * A building's consumption: a daily shape for its use (residential, office, commercial) in local time, a weekday and
 * a weekend variant, multiplicative noise, and an optional curtailable share (HVAC, process loads) that sheds when
 * asked. The shapes are hourly fractions of the peak, interpolated linearly, with midnight joining one day's shape
 * to the next day's.
 */
import { deriveSeed, OuSeries } from '../random.js';
import {
  checkForward,
  checkPhases,
  connectedVoltage,
  describeSetpoint,
  type GridModel,
  INTEGRATION_GRID_MS,
  inRange,
  integrationPoints,
  isActive,
  nonNegative,
  type PhaseNumber,
  type Phases,
  type PowerFlow,
  phaseCurrents,
  phaseShares,
  positive,
  reactiveForPowerFactor,
  scalePhases,
  type TimedSetpoint,
  timedSetpoint,
} from './grid.js';

export const LOAD_PROFILES = ['residential', 'office', 'commercial'] as const;
export type LoadProfile = (typeof LOAD_PROFILES)[number];

type Shape = readonly number[];
interface WeekShapes {
  weekday: Shape;
  saturday: Shape;
  sunday: Shape;
}

// Hour h holds the level at h:00 local time, as a fraction of the peak. Drawn after typical published load shapes:
// a residential morning and evening peak; an office's working-day plateau with a lunch dip; a shop open 9-20.
const SHAPES: Record<LoadProfile, WeekShapes> = {
  residential: {
    weekday: [
      0.3, 0.26, 0.24, 0.23, 0.23, 0.27, 0.45, 0.7, 0.62, 0.42, 0.36, 0.35, 0.38, 0.36, 0.34, 0.36, 0.45, 0.65, 0.88,
      1.0, 0.95, 0.8, 0.6, 0.42,
    ],
    saturday: [
      0.34, 0.28, 0.25, 0.24, 0.23, 0.24, 0.3, 0.42, 0.6, 0.7, 0.68, 0.66, 0.7, 0.62, 0.55, 0.52, 0.58, 0.72, 0.9, 1.0,
      0.95, 0.82, 0.65, 0.46,
    ],
    sunday: [
      0.36, 0.3, 0.26, 0.24, 0.23, 0.24, 0.28, 0.36, 0.52, 0.68, 0.72, 0.74, 0.78, 0.66, 0.58, 0.55, 0.6, 0.74, 0.9,
      0.98, 0.92, 0.78, 0.58, 0.4,
    ],
  },
  office: {
    weekday: [
      0.22, 0.21, 0.2, 0.2, 0.2, 0.22, 0.3, 0.5, 0.75, 0.92, 0.97, 1.0, 0.93, 0.95, 0.98, 0.95, 0.88, 0.72, 0.5, 0.36,
      0.3, 0.26, 0.24, 0.23,
    ],
    saturday: [
      0.22, 0.21, 0.2, 0.2, 0.2, 0.21, 0.22, 0.24, 0.28, 0.3, 0.31, 0.31, 0.3, 0.3, 0.29, 0.28, 0.26, 0.24, 0.23, 0.22,
      0.22, 0.22, 0.22, 0.22,
    ],
    sunday: [
      0.22, 0.21, 0.2, 0.2, 0.2, 0.2, 0.21, 0.21, 0.22, 0.22, 0.23, 0.23, 0.23, 0.23, 0.22, 0.22, 0.22, 0.21, 0.21,
      0.21, 0.21, 0.21, 0.21, 0.22,
    ],
  },
  commercial: {
    weekday: [
      0.25, 0.24, 0.24, 0.24, 0.24, 0.26, 0.32, 0.45, 0.7, 0.88, 0.94, 0.97, 1.0, 0.99, 0.97, 0.96, 0.97, 0.98, 0.96,
      0.9, 0.62, 0.36, 0.3, 0.27,
    ],
    saturday: [
      0.25, 0.24, 0.24, 0.24, 0.24, 0.25, 0.3, 0.42, 0.68, 0.9, 0.97, 1.0, 1.0, 1.0, 0.99, 0.98, 0.96, 0.94, 0.9, 0.82,
      0.55, 0.34, 0.29, 0.26,
    ],
    sunday: [
      0.25, 0.24, 0.24, 0.24, 0.24, 0.24, 0.25, 0.26, 0.28, 0.3, 0.31, 0.32, 0.32, 0.32, 0.31, 0.31, 0.3, 0.29, 0.28,
      0.27, 0.26, 0.26, 0.25, 0.25,
    ],
  },
};

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** 0 Sunday .. 6 Saturday for a local day number (days since 1970-01-01, a Thursday). */
export function weekdayOf(localDay: number): number {
  return (((localDay + 4) % 7) + 7) % 7;
}

function shapeFor(profile: LoadProfile, localDay: number): Shape {
  const shapes = SHAPES[profile];
  const dow = weekdayOf(localDay);
  return dow === 0 ? shapes.sunday : dow === 6 ? shapes.saturday : shapes.weekday;
}

/** The profile's level at a UTC instant, as a fraction of the peak, for a site `utcOffsetMinutes` ahead of UTC. */
export function profileLevel(profile: LoadProfile, t: number, utcOffsetMinutes: number): number {
  const local = t + utcOffsetMinutes * 60_000;
  const day = Math.floor(local / DAY_MS);
  const hourFloat = (local - day * DAY_MS) / HOUR_MS;
  const h = Math.floor(hourFloat);
  const frac = hourFloat - h;
  const here = shapeFor(profile, day)[h]!;
  const next = h === 23 ? shapeFor(profile, day + 1)[0]! : shapeFor(profile, day)[h + 1]!;
  return here + (next - here) * frac;
}

export interface LoadParams {
  profile: LoadProfile;
  /** Peak of the daily shape, W. */
  peakW: number;
  /** Standard deviation of the slow multiplicative noise (20 min correlation), %; a fast part (1 min) adds half. Default 6. */
  noisePct?: number;
  /** Share of the load that can be shed on request, 0..1. Default 0. */
  curtailableShare?: number;
  /** Lagging (inductive) power factor of the building, 0..1. Default 0.95. */
  powerFactor?: number;
  /** 1 or 3. Default 3. */
  phases?: 1 | 3;
  phase?: PhaseNumber;
  /** Consumed-energy counter at the start, Wh. Default 0. */
  initialEnergyWh?: number;
}

export interface LoadCurtailSetpoint {
  /** Percent of the curtailable share to shed, 0..100. */
  pct: number;
  /** Seconds until the building resumes full consumption unless re-sent; 0 = never. Default 0. */
  revertTimeoutS?: number;
}

export interface LoadSnapshot {
  readonly kind: 'building-load';
  readonly name: string;
  readonly t: number;
  /** Power drawn, W (>= 0). */
  readonly powerW: number;
  /** What it would draw without curtailment, W. */
  readonly uncurtailedPowerW: number;
  readonly curtailedPowerW: number;
  readonly reactivePowerVar: number;
  readonly powerFactor: number;
  readonly voltageV: number;
  readonly phaseVoltageV: Phases;
  readonly phaseCurrentA: Phases;
  readonly phasePowerW: Phases;
  readonly frequencyHz: number;
  /** Energy consumed, Wh (monotonic). */
  readonly energyWh: number;
  readonly curtailment: { value: number; active: boolean; remainingS: number | null } | null;
}

export interface LoadEnvironment {
  grid: GridModel;
  startMs: number;
  /** This device's seed (derived from the site seed and its name). */
  seed: number;
  utcOffsetMinutes: number;
}

export class BuildingLoad implements PowerFlow {
  readonly kind = 'building-load';
  readonly name: string;
  private readonly profile: LoadProfile;
  private readonly peakW: number;
  private readonly curtailableShare: number;
  private readonly pf: number;
  private readonly shares: Phases;
  private readonly env: LoadEnvironment;
  private readonly slow: OuSeries;
  private readonly fast: OuSeries;
  private t: number;
  private energyWh: number;
  private sinceStartWh = 0;
  private curtail: TimedSetpoint<number> | undefined;

  constructor(name: string, params: LoadParams, env: LoadEnvironment) {
    this.name = name;
    const what = `building-load ${name}`;
    if (!LOAD_PROFILES.includes(params.profile)) {
      throw new RangeError(
        `${what}: profile must be one of ${LOAD_PROFILES.join(', ')}, got ${String(params.profile)}`,
      );
    }
    this.profile = params.profile;
    this.peakW = positive(params.peakW, `${what}: peakW`);
    const noise = inRange(params.noisePct ?? 6, 0, 50, `${what}: noisePct`) / 100;
    this.curtailableShare = inRange(params.curtailableShare ?? 0, 0, 1, `${what}: curtailableShare`);
    this.pf = inRange(params.powerFactor ?? 0.95, 0.1, 1, `${what}: powerFactor`);
    const { phases, phase } = checkPhases(params.phases, params.phase, what);
    this.shares = phaseShares(phases, phase);
    this.env = env;
    this.t = env.startMs;
    this.energyWh = nonNegative(params.initialEnergyWh ?? 0, `${what}: initialEnergyWh`);
    this.slow = new OuSeries({
      seed: deriveSeed(env.seed, 'noise-slow'),
      originMs: env.startMs,
      knotMs: 60_000,
      tauS: 1200,
      sd: noise,
    });
    this.fast = new OuSeries({
      seed: deriveSeed(env.seed, 'noise-fast'),
      originMs: env.startMs,
      knotMs: 10_000,
      tauS: 60,
      sd: noise / 2,
    });
  }

  get time(): number {
    return this.t;
  }

  /** Applies from the model's current time (step to the write's time first). */
  setCurtailment(sp: LoadCurtailSetpoint): void {
    const pct = inRange(sp.pct, 0, 100, `building-load ${this.name}: curtail pct`);
    this.curtail = timedSetpoint(pct, this.t, sp.revertTimeoutS);
  }

  /** Uncurtailed demand at t, W. */
  demand(t: number): number {
    const level = profileLevel(this.profile, t, this.env.utcOffsetMinutes);
    return Math.max(0, this.peakW * level * (1 + this.slow.at(t) + this.fast.at(t)));
  }

  /** The fraction kept from instant t on. */
  private kept(t: number): number {
    const c = this.curtail;
    if (c === undefined || !isActive(c, t)) return 1;
    return 1 - (this.curtailableShare * c.value) / 100;
  }

  step(t: number): void {
    checkForward(t, this.t, `building-load ${this.name}`);
    if (t === this.t) return;
    const events = this.curtail?.expiresAt !== undefined ? [this.curtail.expiresAt] : [];
    let a = this.t;
    let da = this.demand(a);
    let ws = 0;
    for (const b of integrationPoints(a, t, events, INTEGRATION_GRID_MS)) {
      const db = this.demand(b);
      ws += ((da + db) / 2) * this.kept(a) * ((b - a) / 1000);
      a = b;
      da = db;
    }
    this.energyWh += ws / 3600;
    this.sinceStartWh += ws / 3600;
    this.t = t;
  }

  private power(): number {
    return this.demand(this.t) * this.kept(this.t);
  }

  phasePowerW(): Phases {
    return scalePhases(this.shares, this.power());
  }

  phaseReactiveVar(): Phases {
    return scalePhases(this.shares, reactiveForPowerFactor(this.power(), this.pf));
  }

  netEnergyWh(): number {
    return this.sinceStartWh;
  }

  snapshot(): LoadSnapshot {
    const t = this.t;
    const uncurtailed = this.demand(t);
    const p = this.power();
    const q = reactiveForPowerFactor(p, this.pf);
    const v = this.env.grid.phaseVoltages(t);
    return {
      kind: 'building-load',
      name: this.name,
      t,
      powerW: p,
      uncurtailedPowerW: uncurtailed,
      curtailedPowerW: uncurtailed - p,
      reactivePowerVar: q,
      powerFactor: this.pf,
      voltageV: connectedVoltage(v, this.shares),
      phaseVoltageV: v,
      phaseCurrentA: phaseCurrents(Math.hypot(p, q), this.shares, v),
      phasePowerW: scalePhases(this.shares, p),
      frequencyHz: this.env.grid.frequency(t),
      energyWh: this.energyWh,
      curtailment: describeSetpoint(this.curtail, t),
    };
  }
}
