/**
 * Chart primitives for the demo report: pure functions from numbers to SVG markup strings, no DOM, no dependencies.
 *
 * Every coordinate and length goes through num(), which throws on NaN/Infinity: a bad value fails loudly here instead
 * of drawing a chart that silently breaks in the browser. Charts therefore drop non-finite data first (finite(), runs()).
 * Every piece of text goes through escapeXml(), so names from the outside world cannot inject markup.
 */

export type Point = readonly [number, number];

/** Characters XML 1.0 forbids; HTML tolerates them but an SVG pulled out of the page would not parse. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these control characters are exactly what must be removed
const XML_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

const XML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text safe in element content and in quoted attributes, for HTML and SVG alike. */
export function escapeXml(text: string): string {
  return String(text)
    .replace(XML_FORBIDDEN, '')
    .replace(/[&<>"']/g, (c) => XML_ESCAPES[c] ?? c);
}

/** A coordinate or length as SVG text (at most 2 decimals); throws on NaN/Infinity, which must never reach a chart. */
export function num(v: number): string {
  if (!Number.isFinite(v)) {
    throw new RangeError(
      `svg: a chart tried to draw the coordinate ${String(v)}; drop non-finite values with finite() before scaling`,
    );
  }
  const r = Math.round(v * 100) / 100;
  return Object.is(r, -0) ? '0' : String(r);
}

/** The value when it is a finite number, else null (missing, NaN, Infinity). */
export function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Attributes as ` k="v"` text; numbers through num(), strings escaped, undefined and false left out. */
export function attrs(values: Readonly<Record<string, string | number | boolean | undefined>>): string {
  let out = '';
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined || value === false) continue;
    const text = value === true ? key : typeof value === 'number' ? num(value) : escapeXml(value);
    out += ` ${key}="${text}"`;
  }
  return out;
}

/** Rough width of a label in user units; enough to lay out legends and skip crowded tick labels. */
export function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.6;
}

/** At most `max` characters, with an ellipsis when cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, Math.max(1, max - 1))}…`;
}

// ---------------------------------------------------------------------------------------------------------------
// Scales and ticks

export interface LinearScale {
  readonly domain: readonly [number, number];
  readonly range: readonly [number, number];
  map(v: number): number;
}

export function linearScale(domain: readonly [number, number], range: readonly [number, number]): LinearScale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  // A zero-width domain would divide by zero; map everything to the start of the range instead.
  const span = d1 - d0 === 0 ? 1 : d1 - d0;
  return { domain, range, map: (v) => r0 + ((v - d0) / span) * (r1 - r0) };
}

export interface Ticks {
  /** The domain widened to whole ticks. */
  readonly min: number;
  readonly max: number;
  readonly step: number;
  readonly values: readonly number[];
  /** Decimals that show every tick exactly. */
  readonly decimals: number;
}

/**
 * Ticks at 1, 2 or 5 times a power of ten covering [lo, hi], about `target` intervals. A single value is widened so
 * the axis still has a span. Throws on non-finite bounds (a caller bug: compute bounds from finite() data only).
 */
export function niceTicks(lo: number, hi: number, target = 5): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    throw new RangeError(`svg: niceTicks needs finite bounds, got [${String(lo)}, ${String(hi)}]`);
  }
  let a = Math.min(lo, hi);
  let b = Math.max(lo, hi);
  if (a === b) {
    const pad = a === 0 ? 1 : Math.abs(a) * 0.1;
    a -= pad;
    b += pad;
  }
  const raw = (b - a) / Math.max(1, Math.round(target));
  const exp = Math.floor(Math.log10(raw));
  const base = 10 ** exp;
  const factor = [1, 2, 5, 10].find((f) => f * base >= raw * (1 - 1e-9)) ?? 10;
  const step = factor * base;
  const decimals = Math.min(12, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  const round = (v: number): number => Number(v.toFixed(decimals));
  // The epsilon keeps a bound that sits on a tick (up to float noise) from adding a whole empty interval.
  const min = round(Math.floor(a / step + 1e-9) * step);
  const max = round(Math.ceil(b / step - 1e-9) * step);
  const count = Math.round((max - min) / step);
  const values: number[] = [];
  for (let i = 0; i <= count; i++) values.push(round(min + i * step));
  return { min, max, step, values, decimals };
}

/** Equal bands for categories (intervals, MGMCs, buses): index -> position. */
export interface BandScale {
  readonly count: number;
  /** Distance from one band's start to the next. */
  readonly step: number;
  /** Width of the drawn part of a band (step minus padding). */
  readonly bandwidth: number;
  /** Start of band i's slot (its left edge including padding). */
  edge(i: number): number;
  start(i: number): number;
  center(i: number): number;
}

export function bandScale(count: number, from: number, to: number, padding = 0.2): BandScale {
  const n = Math.max(1, count);
  const step = (to - from) / n;
  const bandwidth = step * (1 - padding);
  const edge = (i: number): number => from + i * step;
  return {
    count,
    step,
    bandwidth,
    edge,
    start: (i) => edge(i) + (step - bandwidth) / 2,
    center: (i) => edge(i) + step / 2,
  };
}

export interface Tick {
  readonly value: number;
  readonly label: string;
  /** Drawn bold (e.g. an MGMC's bus). */
  readonly strong?: boolean;
}

export function numericTicks(ticks: Ticks, format: (v: number) => string = (v) => v.toFixed(ticks.decimals)): Tick[] {
  return ticks.values.map((value) => ({ value, label: format(value) }));
}

const MINUTE = 60_000;
const TIME_STEPS_MIN = [15, 30, 60, 120, 180, 240, 360, 480, 720, 1440, 2880, 4320, 10080];

/** HH:MM of a UTC instant (the report shows simulated time in UTC, whatever the viewer's zone). */
export function utcClock(ms: number): string {
  if (!Number.isFinite(ms)) return '--:--';
  return new Date(ms).toISOString().slice(11, 16);
}

/**
 * Time ticks on whole UTC multiples of 15 min, 30 min, 1 h, 2 h ... so that at most `maxTicks` fall in [startMs, endMs].
 * Labels are HH:MM; a midnight after the start shows as 24:00 on a chart of up to a day, as the date (MM-DD) on longer ones.
 */
export function timeTicks(startMs: number, endMs: number, maxTicks = 8): Tick[] {
  if (!Number.isFinite(startMs) || !Number.isFinite(endMs) || endMs <= startMs) return [];
  const span = endMs - startMs;
  const stepMin = TIME_STEPS_MIN.find((m) => span / (m * MINUTE) <= maxTicks) ?? TIME_STEPS_MIN.at(-1)!;
  const step = stepMin * MINUTE;
  const multiDay = span > 1440 * MINUTE;
  const ticks: Tick[] = [];
  for (let t = Math.ceil(startMs / step) * step; t <= endMs; t += step) {
    const midnight = t % (1440 * MINUTE) === 0;
    // A one-day chart ends at the next midnight: "24:00" reads as the end of the day, "00:00" as its start.
    const label =
      !midnight || t === startMs ? utcClock(t) : multiDay ? new Date(t).toISOString().slice(5, 10) : '24:00';
    ticks.push({ value: t, label });
  }
  return ticks;
}

/** Every k-th index so that labels `labelWidth` wide fit into `step` wide slots without overlapping. */
export function labelStride(step: number, labelWidth: number): number {
  if (step <= 0) return 1;
  return Math.max(1, Math.ceil((labelWidth + 4) / step));
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes

export interface LineStyle {
  readonly color: string;
  readonly width?: number;
  /** stroke-dasharray, e.g. "6 4". */
  readonly dash?: string;
  readonly opacity?: number;
}

type DataAttrs = Readonly<Record<string, string | number | undefined>>;

function dataAttrs(data: DataAttrs | undefined): Record<string, string | number | undefined> {
  const out: Record<string, string | number | undefined> = {};
  if (data) for (const [k, v] of Object.entries(data)) out[`data-${k}`] = v;
  return out;
}

function strokeAttrs(style: LineStyle): Record<string, string | number | undefined> {
  return {
    stroke: style.color,
    'stroke-width': style.width ?? 1.5,
    'stroke-dasharray': style.dash,
    'stroke-opacity': style.opacity,
  };
}

/** Points as the text of a points attribute: "x,y x,y ...". */
export function pointsText(points: readonly Point[]): string {
  return points.map(([x, y]) => `${num(x)},${num(y)}`).join(' ');
}

/** One <polyline>, or '' for no points. `data` becomes data-* attributes (tests and readers find series by them). */
export function polyline(points: readonly Point[], style: LineStyle, data?: DataAttrs): string {
  if (points.length === 0) return '';
  return `<polyline${attrs({
    points: pointsText(points),
    fill: 'none',
    ...strokeAttrs(style),
    'stroke-linejoin': 'round',
    'stroke-linecap': 'round',
    ...dataAttrs(data),
  })}/>`;
}

/** Split a series with gaps (null) into runs of consecutive points; each run becomes one polyline. */
export function runs(points: readonly (Point | null)[]): Point[][] {
  const out: Point[][] = [];
  let current: Point[] = [];
  for (const p of points) {
    if (p === null) {
      if (current.length > 0) out.push(current);
      current = [];
    } else {
      current.push(p);
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * A step line: value i holds from edges[i] to edges[i + 1] (edges.length = values.length + 1), so 2 points per value.
 * Pixel coordinates in, pixel coordinates out.
 */
export function stepPoints(edges: readonly number[], ys: readonly number[]): Point[] {
  if (edges.length !== ys.length + 1) {
    throw new RangeError(
      `svg: stepPoints needs one more edge than values, got ${edges.length} edges, ${ys.length} values`,
    );
  }
  const out: Point[] = [];
  ys.forEach((y, i) => {
    out.push([edges[i]!, y], [edges[i + 1]!, y]);
  });
  return out;
}

export function line(x1: number, y1: number, x2: number, y2: number, style: LineStyle, data?: DataAttrs): string {
  return `<line${attrs({ x1, y1, x2, y2, ...strokeAttrs(style), ...dataAttrs(data) })}/>`;
}

export interface RectOptions {
  readonly fill: string;
  readonly stroke?: string;
  readonly opacity?: number;
  /** Tooltip text (an SVG <title> child). */
  readonly title?: string;
  readonly data?: DataAttrs;
}

/** A rectangle from two corners in any order, so bars below a zero line need no special case. */
export function rect(x1: number, y1: number, x2: number, y2: number, options: RectOptions): string {
  const a = attrs({
    x: Math.min(x1, x2),
    y: Math.min(y1, y2),
    width: Math.abs(x2 - x1),
    height: Math.abs(y2 - y1),
    fill: options.fill,
    stroke: options.stroke,
    'fill-opacity': options.opacity,
    ...dataAttrs(options.data),
  });
  return options.title === undefined ? `<rect${a}/>` : `<rect${a}><title>${escapeXml(options.title)}</title></rect>`;
}

export type MarkerShape = 'circle' | 'square' | 'triangle' | 'diamond';
export const MARKER_SHAPES: readonly MarkerShape[] = ['circle', 'square', 'triangle', 'diamond'];

/** A point marker of about `size` across; distinct shapes keep series apart in grey-scale print. */
export function marker(shape: MarkerShape, cx: number, cy: number, size: number, fill: string, title?: string): string {
  const r = size / 2;
  let el: string;
  let tag: string;
  switch (shape) {
    case 'circle':
      tag = 'circle';
      el = attrs({ cx, cy, r, fill });
      break;
    case 'square':
      tag = 'rect';
      el = attrs({ x: cx - r, y: cy - r, width: size, height: size, fill });
      break;
    case 'triangle':
      tag = 'polygon';
      el = attrs({
        points: pointsText([
          [cx, cy - r],
          [cx + r, cy + r],
          [cx - r, cy + r],
        ]),
        fill,
      });
      break;
    case 'diamond':
      tag = 'polygon';
      el = attrs({
        points: pointsText([
          [cx, cy - r],
          [cx + r, cy],
          [cx, cy + r],
          [cx - r, cy],
        ]),
        fill,
      });
      break;
  }
  return title === undefined ? `<${tag}${el}/>` : `<${tag}${el}><title>${escapeXml(title)}</title></${tag}>`;
}

export interface TextOptions {
  readonly anchor?: 'start' | 'middle' | 'end';
  readonly size?: number;
  readonly weight?: 'normal' | 'bold';
  readonly fill?: string;
  /** Degrees, around (x, y). */
  readonly rotate?: number;
  /** Vertical alignment: 'middle' centres the text on y, 'hanging' puts its top at y. */
  readonly baseline?: 'middle' | 'hanging';
  readonly italic?: boolean;
  readonly data?: DataAttrs;
}

export function text(x: number, y: number, content: string, options: TextOptions = {}): string {
  const dy = options.baseline === 'middle' ? '0.35em' : options.baseline === 'hanging' ? '0.8em' : undefined;
  return `<text${attrs({
    x,
    y,
    dy,
    'text-anchor': options.anchor,
    'font-size': options.size,
    'font-weight': options.weight === 'bold' ? 'bold' : undefined,
    'font-style': options.italic ? 'italic' : undefined,
    fill: options.fill,
    transform: options.rotate === undefined ? undefined : `rotate(${num(options.rotate)} ${num(x)} ${num(y)})`,
    ...dataAttrs(options.data),
  })}>${escapeXml(content)}</text>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Axes and legends

export interface AxisOptions {
  readonly orient: 'left' | 'right' | 'bottom';
  /** x of a vertical axis, y of the bottom axis. */
  readonly at: number;
  /** Pixel extent of the axis line along its direction. */
  readonly from: number;
  readonly to: number;
  readonly ticks: readonly Tick[];
  /** Tick value -> pixel position along the axis. */
  readonly map: (v: number) => number;
  readonly title?: string;
  /** Grid lines across the plot, from the axis to this coordinate (x for vertical axes, y for the bottom axis). */
  readonly gridTo?: number;
  readonly fontSize?: number;
  /** Rotate bottom labels by -45 degrees (long category names). */
  readonly slanted?: boolean;
  readonly color?: string;
}

const AXIS_COLOR = '#555';
const GRID_COLOR = '#e3e3e3';

/** An axis: line, ticks, labels, optional title and grid lines. Returns the SVG group. */
export function axis(o: AxisOptions): string {
  const size = o.fontSize ?? 11;
  const color = o.color ?? AXIS_COLOR;
  const parts: string[] = [];
  const vertical = o.orient !== 'bottom';
  const sign = o.orient === 'left' ? -1 : 1;
  for (const tick of o.ticks) {
    const p = o.map(tick.value);
    const weight = tick.strong ? 'bold' : 'normal';
    if (vertical) {
      if (o.gridTo !== undefined) parts.push(line(o.at, p, o.gridTo, p, { color: GRID_COLOR, width: 1 }));
      parts.push(line(o.at, p, o.at + sign * 4, p, { color, width: 1 }));
      parts.push(
        text(o.at + sign * 7, p, tick.label, {
          anchor: o.orient === 'left' ? 'end' : 'start',
          size,
          fill: color,
          baseline: 'middle',
          weight,
        }),
      );
    } else {
      if (o.gridTo !== undefined) parts.push(line(p, o.at, p, o.gridTo, { color: GRID_COLOR, width: 1 }));
      parts.push(line(p, o.at, p, o.at + 4, { color, width: 1 }));
      parts.push(
        o.slanted
          ? text(p, o.at + 8, tick.label, { anchor: 'end', size, fill: color, rotate: -45, baseline: 'middle', weight })
          : text(p, o.at + 7, tick.label, { anchor: 'middle', size, fill: color, baseline: 'hanging', weight }),
      );
    }
  }
  parts.push(
    vertical
      ? line(o.at, o.from, o.at, o.to, { color, width: 1 })
      : line(o.from, o.at, o.to, o.at, { color, width: 1 }),
  );
  if (o.title !== undefined) {
    const mid = (o.from + o.to) / 2;
    if (vertical) {
      const widest = Math.max(0, ...o.ticks.map((t) => textWidth(t.label, size)));
      const x = o.at + sign * (widest + 16);
      parts.push(
        text(x, mid, o.title, { anchor: 'middle', size, fill: color, rotate: o.orient === 'left' ? -90 : 90 }),
      );
    } else {
      parts.push(text(mid, o.at + (o.slanted ? 44 : 30), o.title, { anchor: 'middle', size, fill: color }));
    }
  }
  return `<g${attrs({ class: `axis axis-${o.orient}` })}>${parts.join('')}</g>`;
}

export interface LegendItem {
  readonly label: string;
  readonly color: string;
  /** line: a stroke (dashed with `dash`); box: a filled square (bars); marker: a point shape. */
  readonly kind: 'line' | 'box' | 'marker';
  readonly dash?: string;
  readonly shape?: MarkerShape;
}

export interface Legend {
  readonly svg: string;
  /** Height used, so the plot can start below it. */
  readonly height: number;
}

/** Legend entries left to right from (x, y), wrapping to new rows within maxWidth. */
export function legend(items: readonly LegendItem[], x: number, y: number, maxWidth: number, fontSize = 11): Legend {
  const rowHeight = fontSize + 6;
  const swatch = 18;
  const parts: string[] = [];
  let cx = x;
  let row = 0;
  for (const item of items) {
    const width = swatch + 5 + textWidth(item.label, fontSize) + 14;
    if (cx > x && cx + width > x + maxWidth) {
      cx = x;
      row++;
    }
    const cy = y + row * rowHeight + rowHeight / 2;
    if (item.kind === 'box') {
      parts.push(rect(cx + 3, cy - 6, cx + 15, cy + 6, { fill: item.color }));
    } else if (item.kind === 'marker') {
      parts.push(marker(item.shape ?? 'circle', cx + swatch / 2, cy, 8, item.color));
    } else {
      parts.push(line(cx, cy, cx + swatch, cy, { color: item.color, width: 2, dash: item.dash }));
      if (item.shape) parts.push(marker(item.shape, cx + swatch / 2, cy, 7, item.color));
    }
    parts.push(text(cx + swatch + 5, cy, item.label, { size: fontSize, baseline: 'middle', fill: '#222' }));
    cx += width;
  }
  const height = items.length === 0 ? 0 : (row + 1) * rowHeight;
  return { svg: `<g class="legend">${parts.join('')}</g>`, height };
}

export interface ChartFrame {
  /** Unique in the page: the <title> and <desc> ids derive from it. */
  readonly id: string;
  readonly width: number;
  readonly height: number;
  readonly title: string;
  readonly desc?: string;
  /** data-* attributes on the <svg> (chart kind, counts), for tests and scripts reading the page. */
  readonly data: DataAttrs;
  readonly body: string;
}

/**
 * An inline <svg> sized by its viewBox (CSS scales it), announced to screen readers as one image with a title.
 * No xmlns: inside HTML the parser puts <svg> in the SVG namespace, and the page then holds no URL at all.
 */
export function svgChart(f: ChartFrame): string {
  const titleId = `${f.id}-title`;
  const descId = `${f.id}-desc`;
  const labelledBy = f.desc === undefined ? titleId : `${titleId} ${descId}`;
  const head =
    `<title${attrs({ id: titleId })}>${escapeXml(f.title)}</title>` +
    (f.desc === undefined ? '' : `<desc${attrs({ id: descId })}>${escapeXml(f.desc)}</desc>`);
  return `<svg${attrs({
    id: f.id,
    viewBox: `0 0 ${num(f.width)} ${num(f.height)}`,
    role: 'img',
    'aria-labelledby': labelledBy,
    'font-family': 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    ...dataAttrs(f.data),
  })}>${head}${f.body}</svg>`;
}
