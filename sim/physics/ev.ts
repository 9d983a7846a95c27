/**
 * An AC EV charger (IEC 61851 mode 3) and the cars that visit it. A car arrives, asks for an amount of energy, and
 * leaves at its departure time whether or not it got it. The charger offers a current (the pilot signal): the
 * smallest of its own maximum, the car's maximum and the controller's limit. IEC 61851-1 does not allow charging below
 * 6 A, so an offer under 6 A pauses charging (state B) rather than exceeding the limit the controller set.
 *
 * States follow IEC 61851: A no car, B car connected but not charging (paused, or full), C charging.
 * Cars charge at constant current until their energy is delivered (no taper), at the phases' actual voltages.
 */
import { mix32, Rng } from '../random.js';
import {
  checkForward,
  checkPhases,
  connectedVoltage,
  describeSetpoint,
  type GridModel,
  INTEGRATION_GRID_MS,
  integrationPoints,
  isActive,
  nonNegative,
  type PhaseNumber,
  type Phases,
  type PowerFlow,
  parseInstant,
  phaseShares,
  positive,
  type TimedSetpoint,
  timedSetpoint,
} from './grid.js';
import { weekdayOf } from './load.js';

/** IEC 61851-1: the lowest current a pilot signal may offer for charging. */
export const IEC61851_MIN_CURRENT_A = 6;

export interface EvSessionSpec {
  /** ISO 8601 with offset, e.g. 2024-06-17T08:30:00+02:00. */
  arrival: string;
  departure: string;
  /** Energy the car wants, Wh. */
  energyWh: number;
  /** The car's on-board charger limit per phase, A. Default: unlimited (the charger decides). */
  maxCurrentA?: number;
  /** Phases the car charges on. Default 3. */
  phases?: 1 | 3;
}

/** A car that comes on a daily schedule, with seeded jitter. */
export interface EvDailyPattern {
  /** Local time 'HH:MM'. */
  arrival: string;
  /** Local time 'HH:MM'; not after `arrival` means the next day. */
  departure: string;
  energyWh: number;
  /** Arrival and departure each move uniformly by up to this many minutes. Default 20. */
  jitterMin?: number;
  /** The energy moves uniformly by up to this percentage. Default 20. */
  energyJitterPct?: number;
  /** Which days it comes. Default 'all'. */
  days?: 'all' | 'weekdays' | 'weekends';
  /** Chance that it comes on a given day, 0..1. Default 1. */
  probability?: number;
  maxCurrentA?: number;
  phases?: 1 | 3;
}

export interface EvChargerParams {
  /** The charger's maximum current per phase, A (16 A on three phases is 11 kW). */
  maxCurrentA: number;
  /** 1 or 3. Default 3. */
  phases?: 1 | 3;
  /** The phase of a single-phase charger, and the one a single-phase car uses on a three-phase charger. Default 1. */
  phase?: PhaseNumber;
  /**
   * The current offered once a limit setpoint has expired (a controller that stopped talking), A. Chargers call this
   * the failsafe current. Default maxCurrentA.
   */
  fallbackCurrentA?: number;
  sessions?: EvSessionSpec[];
  daily?: EvDailyPattern[];
  /** Lifetime energy counter at the start, Wh. Default 0. */
  initialEnergyWh?: number;
}

/** A limit in current per phase or in total power (converted at nominal voltage, as chargers do); not both. */
export interface EvLimitSetpoint {
  currentA?: number;
  powerW?: number;
  /** Seconds until the limit falls back to fallbackCurrentA unless re-sent; 0 = never. Default 0. */
  revertTimeoutS?: number;
}

export type EvStatus = 'A' | 'B' | 'C';

export interface EvSessionState {
  readonly arrival: number;
  readonly departure: number;
  readonly energyNeededWh: number;
  readonly deliveredWh: number;
  /** The car's own limit per phase, A; null when it takes whatever is offered. */
  readonly maxCurrentA: number | null;
  readonly phases: 1 | 3;
  /** When the car got all it wanted, or null. */
  readonly completedAt: number | null;
}

export interface EvSnapshot {
  readonly kind: 'ev-charger';
  readonly name: string;
  readonly t: number;
  readonly status: EvStatus;
  /** Why a connected car is not charging. */
  readonly pausedBy: 'limit' | 'full' | null;
  readonly powerW: number;
  /** Pilot current offered, A per phase (0 when under the IEC minimum). */
  readonly offeredCurrentA: number;
  /** Current drawn per phase, A. */
  readonly currentA: number;
  readonly maxCurrentA: number;
  readonly voltageV: number;
  readonly phaseVoltageV: Phases;
  readonly phaseCurrentA: Phases;
  readonly phasePowerW: Phases;
  readonly frequencyHz: number;
  readonly lifetimeEnergyWh: number;
  /** Energy of the car present, or of the last car until the next one arrives, Wh. */
  readonly sessionEnergyWh: number;
  readonly sessionCount: number;
  readonly session: EvSessionState | null;
  readonly limit: { value: { currentA?: number; powerW?: number }; active: boolean; remainingS: number | null } | null;
}

export interface EvEnvironment {
  grid: GridModel;
  startMs: number;
  /** This device's seed (derived from the site seed and its name). */
  seed: number;
  utcOffsetMinutes: number;
}

interface Session {
  arrival: number;
  departure: number;
  energyNeededWh: number;
  deliveredWh: number;
  maxCurrentA: number;
  phases: 1 | 3;
  completedAt: number | null;
}

interface Pattern {
  arrivalMin: number;
  departureMin: number;
  energyWh: number;
  jitterMin: number;
  energyJitter: number;
  days: 'all' | 'weekdays' | 'weekends';
  probability: number;
  maxCurrentA: number;
  phases: 1 | 3;
}

const DAY_MS = 86_400_000;
const MIN_MS = 60_000;
/** A generated visit shorter than this is dropped: nobody plugs in for less. */
const MIN_VISIT_MS = 5 * MIN_MS;

function parseClock(text: string, what: string): number {
  const m = typeof text === 'string' ? /^(\d\d):(\d\d)$/.exec(text) : null;
  const h = m ? Number(m[1]) : Number.NaN;
  const min = m ? Number(m[2]) : Number.NaN;
  if (!(h >= 0 && h <= 23 && min >= 0 && min <= 59))
    throw new RangeError(`${what} must be 'HH:MM', got ${String(text)}`);
  return h * 60 + min;
}

function carPhases(phases: unknown, what: string): 1 | 3 {
  const p = phases ?? 3;
  if (p !== 1 && p !== 3) throw new RangeError(`${what}.phases must be 1 or 3, got ${String(phases)}`);
  return p;
}

export class EvCharger implements PowerFlow {
  readonly kind = 'ev-charger';
  readonly name: string;
  private readonly maxCurrentA: number;
  private readonly phases: 1 | 3;
  private readonly phase: PhaseNumber;
  private readonly fallbackCurrentA: number;
  private readonly patterns: Pattern[];
  private readonly explicit: Session[];
  private readonly env: EvEnvironment;
  private explicitNext = 0;
  private generatedThroughDay: number;
  private lastAcceptedDeparture = Number.NEGATIVE_INFINITY;
  private readonly queue: Session[] = [];
  private current: Session | undefined;
  private last: Session | undefined;
  private sessionCount = 0;
  private t: number;
  private lifetimeWh: number;
  private sinceStartWh = 0;
  private limit: TimedSetpoint<{ currentA?: number; powerW?: number }> | undefined;

  constructor(name: string, params: EvChargerParams, env: EvEnvironment) {
    this.name = name;
    const what = `ev-charger ${name}`;
    this.maxCurrentA = positive(params.maxCurrentA, `${what}: maxCurrentA`);
    const { phases, phase } = checkPhases(params.phases, params.phase, what);
    this.phases = phases;
    this.phase = phase;
    this.fallbackCurrentA = nonNegative(params.fallbackCurrentA ?? this.maxCurrentA, `${what}: fallbackCurrentA`);
    this.lifetimeWh = nonNegative(params.initialEnergyWh ?? 0, `${what}: initialEnergyWh`);
    this.env = env;
    this.t = env.startMs;

    this.explicit = (params.sessions ?? []).map((s, i) => {
      const w = `${what}: sessions[${i}]`;
      const arrival = parseInstant(s.arrival, `${w}.arrival`);
      const departure = parseInstant(s.departure, `${w}.departure`);
      if (departure <= arrival) throw new RangeError(`${w}: departure must be after arrival`);
      return {
        arrival,
        departure,
        energyNeededWh: nonNegative(s.energyWh, `${w}.energyWh`),
        deliveredWh: 0,
        maxCurrentA:
          s.maxCurrentA === undefined ? Number.POSITIVE_INFINITY : positive(s.maxCurrentA, `${w}.maxCurrentA`),
        phases: carPhases(s.phases, w),
        completedAt: null,
      };
    });
    this.explicit.sort((a, b) => a.arrival - b.arrival);
    for (let i = 1; i < this.explicit.length; i++) {
      if (this.explicit[i]!.arrival < this.explicit[i - 1]!.departure) {
        throw new RangeError(`${what}: sessions overlap (one connector holds one car at a time)`);
      }
    }

    this.patterns = (params.daily ?? []).map((d, i) => {
      const w = `${what}: daily[${i}]`;
      const days = d.days ?? 'all';
      if (days !== 'all' && days !== 'weekdays' && days !== 'weekends') {
        throw new RangeError(`${w}.days must be all, weekdays or weekends, got ${String(d.days)}`);
      }
      const probability = nonNegative(d.probability ?? 1, `${w}.probability`);
      if (probability > 1) throw new RangeError(`${w}.probability must be at most 1`);
      return {
        arrivalMin: parseClock(d.arrival, `${w}.arrival`),
        departureMin: parseClock(d.departure, `${w}.departure`),
        energyWh: nonNegative(d.energyWh, `${w}.energyWh`),
        jitterMin: nonNegative(d.jitterMin ?? 20, `${w}.jitterMin`),
        energyJitter: Math.min(100, nonNegative(d.energyJitterPct ?? 20, `${w}.energyJitterPct`)) / 100,
        days,
        probability,
        maxCurrentA:
          d.maxCurrentA === undefined ? Number.POSITIVE_INFINITY : positive(d.maxCurrentA, `${w}.maxCurrentA`),
        phases: carPhases(d.phases, w),
      };
    });

    // The day before the start is generated too, so a car that came the evening before can be there at the start.
    this.generatedThroughDay = this.localDay(env.startMs) - 2;
    this.ensureSessions(env.startMs);
    this.processEvents(env.startMs);
  }

  get time(): number {
    return this.t;
  }

  /** Applies from the model's current time (step to the write's time first). */
  setLimit(sp: EvLimitSetpoint): void {
    const what = `ev-charger ${this.name}: limit`;
    if ((sp.currentA === undefined) === (sp.powerW === undefined)) {
      throw new RangeError(`${what} needs exactly one of currentA and powerW`);
    }
    const value =
      sp.currentA !== undefined
        ? { currentA: nonNegative(sp.currentA, `${what}.currentA`) }
        : { powerW: nonNegative(sp.powerW!, `${what}.powerW`) };
    this.limit = timedSetpoint(value, this.t, sp.revertTimeoutS);
  }

  private localDay(t: number): number {
    return Math.floor((t + this.env.utcOffsetMinutes * MIN_MS) / DAY_MS);
  }

  private ensureSessions(t: number): void {
    const target = this.localDay(t) + 1;
    while (this.generatedThroughDay < target) {
      this.generatedThroughDay++;
      this.generateDay(this.generatedThroughDay);
    }
  }

  /** Each day's draws come from a stream keyed by (device seed, day, pattern), so they never depend on step sizes. */
  private generateDay(day: number): void {
    const batch: Session[] = [];
    const dayStart = day * DAY_MS - this.env.utcOffsetMinutes * MIN_MS;
    const dow = weekdayOf(day);
    const weekend = dow === 0 || dow === 6;
    for (const [i, p] of this.patterns.entries()) {
      const rng = new Rng(mix32(mix32(this.env.seed, day), i));
      const comes = rng.next() < p.probability;
      const jitterA = rng.uniform(-p.jitterMin, p.jitterMin);
      const jitterD = rng.uniform(-p.jitterMin, p.jitterMin);
      const energyFactor = 1 + rng.uniform(-p.energyJitter, p.energyJitter);
      if (!comes || (p.days === 'weekdays' && weekend) || (p.days === 'weekends' && !weekend)) continue;
      const departureMin = p.departureMin <= p.arrivalMin ? p.departureMin + 1440 : p.departureMin;
      const arrival = dayStart + Math.round((p.arrivalMin + jitterA) * MIN_MS);
      const departure = dayStart + Math.round((departureMin + jitterD) * MIN_MS);
      if (departure - arrival < MIN_VISIT_MS) continue;
      batch.push({
        arrival,
        departure,
        energyNeededWh: p.energyWh * energyFactor,
        deliveredWh: 0,
        maxCurrentA: p.maxCurrentA,
        phases: p.phases,
        completedAt: null,
      });
    }
    while (
      this.explicitNext < this.explicit.length &&
      this.localDay(this.explicit[this.explicitNext]!.arrival) <= day
    ) {
      batch.push({ ...this.explicit[this.explicitNext]! });
      this.explicitNext++;
    }
    batch.sort((a, b) => a.arrival - b.arrival);
    for (const s of batch) {
      // One connector: a car that would arrive while another is plugged in goes elsewhere.
      if (s.arrival < this.lastAcceptedDeparture) continue;
      this.queue.push(s);
      this.lastAcceptedDeparture = s.departure;
    }
  }

  /** Departures and arrivals due at x. */
  private processEvents(x: number): void {
    for (;;) {
      if (this.current !== undefined && x >= this.current.departure) {
        this.last = this.current;
        this.current = undefined;
        continue;
      }
      const next = this.queue[0];
      if (this.current === undefined && next !== undefined && next.arrival <= x) {
        this.queue.shift();
        if (next.departure > x) {
          this.current = next;
          this.sessionCount++;
        }
        continue;
      }
      return;
    }
  }

  private events(t0: number, t1: number): number[] {
    const out: number[] = [];
    if (this.current !== undefined) out.push(this.current.departure);
    for (const s of this.queue) {
      if (s.arrival >= t1) break;
      out.push(s.arrival, s.departure);
    }
    if (this.limit?.expiresAt !== undefined) out.push(this.limit.expiresAt);
    return out.filter((e) => e > t0 && e < t1);
  }

  /** Phase indices (0-based) a car charges on. */
  private phaseIndices(car: 1 | 3): number[] {
    return Math.min(this.phases, car) === 3 ? [0, 1, 2] : [this.phase - 1];
  }

  /** The controller's limit in force from instant t on, A per phase, before the IEC minimum. */
  private limitA(t: number, carPhasesUsed: number): number {
    const l = this.limit;
    if (l === undefined) return this.maxCurrentA;
    if (!isActive(l, t)) return this.fallbackCurrentA;
    if (l.value.currentA !== undefined) return l.value.currentA;
    return l.value.powerW! / (this.env.grid.nominalVoltageV * carPhasesUsed);
  }

  /** The pilot offer from instant t on for a car (or for none), A; 0 below the IEC minimum. */
  private offer(t: number, car: Session | undefined): number {
    const n = car === undefined ? (this.phases === 3 ? 3 : 1) : this.phaseIndices(car.phases).length;
    const a = Math.min(this.limitA(t, n), this.maxCurrentA);
    return a < IEC61851_MIN_CURRENT_A ? 0 : a;
  }

  private drawA(t: number): number {
    const s = this.current;
    if (s === undefined || s.deliveredWh >= s.energyNeededWh) return 0;
    const a = Math.min(this.offer(t, s), s.maxCurrentA);
    return a < IEC61851_MIN_CURRENT_A ? 0 : a;
  }

  private voltageSum(t: number, idx: readonly number[]): number {
    let v = 0;
    for (const i of idx) v += this.env.grid.voltage(t, (i + 1) as PhaseNumber);
    return v;
  }

  step(t: number): void {
    checkForward(t, this.t, `ev-charger ${this.name}`);
    if (t === this.t) return;
    this.ensureSessions(t);
    let a = this.t;
    this.processEvents(a);
    for (const b of integrationPoints(a, t, this.events(a, t), INTEGRATION_GRID_MS)) {
      this.chargePiece(a, b);
      a = b;
      this.processEvents(a);
    }
    this.t = t;
  }

  private chargePiece(a: number, b: number): void {
    const s = this.current;
    const amps = this.drawA(a);
    if (s === undefined || amps === 0) return;
    const idx = this.phaseIndices(s.phases);
    const wh = (amps * ((this.voltageSum(a, idx) + this.voltageSum(b, idx)) / 2) * ((b - a) / 1000)) / 3600;
    const need = s.energyNeededWh - s.deliveredWh;
    let got = wh;
    if (wh >= need) {
      got = need;
      s.deliveredWh = s.energyNeededWh;
      s.completedAt = a + (b - a) * (wh > 0 ? need / wh : 0);
    } else {
      s.deliveredWh += wh;
    }
    this.lifetimeWh += got;
    this.sinceStartWh += got;
  }

  private phasePowersAt(t: number): Phases {
    const s = this.current;
    const amps = this.drawA(t);
    if (s === undefined || amps === 0) return [0, 0, 0];
    const out = [0, 0, 0];
    for (const i of this.phaseIndices(s.phases)) out[i] = amps * this.env.grid.voltage(t, (i + 1) as PhaseNumber);
    return [out[0]!, out[1]!, out[2]!];
  }

  phasePowerW(): Phases {
    return this.phasePowersAt(this.t);
  }

  phaseReactiveVar(): Phases {
    return [0, 0, 0];
  }

  netEnergyWh(): number {
    return this.sinceStartWh;
  }

  snapshot(): EvSnapshot {
    const t = this.t;
    const s = this.current;
    const amps = this.drawA(t);
    const pp = this.phasePowersAt(t);
    const v = this.env.grid.phaseVoltages(t);
    const used = s === undefined ? [] : this.phaseIndices(s.phases);
    const on = (i: number) => (amps > 0 && used.includes(i) ? amps : 0);
    const phaseCurrentA: Phases = [on(0), on(1), on(2)];
    let status: EvStatus = 'A';
    let pausedBy: 'limit' | 'full' | null = null;
    if (s !== undefined) {
      status = amps > 0 ? 'C' : 'B';
      if (status === 'B') pausedBy = s.deliveredWh >= s.energyNeededWh ? 'full' : 'limit';
    }
    const shown = s ?? this.last;
    const stationShares = phaseShares(this.phases, this.phase);
    return {
      kind: 'ev-charger',
      name: this.name,
      t,
      status,
      pausedBy,
      powerW: pp[0] + pp[1] + pp[2],
      offeredCurrentA: this.offer(t, s),
      currentA: amps,
      maxCurrentA: this.maxCurrentA,
      voltageV: connectedVoltage(v, stationShares),
      phaseVoltageV: v,
      phaseCurrentA,
      phasePowerW: pp,
      frequencyHz: this.env.grid.frequency(t),
      lifetimeEnergyWh: this.lifetimeWh,
      sessionEnergyWh: shown?.deliveredWh ?? 0,
      sessionCount: this.sessionCount,
      session:
        s === undefined
          ? null
          : {
              arrival: s.arrival,
              departure: s.departure,
              energyNeededWh: s.energyNeededWh,
              deliveredWh: s.deliveredWh,
              maxCurrentA: Number.isFinite(s.maxCurrentA) ? s.maxCurrentA : null,
              phases: s.phases,
              completedAt: s.completedAt,
            },
      limit: describeSetpoint(this.limit, t),
    };
  }
}
