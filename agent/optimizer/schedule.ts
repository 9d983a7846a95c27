/**
 * The optimizer's answer: per building and DER, what to do in each interval, what it costs, and the site's net
 * position (the only thing that leaves the MGMC). Powers in W (mean over the interval), energies in Wh, costs in
 * currency. Battery power is positive when discharging (the SunSpec and simulator convention).
 */
import type { Diagnosis } from './diagnose.js';
import type { Formulation } from './formulate.js';
import { type Horizon, type SiteModel, stepHours } from './model.js';

export interface CostBreakdown {
  /** Paid for grid imports. */
  readonly import: number;
  /** Earned for grid exports (a positive number lowers the total). */
  readonly export: number;
  readonly degradation: number;
  /** Paid (positive) or earned (negative) for P2P trades, committed and in the market columns. */
  readonly trades: number;
  /** Cost of curtailed flexible load. */
  readonly curtailment: number;
  /**
   * Penalties: unserved load, spilled PV that could not be curtailed, EV and shiftable energy short at departure,
   * and the negligible tie-breaking cost of serving later (formulate.ts DELAY_COST_PER_KWH).
   */
  readonly penalties: number;
  readonly total: number;
}

export interface DerSchedule {
  readonly name: string;
  readonly kind: 'pv' | 'battery' | 'ev' | 'shiftable' | 'curtailable';
  /**
   * pv: planned output (≤ forecast); battery: + discharge / - charge; ev and shiftable: consumption;
   * curtailable: consumption after shedding.
   */
  readonly powerW: readonly number[];
  /** pv: forecast output; curtailable: baseline; for the curtailment and shedding figures. */
  readonly availableW?: readonly number[];
  /** battery: state of charge at the end of each interval, %. */
  readonly socPct?: readonly number[];
  /** ev, shiftable: energy that cannot be delivered by the deadline, Wh. */
  readonly shortfallWh?: number;
}

export interface BuildingSchedule {
  readonly name: string;
  /** Physical flow at the building's connection, W: + import. */
  readonly netW: readonly number[];
  /** Grid-tariff part of it: what is billed at the import and export prices. */
  readonly gridImportW: readonly number[];
  readonly gridExportW: readonly number[];
  readonly unservedW: readonly number[];
  readonly ders: readonly DerSchedule[];
  /** Marginal value of one more kWh at the building in each interval (dual of its balance), currency per kWh. */
  readonly marginalPrice: readonly number[];
  readonly cost: CostBreakdown;
}

export interface SiteSchedule {
  readonly horizon: Horizon;
  /** optimal: solved; fallback: the model was not solvable, the safe schedule holds (see diagnosis). */
  readonly status: 'optimal' | 'fallback';
  readonly buildings: readonly BuildingSchedule[];
  /** The MGMC's net position per interval, W: + import (an equivalent load), - export (an equivalent source). */
  readonly netPositionW: readonly number[];
  readonly cost: CostBreakdown;
  readonly diagnosis: readonly Diagnosis[];
  readonly solveMs: number;
  /** Whether binaries were needed (MILP). */
  readonly mip: boolean;
}

const ZERO_COST: CostBreakdown = {
  import: 0,
  export: 0,
  degradation: 0,
  trades: 0,
  curtailment: 0,
  penalties: 0,
  total: 0,
};

function addCost(a: CostBreakdown, b: CostBreakdown): CostBreakdown {
  return {
    import: a.import + b.import,
    export: a.export + b.export,
    degradation: a.degradation + b.degradation,
    trades: a.trades + b.trades,
    curtailment: a.curtailment + b.curtailment,
    penalties: a.penalties + b.penalties,
    total: a.total + b.total,
  };
}

/** Rounds away solver noise (1e-9 kW) so a zero prints as 0 and an idle battery gets no setpoint. */
function watts(kwValue: number): number {
  const w = kwValue * 1000;
  return Math.abs(w) < 1e-3 ? 0 : Math.round(w * 1000) / 1000;
}

/** Reads a solved formulation back into a schedule. `rowDual` may be empty (MILP). */
export function extractSchedule(
  site: SiteModel,
  f: Formulation,
  x: Float64Array,
  rowDual: Float64Array,
  extra: { diagnosis: readonly Diagnosis[]; solveMs: number; mip: boolean },
): SiteSchedule {
  const h = site.horizon;
  const T = h.steps;
  const dt = stepHours(h);
  const v = (col: number) => (col < 0 ? 0 : (x[col] ?? 0));
  const buildings: BuildingSchedule[] = site.buildings.map((b, bi) => {
    const c = f.columns.buildings[bi]!;
    let imp = 0;
    let exp = 0;
    let degradation = 0;
    let curtailment = 0;
    let penalties = 0;
    const gridImportW: number[] = [];
    const gridExportW: number[] = [];
    const netW: number[] = [];
    const unservedW: number[] = [];
    const marginalPrice: number[] = [];
    for (let t = 0; t < T; t++) {
      const i = v(c.imports[t] ?? -1);
      const e = v(c.exports[t] ?? -1);
      const a = v(c.alloc[t] ?? -1);
      imp += i * dt * (b.grid.importPrice[t] ?? 0);
      exp += e * dt * (b.grid.exportPrice[t] ?? 0);
      gridImportW.push(watts(i));
      gridExportW.push(watts(e));
      netW.push(watts(i - e + a));
      const u = v(c.unserved[t] ?? -1);
      unservedW.push(watts(u));
      penalties += u * (f.lp.colCost[c.unserved[t] ?? 0] ?? 0);
      const dual = rowDual.length > 0 ? (rowDual[c.balanceRows[t] ?? 0] ?? 0) : Number.NaN;
      marginalPrice.push(dual / dt);
    }
    const ders: DerSchedule[] = [];
    b.pv.forEach((p, pi) => {
      const cols = c.pv[pi]!;
      for (let t = 0; t < T; t++) penalties += v(cols.spill[t] ?? -1) * (f.lp.colCost[cols.spill[t] ?? 0] ?? 0);
      ders.push({
        name: p.name,
        kind: 'pv',
        powerW: Array.from(cols.output, (col) => watts(v(col))),
        availableW: p.forecastW.map((w) => Math.max(0, w)),
      });
    });
    b.batteries.forEach((k, ki) => {
      const cols = c.batteries[ki]!;
      const powerW: number[] = [];
      const socPct: number[] = [];
      for (let t = 0; t < T; t++) {
        const ch = v(cols.charge[t] ?? -1);
        const dis = v(cols.discharge[t] ?? -1);
        degradation += (ch + dis) * dt * (k.degradationCostPerKWh / 2);
        powerW.push(watts(dis - ch));
        socPct.push((v(cols.energy[t] ?? -1) * 1000 * 100) / k.capacityWh);
      }
      ders.push({ name: k.name, kind: 'battery', powerW, socPct });
    });
    b.evs.forEach((e, ei) => {
      const cols = c.evs[ei]!;
      const short = v(cols.shortfall);
      penalties += short * e.shortfallCostPerKWh;
      for (const col of cols.power) penalties += v(col) * (f.lp.colCost[col] ?? 0);
      ders.push({
        name: e.name,
        kind: 'ev',
        powerW: Array.from(cols.power, (col) => watts(v(col))),
        shortfallWh: short * 1000,
      });
    });
    b.flexibleLoads.forEach((fl, fi) => {
      const cols = c.flexible[fi]!;
      if (fl.kind === 'curtailable') {
        const powerW: number[] = [];
        for (let t = 0; t < T; t++) {
          const shed = v(cols.power[t] ?? -1);
          curtailment += shed * dt * fl.costPerKWh;
          powerW.push(watts(Math.max(0, (fl.baselineW?.[t] ?? 0) / 1000) - shed));
        }
        ders.push({ name: fl.name, kind: 'curtailable', powerW, availableW: fl.baselineW ?? [] });
      } else {
        const short = v(cols.shortfall);
        penalties += short * Math.max(fl.costPerKWh, 0);
        for (const col of cols.power) penalties += v(col) * (f.lp.colCost[col] ?? 0);
        ders.push({
          name: fl.name,
          kind: 'shiftable',
          powerW: Array.from(cols.power, (col) => watts(v(col))),
          shortfallWh: short * 1000,
        });
      }
    });
    const cost: CostBreakdown = {
      import: imp,
      export: exp,
      degradation,
      trades: 0,
      curtailment,
      penalties,
      total: imp - exp + degradation + curtailment + penalties,
    };
    return { name: b.name, netW, gridImportW, gridExportW, unservedW, ders, marginalPrice, cost };
  });

  let marketTrades = 0;
  for (const m of site.market ?? []) {
    marketTrades += (v(f.columns.marketBuy[m.step] ?? -1) - v(f.columns.marketSell[m.step] ?? -1)) * dt * m.price;
  }
  const trades = f.committedTradeCost + marketTrades;
  let cost = buildings.reduce((acc, b) => addCost(acc, b.cost), ZERO_COST);
  cost = { ...cost, trades, total: cost.total + trades };
  const netPositionW = Array.from({ length: T }, (_, t) => {
    let w = 0;
    for (const b of buildings) w += (b.gridImportW[t] ?? 0) - (b.gridExportW[t] ?? 0);
    for (const tr of site.trades) if (tr.step === t) w += tr.powerW;
    w += (v(f.columns.marketBuy[t] ?? -1) - v(f.columns.marketSell[t] ?? -1)) * 1000;
    return Math.round(w * 1000) / 1000;
  });
  return { horizon: h, status: 'optimal', buildings, netPositionW, cost, ...extra };
}

/**
 * The schedule used when the model cannot be solved: batteries idle (nothing below any reserve, no export from
 * storage), curtailable PV limited so the export stays within the connection's limit, EVs and shiftable loads left
 * to their own devices (no setpoints are sent for them), curtailable loads at baseline. The grid takes the
 * difference within its limits; the rest shows as unserved.
 */
export function fallbackSchedule(site: SiteModel, diagnosis: readonly Diagnosis[]): SiteSchedule {
  const h = site.horizon;
  const T = h.steps;
  const dt = stepHours(h);
  const finite = (n: number | undefined) => (typeof n === 'number' && Number.isFinite(n) ? n : 0);
  const buildings: BuildingSchedule[] = site.buildings.map((b) => {
    const gridImportW: number[] = [];
    const gridExportW: number[] = [];
    const unservedW: number[] = [];
    const pvPlanned = b.pv.map(() => new Array<number>(T).fill(0));
    let imp = 0;
    let exp = 0;
    for (let t = 0; t < T; t++) {
      let load = finite(b.criticalLoadW[t]);
      for (const fl of b.flexibleLoads) if (fl.kind === 'curtailable') load += Math.max(0, finite(fl.baselineW?.[t]));
      const available = b.pv.map((p) => Math.max(0, finite(p.forecastW[t])));
      const importLimit = Math.max(0, finite(b.grid.importLimitW));
      const exportLimit = Math.max(0, finite(b.grid.exportLimitW));
      // Surplus above the export limit is taken off the curtailable plants, in proportion to what they could make.
      const surplus = available.reduce((s, w) => s + w, 0) - load - exportLimit;
      const curtailableW = available.reduce((s, w, i) => s + (b.pv[i]!.curtailable ? w : 0), 0);
      const cut = surplus > 0 && curtailableW > 0 ? Math.min(1, surplus / curtailableW) : 0;
      available.forEach((w, i) => {
        pvPlanned[i]![t] = b.pv[i]!.curtailable ? w * (1 - cut) : w;
      });
      const pv = pvPlanned.reduce((s, series) => s + (series[t] ?? 0), 0);
      const need = load - pv;
      const i = need > 0 ? Math.min(need, importLimit) : 0;
      const e = need < 0 ? Math.min(-need, exportLimit) : 0;
      gridImportW.push(i);
      gridExportW.push(e);
      unservedW.push(need > 0 ? need - i : 0);
      imp += (i / 1000) * dt * finite(b.grid.importPrice[t]);
      exp += (e / 1000) * dt * finite(b.grid.exportPrice[t]);
    }
    const ders: DerSchedule[] = [
      ...b.pv.map((p, i) => ({
        name: p.name,
        kind: 'pv' as const,
        powerW: pvPlanned[i]!,
        availableW: p.forecastW.map((w) => Math.max(0, finite(w))),
      })),
      ...b.batteries.map((k) => ({
        name: k.name,
        kind: 'battery' as const,
        powerW: new Array<number>(T).fill(0),
        socPct: new Array<number>(T).fill(k.capacityWh > 0 ? (finite(k.energyWh) / k.capacityWh) * 100 : 0),
      })),
    ];
    const cost = { ...ZERO_COST, import: imp, export: exp, total: imp - exp };
    const netW = gridImportW.map((i, t) => i - (gridExportW[t] ?? 0));
    return {
      name: b.name,
      netW,
      gridImportW,
      gridExportW,
      unservedW,
      ders,
      marginalPrice: new Array<number>(T).fill(Number.NaN),
      cost,
    };
  });
  const netPositionW = Array.from({ length: T }, (_, t) => buildings.reduce((s, b) => s + (b.netW[t] ?? 0), 0));
  const cost = buildings.reduce((acc, b) => addCost(acc, b.cost), ZERO_COST);
  return { horizon: h, status: 'fallback', buildings, netPositionW, cost, diagnosis, solveMs: 0, mip: false };
}
