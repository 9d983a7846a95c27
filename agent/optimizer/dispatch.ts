/**
 * From schedule to setpoints: the interval in force becomes one setpoint per dispatched DER, clipped by safety
 * limits, written through the SetpointKeeper (read-back, renewal before the device's revert timer), and afterwards
 * compared with what the device really did. The schedule itself is signed into the ledger elsewhere
 * (schedule-record.ts); deviations from it are `event` records of kind `dispatch-deviation`.
 *
 * Real-time correction (model-predictive control executes the plan's exchange, not blindly its battery power): the
 * plan rests on forecasts, and the rule-based controller it must beat reacts to the actual surplus. In a building
 * with a connection meter (DispatcherOptions.buildings) every poll cycle measures the deviation from the plan
 * D = meter + (measured battery power - planned battery power) - planned net exchange, which is what the load and
 * the PV did differently from the forecast whatever the batteries do, and moves the batteries' setpoints so that the
 * exchange stays between 0 and the planned exchange (batteryCorrectionW): export beyond the planned export is
 * charged; import beyond the planned import while the plan charges is taken off the charging (never below idle);
 * the batteries never discharge more than the plan, which keeps that energy for the dearer hours it was planned
 * for. The correction is split among a building's batteries by headroom (distributeCorrection), clipped by the same
 * limits as the plan (power, SoC maximum; the reserve guard holds because no discharge is added), written at most
 * every `minWriteIntervalMs` (default 10 s) and only when it moved by more than half the deadband (default 200 W),
 * and shown in DispatchOutcome.correctionW and corrections(). The deviation events compare each battery with the
 * setpoint in force when each reading was taken, corrections included: they judge the device, not the forecast.
 *
 * Device semantics (what the simulator implements, sim/physics and sim/devices/register-map.ts):
 * - SunSpec 124 storage: with StorCtl_Mod = 3 the battery stays inside [-WChaMax·InWRte, WDisChaMax·OutWRte]; a
 *   negative rate forces the other direction. Charging at P: InWRte 100, OutWRte -P/maxDischarge; discharging at P:
 *   OutWRte 100, InWRte -P/maxCharge; idle: both 0. One signed value always gives one direction.
 * - Victron VE.Bus ESS mode 3: EssWphA/B/C are the power taken at AC-in per phase (+ charging), so the battery's
 *   + discharge becomes a negative setpoint. (On a real Multi, loads on AC-out come on top; the simulator has none.)
 * - SunSpec 123 PV: WMaxLimPct, % of WMax; 100 % is no curtailment. Never 0 % (NOTES.md field lesson): the floor is
 *   `minLimitPct` (default 1 %), so a plan of 0 W may still export up to 1 % of the rating.
 * - EV charger (Alfen Eve MaxCurrent): A per phase; 0 stops charging, IEC 61851 allows charging only from 6 A.
 */
import type { ModbusBus, PlacedPoint } from '../../hardware/modbus/types.js';
import { controlFor, type SetpointControl, type WriteOutcome } from '../../hardware/modbus/writer.js';
import type { DecodedValue } from '../../hardware/profile/types.js';
import type { Clock } from '../clock.js';
import type { NewRecord } from '../ledger/records.js';
import type { Logger } from '../logger.js';
import type { PointValue, ReadingSink } from '../poll/poller.js';
import type { SetpointTarget } from '../poll/setpoints.js';
import type { Horizon } from './model.js';
import type { BuildingSchedule, DerSchedule, SiteSchedule } from './schedule.js';

// ---------------------------------------------------------------------------------------------------------------
// Configuration: what the agent config says about each dispatched DER (mapped from the config schema by the caller).

export type DispatchKind = 'battery' | 'pv' | 'ev';

interface DispatchDeviceCommon {
  /** The building, as named in the schedule. */
  readonly building: string;
  /** The DER, as named in the building's schedule. */
  readonly der: string;
  /** The polled device that carries it (its `devices:` name). */
  readonly device: string;
}

export interface BatteryDispatchConfig extends DispatchDeviceCommon {
  readonly kind: 'battery';
  /**
   * The device's own charge and discharge maxima, W: SunSpec 124 rates are percentages of them. A forced direction
   * there is a negative rate of the other side's maximum, so 124 charges at most min(both) W when forced, and
   * discharges likewise.
   */
  readonly maxChargeW: number;
  readonly maxDischargeW: number;
  /** Backup reserve, % SoC: the battery is never discharged at or below it. */
  readonly reservePct: number;
  /** The real-time correction adds no charge at or above this measured SoC, %. Default 100 (the BMS decides). */
  readonly socMaxPct?: number;
  /** Victron: phases the ESS setpoint is spread over (1: L1 only). Default 3. */
  readonly phases?: 1 | 2 | 3;
}

export interface PvDispatchConfig extends DispatchDeviceCommon {
  readonly kind: 'pv';
  /** The inverter's WMax, W: WMaxLimPct is a percentage of it. */
  readonly ratedW: number;
  /** Lowest limit ever written, %. Default 1: a 0 % limit is never written. */
  readonly minLimitPct?: number;
}

export interface EvDispatchConfig extends DispatchDeviceCommon {
  readonly kind: 'ev';
  readonly phases: 1 | 3;
  /** Per phase, for W -> A. Default 230. */
  readonly voltageV?: number;
  /** Lowest charging current, A. Default 6 (IEC 61851). */
  readonly minCurrentA?: number;
  /** Largest current per phase, A (the charger's or the connection's, whichever is lower). */
  readonly maxCurrentA: number;
}

export type DispatchDeviceConfig = BatteryDispatchConfig | PvDispatchConfig | EvDispatchConfig;

/** A polled device with every placed point of its register map (the controls are rarely among the polled ones). */
export interface DispatchableDevice {
  readonly name: string;
  readonly bus: ModbusBus;
  readonly unit: number;
  readonly points: readonly PlacedPoint[];
}

export type DeviceControls =
  | {
      readonly protocol: 'sunspec-124';
      readonly mode: SetpointControl;
      readonly inRate: SetpointControl;
      readonly outRate: SetpointControl;
    }
  | { readonly protocol: 'victron-ess'; readonly phases: readonly [SetpointControl, SetpointControl, SetpointControl] }
  | { readonly protocol: 'sunspec-123'; readonly limit: SetpointControl }
  | { readonly protocol: 'ev-current'; readonly current: SetpointControl };

/** Which polled points tell what the device does. */
export interface MeasuredPoints {
  /** Point keys summed into the DER's power; empty when the device reports none (no deviations then). */
  readonly power: readonly string[];
  /** Multiplies the sum into the schedule's sign convention (Victron AC-in counts charging positive). */
  readonly sign: 1 | -1;
  /** Battery state of charge, %. */
  readonly soc?: string;
}

/** A DER ready to dispatch. */
export interface DispatchDevice {
  readonly config: DispatchDeviceConfig;
  readonly bus: ModbusBus;
  readonly unit: number;
  readonly controls: DeviceControls;
  readonly measured: MeasuredPoints;
}

export interface DispatchProblem {
  readonly building: string;
  readonly der: string;
  readonly device: string;
  readonly message: string;
}

const INVERTER_MODELS = ['sunspec-101', 'sunspec-102', 'sunspec-103'];

function findPoint(
  points: readonly PlacedPoint[],
  profileIds: readonly string[],
  name: string,
): PlacedPoint | undefined {
  return points.find((p) => profileIds.includes(p.profileId) && p.point.name === name);
}

/**
 * A control as the keeper can write it. A revert timeout the profile gives as read-only (Alfen MaxCurrentValidTime:
 * the time remaining) cannot be written, so it is left out and the keeper renews on its refresh period instead.
 */
function writableControl(point: PlacedPoint, placed: readonly PlacedPoint[]): SetpointControl {
  const control = controlFor(point, placed);
  if (control.revertTimeout === undefined || control.revertTimeout.point.access === 'rw') return control;
  return { point: control.point, ...(control.enable ? { enable: control.enable } : {}) };
}

function positiveNumber(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

function configProblem(c: DispatchDeviceConfig): string | undefined {
  const what = `DER '${c.der}' of building '${c.building}'`;
  if (c.kind === 'battery') {
    if (!positiveNumber(c.maxChargeW) || !positiveNumber(c.maxDischargeW)) {
      return `${what}: maxChargeW and maxDischargeW must be > 0 W (got ${c.maxChargeW} and ${c.maxDischargeW})`;
    }
    if (!(Number.isFinite(c.reservePct) && c.reservePct >= 0 && c.reservePct <= 100)) {
      return `${what}: reservePct must be 0..100 %, got ${c.reservePct}`;
    }
  } else if (c.kind === 'pv') {
    if (!positiveNumber(c.ratedW)) return `${what}: ratedW must be > 0 W, got ${c.ratedW}`;
    const min = c.minLimitPct ?? 1;
    if (!(min > 0 && min <= 100)) {
      return `${what}: minLimitPct must be above 0 and at most 100 % (a 0 % limit is never written), got ${min}`;
    }
  } else {
    const min = c.minCurrentA ?? 6;
    if (!positiveNumber(c.maxCurrentA) || !(min > 0) || c.maxCurrentA < min) {
      return `${what}: maxCurrentA (${c.maxCurrentA}) must be at least minCurrentA (${min}) A`;
    }
    if (!positiveNumber(c.voltageV ?? 230)) return `${what}: voltageV must be > 0 V, got ${c.voltageV}`;
  }
  return undefined;
}

function resolveOne(
  c: DispatchDeviceConfig,
  d: DispatchableDevice,
): { device: DispatchDevice; warning?: string } | { problem: string } {
  const points = d.points;
  const where = `DER '${c.der}' of building '${c.building}' (device '${d.name}', bus ${d.bus.name}, unit ${d.unit})`;
  const inverterW = findPoint(points, INVERTER_MODELS, 'W');
  const noPower = `${where}: no AC power point (SunSpec 101-103 W); its deviations from the schedule are not recorded`;
  if (c.kind === 'battery') {
    const mode = findPoint(points, ['sunspec-124'], 'StorCtl_Mod');
    const inRate = findPoint(points, ['sunspec-124'], 'InWRte');
    const outRate = findPoint(points, ['sunspec-124'], 'OutWRte');
    if (mode && inRate && outRate) {
      const soc = findPoint(points, ['sunspec-124'], 'ChaState');
      if (soc === undefined)
        return { problem: `${where}: no SoC point (SunSpec 124 ChaState): the reserve cannot be guarded` };
      const device: DispatchDevice = {
        config: c,
        bus: d.bus,
        unit: d.unit,
        controls: {
          protocol: 'sunspec-124',
          mode: writableControl(mode, points),
          inRate: writableControl(inRate, points),
          outRate: writableControl(outRate, points),
        },
        measured: { power: inverterW ? [inverterW.key] : [], sign: 1, soc: soc.key },
      };
      return inverterW ? { device } : { device, warning: noPower };
    }
    const ess = ['EssWphA', 'EssWphB', 'EssWphC'].map((n) => findPoint(points, ['victron-vebus'], n));
    const [a, b, cc] = ess;
    if (a && b && cc) {
      const soc = findPoint(points, ['victron-vebus'], 'Soc');
      if (soc === undefined) return { problem: `${where}: no SoC point (Victron Soc): the reserve cannot be guarded` };
      const acIn = ['AcInWphA', 'AcInWphB', 'AcInWphC'].map((n) => findPoint(points, ['victron-vebus'], n));
      const power = acIn.every((p) => p !== undefined) ? acIn.map((p) => (p as PlacedPoint).key) : [];
      const device: DispatchDevice = {
        config: c,
        bus: d.bus,
        unit: d.unit,
        controls: {
          protocol: 'victron-ess',
          phases: [writableControl(a, points), writableControl(b, points), writableControl(cc, points)],
        },
        measured: { power, sign: -1, soc: soc.key },
      };
      return power.length > 0
        ? { device }
        : { device, warning: `${where}: no AC-in power points; its deviations are not recorded` };
    }
    return {
      problem: `${where}: the device has neither SunSpec 124 storage controls (StorCtl_Mod, InWRte, OutWRte) nor Victron ESS setpoints (EssWphA/B/C); check its profile`,
    };
  }
  if (c.kind === 'pv') {
    const limit = findPoint(points, ['sunspec-123'], 'WMaxLimPct');
    if (limit === undefined) {
      return {
        problem: `${where}: no SunSpec 123 WMaxLimPct: this inverter cannot be curtailed; leave it out of dispatch`,
      };
    }
    const device: DispatchDevice = {
      config: c,
      bus: d.bus,
      unit: d.unit,
      controls: { protocol: 'sunspec-123', limit: writableControl(limit, points) },
      measured: { power: inverterW ? [inverterW.key] : [], sign: 1 },
    };
    return inverterW ? { device } : { device, warning: noPower };
  }
  const current = points.find((p) => p.point.name === 'MaxCurrent' && p.point.access === 'rw');
  if (current === undefined)
    return { problem: `${where}: no writable MaxCurrent point; the charger cannot be dispatched` };
  const power = points.find((p) => p.profileId === current.profileId && p.point.name === 'W');
  const device: DispatchDevice = {
    config: c,
    bus: d.bus,
    unit: d.unit,
    controls: { protocol: 'ev-current', current: writableControl(current, points) },
    measured: { power: power ? [power.key] : [], sign: 1 },
  };
  return power ? { device } : { device, warning: `${where}: no power point W; its deviations are not recorded` };
}

/**
 * Joins the dispatch config with the resolved devices. A DER whose device is missing, whose profile has no suitable
 * control, or whose config is inconsistent is left out with a problem a technician can act on; one that can be
 * dispatched but not fully audited (no power reading) is kept with a warning.
 */
export function resolveDispatchDevices(
  configs: readonly DispatchDeviceConfig[],
  devices: readonly DispatchableDevice[],
): { devices: DispatchDevice[]; problems: DispatchProblem[]; warnings: DispatchProblem[] } {
  const byName = new Map(devices.map((d) => [d.name, d]));
  const out: DispatchDevice[] = [];
  const problems: DispatchProblem[] = [];
  const warnings: DispatchProblem[] = [];
  const ders = new Set<string>();
  const owners = new Map<string, string>();
  for (const c of configs) {
    const id = { building: c.building, der: c.der, device: c.device };
    const key = `${c.building}\u0000${c.der}`;
    if (ders.has(key)) {
      problems.push({ ...id, message: `DER '${c.der}' of building '${c.building}' is configured for dispatch twice` });
      continue;
    }
    ders.add(key);
    const owner = owners.get(c.device);
    if (owner !== undefined) {
      problems.push({
        ...id,
        message: `device '${c.device}' already carries DER ${owner}; two DERs cannot share one device's setpoints`,
      });
      continue;
    }
    const bad = configProblem(c);
    if (bad !== undefined) {
      problems.push({ ...id, message: bad });
      continue;
    }
    const d = byName.get(c.device);
    if (d === undefined) {
      problems.push({
        ...id,
        message: `DER '${c.der}' of building '${c.building}': device '${c.device}' is not among the resolved devices (not configured, disabled or not answering)`,
      });
      continue;
    }
    const resolved = resolveOne(c, d);
    if ('problem' in resolved) {
      problems.push({ ...id, message: resolved.problem });
      continue;
    }
    owners.set(c.device, `'${c.der}' of building '${c.building}'`);
    out.push(resolved.device);
    if (resolved.warning !== undefined) warnings.push({ ...id, message: resolved.warning });
  }
  return { devices: out, problems, warnings };
}

// ---------------------------------------------------------------------------------------------------------------
// Setpoints: pure functions from one interval of a building's schedule to clipped setpoints and register writes.

export type DerSetpoint =
  /** AC power, W: + discharge, - charge, 0 idle. */
  | { readonly kind: 'battery'; readonly powerW: number }
  /** limitW null: no curtailment (100 %). */
  | { readonly kind: 'pv'; readonly limitW: number | null; readonly limitPct: number }
  /** currentA per phase (0 stops); powerW the power it allows. */
  | { readonly kind: 'ev'; readonly currentA: number; readonly powerW: number };

export type ClipReason =
  /** The schedule's value was missing or not finite: the safe value was used. */
  | 'invalid'
  /** Beyond the device's power rating. */
  | 'power-limit'
  /** Battery discharge refused: measured SoC at or below the reserve. */
  | 'reserve'
  /** Battery discharge refused: no recent SoC reading. */
  | 'soc-unknown'
  /** Battery charge and discharge in the same building cancelled out. */
  | 'netted'
  /** PV limited so the building's export stays within its limit. */
  | 'export-limit'
  /** PV limit raised to the lowest percentage ever written. */
  | 'min-limit'
  /** EV current above the maximum. */
  | 'max-current'
  /** EV current raised to the IEC 61851 minimum. */
  | 'min-current'
  /** EV current under half the minimum: charging stopped. */
  | 'below-min-current'
  /** Real-time correction: extra charge refused, measured SoC at or above the battery's maximum. */
  | 'soc-max';

export interface PlannedSetpoint {
  readonly device: DispatchDevice;
  /** The schedule's value for the interval, W (NaN when missing). */
  readonly plannedW: number;
  readonly setpoint: DerSetpoint;
  readonly clipped: readonly ClipReason[];
}

export interface PlanContext {
  readonly now: number;
  /** Measured SoC of a battery, % and when it was read. */
  readonly soc: (device: DispatchDevice) => { readonly pct: number; readonly t: number } | undefined;
  /** Older SoC readings are not trusted, ms. */
  readonly socMaxAgeMs: number;
  /** Largest export at this building's connection, W; undefined: no cap from the dispatcher. */
  readonly exportLimitW: number | undefined;
}

/** The interval of the horizon that contains `now`, or undefined. */
export function intervalAt(h: Horizon, now: number): number | undefined {
  if (!(h.stepMs > 0) || now < h.start) return undefined;
  const step = Math.floor((now - h.start) / h.stepMs);
  return step < h.steps ? step : undefined;
}

function valueAt(series: readonly number[] | undefined, step: number): number {
  const v = series?.[step];
  return typeof v === 'number' && Number.isFinite(v) ? v : Number.NaN;
}

/** Rounded to `digits` decimals toward zero, so a rounded limit is never looser than the computed one. */
function truncate(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.trunc(value * f + (value >= 0 ? 1e-9 : -1e-9)) / f;
}

function batteryBase(
  device: DispatchDevice,
  config: BatteryDispatchConfig,
  planned: number,
  ctx: PlanContext,
): { w: number; clipped: ClipReason[] } {
  const clipped: ClipReason[] = [];
  let w = planned;
  if (Number.isNaN(w)) {
    w = 0;
    clipped.push('invalid');
  }
  let chargeMax = config.maxChargeW;
  let dischargeMax = config.maxDischargeW;
  if (device.controls.protocol === 'sunspec-124') {
    // A forced direction is a negative percentage of the other side's maximum, so it reaches at most 100 % of that.
    chargeMax = Math.min(chargeMax, config.maxDischargeW);
    dischargeMax = Math.min(dischargeMax, config.maxChargeW);
  }
  if (w > dischargeMax || w < -chargeMax) {
    w = Math.min(dischargeMax, Math.max(-chargeMax, w));
    clipped.push('power-limit');
  }
  if (w > 0) {
    const soc = ctx.soc(device);
    if (soc === undefined || !Number.isFinite(soc.pct) || ctx.now - soc.t > ctx.socMaxAgeMs) {
      w = 0;
      clipped.push('soc-unknown');
    } else if (soc.pct <= config.reservePct) {
      w = 0;
      clipped.push('reserve');
    }
  }
  return { w, clipped };
}

/**
 * The building's batteries never charge and discharge at once: the smaller of the total charge and the total
 * discharge is taken off both sides in proportion, which keeps the building's net battery power as planned.
 */
function netBatteries(items: { w: number; clipped: ClipReason[] }[]): void {
  let charge = 0;
  let discharge = 0;
  for (const it of items) {
    if (it.w < 0) charge -= it.w;
    else discharge += it.w;
  }
  const overlap = Math.min(charge, discharge);
  if (overlap <= 0) return;
  for (const it of items) {
    if (it.w === 0) continue;
    const side = it.w < 0 ? charge : discharge;
    it.w *= (side - overlap) / side;
    it.clipped.push('netted');
  }
}

function pvSetpoint(
  config: PvDispatchConfig,
  der: DerSchedule,
  building: BuildingSchedule,
  step: number,
  shareOfHeadroom: number,
  ctx: PlanContext,
): { setpoint: DerSetpoint; clipped: ClipReason[] } {
  const clipped: ClipReason[] = [];
  const rated = config.ratedW;
  let planned = valueAt(der.powerW, step);
  const available = valueAt(der.availableW, step);
  if (Number.isNaN(planned)) clipped.push('invalid');
  let limitW: number | undefined;
  // A plan below the forecast is a curtailment; one at the forecast needs no limit (solver noise aside).
  if (!Number.isNaN(planned) && !(planned >= available - Math.max(1, rated * 1e-3))) limitW = Math.max(0, planned);
  if (Number.isNaN(planned)) planned = Number.isNaN(available) ? 0 : Math.max(0, available);
  if (ctx.exportLimitW !== undefined) {
    // More PV than planned must not push the building's export beyond its limit: the PV gets what the plan leaves.
    const exported = valueAt(building.gridExportW, step);
    const headroom = Math.max(0, ctx.exportLimitW - (Number.isNaN(exported) ? 0 : exported));
    const cap = Math.max(0, planned) + headroom * shareOfHeadroom;
    if (cap < rated && (limitW === undefined || cap < limitW)) {
      limitW = cap;
      clipped.push('export-limit');
    }
  }
  if (limitW === undefined || limitW >= rated)
    return { setpoint: { kind: 'pv', limitW: null, limitPct: 100 }, clipped };
  let pct = truncate((limitW / rated) * 100, 1);
  const min = config.minLimitPct ?? 1;
  if (pct < min) {
    pct = min;
    clipped.push('min-limit');
  }
  return { setpoint: { kind: 'pv', limitW: Math.round((pct * rated) / 100), limitPct: pct }, clipped };
}

function evSetpoint(config: EvDispatchConfig, planned: number): { setpoint: DerSetpoint; clipped: ClipReason[] } {
  const clipped: ClipReason[] = [];
  const volts = config.voltageV ?? 230;
  const min = config.minCurrentA ?? 6;
  const perAmp = config.phases * volts;
  let w = planned;
  if (Number.isNaN(w)) {
    w = 0;
    clipped.push('invalid');
  }
  let a = Math.max(0, w) / perAmp;
  if (a > config.maxCurrentA) {
    a = config.maxCurrentA;
    clipped.push('max-current');
  } else if (a > 0 && a < min) {
    // The LP knows no minimum current: the nearer of 0 and the minimum keeps the energy over many intervals close.
    if (a >= min / 2) {
      a = min;
      clipped.push('min-current');
    } else {
      a = 0;
      clipped.push('below-min-current');
    }
  } else {
    a = truncate(a, 1);
  }
  return { setpoint: { kind: 'ev', currentA: a, powerW: Math.round(a * perAmp) }, clipped };
}

/**
 * The clipped setpoints of one interval of one building, for the given devices (all of this building, each with
 * its DER in the schedule under the same kind).
 */
export function planBuilding(
  building: BuildingSchedule,
  step: number,
  devices: readonly DispatchDevice[],
  ctx: PlanContext,
): PlannedSetpoint[] {
  const derOf = (d: DispatchDevice) => building.ders.find((x) => x.name === d.config.der);
  const batteries: { device: DispatchDevice; planned: number; w: number; clipped: ClipReason[] }[] = [];
  const out: PlannedSetpoint[] = [];
  const pvRated = devices.reduce((s, d) => s + (d.config.kind === 'pv' ? d.config.ratedW : 0), 0);
  for (const device of devices) {
    const der = derOf(device);
    if (der === undefined) continue;
    const c = device.config;
    const planned = valueAt(der.powerW, step);
    if (c.kind === 'battery') {
      batteries.push({ device, planned, ...batteryBase(device, c, planned, ctx) });
    } else if (c.kind === 'pv') {
      const { setpoint, clipped } = pvSetpoint(c, der, building, step, c.ratedW / pvRated, ctx);
      out.push({ device, plannedW: planned, setpoint, clipped });
    } else {
      const { setpoint, clipped } = evSetpoint(c, planned);
      out.push({ device, plannedW: planned, setpoint, clipped });
    }
  }
  netBatteries(batteries);
  const planned = batteries.map((b) => ({
    device: b.device,
    plannedW: b.planned,
    setpoint: { kind: 'battery' as const, powerW: Math.round(b.w) || 0 },
    clipped: b.clipped,
  }));
  return [...planned, ...out];
}

/** One register write of a setpoint, in the order it must be sent. */
export interface SetpointWrite {
  readonly control: SetpointControl;
  readonly value: number;
}

function pctOf(w: number, of: number): number {
  return Math.round(Math.min(100, Math.max(0, (w / of) * 100)) * 10) / 10;
}

/**
 * The writes that put a device at a setpoint. SunSpec 124 rates go relaxing side first, then the forcing side, then
 * the mode, so no moment between two writes asks for the opposite direction (at worst the battery idles briefly).
 */
export function writesFor(device: DispatchDevice, setpoint: DerSetpoint): SetpointWrite[] {
  const c = device.controls;
  switch (c.protocol) {
    case 'sunspec-124': {
      if (setpoint.kind !== 'battery' || device.config.kind !== 'battery') break;
      const w = setpoint.powerW;
      const cfg = device.config;
      if (w < 0) {
        return [
          { control: c.inRate, value: 100 },
          { control: c.outRate, value: -pctOf(-w, cfg.maxDischargeW) || 0 },
          { control: c.mode, value: 3 },
        ];
      }
      if (w > 0) {
        return [
          { control: c.outRate, value: 100 },
          { control: c.inRate, value: -pctOf(w, cfg.maxChargeW) || 0 },
          { control: c.mode, value: 3 },
        ];
      }
      return [
        { control: c.outRate, value: 0 },
        { control: c.inRate, value: 0 },
        { control: c.mode, value: 3 },
      ];
    }
    case 'victron-ess': {
      if (setpoint.kind !== 'battery' || device.config.kind !== 'battery') break;
      const phases = device.config.phases ?? 3;
      // Taken at AC-in, charging positive; whole W per phase, the remainder on L1 so the sum is exact.
      const total = -setpoint.powerW || 0;
      const each = Math.trunc(total / phases);
      const values = [0, 1, 2].map((i) => (i < phases ? each : 0));
      values[0] = (values[0] as number) + (total - each * phases);
      return c.phases.map((control, i) => ({ control, value: values[i] as number }));
    }
    case 'sunspec-123':
      if (setpoint.kind !== 'pv') break;
      return [{ control: c.limit, value: setpoint.limitPct }];
    case 'ev-current':
      if (setpoint.kind !== 'ev') break;
      return [{ control: c.current, value: setpoint.currentA }];
  }
  throw new Error(
    `device '${device.config.device}': a ${setpoint.kind} setpoint does not fit its ${c.protocol} controls`,
  );
}

/** The writes that hand a device back to its own control at once instead of waiting for its revert timer. */
function handBackWrites(device: DispatchDevice): SetpointWrite[] {
  const c = device.controls;
  if (c.protocol === 'sunspec-124') return [{ control: c.mode, value: 0 }];
  if (c.protocol === 'sunspec-123') return [{ control: c.limit, value: 100 }];
  // Victron and EV chargers fall back on their own when the setpoint is not renewed (60 s, the safe current).
  return [];
}

function controlsOf(device: DispatchDevice): SetpointControl[] {
  const c = device.controls;
  switch (c.protocol) {
    case 'sunspec-124':
      return [c.inRate, c.outRate, c.mode];
    case 'victron-ess':
      return [...c.phases];
    case 'sunspec-123':
      return [c.limit];
    case 'ev-current':
      return [c.current];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Real-time correction: the plan's net exchange is what is executed, the battery takes up what the forecast missed.

export interface CorrectionInput {
  /** The building's planned net exchange for the interval (schedule netW), W, + import. */
  readonly plannedNetW: number;
  /**
   * Deviation from the plan, W, + more import than planned: measured net exchange + (measured battery power -
   * planned battery power) - planned net exchange. It leaves out what the batteries do, so it is what the load, the
   * PV and everything else not dispatched did differently from the forecast, whatever setpoint is in force.
   */
  readonly deviationW: number;
  /** The batteries' planned power in total (the schedule's, before any clipping), W, + discharge. */
  readonly plannedBatteryW: number;
  /** Their setpoints in total before the correction (the plan after the safety clips), W, + discharge. */
  readonly baseW: number;
  /** Excursions up to this are left alone, W. */
  readonly deadbandW: number;
  /** A correction is in force: it ends only below half the deadband (hysteresis, so it does not flap). */
  readonly correcting?: boolean;
}

/**
 * How much to add to a building's battery total, W (before the batteries' own limits): negative charges more (or
 * discharges less), positive charges less, never beyond idle. Zero inside the band the plan accepts.
 *
 * The band runs from 0 to the planned exchange: the plan pays the import price for every planned kWh imported and
 * accepts the feed-in for every planned kWh exported. Export beyond the planned export (a sunnier sky, a lighter
 * load) is charged into the battery instead of being sold at the feed-in price; import beyond the planned import
 * while the plan charges is taken off the charging (the sun did not deliver what the plan stored) instead of being
 * bought. A deviation that stays inside the band (less import than planned, less export than planned) is left to the
 * grid: it is traded at the price the plan already pays, and shifting it into or out of the battery would be a
 * purchase or a sale the plan found not worth making. The battery never discharges more than the plan: that energy
 * is kept for the dearer hours the plan has reserved it for.
 */
export function batteryCorrectionW(i: CorrectionInput): number {
  const values = [i.plannedNetW, i.deviationW, i.plannedBatteryW, i.baseW];
  if (!values.every(Number.isFinite)) return 0;
  // The exchange with the batteries at their base setpoints.
  const exchange = i.plannedNetW + i.deviationW + i.plannedBatteryW - i.baseW;
  const low = Math.min(0, i.plannedNetW);
  const high = Math.max(0, i.plannedNetW);
  const excess = exchange < low ? exchange - low : exchange > high ? exchange - high : 0;
  const threshold = i.correcting === true ? i.deadbandW / 2 : i.deadbandW;
  if (Math.abs(excess) <= threshold) return 0;
  if (excess < 0) return excess;
  return i.baseW < 0 ? Math.min(excess, -i.baseW) : 0;
}

/** One battery of a building as the correction sees it. */
export interface CorrectionBattery {
  /** Its setpoint before the correction, W, + discharge. */
  readonly baseW: number;
  /** The most it may charge, W (> 0). */
  readonly chargeMaxW: number;
  /** It may not charge more than its base (measured SoC at or above its maximum). */
  readonly full: boolean;
}

/**
 * Shares a building's correction among its batteries, W each (+ discharge). Charging more first takes discharge off
 * the batteries that discharge (in proportion to their discharge), then adds charge in proportion to each one's
 * charge headroom, so no battery charges while another discharges; charging less is taken off the charging
 * batteries in proportion to their charge. Returns the setpoints and the correction actually placed (less than
 * asked when the headroom runs out).
 */
export function distributeCorrection(
  batteries: readonly CorrectionBattery[],
  correctionW: number,
): { readonly w: number[]; readonly placedW: number } {
  const w = batteries.map((b) => b.baseW);
  if (!(Number.isFinite(correctionW) && correctionW !== 0)) return { w, placedW: 0 };
  if (correctionW > 0) {
    const charging = batteries.reduce((s, b) => s + Math.max(0, -b.baseW), 0);
    const take = Math.min(correctionW, charging);
    if (take <= 0) return { w, placedW: 0 };
    batteries.forEach((b, i) => {
      if (b.baseW < 0) w[i] = b.baseW + (take * -b.baseW) / charging;
    });
    return { w, placedW: take };
  }
  let more = -correctionW;
  const discharging = batteries.reduce((s, b) => s + Math.max(0, b.baseW), 0);
  const less = Math.min(more, discharging);
  if (less > 0) {
    batteries.forEach((b, i) => {
      if (b.baseW > 0) w[i] = b.baseW - (less * b.baseW) / discharging;
    });
    more -= less;
  }
  const headroom = batteries.map((b, i) => (b.full ? 0 : Math.max(0, b.chargeMaxW + Math.min(0, w[i] as number))));
  const room = headroom.reduce((s, h) => s + h, 0);
  const added = Math.min(more, room);
  if (added > 0) {
    headroom.forEach((h, i) => {
      w[i] = (w[i] as number) - (added * h) / room;
    });
  }
  return { w, placedW: -(less + added) };
}

// ---------------------------------------------------------------------------------------------------------------
// The dispatcher.

/** What the Dispatcher needs of the SetpointKeeper. */
export interface SetpointWriter {
  set(target: SetpointTarget, value: number): Promise<WriteOutcome | undefined>;
  release(device: string, pointKey: string): void;
}

/** The latest polled values of a device (Poller.latest). */
export type LatestReadings = (device: string) => ReadonlyMap<string, PointValue>;

export interface DispatchSafetyLimits {
  /** Largest export at each building's connection, W, by building name; a building not listed gets no PV cap. */
  readonly exportLimitW?: Readonly<Record<string, number>>;
  /** A SoC reading older than this is not trusted and the battery is not discharged, ms. Default 300000. */
  readonly socMaxAgeMs?: number;
}

export interface DeviationTolerance {
  /** Of the DER's rating. Default 0.05. */
  readonly fraction: number;
  /** At least, W. Default 200. */
  readonly minW: number;
}

/** A building's connection meter: what the real-time correction measures. */
export interface BuildingMeter {
  /** The polled device (its `devices:` name). */
  readonly device: string;
  /** Its power point, W. */
  readonly point: string;
  /** Multiplies the reading into the schedule's convention, + import. Default 1. */
  readonly sign?: 1 | -1;
}

export interface CorrectionSettings {
  /** Excursions beyond the plan's band up to this are left alone, W. Default 200. */
  readonly deadbandW?: number;
  /** Least time between two corrective writes to a building's batteries, ms. Default 10000. */
  readonly minWriteIntervalMs?: number;
  /** Meter and battery readings older than this are not used (no correction then), ms. Default 30000. */
  readonly maxAgeMs?: number;
}

export interface DispatcherOptions {
  readonly keeper: SetpointWriter;
  readonly devices: readonly DispatchDevice[];
  /** Where deviations go as `event` records (the ledger). */
  readonly sink: ReadingSink;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly limits?: DispatchSafetyLimits;
  /** Measured SoC (reserve guard) and power (deviations); without it no battery is discharged. */
  readonly latest?: LatestReadings;
  readonly tolerance?: Partial<DeviationTolerance>;
  /**
   * Each building's connection meter, by building name. A building with a meter and dispatched batteries gets the
   * real-time correction (batteryCorrectionW): its batteries take up what the forecast missed. Without one, the
   * plan's battery power is the setpoint as it is.
   */
  readonly buildings?: Readonly<Record<string, BuildingMeter>>;
  readonly correction?: CorrectionSettings;
}

export interface WriteResult {
  readonly point: string;
  readonly value: number;
  /** ok: the device reports what was written; mismatch: it reports something else; failed: not written (refused,
   * no answer); the keeper has recorded the event and tries again at the next renewal. */
  readonly status: 'ok' | 'mismatch' | 'failed';
  readonly readBack?: DecodedValue;
  readonly problem?: string;
}

export interface DispatchOutcome {
  readonly building: string;
  readonly der: string;
  readonly kind: DispatchKind;
  readonly device: string;
  /** The interval in force, or undefined when none covers now. */
  readonly step: number | undefined;
  /** The schedule's value, W (NaN when missing; undefined when released). */
  readonly plannedW: number | undefined;
  readonly setpoint: DerSetpoint | undefined;
  readonly clipped: readonly ClipReason[];
  readonly writes: readonly WriteResult[];
  /** ok: every write read back; mismatch: the device reports another value; failed: a write did not go through;
   * released: the DER is not in the schedule's interval and was handed back to the device. */
  readonly status: 'ok' | 'mismatch' | 'failed' | 'released';
  /**
   * Batteries of a building with a meter: the part of `setpoint` that is the real-time correction, W (setpoint =
   * the plan after the safety clips + this).
   */
  readonly correctionW?: number;
}

/** The real-time correction of one building as it stands. */
export interface CorrectionStatus {
  readonly building: string;
  /** Start of the interval in force, ms. */
  readonly interval: number;
  /** The schedule's net exchange for it, W, + import. */
  readonly plannedNetW: number;
  /** The schedule's battery power in total, W, + discharge. */
  readonly plannedBatteryW: number;
  /** The latest measurement the correction used (undefined: none usable, see `problem`). */
  readonly measuredNetW: number | undefined;
  readonly measuredBatteryW: number | undefined;
  /** Deviation from the plan, W, + more import than planned (CorrectionInput.deviationW). */
  readonly deviationW: number | undefined;
  /** Added to the batteries' setpoints in total, W (negative: more charge or less discharge). */
  readonly correctionW: number;
  /** What the rule asked for before the batteries' headroom, W. */
  readonly requestedW: number;
  /** The batteries' setpoints in force, W, + discharge. */
  readonly setpoints: readonly { readonly der: string; readonly device: string; readonly powerW: number }[];
  /** When the last corrective write went out, ms (the interval's first write included). */
  readonly writtenAt: number;
  /** Why no correction is made (readings missing or stale). */
  readonly problem?: string;
}

/** A corrective write: the building's correction and every battery write it made. */
export interface CorrectionReport extends CorrectionStatus {
  readonly outcomes: readonly DispatchOutcome[];
}

/** One compared interval of one DER. */
export interface DeviationReport {
  readonly building: string;
  readonly der: string;
  readonly device: string;
  readonly kind: DispatchKind;
  /** Start of the interval, ms. */
  readonly interval: number;
  /** Mean setpoint over the readings, W (battery: the power, corrections included; pv, ev: the limit). */
  readonly setpointW: number;
  readonly measuredW: number;
  readonly deviationW: number;
  readonly toleranceW: number;
  readonly samples: number;
  /** An event was recorded. */
  readonly exceeded: boolean;
}

interface Tracked {
  readonly device: DispatchDevice;
  readonly start: number;
  readonly end: number;
  /** W; null: nothing to compare (PV without a limit). */
  expected: number | null;
  /** Readings before this belong to the previous setpoint. */
  since: number;
  lastT: number;
  readonly samples: { measured: number; expected: number }[];
}

function derKey(c: DispatchDeviceConfig): string {
  return `${c.building}\u0000${c.der}`;
}

function ratingW(c: DispatchDeviceConfig): number {
  if (c.kind === 'battery') return Math.max(c.maxChargeW, c.maxDischargeW);
  if (c.kind === 'pv') return c.ratedW;
  return c.maxCurrentA * c.phases * (c.voltageV ?? 230);
}

/** Battery setpoints are exact; PV and EV setpoints are caps (less sun, a full car are not deviations). */
function isCap(kind: DispatchKind): boolean {
  return kind !== 'battery';
}

function expectedW(setpoint: DerSetpoint): number | null {
  if (setpoint.kind === 'battery') return setpoint.powerW;
  if (setpoint.kind === 'pv') return setpoint.limitW;
  return setpoint.powerW;
}

/** The effective charge maximum of a battery: SunSpec 124 forces a direction as a share of the other side's maximum. */
function chargeMaxW(device: DispatchDevice, c: BatteryDispatchConfig): number {
  return device.controls.protocol === 'sunspec-124' ? Math.min(c.maxChargeW, c.maxDischargeW) : c.maxChargeW;
}

interface CorrectedBattery {
  readonly device: DispatchDevice;
  readonly config: BatteryDispatchConfig;
  /** The schedule's value, W (NaN when missing). */
  readonly plannedW: number;
  /** The plan after the safety clips, W. */
  readonly baseW: number;
  readonly baseClipped: readonly ClipReason[];
  /** The setpoint in force, W. */
  setpointW: number;
  clipped: readonly ClipReason[];
}

/** A building with a meter and dispatched batteries, in the interval in force. */
interface BuildingState {
  readonly building: string;
  readonly meter: BuildingMeter;
  readonly step: number;
  readonly interval: { readonly start: number; readonly end: number };
  readonly plannedNetW: number;
  readonly plannedBatteryW: number;
  readonly batteries: CorrectedBattery[];
  correctionW: number;
  requestedW: number;
  writtenAt: number;
  writing: boolean;
  measured: { netW: number; batteryW: number; deviationW: number } | undefined;
  problem: string | undefined;
}

interface CorrectionPlan {
  readonly w: readonly number[];
  readonly placedW: number;
  readonly requestedW: number;
  readonly clipped: readonly (readonly ClipReason[])[];
}

function outcomeStatus(writes: readonly WriteResult[]): DispatchOutcome['status'] {
  if (writes.some((w) => w.status === 'failed')) return 'failed';
  return writes.some((w) => w.status === 'mismatch') ? 'mismatch' : 'ok';
}

export class Dispatcher {
  private readonly devices: readonly DispatchDevice[];
  /** DERs whose setpoints are held (a release is written only once). */
  private readonly held = new Set<DispatchDevice>();
  private tracked: Tracked[] = [];
  private readonly tolerance: DeviationTolerance;
  private readonly deadbandW: number;
  private readonly minWriteIntervalMs: number;
  private readonly maxAgeMs: number;
  /** Buildings under real-time correction, by name. */
  private states = new Map<string, BuildingState>();
  /** Per device, the end of its last batch of writes: batches to one device never interleave. */
  private readonly queues = new Map<DispatchDevice, Promise<unknown>>();

  constructor(private readonly options: DispatcherOptions) {
    const keys = new Set<string>();
    const names = new Set<string>();
    for (const d of options.devices) {
      const c = d.config;
      if (keys.has(derKey(c))) throw new Error(`dispatch: DER '${c.der}' of building '${c.building}' is listed twice`);
      if (names.has(c.device)) throw new Error(`dispatch: device '${c.device}' carries two DERs`);
      keys.add(derKey(c));
      names.add(c.device);
    }
    this.devices = options.devices;
    this.tolerance = { fraction: options.tolerance?.fraction ?? 0.05, minW: options.tolerance?.minW ?? 200 };
    const k = options.correction ?? {};
    this.deadbandW = k.deadbandW ?? 200;
    this.minWriteIntervalMs = k.minWriteIntervalMs ?? 10_000;
    this.maxAgeMs = k.maxAgeMs ?? 30_000;
    for (const [name, value] of [
      ['deadbandW', this.deadbandW],
      ['minWriteIntervalMs', this.minWriteIntervalMs],
      ['maxAgeMs', this.maxAgeMs],
    ] as const) {
      if (!(Number.isFinite(value) && value >= 0)) {
        throw new Error(`dispatch: correction.${name} must be a number >= 0, got ${value}`);
      }
    }
  }

  /**
   * Dispatches the interval of `schedule` that contains `now`: computes and clips every DER's setpoint and writes it
   * through the keeper, which renews it from then on. In a building with a meter the batteries' setpoints include
   * the real-time correction from the latest readings. DERs without a value in force (no interval covers now, not
   * in the schedule) are handed back to their device. Resolves when every write has been read back or has failed.
   */
  async apply(schedule: SiteSchedule, now: number = this.options.clock.now()): Promise<DispatchOutcome[]> {
    const step = intervalAt(schedule.horizon, now);
    const plans: PlannedSetpoint[] = [];
    const previous = this.states;
    this.states = new Map();
    const interval =
      step === undefined
        ? undefined
        : {
            start: schedule.horizon.start + step * schedule.horizon.stepMs,
            end: schedule.horizon.start + (step + 1) * schedule.horizon.stepMs,
          };
    if (step !== undefined && interval !== undefined) {
      for (const building of schedule.buildings) {
        const mine = this.devices.filter((d) => {
          if (d.config.building !== building.name) return false;
          const der = building.ders.find((x) => x.name === d.config.der);
          if (der === undefined) return false;
          if (der.kind === d.config.kind) return true;
          this.options.logger.error(
            { building: building.name, der: der.name, device: d.config.device },
            `dispatch: DER '${der.name}' of building '${building.name}' is a ${der.kind} in the schedule but configured as a ${d.config.kind} on device '${d.config.device}'; not dispatched, fix the config`,
          );
          return false;
        });
        const exportLimitW = this.options.limits?.exportLimitW?.[building.name];
        const planned = planBuilding(building, step, mine, this.context(now, exportLimitW));
        const state = this.startCorrection(building, step, interval, planned, previous.get(building.name), now);
        if (state !== undefined) this.states.set(building.name, state);
        plans.push(...planned);
      }
    }
    const planned = new Set(plans.map((p) => p.device));
    const jobs: Promise<DispatchOutcome | undefined>[] = [
      ...plans.map((p) => {
        const state = this.states.get(p.device.config.building);
        const b = state?.batteries.find((x) => x.device === p.device);
        if (b === undefined)
          return this.dispatchOne(p, step as number, interval as { start: number; end: number }, now);
        const corrected: PlannedSetpoint = {
          ...p,
          setpoint: { kind: 'battery', powerW: b.setpointW },
          clipped: b.clipped,
        };
        return this.dispatchOne(corrected, step as number, interval as { start: number; end: number }, now, {
          correctionW: b.setpointW - b.baseW,
        });
      }),
      ...this.devices.filter((d) => !planned.has(d)).map((d) => this.releaseOne(d, step)),
    ];
    const outcomes = await Promise.all(jobs);
    return outcomes.filter((o): o is DispatchOutcome => o !== undefined);
  }

  /** Hands every held DER back to its device (agent shutdown, dispatch switched off). */
  async releaseAll(): Promise<DispatchOutcome[]> {
    this.states = new Map();
    const outcomes = await Promise.all([...this.held].map((d) => this.releaseOne(d, undefined)));
    return outcomes.filter((o): o is DispatchOutcome => o !== undefined);
  }

  /**
   * Call after every poll cycle. Takes the latest power reading of every dispatched DER into the mean of its
   * interval (readings already taken, same time, are not counted twice), then corrects the batteries of every
   * building with a meter: the deviation from the plan is measured, and when the correction it calls for has moved
   * (by more than half the deadband, or it starts or ends) and the last corrective write is at least
   * `minWriteIntervalMs` old, the new setpoints are written. Resolves with the corrective writes made (none: []);
   * never rejects, so a caller may leave it unawaited.
   */
  sample(now: number = this.options.clock.now()): Promise<CorrectionReport[]> {
    if (this.options.latest === undefined) return Promise.resolve([]);
    this.takeSamples(now);
    const jobs: Promise<CorrectionReport>[] = [];
    for (const state of this.states.values()) {
      if (state.writing || now < state.interval.start || now >= state.interval.end) continue;
      const next = this.correction(state, now);
      const moved = Math.abs(next.placedW - state.correctionW) > this.deadbandW / 2;
      const turned = (next.placedW === 0) !== (state.correctionW === 0);
      const changed = next.w.some((w, i) => Math.round(w) !== state.batteries[i]?.setpointW);
      if (!changed || !(moved || turned) || now - state.writtenAt < this.minWriteIntervalMs) continue;
      jobs.push(this.writeCorrection(state, next, now));
    }
    if (jobs.length === 0) return Promise.resolve([]);
    return Promise.all(jobs).catch((error: unknown) => {
      this.options.logger.error({ err: error }, 'dispatch: a real-time correction failed');
      return [];
    });
  }

  private takeSamples(now: number): void {
    const latest = this.options.latest;
    if (latest === undefined) return;
    for (const tr of this.tracked) {
      if (tr.expected === null || now < tr.start) continue;
      const m = this.measuredPower(tr.device, latest);
      if (m === undefined || m.t < Math.max(tr.since, tr.start) || m.t >= tr.end || m.t <= tr.lastT) continue;
      tr.lastT = m.t;
      tr.samples.push({ measured: m.w, expected: tr.expected });
    }
  }

  /** Every building's real-time correction as it stands (for status and metrics). */
  corrections(): CorrectionStatus[] {
    return [...this.states.values()].map((s) => this.statusOf(s));
  }

  /**
   * Compares every finished interval's setpoint with the mean measured response (taking one last sample first) and
   * appends a `dispatch-deviation` event for each DER that is off by more than the tolerance
   * (max(fraction x rating, minW)). A battery's setpoint is the one in force when each reading was taken, real-time
   * corrections included: a battery that absorbed a surplus as told is not a deviation. Returns every comparison.
   */
  recordDeviations(now: number = this.options.clock.now()): DeviationReport[] {
    this.takeSamples(now);
    const done = this.tracked.filter((t) => t.end <= now);
    this.tracked = this.tracked.filter((t) => t.end > now);
    const reports: DeviationReport[] = [];
    const records: NewRecord[] = [];
    for (const tr of done) {
      if (tr.samples.length === 0) continue;
      const c = tr.device.config;
      const n = tr.samples.length;
      const measured = Math.round(tr.samples.reduce((s, x) => s + x.measured, 0) / n) || 0;
      const setpoint = Math.round(tr.samples.reduce((s, x) => s + x.expected, 0) / n) || 0;
      const deviation = measured - setpoint;
      const toleranceW = Math.round(Math.max(this.tolerance.fraction * ratingW(c), this.tolerance.minW));
      const exceeded = isCap(c.kind) ? deviation > toleranceW : Math.abs(deviation) > toleranceW;
      reports.push({
        building: c.building,
        der: c.der,
        device: c.device,
        kind: c.kind,
        interval: tr.start,
        setpointW: setpoint,
        measuredW: measured,
        deviationW: deviation,
        toleranceW,
        samples: n,
        exceeded,
      });
      if (!exceeded) continue;
      const what = isCap(c.kind) ? `limited to ${setpoint} W` : `set to ${setpoint} W`;
      const message =
        `building '${c.building}' DER '${c.der}' (device '${c.device}'): in the interval from ` +
        `${new Date(tr.start).toISOString()} it was ${what} but measured ${measured} W on average over ${n} ` +
        `readings, ${Math.abs(deviation)} W ${deviation > 0 ? 'above' : 'below'} (tolerance ${toleranceW} W)`;
      this.options.logger.warn({ building: c.building, der: c.der, device: c.device, deviation }, message);
      records.push({
        type: 'event',
        body: {
          source: c.device,
          kind: 'dispatch-deviation',
          message,
          building: c.building,
          der: c.der,
          interval: tr.start,
          stepMs: tr.end - tr.start,
          setpointW: setpoint,
          measuredW: measured,
          deviationW: deviation,
          toleranceW,
          samples: n,
        },
      });
    }
    if (records.length > 0) {
      try {
        this.options.sink.append(records);
      } catch (error) {
        this.options.logger.error({ err: error }, 'could not record dispatch deviations in the ledger');
      }
    }
    return reports;
  }

  private context(now: number, exportLimitW: number | undefined): PlanContext {
    return {
      now,
      socMaxAgeMs: this.options.limits?.socMaxAgeMs ?? 300_000,
      exportLimitW,
      soc: (device) => this.soc(device),
    };
  }

  private soc(device: DispatchDevice): { pct: number; t: number } | undefined {
    const latest = this.options.latest;
    const key = device.measured.soc;
    if (latest === undefined || key === undefined) return undefined;
    const v = this.readings(device.config.device, latest)?.get(key);
    return v !== undefined && typeof v.value === 'number' ? { pct: v.value, t: v.t } : undefined;
  }

  private readings(device: string, latest: LatestReadings): ReadonlyMap<string, PointValue> | undefined {
    try {
      return latest(device);
    } catch {
      // A device the poller does not know reads as unknown: no discharge, no deviation, no correction.
      return undefined;
    }
  }

  private measuredPower(device: DispatchDevice, latest: LatestReadings): { w: number; t: number } | undefined {
    const keys = device.measured.power;
    if (keys.length === 0) return undefined;
    const values = this.readings(device.config.device, latest);
    if (values === undefined) return undefined;
    let w = 0;
    let t = Number.POSITIVE_INFINITY;
    for (const key of keys) {
      const v = values.get(key);
      if (v === undefined || typeof v.value !== 'number' || !Number.isFinite(v.value)) return undefined;
      w += v.value;
      t = Math.min(t, v.t);
    }
    return { w: w * device.measured.sign, t };
  }

  /** The correction state of a building that has a meter and dispatched batteries, with its first correction. */
  private startCorrection(
    building: BuildingSchedule,
    step: number,
    interval: { start: number; end: number },
    planned: readonly PlannedSetpoint[],
    previous: BuildingState | undefined,
    now: number,
  ): BuildingState | undefined {
    const meter = this.options.buildings?.[building.name];
    if (meter === undefined) return undefined;
    const batteries: CorrectedBattery[] = [];
    for (const p of planned) {
      const c = p.device.config;
      if (c.kind !== 'battery' || p.setpoint.kind !== 'battery') continue;
      const baseW = p.setpoint.powerW;
      batteries.push({
        device: p.device,
        config: c,
        plannedW: p.plannedW,
        baseW,
        baseClipped: p.clipped,
        setpointW: baseW,
        clipped: p.clipped,
      });
    }
    if (batteries.length === 0) return undefined;
    const plannedNetW = valueAt(building.netW, step);
    const state: BuildingState = {
      building: building.name,
      meter,
      step,
      interval,
      plannedNetW,
      plannedBatteryW: batteries.reduce((s, b) => s + (Number.isNaN(b.plannedW) ? 0 : b.plannedW), 0),
      batteries,
      // Carried over for the hysteresis: a re-plan does not end a correction that is still called for.
      correctionW: previous?.correctionW ?? 0,
      requestedW: 0,
      writtenAt: now,
      writing: false,
      measured: undefined,
      problem: undefined,
    };
    const first = this.correction(state, now);
    this.place(state, first);
    return state;
  }

  /** Measures the building's deviation from the plan and works out the batteries' corrected setpoints. */
  private correction(state: BuildingState, now: number): CorrectionPlan {
    const base: CorrectionPlan = {
      w: state.batteries.map((b) => b.baseW),
      placedW: 0,
      requestedW: 0,
      clipped: state.batteries.map(() => []),
    };
    const m = this.measure(state, now);
    if ('problem' in m) {
      state.measured = undefined;
      state.problem = m.problem;
      return base;
    }
    state.measured = m;
    state.problem = undefined;
    const baseW = state.batteries.reduce((s, b) => s + b.baseW, 0);
    const requestedW = batteryCorrectionW({
      plannedNetW: state.plannedNetW,
      deviationW: m.deviationW,
      plannedBatteryW: state.plannedBatteryW,
      baseW,
      deadbandW: this.deadbandW,
      correcting: state.correctionW !== 0,
    });
    if (requestedW === 0) return base;
    // Charging back to the backup reserve is never cut: the reserve is for outages, not for the tariff. An unknown
    // or stale SoC counts as below it.
    const refillingReserve = state.batteries.some((b) => {
      if (b.baseW >= 0) return false;
      const soc = this.soc(b.device);
      const fresh = soc !== undefined && Number.isFinite(soc.pct) && now - soc.t <= this.maxAgeMs;
      return !fresh || soc.pct < b.config.reservePct;
    });
    if (requestedW > 0 && refillingReserve) return base;
    const items = state.batteries.map((b) => {
      const soc = this.soc(b.device);
      const max = b.config.socMaxPct ?? 100;
      const fresh = soc !== undefined && Number.isFinite(soc.pct) && now - soc.t <= this.maxAgeMs;
      return { baseW: b.baseW, chargeMaxW: chargeMaxW(b.device, b.config), full: fresh && soc.pct >= max };
    });
    const { w, placedW } = distributeCorrection(items, requestedW);
    const short = Math.abs(placedW) < Math.abs(requestedW) - 0.5;
    const clipped = items.map((it, i) => {
      if (!short || requestedW > 0) return [];
      if (it.full) return ['soc-max' as const];
      return Math.abs((w[i] as number) + it.chargeMaxW) < 0.5 ? ['power-limit' as const] : [];
    });
    return { w, placedW, requestedW, clipped };
  }

  private measure(
    state: BuildingState,
    now: number,
  ): { netW: number; batteryW: number; deviationW: number } | { problem: string } {
    const latest = this.options.latest;
    const where = `building '${state.building}'`;
    if (latest === undefined) return { problem: `${where}: no readings to correct by` };
    if (!Number.isFinite(state.plannedNetW)) {
      return { problem: `${where}: the schedule has no net exchange for this interval` };
    }
    const { device, point } = state.meter;
    const v = this.readings(device, latest)?.get(point);
    if (v === undefined || typeof v.value !== 'number' || !Number.isFinite(v.value)) {
      return { problem: `${where}: no reading of meter '${device}' point '${point}'; check the meter is polled` };
    }
    if (now - v.t > this.maxAgeMs) {
      return { problem: `${where}: the reading of meter '${device}' is ${Math.round((now - v.t) / 1000)} s old` };
    }
    let batteryW = 0;
    for (const b of state.batteries) {
      const p = this.measuredPower(b.device, latest);
      const name = `battery '${b.config.der}' (device '${b.config.device}')`;
      if (p === undefined) return { problem: `${where}: no power reading of ${name}` };
      if (now - p.t > this.maxAgeMs) {
        return { problem: `${where}: the power reading of ${name} is ${Math.round((now - p.t) / 1000)} s old` };
      }
      batteryW += p.w;
    }
    const netW = v.value * (state.meter.sign ?? 1);
    return { netW, batteryW, deviationW: netW + batteryW - state.plannedBatteryW - state.plannedNetW };
  }

  /** Takes a computed correction as the one in force. */
  private place(state: BuildingState, next: CorrectionPlan): void {
    const wasCorrecting = state.correctionW !== 0;
    state.batteries.forEach((b, i) => {
      b.setpointW = Math.round(next.w[i] as number) || 0;
      b.clipped = [...b.baseClipped, ...(next.clipped[i] ?? [])];
    });
    state.correctionW = state.batteries.reduce((s, b) => s + b.setpointW - b.baseW, 0);
    state.requestedW = Math.round(next.requestedW) || 0;
    if (wasCorrecting !== (state.correctionW !== 0)) {
      const d = state.measured?.deviationW;
      this.options.logger.info(
        { building: state.building, correctionW: state.correctionW, deviationW: d, plannedNetW: state.plannedNetW },
        state.correctionW === 0
          ? `dispatch: building '${state.building}' back on plan`
          : `dispatch: building '${state.building}' deviates from plan by ${Math.round(d ?? 0)} W; batteries ` +
              `corrected by ${state.correctionW} W`,
      );
    }
  }

  private async writeCorrection(state: BuildingState, next: CorrectionPlan, now: number): Promise<CorrectionReport> {
    const before = state.batteries.map((b) => b.setpointW);
    this.place(state, next);
    state.writtenAt = now;
    state.writing = true;
    try {
      const jobs = state.batteries.map(async (b, i): Promise<DispatchOutcome | undefined> => {
        if (b.setpointW === before[i] || !this.held.has(b.device)) return undefined;
        const setpoint: DerSetpoint = { kind: 'battery', powerW: b.setpointW };
        this.track(b.device, state.interval, b.setpointW, now);
        const writes = await this.send(b.device, writesFor(b.device, setpoint));
        return {
          building: b.config.building,
          der: b.config.der,
          kind: 'battery',
          device: b.config.device,
          step: state.step,
          plannedW: b.plannedW,
          setpoint,
          clipped: b.clipped,
          writes,
          status: outcomeStatus(writes),
          correctionW: b.setpointW - b.baseW,
        };
      });
      const outcomes = (await Promise.all(jobs)).filter((o): o is DispatchOutcome => o !== undefined);
      return { ...this.statusOf(state), outcomes };
    } finally {
      state.writing = false;
    }
  }

  private statusOf(s: BuildingState): CorrectionStatus {
    return {
      building: s.building,
      interval: s.interval.start,
      plannedNetW: s.plannedNetW,
      plannedBatteryW: s.plannedBatteryW,
      measuredNetW: s.measured?.netW,
      measuredBatteryW: s.measured?.batteryW,
      deviationW: s.measured === undefined ? undefined : Math.round(s.measured.deviationW),
      correctionW: s.correctionW,
      requestedW: s.requestedW,
      setpoints: s.batteries.map((b) => ({ der: b.config.der, device: b.config.device, powerW: b.setpointW })),
      writtenAt: s.writtenAt,
      ...(s.problem === undefined ? {} : { problem: s.problem }),
    };
  }

  private target(device: DispatchDevice, control: SetpointControl): SetpointTarget {
    return { device: device.config.device, bus: device.bus, unit: device.unit, control };
  }

  /** Writes a batch to one device after any batch already under way to it, so a later setpoint lands last. */
  private send(device: DispatchDevice, writes: readonly SetpointWrite[]): Promise<WriteResult[]> {
    const previous = this.queues.get(device) ?? Promise.resolve();
    const next = previous.then(() => this.sendNow(device, writes));
    const settled = next.catch(() => undefined);
    this.queues.set(device, settled);
    void settled.then(() => {
      if (this.queues.get(device) === settled) this.queues.delete(device);
    });
    return next;
  }

  private async sendNow(device: DispatchDevice, writes: readonly SetpointWrite[]): Promise<WriteResult[]> {
    const results: WriteResult[] = [];
    // In order, each read back before the next: the order is what keeps a battery from reversing between writes.
    for (const w of writes) {
      const outcome = await this.options.keeper.set(this.target(device, w.control), w.value);
      results.push(
        outcome === undefined
          ? { point: w.control.point.key, value: w.value, status: 'failed', problem: 'the write did not go through' }
          : {
              point: w.control.point.key,
              value: w.value,
              status: outcome.ok ? 'ok' : 'mismatch',
              readBack: outcome.readBack,
              ...(outcome.problem === undefined ? {} : { problem: outcome.problem }),
            },
      );
    }
    return results;
  }

  private async dispatchOne(
    plan: PlannedSetpoint,
    step: number,
    interval: { start: number; end: number },
    now: number,
    extra: { correctionW?: number } = {},
  ): Promise<DispatchOutcome> {
    const { device, setpoint } = plan;
    const c = device.config;
    this.held.add(device);
    this.track(device, interval, expectedW(setpoint), now);
    const writes = await this.send(device, writesFor(device, setpoint));
    if (plan.clipped.length > 0) {
      this.options.logger.info(
        { building: c.building, der: c.der, planned: plan.plannedW, setpoint, clipped: plan.clipped },
        `dispatch: DER '${c.der}' of building '${c.building}' clipped (${plan.clipped.join(', ')})`,
      );
    }
    return {
      building: c.building,
      der: c.der,
      kind: c.kind,
      device: c.device,
      step,
      plannedW: plan.plannedW,
      setpoint,
      clipped: plan.clipped,
      writes,
      status: outcomeStatus(writes),
      ...extra,
    };
  }

  private track(
    device: DispatchDevice,
    interval: { start: number; end: number },
    expected: number | null,
    now: number,
  ) {
    const current = this.tracked.find((t) => t.device === device && t.start === interval.start);
    if (current !== undefined) {
      current.expected = expected;
      current.since = now;
      return;
    }
    this.tracked.push({
      device,
      start: interval.start,
      end: interval.end,
      expected,
      since: now,
      lastT: -1,
      samples: [],
    });
  }

  private async releaseOne(device: DispatchDevice, step: number | undefined): Promise<DispatchOutcome | undefined> {
    if (!this.held.has(device)) return undefined;
    this.held.delete(device);
    for (const t of this.tracked) if (t.device === device) t.expected = null;
    const c = device.config;
    const writes = await this.send(device, handBackWrites(device));
    for (const control of controlsOf(device)) this.options.keeper.release(c.device, control.point.key);
    return {
      building: c.building,
      der: c.der,
      kind: c.kind,
      device: c.device,
      step,
      plannedW: undefined,
      setpoint: undefined,
      clipped: [],
      writes,
      status: 'released',
    };
  }
}
