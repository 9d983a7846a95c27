/**
 * Decoded values are floats in the profile's unit (230.1 V); the ledger holds integers only (docs/protocol.md,
 * "Units"). Each engineering unit maps to one integer ledger unit fine enough for metering: mV, mA, mHz, W, Wh.
 */

export interface LedgerUnit {
  /** Unit name written into reading records. */
  readonly unit: string;
  /** Multiplier from the engineering unit to the ledger unit. */
  readonly factor: number;
}

const UNITS: Readonly<Record<string, LedgerUnit>> = {
  W: { unit: 'W', factor: 1 },
  kW: { unit: 'W', factor: 1000 },
  Wh: { unit: 'Wh', factor: 1 },
  kWh: { unit: 'Wh', factor: 1000 },
  MWh: { unit: 'Wh', factor: 1_000_000 },
  var: { unit: 'var', factor: 1 },
  kvar: { unit: 'var', factor: 1000 },
  varh: { unit: 'varh', factor: 1 },
  kvarh: { unit: 'varh', factor: 1000 },
  VA: { unit: 'VA', factor: 1 },
  kVA: { unit: 'VA', factor: 1000 },
  VAh: { unit: 'VAh', factor: 1 },
  kVAh: { unit: 'VAh', factor: 1000 },
  V: { unit: 'mV', factor: 1000 },
  A: { unit: 'mA', factor: 1000 },
  Hz: { unit: 'mHz', factor: 1000 },
  '%': { unit: 'permille', factor: 10 },
  '%WHRtg': { unit: 'permille', factor: 10 },
  '%WMax': { unit: 'permille', factor: 10 },
  '%VArMax': { unit: 'permille', factor: 10 },
  Pct: { unit: 'permille', factor: 10 },
  C: { unit: 'mC', factor: 1000 },
  s: { unit: 'ms', factor: 1000 },
  ms: { unit: 'ms', factor: 1 },
  Ah: { unit: 'mAh', factor: 1000 },
  AH: { unit: 'mAh', factor: 1000 },
  cos: { unit: 'milli', factor: 1000 },
  PF: { unit: 'milli', factor: 1000 },
  Degrees: { unit: 'millideg', factor: 1000 },
};

/** Unitless points (status words, enums, counters) are recorded as they are, unit "1". */
const UNITLESS: LedgerUnit = { unit: '1', factor: 1 };

/** The ledger unit for a profile unit; unknown units are recorded unscaled under their own name. */
export function ledgerUnitFor(unit: string | undefined): LedgerUnit {
  if (unit === undefined || unit === '') return UNITLESS;
  return UNITS[unit] ?? { unit, factor: 1 };
}

/** The integer to record, or undefined when the value cannot be one (not a finite number, or beyond 2^53). */
export function toLedgerInteger(value: number, unit: LedgerUnit): number | undefined {
  if (!Number.isFinite(value)) return undefined;
  const scaled = Math.round(value * unit.factor);
  return Number.isSafeInteger(scaled) ? scaled : undefined;
}
