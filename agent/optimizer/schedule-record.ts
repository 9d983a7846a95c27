/**
 * The schedule as the MGMC signs it into its ledger: one `schedule` record per building, the contract with its DERs.
 * Signed data carries integers only (docs/protocol.md, "Units in signed data"), so powers are rounded to whole W and
 * costs to micro-units of currency; the ledger adds the digest and the signature, nothing here hashes.
 */
import type { NewRecord } from '../ledger/records.js';
import type { BuildingSchedule, CostBreakdown, SiteSchedule } from './schedule.js';

/** Whole W; -0 becomes 0 so the canonical bytes never depend on the sign of a zero. */
function intW(value: number | undefined, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`${where}: ${String(value)} is not a finite power; the optimizer produced an invalid schedule`);
  }
  return Math.round(value) || 0;
}

function series(values: readonly number[], steps: number, where: string): number[] {
  if (values.length !== steps) {
    throw new Error(`${where}: ${values.length} values for a horizon of ${steps} intervals`);
  }
  return values.map((v, t) => intW(v, `${where}[${t}]`));
}

/** Currency to micro-units (0.30 -> 300000). */
function micro(value: number, where: string): number {
  if (!Number.isFinite(value)) throw new Error(`${where}: ${value} is not a finite cost`);
  return Math.round(value * 1_000_000) || 0;
}

function costMicro(cost: CostBreakdown, where: string): Record<string, number> {
  return {
    import: micro(cost.import, `${where}.import`),
    export: micro(cost.export, `${where}.export`),
    degradation: micro(cost.degradation, `${where}.degradation`),
    trades: micro(cost.trades, `${where}.trades`),
    curtailment: micro(cost.curtailment, `${where}.curtailment`),
    penalties: micro(cost.penalties, `${where}.penalties`),
    total: micro(cost.total, `${where}.total`),
  };
}

function buildingRecord(schedule: SiteSchedule, b: BuildingSchedule): NewRecord {
  const { start, stepMs, steps } = schedule.horizon;
  const where = `schedule of building '${b.name}'`;
  const ders: Record<string, number[]> = {};
  const kinds: Record<string, string> = {};
  for (const der of b.ders) {
    if (Object.hasOwn(ders, der.name)) throw new Error(`${where}: DER name '${der.name}' appears twice`);
    ders[der.name] = series(der.powerW, steps, `${where}, DER '${der.name}'`);
    // The sign convention differs per kind (battery + discharge, ev + consumption); an auditor needs the kind.
    kinds[der.name] = der.kind;
  }
  return {
    type: 'schedule',
    body: {
      building: b.name,
      start,
      stepMs,
      steps,
      status: schedule.status,
      ders,
      kinds,
      netW: series(b.netW, steps, `${where}, netW`),
      costMicro: costMicro(b.cost, `${where}, cost`),
    },
  };
}

/**
 * One `schedule` record per building: `ders` maps each DER to its planned power per interval in whole W (pv: output,
 * battery: + discharge / - charge, ev and loads: consumption), `kinds` each DER's kind, `netW` the building's flow at
 * its connection (+ import), `costMicro` its cost breakdown in micro-units of currency, `status` optimal or fallback.
 * Throws on a non-finite value or a series of the wrong length, naming the building and the DER.
 */
export function scheduleRecords(schedule: SiteSchedule): NewRecord[] {
  const { start, stepMs, steps } = schedule.horizon;
  if (!(Number.isSafeInteger(start) && start >= 0 && Number.isSafeInteger(stepMs) && stepMs > 0)) {
    throw new Error(`schedule: horizon start ${start} and stepMs ${stepMs} must be non-negative integer ms`);
  }
  if (!(Number.isSafeInteger(steps) && steps >= 0)) throw new Error(`schedule: ${steps} is not a number of intervals`);
  return schedule.buildings.map((b) => buildingRecord(schedule, b));
}
