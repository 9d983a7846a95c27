/**
 * The installed history of a simulated site: where its lifetime energy counters stand when the simulation starts.
 *
 * Real equipment is never brand new when a controller first reads it, and a counter at 0 is worse than unrealistic:
 * SunSpec accumulators (acc32) use 0 for "not implemented", so a fresh simulation's WH and TotWhImp would read as "no
 * value". Each device therefore gets an age in service and the counters that age implies, drawn from the site seed
 * and the device's name (adding a device never changes another device's history). Meters start from what the devices
 * they see have exchanged over their lifetimes, so a production meter's export follows its inverter's WH.
 *
 * Only counters the description leaves out are filled in: an explicit `initialEnergyWh: 0` still starts at 0.
 */
import { deriveSeed, Rng } from '../random.js';
import { profileLevel } from './load.js';
import type { DeviceDescription } from './site.js';

/** Years a device has been in service at the start: uniform in this range. */
export const SERVICE_YEARS: readonly [number, number] = [0.5, 3];

const HOURS_PER_YEAR = 8760;
const DAYS_PER_YEAR = 365;
const WEEKDAYS_PER_YEAR = 261;

export interface HistoryOptions {
  /** The site seed (already reduced to 32 bits). */
  readonly seed: number;
  /** Latitude of the site, degrees: sets the PV's specific yield. */
  readonly latitudeDeg: number;
}

/**
 * The devices with the initial counters they leave out filled in from their installed history. Devices whose
 * parameters cannot give a history (missing or invalid ratings) are returned unchanged, so the model reports the real
 * problem.
 */
export function withInstalledHistory(
  devices: readonly DeviceDescription[],
  options: HistoryOptions,
): DeviceDescription[] {
  const filled = devices.map((d) => (d.kind === 'meter' ? d : deviceWithHistory(d, options)));
  const byName = new Map(filled.map((d) => [d.name, d]));
  return filled.map((d) => (d.kind === 'meter' ? meterWithHistory(d, byName, options.seed) : d));
}

/** A device's years in service, deterministic from the site seed and its name. */
export function serviceYears(seed: number, name: string): number {
  return historyRng(seed, name).uniform(SERVICE_YEARS[0], SERVICE_YEARS[1]);
}

/** PV yield per kWp and year at a latitude: about 1,000 kWh in central Europe, more towards the equator. */
export function specificYieldKwhPerKwp(latitudeDeg: number): number {
  return Math.min(1700, Math.max(700, 1750 - 15 * Math.abs(latitudeDeg)));
}

function historyRng(seed: number, name: string): Rng {
  return new Rng(deriveSeed(seed, `history:${name}`));
}

/** A counter value in whole Wh, or undefined when the inputs gave no usable number. */
function counter(wh: number): number | undefined {
  return Number.isFinite(wh) && wh >= 0 ? Math.round(wh) : undefined;
}

/** `params` with `key` set to `value` unless the description gave one (or there is no usable value). */
function fill<T extends object>(params: T, key: keyof T & string, value: number | undefined): T {
  if ((params as Record<string, unknown>)[key] !== undefined || value === undefined) return params;
  return { ...params, [key]: value };
}

function deviceWithHistory(d: DeviceDescription, options: HistoryOptions): DeviceDescription {
  if (d.params === null || typeof d.params !== 'object') return d;
  const rng = historyRng(options.seed, d.name);
  const years = rng.uniform(SERVICE_YEARS[0], SERVICE_YEARS[1]);
  // Weather, shading and habits: each device's year differs a little from the typical one.
  const spread = rng.uniform(0.85, 1.15);
  switch (d.kind) {
    case 'pv-inverter': {
      const kwp = d.params.dcCapacityWp / 1000;
      const wh = kwp * specificYieldKwhPerKwp(options.latitudeDeg) * 1000 * spread * years;
      return { ...d, params: fill(d.params, 'initialEnergyWh', counter(wh)) };
    }
    case 'battery': {
      // Home and office batteries do 150-300 equivalent full cycles a year.
      const cycles = rng.uniform(150, 300) * years;
      const charged = counter(d.params.capacityWh * cycles);
      const roundTrip = (d.params.chargeEfficiency ?? 0.96) * (d.params.dischargeEfficiency ?? 0.96);
      const discharged = charged === undefined ? undefined : counter(charged * roundTrip);
      let params = fill(d.params, 'initialChargedWh', charged);
      params = fill(params, 'initialDischargedWh', discharged);
      return { ...d, params };
    }
    case 'building-load': {
      const wh = d.params.peakW * meanProfileLevel(d.params.profile) * HOURS_PER_YEAR * spread * years;
      return { ...d, params: fill(d.params, 'initialEnergyWh', counter(wh)) };
    }
    case 'ev-charger': {
      const wh = yearlyChargingWh(d.params.daily) * spread * years;
      return { ...d, params: fill(d.params, 'initialEnergyWh', counter(wh)) };
    }
    case 'meter':
      return d;
  }
}

/** The mean of a load profile over a week, as a fraction of its peak (the shapes repeat weekly). */
function meanProfileLevel(profile: Parameters<typeof profileLevel>[0]): number {
  let sum = 0;
  const hours = 7 * 24;
  try {
    for (let h = 0; h < hours; h++) sum += profileLevel(profile, h * 3_600_000 + 1_800_000, 0);
  } catch {
    // An unknown profile: the load model says so when it is built.
    return Number.NaN;
  }
  return sum / hours;
}

/** What the charger's daily visitors take in a year; a charger with scripted sessions only: a private charger's year. */
function yearlyChargingWh(daily: readonly { energyWh: number; days?: string; probability?: number }[] | undefined) {
  if (daily === undefined || daily.length === 0) return 2_500_000;
  let wh = 0;
  for (const d of daily) {
    const days =
      d.days === 'weekdays'
        ? WEEKDAYS_PER_YEAR
        : d.days === 'weekends'
          ? DAYS_PER_YEAR - WEEKDAYS_PER_YEAR
          : DAYS_PER_YEAR;
    wh += d.energyWh * (d.probability ?? 1) * days;
  }
  return wh;
}

/** The devices a meter sees, through the meters it sees; unknown names and cycles are left to SimSite to report. */
function seenDevices(
  meter: string,
  byName: ReadonlyMap<string, DeviceDescription>,
  path: readonly string[] = [],
): DeviceDescription[] {
  const d = byName.get(meter);
  if (d?.kind !== 'meter' || path.includes(meter) || !Array.isArray(d.params?.sees)) return [];
  const out: DeviceDescription[] = [];
  for (const name of d.params.sees) {
    const seen = byName.get(name);
    if (seen === undefined) continue;
    if (seen.kind === 'meter') out.push(...seenDevices(name, byName, [...path, meter]));
    else if (!out.includes(seen)) out.push(seen);
  }
  return out;
}

function meterWithHistory(
  d: Extract<DeviceDescription, { kind: 'meter' }>,
  byName: ReadonlyMap<string, DeviceDescription>,
  seed: number,
): DeviceDescription {
  if (d.params === null || typeof d.params !== 'object') return d;
  let consumed = 0;
  let produced = 0;
  let pvProduced = 0;
  for (const seen of seenDevices(d.name, byName)) {
    const p = seen.params as unknown as Record<string, number | undefined>;
    if (seen.kind === 'pv-inverter') {
      produced += p.initialEnergyWh ?? 0;
      pvProduced += p.initialEnergyWh ?? 0;
    } else if (seen.kind === 'battery') {
      consumed += p.initialChargedWh ?? 0;
      produced += p.initialDischargedWh ?? 0;
    } else {
      consumed += p.initialEnergyWh ?? 0;
    }
  }
  // Part of what is produced behind the meter is used behind it at the same time and never passes it. The meter's
  // net (import - export) is exactly what the devices exchanged; the split depends on how much overlapped.
  const selfUse = historyRng(seed, d.name).uniform(0.3, 0.6);
  const overlap = Math.min(selfUse * produced, consumed);
  // Inverters draw a few watts at night, which the PV model leaves out; without it a production meter would never
  // import, and its TotWhImp would read "not implemented" for ever.
  const standby = 0.003 * pvProduced;
  let importWh = consumed - overlap + standby;
  let exportWh = produced - overlap;
  if (d.params.invert === true) [importWh, exportWh] = [exportWh, importWh];
  let params = fill(d.params, 'initialImportWh', counter(importWh));
  params = fill(params, 'initialExportWh', counter(exportWh));
  return { ...d, params };
}
