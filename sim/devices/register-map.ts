/**
 * The registers of one simulated device, built from the same device profiles the agent reads with, so the agent and
 * the simulator cannot disagree about an address, a type or a scale factor.
 *
 * Layout:
 * - SunSpec profiles are chained as a SunSpec device does it: "SunS" (0x5375 0x6E53) at `base` (default 40000), then
 *   each model's ID, L and points in the order given (sunspec-1, the common model, first), then the end model
 *   0xFFFF with length 0.
 * - Absolute profiles (eastron-sdm630 in input registers, alfen-eve, victron-vebus) keep their own addresses. Short
 *   gaps between their points read as 0, as those devices answer reads through unused registers inside a block;
 *   longer gaps are unmapped and answer "illegal data address".
 *
 * Values: every point starts "not implemented" (its SunSpec sentinel; NaN for floats; 0 where the profile has no
 * sentinel); the points the physics can fill are written by updateFromSnapshot(). Scale factors are fixed when the
 * device is built: a preferred resolution per unit (W_SF 0, A_SF -2, V_SF -1, Hz_SF -2, WH_SF 0, ...), made coarser
 * only when the device's rating would not fit the register. A value that still does not fit saturates, as a real
 * meter's display does, instead of wrapping.
 *
 * Writes go through the profile: only points with `access: rw` are writable registers; a write is decoded with the
 * codec (scale factor included), refused with exception 3 (illegal data value) when it lies outside the point's
 * range, covers only part of a multi-register point, or the physics refuse it, and otherwise applied to the physics
 * (power limit, power factor, storage rates, ESS setpoint, charging current). Writes to other rw points (settings,
 * the Modbus address) are stored and read back, and change nothing else.
 */
import {
  CodecError,
  checkWritable,
  decodePoint,
  encodeRaw,
  encodeValue,
  integerRange,
  isIntegerType,
  registerCount,
} from '../../hardware/codec.js';
import type { PlacedPoint } from '../../hardware/modbus/types.js';
import { placeProfile } from '../../hardware/profile/place.js';
import type { DecodedValue, PointDef, Profile } from '../../hardware/profile/types.js';
import { ArrayRegisterBank, type RegisterBank, type RegisterRange } from '../modbus/bank.js';
import type { BatterySnapshot } from '../physics/battery.js';
import type { EvSnapshot } from '../physics/ev.js';
import { lineVoltages, type Phases } from '../physics/grid.js';
import type { PvSnapshot } from '../physics/pv.js';
import type {
  DeviceDescription,
  DeviceSnapshot,
  SimDeviceKind,
  SimSite,
  SiteDescription,
  SiteSnapshot,
} from '../physics/site.js';

/** Where SunSpec devices put "SunS" unless told otherwise. */
export const SUNSPEC_DEFAULT_BASE = 40000;
/** "SunS" as two registers. */
const SUNS_MARKER = [0x5375, 0x6e53] as const;
const END_MODEL = 0xffff;
/** SunSpec pads and unused registers inside a model read as 0x8000. */
const SUNSPEC_PAD = 0x8000;
/** Gaps up to this many registers between the points of an absolute profile read as 0 instead of being unmapped. */
const MAX_FILLED_GAP = 16;

/** What the SunSpec common model (1) says about the device. Strings longer than their registers are cut. */
export interface SimDeviceIdentity {
  /** Mn. Default "mgmc-sim". */
  readonly manufacturer?: string;
  /** Md. Default "sim-<kind>". */
  readonly model?: string;
  /** SN. Default "SIM-<device name>". */
  readonly serial?: string;
  /** Vr. Default "1.0.0". */
  readonly version?: string;
  /** Opt. Default empty. */
  readonly options?: string;
}

export interface SimDeviceRegistersOptions {
  /** The site the device lives in; accepted writes are applied to it. */
  readonly site: SimSite;
  /** The device's name in the site. */
  readonly name: string;
  /** Register maps in order. SunSpec models are chained in this order; sunspec-1 must be the first of them. */
  readonly profiles: readonly Profile[];
  /** Address of "SunS". Default 40000. */
  readonly base?: number;
  /** The unit id the device is served as; fills SunSpec DA. Default 1. */
  readonly unit?: number;
  readonly identity?: SimDeviceIdentity;
  /**
   * The description the site was built from. Ratings (which set the scale factors), phase counts and the EV
   * charger's safe current come from it; without it they are taken from the first snapshot.
   */
  readonly description?: SiteDescription;
  /** Simulated time of a write, ms. Default the site's last step; a write applies at max(this, the site's time). */
  readonly now?: () => number;
  /** Validity of an Alfen MaxCurrent write before the station falls back to its safe current, s. Default 60. */
  readonly evLimitValidityS?: number;
  /** How long a Victron ESS setpoint holds without being re-sent, s. Default 60. */
  readonly essSetpointTimeoutS?: number;
}

/** Where one SunSpec model sits on the device. */
export interface PlacedModel {
  readonly id: number;
  readonly profileId: string;
  /** Address of the model's ID register. */
  readonly address: number;
  /** Its L: registers after ID and L. */
  readonly length: number;
}

/** The device's map: the SunSpec chain (if any) and the absolute profiles. */
export interface DeviceLayout {
  readonly sunspec?: {
    /** Address of "SunS". */
    readonly base: number;
    readonly models: readonly PlacedModel[];
    /** Address of the end model's ID register (0xFFFF; its L, 0, follows). */
    readonly endAddress: number;
  };
  /** Ids of the absolute profiles. */
  readonly absolute: readonly string[];
}

/** Profiles each device kind is served with when the site file names none. */
export function defaultProfiles(kind: SimDeviceKind, transport: 'tcp' | 'rtu'): string[] {
  switch (kind) {
    case 'pv-inverter':
      return ['sunspec-1', 'sunspec-103', 'sunspec-120', 'sunspec-123'];
    case 'battery':
      return ['sunspec-1', 'sunspec-103', 'sunspec-120', 'sunspec-124'];
    case 'ev-charger':
      return ['alfen-eve'];
    case 'meter':
    case 'building-load':
      // An RS-485 meter is typically a plain energy meter; on the LAN, a SunSpec meter.
      return transport === 'rtu' ? ['eastron-sdm630'] : ['sunspec-1', 'sunspec-203'];
  }
}

/** SunSpec inverter models a battery inverter (hybrid) also serves; 123 stays with PV, 124 is the storage control. */
const INVERTER_SIDE_MODELS: ReadonlySet<number> = new Set([101, 102, 103, 120, 121]);

/**
 * Why `profile` cannot describe a device of `kind`, or undefined when it can. Any device may be served through a
 * meter profile (it then reports its own flow, import positive), as a sub-meter in front of it would.
 */
export function profileMismatch(kind: SimDeviceKind, profile: Profile): string | undefined {
  if (profile.class === 'common' || profile.class === 'meter') return undefined;
  if (profile.class === kind) return undefined;
  if (kind === 'battery' && profile.sunspec !== undefined && INVERTER_SIDE_MODELS.has(profile.sunspec.model)) {
    return undefined;
  }
  const hint =
    kind === 'battery' && profile.sunspec?.model === 123
      ? '; a battery takes its setpoints through sunspec-124'
      : `; use a ${kind} or meter profile`;
  return `profile ${profile.id} describes a ${profile.class}, not a ${kind}${hint}`;
}

/**
 * The largest power a device handles, W, from its description: what its registers must be able to hold. A meter
 * carries what it sees.
 */
export function ratedPowerW(description: SiteDescription, name: string, seen: readonly string[] = []): number {
  const device = description.devices.find((d) => d.name === name);
  if (device === undefined || seen.includes(name)) return 0;
  const nominalV = description.grid?.nominalVoltageV ?? 230;
  switch (device.kind) {
    case 'pv-inverter':
      return device.params.acRatingW;
    case 'battery':
      return Math.max(device.params.maxChargeW, device.params.maxDischargeW);
    case 'building-load':
      return device.params.peakW;
    case 'ev-charger':
      return device.params.maxCurrentA * (device.params.phases ?? 3) * nominalV * 1.1;
    case 'meter':
      return device.params.sees.reduce((sum, n) => sum + ratedPowerW(description, n, [...seen, name]), 0);
  }
}

function ratedFromSnapshot(snapshot: DeviceSnapshot): number {
  switch (snapshot.kind) {
    case 'pv-inverter':
      return snapshot.acRatingW;
    case 'battery':
      return Math.max(snapshot.maxChargeW, snapshot.maxDischargeW);
    case 'ev-charger':
      return snapshot.maxCurrentA * 3 * 253;
    default:
      // Loads and meters do not know their size; 50 kW covers a building connection.
      return 50_000;
  }
}

type Value = number | string | null;

/** Engineering values by point name, for one profile. */
type Values = Map<string, Value>;

interface Ratings {
  readonly powerW: number;
  readonly capacityWh: number;
  readonly nominalVoltageV: number;
  readonly nominalFrequencyHz: number;
  readonly phases: 1 | 3;
  readonly evSafeCurrentA: number;
}

/** A register image under construction: address -> value and writability, per table. */
type Image = Map<number, { value: number; writable: boolean; owner: string }>;

/** The registers of one simulated device; a RegisterBank the Modbus servers serve. */
export class SimDeviceRegisters implements RegisterBank {
  readonly name: string;
  readonly kind: SimDeviceKind;
  readonly unit: number;
  readonly profiles: readonly Profile[];
  readonly layout: DeviceLayout;
  /** Every point at its absolute address, keyed `<profile id>.<point name>`. */
  readonly points: readonly PlacedPoint[];
  private readonly byKey = new Map<string, PlacedPoint>();
  private readonly bank: ArrayRegisterBank;
  /** Scale factor values by the address of their sunssf register (per function code: SunSpec uses 3 only). */
  private readonly sfByAddress = new Map<number, number>();
  private readonly sfByKey = new Map<string, number>();
  private readonly rwPoints: PlacedPoint[] = [];
  private readonly site: SimSite;
  private readonly now: () => number;
  private readonly ratings: Ratings;
  private readonly evLimitValidityS: number;
  private readonly essSetpointTimeoutS: number;

  constructor(options: SimDeviceRegistersOptions) {
    const { site, name } = options;
    this.site = site;
    this.name = name;
    const device = site.device(name);
    this.kind = device.kind;
    this.unit = options.unit ?? 1;
    this.profiles = [...options.profiles];
    this.now = options.now ?? (() => site.time);
    this.evLimitValidityS = options.evLimitValidityS ?? 60;
    this.essSetpointTimeoutS = options.essSetpointTimeoutS ?? 60;
    const what = `simulated device ${name}`;
    if (this.profiles.length === 0) throw new RangeError(`${what}: give at least one profile`);

    const ids = new Set<string>();
    for (const profile of this.profiles) {
      if (ids.has(profile.id)) throw new RangeError(`${what}: profile ${profile.id} is listed twice`);
      ids.add(profile.id);
      const mismatch = profileMismatch(this.kind, profile);
      if (mismatch !== undefined) throw new RangeError(`${what}: ${mismatch}`);
    }

    const first = site.snapshot().devices[name];
    if (first === undefined) throw new RangeError(`${what}: the site has no snapshot of it`);
    this.ratings = this.rate(options.description, first);

    // Place the SunSpec chain, then the absolute profiles.
    const sunspecProfiles = this.profiles.filter((p) => p.addressing === 'sunspec-model');
    const placements = new Map<string, number>();
    let sunspecLayout: DeviceLayout['sunspec'];
    if (sunspecProfiles.length > 0) {
      if (sunspecProfiles[0]?.sunspec?.model !== 1) {
        throw new RangeError(
          `${what}: the SunSpec chain must start with the common model; put sunspec-1 before ${sunspecProfiles[0]?.id}`,
        );
      }
      const base = options.base ?? SUNSPEC_DEFAULT_BASE;
      let address = base + 2;
      const models: PlacedModel[] = [];
      for (const profile of sunspecProfiles) {
        const spec = profile.sunspec as { model: number; length: number };
        models.push({ id: spec.model, profileId: profile.id, address, length: spec.length });
        placements.set(profile.id, address);
        address += 2 + spec.length;
      }
      if (!Number.isInteger(base) || base < 0 || address + 2 > 0x10000) {
        throw new RangeError(`${what}: a SunSpec chain at base ${base} runs past register 65535; use base 40000`);
      }
      sunspecLayout = { base, models, endAddress: address };
    }
    this.layout = {
      ...(sunspecLayout === undefined ? {} : { sunspec: sunspecLayout }),
      absolute: this.profiles.filter((p) => p.addressing === 'absolute').map((p) => p.id),
    };

    const points: PlacedPoint[] = [];
    for (const profile of this.profiles) {
      points.push(...placeProfile(profile, placements.get(profile.id) ?? 0, { keyPrefix: profile.id }));
    }
    this.points = points;
    for (const p of points) {
      this.byKey.set(p.key, p);
      if (p.point.access === 'rw') this.rwPoints.push(p);
    }

    const holding: Image = new Map();
    const input: Image = new Map();
    const claim = (fn: 3 | 4, address: number, value: number, writable: boolean, owner: string) => {
      const image = fn === 3 ? holding : input;
      const taken = image.get(address);
      if (taken !== undefined && taken.owner !== owner) {
        throw new RangeError(
          `${what}: ${owner} and ${taken.owner} both use ${fn === 3 ? 'holding' : 'input'} register ${address}; ` +
            'these profiles cannot be served by one device',
        );
      }
      image.set(address, { value, writable, owner });
    };
    if (sunspecLayout !== undefined) {
      claim(3, sunspecLayout.base, SUNS_MARKER[0], false, 'SunSpec marker');
      claim(3, sunspecLayout.base + 1, SUNS_MARKER[1], false, 'SunSpec marker');
      for (const model of sunspecLayout.models) {
        for (let i = 0; i < model.length + 2; i++) claim(3, model.address + i, SUNSPEC_PAD, false, model.profileId);
      }
      claim(3, sunspecLayout.endAddress, END_MODEL, false, 'SunSpec end model');
      claim(3, sunspecLayout.endAddress + 1, 0, false, 'SunSpec end model');
    }
    for (const profile of this.profiles) {
      if (profile.addressing !== 'absolute') continue;
      const mine = points.filter((p) => p.profileId === profile.id);
      for (const fn of [3, 4] as const) {
        const used = mine
          .filter((p) => p.point.function === fn)
          .flatMap((p) => Array.from({ length: registerCount(p.point) }, (_, i) => p.address + i))
          .sort((a, b) => a - b);
        for (const [i, address] of used.entries()) {
          claim(fn, address, 0, false, profile.id);
          const next = used[i + 1];
          if (next !== undefined && next - address - 1 <= MAX_FILLED_GAP) {
            for (let gap = address + 1; gap < next; gap++) claim(fn, gap, 0, false, profile.id);
          }
        }
      }
    }
    for (const p of this.rwPoints) {
      for (let i = 0; i < registerCount(p.point); i++) {
        const cell = holding.get(p.address + i);
        if (cell !== undefined) cell.writable = true;
      }
    }
    this.bank = new ArrayRegisterBank({
      holding: toRanges(holding),
      input: toRanges(input),
      onWrite: (start, values) => this.onWrite(start, values.length),
    });

    this.chooseScaleFactors();
    for (const p of points) {
      if (p.point.type === 'sunssf') continue;
      this.put(p, null);
    }
    for (const model of sunspecLayout?.models ?? []) {
      this.bank.set(3, model.address, [model.id, model.length]);
    }
    this.writeInitialValues(options.identity);
    this.updateFromSnapshot(first);
  }

  read(fn: 3 | 4, start: number, count: number): number[] | { exception: number } {
    return this.bank.read(fn, start, count);
  }

  write(start: number, values: number[]): { exception: number } | undefined {
    return this.bank.write(start, values);
  }

  /**
   * A point by key (`sunspec-103.W`) or by bare name when only one profile of the device has it (`W` on a meter
   * with one profile). Throws naming the near keys.
   */
  point(key: string): PlacedPoint {
    const exact = this.byKey.get(key);
    if (exact !== undefined) return exact;
    const named = this.points.filter((p) => p.point.name === key);
    if (named.length === 1) return named[0] as PlacedPoint;
    if (named.length > 1) {
      throw new RangeError(
        `device ${this.name}: point ${key} is in several profiles; name one of ${named.map((p) => p.key).join(', ')}`,
      );
    }
    const near = this.points.filter((p) => p.point.name.toLowerCase() === key.toLowerCase()).map((p) => p.key);
    const hint = near.length > 0 ? `; did you mean ${near.join(' or ')}?` : '';
    throw new RangeError(`device ${this.name} has no point ${key}${hint}`);
  }

  /** The scale factor chosen for a sunssf point (key or bare name), e.g. `W_SF` -> 0. */
  scaleFactor(key: string): number {
    const p = this.point(key);
    const sf = this.sfByKey.get(p.key);
    if (sf === undefined) throw new RangeError(`device ${this.name}: ${p.key} is not a scale factor`);
    return sf;
  }

  /** A point's value as the agent would decode it from the registers, scale factor included. */
  value(key: string): DecodedValue {
    const p = this.point(key);
    const words = this.bank.get(p.point.function, p.address, registerCount(p.point));
    if (p.point.sf === undefined) return decodePoint(p.point, words);
    const sfWord = this.bank.get(3, p.sfAddress as number, 1)[0] as number;
    const sf = sfWord === 0x8000 ? null : (sfWord << 16) >> 16;
    return decodePoint(p.point, words, sf);
  }

  /** Writes the device's present state (power, energy, voltage, current, frequency, SoC, states) into its registers. */
  updateFromSnapshot(snapshot: SiteSnapshot | DeviceSnapshot): void {
    const own = 'devices' in snapshot ? snapshot.devices[this.name] : snapshot;
    if (own === undefined) throw new RangeError(`the snapshot has no device ${this.name}`);
    if (own.kind !== this.kind || own.name !== this.name) {
      throw new RangeError(`device ${this.name} (${this.kind}) cannot show the snapshot of ${own.name} (${own.kind})`);
    }
    for (const profile of this.profiles) {
      const values = this.liveValues(profile, own);
      for (const [pointName, value] of values) {
        const p = this.byKey.get(`${profile.id}.${pointName}`);
        if (p !== undefined) this.put(p, value);
      }
    }
    this.dropExpiredEnables(own);
  }

  /** Ratings from the description, or from the first snapshot when there is none. */
  private rate(description: SiteDescription | undefined, snapshot: DeviceSnapshot): Ratings {
    const device: DeviceDescription | undefined = description?.devices.find((d) => d.name === this.name);
    const powerW = description !== undefined && device !== undefined ? ratedPowerW(description, this.name) : 0;
    const battery = snapshot.kind === 'battery' ? snapshot : undefined;
    const ev = snapshot.kind === 'ev-charger' ? snapshot : undefined;
    let phases: 1 | 3 = 3;
    if (device !== undefined && 'phases' in device.params && device.params.phases === 1) phases = 1;
    return {
      powerW: powerW > 0 ? powerW : ratedFromSnapshot(snapshot),
      capacityWh: battery?.capacityWh ?? 0,
      nominalVoltageV: this.site.grid.nominalVoltageV,
      nominalFrequencyHz: this.site.grid.nominalFrequencyHz,
      phases,
      evSafeCurrentA:
        device?.kind === 'ev-charger'
          ? (device.params.fallbackCurrentA ?? device.params.maxCurrentA)
          : (ev?.maxCurrentA ?? 0),
    };
  }

  /**
   * Fixes each scale factor: the unit's preferred resolution, made coarser (sf + 1 at a time) until the largest value
   * the device can produce fits every integer register that uses it.
   */
  private chooseScaleFactors(): void {
    for (const sfPoint of this.points.filter((p) => p.point.type === 'sunssf')) {
      const users = this.points.filter((p) => p.profileId === sfPoint.profileId && p.point.sf === sfPoint.point.name);
      let sf = preferredScaleFactor(users.map((u) => u.point));
      for (const user of users) {
        const { type } = user.point;
        // Accumulators wrap by design; floats need no scale factor to fit.
        if (!isIntegerType(type) || type.startsWith('acc')) continue;
        const largest = this.largestValue(user.point);
        const max = Number(integerRange(type)[1]) - 1;
        while (sf < 10 && largest / (user.point.scale * 10 ** sf) > max) sf++;
      }
      this.sfByAddress.set(sfPoint.address, sf);
      this.sfByKey.set(sfPoint.key, sf);
      this.bank.set(3, sfPoint.address, encodeRaw(sfPoint.point, sf));
    }
  }

  /** The largest magnitude a point can show on this device, in its unit. */
  private largestValue(point: PointDef): number {
    const { powerW, capacityWh } = this.ratings;
    switch (point.unit) {
      case 'W':
      case 'VA':
      case 'var':
        return 1.25 * powerW;
      case 'A':
        // Sum of the phase currents of the whole rating at a low line voltage.
        return (1.25 * powerW) / 200;
      case 'V':
        return 1000;
      case 'Hz':
        return 70;
      case 'Wh':
        return capacityWh;
      case 'Ah':
        return capacityWh / 300;
      case 'C':
        return 150;
      default:
        return 100;
    }
  }

  /** Encodes an engineering value into a point's registers (null: not implemented). */
  private put(p: PlacedPoint, value: Value): void {
    const sf = p.sfAddress === undefined ? undefined : this.sfByAddress.get(p.sfAddress);
    this.bank.set(p.point.function, p.address, encodeFor(p.point, value, sf));
  }

  /** The value a client wrote into a point, as the device decodes it (scale factor from the device's own register). */
  private written(p: PlacedPoint): Value {
    const words = this.bank.get(p.point.function, p.address, registerCount(p.point));
    const sf = p.sfAddress === undefined ? undefined : this.sfByAddress.get(p.sfAddress);
    return decodePoint(p.point, words, sf);
  }

  private writtenNumber(profileId: string, name: string): number | undefined {
    const p = this.byKey.get(`${profileId}.${name}`);
    if (p === undefined) return undefined;
    const v = this.written(p);
    return typeof v === 'number' ? v : undefined;
  }

  /**
   * After the bank stored a write of `count` registers at `start`: checks every rw point it touched and applies the
   * controls to the physics. Returns an exception code to refuse (the bank then rolls the registers back).
   */
  private onWrite(start: number, count: number): number | undefined {
    const end = start + count;
    const touched = this.rwPoints.filter((p) => p.address < end && p.address + registerCount(p.point) > start);
    for (const p of touched) {
      // A float or 32-bit setpoint written half would be a value nobody sent.
      if (p.address < start || p.address + registerCount(p.point) > end) return 3;
      const value = this.written(p);
      if (typeof value !== 'number') return 3;
      try {
        checkWritable(p.point, value);
      } catch {
        return 3;
      }
      if (!validControlValue(p.point.name, value)) return 3;
    }
    const names = new Set(touched.map((p) => p.key));
    try {
      this.applyControls(names);
    } catch (error) {
      // The physics refuse what the device would refuse (a power factor of 0, a contradictory window).
      if (error instanceof RangeError) return 3;
      throw error;
    }
    return undefined;
  }

  /** The simulated time a write takes effect: now, but never before the site's last step. */
  private writeTime(): number {
    return Math.max(this.site.time, this.now());
  }

  private applyControls(keys: ReadonlySet<string>): void {
    const hit = (profileId: string, ...names: string[]) => names.some((n) => keys.has(`${profileId}.${n}`));
    for (const profile of this.profiles) {
      const id = profile.id;
      const model = profile.sunspec?.model;
      const num = (name: string, fallback: number) => this.writtenNumber(id, name) ?? fallback;
      if (model === 123 && this.kind === 'pv-inverter') {
        if (hit(id, 'WMaxLimPct', 'WMaxLim_Ena')) {
          this.site.setPvPowerLimit(
            this.name,
            {
              pct: num('WMaxLimPct', 100),
              enabled: num('WMaxLim_Ena', 0) === 1,
              revertTimeoutS: num('WMaxLimPct_RvrtTms', 0),
            },
            this.writeTime(),
          );
        }
        if (hit(id, 'OutPFSet', 'OutPFSet_Ena')) {
          this.site.setPvPowerFactor(
            this.name,
            {
              pf: num('OutPFSet', 1),
              enabled: num('OutPFSet_Ena', 0) === 1,
              revertTimeoutS: num('OutPFSet_RvrtTms', 0),
            },
            this.writeTime(),
          );
        }
      } else if (model === 124 && this.kind === 'battery') {
        if (hit(id, 'StorCtl_Mod', 'InWRte', 'OutWRte')) {
          this.site.setBatteryRates(
            this.name,
            {
              storCtlMod: num('StorCtl_Mod', 0),
              inWRtePct: num('InWRte', 100),
              outWRtePct: num('OutWRte', 100),
              revertTimeoutS: num('InOutWRte_RvrtTms', 0),
            },
            this.writeTime(),
          );
        }
      } else if (id === 'victron-vebus' && this.kind === 'battery') {
        if (hit(id, 'EssWphA', 'EssWphB', 'EssWphC')) {
          // The ESS setpoint is power taken from AC-in (charging positive); the battery model counts discharge positive.
          const w = num('EssWphA', 0) + num('EssWphB', 0) + num('EssWphC', 0);
          this.site.setBatteryPower(this.name, { w: -w, revertTimeoutS: this.essSetpointTimeoutS }, this.writeTime());
        }
        if (hit(id, 'EssDisableCharge', 'EssDisableFeedIn')) {
          const noCharge = num('EssDisableCharge', 0) === 1;
          const noFeedIn = num('EssDisableFeedIn', 0) === 1;
          this.site.setBatteryRates(
            this.name,
            { storCtlMod: (noCharge ? 1 : 0) | (noFeedIn ? 2 : 0), inWRtePct: 0, outWRtePct: 0 },
            this.writeTime(),
          );
        }
      } else if (profile.class === 'ev-charger' && this.kind === 'ev-charger') {
        if (hit(id, 'MaxCurrent')) {
          this.site.setEvLimit(
            this.name,
            { currentA: num('MaxCurrent', 0), revertTimeoutS: this.evLimitValidityS },
            this.writeTime(),
          );
        }
      }
    }
  }

  /**
   * A setpoint whose revert timer ran out no longer applies; the device shows that by clearing its enable (SunSpec
   * WMaxLim_Ena, OutPFSet_Ena, StorCtl_Mod), so a read-back tells the agent it must send it again.
   */
  private dropExpiredEnables(snapshot: DeviceSnapshot): void {
    const clear = (key: string) => {
      const p = this.byKey.get(key);
      if (p !== undefined && this.written(p) !== 0) this.put(p, 0);
    };
    for (const profile of this.profiles) {
      const model = profile.sunspec?.model;
      if (model === 123 && snapshot.kind === 'pv-inverter') {
        if (snapshot.powerLimit !== null && !snapshot.powerLimit.active) clear(`${profile.id}.WMaxLim_Ena`);
        if (snapshot.powerFactorSetpoint !== null && !snapshot.powerFactorSetpoint.active) {
          clear(`${profile.id}.OutPFSet_Ena`);
        }
      } else if (model === 124 && snapshot.kind === 'battery') {
        if (snapshot.rateSetpoint !== null && !snapshot.rateSetpoint.active) clear(`${profile.id}.StorCtl_Mod`);
      }
    }
  }

  /** Values set once: identity, nameplate, settings and the controls' defaults. */
  private writeInitialValues(identity: SimDeviceIdentity = {}): void {
    const r = this.ratings;
    const snapshot = this.site.snapshot().devices[this.name] as DeviceSnapshot;
    for (const profile of this.profiles) {
      const values: Values = new Map();
      const model = profile.sunspec?.model;
      if (model === 1) {
        values.set('Mn', identity.manufacturer ?? 'mgmc-sim');
        values.set('Md', identity.model ?? `sim-${this.kind}`);
        values.set('Opt', identity.options ?? '');
        values.set('Vr', identity.version ?? '1.0.0');
        values.set('SN', identity.serial ?? `SIM-${this.name}`);
        values.set('DA', Math.min(247, Math.max(1, this.unit)));
      } else if (model === 120) {
        values.set('DERTyp', this.kind === 'battery' ? 82 : 4);
        values.set('WRtg', r.powerW);
        values.set('VARtg', r.powerW);
        values.set('ARtg', r.powerW / (r.nominalVoltageV * r.phases));
        if (snapshot.kind === 'battery') {
          values.set('WHRtg', snapshot.capacityWh);
          values.set('AhrRtg', snapshot.capacityWh / nominalPackVoltage(snapshot));
          values.set('MaxChaRte', snapshot.maxChargeW);
          values.set('MaxDisChaRte', snapshot.maxDischargeW);
        }
      } else if (model === 121) {
        values.set('WMax', r.powerW);
        values.set('VAMax', r.powerW);
        values.set('VRef', r.nominalVoltageV);
        values.set('VRefOfs', 0);
        // EN 50160: ±10 % of nominal.
        values.set('VMax', r.nominalVoltageV * 1.1);
        values.set('VMin', r.nominalVoltageV * 0.9);
        values.set('ECPNomHz', r.nominalFrequencyHz);
      } else if (model === 123) {
        for (const name of ['Conn_WinTms', 'Conn_RvrtTms', 'WMaxLimPct_WinTms', 'WMaxLimPct_RvrtTms']) {
          values.set(name, 0);
        }
        for (const name of ['WMaxLimPct_RmpTms', 'OutPFSet_WinTms', 'OutPFSet_RvrtTms', 'OutPFSet_RmpTms']) {
          values.set(name, 0);
        }
        values.set('Conn', 1);
        values.set('WMaxLimPct', 100);
        values.set('WMaxLim_Ena', 0);
        values.set('OutPFSet', 1);
        values.set('OutPFSet_Ena', 0);
        for (const name of ['VArWMaxPct', 'VArMaxPct', 'VArAvalPct', 'VArPct_WinTms', 'VArPct_RvrtTms']) {
          values.set(name, 0);
        }
        for (const name of ['VArPct_RmpTms', 'VArPct_Mod', 'VArPct_Ena']) values.set(name, 0);
      } else if (model === 124 && snapshot.kind === 'battery') {
        values.set('WChaMax', snapshot.maxChargeW);
        values.set('WChaGra', 100);
        values.set('WDisChaGra', 100);
        values.set('StorCtl_Mod', 0);
        values.set('VAChaMax', snapshot.maxChargeW);
        values.set('MinRsvPct', snapshot.socMinPct);
        values.set('OutWRte', 100);
        values.set('InWRte', 100);
        values.set('InOutWRte_WinTms', 0);
        values.set('InOutWRte_RvrtTms', 0);
        values.set('InOutWRte_RmpTms', 0);
        values.set('ChaGriSet', 1);
      } else if (profile.id === 'victron-vebus') {
        values.set('Mode', 3);
        for (const name of ['EssWphA', 'EssWphB', 'EssWphC', 'EssDisableCharge', 'EssDisableFeedIn']) {
          values.set(name, 0);
        }
        values.set('NumberOfPhases', r.phases);
        values.set('ActiveInput', 0);
        values.set('AcInCurrentLimit', 32);
        for (const name of ['VebusError', 'AlarmHighTemperature', 'AlarmOverload', 'AlarmGridLost']) {
          values.set(name, 0);
        }
      } else if (profile.class === 'ev-charger' && snapshot.kind === 'ev-charger') {
        values.set('MaxCurrent', snapshot.maxCurrentA);
        values.set('SafeCurrent', r.evSafeCurrentA);
        values.set('ChargePhases', r.phases);
        values.set('MeterType', 0);
        values.set('Availability', 1);
      }
      for (const [pointName, value] of values) {
        const p = this.byKey.get(`${profile.id}.${pointName}`);
        if (p !== undefined) this.put(p, value);
      }
    }
  }

  /** The measured values one profile shows for the snapshot. */
  private liveValues(profile: Profile, snapshot: DeviceSnapshot): Values {
    const model = profile.sunspec?.model;
    if (model !== undefined && model >= 101 && model <= 103) {
      if (snapshot.kind !== 'pv-inverter' && snapshot.kind !== 'battery') return new Map();
      return restrictPhases(inverterValues(snapshot), model - 100);
    }
    if (model === 124 && snapshot.kind === 'battery') return storageValues(snapshot);
    if (profile.id === 'victron-vebus' && snapshot.kind === 'battery') return victronValues(snapshot);
    if (profile.class === 'meter') {
      const phases = model !== undefined && model >= 201 && model <= 202 ? model - 200 : 3;
      return restrictPhases(meterValues(acView(snapshot)), phases);
    }
    if (profile.class === 'ev-charger' && snapshot.kind === 'ev-charger') {
      return new Map([...meterValues(acView(snapshot)), ...chargerValues(snapshot)]);
    }
    return new Map();
  }
}

/** Device-side checks beyond a point's range: values the range admits that the device still refuses. */
function validControlValue(name: string, value: number): boolean {
  // Alfen: 1 or 3 phases, nothing in between.
  if (name === 'ChargePhases') return value === 1 || value === 3;
  // A power factor of 0 is no power factor.
  if (name === 'OutPFSet') return value !== 0;
  return true;
}

/**
 * The SF a unit gets before fitting: W, VA, var and energy in whole units, A in 0.01, V in 0.1, Hz in 0.01, % in
 * 0.1, and unitless power factors (cos phi) in 0.001.
 */
function preferredScaleFactor(users: readonly PointDef[]): number {
  const unit = users.find((u) => u.unit !== undefined)?.unit;
  switch (unit) {
    case 'A':
    case 'Hz':
      return -2;
    case 'V':
    case '%':
    case '%/s':
    case 'C':
    case 'Ah':
      return -1;
    case undefined:
      return users.length > 0 ? -3 : 0;
    default:
      return 0;
  }
}

/**
 * Registers for a value; saturates at the type's limits, or rolls an accumulator over, instead of failing, and never
 * lands on the "not implemented" sentinel.
 */
function encodeFor(point: PointDef, value: Value, sf: number | undefined): number[] {
  if (value === null) {
    const kind = point.type;
    const hasSentinel =
      point.notImplemented.length > 0 || kind === 'f32' || kind === 'f64' || kind === 'string' || kind === 'pad';
    return hasSentinel ? encodeRaw(point, null) : new Array<number>(registerCount(point)).fill(0);
  }
  if (typeof value === 'string') {
    const room = registerCount(point) * 2;
    const bytes = new TextEncoder().encode(value);
    return encodeRaw(point, bytes.length <= room ? value : new TextDecoder().decode(bytes.subarray(0, room)));
  }
  // The tables give power factors as cos phi; SunSpec inverter and meter models count PF in percent.
  const scaled = point.unit === '%' && /^PF/.test(point.name) ? value * 100 : value;
  try {
    return encodeValue(point, scaled, point.sf === undefined ? undefined : (sf ?? 0));
  } catch (error) {
    if (!(error instanceof CodecError) || !isIntegerType(point.type) || !Number.isFinite(scaled)) throw error;
    const [min, max] = integerRange(point.type).map(Number) as [number, number];
    let raw = Math.round(scaled / (point.scale * 10 ** (sf ?? 0)));
    // An accumulator rolls over like the real counter (SunSpec acc types); anything else saturates.
    if (point.type.startsWith('acc') && raw > max) raw %= max + 1;
    raw = Math.min(max, Math.max(min, raw));
    while (point.notImplemented.some((s) => Number(s) === raw)) raw += raw > 0 ? -1 : 1;
    return encodeRaw(point, raw);
  }
}

function toRanges(image: Image): RegisterRange[] {
  const addresses = [...image.keys()].sort((a, b) => a - b);
  const ranges: RegisterRange[] = [];
  let current: { start: number; values: number[]; writable: boolean } | undefined;
  for (const address of addresses) {
    const cell = image.get(address) as { value: number; writable: boolean };
    if (
      current !== undefined &&
      current.start + current.values.length === address &&
      current.writable === cell.writable
    ) {
      current.values.push(cell.value);
      continue;
    }
    if (current !== undefined) ranges.push(current);
    current = { start: address, values: [cell.value], writable: cell.writable };
  }
  if (current !== undefined) ranges.push(current);
  return ranges;
}

/** Pack voltage at 50 % SoC, from the battery model's linear voltage curve. */
function nominalPackVoltage(b: BatterySnapshot): number {
  return b.packVoltageV / (0.92 + (0.16 * b.socPct) / 100);
}

/** Drops the names of phases a SunSpec model does not have (101/201: phase A only; 102/202: A and B). */
function restrictPhases(values: Values, phases: number): Values {
  if (phases >= 3) return values;
  const drop = phases === 1 ? /(ph|Ph)(B|C|AB|BC|CA)$|^PPV$/ : /(ph|Ph)(C|BC|CA)$/;
  return new Map([...values].filter(([name]) => !drop.test(name)));
}

const sum3 = (p: Phases) => p[0] + p[1] + p[2];
const mean3 = (p: Phases) => sum3(p) / 3;

/** Model 101-103 values: the inverter's output, positive when it feeds the grid. */
function inverterValues(s: PvSnapshot | BatterySnapshot): Values {
  const ll = lineVoltages(s.phaseVoltageV);
  const v = new Map<string, Value>([
    ['A', sum3(s.phaseCurrentA)],
    ['AphA', s.phaseCurrentA[0]],
    ['AphB', s.phaseCurrentA[1]],
    ['AphC', s.phaseCurrentA[2]],
    ['PPVphAB', ll[0]],
    ['PPVphBC', ll[1]],
    ['PPVphCA', ll[2]],
    ['PhVphA', s.phaseVoltageV[0]],
    ['PhVphB', s.phaseVoltageV[1]],
    ['PhVphC', s.phaseVoltageV[2]],
    ['Hz', s.frequencyHz],
    ['Evt1', 0],
    ['Evt2', 0],
  ]);
  if (s.kind === 'pv-inverter') {
    v.set('W', s.acPowerW);
    v.set('VA', s.apparentPowerVA);
    v.set('VAr', s.reactivePowerVar);
    v.set('PF', s.powerFactor);
    v.set('WH', s.lifetimeEnergyWh);
    v.set('DCA', s.dcCurrentA);
    v.set('DCV', s.dcVoltageV);
    v.set('DCW', s.dcPowerW);
    // SunSpec St: 2 SLEEPING (no sun), 4 MPPT, 5 THROTTLED.
    v.set('St', s.status === 'off' ? 2 : s.status === 'mppt' ? 4 : 5);
  } else {
    v.set('W', s.powerW);
    v.set('VA', Math.abs(s.powerW));
    v.set('VAr', 0);
    v.set('PF', 1);
    v.set('WH', s.dischargedEnergyWh);
    v.set('DCV', s.packVoltageV);
    // 4 (operating) while power flows, 8 STANDBY otherwise.
    v.set('St', s.status === 'charging' || s.status === 'discharging' ? 4 : 8);
  }
  return v;
}

/** Model 124 values: state of charge and charge state. */
function storageValues(s: BatterySnapshot): Values {
  const ahr = s.capacityWh / nominalPackVoltage(s);
  // SunSpec ChaSt: 2 EMPTY, 3 DISCHARGING, 4 CHARGING, 5 FULL, 6 HOLDING.
  const chaSt = { idle: 6, charging: 4, discharging: 3, full: 5, empty: 2 }[s.status];
  return new Map<string, Value>([
    ['ChaState', s.socPct],
    ['StorAval', (Math.max(0, s.socPct - s.socMinPct) / 100) * ahr],
    ['InBatV', s.packVoltageV],
    ['ChaSt', chaSt],
  ]);
}

/** Victron VE.Bus values. The Multi's AC-in counts power taken from the grid side positive (charging). */
function victronValues(s: BatterySnapshot): Values {
  const v = s.phaseVoltageV;
  const acIn = s.phasePowerW.map((w) => -w) as unknown as Phases;
  const state = { charging: 3, full: 5, discharging: 9, idle: 8, empty: 8 }[s.status];
  const chargeState = { charging: 1, full: 3, discharging: 9, idle: 9, empty: 9 }[s.status];
  const out = new Map<string, Value>();
  const phases = ['A', 'B', 'C'] as const;
  for (const [i, ph] of phases.entries()) {
    out.set(`AcInVph${ph}`, v[i] as number);
    out.set(`AcInAph${ph}`, (v[i] as number) > 0 ? (acIn[i] as number) / (v[i] as number) : 0);
    out.set(`AcInHzph${ph}`, s.frequencyHz);
    out.set(`AcInWph${ph}`, acIn[i] as number);
    // Nothing is wired to AC-out in the simulation: it passes the grid voltage through and carries no load.
    out.set(`AcOutVph${ph}`, v[i] as number);
    out.set(`AcOutAph${ph}`, 0);
    out.set(`AcOutWph${ph}`, 0);
  }
  out.set('AcOutHz', s.frequencyHz);
  out.set('DcV', s.packVoltageV);
  out.set('DcA', s.packVoltageV > 0 ? -s.powerW / s.packVoltageV : 0);
  out.set('Soc', s.socPct);
  out.set('State', state);
  out.set('VebusChargeState', chargeState);
  out.set('AlarmLowBattery', s.status === 'empty' ? 2 : 0);
  out.set('BmsAllowToCharge', s.status === 'full' ? 0 : 1);
  out.set('BmsAllowToDischarge', s.status === 'empty' ? 0 : 1);
  out.set('WhAcIn1ToInverter', s.chargedEnergyWh);
  out.set('WhInverterToAcIn1', s.dischargedEnergyWh);
  for (const name of ['WhAcIn1ToAcOut', 'WhAcIn2ToAcOut', 'WhAcIn2ToInverter', 'WhAcOutToAcIn1', 'WhAcOutToAcIn2']) {
    out.set(name, 0);
  }
  for (const name of ['WhInverterToAcIn2', 'WhInverterToAcOut', 'WhOutToInverter']) out.set(name, 0);
  return out;
}

/** Alfen socket values beyond its meter. */
function chargerValues(s: EvSnapshot): Values {
  // IEC 61851 mode 3 states: A no car, B1 connected without PWM (paused by the limit), B2 offered but not taken, C2.
  const mode3 = s.status === 'A' ? 'A' : s.status === 'C' ? 'C2' : s.pausedBy === 'limit' ? 'B1' : 'B2';
  return new Map<string, Value>([
    // bit0 initialised, bit1 updated
    ['MeterState', 3],
    ['Mode3State', mode3],
    ['ActualMaxCurrent', s.offeredCurrentA],
    ['MaxCurrentValidTime', Math.round(s.limit?.remainingS ?? 0)],
    ['SetpointAccountedFor', s.limit?.active ? 1 : 0],
    ['TotWhDel', s.lifetimeEnergyWh],
  ]);
}

/** What a meter in front of a device measures: per-phase flows, import (into the device) positive. */
interface AcView {
  readonly v: Phases;
  readonly hz: number;
  readonly p: Phases;
  readonly q: Phases;
  readonly importWh: number;
  readonly exportWh: number;
}

function acView(s: DeviceSnapshot): AcView {
  const shareOf = (phasePower: Phases, total: number): Phases =>
    total === 0 ? [0, 0, 0] : [phasePower[0] / total, phasePower[1] / total, phasePower[2] / total];
  const scale = (shares: Phases, total: number): Phases => [shares[0] * total, shares[1] * total, shares[2] * total];
  const neg = (p: Phases): Phases => [-p[0], -p[1], -p[2]];
  switch (s.kind) {
    case 'meter':
      return {
        v: s.phaseVoltageV,
        hz: s.frequencyHz,
        p: s.phasePowerW,
        q: s.phaseReactiveVar,
        importWh: s.importEnergyWh,
        exportWh: s.exportEnergyWh,
      };
    case 'pv-inverter':
      return {
        v: s.phaseVoltageV,
        hz: s.frequencyHz,
        p: neg(s.phasePowerW),
        q: neg(scale(shareOf(s.phasePowerW, s.acPowerW), s.reactivePowerVar)),
        importWh: 0,
        exportWh: s.lifetimeEnergyWh,
      };
    case 'battery':
      return {
        v: s.phaseVoltageV,
        hz: s.frequencyHz,
        p: neg(s.phasePowerW),
        q: [0, 0, 0],
        importWh: s.chargedEnergyWh,
        exportWh: s.dischargedEnergyWh,
      };
    case 'building-load':
      return {
        v: s.phaseVoltageV,
        hz: s.frequencyHz,
        p: s.phasePowerW,
        q: scale(shareOf(s.phasePowerW, s.powerW), s.reactivePowerVar),
        importWh: s.energyWh,
        exportWh: 0,
      };
    case 'ev-charger':
      return {
        v: s.phaseVoltageV,
        hz: s.frequencyHz,
        p: s.phasePowerW,
        q: [0, 0, 0],
        importWh: s.lifetimeEnergyWh,
        exportWh: 0,
      };
  }
}

/** Meter values under the names SunSpec 20x, the SDM630 and the Alfen meter share. PF is cos phi, signed like P. */
function meterValues(view: AcView): Values {
  const { v, p, q } = view;
  const s: Phases = [Math.hypot(p[0], q[0]), Math.hypot(p[1], q[1]), Math.hypot(p[2], q[2])];
  const a: Phases = [v[0] > 0 ? s[0] / v[0] : 0, v[1] > 0 ? s[1] / v[1] : 0, v[2] > 0 ? s[2] / v[2] : 0];
  const ll = lineVoltages(v);
  const pf = (pi: number, si: number) => (si === 0 ? 1 : pi / si);
  // Neutral current of three currents 120 degrees apart, each in phase with its voltage.
  const an = Math.sqrt(Math.max(0, a[0] ** 2 + a[1] ** 2 + a[2] ** 2 - a[0] * a[1] - a[1] * a[2] - a[2] * a[0]));
  const out = new Map<string, Value>([
    ['A', sum3(a)],
    ['AAvg', mean3(a)],
    ['AN', an],
    ['PhV', mean3(v)],
    ['PPV', mean3(ll)],
    ['Hz', view.hz],
    ['W', sum3(p)],
    ['VA', sum3(s)],
    ['VAR', sum3(q)],
    ['PF', pf(sum3(p), sum3(s))],
    ['TotWhImp', view.importWh],
    ['TotWhExp', view.exportWh],
    ['TotWh', view.importWh + view.exportWh],
    ['Evt', 0],
  ]);
  const phases = ['A', 'B', 'C'] as const;
  const pairs = ['AB', 'BC', 'CA'] as const;
  for (const [i, ph] of phases.entries()) {
    out.set(`PhVph${ph}`, v[i] as number);
    out.set(`Aph${ph}`, a[i] as number);
    out.set(`Wph${ph}`, p[i] as number);
    out.set(`VAph${ph}`, s[i] as number);
    out.set(`VARph${ph}`, q[i] as number);
    out.set(`PFph${ph}`, pf(p[i] as number, s[i] as number));
    // SunSpec 20x names line voltages PhVphAB, the SDM630 and Alfen PPVphAB.
    out.set(`PhVph${pairs[i]}`, ll[i] as number);
    out.set(`PPVph${pairs[i]}`, ll[i] as number);
  }
  return out;
}
