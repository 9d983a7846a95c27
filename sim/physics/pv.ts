/**
 * A grid-tied PV inverter with its array. AC output = min(what the array gives through the inverter, the AC rating,
 * the active power limit), with the power limit and power-factor controls of SunSpec model 123 (WMaxLimPct,
 * WMaxLim_Ena, WMaxLimPct_RvrtTms; OutPFSet, OutPFSet_Ena, OutPFSet_RvrtTms): a limit not re-sent within its revert
 * timeout stops applying and the inverter returns to 100 %.
 */
import {
  checkForward,
  checkPhases,
  connectedVoltage,
  describeSetpoint,
  type GridModel,
  INTEGRATION_GRID_MS,
  inRange,
  integrateCappedWs,
  integrationPoints,
  isActive,
  nonNegative,
  type PhaseNumber,
  type Phases,
  type PowerFlow,
  phaseCurrents,
  phaseShares,
  positive,
  powerFactorOf,
  reactiveForPowerFactor,
  scalePhases,
  type TimedSetpoint,
  timedSetpoint,
} from './grid.js';
import { planeOfArray, type SolarResource } from './solar.js';

export interface PvParams {
  /** Array capacity at standard test conditions, Wp. */
  dcCapacityWp: number;
  /** Inverter AC rating, W; also its VA rating. */
  acRatingW: number;
  /** Inverter DC-to-AC efficiency, 0..1. Default 0.96. */
  efficiency?: number;
  /** Losses before the inverter (temperature, soiling, wiring, mismatch), as the fraction kept, 0..1. Default 0.9. */
  derate?: number;
  /** Panel tilt from horizontal, degrees. Default 30. */
  tiltDeg?: number;
  /** Direction the panels face, degrees clockwise from north (180 = south). Default 180. */
  azimuthDeg?: number;
  /** Ground reflectance. Default 0.2. */
  albedo?: number;
  /** 1 or 3. Default 3. */
  phases?: 1 | 3;
  /** The phase a single-phase inverter is on. Default 1. */
  phase?: PhaseNumber;
  /** MPP voltage of the string, V. Default 600. */
  dcVoltageV?: number;
  /** Below this available AC power the inverter sleeps (status off), W. Default 0.2 % of the AC rating. */
  startPowerW?: number;
  /** Lifetime energy counter at the start, Wh. Default 0. */
  initialEnergyWh?: number;
}

export type PvStatus = 'off' | 'mppt' | 'throttled';

/** SunSpec 123 WMaxLimPct / WMaxLim_Ena / WMaxLimPct_RvrtTms. */
export interface PvPowerLimitSetpoint {
  /** Percent of the AC rating, 0..100. */
  pct: number;
  /** WMaxLim_Ena; a disabled limit is stored but does not apply. Default true. */
  enabled?: boolean;
  /** Seconds until the limit reverts unless re-sent; 0 = never. Default 0. */
  revertTimeoutS?: number;
}

/** SunSpec 123 OutPFSet / OutPFSet_Ena / OutPFSet_RvrtTms. */
export interface PvPowerFactorSetpoint {
  /** Signed power factor: positive injects reactive power (over-excited), negative absorbs it. 0 < |pf| <= 1. */
  pf: number;
  enabled?: boolean;
  revertTimeoutS?: number;
}

export interface PvSnapshot {
  readonly kind: 'pv-inverter';
  readonly name: string;
  readonly t: number;
  readonly status: PvStatus;
  /** AC power fed into the grid, W (>= 0). */
  readonly acPowerW: number;
  /** Reactive power delivered, var (positive = injected). */
  readonly reactivePowerVar: number;
  readonly apparentPowerVA: number;
  readonly powerFactor: number;
  /** What the inverter would deliver without rating or limit (MPPT output), W. */
  readonly availablePowerW: number;
  readonly dcPowerW: number;
  readonly dcVoltageV: number;
  readonly dcCurrentA: number;
  /** Plane-of-array irradiance, W/m². */
  readonly irradianceWm2: number;
  readonly voltageV: number;
  readonly phaseVoltageV: Phases;
  readonly phaseCurrentA: Phases;
  readonly phasePowerW: Phases;
  readonly frequencyHz: number;
  readonly lifetimeEnergyWh: number;
  readonly acRatingW: number;
  readonly powerLimit: {
    value: { pct: number; enabled: boolean };
    active: boolean;
    remainingS: number | null;
  } | null;
  readonly powerFactorSetpoint: {
    value: { pf: number; enabled: boolean };
    active: boolean;
    remainingS: number | null;
  } | null;
}

export interface PvEnvironment {
  grid: GridModel;
  solar: SolarResource;
  startMs: number;
}

export class PvInverter implements PowerFlow {
  readonly kind = 'pv-inverter';
  readonly name: string;
  private readonly p: Required<Omit<PvParams, 'initialEnergyWh'>>;
  private readonly shares: Phases;
  private readonly env: PvEnvironment;
  private t: number;
  private lifetimeWh: number;
  private sinceStartWh = 0;
  private limit: TimedSetpoint<{ pct: number; enabled: boolean }> | undefined;
  private pf: TimedSetpoint<{ pf: number; enabled: boolean }> | undefined;
  private availT = Number.NaN;
  private availW = 0;

  constructor(name: string, params: PvParams, env: PvEnvironment) {
    this.name = name;
    const what = `pv-inverter ${name}`;
    const acRatingW = positive(params.acRatingW, `${what}: acRatingW`);
    const { phases, phase } = checkPhases(params.phases, params.phase, what);
    this.p = {
      dcCapacityWp: positive(params.dcCapacityWp, `${what}: dcCapacityWp`),
      acRatingW,
      efficiency: inRange(params.efficiency ?? 0.96, 0.01, 1, `${what}: efficiency`),
      derate: inRange(params.derate ?? 0.9, 0.01, 1, `${what}: derate`),
      tiltDeg: inRange(params.tiltDeg ?? 30, 0, 90, `${what}: tiltDeg`),
      azimuthDeg: inRange(params.azimuthDeg ?? 180, 0, 360, `${what}: azimuthDeg`),
      albedo: inRange(params.albedo ?? 0.2, 0, 1, `${what}: albedo`),
      phases,
      phase,
      dcVoltageV: positive(params.dcVoltageV ?? 600, `${what}: dcVoltageV`),
      startPowerW: nonNegative(params.startPowerW ?? 0.002 * acRatingW, `${what}: startPowerW`),
    };
    this.shares = phaseShares(phases, phase);
    this.env = env;
    this.t = env.startMs;
    this.lifetimeWh = nonNegative(params.initialEnergyWh ?? 0, `${what}: initialEnergyWh`);
  }

  get time(): number {
    return this.t;
  }

  /** Applies from the model's current time (step to the write's time first). */
  setPowerLimit(sp: PvPowerLimitSetpoint): void {
    const pct = inRange(sp.pct, 0, 100, `pv-inverter ${this.name}: power limit pct`);
    this.limit = timedSetpoint({ pct, enabled: sp.enabled ?? true }, this.t, sp.revertTimeoutS);
  }

  setPowerFactor(sp: PvPowerFactorSetpoint): void {
    const abs = Math.abs(sp.pf);
    if (!(abs > 0 && abs <= 1)) throw new RangeError(`pv-inverter ${this.name}: pf must satisfy 0 < |pf| <= 1`);
    this.pf = timedSetpoint({ pf: sp.pf, enabled: sp.enabled ?? true }, this.t, sp.revertTimeoutS);
  }

  step(t: number): void {
    checkForward(t, this.t, `pv-inverter ${this.name}`);
    if (t === this.t) return;
    const events: number[] = [];
    if (this.limit?.expiresAt !== undefined) events.push(this.limit.expiresAt);
    let a = this.t;
    let pa = this.available(a);
    let ws = 0;
    for (const b of integrationPoints(a, t, events, INTEGRATION_GRID_MS)) {
      const pb = this.available(b);
      ws += integrateCappedWs(this.gate(pa), this.gate(pb), this.cap(a), (b - a) / 1000);
      a = b;
      pa = pb;
    }
    const wh = ws / 3600;
    this.lifetimeWh += wh;
    this.sinceStartWh += wh;
    this.t = t;
  }

  /** AC power the array and inverter could deliver at t, ignoring rating and limits. */
  private available(t: number): number {
    if (t === this.availT) return this.availW;
    const irr = this.env.solar.irradiance(t);
    const poa = planeOfArray(irr, this.p.tiltDeg, this.p.azimuthDeg, this.p.albedo);
    this.availT = t;
    this.availW = ((this.p.dcCapacityWp * poa) / 1000) * this.p.derate * this.p.efficiency;
    return this.availW;
  }

  private gate(w: number): number {
    return w < this.p.startPowerW ? 0 : w;
  }

  /** The cap in force from instant t on (until the next event). */
  private cap(t: number): number {
    const l = this.limit;
    if (l?.value.enabled && isActive(l, t)) return (this.p.acRatingW * l.value.pct) / 100;
    return this.p.acRatingW;
  }

  private acPower(): number {
    return Math.min(this.gate(this.available(this.t)), this.cap(this.t));
  }

  private reactive(p: number): number {
    const sp = this.pf;
    if (sp === undefined || !sp.value.enabled || !isActive(sp, this.t) || p <= 0) return 0;
    const q = reactiveForPowerFactor(p, sp.value.pf);
    // Active power has priority: reactive power only gets what is left of the VA rating.
    const room = Math.sqrt(Math.max(0, this.p.acRatingW ** 2 - p * p));
    return Math.sign(q) * Math.min(Math.abs(q), room);
  }

  phasePowerW(): Phases {
    return scalePhases(this.shares, -this.acPower());
  }

  phaseReactiveVar(): Phases {
    return scalePhases(this.shares, -this.reactive(this.acPower()));
  }

  netEnergyWh(): number {
    return -this.sinceStartWh;
  }

  snapshot(): PvSnapshot {
    const t = this.t;
    const available = this.available(t);
    const p = this.acPower();
    const q = this.reactive(p);
    const s = Math.hypot(p, q);
    const v = this.env.grid.phaseVoltages(t);
    const producing = p > 0;
    const dcPowerW = producing ? p / this.p.efficiency : 0;
    const dcVoltageV = producing ? this.p.dcVoltageV : 0;
    const irr = this.env.solar.irradiance(t);
    let status: PvStatus = 'off';
    if (producing) status = p < available - 1e-9 ? 'throttled' : 'mppt';
    return {
      kind: 'pv-inverter',
      name: this.name,
      t,
      status,
      acPowerW: p,
      reactivePowerVar: q,
      apparentPowerVA: s,
      powerFactor: producing ? Math.abs(powerFactorOf(p, q)) * (q < 0 ? -1 : 1) : 1,
      availablePowerW: available,
      dcPowerW,
      dcVoltageV,
      dcCurrentA: dcVoltageV > 0 ? dcPowerW / dcVoltageV : 0,
      irradianceWm2: planeOfArray(irr, this.p.tiltDeg, this.p.azimuthDeg, this.p.albedo),
      voltageV: connectedVoltage(v, this.shares),
      phaseVoltageV: v,
      phaseCurrentA: phaseCurrents(s, this.shares, v),
      phasePowerW: scalePhases(this.shares, p),
      frequencyHz: this.env.grid.frequency(t),
      lifetimeEnergyWh: this.lifetimeWh,
      acRatingW: this.p.acRatingW,
      powerLimit: describeSetpoint(this.limit, t),
      powerFactorSetpoint: describeSetpoint(this.pf, t),
    };
  }
}
