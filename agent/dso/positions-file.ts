/**
 * Positions files for `mgmc grid check` (docs/feeder-format.md, "The positions file"): the MGMCs' net positions per
 * market interval, with the base load of the feeder and where MGMCs sit. Read with the config machinery, like feeder
 * and loads files: YAML (or JSON) with positions, a schema that rejects unknown keys, then the names checked against
 * the feeder; every problem at once as `file:line:col  key.path  expected  hint` (FeederFileError, exit 78).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { type ConfigIssue, sortIssues } from '../config/issues.js';
import { describeFsError } from '../config/secret.js';
import { closest, quoteList } from '../config/suggest.js';
import { formatPath, type PathSegment, positionOf } from '../config/yaml-source.js';
import type { Feeder } from '../grid/feeder.js';
import { FeederFileError, type Parsed, parseWithSchema } from '../grid/feeder-file.js';
import { type BusPowers, busLoads } from '../grid/powerflow.js';
import type { ReportedPosition } from './network-check.js';

const Name = (description: string) =>
  Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer({ minimum: 0 })], { description });

const powerSchema = Type.Object(
  {
    pKw: Type.Optional(Type.Number({ description: 'kW (positive: consumption).' })),
    qKvar: Type.Optional(Type.Number({ description: 'kvar.' })),
  },
  { additionalProperties: false, description: 'Active and reactive power.' },
);

const intervalSchema = Type.Object(
  {
    interval: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Integer({ minimum: 0 })], {
      description: 'The interval: its start as an ISO 8601 time or ms since the epoch, or any label.',
    }),
    scale: Type.Optional(Type.Number({ minimum: 0, description: 'Base-load scale for this interval only.' })),
    netW: Type.Record(Type.String(), Type.Integer(), {
      description: 'Net position per MGMC name (or bus name), W: positive imports from the feeder, negative exports.',
    }),
  },
  { additionalProperties: false, description: 'One market interval.' },
);

export const positionsFileSchema = Type.Object(
  {
    scale: Type.Optional(Type.Number({ minimum: 0, description: 'Multiplies every base load (P and Q).' })),
    buses: Type.Optional(
      Type.Record(Type.String(), powerSchema, { description: 'Per bus: pKw and/or qKvar replacing its base load.' }),
    ),
    mgmcs: Type.Optional(
      Type.Record(Type.String(), Name('The bus the MGMC sits at.'), {
        description: "MGMCs the feeder's mgmcs: list does not attach: name -> bus.",
      }),
    ),
    weights: Type.Optional(
      Type.Record(Type.String(), Type.Number({ exclusiveMinimum: 0 }), {
        description: 'Cost of curtailing one kW of an MGMC relative to the others (default 1).',
      }),
    ),
    intervals: Type.Array(intervalSchema, { minItems: 1, description: 'The market intervals to check.' }),
  },
  { additionalProperties: false, description: 'Net positions of MGMCs per market interval.' },
);

type PositionsData = Static<typeof positionsFileSchema>;

/** One interval of a positions file, ready for checkNetwork. */
export interface IntervalPositions {
  /** As written in the file. */
  readonly label: string;
  /** Start in ms, when the label is a time. */
  readonly start?: number;
  readonly base: BusPowers;
  readonly positions: readonly ReportedPosition[];
}

/** Checks the text of a positions file against a feeder; `file` is only used in messages. */
export function checkPositionsText(
  text: string,
  file: string,
  feeder: Feeder,
): { ok: boolean; issues: readonly ConfigIssue[]; intervals?: IntervalPositions[] } {
  const parsed = parse(text, file);
  if (parsed.data === undefined || parsed.source === undefined) return { ok: false, issues: parsed.issues };
  const { data, source } = parsed;
  const issues: ConfigIssue[] = [];
  const issue = (path: PathSegment[], prefer: 'key' | 'value', expected: string, hint?: string) => {
    const { line, column } = positionOf(source, path, prefer);
    issues.push({ file, line, column, path: formatPath(path), expected, ...(hint === undefined ? {} : { hint }) });
  };
  const busNames = feeder.buses.map((b) => b.name);
  const suggest = (given: string, names: readonly string[]): string => {
    const near = closest(given, names);
    if (near.length > 0 && near.length <= 2) return `did you mean ${quoteList(near)}?`;
    return names.length <= 8
      ? `known: ${names.join(', ') || 'none'}`
      : `${names.length} known, e.g. ${names.slice(0, 8).join(', ')}`;
  };

  const at = new Map(feeder.mgmcs.map((m) => [m.mgmc, m.bus]));
  for (const [name, bus] of Object.entries(data.mgmcs ?? {})) {
    if (!feeder.busIndex.has(String(bus))) {
      issue(
        ['mgmcs', name],
        'value',
        'a bus of the feeder',
        `MGMC ${name}: no bus ${bus}; ${suggest(String(bus), busNames)}`,
      );
    } else {
      at.set(name, String(bus));
    }
  }
  for (const name of Object.keys(data.buses ?? {})) {
    if (!feeder.busIndex.has(name)) issue(['buses', name], 'key', 'a bus of the feeder', suggest(name, busNames));
  }
  const names = [...at.keys(), ...busNames];
  for (const name of Object.keys(data.weights ?? {})) {
    if (!at.has(name) && !feeder.busIndex.has(name)) {
      issue(['weights', name], 'key', 'an MGMC or a bus of the feeder', suggest(name, names));
    }
  }
  const intervals: IntervalPositions[] = [];
  const labels = new Map<string, number>();
  data.intervals.forEach((entry, i) => {
    const label = String(entry.interval);
    const first = labels.get(label);
    if (first !== undefined) {
      issue(['intervals', i, 'interval'], 'value', 'each interval once', `${label} is also intervals[${first}]`);
    }
    labels.set(label, i);
    const positions: ReportedPosition[] = [];
    for (const [name, netW] of Object.entries(entry.netW)) {
      // An MGMC name wins over a bus of the same name: MGMCs are what the file is about.
      const bus = at.get(name) ?? (feeder.busIndex.has(name) ? name : undefined);
      if (bus === undefined) {
        issue(
          ['intervals', i, 'netW', name],
          'key',
          "an MGMC (the feeder's or this file's mgmcs:) or a bus of the feeder",
          `no MGMC or bus ${name}; ${suggest(name, names)}`,
        );
        continue;
      }
      const weight = data.weights?.[name];
      positions.push({
        mgmc: at.has(name) ? name : `bus ${name}`,
        bus,
        netW,
        ...(weight === undefined ? {} : { weight }),
      });
    }
    const start = typeof entry.interval === 'number' ? entry.interval : Date.parse(entry.interval);
    const base = busLoads(feeder, {
      scale: entry.scale ?? data.scale ?? 1,
      ...(data.buses === undefined ? {} : { buses: onlyKnown(feeder, data.buses) }),
    });
    intervals.push({ label, ...(Number.isFinite(start) ? { start } : {}), base, positions });
  });
  if (issues.length > 0) return { ok: false, issues: sortIssues(issues) };
  return { ok: true, issues: [], intervals };
}

function onlyKnown<T>(feeder: Feeder, buses: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(buses).filter(([name]) => feeder.busIndex.has(name)));
}

/** Reads a positions file for a feeder; throws FeederFileError listing every problem. */
export async function loadPositionsFile(path: string, feeder: Feeder): Promise<IntervalPositions[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new FeederFileError(path, [
      {
        file: path,
        line: 0,
        column: 0,
        path: '(file)',
        expected: 'a readable positions file',
        hint: `cannot read ${resolve(path)}: ${describeFsError(error)}`,
      },
    ]);
  }
  const checked = checkPositionsText(text, path, feeder);
  if (checked.intervals === undefined) throw new FeederFileError(path, checked.issues);
  return checked.intervals;
}

/** YAML, then the schema; every problem with its position. */
function parse(text: string, file: string): Parsed<PositionsData> {
  return parseWithSchema(
    text,
    file,
    positionsFileSchema,
    'a mapping with intervals: (net positions per market interval)',
  );
}
