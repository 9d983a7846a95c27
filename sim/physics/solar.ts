/**
 * Sunlight at a site: sun position, clear-sky irradiance, clouds, and the irradiance on a tilted plane.
 *
 * - Sun position: NOAA's "General Solar Position Calculations" (Spencer's 1971 Fourier series for declination and
 *   equation of time); good to a few arc-minutes, plenty for power simulation.
 * - Clear-sky global horizontal irradiance (GHI): Haurwitz (1945), GHI = 1098·cos z·exp(-0.059/cos z) W/m², with the
 *   coefficients of Reno, Hansen & Stein, "Global horizontal irradiance clear sky models", SAND2012-2389, as in
 *   pvlib.clearsky.haurwitz. It needs no turbidity data, which a site file should not have to supply.
 * - Clouds: the clear-sky index (GHI / clear-sky GHI) follows two Ornstein-Uhlenbeck processes, a slow one for
 *   weather (30 min) and a fast one for passing clouds (3 min), scaled by `cloudiness`.
 * - Beam/diffuse split: Erbs, Klein & Duffie (1982), Solar Energy 28(4):293-302.
 * - Plane of array: isotropic sky (Liu & Jordan 1963) plus ground reflection.
 */
import { deriveSeed, OuSeries } from '../random.js';
import { inRange } from './grid.js';

export interface GeoLocation {
  /** Degrees north (negative south). */
  latitudeDeg: number;
  /** Degrees east (negative west). */
  longitudeDeg: number;
}

export interface SunPosition {
  /** 0 overhead, 90 on the horizon, above 90 below it. */
  readonly zenithDeg: number;
  readonly elevationDeg: number;
  /** Clockwise from north: 90 east, 180 south, 270 west. */
  readonly azimuthDeg: number;
  readonly cosZenith: number;
}

const DAY_MS = 86_400_000;
const RAD = Math.PI / 180;
/** Solar constant, W/m² (Kopp & Lean 2011). */
export const SOLAR_CONSTANT = 1361;

/** Day of the year of a UTC instant, 1 on 1 January. */
export function dayOfYear(t: number): number {
  const year = new Date(t).getUTCFullYear();
  return Math.floor((t - Date.UTC(year, 0, 1)) / DAY_MS) + 1;
}

interface SolarAngles {
  declinationRad: number;
  equationOfTimeMin: number;
}

function solarAngles(t: number): SolarAngles {
  const hour = (((t % DAY_MS) + DAY_MS) % DAY_MS) / 3_600_000;
  const g = ((2 * Math.PI) / 365) * (dayOfYear(t) - 1 + (hour - 12) / 24);
  const equationOfTimeMin =
    229.18 *
    (0.000075 +
      0.001868 * Math.cos(g) -
      0.032077 * Math.sin(g) -
      0.014615 * Math.cos(2 * g) -
      0.040849 * Math.sin(2 * g));
  const declinationRad =
    0.006918 -
    0.399912 * Math.cos(g) +
    0.070257 * Math.sin(g) -
    0.006758 * Math.cos(2 * g) +
    0.000907 * Math.sin(2 * g) -
    0.002697 * Math.cos(3 * g) +
    0.00148 * Math.sin(3 * g);
  return { declinationRad, equationOfTimeMin };
}

export function sunPosition(t: number, location: GeoLocation): SunPosition {
  const { declinationRad: dec, equationOfTimeMin } = solarAngles(t);
  const minutesUtc = (((t % DAY_MS) + DAY_MS) % DAY_MS) / 60_000;
  const trueSolarMin = minutesUtc + equationOfTimeMin + 4 * location.longitudeDeg;
  const hourAngle = (trueSolarMin / 4 - 180) * RAD;
  const lat = location.latitudeDeg * RAD;
  const cosZenith = Math.max(
    -1,
    Math.min(1, Math.sin(lat) * Math.sin(dec) + Math.cos(lat) * Math.cos(dec) * Math.cos(hourAngle)),
  );
  const zenithDeg = Math.acos(cosZenith) / RAD;
  const az =
    Math.atan2(Math.sin(hourAngle), Math.cos(hourAngle) * Math.sin(lat) - Math.tan(dec) * Math.cos(lat)) / RAD + 180;
  return { zenithDeg, elevationDeg: 90 - zenithDeg, azimuthDeg: ((az % 360) + 360) % 360, cosZenith };
}

/** UTC instant of solar noon on the UTC day containing t. */
export function solarNoonMs(t: number, longitudeDeg: number): number {
  const midnight = Math.floor(t / DAY_MS) * DAY_MS;
  const { equationOfTimeMin } = solarAngles(midnight + DAY_MS / 2);
  return midnight + (720 - 4 * longitudeDeg - equationOfTimeMin) * 60_000;
}

/** Haurwitz clear-sky GHI, W/m² (0 when the sun is down). */
export function clearSkyGhi(cosZenith: number): number {
  if (cosZenith <= 0) return 0;
  return 1098 * cosZenith * Math.exp(-0.059 / cosZenith);
}

/** Extraterrestrial normal irradiance, W/m², with the earth-sun distance correction. */
export function extraterrestrialIrradiance(doy: number): number {
  return SOLAR_CONSTANT * (1 + 0.033 * Math.cos((2 * Math.PI * doy) / 365));
}

/** Erbs diffuse fraction (DHI/GHI) as a function of the clearness index kt. */
export function erbsDiffuseFraction(kt: number): number {
  if (kt <= 0.22) return 1 - 0.09 * kt;
  if (kt <= 0.8) return 0.9511 - 0.1604 * kt + 4.388 * kt ** 2 - 16.638 * kt ** 3 + 12.336 * kt ** 4;
  return 0.165;
}

export interface Irradiance {
  /** Global horizontal, W/m². */
  readonly ghi: number;
  /** Direct normal, W/m². */
  readonly dni: number;
  /** Diffuse horizontal, W/m². */
  readonly dhi: number;
  /** What GHI would be under a clear sky. */
  readonly ghiClear: number;
  /** GHI / clear-sky GHI. */
  readonly clearSkyIndex: number;
  readonly sun: SunPosition;
}

/** Below this cos z (sun within ~3.7° of the horizon) the beam is not separated from GHI; pvlib does the same. */
const MIN_COS_ZENITH = 0.065;

/** Irradiance on a plane tilted `tiltDeg` from horizontal, facing `azimuthDeg` (180 = south), W/m². */
export function planeOfArray(irr: Irradiance, tiltDeg: number, azimuthDeg: number, albedo = 0.2): number {
  if (irr.ghi <= 0) return 0;
  const tilt = tiltDeg * RAD;
  const sunZen = irr.sun.zenithDeg * RAD;
  const cosAoi =
    Math.cos(sunZen) * Math.cos(tilt) +
    Math.sin(sunZen) * Math.sin(tilt) * Math.cos((irr.sun.azimuthDeg - azimuthDeg) * RAD);
  const beam = irr.dni * Math.max(0, cosAoi);
  const sky = (irr.dhi * (1 + Math.cos(tilt))) / 2;
  const ground = (irr.ghi * albedo * (1 - Math.cos(tilt))) / 2;
  return Math.max(0, beam + sky + ground);
}

export interface SkyParams {
  /** 0 clear sky all day, 0.5 broken clouds (most variable), 1 overcast. Default 0.3. */
  cloudiness?: number;
}

/**
 * The sky above one site: every PV array on the site sees the same clouds. Irradiance at an instant is a function of
 * that instant alone (see OuSeries), cached for the last instant asked because several arrays ask in turn.
 */
export class SolarResource {
  readonly location: GeoLocation;
  readonly cloudiness: number;
  private readonly slow: OuSeries;
  private readonly fast: OuSeries;
  private cacheT = Number.NaN;
  private cache: Irradiance | undefined;

  constructor(location: GeoLocation, params: SkyParams, env: { seed: number; startMs: number }) {
    inRange(location.latitudeDeg, -90, 90, 'location.latitudeDeg');
    inRange(location.longitudeDeg, -180, 180, 'location.longitudeDeg');
    this.location = { latitudeDeg: location.latitudeDeg, longitudeDeg: location.longitudeDeg };
    this.cloudiness = inRange(params.cloudiness ?? 0.3, 0, 1, 'cloudiness');
    this.slow = new OuSeries({
      seed: deriveSeed(env.seed, 'clouds-slow'),
      originMs: env.startMs,
      knotMs: 60_000,
      tauS: 1800,
      sd: 1,
    });
    this.fast = new OuSeries({
      seed: deriveSeed(env.seed, 'clouds-fast'),
      originMs: env.startMs,
      knotMs: 10_000,
      tauS: 180,
      sd: 1,
    });
  }

  /**
   * Mean falls from 1 (clear) to 0.3 (overcast); spread is largest for broken clouds, where the sky switches between
   * sun and shade, and small at both ends. Up to 1.15 allows the cloud-edge enhancement seen in real measurements.
   */
  clearSkyIndex(t: number): number {
    const c = this.cloudiness;
    if (c === 0) return 1;
    const mean = 1 - 0.7 * c;
    const spread = 0.8 * c * (1 - c) + 0.05 * c;
    const z = 0.8 * this.slow.at(t) + 0.6 * this.fast.at(t);
    return Math.min(1.15, Math.max(0.05, mean + spread * z));
  }

  irradiance(t: number): Irradiance {
    if (t === this.cacheT && this.cache !== undefined) return this.cache;
    const sun = sunPosition(t, this.location);
    const ghiClear = clearSkyGhi(sun.cosZenith);
    let result: Irradiance;
    if (ghiClear <= 0) {
      result = { ghi: 0, dni: 0, dhi: 0, ghiClear: 0, clearSkyIndex: this.clearSkyIndex(t), sun };
    } else {
      const clearSkyIndex = this.clearSkyIndex(t);
      const ghi = ghiClear * clearSkyIndex;
      const cosZ = Math.max(sun.cosZenith, MIN_COS_ZENITH);
      const kt = Math.min(1, ghi / (extraterrestrialIrradiance(dayOfYear(t)) * cosZ));
      const dhi = sun.cosZenith < MIN_COS_ZENITH ? ghi : ghi * erbsDiffuseFraction(kt);
      const dni = (ghi - dhi) / cosZ;
      result = { ghi, dni, dhi, ghiClear, clearSkyIndex, sun };
    }
    this.cacheT = t;
    this.cache = result;
    return result;
  }
}
