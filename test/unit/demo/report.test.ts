import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderReport, writeReport } from '../../../agent/demo/report.js';
import type {
  DemoReportData,
  MarketIntervalReport,
  MicrogridReport,
  StepSample,
} from '../../../agent/demo/report-data.js';

const START = Date.UTC(2024, 5, 21);
const STEP_MIN = 15;
const HOUR = 3_600_000;
const NASTY = `Offices <b>&amp; "north" 'A'`;

/** A day of one microgrid: PV bell, two-peak load, battery shaving the evening, optional EV in the evening. */
function microgrid(name: string, bus: string, o: { pvKw: number; loadKw: number; battery: boolean; ev: boolean }) {
  const steps: StepSample[] = [];
  let soc = 40;
  for (let i = 0; i < 96; i++) {
    const h = (i + 0.5) / 4;
    const pvW = Math.max(0, Math.sin((Math.PI * (h - 6)) / 12)) * o.pvKw * 1000;
    const loadW = (0.4 + 0.3 * Math.exp(-((h - 8) ** 2) / 4) + 0.5 * Math.exp(-((h - 19) ** 2) / 3)) * o.loadKw * 1000;
    const evW = o.ev && h >= 18 && h < 22 ? 7400 : 0;
    let batteryW = 0;
    if (o.battery) {
      batteryW = pvW > loadW ? -Math.min(pvW - loadW, 20_000) : Math.min(loadW - pvW, 15_000) * (soc > 10 ? 1 : 0);
      soc = Math.min(100, Math.max(0, soc - (batteryW / 1000) * 0.25 * (100 / 200)));
    }
    steps.push({
      t: START + i * STEP_MIN * 60_000,
      gridW: loadW + evW - pvW - batteryW,
      pvW,
      batteryW,
      loadW,
      evW,
      socPct: o.battery ? soc : null,
      plannedBatteryW: o.battery && i >= 4 ? batteryW * 0.9 : null,
      plannedGridW: i >= 4 ? (loadW + evW - pvW - batteryW) * 1.05 : null,
    });
  }
  const m: MicrogridReport = {
    name,
    bus,
    address: `0x${bus.padStart(40, 'a')}`,
    description: `${o.pvKw} kWp PV${o.battery ? ', 200 kWh battery' : ''}${o.ev ? ', EV chargers' : ''}`,
    steps,
    costBaseline: 412.5,
    costActual: 371.25,
    soldWh: 85_400,
    boughtWh: 23_100,
  };
  return m;
}

function interval(i: number): MarketIntervalReport {
  const quiet = i < 6; // night: nobody has a surplus
  const capped = i === 11 || i === 12 || i === 13;
  return {
    interval: START + i * HOUR,
    durationMinutes: 60,
    attempts: capped ? 2 : 1,
    rounds: quiet ? 0 : 3 + (i % 4),
    trades: quiet ? 0 : 2 + (i % 3),
    volumeWh: quiet ? 0 : 20_000 + 3000 * Math.sin(i),
    priceAvg: quiet ? null : 0.2 + 0.01 * Math.cos(i),
    priceMin: quiet ? null : 0.18 + 0.01 * Math.cos(i),
    priceMax: quiet ? null : 0.23 + 0.01 * Math.cos(i),
    adjustments: capped ? 2 : 0,
    importPrice: i >= 17 && i < 21 ? 0.32 : 0.25,
    exportPrice: 0.08,
    closedBy: quiet ? 'no-participants' : capped ? 'secure' : 'no-check',
  };
}

function fixture(): DemoReportData {
  const buses = Array.from({ length: 33 }, (_, i) => String(i + 1));
  return {
    title: 'mgmc demo: a day on IEEE 33',
    generatedAt: '2024-06-21T10:11:12.000Z',
    options: { durationHours: 24, mgmcs: 3, seed: 42, speed: 720 },
    wallSeconds: 131.4,
    startMs: START,
    stepMinutes: STEP_MIN,
    currency: 'EUR',
    microgrids: [
      microgrid(NASTY, '18', { pvKw: 120, loadKw: 60, battery: true, ev: false }),
      microgrid('Homes', '25', { pvKw: 40, loadKw: 30, battery: true, ev: true }),
      microgrid('Workshop', '33', { pvKw: 25, loadKw: 45, battery: false, ev: false }),
    ],
    market: Array.from({ length: 24 }, (_, i) => interval(i)),
    feeder: {
      name: 'IEEE 33 (Baran & Wu)',
      buses,
      vMin: 0.95,
      vMax: 1.05,
      profiles: [
        {
          label: 'worst interval before caps',
          voltagesPu: buses.map((_, i) => 1 - 0.0027 * Math.min(i, 17) - 0.001 * Math.max(0, i - 17)),
        },
        {
          label: 'after caps',
          voltagesPu: buses.map((_, i) => 1 - 0.0015 * Math.min(i, 17) - 0.0005 * Math.max(0, i - 17)),
        },
      ],
      mgmcBuses: ['18', '25', '33'],
    },
    ledgers: [
      {
        name: NASTY,
        address: '0xabc',
        blocksSigned: 144,
        records: 9_120,
        anchoredHeight: 143,
        heldByDso: 143,
        chainOk: true,
      },
      {
        name: 'Homes',
        address: '0xdef',
        blocksSigned: 140,
        records: 8_800,
        anchoredHeight: 140,
        heldByDso: 140,
        chainOk: true,
      },
      {
        name: 'Workshop',
        address: '0x123',
        blocksSigned: 138,
        records: 8_650,
        anchoredHeight: 130,
        heldByDso: 129,
        chainOk: false,
      },
    ],
    dso: { chainHeight: 288, blocksReceived: 422, blocksVerified: 421, blocksRejected: 1, chainOk: true },
    checks: [
      { name: 'every MGMC chain verifies', ok: true, detail: '3 of 3' },
      { name: 'DSO holds every block', ok: false, detail: 'Workshop: 129 < 138 blocks <missing>' },
      { name: 'DSO chain verifies', ok: true, detail: '' },
    ],
  };
}

// --- a few lines of parsing, enough for markup this module writes itself -----------------------------------------

interface Svg {
  readonly open: string;
  readonly body: string;
  readonly width: number;
  readonly height: number;
}

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
}

function svgs(html: string, chart?: string): Svg[] {
  const out: Svg[] = [];
  for (const m of html.matchAll(/(<svg\b[^>]*>)([\s\S]*?)<\/svg>/g)) {
    const open = m[1]!;
    if (chart !== undefined && attr(open, 'data-chart') !== chart) continue;
    const vb = attr(open, 'viewBox')!.split(' ').map(Number);
    out.push({ open, body: m[2]!, width: vb[2]!, height: vb[3]! });
  }
  return out;
}

function tags(body: string, name: string): string[] {
  return [...body.matchAll(new RegExp(`<${name}\\b[^>]*>`, 'g'))].map((m) => m[0]);
}

function points(polylineTag: string): [number, number][] {
  return attr(polylineTag, 'points')!
    .split(' ')
    .map((p) => p.split(',').map(Number) as [number, number]);
}

/** Total coordinates of a series' polylines (a series with gaps is several polylines). */
function seriesCoordinates(svg: Svg, series: string): number {
  return tags(svg.body, 'polyline')
    .filter((t) => attr(t, 'data-series') === series)
    .reduce((n, t) => n + points(t).length, 0);
}

function expectInside(svg: Svg): void {
  const inside = (x: number, y: number) => {
    expect(Number.isFinite(x) && Number.isFinite(y), `finite ${x},${y}`).toBe(true);
    expect(x >= 0 && x <= svg.width && y >= 0 && y <= svg.height, `${x},${y} inside ${svg.width}x${svg.height}`).toBe(
      true,
    );
  };
  for (const t of [...tags(svg.body, 'polyline'), ...tags(svg.body, 'polygon')]) {
    for (const [x, y] of points(t)) inside(x, y);
  }
  for (const t of tags(svg.body, 'rect')) {
    const x = Number(attr(t, 'x'));
    const y = Number(attr(t, 'y'));
    inside(x, y);
    inside(x + Number(attr(t, 'width')), y + Number(attr(t, 'height')));
  }
  for (const t of tags(svg.body, 'circle')) inside(Number(attr(t, 'cx')), Number(attr(t, 'cy')));
  for (const t of tags(svg.body, 'line')) {
    inside(Number(attr(t, 'x1')), Number(attr(t, 'y1')));
    inside(Number(attr(t, 'x2')), Number(attr(t, 'y2')));
  }
  for (const t of tags(svg.body, 'text')) inside(Number(attr(t, 'x')), Number(attr(t, 'y')));
}

// ------------------------------------------------------------------------------------------------------------------

describe('renderReport', () => {
  const data = fixture();
  const html = renderReport(data);

  it('is one HTML5 document with nothing external: no URL, no script, no stylesheet link', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    for (const el of ['<html', '<head>', '<body>', '<main>', '<style>']) expect(html.split(el)).toHaveLength(2);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/\s(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(/i);
    // Every in-page link points at a section that exists.
    for (const m of html.matchAll(/href="#([^"]+)"/g)) expect(html).toContain(`id="${m[1]}"`);
  });

  it('has the header: title, generation time, options and wall time', () => {
    expect(html).toContain('<title>mgmc demo: a day on IEEE 33</title>');
    expect(html).toContain('2024-06-21T10:11:12.000Z');
    expect(html).toContain('2024-06-21 00:00 UTC – 2024-06-22 00:00 UTC (24.0 h, 15 min steps)');
    expect(html).toMatch(/<dt>Seed<\/dt><dd>42<\/dd>/);
    expect(html).toMatch(/<dt>Speed<\/dt><dd>×720<\/dd>/);
    expect(html).toMatch(/<dt>MGMCs<\/dt><dd>3<\/dd>/);
    expect(html).toMatch(/<dt>Wall time<\/dt><dd>2 min 11 s<\/dd>/);
  });

  it('summarises costs with and without the market, saving in currency and percent, sold and bought kWh', () => {
    const summary = html.slice(html.indexOf('id="summary"'), html.indexOf('id="microgrids"'));
    // 412.50 - 371.25 = 41.25, 10.0 % of the baseline.
    expect(summary).toMatch(/<td>Homes<\/td><td>25<\/td><td class="num">412.50<\/td><td class="num">371.25<\/td>/);
    expect(summary).toContain('<span class="gain">41.25</span>');
    expect(summary).toContain('<span class="gain">10.0</span>');
    expect(summary).toContain('<td class="num">85.4</td><td class="num">23.1</td>');
    // The total row adds the three sites.
    expect(summary).toContain('<td class="num">1,237.50</td><td class="num">1,113.75</td>');
  });

  it('marks failed checks visibly and says how many failed', () => {
    expect(html).toContain('1 of 3 checks FAILED.');
    const failed = [...html.matchAll(/<li class="check failed" data-check="failed">(.*?)<\/li>/g)];
    expect(failed).toHaveLength(1);
    expect(failed[0]![1]).toContain('<span class="badge failed">FAILED</span>');
    expect(failed[0]![1]).toContain('Workshop: 129 &lt; 138 blocks &lt;missing&gt;');
    expect([...html.matchAll(/data-check="ok"/g)]).toHaveLength(2);
  });

  it('escapes every name: no markup from data reaches the page', () => {
    expect(html).not.toContain('<b>');
    expect(html).not.toContain('&amp; "north"');
    expect(html).toContain('Offices &lt;b&gt;&amp;amp; &quot;north&quot; &#39;A&#39;');
    const schedule = svgs(html, 'schedule')[0]!;
    expect(attr(schedule.open, 'data-mgmc')).toBe('Offices &lt;b&gt;&amp;amp; &quot;north&quot; &#39;A&#39;');
  });

  it('draws one schedule chart per microgrid with every step on every measured line', () => {
    const charts = svgs(html, 'schedule');
    expect(charts).toHaveLength(3);
    for (const svg of charts) {
      expect(svg.open).toContain('role="img"');
      expect(svg.body).toMatch(/^<title id="[^"]+">Schedule of /);
      expect(attr(svg.open, 'data-points')).toBe('96');
      for (const series of ['grid', 'pv', 'battery', 'load', 'ev']) expect(seriesCoordinates(svg, series)).toBe(96);
      // The plan starts at step 4.
      expect(seriesCoordinates(svg, 'planned-grid')).toBe(92);
      for (const t of tags(svg.body, 'polyline')) expect(points(t)).toHaveLength(Number(attr(t, 'data-n')));
      expectInside(svg);
    }
    // Measured lines are solid, the plan dashed.
    const first = charts[0]!;
    const plan = tags(first.body, 'polyline').find((t) => attr(t, 'data-series') === 'planned-battery')!;
    expect(attr(plan, 'stroke-dasharray')).toBe('6 4');
    expect(attr(tags(first.body, 'polyline').find((t) => attr(t, 'data-series') === 'grid')!, 'stroke-dasharray')).toBe(
      undefined,
    );
    // UTC labels from the start of the day.
    expect(first.body).toContain('>00:00</text>');
    expect(first.body).toContain('>12:00</text>');
  });

  it('puts a SoC axis 0-100 on the right only where a battery reported SoC', () => {
    const [offices, homes, workshop] = svgs(html, 'schedule');
    for (const svg of [offices!, homes!]) {
      expect(attr(svg.open, 'data-soc')).toBe('yes');
      expect(svg.body).toContain('class="axis axis-right"');
      expect(svg.body).toContain('SoC %');
      expect(seriesCoordinates(svg, 'soc')).toBe(96);
    }
    expect(attr(workshop!.open, 'data-soc')).toBe('no');
    expect(workshop!.body).not.toContain('axis-right');
    expect(workshop!.body).not.toContain('SoC');
    expect(seriesCoordinates(workshop!, 'planned-battery')).toBe(0);
  });

  it('draws the market: volume bars, price line with whiskers, DSO prices, capped intervals marked', () => {
    const [market] = svgs(html, 'market');
    expect(market).toBeDefined();
    expect(attr(market!.open, 'data-points')).toBe('24');
    expect(attr(market!.open, 'data-capped')).toBe('3');
    const traded = data.market.filter((m) => m.volumeWh > 0);
    expect(tags(market!.body, 'rect').filter((t) => attr(t, 'data-kind') === 'volume')).toHaveLength(traded.length);
    // Capped bars are orange and flagged.
    const cappedBars = tags(market!.body, 'rect').filter(
      (t) => attr(t, 'fill') === '#E69F00' && attr(t, 'data-interval'),
    );
    expect(cappedBars.map((t) => attr(t, 'data-interval'))).toEqual(['11', '12', '13']);
    expect([...market!.body.matchAll(/data-capped="(\d+)"/g)].map((m) => m[1])).toEqual(['11', '12', '13']);
    // The average price has a point per traded interval, the DSO's prices two per interval (step lines).
    expect(seriesCoordinates(market!, 'price-avg')).toBe(traded.length);
    expect(seriesCoordinates(market!, 'import-price')).toBe(48);
    expect(seriesCoordinates(market!, 'export-price')).toBe(48);
    expect([...market!.body.matchAll(/data-whisker=/g)]).toHaveLength(traded.length);
    expect(market!.body).not.toContain('no trades');
    expectInside(market!);
  });

  it('lists every interval in the market table with 3-decimal prices and the capped ones marked', () => {
    const section = html.slice(html.indexOf('id="market"'), html.indexOf('id="feeder"'));
    const rows = [...section.matchAll(/<tr( class="capped")?><td>/g)];
    expect(rows).toHaveLength(24);
    expect(rows.filter((r) => r[1])).toHaveLength(3);
    expect(section).toContain('<td>11:00–12:00</td>');
    const noon = interval(12);
    expect(section).toContain(`<td class="num">${noon.priceAvg!.toFixed(3)}</td>`);
    expect(section).toContain('<td class="num">0.250 / 0.080</td>');
    expect(section).toContain('<td>no-participants</td>');
    // The night intervals had no trades: their prices are n/a, not 0 or NaN.
    expect(section).toMatch(/<td>00:00–01:00<\/td>(<td class="num">[^<]*<\/td>){4}<td class="num">n\/a<\/td>/);
  });

  it('draws the voltage profile: a point per bus per profile, dashed limits, MGMC buses marked', () => {
    const [voltage] = svgs(html, 'voltage');
    expect(attr(voltage!.open, 'data-points')).toBe('33');
    expect(attr(voltage!.open, 'data-profiles')).toBe('2');
    expect(seriesCoordinates(voltage!, 'profile-0')).toBe(33);
    expect(seriesCoordinates(voltage!, 'profile-1')).toBe(33);
    const limits = tags(voltage!.body, 'line').filter((t) => attr(t, 'data-limit'));
    expect(limits.map((t) => attr(t, 'data-limit'))).toEqual(['vMin', 'vMax']);
    for (const t of limits) expect(attr(t, 'stroke-dasharray')).toBe('6 4');
    expect(
      tags(voltage!.body, 'rect')
        .map((t) => attr(t, 'data-mgmc-bus'))
        .filter(Boolean),
    ).toEqual(['18', '25', '33']);
    expect(voltage!.body).toMatch(/font-weight="bold"[^>]*>18<\/text>/);
    expectInside(voltage!);
    const feeder = html.slice(html.indexOf('id="feeder"'), html.indexOf('id="ledgers"'));
    // 1 - 0.0027 * 17 - 0.001 * 15 = 0.9391, below vMin.
    expect(feeder).toContain('lowest 0.939 pu at bus 33 <span class="badge failed">below vMin</span>');
    expect(feeder).toContain('18 (Offices &lt;b&gt;');
  });

  it('draws the ledgers as grouped bars and tabulates them with the DSO line', () => {
    const [ledger] = svgs(html, 'ledger');
    expect(attr(ledger!.open, 'data-points')).toBe('3');
    const bars = tags(ledger!.body, 'rect').filter((t) => attr(t, 'data-kind'));
    expect(bars).toHaveLength(9);
    expect(bars.filter((t) => attr(t, 'data-mgmc') === 'Workshop').map((t) => attr(t, 'data-kind'))).toEqual([
      'blocksSigned',
      'anchoredHeight',
      'heldByDso',
    ]);
    expectInside(ledger!);
    const section = html.slice(html.indexOf('id="ledgers"'));
    expect(section).toContain('<td class="num">9,120</td>');
    expect(section).toMatch(/<tr class="failed"><td>Workshop<\/td>.*FAILED/);
    expect(section).toContain(
      'DSO chain: height 288, blocks received 422, verified 421, rejected <span class="warn">1</span>',
    );
  });

  it('gives every chart a figure, a caption, a title and a unique id', () => {
    const all = svgs(html);
    expect(all).toHaveLength(3 + 1 + 1 + 1);
    expect([...html.matchAll(/<figure>/g)]).toHaveLength(all.length);
    expect([...html.matchAll(/<figcaption>/g)]).toHaveLength(all.length);
    const ids = all.map((s) => attr(s.open, 'id'));
    expect(new Set(ids).size).toBe(ids.length);
    for (const s of all) {
      expect(attr(s.open, 'role')).toBe('img');
      expect(s.body).toContain(`<title id="${attr(s.open, 'id')}-title">`);
    }
  });

  it('renders a market without trades and a run with nothing at all', () => {
    const quiet = fixture();
    const noTrades = renderReport({
      ...quiet,
      market: quiet.market.map((m) => ({
        ...m,
        trades: 0,
        volumeWh: 0,
        priceAvg: null,
        priceMin: null,
        priceMax: null,
      })),
    });
    const [market] = svgs(noTrades, 'market');
    expect(attr(market!.open, 'data-trades')).toBe('0');
    expect(market!.body).toContain('data-empty="no-trades"');
    expect(market!.body).toContain('>no trades</text>');
    expect(seriesCoordinates(market!, 'price-avg')).toBe(0);
    expect(seriesCoordinates(market!, 'import-price')).toBe(48);
    expectInside(market!);

    const empty = renderReport({
      ...quiet,
      microgrids: [],
      market: [],
      feeder: { name: 'none', buses: [], vMin: 0.95, vMax: 1.05, profiles: [], mgmcBuses: [] },
      ledgers: [],
      checks: [],
    });
    expect(svgs(empty, 'schedule')).toHaveLength(0);
    expect(svgs(empty, 'market')[0]!.body).toContain('no market intervals');
    expect(attr(svgs(empty, 'voltage')[0]!.open, 'data-points')).toBe('0');
    expect(svgs(empty, 'ledger')[0]!.body).toContain('no ledgers');
    expect(empty).toContain('No end-of-run checks were recorded.');
  });

  it('keeps NaN and Infinity out of every chart and shows them as n/a', () => {
    const bad = fixture();
    const mg = bad.microgrids[1]!;
    const steps = mg.steps.map((s, i) =>
      i === 40 ? { ...s, gridW: Number.NaN, pvW: Number.POSITIVE_INFINITY, socPct: Number.NaN } : s,
    );
    const html2 = renderReport({
      ...bad,
      microgrids: [{ ...mg, steps, costActual: Number.NaN }],
      market: bad.market.map((m, i) =>
        i === 8 ? { ...m, priceAvg: Number.POSITIVE_INFINITY, volumeWh: Number.NaN } : m,
      ),
      feeder: {
        ...bad.feeder,
        profiles: [{ label: 'broken', voltagesPu: bad.feeder.buses.map((_, i) => (i === 5 ? Number.NaN : 1)) }],
      },
    });
    for (const svg of svgs(html2)) {
      expect(svg.body).not.toMatch(/NaN|Infinity/);
      expectInside(svg);
    }
    const [schedule] = svgs(html2, 'schedule');
    // Step 40 is a gap in the grid line: two runs, 95 points.
    expect(seriesCoordinates(schedule!, 'grid')).toBe(95);
    expect(tags(schedule!.body, 'polyline').filter((t) => attr(t, 'data-series') === 'grid')).toHaveLength(2);
    expect(seriesCoordinates(svgs(html2, 'voltage')[0]!, 'profile-0')).toBe(32);
    expect(html2).toContain('<td class="num">n/a</td>');
    expect(html2).not.toMatch(/>-?NaN|>-?Infinity/);
  });

  it('notes a voltage profile whose length does not match the buses instead of failing', () => {
    const d = fixture();
    const html2 = renderReport({
      ...d,
      feeder: { ...d.feeder, profiles: [{ label: 'short', voltagesPu: [1, 0.99, 0.98] }] },
    });
    expect(html2).toContain('3 values for 33 buses');
    expect(seriesCoordinates(svgs(html2, 'voltage')[0]!, 'profile-0')).toBe(3);
  });

  it('writeReport creates the directory and writes the same document', async () => {
    // Left in the temp dir on purpose, at a fixed path each run overwrites: open it in a browser to eyeball the report.
    const path = join(tmpdir(), 'mgmc-demo-report', 'fixture', 'report.html');
    await rm(dirname(path), { recursive: true, force: true });
    expect(await writeReport(path, data)).toBe(path);
    expect(readFileSync(path, 'utf8')).toBe(html);
    console.info(`fixture report: ${path}`);
  });
});
