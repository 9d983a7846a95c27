/**
 * The optimizer's parts from the config: the forecaster over the ledger's history, the present state from the
 * poller (running agent) or from overrides and the ledger (the `mgmc optimize` command), and the dispatch devices.
 * Kept here so main.ts and the CLI build the same thing.
 */

import type { AgentConfig } from '../config/schema.js';
import type { PointValue } from '../poll/poller.js';
import type { DispatchDeviceConfig } from './dispatch.js';
import type { HistorySource } from './forecast/history.js';
import {
  type BuildingLoadSource,
  consumptionTerms,
  createLedgerForecaster,
  type Forecaster,
  type PvPlantSource,
} from './forecast/index.js';
import type { SiteState } from './site-model.js';

/** A forecaster for every building and PV plant of the config, learning from `history`. */
export function forecasterFromConfig(config: AgentConfig, history: HistorySource): Forecaster {
  const opt = config.optimizer;
  const buildings: Record<string, BuildingLoadSource> = {};
  const plants: Record<string, PvPlantSource> = {};
  for (const b of config.buildings) {
    const meter = b.load.meter === undefined ? undefined : { device: b.load.meter, point: b.load.meterPoint };
    buildings[b.name] = {
      timeZone: opt.timeZone,
      defaultLoadW: b.load.defaultW,
      // Without a meter at the connection the consumption is not measured: the default is all there is.
      terms:
        meter === undefined
          ? []
          : consumptionTerms({
              meter,
              pv: b.pv.map((p) => ({ device: p.device, point: p.point })),
              batteries: b.batteries.map((k) => ({ device: k.device, point: k.point })),
              controllableLoads: b.evChargers.map((e) => ({ device: e.device, point: e.point })),
            }),
    };
    for (const p of b.pv) {
      plants[p.device] = {
        device: p.device,
        point: p.point,
        plant: {
          peakWp: p.peakWp,
          acRatingW: p.acRatingW,
          tiltDeg: p.tiltDeg,
          azimuthDeg: p.azimuthDeg,
          performanceRatio: p.performanceRatio,
        },
        location: opt.location,
      };
    }
  }
  return createLedgerForecaster({ history, buildings, plants });
}

/** Every device point the forecasts read, to warm the history before the first plan. */
export function forecastSeries(config: AgentConfig): { device: string; point: string }[] {
  const out = new Map<string, { device: string; point: string }>();
  const add = (device: string, point: string) => out.set(`${device}\u0000${point}`, { device, point });
  for (const b of config.buildings) {
    if (b.load.meter !== undefined) add(b.load.meter, b.load.meterPoint);
    for (const p of b.pv) add(p.device, p.point);
    for (const k of b.batteries) add(k.device, k.point);
    for (const e of b.evChargers) add(e.device, e.point);
  }
  return [...out.values()];
}

/** IEC 61851 states with a car connected: B (connected), C and D (charging). */
function pluggedFromMode3(value: unknown): boolean | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const s = value.trim().toUpperCase();
  if (s.startsWith('A')) return false;
  if (s.startsWith('B') || s.startsWith('C') || s.startsWith('D')) return true;
  return undefined;
}

/**
 * The state the poller last read, ignoring values older than `maxAgeMs` (a battery that stopped answering has an
 * unknown SoC, not the one it had an hour ago).
 */
export function pollerState(
  config: AgentConfig,
  latest: (device: string) => ReadonlyMap<string, PointValue> | undefined,
  now: () => number,
  maxAgeMs = 300_000,
): SiteState {
  const socPoint = new Map<string, string>();
  for (const b of config.buildings) for (const k of b.batteries) socPoint.set(k.device, k.socPoint);
  const fresh = (device: string, point: string): PointValue | undefined => {
    const v = latest(device)?.get(point);
    return v !== undefined && now() - v.t <= maxAgeMs ? v : undefined;
  };
  return {
    batterySocPct(device) {
      const v = fresh(device, socPoint.get(device) ?? 'ChaState');
      return typeof v?.value === 'number' && Number.isFinite(v.value) ? v.value : undefined;
    },
    evPlugged(device) {
      return pluggedFromMode3(fresh(device, 'Mode3State')?.value);
    },
  };
}

/** State given on the command line, falling back to another source for what is not given. */
export function overrideState(
  soc: ReadonlyMap<string, number>,
  plugged: ReadonlySet<string>,
  fallback?: SiteState,
): SiteState {
  return {
    batterySocPct: (device) => soc.get(device) ?? fallback?.batterySocPct(device),
    evPlugged: (device) => (plugged.has(device) ? true : fallback?.evPlugged(device)),
  };
}

/** Dispatch settings for every controllable DER of the config. */
export function dispatchConfigs(config: AgentConfig): DispatchDeviceConfig[] {
  const out: DispatchDeviceConfig[] = [];
  for (const b of config.buildings) {
    for (const k of b.batteries) {
      out.push({
        kind: 'battery',
        building: b.name,
        der: k.device,
        device: k.device,
        maxChargeW: k.maxChargeW,
        maxDischargeW: k.maxDischargeW,
        reservePct: Math.max(k.reservePct, k.socMinPct),
        socMaxPct: k.socMaxPct,
      });
    }
    for (const p of b.pv) {
      if (!p.curtailable) continue;
      out.push({ kind: 'pv', building: b.name, der: p.device, device: p.device, ratedW: p.acRatingW });
    }
    for (const e of b.evChargers) {
      const phases = e.phases === 1 ? 1 : 3;
      out.push({
        kind: 'ev',
        building: b.name,
        der: e.device,
        device: e.device,
        phases,
        maxCurrentA: e.maxPowerW / (230 * phases),
      });
    }
  }
  return out;
}
