/**
 * An energy meter that measures the sum of the flows of the devices behind it.
 *
 * Sign convention: import positive. Power flowing from the grid side into the devices behind the meter is positive;
 * power they push out (PV, battery discharge) is negative. A meter installed the other way round (a production meter
 * that should count PV as positive) sets `invert`.
 *
 * Energy: the meter adds up the devices' own net energy integrals between its steps, so import - export equals what
 * the devices exchanged exactly (no sampling error). The split into import and export is made per step: when the net
 * flow changes sign inside one step, only the step's net lands in one counter, as on a meter that registers at the
 * resolution of its update interval.
 *
 * Per-phase values come from the devices' per-phase active and reactive powers and the grid voltages, so unbalanced
 * single-phase loads show up as unbalanced currents.
 */
import { checkForward, type GridModel, lineVoltages, nonNegative, type Phases, type PowerFlow } from './grid.js';

export interface MeterParams {
  /** Names of the devices (or of other meters, meaning all their devices) whose flows pass through this meter. */
  sees: string[];
  /** Count power out of the devices as import (a production meter). Default false. */
  invert?: boolean;
  /** Import counter at the start, Wh. Default 0. */
  initialImportWh?: number;
  /** Export counter at the start, Wh. Default 0. */
  initialExportWh?: number;
}

export interface MeterSnapshot {
  readonly kind: 'meter';
  readonly name: string;
  readonly t: number;
  /** Total active power, W, import positive. */
  readonly activePowerW: number;
  /** Total reactive power, var, positive when the devices behind draw reactive power (inductive). */
  readonly reactivePowerVar: number;
  /** Sum of the phases' apparent powers (IEEE 1459 arithmetic apparent power), VA. */
  readonly apparentPowerVA: number;
  /** P/S, signed like P (negative while exporting); 1 when nothing flows. */
  readonly powerFactor: number;
  readonly phasePowerW: Phases;
  readonly phaseReactiveVar: Phases;
  readonly phaseApparentVA: Phases;
  readonly phaseCurrentA: Phases;
  readonly phaseVoltageV: Phases;
  readonly lineVoltageV: Phases;
  readonly frequencyHz: number;
  /** Energy imported, Wh (monotonic). */
  readonly importEnergyWh: number;
  /** Energy exported, Wh (monotonic). */
  readonly exportEnergyWh: number;
}

export interface MeterEnvironment {
  grid: GridModel;
  startMs: number;
}

export class Meter {
  readonly kind = 'meter';
  readonly name: string;
  readonly flows: readonly PowerFlow[];
  private readonly sign: 1 | -1;
  private readonly env: MeterEnvironment;
  private readonly seen: number[];
  private t: number;
  private importWh: number;
  private exportWh: number;

  /** `flows` must be stepped before the meter on every step: the meter reads what they integrated. */
  constructor(name: string, flows: readonly PowerFlow[], params: Omit<MeterParams, 'sees'>, env: MeterEnvironment) {
    this.name = name;
    this.flows = flows;
    this.sign = params.invert === true ? -1 : 1;
    this.env = env;
    this.t = env.startMs;
    this.importWh = nonNegative(params.initialImportWh ?? 0, `meter ${name}: initialImportWh`);
    this.exportWh = nonNegative(params.initialExportWh ?? 0, `meter ${name}: initialExportWh`);
    this.seen = flows.map((f) => f.netEnergyWh());
  }

  get time(): number {
    return this.t;
  }

  step(t: number): void {
    checkForward(t, this.t, `meter ${this.name}`);
    if (t === this.t) return;
    let net = 0;
    for (const [i, f] of this.flows.entries()) {
      const now = f.netEnergyWh();
      net += now - this.seen[i]!;
      this.seen[i] = now;
    }
    net *= this.sign;
    if (net > 0) this.importWh += net;
    else this.exportWh -= net;
    this.t = t;
  }

  snapshot(): MeterSnapshot {
    const t = this.t;
    const p = [0, 0, 0];
    const q = [0, 0, 0];
    for (const f of this.flows) {
      const fp = f.phasePowerW();
      const fq = f.phaseReactiveVar();
      for (let i = 0; i < 3; i++) {
        p[i]! += this.sign * fp[i]!;
        q[i]! += this.sign * fq[i]!;
      }
    }
    const v = this.env.grid.phaseVoltages(t);
    const s = [0, 1, 2].map((i) => Math.hypot(p[i]!, q[i]!));
    const tp = p[0]! + p[1]! + p[2]!;
    const tq = q[0]! + q[1]! + q[2]!;
    const ts = s[0]! + s[1]! + s[2]!;
    return {
      kind: 'meter',
      name: this.name,
      t,
      activePowerW: tp,
      reactivePowerVar: tq,
      apparentPowerVA: ts,
      powerFactor: ts === 0 ? 1 : tp / ts,
      phasePowerW: [p[0]!, p[1]!, p[2]!],
      phaseReactiveVar: [q[0]!, q[1]!, q[2]!],
      phaseApparentVA: [s[0]!, s[1]!, s[2]!],
      phaseCurrentA: [s[0]! / v[0], s[1]! / v[1], s[2]! / v[2]],
      phaseVoltageV: v,
      lineVoltageV: lineVoltages(v),
      frequencyHz: this.env.grid.frequency(t),
      importEnergyWh: this.importWh,
      exportEnergyWh: this.exportWh,
    };
  }
}
