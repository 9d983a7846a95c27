/**
 * A simulated site: its devices, the meters that see them, one shared sky and grid, stepped together.
 *
 * A site is built from a `SiteDescription`, a plain JSON-friendly object (the YAML site-file loader produces one).
 * Every random process is seeded from the description's seed and the name of what it belongs to, so the same
 * description gives the same values, and adding or renaming one device leaves the others' values unchanged.
 */
import type { DeviceClass } from '../../hardware/profile/types.js';
import { deriveSeed, seedToU32 } from '../random.js';
import {
  Battery,
  type BatteryParams,
  type BatteryPowerSetpoint,
  type BatteryRateSetpoint,
  type BatterySnapshot,
} from './battery.js';
import { EvCharger, type EvChargerParams, type EvLimitSetpoint, type EvSnapshot } from './ev.js';
import {
  checkForward,
  GridModel,
  type GridParams,
  type GridState,
  inRange,
  type PowerFlow,
  parseInstant,
} from './grid.js';
import { withInstalledHistory } from './history.js';
import { BuildingLoad, type LoadCurtailSetpoint, type LoadParams, type LoadSnapshot } from './load.js';
import { Meter, type MeterParams, type MeterSnapshot } from './meter.js';
import {
  PvInverter,
  type PvParams,
  type PvPowerFactorSetpoint,
  type PvPowerLimitSetpoint,
  type PvSnapshot,
} from './pv.js';
import { type GeoLocation, SolarResource } from './solar.js';

/** Device kinds, named as the device classes of hardware profiles so a device and its register map pair by kind. */
export type SimDeviceKind = Exclude<DeviceClass, 'common'>;

export interface SiteLocation extends GeoLocation {
  /**
   * Local time offset from UTC in minutes, for daily load shapes and EV arrival times (fixed: no daylight saving).
   * Default: the longitude's time zone, round(longitude / 15) hours.
   */
  utcOffsetMinutes?: number;
}

export type DeviceDescription =
  | { kind: 'pv-inverter'; name: string; params: PvParams }
  | { kind: 'battery'; name: string; params: BatteryParams }
  | { kind: 'building-load'; name: string; params: LoadParams }
  | { kind: 'ev-charger'; name: string; params: EvChargerParams }
  | { kind: 'meter'; name: string; params: MeterParams };

export interface SiteDescription {
  /** Shown in logs; optional. */
  name?: string;
  /** Seed of every random process on the site (a safe integer). */
  seed: number;
  location: SiteLocation;
  /** ISO 8601 instant with offset at which the simulation starts, e.g. '2024-06-17T00:00:00Z'. */
  start: string;
  /** 0 clear, 0.5 broken clouds, 1 overcast. Default 0.3. */
  cloudiness?: number;
  grid?: GridParams;
  /**
   * Devices, with unique names. Meters name what they see (`params.sees`); the topology is what the meters see, and
   * a device no meter sees still runs.
   */
  devices: DeviceDescription[];
}

export type SimDevice = PvInverter | Battery | BuildingLoad | EvCharger | Meter;
export type DeviceSnapshot = PvSnapshot | BatterySnapshot | LoadSnapshot | EvSnapshot | MeterSnapshot;

export interface SiteSnapshot {
  readonly t: number;
  readonly grid: GridState;
  readonly sky: {
    readonly ghiWm2: number;
    readonly clearSkyIndex: number;
    readonly sunElevationDeg: number;
    readonly sunAzimuthDeg: number;
  };
  readonly devices: Readonly<Record<string, DeviceSnapshot>>;
}

export const SIM_DEVICE_KINDS: readonly SimDeviceKind[] = [
  'pv-inverter',
  'battery',
  'building-load',
  'ev-charger',
  'meter',
];

export class SimSite {
  readonly name: string;
  readonly startMs: number;
  readonly utcOffsetMinutes: number;
  readonly grid: GridModel;
  readonly solar: SolarResource;
  private readonly devices = new Map<string, SimDevice>();
  /** Meters last: they read what the devices integrated in the same step. */
  private readonly order: SimDevice[] = [];
  private t: number;

  constructor(description: SiteDescription) {
    const d = description;
    if (d === null || typeof d !== 'object') throw new TypeError('site description must be an object');
    this.name = d.name ?? 'site';
    const seed = seedToU32(d.seed);
    this.startMs = parseInstant(d.start, 'start');
    this.t = this.startMs;
    if (d.location === null || typeof d.location !== 'object') throw new TypeError('location must be an object');
    // The sky checks latitude and longitude, which the default offset is computed from.
    this.solar = new SolarResource(
      d.location,
      { cloudiness: d.cloudiness ?? 0.3 },
      { seed: deriveSeed(seed, 'site:sky'), startMs: this.startMs },
    );
    this.utcOffsetMinutes = inRange(
      d.location.utcOffsetMinutes ?? Math.round(d.location.longitudeDeg / 15) * 60,
      -720,
      840,
      'location.utcOffsetMinutes',
    );
    this.grid = new GridModel(d.grid ?? {}, { seed: deriveSeed(seed, 'site:grid'), startMs: this.startMs });
    if (!Array.isArray(d.devices)) throw new TypeError('devices must be a list');

    const byName = new Map<string, DeviceDescription>();
    for (const [i, dev] of d.devices.entries()) {
      if (dev === null || typeof dev !== 'object') throw new TypeError(`devices[${i}] must be an object`);
      if (typeof dev.name !== 'string' || dev.name.trim() === '') {
        throw new TypeError(`devices[${i}].name must be a non-empty string`);
      }
      if (!SIM_DEVICE_KINDS.includes(dev.kind)) {
        throw new TypeError(
          `devices[${i}] (${dev.name}): kind must be one of ${SIM_DEVICE_KINDS.join(', ')}, got ${String(dev.kind)}`,
        );
      }
      if (dev.params === null || typeof dev.params !== 'object') {
        throw new TypeError(`devices[${i}] (${dev.name}): params must be an object`);
      }
      if (byName.has(dev.name)) throw new TypeError(`devices[${i}]: the name ${dev.name} is used twice`);
      byName.set(dev.name, dev);
    }

    // Counters start where the devices' years in service left them (sim/physics/history.ts), not at 0.
    const devices = withInstalledHistory(d.devices, { seed, latitudeDeg: d.location.latitudeDeg });
    const env = { grid: this.grid, startMs: this.startMs, utcOffsetMinutes: this.utcOffsetMinutes };
    for (const dev of devices) {
      const devSeed = deriveSeed(seed, `device:${dev.name}`);
      let model: SimDevice | undefined;
      if (dev.kind === 'pv-inverter') model = new PvInverter(dev.name, dev.params, { ...env, solar: this.solar });
      else if (dev.kind === 'battery') model = new Battery(dev.name, dev.params, env);
      else if (dev.kind === 'building-load') model = new BuildingLoad(dev.name, dev.params, { ...env, seed: devSeed });
      else if (dev.kind === 'ev-charger') model = new EvCharger(dev.name, dev.params, { ...env, seed: devSeed });
      if (model !== undefined) {
        this.devices.set(dev.name, model);
        this.order.push(model);
      }
    }
    for (const dev of devices) {
      if (dev.kind !== 'meter') continue;
      const flows = this.resolveMeter(dev.name, byName, []);
      const meter = new Meter(dev.name, flows, dev.params, env);
      this.devices.set(dev.name, meter);
      this.order.push(meter);
    }
  }

  /** The devices whose flows pass through a meter, through other meters too. */
  private resolveMeter(name: string, byName: Map<string, DeviceDescription>, path: string[]): PowerFlow[] {
    const dev = byName.get(name)!;
    if (dev.kind !== 'meter') throw new Error('unreachable: resolveMeter on a device');
    if (path.includes(name)) throw new TypeError(`meters see each other in a cycle: ${[...path, name].join(' -> ')}`);
    if (!Array.isArray(dev.params.sees))
      throw new TypeError(`meter ${name}: params.sees must be a list of device names`);
    const flows: PowerFlow[] = [];
    for (const seen of dev.params.sees) {
      const target = byName.get(seen);
      if (target === undefined) {
        throw new TypeError(
          `meter ${name} sees ${String(seen)}, which is not a device; devices: ${[...byName.keys()].join(', ')}`,
        );
      }
      const more = target.kind === 'meter' ? this.resolveMeter(seen, byName, [...path, name]) : [this.flowOf(seen)];
      for (const f of more) {
        if (flows.includes(f)) throw new TypeError(`meter ${name} sees ${f.name} twice`);
        flows.push(f);
      }
    }
    return flows;
  }

  private flowOf(name: string): PowerFlow {
    const dev = this.devices.get(name);
    if (dev === undefined || dev.kind === 'meter') throw new Error(`unreachable: ${name} is not a device model`);
    return dev;
  }

  /** Time of the last step (the start before the first), ms since the epoch. */
  get time(): number {
    return this.t;
  }

  get deviceNames(): string[] {
    return [...this.devices.keys()];
  }

  device(name: string): SimDevice {
    const dev = this.devices.get(name);
    if (dev === undefined) throw new RangeError(`no device named ${name}; devices: ${this.deviceNames.join(', ')}`);
    return dev;
  }

  pv(name: string): PvInverter {
    return this.ofKind(name, 'pv-inverter') as PvInverter;
  }

  battery(name: string): Battery {
    return this.ofKind(name, 'battery') as Battery;
  }

  load(name: string): BuildingLoad {
    return this.ofKind(name, 'building-load') as BuildingLoad;
  }

  evCharger(name: string): EvCharger {
    return this.ofKind(name, 'ev-charger') as EvCharger;
  }

  meter(name: string): Meter {
    return this.ofKind(name, 'meter') as Meter;
  }

  private ofKind(name: string, kind: SimDeviceKind): SimDevice {
    const dev = this.device(name);
    if (dev.kind !== kind) throw new TypeError(`device ${name} is a ${dev.kind}, not a ${kind}`);
    return dev;
  }

  /** Advances every device to t (ms since the epoch, not before the last step): devices first, then meters. */
  step(t: number): void {
    checkForward(t, this.t, `site ${this.name}`);
    if (t === this.t) return;
    for (const dev of this.order) dev.step(t);
    this.t = t;
  }

  snapshot(): SiteSnapshot {
    const devices: Record<string, DeviceSnapshot> = {};
    for (const dev of this.order) devices[dev.name] = dev.snapshot();
    const irr = this.solar.irradiance(this.t);
    return {
      t: this.t,
      grid: this.grid.state(this.t),
      sky: {
        ghiWm2: irr.ghi,
        clearSkyIndex: irr.clearSkyIndex,
        sunElevationDeg: irr.sun.elevationDeg,
        sunAzimuthDeg: irr.sun.azimuthDeg,
      },
      devices,
    };
  }

  // Setpoints apply from `t` (default: the last step). Stepping there first keeps the time before the write
  // integrated under the old setpoint, for every device, so the meters stay consistent.

  setPvPowerLimit(name: string, sp: PvPowerLimitSetpoint, t?: number): void {
    this.stepTo(t);
    this.pv(name).setPowerLimit(sp);
  }

  setPvPowerFactor(name: string, sp: PvPowerFactorSetpoint, t?: number): void {
    this.stepTo(t);
    this.pv(name).setPowerFactor(sp);
  }

  setBatteryPower(name: string, sp: BatteryPowerSetpoint, t?: number): void {
    this.stepTo(t);
    this.battery(name).setPower(sp);
  }

  setBatteryRates(name: string, sp: BatteryRateSetpoint, t?: number): void {
    this.stepTo(t);
    this.battery(name).setRates(sp);
  }

  setLoadCurtailment(name: string, sp: LoadCurtailSetpoint, t?: number): void {
    this.stepTo(t);
    this.load(name).setCurtailment(sp);
  }

  setEvLimit(name: string, sp: EvLimitSetpoint, t?: number): void {
    this.stepTo(t);
    this.evCharger(name).setLimit(sp);
  }

  private stepTo(t: number | undefined): void {
    if (t !== undefined) this.step(t);
  }
}

/**
 * One office building near Munich: 10 kWp PV on a 9 kW inverter, a 10 kWh battery, a 15 kW-peak office load of
 * which a fifth can be shed, one 11 kW charger visited by a commuter's car on weekdays, a grid meter at the
 * connection point and a production meter on the PV. Starts on a Monday in June at local midnight.
 */
export function exampleSite(): SiteDescription {
  return {
    name: 'example-office',
    seed: 20240617,
    location: { latitudeDeg: 48.14, longitudeDeg: 11.58, utcOffsetMinutes: 60 },
    start: '2024-06-16T23:00:00Z',
    cloudiness: 0.3,
    devices: [
      {
        kind: 'pv-inverter',
        name: 'pv',
        params: { dcCapacityWp: 10_000, acRatingW: 9_000, tiltDeg: 30, azimuthDeg: 180, phases: 3 },
      },
      {
        kind: 'battery',
        name: 'battery',
        params: {
          capacityWh: 10_000,
          maxChargeW: 5_000,
          maxDischargeW: 5_000,
          socStartPct: 50,
          socMinPct: 10,
          socMaxPct: 95,
        },
      },
      {
        kind: 'building-load',
        name: 'office',
        params: { profile: 'office', peakW: 15_000, curtailableShare: 0.2, powerFactor: 0.95 },
      },
      {
        kind: 'ev-charger',
        name: 'ev',
        params: {
          maxCurrentA: 16,
          phases: 3,
          daily: [
            {
              arrival: '08:30',
              departure: '17:30',
              energyWh: 20_000,
              jitterMin: 45,
              energyJitterPct: 40,
              days: 'weekdays',
              probability: 0.9,
            },
          ],
        },
      },
      { kind: 'meter', name: 'grid-meter', params: { sees: ['office', 'ev', 'battery', 'pv-meter'] } },
      { kind: 'meter', name: 'pv-meter', params: { sees: ['pv'] } },
    ],
  };
}
