/**
 * The demo's HTML report: one self-contained HTML5 document (inline CSS, inline SVG charts, no script, no URL), so it
 * can be mailed, archived and opened offline, printed, or read on a phone. A Content-Security-Policy meta tag makes the
 * browser refuse anything external should a later edit slip one in.
 *
 * Rendering is a pure function of DemoReportData; missing or non-finite numbers show as "n/a" in tables and are left
 * out of charts (svg.ts throws if one ever reaches a coordinate).
 */

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type {
  DemoReportData,
  FeederReport,
  LedgerReport,
  MarketIntervalReport,
  MicrogridReport,
  StepSample,
} from './report-data.js';
import {
  axis,
  bandScale,
  escapeXml,
  finite,
  type LegendItem,
  labelStride,
  legend,
  line,
  linearScale,
  MARKER_SHAPES,
  marker,
  niceTicks,
  numericTicks,
  type Point,
  polyline,
  rect,
  runs,
  stepPoints,
  svgChart,
  type Tick,
  text,
  textWidth,
  timeTicks,
  truncate,
  utcClock,
} from './svg.js';

/** Write the report, creating the directory. Returns the path written. */
export async function writeReport(path: string, data: DemoReportData): Promise<string> {
  const html = renderReport(data);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, html, 'utf8');
  return path;
}

export function renderReport(data: DemoReportData): string {
  const ids = idMaker();
  const body = [
    renderHeader(data),
    renderNav(),
    renderSummary(data),
    renderMicrogrids(data, ids),
    renderMarket(data, ids),
    renderFeeder(data, ids),
    renderLedgers(data, ids),
  ].join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${esc(data.title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

const esc = escapeXml;
const NA = 'n/a';

function fixed(v: number | null | undefined, decimals: number): string {
  const x = finite(v);
  if (x === null) return NA;
  const s = x.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  // toLocaleString keeps the sign of a value that rounds to zero ("-0.0"); a reader sees a stray minus.
  return /^-[0.,]*$/.test(s) ? s.slice(1) : s;
}

const kw = (w: number | null | undefined): string => fixed(finite(w) === null ? null : (w as number) / 1000, 1);
const kwh = (wh: number | null | undefined): string => fixed(finite(wh) === null ? null : (wh as number) / 1000, 1);
const price = (p: number | null | undefined): string => fixed(p, 3);
const money = (v: number | null | undefined): string => fixed(v, 2);
const pu = (v: number | null | undefined): string => fixed(v, 3);
const int = (v: number | null | undefined): string => fixed(v, 0);

function duration(seconds: number): string {
  const s = finite(seconds);
  if (s === null) return NA;
  if (s < 120) return `${fixed(s, 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function utcDateTime(ms: number): string {
  if (finite(ms) === null) return NA;
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function intervalLabel(m: MarketIntervalReport): string {
  const end = m.interval + (finite(m.durationMinutes) ?? 0) * 60_000;
  return `${utcClock(m.interval)}–${utcClock(end)}`;
}

/** Unique element ids for the page (chart titles reference them); names are not safe ids, counters are. */
function idMaker(): (prefix: string) => string {
  let n = 0;
  return (prefix) => `${prefix}-${++n}`;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + (finite(b) ?? 0), 0);
}

function figure(svg: string, caption: string): string {
  return `<figure>\n<div class="chart">${svg}</div>\n<figcaption>${caption}</figcaption>\n</figure>`;
}

function table(head: readonly string[], rows: readonly string[], numeric: readonly boolean[], foot?: string): string {
  const th = head.map((h, i) => `<th scope="col"${numeric[i] ? ' class="num"' : ''}>${h}</th>`).join('');
  return `<div class="table"><table>\n<thead><tr>${th}</tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody>${
    foot === undefined ? '' : `\n<tfoot>${foot}</tfoot>`
  }\n</table></div>`;
}

function cells(values: readonly string[], numeric: readonly boolean[], cls?: string): string {
  const td = values.map((v, i) => `<td${numeric[i] ? ' class="num"' : ''}>${v}</td>`).join('');
  return `<tr${cls === undefined ? '' : ` class="${cls}"`}>${td}</tr>`;
}

function okBadge(ok: boolean): string {
  return ok ? '<span class="badge ok">ok</span>' : '<span class="badge failed">FAILED</span>';
}

// ---------------------------------------------------------------------------------------------------------------
// Header and summary

function renderHeader(d: DemoReportData): string {
  const o = d.options;
  const stepMs = stepMsOf(d);
  const end = d.startMs + (finite(o.durationHours) ?? 0) * 3_600_000;
  return `<header>
<h1>${esc(d.title)}</h1>
<dl class="meta">
<div><dt>Generated</dt><dd>${esc(d.generatedAt)}</dd></div>
<div><dt>Simulated</dt><dd>${esc(utcDateTime(d.startMs))} – ${esc(utcDateTime(end))} (${esc(fixed(o.durationHours, 1))} h, ${esc(fixed(stepMs / 60_000, 0))} min steps)</dd></div>
<div><dt>MGMCs</dt><dd>${esc(int(o.mgmcs))}</dd></div>
<div><dt>Seed</dt><dd>${esc(String(o.seed))}</dd></div>
<div><dt>Speed</dt><dd>×${esc(finite(o.speed) === null ? NA : String(o.speed))}</dd></div>
<div><dt>Wall time</dt><dd>${esc(duration(d.wallSeconds))}</dd></div>
<div><dt>Currency</dt><dd>${esc(d.currency)}</dd></div>
</dl>
</header>`;
}

function renderNav(): string {
  const links = [
    ['summary', 'Summary'],
    ['microgrids', 'Microgrids'],
    ['market', 'Market'],
    ['feeder', 'Feeder'],
    ['ledgers', 'Ledgers'],
  ]
    .map(([id, label]) => `<a href="#${id}">${label}</a>`)
    .join(' · ');
  return `<nav>${links}</nav>`;
}

function renderSummary(d: DemoReportData): string {
  const cur = esc(d.currency);
  const numeric = [false, false, true, true, true, true, true, true];
  const head = [
    'Microgrid',
    'Bus',
    `Cost without trading (${cur})`,
    `Cost with market (${cur})`,
    `Saving (${cur})`,
    'Saving (%)',
    'Sold (kWh)',
    'Bought (kWh)',
  ];
  const row = (name: string, bus: string, base: number, actual: number, sold: number, bought: number, cls?: string) => {
    const saving = base - actual;
    // Relative to the magnitude: a site that earns money (negative cost) and earns more has a positive saving.
    const pct = finite(base) !== null && base !== 0 ? (saving / Math.abs(base)) * 100 : null;
    const sign = finite(saving) === null || saving === 0 ? '' : saving > 0 ? ' class="gain"' : ' class="loss"';
    return cells(
      [
        name,
        bus,
        money(base),
        money(actual),
        `<span${sign}>${money(saving)}</span>`,
        `<span${sign}>${fixed(pct, 1)}</span>`,
        kwh(sold),
        kwh(bought),
      ],
      numeric,
      cls,
    );
  };
  const mgs = d.microgrids;
  const rows = mgs.map((m) => row(esc(m.name), esc(m.bus), m.costBaseline, m.costActual, m.soldWh, m.boughtWh));
  const foot =
    mgs.length > 1
      ? row(
          'All',
          '',
          sum(mgs.map((m) => m.costBaseline)),
          sum(mgs.map((m) => m.costActual)),
          sum(mgs.map((m) => m.soldWh)),
          sum(mgs.map((m) => m.boughtWh)),
        )
      : undefined;
  const costs = mgs.length === 0 ? '<p class="empty">No microgrids in this run.</p>' : table(head, rows, numeric, foot);
  return `<section id="summary">
<h2>Summary</h2>
${costs}
${renderChecks(d.checks)}
</section>`;
}

function renderChecks(checks: DemoReportData['checks']): string {
  const failed = checks.filter((c) => !c.ok).length;
  const verdict =
    checks.length === 0
      ? '<p class="verdict">No end-of-run checks were recorded.</p>'
      : failed === 0
        ? `<p class="verdict ok">All ${checks.length} checks passed.</p>`
        : `<p class="verdict failed">${failed} of ${checks.length} checks FAILED.</p>`;
  const items = checks.map(
    (c) =>
      `<li class="check ${c.ok ? 'ok' : 'failed'}" data-check="${c.ok ? 'ok' : 'failed'}">${okBadge(c.ok)} <strong>${esc(
        c.name,
      )}</strong>${c.detail === '' ? '' : ` — ${esc(c.detail)}`}</li>`,
  );
  return `<h3>Checks</h3>\n${verdict}${items.length === 0 ? '' : `\n<ul class="checks">\n${items.join('\n')}\n</ul>`}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Microgrid schedules

const W = 760;
const FONT = 11;
const C = {
  grid: '#0072B2',
  pv: '#E69F00',
  battery: '#009E73',
  load: '#333333',
  ev: '#CC79A7',
  soc: '#56B4E9',
  import: '#D55E00',
  export: '#009E73',
  volume: '#56B4E9',
  capped: '#E69F00',
  price: '#222222',
  limit: '#C0392B',
  mgmcBand: '#f1f1f1',
  muted: '#777777',
} as const;
const PROFILE_COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9'];
const PLAN_DASH = '6 4';

function stepMsOf(d: DemoReportData): number {
  const m = finite(d.stepMinutes);
  return m !== null && m > 0 ? m * 60_000 : 15 * 60_000;
}

interface Series {
  readonly key: string;
  readonly label: string;
  readonly color: string;
  readonly dash?: string;
  readonly get: (s: StepSample) => number | null;
}

const SCHEDULE_SERIES: readonly Series[] = [
  { key: 'grid', label: 'grid (import +)', color: C.grid, get: (s) => s.gridW },
  { key: 'pv', label: 'PV', color: C.pv, get: (s) => s.pvW },
  { key: 'battery', label: 'battery (discharge +)', color: C.battery, get: (s) => s.batteryW },
  { key: 'load', label: 'load', color: C.load, get: (s) => s.loadW },
  { key: 'ev', label: 'EV', color: C.ev, get: (s) => s.evW },
  { key: 'planned-grid', label: 'planned grid', color: C.grid, dash: PLAN_DASH, get: (s) => s.plannedGridW },
  {
    key: 'planned-battery',
    label: 'planned battery',
    color: C.battery,
    dash: PLAN_DASH,
    get: (s) => s.plannedBatteryW,
  },
];

function renderMicrogrids(d: DemoReportData, ids: (p: string) => string): string {
  const articles = d.microgrids.map((m) => {
    const e = energies(m, stepMsOf(d));
    const facts = [
      `bus ${esc(m.bus)}`,
      `address <code>${esc(m.address)}</code>`,
      `PV ${kwh(e.pv)} kWh`,
      `load ${kwh(e.load)} kWh`,
      `EV ${kwh(e.ev)} kWh`,
      `grid import ${kwh(e.imported)} kWh (peak ${kw(e.peakImport)} kW), export ${kwh(e.exported)} kWh (peak ${kw(e.peakExport)} kW)`,
    ].join(' · ');
    return `<article class="microgrid">
<h3>${esc(m.name)}</h3>
<p>${esc(m.description)}</p>
<p class="facts">${facts}</p>
${scheduleChart(d, m, ids('schedule'))}
</article>`;
  });
  const content = articles.length === 0 ? '<p class="empty">No microgrids in this run.</p>' : articles.join('\n');
  return `<section id="microgrids">\n<h2>Microgrids</h2>\n${content}\n</section>`;
}

function energies(m: MicrogridReport, stepMs: number) {
  const h = stepMs / 3_600_000;
  const e = { pv: 0, load: 0, ev: 0, imported: 0, exported: 0, peakImport: 0, peakExport: 0 };
  for (const s of m.steps) {
    e.pv += (finite(s.pvW) ?? 0) * h;
    e.load += (finite(s.loadW) ?? 0) * h;
    e.ev += (finite(s.evW) ?? 0) * h;
    const g = finite(s.gridW) ?? 0;
    if (g > 0) e.imported += g * h;
    else e.exported -= g * h;
    e.peakImport = Math.max(e.peakImport, g);
    e.peakExport = Math.max(e.peakExport, -g);
  }
  return e;
}

function scheduleChart(d: DemoReportData, m: MicrogridReport, id: string): string {
  const stepMs = stepMsOf(d);
  const steps = m.steps;
  const hasSoc = steps.some((s) => finite(s.socPct) !== null);
  const drawn = SCHEDULE_SERIES.filter((s) => !s.dash || steps.some((x) => finite(s.get(x)) !== null));

  const legendItems: LegendItem[] = drawn.map((s) => ({ label: s.label, color: s.color, kind: 'line', dash: s.dash }));
  if (hasSoc) legendItems.push({ label: 'battery SoC (%, right axis)', color: C.soc, kind: 'line', dash: '2 3' });
  const margin = { left: 62, right: hasSoc ? 62 : 20, bottom: 44 };
  const lg = legend(legendItems, margin.left, 8, W - margin.left - margin.right, FONT);
  const top = 8 + lg.height + 10;
  const height = top + 230 + margin.bottom;
  const x0 = margin.left;
  const x1 = W - margin.right;
  const y1 = height - margin.bottom;

  // Sample i covers [t, t + step); it is drawn at the middle of its step.
  const times = steps.map((s, i) => finite(s.t) ?? d.startMs + i * stepMs);
  const dayStart = finite(d.startMs);
  const dayEnd = dayStart === null ? null : dayStart + (finite(d.options.durationHours) ?? 0) * 3_600_000;
  const tFinite = times.filter((t): t is number => finite(t) !== null);
  const tMin = Math.min(...tFinite, ...(dayStart === null ? [] : [dayStart]));
  const tMax = Math.max(...tFinite.map((t) => t + stepMs), ...(dayEnd === null ? [] : [dayEnd]));

  const data = { chart: 'schedule', mgmc: m.name, points: steps.length, soc: hasSoc ? 'yes' : 'no' };
  const title = `Schedule of ${m.name}: grid, PV, battery, load and EV power (kW) over the day`;
  const caption = `<strong>${esc(m.name)}</strong>: measured power per ${esc(fixed(stepMs / 60_000, 0))}-minute step in kW (dashed: the optimizer's plan)${
    hasSoc ? '; battery state of charge on the right axis' : ''
  }. Times in UTC.`;

  if (steps.length === 0 || !Number.isFinite(tMin) || !Number.isFinite(tMax) || tMax <= tMin) {
    const h = 120;
    const body = text(W / 2, h / 2, 'no samples', { anchor: 'middle', size: 14, fill: C.muted, baseline: 'middle' });
    return figure(
      svgChart({ id, width: W, height: h, title, data: { ...data, points: 0, soc: 'no' }, body }),
      `${caption} No samples were recorded.`,
    );
  }

  const x = linearScale([tMin, tMax], [x0, x1]);
  const kwValues: number[] = [0];
  for (const s of drawn)
    for (const st of steps) {
      const v = finite(s.get(st));
      if (v !== null) kwValues.push(v / 1000);
    }
  const yt = niceTicks(Math.min(...kwValues), Math.max(...kwValues), 6);
  const y = linearScale([yt.min, yt.max], [y1, top]);
  const soc = linearScale([0, 100], [y1, top]);

  const parts: string[] = [lg.svg];
  parts.push(
    axis({
      orient: 'left',
      at: x0,
      from: y1,
      to: top,
      ticks: numericTicks(yt),
      map: y.map,
      title: 'kW',
      gridTo: x1,
      fontSize: FONT,
    }),
  );
  if (hasSoc) {
    parts.push(
      axis({
        orient: 'right',
        at: x1,
        from: y1,
        to: top,
        ticks: [0, 25, 50, 75, 100].map((v) => ({ value: v, label: `${v}` })),
        map: soc.map,
        title: 'SoC %',
        fontSize: FONT,
        color: '#2f7fae',
      }),
    );
  }
  parts.push(
    axis({
      orient: 'bottom',
      at: y1,
      from: x0,
      to: x1,
      ticks: timeTicks(tMin, tMax, 12),
      map: x.map,
      title: 'time (UTC)',
      fontSize: FONT,
    }),
  );
  if (yt.min < 0 && yt.max > 0) parts.push(line(x0, y.map(0), x1, y.map(0), { color: '#999', width: 1 }));

  const xs = times.map((t) => x.map(t + stepMs / 2));
  for (const s of drawn) {
    const pts = steps.map((st, i): Point | null => {
      const v = finite(s.get(st));
      return v === null ? null : [xs[i]!, y.map(v / 1000)];
    });
    for (const run of runs(pts)) {
      parts.push(
        polyline(run, { color: s.color, width: s.dash ? 1.5 : 1.8, dash: s.dash }, { series: s.key, n: run.length }),
      );
    }
  }
  if (hasSoc) {
    const pts = steps.map((st, i): Point | null => {
      const v = finite(st.socPct);
      return v === null ? null : [xs[i]!, soc.map(Math.min(100, Math.max(0, v)))];
    });
    for (const run of runs(pts)) {
      parts.push(polyline(run, { color: C.soc, width: 2, dash: '2 3' }, { series: 'soc', n: run.length }));
    }
  }

  return figure(svgChart({ id, width: W, height, title, data, body: parts.join('') }), caption);
}

// ---------------------------------------------------------------------------------------------------------------
// Market

function renderMarket(d: DemoReportData, ids: (p: string) => string): string {
  const ms = d.market;
  const trades = sum(ms.map((m) => m.trades));
  const volume = sum(ms.map((m) => m.volumeWh));
  const capped = ms.filter((m) => m.attempts > 1).length;
  const adjustments = sum(ms.map((m) => m.adjustments));
  const intro =
    ms.length === 0
      ? '<p class="empty">No market intervals were run.</p>'
      : `<p>${ms.length} intervals, ${int(trades)} trades, ${kwh(volume)} kWh traded peer to peer; ${capped} interval${
          capped === 1 ? '' : 's'
        } traded again after DSO caps, ${int(adjustments)} adjustment contract${adjustments === 1 ? '' : 's'}.</p>`;
  const numeric = [false, true, true, true, true, true, true, true, true, false];
  const cur = esc(d.currency);
  const head = [
    'Interval (UTC)',
    'Attempts',
    'Rounds',
    'Trades',
    'kWh',
    `Avg price (${cur}/kWh)`,
    'Min–max',
    'Import / export price',
    'Adjustments',
    'Closed by',
  ];
  const rows = ms.map((m) =>
    cells(
      [
        esc(intervalLabel(m)),
        m.attempts > 1
          ? `<span class="capped" title="the DSO capped positions">${int(m.attempts)} ⚑</span>`
          : int(m.attempts),
        int(m.rounds),
        int(m.trades),
        kwh(m.volumeWh),
        price(m.priceAvg),
        finite(m.priceMin) === null && finite(m.priceMax) === null ? NA : `${price(m.priceMin)}–${price(m.priceMax)}`,
        `${price(m.importPrice)} / ${price(m.exportPrice)}`,
        int(m.adjustments),
        esc(m.closedBy),
      ],
      numeric,
      m.attempts > 1 ? 'capped' : undefined,
    ),
  );
  const tableHtml = ms.length === 0 ? '' : table(head, rows, numeric);
  return `<section id="market">
<h2>Market</h2>
${intro}
${marketChart(d, ids('market'))}
${tableHtml}
</section>`;
}

function marketChart(d: DemoReportData, id: string): string {
  const ms = d.market;
  const cur = d.currency;
  const trades = sum(ms.map((m) => m.trades));
  const volumeWh = sum(ms.map((m) => m.volumeWh));
  const capped = ms.filter((m) => m.attempts > 1).length;
  const data = { chart: 'market', points: ms.length, trades, capped };
  const title = `Market: energy traded per interval (kWh) and trade prices (${cur}/kWh) against the DSO's grid prices`;
  const caption = `Bars: energy traded peer to peer per interval (kWh, left axis); ${
    capped > 0 ? 'orange bars marked ⚑ were traded again after the DSO capped positions; ' : ''
  }line: volume-weighted average trade price with lowest–highest whiskers; dashed: the DSO's import and export prices (${esc(
    cur,
  )}/kWh, right axis).`;

  if (ms.length === 0) {
    const h = 120;
    const body = text(W / 2, h / 2, 'no market intervals', {
      anchor: 'middle',
      size: 14,
      fill: C.muted,
      baseline: 'middle',
    });
    return figure(svgChart({ id, width: W, height: h, title, data, body }), caption);
  }

  const legendItems: LegendItem[] = [
    { label: 'traded kWh', color: C.volume, kind: 'box' },
    ...(capped > 0 ? [{ label: 'traded again after DSO caps', color: C.capped, kind: 'box' } as const] : []),
    { label: 'avg price (min–max)', color: C.price, kind: 'line', shape: 'circle' },
    { label: 'DSO import price', color: C.import, kind: 'line', dash: PLAN_DASH },
    { label: 'DSO export price', color: C.export, kind: 'line', dash: PLAN_DASH },
  ];
  const margin = { left: 62, right: 70, bottom: 44 };
  const x0 = margin.left;
  const x1 = W - margin.right;
  const lg = legend(legendItems, x0, 8, x1 - x0, FONT);
  const top = 8 + lg.height + 16;
  const height = top + 230 + margin.bottom;
  const y1 = height - margin.bottom;

  const band = bandScale(ms.length, x0, x1, 0.25);
  const vols = ms.map((m) => (finite(m.volumeWh) ?? 0) / 1000);
  const vt = niceTicks(0, Math.max(0, ...vols) || 1, 5);
  const yv = linearScale([vt.min, vt.max], [y1, top]);
  const prices: number[] = [];
  for (const m of ms) {
    for (const p of [m.importPrice, m.exportPrice, m.priceAvg, m.priceMin, m.priceMax]) {
      const v = finite(p);
      if (v !== null) prices.push(v);
    }
  }
  const pt = prices.length === 0 ? niceTicks(0, 1, 5) : niceTicks(Math.min(...prices), Math.max(...prices), 5);
  const yp = linearScale([pt.min, pt.max], [y1, top]);

  const labelW = textWidth('00:00', FONT);
  const stride = labelStride(band.step, labelW);
  const xTicks: Tick[] = ms
    .map((m, i) => ({ value: i, label: utcClock(m.interval) }))
    .filter((_, i) => i % stride === 0);

  const parts: string[] = [lg.svg];
  parts.push(
    axis({
      orient: 'left',
      at: x0,
      from: y1,
      to: top,
      ticks: numericTicks(vt),
      map: yv.map,
      title: 'kWh',
      gridTo: x1,
      fontSize: FONT,
    }),
    axis({
      orient: 'right',
      at: x1,
      from: y1,
      to: top,
      ticks: numericTicks(pt, (v) => v.toFixed(Math.max(pt.decimals, 2))),
      map: yp.map,
      title: `${cur}/kWh`,
      fontSize: FONT,
    }),
    axis({
      orient: 'bottom',
      at: y1,
      from: x0,
      to: x1,
      ticks: xTicks,
      map: (i) => band.center(i),
      title: 'interval start (UTC)',
      fontSize: FONT,
    }),
  );

  ms.forEach((m, i) => {
    const v = vols[i]!;
    const isCapped = m.attempts > 1;
    if (v > 0) {
      parts.push(
        rect(band.start(i), yv.map(0), band.start(i) + band.bandwidth, yv.map(v), {
          fill: isCapped ? C.capped : C.volume,
          title: `${intervalLabel(m)}: ${kwh(m.volumeWh)} kWh in ${int(m.trades)} trades, ${int(m.attempts)} attempt(s)`,
          data: { interval: i, kind: 'volume' },
        }),
      );
    }
    if (isCapped) {
      parts.push(
        text(band.center(i), Math.max(top - 2, yv.map(v) - 4), `⚑${m.attempts}`, {
          anchor: 'middle',
          size: 9,
          fill: '#a35f00',
          data: { capped: i },
        }),
      );
    }
  });

  // The DSO's prices hold for a whole interval: step lines across the interval's full slot.
  const edges = ms.map((_, i) => band.edge(i)).concat(band.edge(ms.length));
  for (const [key, color, get] of [
    ['import-price', C.import, (m: MarketIntervalReport) => m.importPrice],
    ['export-price', C.export, (m: MarketIntervalReport) => m.exportPrice],
  ] as const) {
    // A missing price breaks the line rather than drawing a made-up value.
    const pts: (Point | null)[] = [];
    ms.forEach((m, i) => {
      const v = finite(get(m));
      if (v === null) pts.push(null);
      else pts.push(...stepPoints([edges[i]!, edges[i + 1]!], [yp.map(v)]));
    });
    for (const run of runs(pts)) {
      parts.push(polyline(run, { color, width: 1.5, dash: PLAN_DASH }, { series: key, n: run.length }));
    }
  }

  ms.forEach((m, i) => {
    const lo = finite(m.priceMin);
    const hi = finite(m.priceMax);
    if (lo === null || hi === null) return;
    const cx = band.center(i);
    const capW = Math.min(6, band.bandwidth / 3);
    parts.push(
      `<g data-whisker="${i}">${line(cx, yp.map(lo), cx, yp.map(hi), { color: C.price, width: 1 })}${line(
        cx - capW,
        yp.map(lo),
        cx + capW,
        yp.map(lo),
        { color: C.price, width: 1 },
      )}${line(cx - capW, yp.map(hi), cx + capW, yp.map(hi), { color: C.price, width: 1 })}</g>`,
    );
  });
  const avgPts = ms.map((m, i): Point | null => {
    const v = finite(m.priceAvg);
    return v === null ? null : [band.center(i), yp.map(v)];
  });
  for (const run of runs(avgPts)) {
    parts.push(polyline(run, { color: C.price, width: 1.5 }, { series: 'price-avg', n: run.length }));
  }
  ms.forEach((m, i) => {
    const p = avgPts[i];
    if (p) parts.push(marker('circle', p[0], p[1], 5, C.price, `${intervalLabel(m)}: ${price(m.priceAvg)} ${cur}/kWh`));
  });

  if (trades === 0 && volumeWh === 0) {
    parts.push(
      text((x0 + x1) / 2, (top + y1) / 2, 'no trades', {
        anchor: 'middle',
        size: 16,
        fill: C.muted,
        baseline: 'middle',
        data: { empty: 'no-trades' },
      }),
    );
  }
  return figure(svgChart({ id, width: W, height, title, data, body: parts.join('') }), caption);
}

// ---------------------------------------------------------------------------------------------------------------
// Feeder

function renderFeeder(d: DemoReportData, ids: (p: string) => string): string {
  const f = d.feeder;
  const lines = f.profiles.map((p) => {
    const worst = lowest(f, p.voltagesPu);
    const mismatch =
      p.voltagesPu.length === f.buses.length
        ? ''
        : ` <span class="warn">(${p.voltagesPu.length} values for ${f.buses.length} buses; only the first ${Math.min(
            p.voltagesPu.length,
            f.buses.length,
          )} drawn)</span>`;
    return `<li><strong>${esc(p.label)}</strong>: lowest ${
      worst === null ? NA : `${pu(worst.v)} pu at bus ${esc(worst.bus)}`
    }${worst !== null && finite(f.vMin) !== null && worst.v < f.vMin ? ' <span class="badge failed">below vMin</span>' : ''}${mismatch}</li>`;
  });
  return `<section id="feeder">
<h2>Feeder voltage profile</h2>
<p>Feeder <strong>${esc(f.name)}</strong>, ${f.buses.length} buses, limits ${pu(f.vMin)}–${pu(f.vMax)} pu.</p>
${lines.length === 0 ? '' : `<ul>\n${lines.join('\n')}\n</ul>`}
${voltageChart(d, ids('voltage'))}
</section>`;
}

function lowest(f: FeederReport, vs: readonly number[]): { v: number; bus: string } | null {
  let best: { v: number; bus: string } | null = null;
  for (let i = 0; i < Math.min(vs.length, f.buses.length); i++) {
    const v = finite(vs[i]);
    if (v !== null && (best === null || v < best.v)) best = { v, bus: f.buses[i]! };
  }
  return best;
}

function voltageChart(d: DemoReportData, id: string): string {
  const f = d.feeder;
  const buses = f.buses;
  const data = { chart: 'voltage', points: buses.length, profiles: f.profiles.length };
  const title = `Voltage profile of feeder ${f.name}: per-unit voltage at each bus`;
  const busMgmcs = new Map<string, string[]>();
  for (const m of d.microgrids) busMgmcs.set(m.bus, [...(busMgmcs.get(m.bus) ?? []), m.name]);
  const marked = f.mgmcBuses.filter((b) => buses.includes(b));
  const markedText = marked
    .map((b) => {
      const names = busMgmcs.get(b);
      return names ? `${esc(b)} (${names.map(esc).join(', ')})` : esc(b);
    })
    .join(', ');
  const caption = `Voltage in pu along the feeder, buses in feeder order; dashed red: limits ${pu(f.vMin)} and ${pu(
    f.vMax,
  )} pu${marked.length === 0 ? '' : `; shaded, bold and ▲: buses where an MGMC connects — ${markedText}`}.`;

  const values: number[] = [];
  for (const p of f.profiles) {
    p.voltagesPu.slice(0, buses.length).forEach((v) => {
      if (finite(v) !== null) values.push(v);
    });
  }
  if (buses.length === 0 || values.length === 0) {
    const h = 120;
    const body = text(W / 2, h / 2, 'no voltage data', {
      anchor: 'middle',
      size: 14,
      fill: C.muted,
      baseline: 'middle',
    });
    return figure(svgChart({ id, width: W, height: h, title, data, body }), caption);
  }

  const legendItems: LegendItem[] = f.profiles.map((p, i) => ({
    label: p.label,
    color: PROFILE_COLORS[i % PROFILE_COLORS.length]!,
    kind: 'line',
    shape: MARKER_SHAPES[i % MARKER_SHAPES.length]!,
  }));
  legendItems.push({ label: 'limits', color: C.limit, kind: 'line', dash: PLAN_DASH });
  if (marked.length > 0) legendItems.push({ label: 'MGMC bus', color: '#444', kind: 'marker', shape: 'triangle' });
  const margin = { left: 62, right: 64, bottom: 48 };
  const x0 = margin.left;
  const x1 = W - margin.right;
  const lg = legend(legendItems, x0, 8, x1 - x0, FONT);
  const top = 8 + lg.height + 10;
  const height = top + 240 + margin.bottom;
  const y1 = height - margin.bottom;

  const limits = [f.vMin, f.vMax].filter((v) => finite(v) !== null);
  const lo = Math.min(...values, ...limits);
  const hi = Math.max(...values, ...limits);
  const pad = (hi - lo) * 0.05 || 0.01;
  const vt = niceTicks(lo - pad, hi + pad, 6);
  const y = linearScale([vt.min, vt.max], [y1, top]);
  const band = bandScale(buses.length, x0, x1, 0);

  const parts: string[] = [lg.svg];
  // MGMC buses first, so lines and markers draw over their shading.
  for (const b of marked) {
    const i = buses.indexOf(b);
    const w = Math.max(6, band.step * 0.8);
    parts.push(
      rect(band.center(i) - w / 2, top, band.center(i) + w / 2, y1, {
        fill: C.mgmcBand,
        title: `MGMC bus ${b}${busMgmcs.has(b) ? `: ${busMgmcs.get(b)!.join(', ')}` : ''}`,
        data: { 'mgmc-bus': b },
      }),
      marker('triangle', band.center(i), y1 - 6, 8, '#444'),
    );
  }
  const stride = labelStride(band.step, Math.max(...buses.map((b) => textWidth(b, 10))));
  const xTicks: Tick[] = buses
    .map((b, i) => ({ value: i, label: b, strong: marked.includes(b) }))
    .filter((t, i) => i % stride === 0 || t.strong);
  parts.push(
    axis({
      orient: 'left',
      at: x0,
      from: y1,
      to: top,
      ticks: numericTicks(vt, (v) => v.toFixed(Math.max(2, vt.decimals))),
      map: y.map,
      title: 'voltage (pu)',
      gridTo: x1,
      fontSize: FONT,
    }),
    axis({
      orient: 'bottom',
      at: y1,
      from: x0,
      to: x1,
      ticks: xTicks,
      map: (i) => band.center(i),
      title: 'bus (feeder order)',
      fontSize: 10,
    }),
  );
  for (const [name, v] of [
    ['vMin', f.vMin],
    ['vMax', f.vMax],
  ] as const) {
    if (finite(v) === null) continue;
    parts.push(
      line(x0, y.map(v), x1, y.map(v), { color: C.limit, width: 1.2, dash: PLAN_DASH }, { limit: name }),
      text(x1 + 4, y.map(v), `${name} ${pu(v)}`, { size: 10, fill: C.limit, baseline: 'middle' }),
    );
  }
  f.profiles.forEach((p, k) => {
    const color = PROFILE_COLORS[k % PROFILE_COLORS.length]!;
    const shape = MARKER_SHAPES[k % MARKER_SHAPES.length]!;
    const pts = buses.map((_, i): Point | null => {
      const v = finite(p.voltagesPu[i]);
      return v === null ? null : [band.center(i), y.map(v)];
    });
    for (const run of runs(pts)) {
      parts.push(polyline(run, { color, width: 1.6 }, { series: `profile-${k}`, label: p.label, n: run.length }));
    }
    pts.forEach((pt, i) => {
      if (pt)
        parts.push(marker(shape, pt[0], pt[1], 5, color, `${p.label}, bus ${buses[i]}: ${pu(p.voltagesPu[i])} pu`));
    });
  });
  return figure(svgChart({ id, width: W, height, title, data, body: parts.join('') }), caption);
}

// ---------------------------------------------------------------------------------------------------------------
// Ledgers

const LEDGER_BARS: readonly { key: keyof LedgerReport; label: string; color: string }[] = [
  { key: 'blocksSigned', label: 'blocks signed', color: '#0072B2' },
  { key: 'anchoredHeight', label: 'anchored height (DSO)', color: '#E69F00' },
  { key: 'heldByDso', label: 'held and verified by DSO', color: '#009E73' },
];

function renderLedgers(d: DemoReportData, ids: (p: string) => string): string {
  const numeric = [false, false, true, true, true, true, false];
  const head = ['MGMC', 'Address', 'Blocks signed', 'Records', 'Anchored height', 'Held by DSO', 'Chain'];
  const rows = d.ledgers.map((l) =>
    cells(
      [
        esc(l.name),
        `<code>${esc(l.address)}</code>`,
        int(l.blocksSigned),
        int(l.records),
        int(l.anchoredHeight),
        int(l.heldByDso),
        okBadge(l.chainOk),
      ],
      numeric,
      l.chainOk ? undefined : 'failed',
    ),
  );
  const dso = d.dso;
  const dsoLine = `<p class="dso">DSO chain: height ${int(dso.chainHeight)}, blocks received ${int(
    dso.blocksReceived,
  )}, verified ${int(dso.blocksVerified)}, rejected ${
    dso.blocksRejected > 0 ? `<span class="warn">${int(dso.blocksRejected)}</span>` : int(dso.blocksRejected)
  }, chain ${okBadge(dso.chainOk)}</p>`;
  return `<section id="ledgers">
<h2>Ledgers</h2>
${ledgerChart(d, ids('ledger'))}
${d.ledgers.length === 0 ? '<p class="empty">No MGMC ledgers in this run.</p>' : table(head, rows, numeric)}
${dsoLine}
</section>`;
}

function ledgerChart(d: DemoReportData, id: string): string {
  const ls = d.ledgers;
  const data = { chart: 'ledger', points: ls.length };
  const title = 'Ledgers: blocks each MGMC signed, the height the DSO anchored, and the blocks the DSO holds';
  const caption =
    'Per MGMC: blocks signed, the highest of its blocks the DSO has anchored in its chain, and its blocks the DSO holds and verified.';
  if (ls.length === 0) {
    const h = 120;
    const body = text(W / 2, h / 2, 'no ledgers', { anchor: 'middle', size: 14, fill: C.muted, baseline: 'middle' });
    return figure(svgChart({ id, width: W, height: h, title, data, body }), caption);
  }
  const margin = { left: 62, right: 20, bottom: 32 };
  const x0 = margin.left;
  const x1 = W - margin.right;
  const lg = legend(
    LEDGER_BARS.map((b) => ({ label: b.label, color: b.color, kind: 'box' })),
    x0,
    8,
    x1 - x0,
    FONT,
  );
  const top = 8 + lg.height + 16;
  const height = top + 200 + margin.bottom;
  const y1 = height - margin.bottom;
  const values = ls.flatMap((l) => LEDGER_BARS.map((b) => finite(l[b.key] as number) ?? 0));
  const yt = niceTicks(0, Math.max(1, ...values), 5);
  const y = linearScale([yt.min, yt.max], [y1, top]);
  const band = bandScale(ls.length, x0, x1, 0.3);
  const maxChars = Math.max(4, Math.floor(band.step / (FONT * 0.6)));
  const parts: string[] = [
    lg.svg,
    axis({
      orient: 'left',
      at: x0,
      from: y1,
      to: top,
      ticks: numericTicks(yt),
      map: y.map,
      title: 'blocks',
      gridTo: x1,
      fontSize: FONT,
    }),
    axis({
      orient: 'bottom',
      at: y1,
      from: x0,
      to: x1,
      ticks: ls.map((l, i) => ({ value: i, label: truncate(l.name, maxChars), strong: !l.chainOk })),
      map: (i) => band.center(i),
      fontSize: FONT,
    }),
  ];
  const barW = band.bandwidth / LEDGER_BARS.length;
  ls.forEach((l, i) => {
    LEDGER_BARS.forEach((b, k) => {
      const v = finite(l[b.key] as number);
      if (v === null) return;
      const bx = band.start(i) + k * barW;
      parts.push(
        rect(bx, y.map(0), bx + barW - 1, y.map(v), {
          fill: b.color,
          title: `${l.name}: ${b.label} ${int(v)}`,
          data: { mgmc: l.name, kind: b.key },
        }),
      );
      if (barW >= 14) {
        parts.push(text(bx + barW / 2, y.map(v) - 3, int(v), { anchor: 'middle', size: 9, fill: '#333' }));
      }
    });
  });
  return figure(svgChart({ id, width: W, height, title, data, body: parts.join('') }), caption);
}

// ---------------------------------------------------------------------------------------------------------------

const CSS = `
:root{color-scheme:light;--fg:#1d1d1f;--muted:#666;--line:#ddd;--ok:#1b7f3b;--bad:#b3261e;--accent:#0072B2}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fff}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.6em;margin:.2em 0 .4em}
h2{font-size:1.3em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid var(--line)}
h3{font-size:1.1em;margin:1.2em 0 .3em}
p{margin:.4em 0}
code{font-size:.85em;word-break:break-all}
nav{margin:.5em 0 1em;font-size:.95em}
nav a{color:var(--accent)}
dl.meta{display:flex;flex-wrap:wrap;gap:4px 20px;margin:0}
dl.meta div{display:flex;gap:6px}
dl.meta dt{color:var(--muted)}
dl.meta dd{margin:0;font-weight:600}
.table{overflow-x:auto;margin:.6em 0}
table{border-collapse:collapse;font-size:.9em;min-width:100%}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tfoot td{font-weight:600;border-top:2px solid var(--line)}
tr.capped td{background:#fff6e5}
tr.failed td{background:#fdecea}
.gain{color:var(--ok)}
.loss{color:var(--bad)}
.warn{color:var(--bad);font-weight:600}
.badge{display:inline-block;min-width:3.5em;padding:0 .4em;border-radius:3px;font-size:.8em;font-weight:700;text-align:center;color:#fff}
.badge.ok{background:var(--ok)}
.badge.failed{background:var(--bad)}
.verdict{font-weight:600}
.verdict.ok{color:var(--ok)}
.verdict.failed{color:var(--bad)}
ul.checks{list-style:none;padding:0;margin:.4em 0}
ul.checks li{padding:3px 6px;border-left:4px solid var(--ok);margin:2px 0}
ul.checks li.failed{border-left-color:var(--bad);background:#fdecea}
.capped{color:#a35f00;font-weight:600}
.facts{color:var(--muted);font-size:.9em}
.empty{color:var(--muted);font-style:italic}
figure{margin:.8em 0 1.2em}
.chart{overflow-x:auto}
.chart svg{display:block;width:100%;min-width:560px;height:auto}
figcaption{font-size:.85em;color:var(--muted);margin-top:.3em}
@media (max-width:600px){body{font-size:14px}main{padding:10px}th,td{padding:3px 5px}}
@media print{
  body{font-size:10.5pt}
  main{max-width:none;padding:0}
  nav{display:none}
  .chart{overflow:visible}
  .chart svg{min-width:0}
  .table{overflow:visible}
  figure,table,article h3,ul.checks li{break-inside:avoid}
  h2,h3{break-after:avoid}
  *{print-color-adjust:exact;-webkit-print-color-adjust:exact}
}
`;
