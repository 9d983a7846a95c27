/**
 * Tariff config → price series over a horizon. A price applies to a whole interval by the local time at the
 * interval's middle, so a 15-minute step never straddles two periods' meaning.
 */
import type { AgentConfig } from '../config/schema.js';
import { inWindow, type LocalClock } from './local-time.js';
import type { Horizon } from './model.js';

type PriceConfig = AgentConfig['tariffs'][number]['import'];
const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** The price of one local instant. */
export function priceAt(spec: PriceConfig, weekday: number, minuteOfDay: number): number {
  for (const p of spec.periods) {
    if (p.days !== undefined && !p.days.includes(DAY_NAMES[weekday] as (typeof p.days)[number])) continue;
    if (inWindow(minuteOfDay, p.from, p.to)) return p.price;
  }
  return spec.price;
}

/** Price per interval of the horizon, currency per kWh. */
export function priceSeries(spec: PriceConfig, horizon: Horizon, local: LocalClock): number[] {
  return Array.from({ length: horizon.steps }, (_, t) => {
    const mid = horizon.start + t * horizon.stepMs + horizon.stepMs / 2;
    const lt = local.at(mid);
    return priceAt(spec, lt.weekday, lt.minuteOfDay);
  });
}
