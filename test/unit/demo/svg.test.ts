import { describe, expect, it } from 'vitest';
import {
  attrs,
  axis,
  bandScale,
  escapeXml,
  finite,
  labelStride,
  legend,
  linearScale,
  marker,
  niceTicks,
  num,
  numericTicks,
  polyline,
  rect,
  runs,
  stepPoints,
  svgChart,
  text,
  timeTicks,
  truncate,
  utcClock,
} from '../../../agent/demo/svg.js';

const DAY = Date.UTC(2024, 5, 21);
const HOUR = 3_600_000;

describe('escaping and numbers', () => {
  it('escapes the five XML specials and drops characters XML forbids', () => {
    expect(escapeXml(`<a href="x">Tom & Jerry's</a>`)).toBe(
      '&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;',
    );
    expect(escapeXml('&amp;')).toBe('&amp;amp;');
    expect(escapeXml('a\u0000b\u0007c\td\ne')).toBe('abc\td\ne');
  });

  it('formats coordinates with at most two decimals and refuses NaN and Infinity', () => {
    expect(num(1)).toBe('1');
    expect(num(1.23456)).toBe('1.23');
    expect(num(-0.001)).toBe('0');
    expect(() => num(Number.NaN)).toThrow(/NaN.*finite\(\)/);
    expect(() => num(Number.POSITIVE_INFINITY)).toThrow(/Infinity/);
    expect(() => attrs({ x: Number.NaN })).toThrow(RangeError);
    expect(() => polyline([[0, Number.NaN]], { color: 'red' })).toThrow(RangeError);
  });

  it('finite() keeps only finite numbers', () => {
    expect(finite(0)).toBe(0);
    expect(finite(-2.5)).toBe(-2.5);
    for (const v of [null, undefined, Number.NaN, Number.NEGATIVE_INFINITY]) expect(finite(v)).toBeNull();
  });

  it('builds attributes: numbers formatted, strings escaped, undefined and false left out', () => {
    expect(attrs({ x: 1.005, label: 'a"b', skip: undefined, off: false, on: true })).toBe(
      ' x="1" label="a&quot;b" on="on"',
    );
  });

  it('truncates long labels with an ellipsis', () => {
    expect(truncate('short', 10)).toBe('short');
    expect(truncate('a very long microgrid name', 8)).toBe('a very …');
    expect(truncate('a very long microgrid name', 8)).toHaveLength(8);
  });
});

describe('niceTicks', () => {
  it('covers the range with 1-2-5 steps and whole ticks at both ends', () => {
    const t = niceTicks(0, 37, 5);
    expect(t.step).toBe(10);
    expect(t.values).toEqual([0, 10, 20, 30, 40]);
    expect([t.min, t.max]).toEqual([0, 40]);
    expect(t.decimals).toBe(0);
  });

  it('handles negative ranges and small per-unit voltages without float noise', () => {
    expect(niceTicks(-18.3, 41.2, 6).values).toEqual([-20, -10, 0, 10, 20, 30, 40, 50]);
    const v = niceTicks(0.93, 1.05, 6);
    expect(v.step).toBe(0.02);
    expect(v.decimals).toBe(2);
    expect(v.values).toEqual([0.92, 0.94, 0.96, 0.98, 1, 1.02, 1.04, 1.06]);
    expect(niceTicks(0.1, 0.3, 2).values).toEqual([0.1, 0.2, 0.3]);
  });

  it('does not add an empty interval when a bound sits on a tick', () => {
    const t = niceTicks(0, 100, 4);
    expect(t.values.at(-1)).toBe(100);
    expect(t.values[0]).toBe(0);
  });

  it('widens a single value and accepts bounds in any order', () => {
    const zero = niceTicks(0, 0);
    expect(zero.min).toBeLessThan(0);
    expect(zero.max).toBeGreaterThan(0);
    expect(zero.values).toContain(0);
    const same = niceTicks(5, 5);
    expect(same.min).toBeLessThan(5);
    expect(same.max).toBeGreaterThan(5);
    expect(niceTicks(10, 0).values).toEqual(niceTicks(0, 10).values);
  });

  it('refuses non-finite bounds', () => {
    expect(() => niceTicks(0, Number.NaN)).toThrow(/finite bounds/);
  });

  it('labels ticks with the decimals the step needs', () => {
    expect(numericTicks(niceTicks(0.05, 0.35, 6)).map((t) => t.label)).toEqual([
      '0.05',
      '0.10',
      '0.15',
      '0.20',
      '0.25',
      '0.30',
      '0.35',
    ]);
  });
});

describe('scales', () => {
  it('maps a domain linearly onto a (possibly inverted) range', () => {
    const y = linearScale([0, 100], [300, 20]);
    expect(y.map(0)).toBe(300);
    expect(y.map(100)).toBe(20);
    expect(y.map(50)).toBe(160);
    expect(linearScale([3, 3], [0, 10]).map(3)).toBe(0);
  });

  it('splits a span into equal bands with padding', () => {
    const b = bandScale(4, 0, 400, 0.2);
    expect(b.step).toBe(100);
    expect(b.bandwidth).toBe(80);
    expect(b.start(1)).toBe(110);
    expect(b.center(3)).toBe(350);
    expect(b.edge(4)).toBe(400);
  });

  it('strides labels so they do not overlap', () => {
    expect(labelStride(40, 30)).toBe(1);
    expect(labelStride(20, 30)).toBe(2);
    expect(labelStride(0, 30)).toBe(1);
  });
});

describe('time ticks', () => {
  it('labels a day in UTC every two hours, the end as 24:00', () => {
    const ticks = timeTicks(DAY, DAY + 24 * HOUR, 12);
    expect(ticks).toHaveLength(13);
    expect(ticks[0]).toEqual({ value: DAY, label: '00:00' });
    expect(ticks[1]!.label).toBe('02:00');
    expect(ticks.at(-1)).toEqual({ value: DAY + 24 * HOUR, label: '24:00' });
  });

  it('uses whole UTC multiples when the start is not on one', () => {
    const ticks = timeTicks(DAY + 10 * 60_000, DAY + 3 * HOUR, 8);
    expect(ticks.map((t) => t.label)).toEqual(['00:30', '01:00', '01:30', '02:00', '02:30', '03:00']);
  });

  it('shows the date at midnights of a multi-day chart', () => {
    const ticks = timeTicks(DAY, DAY + 72 * HOUR, 8);
    expect(ticks.map((t) => t.label)).toEqual(['00:00', '12:00', '06-22', '12:00', '06-23', '12:00', '06-24']);
  });

  it('returns no ticks for an empty or non-finite span', () => {
    expect(timeTicks(DAY, DAY)).toEqual([]);
    expect(timeTicks(Number.NaN, DAY)).toEqual([]);
    expect(utcClock(Number.NaN)).toBe('--:--');
    expect(utcClock(DAY + 13 * HOUR + 45 * 60_000)).toBe('13:45');
  });
});

describe('shapes', () => {
  it('writes a polyline with one coordinate pair per point and data attributes', () => {
    const p = polyline(
      [
        [0, 0],
        [10.5, 20.25],
        [30, 40],
      ],
      { color: '#123', dash: '6 4' },
      { series: 'grid', n: 3 },
    );
    expect(p).toMatch(
      /^<polyline points="0,0 10\.5,20\.25 30,40" fill="none" stroke="#123" stroke-width="1\.5" stroke-dasharray="6 4"/,
    );
    expect(p).toContain('data-series="grid" data-n="3"');
    expect(polyline([], { color: 'red' })).toBe('');
  });

  it('splits a series at gaps into runs', () => {
    expect(runs([[0, 0], [1, 1], null, null, [3, 3], null])).toEqual([
      [
        [0, 0],
        [1, 1],
      ],
      [[3, 3]],
    ]);
    expect(runs([null])).toEqual([]);
  });

  it('makes step lines with two points per value', () => {
    expect(stepPoints([0, 10, 20], [5, 7])).toEqual([
      [0, 5],
      [10, 5],
      [10, 7],
      [20, 7],
    ]);
    expect(() => stepPoints([0, 10], [5, 7])).toThrow(/one more edge/);
  });

  it('normalises rectangles drawn downwards or leftwards and escapes tooltips', () => {
    expect(rect(10, 50, 0, 20, { fill: 'red', title: 'a<b' })).toBe(
      '<rect x="0" y="20" width="10" height="30" fill="red"><title>a&lt;b</title></rect>',
    );
  });

  it('draws markers of four shapes', () => {
    expect(marker('circle', 5, 5, 4, 'red')).toBe('<circle cx="5" cy="5" r="2" fill="red"/>');
    expect(marker('square', 5, 5, 4, 'red')).toBe('<rect x="3" y="3" width="4" height="4" fill="red"/>');
    expect(marker('triangle', 5, 5, 4, 'red')).toBe('<polygon points="5,3 7,7 3,7" fill="red"/>');
    expect(marker('diamond', 5, 5, 4, 'red', 'x&y')).toBe(
      '<polygon points="5,3 7,5 5,7 3,5" fill="red"><title>x&amp;y</title></polygon>',
    );
  });

  it('escapes text content and rotates around its anchor', () => {
    expect(text(10, 20, '<b>', { anchor: 'middle', rotate: -90 })).toBe(
      '<text x="10" y="20" text-anchor="middle" transform="rotate(-90 10 20)">&lt;b&gt;</text>',
    );
  });
});

describe('axes, legends and the chart frame', () => {
  it('draws an axis with a tick and label per tick value, grid lines and a title', () => {
    const y = linearScale([0, 40], [200, 0]);
    const a = axis({
      orient: 'left',
      at: 50,
      from: 200,
      to: 0,
      ticks: numericTicks(niceTicks(0, 40, 4)),
      map: y.map,
      title: 'kW',
      gridTo: 500,
    });
    expect(a.match(/<text/g)).toHaveLength(5 + 1);
    expect(a).toContain('>40</text>');
    expect(a).toContain('>kW</text>');
    expect(a).toContain('x1="50" y1="0" x2="500" y2="0"');
    const b = axis({
      orient: 'bottom',
      at: 200,
      from: 0,
      to: 100,
      ticks: [{ value: 1, label: 'x', strong: true }],
      map: (v) => v * 10,
    });
    expect(b).toContain('font-weight="bold"');
    expect(b).toContain('class="axis axis-bottom"');
  });

  it('wraps legend entries into rows within the width it is given', () => {
    const items = ['grid (import +)', 'PV', 'battery (discharge +)', 'load', 'EV'].map((label) => ({
      label,
      color: '#000',
      kind: 'line' as const,
    }));
    const wide = legend(items, 0, 0, 2000);
    const narrow = legend(items, 0, 0, 200);
    expect(wide.height).toBe(17);
    expect(narrow.height).toBeGreaterThan(wide.height);
    expect(narrow.svg.match(/<text/g)).toHaveLength(5);
    expect(legend([], 0, 0, 100).height).toBe(0);
  });

  it('frames a chart as an accessible inline svg with its data attributes and no URL', () => {
    const s = svgChart({
      id: 'c-1',
      width: 760,
      height: 300,
      title: 'A & B',
      desc: 'desc',
      data: { chart: 'schedule', mgmc: '<x>', points: 96 },
      body: '<g/>',
    });
    expect(s).toMatch(/^<svg id="c-1" viewBox="0 0 760 300" role="img" aria-labelledby="c-1-title c-1-desc"/);
    expect(s).toContain('data-chart="schedule" data-mgmc="&lt;x&gt;" data-points="96"');
    expect(s).toContain('<title id="c-1-title">A &amp; B</title><desc id="c-1-desc">desc</desc><g/></svg>');
    expect(s).not.toMatch(/https?:/);
  });
});
