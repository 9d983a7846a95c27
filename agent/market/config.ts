/**
 * The market's config sections as the market code takes them: `market` (role mgmc) as ContractRules, `dso.market`
 * (role dso) as the sequencer's options. The config writes prices as currency per kWh (0.30) like the tariffs; the
 * market computes in integer micro-units per kWh (300000), so that every node clears and settles to the same unit.
 */
import type { Static } from '@sinclair/typebox';
import type { dsoMarketSchema } from '../config/link-schema.js';
import type { AgentConfig } from '../config/schema.js';
import type { DsoMarketOptions } from '../dso/node.js';
import { checkGridPrices, type GridPrices } from './curve.js';
import { type ContractRules, parseRules } from './rules.js';

/** The `dso.market` section as loaded (defaults filled in). */
export type DsoMarketSection = Static<typeof dsoMarketSchema>;

/** A config price (currency per kWh) in micro-units per kWh, rounded to the nearest micro-unit. */
export function microPerKWh(price: number): number {
  if (!Number.isFinite(price) || price < 0) {
    throw new RangeError(`a market price must be a number >= 0 (currency per kWh), got ${price}`);
  }
  return Math.round(price * 1_000_000);
}

/**
 * The MGMC's contract rules (config `market.rules`) in the market's units. Goes through parseRules, which checks the
 * anonyms of allow and deny (EIP-55 checksum, none both allowed and denied) and throws a RulesError naming
 * market.rules and every problem; the config check reports the same with file:line first.
 */
export function marketRules(config: AgentConfig): ContractRules {
  const rules = config.market.rules;
  return parseRules(
    {
      ...(rules.floorPrice === undefined ? {} : { floorPrice: microPerKWh(rules.floorPrice) }),
      ...(rules.ceilingPrice === undefined ? {} : { ceilingPrice: microPerKWh(rules.ceilingPrice) }),
      ...(rules.maxQtyWh === undefined ? {} : { maxQtyWh: rules.maxQtyWh }),
      greenOnly: rules.greenOnly,
      ...(rules.allow === undefined ? {} : { allow: rules.allow }),
      ...(rules.deny === undefined ? {} : { deny: rules.deny }),
      ...(rules.roundCap === undefined ? {} : { roundCap: rules.roundCap }),
    },
    'market.rules',
  );
}

/**
 * The signing meter (meters[].name) whose readings settle this MGMC's trades: `market.meter`, else the first meter;
 * undefined when the config has no signing meter (the config check refuses that when market.enabled).
 */
export function marketMeter(config: AgentConfig): string | undefined {
  return config.market.meter ?? config.meters[0]?.name;
}

/**
 * The DSO's market sequencer options from `dso.market`: timing in ms, and the same prices for every interval (grid
 * band and imbalance price in micro-units per kWh). Throws a CurveError when the feed-in price is above the import
 * price (the config check reports that first).
 */
export function dsoMarketOptions(section: DsoMarketSection): DsoMarketOptions {
  const grid: GridPrices = Object.freeze({
    importPrice: microPerKWh(section.importPrice),
    exportPrice: microPerKWh(section.exportPrice),
  });
  checkGridPrices(grid, 'dso.market');
  const prices = Object.freeze({ grid, imbalancePrice: microPerKWh(section.imbalancePrice) });
  const minutes = (m: number) => m * 60_000;
  const seconds = (s: number) => Math.round(s * 1000);
  return {
    timing: {
      intervalMs: minutes(section.intervalMinutes),
      leadMs: minutes(section.leadMinutes),
      gateMs: minutes(section.gateMinutes),
      phaseMs: seconds(section.phaseSeconds),
      positionWaitMs: seconds(section.positionWaitSeconds),
      deliveryDelayMs: minutes(section.deliveryDelayMinutes),
      deliveryWaitMs: seconds(section.deliveryWaitSeconds),
    },
    roundCap: section.roundCap,
    maxAttempts: section.maxAttempts,
    ...(section.maxQtyWh === undefined ? {} : { maxQtyWh: section.maxQtyWh }),
    prices: () => prices,
  };
}
