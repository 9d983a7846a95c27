/**
 * The sun for PV forecasts: where it is, what a clear sky delivers, and what a tilted array makes of it.
 *
 * - Sun position: NOAA's "General Solar Position Calculations" with Spencer's (1971) Fourier series for the
 *   declination and the equation of time; a few arc-minutes off, far below what a power forecast can notice.
 * - Sunrise and sunset: NOAA, with the sun's centre 0.833° below the horizon (refraction and the solar disc).
 * - Clear-sky global horizontal irradiance: Haurwitz (1945), GHI = 1098·cos z·exp(-0.059/cos z) W/m², coefficients of
 *   Reno, Hansen & Stein (SAND2012-2389), as in pvlib. It needs no turbidity data, which no site config has.
 * - Beam/diffuse split: Erbs, Klein & Duffie (1982); plane of array: isotropic sky (Liu & Jordan 1963) plus ground
 *   reflection. These are the same published models the simulator uses, so on a clear simulated day the forecast
 *   has the simulator's shape; they are written again here because agent/ never imports sim/.
 *
 * Angles in degrees at the interface, times in ms since the epoch (UTC).
 */

export interface GeoLocation {
  /** Degrees north (negative south). */
  readonly latitudeDeg: number;
  /** Degrees east (negative west). */
  readonly longitudeDeg: number;
}

export interface SunPosition {
  /** 0 overhead, 90 on the horizon, above 90 below it. */
  readonly zenithDeg: number;
  readonly elevationDeg: number;
  /** Clockwise from north: 90 east, 180 south, 270 west. */
  readonly azimuthDeg: number;
  readonly cosZenith: number;
}

export interface ClearSkyIrradiance {
  /** Global horizontal, W/m². */
  readonly ghi: number;
  /** Direct normal, W/m². */
  readonly dni: number;
  /** Diffuse horizontal, W/m². */
  readonly dhi: number;
  readonly sun: SunPosition;
}

/** What the PV model needs to know about a plant (the config's pv entry). */
export interface PvPlantSpec {
  /** Installed DC peak power at standard test conditions, Wp. */
  readonly peakWp: number;
  /** Inverter AC rating, W: the output never exceeds it. */
  readonly acRatingW: number;
  /** Module tilt from horizontal, degrees. */
  readonly tiltDeg: number;
  /** Module azimuth, degrees clockwise from north (180 = south). */
  readonly azimuthDeg: number;
  /** AC output per unit of plane-of-array DC potential (wiring, heat, soiling, inverter losses), 0..1. */
  readonly performanceRatio: number;
  /** Ground reflectance, 0..1 (default 0.2, grass). */
  readonly albedo?: number;
}

const DAY_MS = 86_400_000;
const RAD = Math.PI / 180;
/** Solar constant, W/m² (Kopp & Lean 2011). */
const SOLAR_CONSTANT = 1361;
/** cos z below which (sun within ~3.7° of the horizon) the beam is not split from GHI, as pvlib does. */
const MIN_COS_ZENITH = 0.065;
/** Zenith of the sun's centre at sunrise and sunset: 90° + 50' (34' refraction, 16' half disc). */
const SUNRISE_ZENITH_DEG = 90.833;

/** Day of the year of a UTC instant, 1 on 1 January. */
export function dayOfYear(t: number): number {
  const year = new Date(t).getUTCFullYear();
  return Math.floor((t - Date.UTC(year, 0, 1)) / DAY_MS) + 1;
}

function minutesOfUtcDay(t: number): number {
  return (((t % DAY_MS) + DAY_MS) % DAY_MS) / 60_000;
}

/** Declination (rad) and equation of time (minutes) at an instant, Spencer's series as NOAA gives it. */
function solarAngles(t: number): { declinationRad: number; equationOfTimeMin: number } {
  const hour = minutesOfUtcDay(t) / 60;
  // The fractional year; NOAA's convention (365 days, noon-centred) is kept so results match its tables.
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

/** Where the sun is at instant `t` seen from `location`. */
export function sunPosition(t: number, location: GeoLocation): SunPosition {
  const { declinationRad: dec, equationOfTimeMin } = solarAngles(t);
  const trueSolarMin = minutesOfUtcDay(t) + equationOfTimeMin + 4 * location.longitudeDeg;
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

/** UTC instant of solar noon on the UTC day that contains `t`. */
export function solarNoon(t: number, longitudeDeg: number): number {
  const midnight = Math.floor(t / DAY_MS) * DAY_MS;
  let noon = midnight + DAY_MS / 2;
  // Two rounds: the equation of time is evaluated at the noon it defines (changes < 1 s between rounds).
  for (let i = 0; i < 2; i++) {
    noon = midnight + (720 - 4 * longitudeDeg - solarAngles(noon).equationOfTimeMin) * 60_000;
  }
  return noon;
}

export interface SunTimes {
  readonly solarNoon: number;
  /** Undefined when the sun does not rise or set that day (see `polar`). */
  readonly sunrise: number | undefined;
  readonly sunset: number | undefined;
  /** 'day' the sun stays up all day, 'night' it stays down; undefined on an ordinary day. */
  readonly polar: 'day' | 'night' | undefined;
}

/**
 * Sunrise, solar noon and sunset (NOAA) for the day around the solar noon that falls on the UTC day of `t`. Sunrise
 * and sunset use the declination and equation of time at their own instants (one refinement), which matters by a
 * minute or so near the equinoxes.
 */
export function sunTimes(t: number, location: GeoLocation): SunTimes {
  const noon = solarNoon(t, location.longitudeDeg);
  const lat = location.latitudeDeg * RAD;
  const edge = (sign: -1 | 1): number | 'day' | 'night' => {
    let at = noon;
    for (let i = 0; i < 3; i++) {
      const { declinationRad: dec, equationOfTimeMin } = solarAngles(at);
      const cosH = Math.cos(SUNRISE_ZENITH_DEG * RAD) / (Math.cos(lat) * Math.cos(dec)) - Math.tan(lat) * Math.tan(dec);
      if (cosH > 1) return 'night';
      if (cosH < -1) return 'day';
      const hourAngleDeg = Math.acos(cosH) / RAD;
      const midnight = Math.floor(noon / DAY_MS) * DAY_MS;
      at = midnight + (720 - 4 * (location.longitudeDeg - sign * hourAngleDeg) - equationOfTimeMin) * 60_000;
    }
    return at;
  };
  const rise = edge(-1);
  const set = edge(1);
  if (typeof rise === 'string' || typeof set === 'string') {
    const polar = typeof rise === 'string' ? rise : (set as 'day' | 'night');
    return { solarNoon: noon, sunrise: undefined, sunset: undefined, polar };
  }
  return { solarNoon: noon, sunrise: rise, sunset: set, polar: undefined };
}

/** Haurwitz clear-sky GHI, W/m² (0 when the sun is down). */
export function clearSkyGhi(cosZenith: number): number {
  if (cosZenith <= 0) return 0;
  return 1098 * cosZenith * Math.exp(-0.059 / cosZenith);
}

/** Extraterrestrial normal irradiance, W/m², with the earth-sun distance correction. */
function extraterrestrial(t: number): number {
  return SOLAR_CONSTANT * (1 + 0.033 * Math.cos((2 * Math.PI * dayOfYear(t)) / 365));
}

/** Erbs diffuse fraction (DHI/GHI) for a clearness index kt. */
function erbsDiffuseFraction(kt: number): number {
  if (kt <= 0.22) return 1 - 0.09 * kt;
  if (kt <= 0.8) return 0.9511 - 0.1604 * kt + 4.388 * kt ** 2 - 16.638 * kt ** 3 + 12.336 * kt ** 4;
  return 0.165;
}

/** Clear-sky GHI at `t`, split into beam and diffuse. */
export function clearSkyIrradiance(t: number, location: GeoLocation): ClearSkyIrradiance {
  const sun = sunPosition(t, location);
  const ghi = clearSkyGhi(sun.cosZenith);
  if (ghi <= 0) return { ghi: 0, dni: 0, dhi: 0, sun };
  const cosZ = Math.max(sun.cosZenith, MIN_COS_ZENITH);
  const kt = Math.min(1, ghi / (extraterrestrial(t) * cosZ));
  const dhi = sun.cosZenith < MIN_COS_ZENITH ? ghi : ghi * erbsDiffuseFraction(kt);
  return { ghi, dni: (ghi - dhi) / cosZ, dhi, sun };
}

/** Irradiance on a plane tilted `tiltDeg` from horizontal facing `azimuthDeg` (isotropic sky), W/m². */
export function planeOfArrayIrradiance(
  irr: ClearSkyIrradiance,
  tiltDeg: number,
  azimuthDeg: number,
  albedo = 0.2,
): number {
  if (irr.ghi <= 0) return 0;
  const tilt = tiltDeg * RAD;
  const zenith = irr.sun.zenithDeg * RAD;
  const cosAoi =
    Math.cos(zenith) * Math.cos(tilt) +
    Math.sin(zenith) * Math.sin(tilt) * Math.cos((irr.sun.azimuthDeg - azimuthDeg) * RAD);
  const beam = irr.dni * Math.max(0, cosAoi);
  const sky = (irr.dhi * (1 + Math.cos(tilt))) / 2;
  const ground = (irr.ghi * albedo * (1 - Math.cos(tilt))) / 2;
  return Math.max(0, beam + sky + ground);
}

/** AC power of `plant` under a clear sky at instant `t`, W (0 at night, capped at the AC rating). */
export function clearSkyPvW(plant: PvPlantSpec, location: GeoLocation, t: number): number {
  const poa = planeOfArrayIrradiance(
    clearSkyIrradiance(t, location),
    plant.tiltDeg,
    plant.azimuthDeg,
    plant.albedo ?? 0.2,
  );
  if (poa <= 0) return 0;
  return Math.min(plant.acRatingW, ((plant.peakWp * poa) / 1000) * plant.performanceRatio);
}

/**
 * Mean of `fn` over [start, start + stepMs) by the midpoint rule with `samples` points: the mean power of a 15-min
 * interval, not the power at its start (which is a quarter of an hour early, or zero for the interval of sunrise).
 */
export function meanOverInterval(fn: (t: number) => number, start: number, stepMs: number, samples: number): number {
  const n = Math.max(1, Math.floor(samples));
  const dt = stepMs / n;
  let sum = 0;
  for (let k = 0; k < n; k++) sum += fn(start + (k + 0.5) * dt);
  return sum / n;
}
