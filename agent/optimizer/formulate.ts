/**
 * Site model → linear program. Units inside the LP are kW and kWh (numbers near 1-100 keep the solver's tolerances
 * meaningful); costs are currency. One block of columns and rows per building, joined at the site by committed
 * trades, optional P2P market columns and DSO caps on the net position.
 *
 * Soft where reality is soft: load that cannot be served, PV that must be spilled and EV energy that cannot be
 * delivered in time are penalized slack columns, so a hard-to-meet request yields the best possible schedule plus a
 * diagnosis instead of "infeasible". What remains hard (SoC dynamics, device limits, caps) is checked before
 * formulation (diagnose.ts).
 *
 * Binaries only where a linear program could profit from physically impossible flows: with a negative price the
 * LP would charge and discharge a battery at once to burn energy through its losses, and with a feed-in price at
 * or above the import price it would import and export at once. Those intervals get a binary; all others stay LP.
 */
import { type LinearProgram, LpBuilder } from './lp.js';
import { type Battery, type BuildingModel, type SiteModel, stepHours } from './model.js';

/**
 * A tiny cost per kWh and interval of delay for EV charging and shiftable loads: among equally cheap plans the
 * one that serves earlier wins (a car may leave early; a flat tariff otherwise leaves the choice to the solver's
 * pivoting, which dispatches as erratic spikes). Far below any real price difference.
 */
export const DELAY_COST_PER_KWH = 1e-6;

/** Price of a kWh of load not served or of PV spilled by a plant that cannot be curtailed (currency per kWh). */
export const PENALTY_PER_KWH = 10;

export interface BatteryColumns {
  readonly charge: Int32Array;
  readonly discharge: Int32Array;
  readonly energy: Int32Array;
  /** -1 where the interval has no binary. */
  readonly mode: Int32Array;
}

export interface BuildingColumns {
  readonly imports: Int32Array;
  readonly exports: Int32Array;
  /** -1 where the site has no trades or market in that interval. */
  readonly alloc: Int32Array;
  readonly unserved: Int32Array;
  readonly pv: readonly { readonly output: Int32Array; readonly spill: Int32Array }[];
  readonly batteries: readonly BatteryColumns[];
  readonly evs: readonly { readonly power: Int32Array; readonly shortfall: number }[];
  readonly flexible: readonly { readonly power: Int32Array; readonly shortfall: number }[];
  /** Row index of each interval's energy balance (its dual is the building's marginal price of energy). */
  readonly balanceRows: Int32Array;
}

export interface SiteColumns {
  readonly buildings: readonly BuildingColumns[];
  /** Per interval, -1 where there is no market column. */
  readonly marketBuy: Int32Array;
  readonly marketSell: Int32Array;
}

export interface Formulation {
  readonly lp: LinearProgram;
  readonly columns: SiteColumns;
  /** Human description of every row, for infeasibility reports: same index as lp.rowNames. */
  readonly rowMeaning: readonly string[];
  /** Constant cost of the committed trades (already in lp.offset). */
  readonly committedTradeCost: number;
}

const kw = (w: number) => w / 1000;

function overlapFraction(from: number, to: number, stepStartMs: number, stepMs: number): number {
  const lo = Math.max(from, stepStartMs);
  const hi = Math.min(to, stepStartMs + stepMs);
  return hi > lo ? (hi - lo) / stepMs : 0;
}

function needsBatteryBinary(b: BuildingModel, t: number): boolean {
  return (b.grid.importPrice[t] ?? 0) < 0 || (b.grid.exportPrice[t] ?? 0) < 0;
}

function needsGridBinary(b: BuildingModel, t: number): boolean {
  return (b.grid.exportPrice[t] ?? 0) >= (b.grid.importPrice[t] ?? 0) && b.grid.exportLimitW > 0;
}

/** Builds the LP for a site. The model must have passed `checkSite` (diagnose.ts) without errors. */
export function formulate(site: SiteModel, name = 'mgmc_site'): Formulation {
  const h = site.horizon;
  const T = h.steps;
  const dt = stepHours(h);
  const lp = new LpBuilder(name);
  const meaning: string[] = [];
  const row = (rowName: string, what: string, lo: number, hi: number, terms: [number, number][]) => {
    meaning.push(what);
    return lp.addRow(rowName, lo, hi, terms);
  };
  const at = (t: number) => new Date(h.start + t * h.stepMs).toISOString().slice(0, 16).replace('T', ' ');

  const tradeW = new Float64Array(T);
  let committedTradeCost = 0;
  for (const tr of site.trades) {
    tradeW[tr.step] = (tradeW[tr.step] ?? 0) + tr.powerW;
    committedTradeCost += kw(tr.powerW) * dt * tr.price;
  }
  lp.addOffset(committedTradeCost);

  const marketBuy = new Int32Array(T).fill(-1);
  const marketSell = new Int32Array(T).fill(-1);
  for (const m of site.market ?? []) {
    marketBuy[m.step] = lp.addColumn(`mbuy_${m.step}`, 0, kw(m.limitW), m.price * dt);
    marketSell[m.step] = lp.addColumn(`msell_${m.step}`, 0, kw(m.limitW), -m.price * dt);
  }
  const siteExchange = (t: number) => tradeW[t] !== 0 || marketBuy[t] !== -1;

  const buildings = site.buildings.map((b, bi) => {
    const g = b.grid;
    const imports = new Int32Array(T);
    const exports = new Int32Array(T);
    const alloc = new Int32Array(T).fill(-1);
    const unserved = new Int32Array(T);
    const balanceTerms: [number, number][][] = Array.from({ length: T }, () => []);
    for (let t = 0; t < T; t++) {
      imports[t] = lp.addColumn(`imp_${bi}_${t}`, 0, kw(g.importLimitW), (g.importPrice[t] ?? 0) * dt);
      exports[t] = lp.addColumn(`exp_${bi}_${t}`, 0, kw(g.exportLimitW), -(g.exportPrice[t] ?? 0) * dt);
      unserved[t] = lp.addColumn(`uns_${bi}_${t}`, 0, Number.POSITIVE_INFINITY, PENALTY_PER_KWH * dt);
      balanceTerms[t]?.push([imports[t] ?? 0, 1], [exports[t] ?? 0, -1], [unserved[t] ?? 0, 1]);
      if (siteExchange(t)) {
        alloc[t] = lp.addColumn(`alloc_${bi}_${t}`, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
        balanceTerms[t]?.push([alloc[t] ?? 0, 1]);
      }
      if (needsGridBinary(b, t)) {
        const z = lp.addColumn(`gz_${bi}_${t}`, 0, 1, 0, true);
        row(`gimp_${bi}_${t}`, `${b.name}: no import while exporting at ${at(t)}`, Number.NEGATIVE_INFINITY, 0, [
          [imports[t] ?? 0, 1],
          [z, -kw(g.importLimitW)],
        ]);
        row(
          `gexp_${bi}_${t}`,
          `${b.name}: no export while importing at ${at(t)}`,
          Number.NEGATIVE_INFINITY,
          kw(g.exportLimitW),
          [
            [exports[t] ?? 0, 1],
            [z, kw(g.exportLimitW)],
          ],
        );
      }
    }

    const pv = b.pv.map((p, pi) => {
      const output = new Int32Array(T);
      const spill = new Int32Array(T).fill(-1);
      for (let t = 0; t < T; t++) {
        const f = Math.max(0, kw(p.forecastW[t] ?? 0));
        if (p.curtailable) {
          output[t] = lp.addColumn(`pv_${bi}_${pi}_${t}`, 0, f);
        } else {
          // A plant we cannot curtail still produces; only the inverter's own export limiter can spill, penalized.
          output[t] = lp.addColumn(`pv_${bi}_${pi}_${t}`, 0, f);
          spill[t] = lp.addColumn(`spill_${bi}_${pi}_${t}`, 0, f, PENALTY_PER_KWH * dt);
          row(`pvfix_${bi}_${pi}_${t}`, `${b.name}: PV ${p.name} cannot be curtailed at ${at(t)}`, f, f, [
            [output[t] ?? 0, 1],
            [spill[t] ?? 0, 1],
          ]);
        }
        balanceTerms[t]?.push([output[t] ?? 0, 1]);
      }
      return { output, spill };
    });

    const batteries = b.batteries.map((k, ki) => batteryBlock(lp, row, at, k, bi, ki, T, dt, balanceTerms, b));

    const evs = b.evs.map((e, ei) => {
      const power = new Int32Array(T);
      const terms: [number, number][] = [];
      for (let t = 0; t < T; t++) {
        const f = overlapFraction(e.arrival, e.departure, h.start + t * h.stepMs, h.stepMs);
        power[t] = lp.addColumn(`ev_${bi}_${ei}_${t}`, 0, kw(e.maxPowerW) * f, DELAY_COST_PER_KWH * t * dt);
        balanceTerms[t]?.push([power[t] ?? 0, -1]);
        terms.push([power[t] ?? 0, dt]);
      }
      const need = kw(e.energyWh);
      const shortfall = lp.addColumn(`evshort_${bi}_${ei}`, 0, need, e.shortfallCostPerKWh);
      terms.push([shortfall, 1]);
      const departs = new Date(e.departure).toISOString().slice(0, 16).replace('T', ' ');
      row(`evE_${bi}_${ei}`, `${b.name}: EV ${e.name} needs ${need.toFixed(1)} kWh by ${departs}`, need, need, terms);
      return { power, shortfall };
    });

    const flexible = b.flexibleLoads.map((fl, fi) => {
      const power = new Int32Array(T);
      let shortfall = -1;
      if (fl.kind === 'curtailable') {
        // Column = energy shed; consumption = baseline - shed.
        for (let t = 0; t < T; t++) {
          const base = Math.max(0, kw(fl.baselineW?.[t] ?? 0));
          const maxShed = base * Math.min(1, Math.max(0, fl.maxShedFraction ?? 1));
          power[t] = lp.addColumn(`shed_${bi}_${fi}_${t}`, 0, maxShed, fl.costPerKWh * dt);
          balanceTerms[t]?.push([power[t] ?? 0, 1]);
        }
      } else {
        const terms: [number, number][] = [];
        for (let t = 0; t < T; t++) {
          const f = overlapFraction(
            fl.earliest ?? h.start,
            fl.latest ?? h.start + T * h.stepMs,
            h.start + t * h.stepMs,
            h.stepMs,
          );
          power[t] = lp.addColumn(`shift_${bi}_${fi}_${t}`, 0, kw(fl.maxPowerW) * f, DELAY_COST_PER_KWH * t * dt);
          balanceTerms[t]?.push([power[t] ?? 0, -1]);
          terms.push([power[t] ?? 0, dt]);
        }
        const need = kw(fl.energyWh ?? 0);
        shortfall = lp.addColumn(`shiftshort_${bi}_${fi}`, 0, need, Math.max(fl.costPerKWh, 0));
        terms.push([shortfall, 1]);
        row(
          `shE_${bi}_${fi}`,
          `${b.name}: ${fl.name} must run ${need.toFixed(1)} kWh in its window`,
          need,
          need,
          terms,
        );
      }
      return { power, shortfall };
    });

    const balanceRows = new Int32Array(T);
    for (let t = 0; t < T; t++) {
      let demand = kw(b.criticalLoadW[t] ?? 0);
      for (const fl of b.flexibleLoads)
        if (fl.kind === 'curtailable') demand += Math.max(0, kw(fl.baselineW?.[t] ?? 0));
      balanceRows[t] = row(
        `bal_${bi}_${t}`,
        `${b.name}: energy balance at ${at(t)}`,
        demand,
        demand,
        balanceTerms[t] ?? [],
      );
      if (alloc[t] !== -1) {
        const flowTerms: [number, number][] = [
          [imports[t] ?? 0, 1],
          [exports[t] ?? 0, -1],
          [alloc[t] ?? 0, 1],
        ];
        row(
          `conn_${bi}_${t}`,
          `${b.name}: connection limit at ${at(t)}`,
          -kw(g.exportLimitW),
          kw(g.importLimitW),
          flowTerms,
        );
      }
    }
    return { imports, exports, alloc, unserved, pv, batteries, evs, flexible, balanceRows };
  });

  for (let t = 0; t < T; t++) {
    const maxImp = site.caps.maxImportW?.[t];
    const maxExp = site.caps.maxExportW?.[t];
    if (siteExchange(t)) {
      // What the buildings take from the P2P side equals what the site bought minus what it sold.
      const terms: [number, number][] = buildings.map((b) => [b.alloc[t] ?? 0, 1]);
      if (marketBuy[t] !== -1) terms.push([marketBuy[t] ?? 0, -1], [marketSell[t] ?? 0, 1]);
      const fixed = kw(tradeW[t] ?? 0);
      row(`p2p_${t}`, `site: P2P energy shared among buildings at ${at(t)}`, fixed, fixed, terms);
    }
    if (maxImp === undefined && maxExp === undefined) continue;
    // The cap is on the physical net position: grid residual plus everything traded.
    const terms: [number, number][] = [];
    for (const b of buildings) terms.push([b.imports[t] ?? 0, 1], [b.exports[t] ?? 0, -1]);
    if (marketBuy[t] !== -1) terms.push([marketBuy[t] ?? 0, 1], [marketSell[t] ?? 0, -1]);
    const fixed = kw(tradeW[t] ?? 0);
    row(
      `cap_${t}`,
      `site: DSO cap on the net position at ${at(t)}`,
      maxExp === undefined ? Number.NEGATIVE_INFINITY : -kw(maxExp) - fixed,
      maxImp === undefined ? Number.POSITIVE_INFINITY : kw(maxImp) - fixed,
      terms,
    );
  }

  return {
    lp: lp.build(),
    columns: { buildings, marketBuy, marketSell },
    rowMeaning: meaning,
    committedTradeCost,
  };
}

type RowFn = (rowName: string, what: string, lo: number, hi: number, terms: [number, number][]) => number;

/** Lowest stored energy the plan may reach at the end of interval t: the reserve, or as close as charging gets. */
export function batteryFloorWh(k: Battery, t: number, dtHours: number): number {
  const reserve = (k.capacityWh * Math.max(k.reservePct, k.socMinPct)) / 100;
  const reachable = k.energyWh + (t + 1) * k.maxChargeW * k.chargeEfficiency * dtHours;
  return Math.max(0, Math.min(reserve, reachable));
}

/** Highest stored energy at the end of interval t: the BMS maximum, or as close as discharging gets. */
export function batteryCeilingWh(k: Battery, t: number, dtHours: number): number {
  const top = (k.capacityWh * k.socMaxPct) / 100;
  const reachable = k.energyWh - ((t + 1) * k.maxDischargeW * dtHours) / k.dischargeEfficiency;
  return Math.min(k.capacityWh, Math.max(top, reachable));
}

function batteryBlock(
  lp: LpBuilder,
  row: RowFn,
  at: (t: number) => string,
  k: Battery,
  bi: number,
  ki: number,
  T: number,
  dt: number,
  balanceTerms: [number, number][][],
  b: BuildingModel,
): BatteryColumns {
  const charge = new Int32Array(T);
  const discharge = new Int32Array(T);
  const energy = new Int32Array(T);
  const mode = new Int32Array(T).fill(-1);
  const wear = (k.degradationCostPerKWh / 2) * dt;
  for (let t = 0; t < T; t++) {
    charge[t] = lp.addColumn(`ch_${bi}_${ki}_${t}`, 0, kw(k.maxChargeW), wear);
    discharge[t] = lp.addColumn(`dis_${bi}_${ki}_${t}`, 0, kw(k.maxDischargeW), wear);
    let lo = kw(batteryFloorWh(k, t, dt));
    const hi = kw(batteryCeilingWh(k, t, dt));
    if (t === T - 1 && k.terminal === 'keep') lo = Math.max(lo, Math.min(kw(k.energyWh), hi));
    energy[t] = lp.addColumn(`soc_${bi}_${ki}_${t}`, Math.min(lo, hi), hi);
    balanceTerms[t]?.push([discharge[t] ?? 0, 1], [charge[t] ?? 0, -1]);
    const terms: [number, number][] = [
      [energy[t] ?? 0, 1],
      [charge[t] ?? 0, -k.chargeEfficiency * dt],
      [discharge[t] ?? 0, dt / k.dischargeEfficiency],
    ];
    let rhs = 0;
    if (t === 0) rhs = kw(k.energyWh);
    else terms.push([energy[t - 1] ?? 0, -1]);
    row(`socdyn_${bi}_${ki}_${t}`, `${b.name}: battery ${k.name} energy at ${at(t)}`, rhs, rhs, terms);
    if (needsBatteryBinary(b, t)) {
      const y = lp.addColumn(`bm_${bi}_${ki}_${t}`, 0, 1, 0, true);
      mode[t] = y;
      row(
        `bch_${bi}_${ki}_${t}`,
        `${b.name}: battery ${k.name} charges only in charge mode at ${at(t)}`,
        Number.NEGATIVE_INFINITY,
        0,
        [
          [charge[t] ?? 0, 1],
          [y, -kw(k.maxChargeW)],
        ],
      );
      row(
        `bdis_${bi}_${ki}_${t}`,
        `${b.name}: battery ${k.name} discharges only in discharge mode at ${at(t)}`,
        Number.NEGATIVE_INFINITY,
        kw(k.maxDischargeW),
        [
          [discharge[t] ?? 0, 1],
          [y, kw(k.maxDischargeW)],
        ],
      );
    }
  }
  return { charge, discharge, energy, mode };
}
