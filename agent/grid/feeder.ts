/**
 * The feeder model the DSO checks trades against: buses with their base loads, lines with impedance and ampacity,
 * switches (lines with a status), and which MGMC sits at which bus. A FeederSpec is what a file or a data module
 * gives; createFeeder checks it and compiles the radial tree the power flow walks.
 *
 * Every problem is reported at once with the key path of the offending value, so a feeder file can point at
 * file:line:col (feeder-file.ts) and a spec built in code gets the same messages naming the bus or line.
 */
import { closest, quoteList } from '../config/suggest.js';
import type { PathSegment } from '../config/yaml-source.js';

export type SwitchStatus = 'open' | 'closed';

export interface BusSpec {
  readonly name: string;
  /** Base load, three-phase total, kW; negative for a bus that generates. */
  readonly pKw: number;
  /** Base reactive load, kvar. */
  readonly qKvar: number;
}

export interface LineSpec {
  readonly name: string;
  readonly from: string;
  readonly to: string;
  /** Series resistance per phase, ohm. */
  readonly rOhm: number;
  /** Series reactance per phase, ohm. */
  readonly xOhm: number;
  /** Thermal limit, A. */
  readonly ampacityA: number;
  /** A switchable line and its state; a line without it is always in service and never switched. */
  readonly status?: SwitchStatus;
}

/** Which MGMC sits at which bus (the DSO registry's `bus`). */
export interface MgmcAttachment {
  /** The MGMC's name or address, as the DSO knows it. */
  readonly mgmc: string;
  readonly bus: string;
}

export interface VoltageBand {
  /** pu */
  readonly min: number;
  /** pu */
  readonly max: number;
}

export interface FeederSpec {
  readonly name: string;
  /** Line-to-line base voltage, kV. */
  readonly baseKv: number;
  /** Base power for per-unit values, MVA. */
  readonly baseMva: number;
  /** The substation bus, held at slackVoltagePu. The first bus when left out. */
  readonly slack?: string;
  readonly slackVoltagePu?: number;
  /** Allowed bus voltages; 0.95-1.05 pu when left out. */
  readonly voltageBand?: VoltageBand;
  readonly buses: readonly BusSpec[];
  readonly lines: readonly LineSpec[];
  readonly mgmcs?: readonly MgmcAttachment[];
}

export const DEFAULT_VOLTAGE_BAND: VoltageBand = Object.freeze({ min: 0.95, max: 1.05 });

/** One problem of a feeder spec: where (key path into the spec), what was expected, and what to do. */
export interface FeederProblem {
  readonly path: readonly PathSegment[];
  readonly expected: string;
  readonly hint?: string;
}

/** A feeder spec that cannot be used; `problems` lists all of them. Exit code 65 (bad data) for the CLI. */
export class FeederError extends Error {
  override readonly name = 'FeederError';
  readonly exitCode = 65;

  constructor(
    readonly feeder: string,
    readonly problems: readonly FeederProblem[],
  ) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super(`feeder ${feeder}: ${count}\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
  }
}

export function formatProblem(problem: FeederProblem): string {
  const fields = [formatSpecPath(problem.path), problem.expected];
  if (problem.hint !== undefined && problem.hint !== '') fields.push(problem.hint);
  return fields.join('  ');
}

function formatSpecPath(path: readonly PathSegment[]): string {
  if (path.length === 0) return '(feeder)';
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/**
 * The radial tree of the closed lines, rooted at the slack bus, as flat arrays the sweep walks without allocating.
 * Indices are positions in Feeder.buses and Feeder.lines.
 */
export interface Topology {
  readonly slack: number;
  /** Every bus, parents before children (breadth first from the slack). */
  readonly order: Int32Array;
  /** Parent bus of each bus; -1 for the slack. */
  readonly parent: Int32Array;
  /** Line from each bus to its parent; -1 for the slack. */
  readonly parentLine: Int32Array;
  /** 1 for a line in service (no status, or closed). */
  readonly inService: Uint8Array;
  /** Index of each line's from and to bus. */
  readonly lineFrom: Int32Array;
  readonly lineTo: Int32Array;
  /** Number of lines between each bus and the slack. */
  readonly depth: Int32Array;
}

/** A checked feeder with its radial tree compiled for the current switch states. */
export interface Feeder {
  readonly name: string;
  readonly baseKv: number;
  readonly baseMva: number;
  readonly slack: string;
  readonly slackVoltagePu: number;
  readonly voltageBand: VoltageBand;
  readonly buses: readonly BusSpec[];
  readonly lines: readonly LineSpec[];
  readonly mgmcs: readonly MgmcAttachment[];
  readonly busIndex: ReadonlyMap<string, number>;
  readonly lineIndex: ReadonlyMap<string, number>;
  readonly topology: Topology;
  /** Base impedance, ohm (kV² / MVA). */
  readonly zBaseOhm: number;
  /** Base current, A (MVA / (√3 kV)). */
  readonly iBaseA: number;
}

/** The spec back from a feeder (with defaults written out), e.g. to save a reconfigured feeder. */
export function feederSpec(feeder: Feeder): FeederSpec {
  return {
    name: feeder.name,
    baseKv: feeder.baseKv,
    baseMva: feeder.baseMva,
    slack: feeder.slack,
    slackVoltagePu: feeder.slackVoltagePu,
    voltageBand: feeder.voltageBand,
    buses: feeder.buses,
    lines: feeder.lines,
    mgmcs: feeder.mgmcs,
  };
}

/** Checks a spec and compiles it; throws FeederError listing every problem. */
export function createFeeder(spec: FeederSpec): Feeder {
  const problems = checkFeeder(spec);
  if (problems.length > 0) throw new FeederError(spec.name || '(unnamed)', problems);
  return compile(spec);
}

/** The same feeder with some switches set; throws FeederError when the result is not radial and connected. */
export function withSwitchStates(feeder: Feeder, states: Readonly<Record<string, SwitchStatus>>): Feeder {
  const problems: FeederProblem[] = [];
  for (const name of Object.keys(states)) {
    const index = feeder.lineIndex.get(name);
    if (index === undefined) {
      problems.push({ path: ['lines'], expected: `a line named ${name}`, hint: 'no such line in the feeder' });
    } else if (feeder.lines[index]?.status === undefined) {
      problems.push({
        path: ['lines', index, 'status'],
        expected: `a switch (a line with status:)`,
        hint: `line ${name} has no switch; it cannot be opened or closed`,
      });
    }
  }
  if (problems.length > 0) throw new FeederError(feeder.name, problems);
  const lines = feeder.lines.map((line) => {
    const status = states[line.name];
    return status === undefined ? line : { ...line, status };
  });
  return createFeeder({ ...feederSpec(feeder), lines });
}

/** Names of the switches that are open. */
export function openSwitches(feeder: Feeder): string[] {
  return feeder.lines.filter((line) => line.status === 'open').map((line) => line.name);
}

function lineLabel(line: { name: string; from: unknown; to: unknown }): string {
  const ends = `${String(line.from)}-${String(line.to)}`;
  return line.name === ends ? `line ${ends}` : `line ${line.name} (${ends})`;
}

/**
 * Every problem of a spec: names (missing, duplicate), references to unknown buses, values (negative or zero
 * impedance, ampacity, base values, voltage band), and, when those are sound, topology: a loop of closed lines
 * (naming the lines and the closed switches in it) or buses not connected to the slack bus (naming the island and
 * the open switches that would connect it).
 */
export function checkFeeder(spec: FeederSpec): FeederProblem[] {
  const problems: FeederProblem[] = [];
  const add = (path: readonly PathSegment[], expected: string, hint?: string): void => {
    problems.push(hint === undefined ? { path, expected } : { path, expected, hint });
  };
  const positive = (path: readonly PathSegment[], value: unknown, what: string): void => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      add(path, `${what} above 0`, `got ${String(value)}`);
    }
  };
  positive(['baseKv'], spec.baseKv, 'a base voltage (kV)');
  positive(['baseMva'], spec.baseMva, 'a base power (MVA)');
  if (spec.slackVoltagePu !== undefined) {
    const v = spec.slackVoltagePu;
    if (!Number.isFinite(v) || v < 0.5 || v > 1.5)
      add(['slackVoltagePu'], 'a slack voltage from 0.5 to 1.5 pu', `got ${v}`);
  }
  const band = spec.voltageBand ?? DEFAULT_VOLTAGE_BAND;
  if (!(Number.isFinite(band.min) && Number.isFinite(band.max) && band.min > 0 && band.min < band.max)) {
    add(['voltageBand'], 'a voltage band with 0 < min < max (pu)', `got min ${band.min}, max ${band.max}`);
  }

  const buses = new Map<string, number>();
  if (spec.buses.length === 0) add(['buses'], 'at least one bus (the substation)', 'the feeder has no buses');
  for (const [i, bus] of spec.buses.entries()) {
    if (typeof bus.name !== 'string' || bus.name === '') {
      add(['buses', i, 'name'], 'a bus name (not empty)');
      continue;
    }
    const first = buses.get(bus.name);
    if (first !== undefined) {
      add(['buses', i, 'name'], 'a bus name used once', `bus ${bus.name} is also buses[${first}]`);
    } else {
      buses.set(bus.name, i);
    }
    for (const [key, unit] of [
      ['pKw', 'kW'],
      ['qKvar', 'kvar'],
    ] as const) {
      if (!Number.isFinite(bus[key])) add(['buses', i, key], `a load in ${unit}`, `bus ${bus.name}: got ${bus[key]}`);
    }
  }
  const busNames = [...buses.keys()];
  const unknownBus = (path: readonly PathSegment[], name: string, who: string): void => {
    add(path, 'the name of a bus of the feeder', `${who}: no bus ${name}; ${suggest(name, busNames)}`);
  };

  const slack = spec.slack ?? spec.buses[0]?.name;
  if (spec.slack !== undefined && !buses.has(spec.slack)) unknownBus(['slack'], spec.slack, 'the slack bus');

  const lineNames = new Map<string, number>();
  let referencesOk = true;
  for (const [i, line] of spec.lines.entries()) {
    const label = lineLabel(line);
    if (typeof line.name !== 'string' || line.name === '') {
      add(['lines', i, 'name'], 'a line name (not empty)');
    } else {
      const first = lineNames.get(line.name);
      if (first !== undefined)
        add(['lines', i, 'name'], 'a line name used once', `line ${line.name} is also lines[${first}]`);
      else lineNames.set(line.name, i);
    }
    for (const end of ['from', 'to'] as const) {
      if (!buses.has(line[end])) {
        unknownBus(['lines', i, end], line[end], label);
        referencesOk = false;
      }
    }
    if (line.from === line.to) {
      add(['lines', i, 'to'], 'a bus other than the from bus', `${label} connects bus ${line.from} to itself`);
      referencesOk = false;
    }
    const r = line.rOhm;
    const x = line.xOhm;
    if (!Number.isFinite(r) || r < 0) add(['lines', i, 'rOhm'], 'a resistance of at least 0 ohm', `${label} has ${r}`);
    if (!Number.isFinite(x) || x < 0) add(['lines', i, 'xOhm'], 'a reactance of at least 0 ohm', `${label} has ${x}`);
    if (r === 0 && x === 0) {
      add(
        ['lines', i],
        'a line with an impedance (r or x above 0)',
        `${label} has zero impedance; merge its two buses into one`,
      );
    }
    positive(['lines', i, 'ampacityA'], line.ampacityA, `${label}: an ampacity (A)`);
    if (line.status !== undefined && line.status !== 'open' && line.status !== 'closed') {
      add(['lines', i, 'status'], 'open or closed', `${label}: got ${String(line.status)}`);
    }
  }

  const mgmcs = new Map<string, number>();
  for (const [i, m] of (spec.mgmcs ?? []).entries()) {
    const first = mgmcs.get(m.mgmc);
    if (first !== undefined) {
      add(['mgmcs', i, 'mgmc'], 'each MGMC attached once', `${m.mgmc} is also attached at mgmcs[${first}]`);
    } else {
      mgmcs.set(m.mgmc, i);
    }
    if (!buses.has(m.bus)) unknownBus(['mgmcs', i, 'bus'], m.bus, `MGMC ${m.mgmc}`);
  }

  if (referencesOk && slack !== undefined && buses.has(slack)) problems.push(...checkTopology(spec, buses, slack));
  return problems;
}

/** Loops of closed lines and buses cut off from the slack; only called once every line names two known buses. */
function checkTopology(spec: FeederSpec, buses: ReadonlyMap<string, number>, slack: string): FeederProblem[] {
  const problems: FeederProblem[] = [];
  const n = spec.buses.length;
  const sets = new DisjointSets(n);
  // Adjacency of the closed lines accepted so far: a loop's path is found in it when a line closes one.
  const adjacency: { bus: number; line: number }[][] = Array.from({ length: n }, () => []);
  for (const [i, line] of spec.lines.entries()) {
    if (line.status === 'open') continue;
    const a = buses.get(line.from) as number;
    const b = buses.get(line.to) as number;
    if (sets.union(a, b)) {
      adjacency[a]?.push({ bus: b, line: i });
      adjacency[b]?.push({ bus: a, line: i });
      continue;
    }
    const loop = [...pathBetween(adjacency, a, b), i];
    const loopLines = loop.map((l) => spec.lines[l] as LineSpec);
    const closedSwitches = loopLines.filter((l) => l.status === 'closed').map((l) => l.name);
    const what =
      closedSwitches.length > 0
        ? `open one of the closed switches ${closedSwitches.join(', ')}`
        : 'none of them is a switch: give one status: open, or remove it';
    problems.push({
      path: line.status === undefined ? ['lines', i] : ['lines', i, 'status'],
      expected: 'a radial feeder (no loop of closed lines)',
      hint: `${lineLabel(line)} closes a loop of lines ${loopLines.map((l) => l.name).join(', ')}; ${what}`,
    });
  }
  const root = sets.find(buses.get(slack) as number);
  const islands = new Map<number, number[]>();
  for (let b = 0; b < n; b++) {
    const r = sets.find(b);
    if (r === root) continue;
    const members = islands.get(r) ?? [];
    members.push(b);
    islands.set(r, members);
  }
  for (const members of islands.values()) {
    const names = members.map((b) => spec.buses[b]?.name as string);
    const inIsland = new Set(names);
    const bridges = spec.lines
      .filter((l) => l.status === 'open' && inIsland.has(l.from) !== inIsland.has(l.to))
      .map((l) => l.name);
    const shown =
      names.length > 12 ? `${names.slice(0, 12).join(', ')} and ${names.length - 12} more` : names.join(', ');
    const fix = bridges.length > 0 ? `close one of the switches ${bridges.join(', ')}` : 'add a line that connects it';
    problems.push({
      path: ['buses', members[0] as number, 'name'],
      expected: `a bus connected to the slack bus ${slack} through closed lines`,
      hint: `bus${names.length === 1 ? '' : 'es'} ${shown} form${names.length === 1 ? 's' : ''} an island; ${fix}`,
    });
  }
  return problems;
}

/** Lines on the tree path from `from` to `to` (both in one tree of `adjacency`). */
function pathBetween(adjacency: readonly { bus: number; line: number }[][], from: number, to: number): number[] {
  const via = new Map<number, { bus: number; line: number }>([[from, { bus: -1, line: -1 }]]);
  const queue = [from];
  for (let head = 0; head < queue.length && !via.has(to); head++) {
    const bus = queue[head] as number;
    for (const edge of adjacency[bus] ?? []) {
      if (via.has(edge.bus)) continue;
      via.set(edge.bus, { bus, line: edge.line });
      queue.push(edge.bus);
    }
  }
  const lines: number[] = [];
  for (let bus = to; bus !== from; ) {
    const step = via.get(bus) as { bus: number; line: number };
    lines.push(step.line);
    bus = step.bus;
  }
  return lines.reverse();
}

/** Union-find with path halving; the topology check and reconfiguration both use it. */
export class DisjointSets {
  private readonly parent: Int32Array;

  constructor(size: number) {
    this.parent = Int32Array.from({ length: size }, (_, i) => i);
  }

  find(x: number): number {
    const p = this.parent;
    let i = x;
    while (p[i] !== i) {
      p[i] = p[p[i] as number] as number;
      i = p[i] as number;
    }
    return i;
  }

  /** Joins the sets of a and b; false when they were already one (the edge would close a loop). */
  union(a: number, b: number): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    this.parent[ra] = rb;
    return true;
  }
}

function suggest(given: string, names: readonly string[]): string {
  const near = closest(given, names);
  // Short names are one edit from many others (5 from 1, 2, 3...): a long list of guesses helps nobody.
  if (near.length > 0 && near.length <= 2) return `did you mean ${quoteList(near)}?`;
  if (names.length <= 8) return names.length === 0 ? 'the feeder has no buses' : `buses: ${names.join(', ')}`;
  return `buses: ${names.slice(0, 8).join(', ')}, … (${names.length} in all)`;
}

function compile(spec: FeederSpec): Feeder {
  const busIndex = new Map(spec.buses.map((b, i) => [b.name, i]));
  const lineIndex = new Map(spec.lines.map((l, i) => [l.name, i]));
  const slack = spec.slack ?? (spec.buses[0] as BusSpec).name;
  const n = spec.buses.length;
  const m = spec.lines.length;
  const lineFrom = new Int32Array(m);
  const lineTo = new Int32Array(m);
  const inService = new Uint8Array(m);
  const adjacency: { bus: number; line: number }[][] = Array.from({ length: n }, () => []);
  for (const [i, line] of spec.lines.entries()) {
    const a = busIndex.get(line.from) as number;
    const b = busIndex.get(line.to) as number;
    lineFrom[i] = a;
    lineTo[i] = b;
    if (line.status === 'open') continue;
    inService[i] = 1;
    adjacency[a]?.push({ bus: b, line: i });
    adjacency[b]?.push({ bus: a, line: i });
  }
  const root = busIndex.get(slack) as number;
  const order = new Int32Array(n);
  const parent = new Int32Array(n).fill(-1);
  const parentLine = new Int32Array(n).fill(-1);
  const depth = new Int32Array(n);
  const seen = new Uint8Array(n);
  order[0] = root;
  seen[root] = 1;
  let tail = 1;
  for (let head = 0; head < tail; head++) {
    const bus = order[head] as number;
    for (const edge of adjacency[bus] ?? []) {
      if (seen[edge.bus] === 1) continue;
      seen[edge.bus] = 1;
      parent[edge.bus] = bus;
      parentLine[edge.bus] = edge.line;
      depth[edge.bus] = (depth[bus] as number) + 1;
      order[tail++] = edge.bus;
    }
  }
  const band = spec.voltageBand ?? DEFAULT_VOLTAGE_BAND;
  return {
    name: spec.name,
    baseKv: spec.baseKv,
    baseMva: spec.baseMva,
    slack,
    slackVoltagePu: spec.slackVoltagePu ?? 1,
    voltageBand: { min: band.min, max: band.max },
    buses: spec.buses.map((b) => ({ name: b.name, pKw: b.pKw, qKvar: b.qKvar })),
    lines: spec.lines.map((l) => ({ ...l })),
    mgmcs: (spec.mgmcs ?? []).map((a) => ({ mgmc: a.mgmc, bus: a.bus })),
    busIndex,
    lineIndex,
    topology: { slack: root, order, parent, parentLine, inService, lineFrom, lineTo, depth },
    zBaseOhm: (spec.baseKv * spec.baseKv) / spec.baseMva,
    iBaseA: (spec.baseMva * 1000) / (Math.sqrt(3) * spec.baseKv),
  };
}
