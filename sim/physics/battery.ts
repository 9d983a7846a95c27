/**
 * A battery with its inverter. AC power is positive when discharging. It follows a direct power setpoint (default
 * 0 W: idle), bounded by SunSpec model 124's charge/discharge rate window (StorCtl_Mod, InWRte, OutWRte,
 * InOutWRte_RvrtTms), by its power limits, and by its SoC limits.
 *
 * Stored energy obeys dE/dt = a - k·(E - Emin): `a` is the cells' side of the AC power (charge × charge efficiency,
 * discharge / discharge efficiency) and k the self-discharge rate. Between setpoint changes `a` is constant, so the
 * equation is solved in closed form, including the instant a SoC limit is reached: the result does not depend on
 * the step size. Self-discharge acts on the energy above the minimum SoC, so an idle battery never sinks under the
 * floor its BMS keeps.
 */
import {
  checkForward,
  checkPhases,
  connectedVoltage,
  describeSetpoint,
  type GridModel,
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
  scalePhases,
  type TimedSetpoint,
  timedSetpoint,
} from './grid.js';

export interface BatteryParams {
  /** Nominal energy capacity, Wh. */
  capacityWh: number;
  /** Largest charging power, W (AC). */
  maxChargeW: number;
  /** Largest discharging power, W (AC). */
  maxDischargeW: number;
  /** State of charge at the start, %. Default 50. */
  socStartPct?: number;
  /** The BMS never discharges below this, %. Default 10. */
  socMinPct?: number;
  /** The BMS never charges above this, %. Default 95. */
  socMaxPct?: number;
  /** AC to cells, 0..1. Default 0.96. */
  chargeEfficiency?: number;
  /** Cells to AC, 0..1. Default 0.96. */
  dischargeEfficiency?: number;
  /** Self-discharge, % of the stored energy above the minimum per day. Default 0.1 (about 3 %/month, Li-ion). */
  selfDischargePctPerDay?: number;
  /** 1 or 3. Default 3. */
  phases?: 1 | 3;
  /** The phase of a single-phase inverter. Default 1. */
  phase?: PhaseNumber;
  /** Pack voltage at 50 % SoC, V. Default 400. */
  nominalVoltageV?: number;
  /** Lifetime counter of the energy taken from the grid side at the start, Wh. Default 0. */
  initialChargedWh?: number;
  /** Lifetime counter of the energy delivered to the grid side at the start, Wh. Default 0. */
  initialDischargedWh?: number;
}

export type BatteryStatus = 'idle' | 'charging' | 'discharging' | 'full' | 'empty';

export interface BatteryPowerSetpoint {
  /** AC power, W: positive discharges, negative charges. Clipped to the power and SoC limits. */
  w: number;
  /** Seconds until the setpoint reverts to 0 W unless re-sent; 0 = never. Default 0. */
  revertTimeoutS?: number;
}

/** SunSpec 124 storage controls. Rates revert to 100 % when InOutWRte_RvrtTms elapses. */
export interface BatteryRateSetpoint {
  /** StorCtl_Mod bitfield: bit 0 applies InWRte, bit 1 applies OutWRte. */
  storCtlMod: number;
  /**
   * InWRte, % of maxChargeW, -100..100: charging is limited to this rate; a negative value forces discharging at
   * least that much (the convention of Fronius and SMA hybrid inverters).
   */
  inWRtePct: number;
  /** OutWRte, % of maxDischargeW, -100..100: discharge is limited to this; a negative value forces charging. */
  outWRtePct: number;
  /** InOutWRte_RvrtTms, s; 0 = never. Default 0. */
  revertTimeoutS?: number;
}

export interface BatterySnapshot {
  readonly kind: 'battery';
  readonly name: string;
  readonly t: number;
  readonly status: BatteryStatus;
  /** AC power, W: positive discharging, negative charging. */
  readonly powerW: number;
  /** What the controls asked for before the SoC limits, W. */
  readonly requestedPowerW: number;
  readonly reactivePowerVar: number;
  readonly socPct: number;
  readonly storedEnergyWh: number;
  readonly capacityWh: number;
  readonly socMinPct: number;
  readonly socMaxPct: number;
  readonly maxChargeW: number;
  readonly maxDischargeW: number;
  /** Energy taken from the grid side, Wh (monotonic, from initialChargedWh). */
  readonly chargedEnergyWh: number;
  /** Energy delivered to the grid side, Wh (monotonic, from initialDischargedWh). */
  readonly dischargedEnergyWh: number;
  /** Energy lost to self-discharge since the start, Wh (monotonic). */
  readonly selfDischargeEnergyWh: number;
  readonly packVoltageV: number;
  readonly voltageV: number;
  readonly phaseVoltageV: Phases;
  readonly phaseCurrentA: Phases;
  readonly phasePowerW: Phases;
  readonly frequencyHz: number;
  readonly powerSetpoint: { value: number; active: boolean; remainingS: number | null } | null;
  readonly rateSetpoint: {
    value: { storCtlMod: number; inWRtePct: number; outWRtePct: number };
    active: boolean;
    remainingS: number | null;
  } | null;
}

export interface BatteryEnvironment {
  grid: GridModel;
  startMs: number;
}

interface Operating {
  /** AC power, W, positive discharging. */
  powerW: number;
  status: BatteryStatus;
}

export class Battery implements PowerFlow {
  readonly kind = 'battery';
  readonly name: string;
  private readonly capacityWh: number;
  private readonly eMin: number;
  private readonly eMax: number;
  private readonly socMinPct: number;
  private readonly socMaxPct: number;
  private readonly maxChargeW: number;
  private readonly maxDischargeW: number;
  private readonly etaCharge: number;
  private readonly etaDischarge: number;
  /** Self-discharge rate, 1/s. */
  private readonly k: number;
  private readonly nominalVoltageV: number;
  private readonly shares: Phases;
  private readonly env: BatteryEnvironment;
  private t: number;
  private energyWh: number;
  /** Since the start; the lifetime counters add the initial values. */
  private chargedWh = 0;
  private dischargedWh = 0;
  private selfDischargeWh = 0;
  private readonly initialChargedWh: number;
  private readonly initialDischargedWh: number;
  private power: TimedSetpoint<number> | undefined;
  private rates: TimedSetpoint<{ storCtlMod: number; inWRtePct: number; outWRtePct: number }> | undefined;

  constructor(name: string, params: BatteryParams, env: BatteryEnvironment) {
    this.name = name;
    const what = `battery ${name}`;
    this.capacityWh = positive(params.capacityWh, `${what}: capacityWh`);
    this.socMinPct = inRange(params.socMinPct ?? 10, 0, 100, `${what}: socMinPct`);
    this.socMaxPct = inRange(params.socMaxPct ?? 95, 0, 100, `${what}: socMaxPct`);
    if (this.socMinPct >= this.socMaxPct) {
      throw new RangeError(`${what}: socMinPct (${this.socMinPct}) must be below socMaxPct (${this.socMaxPct})`);
    }
    const socStart = inRange(params.socStartPct ?? 50, 0, 100, `${what}: socStartPct`);
    this.eMin = (this.capacityWh * this.socMinPct) / 100;
    this.eMax = (this.capacityWh * this.socMaxPct) / 100;
    this.energyWh = Math.min(this.eMax, Math.max(this.eMin, (this.capacityWh * socStart) / 100));
    this.maxChargeW = nonNegative(params.maxChargeW, `${what}: maxChargeW`);
    this.maxDischargeW = nonNegative(params.maxDischargeW, `${what}: maxDischargeW`);
    this.etaCharge = inRange(params.chargeEfficiency ?? 0.96, 0.01, 1, `${what}: chargeEfficiency`);
    this.etaDischarge = inRange(params.dischargeEfficiency ?? 0.96, 0.01, 1, `${what}: dischargeEfficiency`);
    const sd = inRange(params.selfDischargePctPerDay ?? 0.1, 0, 50, `${what}: selfDischargePctPerDay`);
    this.k = -Math.log(1 - sd / 100) / 86_400;
    this.nominalVoltageV = positive(params.nominalVoltageV ?? 400, `${what}: nominalVoltageV`);
    const { phases, phase } = checkPhases(params.phases, params.phase, what);
    this.shares = phaseShares(phases, phase);
    this.initialChargedWh = nonNegative(params.initialChargedWh ?? 0, `${what}: initialChargedWh`);
    this.initialDischargedWh = nonNegative(params.initialDischargedWh ?? 0, `${what}: initialDischargedWh`);
    this.env = env;
    this.t = env.startMs;
  }

  get time(): number {
    return this.t;
  }

  get socPct(): number {
    return (this.energyWh / this.capacityWh) * 100;
  }

  /** Applies from the model's current time (step to the write's time first). */
  setPower(sp: BatteryPowerSetpoint): void {
    if (!Number.isFinite(sp.w)) throw new RangeError(`battery ${this.name}: power setpoint must be finite`);
    this.power = timedSetpoint(sp.w, this.t, sp.revertTimeoutS);
  }

  setRates(sp: BatteryRateSetpoint): void {
    const what = `battery ${this.name}`;
    if (!Number.isInteger(sp.storCtlMod) || sp.storCtlMod < 0 || sp.storCtlMod > 3) {
      throw new RangeError(`${what}: storCtlMod must be 0..3, got ${sp.storCtlMod}`);
    }
    const value = {
      storCtlMod: sp.storCtlMod,
      inWRtePct: inRange(sp.inWRtePct, -100, 100, `${what}: inWRtePct`),
      outWRtePct: inRange(sp.outWRtePct, -100, 100, `${what}: outWRtePct`),
    };
    this.rates = timedSetpoint(value, this.t, sp.revertTimeoutS);
  }

  /** The AC power the controls ask for from instant t on, within the power limits (before SoC limits). */
  private requested(t: number): number {
    let w = this.power !== undefined && isActive(this.power, t) ? this.power.value : 0;
    let lo = -this.maxChargeW;
    let hi = this.maxDischargeW;
    const r = this.rates;
    if (r !== undefined && isActive(r, t)) {
      if (r.value.storCtlMod & 1) lo = (-this.maxChargeW * r.value.inWRtePct) / 100;
      if (r.value.storCtlMod & 2) hi = (this.maxDischargeW * r.value.outWRtePct) / 100;
    }
    // A contradictory window (forced discharge above the discharge limit) resolves to the upper bound.
    w = Math.min(Math.max(w, lo), hi);
    return Math.min(Math.max(w, -this.maxChargeW), this.maxDischargeW);
  }

  /** Cells' side of an AC power, Wh per second. */
  private cellRate(powerW: number): number {
    return (powerW >= 0 ? -powerW / this.etaDischarge : -powerW * this.etaCharge) / 3600;
  }

  /** What the battery does at its present energy when asked for `req`. */
  private operating(req: number): Operating {
    const y = this.energyWh - this.eMin;
    const yMax = this.eMax - this.eMin;
    if (req > 0) return y <= 0 ? { powerW: 0, status: 'empty' } : { powerW: req, status: 'discharging' };
    if (req < 0) {
      if (y >= yMax) {
        // Full: it only charges what self-discharge takes away.
        const hold = this.k * yMax * 3600;
        if (-req * this.etaCharge >= hold) return { powerW: -hold / this.etaCharge, status: 'full' };
      }
      return { powerW: req, status: 'charging' };
    }
    return { powerW: 0, status: 'idle' };
  }

  step(t: number): void {
    checkForward(t, this.t, `battery ${this.name}`);
    if (t === this.t) return;
    const events: number[] = [];
    if (this.power?.expiresAt !== undefined) events.push(this.power.expiresAt);
    if (this.rates?.expiresAt !== undefined) events.push(this.rates.expiresAt);
    let a = this.t;
    for (const b of integrationPoints(a, t, events, Number.POSITIVE_INFINITY)) {
      this.integrate(this.requested(a), (b - a) / 1000);
      a = b;
    }
    this.t = t;
  }

  /** Advances the stored energy by dtS seconds at a constant request, splitting where a SoC limit is reached. */
  private integrate(req: number, dtS: number): void {
    let left = dtS;
    const yMax = this.eMax - this.eMin;
    while (left > 0) {
      const op = this.operating(req);
      const a = this.cellRate(op.powerW);
      const y0 = this.energyWh - this.eMin;
      let dt = left;
      let bound: number | undefined;
      if (op.status === 'discharging' || op.status === 'charging') {
        const target = op.status === 'discharging' ? 0 : yMax;
        const tHit = this.timeTo(y0, a, target);
        if (tHit !== undefined && tHit < left) {
          dt = tHit;
          bound = target;
        }
      }
      const y1 = bound ?? this.evolve(y0, a, dt);
      const dy = y1 - y0;
      this.energyWh = this.eMin + y1;
      if (op.powerW > 0) this.dischargedWh += (op.powerW * dt) / 3600;
      else this.chargedWh += (-op.powerW * dt) / 3600;
      this.selfDischargeWh += Math.max(0, a * dt - dy);
      left -= dt;
      if (bound === undefined) break;
    }
  }

  /** y after dt seconds of dy/dt = a - k·y. */
  private evolve(y0: number, a: number, dt: number): number {
    if (this.k === 0) return y0 + a * dt;
    const yInf = a / this.k;
    return y0 + (yInf - y0) * -Math.expm1(-this.k * dt);
  }

  /** Seconds until y reaches `target`, or undefined if it never does. */
  private timeTo(y0: number, a: number, target: number): number | undefined {
    if (this.k === 0) {
      if (a === 0) return undefined;
      const dt = (target - y0) / a;
      return dt > 0 ? dt : undefined;
    }
    const yInf = a / this.k;
    // y approaches yInf monotonically: the target is reached only if it lies strictly between y0 and yInf.
    if (!((y0 < target && target < yInf) || (yInf < target && target < y0))) return undefined;
    return -Math.log1p((target - y0) / (y0 - yInf)) / this.k;
  }

  phasePowerW(): Phases {
    return scalePhases(this.shares, -this.operating(this.requested(this.t)).powerW);
  }

  phaseReactiveVar(): Phases {
    return [0, 0, 0];
  }

  netEnergyWh(): number {
    return this.chargedWh - this.dischargedWh;
  }

  snapshot(): BatterySnapshot {
    const t = this.t;
    const req = this.requested(t);
    const op = this.operating(req);
    const v = this.env.grid.phaseVoltages(t);
    const soc = this.socPct;
    return {
      kind: 'battery',
      name: this.name,
      t,
      status: op.status,
      powerW: op.powerW,
      requestedPowerW: req,
      reactivePowerVar: 0,
      socPct: soc,
      storedEnergyWh: this.energyWh,
      capacityWh: this.capacityWh,
      socMinPct: this.socMinPct,
      socMaxPct: this.socMaxPct,
      maxChargeW: this.maxChargeW,
      maxDischargeW: this.maxDischargeW,
      chargedEnergyWh: this.initialChargedWh + this.chargedWh,
      dischargedEnergyWh: this.initialDischargedWh + this.dischargedWh,
      selfDischargeEnergyWh: this.selfDischargeWh,
      packVoltageV: this.nominalVoltageV * (0.92 + (0.16 * soc) / 100),
      voltageV: connectedVoltage(v, this.shares),
      phaseVoltageV: v,
      phaseCurrentA: phaseCurrents(Math.abs(op.powerW), this.shares, v),
      phasePowerW: scalePhases(this.shares, op.powerW),
      frequencyHz: this.env.grid.frequency(t),
      powerSetpoint: describeSetpoint(this.power, t),
      rateSetpoint: describeSetpoint(this.rates, t),
    };
  }
}
