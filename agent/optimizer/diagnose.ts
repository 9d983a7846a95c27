/**
 * What is wrong with a site model, in words a technician can act on. `checkSite` runs before formulation: errors
 * (limits that contradict each other, series of the wrong length, numbers that are not numbers) mean the LP would be
 * meaningless, so the optimizer falls back to a safe schedule; warnings (an EV that cannot be charged in time, load
 * above what the connection can carry) still get an optimal schedule, which then shows the shortfall.
 */
import { batteryCeilingWh, batteryFloorWh } from './formulate.js';
import { type BuildingModel, type SiteModel, stepHours } from './model.js';

export interface Diagnosis {
  readonly severity: 'error' | 'warning';
  /** Building and DER the finding is about, when it is about one. */
  readonly building?: string;
  readonly der?: string;
  /** Which constraints are involved, in words (e.g. "socMinPct 80 > socMaxPct 60"). */
  readonly constraint: string;
  readonly message: string;
}

function fmtTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function kwh(wh: number): string {
  return `${(wh / 1000).toFixed(1)} kWh`;
}

/** Finds contradictions and impossible requests in a site model; never throws. */
export function checkSite(site: SiteModel): Diagnosis[] {
  const out: Diagnosis[] = [];
  const h = site.horizon;
  const err = (constraint: string, message: string, building?: string, der?: string) =>
    out.push({ severity: 'error', constraint, message, ...(building ? { building } : {}), ...(der ? { der } : {}) });
  const warn = (constraint: string, message: string, building?: string, der?: string) =>
    out.push({ severity: 'warning', constraint, message, ...(building ? { building } : {}), ...(der ? { der } : {}) });

  if (!Number.isInteger(h.steps) || h.steps < 1 || h.steps > 10_000) {
    err('horizon.steps', `the horizon must have 1 to 10000 intervals, got ${h.steps}`);
    return out;
  }
  if (!(h.stepMs >= 60_000) || h.stepMs % 60_000 !== 0) {
    err('horizon.stepMs', `the interval must be a whole number of minutes, got ${h.stepMs} ms`);
    return out;
  }
  const series = (values: readonly unknown[] | undefined, what: string, building?: string, der?: string) => {
    if (values === undefined) return;
    if (values.length !== h.steps) {
      err(what, `${what} has ${values.length} values; the horizon has ${h.steps} intervals`, building, der);
      return;
    }
    const bad = values.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
    if (bad >= 0) err(what, `${what}[${bad}] is ${String(values[bad])}, not a number`, building, der);
  };
  if (site.buildings.length === 0) err('buildings', 'the site has no building to plan for');
  const names = new Set<string>();
  for (const b of site.buildings) {
    if (names.has(b.name)) err('buildings[].name', `building name ${b.name} is used twice`, b.name);
    names.add(b.name);
    checkBuilding(b, site, series, err, warn);
  }
  for (const tr of site.trades) {
    if (!Number.isInteger(tr.step) || tr.step < 0 || tr.step >= h.steps) {
      err('trades[].step', `a committed trade is for interval ${tr.step}, outside the horizon (0-${h.steps - 1})`);
    } else if (!Number.isFinite(tr.powerW) || !Number.isFinite(tr.price)) {
      err('trades[]', `the committed trade in interval ${tr.step} has a power or price that is not a number`);
    }
  }
  series(
    site.caps.maxImportW?.map((v) => v ?? 0),
    'caps.maxImportW',
  );
  series(
    site.caps.maxExportW?.map((v) => v ?? 0),
    'caps.maxExportW',
  );
  for (let t = 0; t < h.steps; t++) {
    const imp = site.caps.maxImportW?.[t];
    const exp = site.caps.maxExportW?.[t];
    if (imp !== undefined && exp !== undefined && imp < -exp) {
      err(
        'caps',
        `interval ${t}: the DSO caps allow no net position (import cap ${imp} W is below -export cap ${exp} W)`,
      );
    }
  }
  return out;
}

type Report = (constraint: string, message: string, building?: string, der?: string) => void;

function checkBuilding(
  b: BuildingModel,
  site: SiteModel,
  series: (values: readonly unknown[] | undefined, what: string, building?: string, der?: string) => void,
  err: Report,
  warn: Report,
): void {
  const h = site.horizon;
  const dt = stepHours(h);
  const n = b.name;
  series(b.criticalLoadW, 'criticalLoadW', n);
  series(b.grid.importPrice, 'grid.importPrice', n);
  series(b.grid.exportPrice, 'grid.exportPrice', n);
  if (!(b.grid.importLimitW >= 0)) err('grid.importLimitW', `import limit ${b.grid.importLimitW} W must be >= 0`, n);
  if (!(b.grid.exportLimitW >= 0)) err('grid.exportLimitW', `export limit ${b.grid.exportLimitW} W must be >= 0`, n);
  for (const p of b.pv) {
    series(p.forecastW, `pv ${p.name} forecastW`, n, p.name);
    if (p.forecastW.some((w) => w < 0))
      warn('pv.forecastW', `PV ${p.name}: negative forecast values count as 0`, n, p.name);
  }
  let maxDischarge = 0;
  for (const k of b.batteries) {
    const where = `battery ${k.name}`;
    if (!(k.capacityWh > 0)) err('capacityWh', `${where}: capacity ${k.capacityWh} Wh must be > 0`, n, k.name);
    if (!(k.socMinPct >= 0 && k.socMaxPct <= 100 && k.socMinPct < k.socMaxPct)) {
      err(
        `socMinPct ${k.socMinPct} < socMaxPct ${k.socMaxPct}, both 0-100`,
        `${where}: SoC limits contradict: minimum ${k.socMinPct} % must be below maximum ${k.socMaxPct} %`,
        n,
        k.name,
      );
    }
    if (k.reservePct > k.socMaxPct) {
      err(
        `reservePct ${k.reservePct} <= socMaxPct ${k.socMaxPct}`,
        `${where}: the backup reserve ${k.reservePct} % is above the highest SoC ${k.socMaxPct} % the BMS allows`,
        n,
        k.name,
      );
    }
    for (const [field, v] of [
      ['chargeEfficiency', k.chargeEfficiency],
      ['dischargeEfficiency', k.dischargeEfficiency],
    ] as const) {
      if (!(v > 0 && v <= 1)) err(field, `${where}: ${field} ${v} must be in (0, 1]`, n, k.name);
    }
    if (!(k.maxChargeW >= 0 && k.maxDischargeW >= 0)) {
      err('maxChargeW/maxDischargeW', `${where}: power limits must be >= 0 W`, n, k.name);
    }
    if (!(k.degradationCostPerKWh >= 0)) err('degradationCostPerKWh', `${where}: wear cost must be >= 0`, n, k.name);
    if (!(k.energyWh >= 0) || k.energyWh > k.capacityWh * 1.0001) {
      err('energyWh', `${where}: stored energy ${k.energyWh} Wh is outside 0-${k.capacityWh} Wh`, n, k.name);
    } else if (k.capacityWh > 0) {
      const reserveWh = (k.capacityWh * Math.max(k.reservePct, k.socMinPct)) / 100;
      if (k.energyWh < reserveWh) {
        const t = Array.from({ length: h.steps }, (_, i) => i).find((i) => batteryFloorWh(k, i, dt) >= reserveWh);
        warn(
          'reservePct',
          `${where}: holds ${kwh(k.energyWh)}, below its reserve of ${kwh(reserveWh)}; the plan charges it back` +
            (t === undefined
              ? ' but cannot reach the reserve within the horizon'
              : ` by ${fmtTime(h.start + (t + 1) * h.stepMs)}`),
          n,
          k.name,
        );
      }
      if (batteryCeilingWh(k, 0, dt) > (k.capacityWh * k.socMaxPct) / 100 + 1e-6) {
        warn(
          'socMaxPct',
          `${where}: holds more than its ${k.socMaxPct} % maximum; the plan discharges it first`,
          n,
          k.name,
        );
      }
    }
    maxDischarge += Math.max(0, k.maxDischargeW);
  }
  for (const e of b.evs) {
    const where = `EV ${e.name}`;
    if (!(e.departure > e.arrival)) {
      err(
        'departure > arrival',
        `${where}: departure ${fmtTime(e.departure)} is not after arrival ${fmtTime(e.arrival)}`,
        n,
        e.name,
      );
      continue;
    }
    if (!(e.maxPowerW >= 0) || !(e.energyWh >= 0)) {
      err('maxPowerW/energyWh', `${where}: power and energy must be >= 0`, n, e.name);
      continue;
    }
    const end = h.start + h.steps * h.stepMs;
    const from = Math.max(e.arrival, h.start);
    const to = Math.min(e.departure, end);
    const possibleWh = to > from ? (e.maxPowerW * (to - from)) / 3_600_000 : 0;
    if (e.departure > end) {
      warn(
        'departure',
        `${where}: leaves after the horizon ends (${fmtTime(end)}); its energy is planned by then`,
        n,
        e.name,
      );
    }
    if (e.energyWh > possibleWh + 1e-6) {
      warn(
        `energyWh ${e.energyWh} <= maxPowerW ${e.maxPowerW} x plugged hours`,
        `${where}: needs ${kwh(e.energyWh)} by ${fmtTime(e.departure)} but can take at most ${kwh(possibleWh)} ` +
          `(${(e.maxPowerW / 1000).toFixed(1)} kW while plugged in); it charges at full power and falls short by ` +
          `${kwh(e.energyWh - possibleWh)}`,
        n,
        e.name,
      );
    }
  }
  for (const f of b.flexibleLoads) {
    if (f.kind === 'curtailable') series(f.baselineW, `flexible ${f.name} baselineW`, n, f.name);
    else if (f.energyWh === undefined)
      err('energyWh', `flexible load ${f.name}: a shiftable load needs energyWh`, n, f.name);
    if (!(f.costPerKWh >= 0)) err('costPerKWh', `flexible load ${f.name}: cost must be >= 0`, n, f.name);
  }
  // Load the site cannot carry even with every source at full output: the plan will show unserved energy.
  let worst = { t: -1, gap: 0 };
  for (let t = 0; t < h.steps; t++) {
    const supply = b.grid.importLimitW + maxDischarge + b.pv.reduce((s, p) => s + Math.max(0, p.forecastW[t] ?? 0), 0);
    const gap = (b.criticalLoadW[t] ?? 0) - supply;
    if (gap > worst.gap) worst = { t, gap };
  }
  if (worst.t >= 0) {
    warn(
      'criticalLoadW <= importLimitW + PV + battery',
      `critical load exceeds the import limit plus PV plus battery discharge by up to ${(worst.gap / 1000).toFixed(1)} kW ` +
        `(at ${fmtTime(h.start + worst.t * h.stepMs)}); that load cannot be served`,
      n,
    );
  }
}

/** Describes an irreducible infeasible subsystem by the meaning of its rows. */
export function explainIis(rows: readonly number[], rowMeaning: readonly string[]): Diagnosis {
  const parts = rows.slice(0, 8).map((r) => rowMeaning[r] ?? `row ${r}`);
  const more = rows.length > 8 ? ` and ${rows.length - 8} more` : '';
  return {
    severity: 'error',
    constraint: parts.join('; '),
    message: `these constraints cannot all hold together: ${parts.join('; ')}${more}`,
  };
}
