/**
 * Feeder files and load files (docs/feeder-format.md), read with the config machinery: YAML with positions, a
 * schema that rejects unknown keys, then the feeder's own checks (createFeeder's problems: loops, islands, unknown
 * buses, impedances), every problem reported at once as `file:line:col  key.path  expected  hint`.
 *
 * JSON is YAML, so a `.json` file of the same shape reads the same way.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { isMap, isScalar, isSeq } from 'yaml';
import { explainSchemaErrors } from '../config/explain.js';
import { type ConfigIssue, formatIssues, sortIssues } from '../config/issues.js';
import { Section, StringEnum } from '../config/schema-kit.js';
import type { SchemaNode } from '../config/schema-walk.js';
import { describeFsError } from '../config/secret.js';
import { formatPath, type PathSegment, parseYaml, positionOf, type YamlSource } from '../config/yaml-source.js';
import { checkFeeder, createFeeder, type Feeder, FeederError, type FeederProblem, type FeederSpec } from './feeder.js';
import { busLoads, type LoadAdjustment } from './powerflow.js';

const Name = (description: string) =>
  Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer({ minimum: 0 })], { description });

const busSchema = Section(
  {
    name: Name('Bus name (a number is read as text: 18 and "18" are the same bus).'),
    pKw: Type.Number({ default: 0, description: 'Base load, three-phase total, kW (negative: generation).' }),
    qKvar: Type.Number({ default: 0, description: 'Base reactive load, kvar.' }),
  },
  { description: 'One bus.' },
);

const lineSchema = Section(
  {
    name: Type.Optional(Name('Line name; FROM-TO when left out.')),
    from: Name('Bus at one end.'),
    to: Name('Bus at the other end.'),
    rOhm: Type.Number({ description: 'Series resistance per phase, ohm (at least 0).' }),
    xOhm: Type.Number({ description: 'Series reactance per phase, ohm (at least 0; r and x not both 0).' }),
    ampacityA: Type.Number({ description: 'Thermal limit, A (above 0).' }),
    status: Type.Optional(
      StringEnum(['open', 'closed'], {
        description: 'Makes the line a switch in this state; a line without status is always in service.',
      }),
    ),
  },
  { description: 'One line (or switch).' },
);

const mgmcSchema = Section(
  {
    mgmc: Type.String({ minLength: 1, maxLength: 128, description: 'MGMC name or address, as the DSO knows it.' }),
    bus: Name('The bus it connects to.'),
  },
  { description: 'Which MGMC sits at which bus.' },
);

export const feederFileSchema = Section(
  {
    name: Type.String({ minLength: 1, maxLength: 64, description: 'Name of the feeder, shown in reports.' }),
    baseKv: Type.Number({ description: 'Line-to-line base voltage, kV.' }),
    baseMva: Type.Number({ description: 'Base power for per-unit values, MVA.' }),
    slack: Type.Optional(Name('The substation bus; the first bus when left out.')),
    slackVoltagePu: Type.Number({ default: 1, description: 'Voltage held at the substation bus, pu.' }),
    voltageBand: Section(
      {
        min: Type.Number({ default: 0.95, description: 'Lowest allowed bus voltage, pu.' }),
        max: Type.Number({ default: 1.05, description: 'Highest allowed bus voltage, pu.' }),
      },
      { description: 'Allowed bus voltages.' },
    ),
    buses: Type.Array(busSchema, { minItems: 1, description: 'Every bus, the substation first by custom.' }),
    lines: Type.Array(lineSchema, { description: 'Every line and switch.' }),
    mgmcs: Type.Array(mgmcSchema, { default: [], description: 'MGMCs attached to the feeder.' }),
  },
  { description: 'A radial distribution feeder.' },
);

// Type.Object, not Section: with every key optional a Section gets `default: {}`, which Ajv's strict mode refuses
// at the root and which would invent empty entries here.
const powerSchema = Type.Object(
  {
    pKw: Type.Optional(Type.Number({ description: 'kW (positive: consumption).' })),
    qKvar: Type.Optional(Type.Number({ description: 'kvar.' })),
  },
  { additionalProperties: false, description: 'Active and reactive power.' },
);

const positionSchema = Section(
  {
    pKw: Type.Number({ description: 'Net import, kW (negative: export).' }),
    qKvar: Type.Optional(Type.Number({ description: 'Net reactive import, kvar.' })),
  },
  { description: 'An MGMC net position.' },
);

export const loadsFileSchema = Type.Object(
  {
    scale: Type.Optional(Type.Number({ minimum: 0, description: 'Multiplies every base load (P and Q).' })),
    buses: Type.Optional(
      Type.Record(Type.String(), powerSchema, {
        description: 'Per bus name: pKw and/or qKvar replacing its base load (not scaled).',
      }),
    ),
    mgmcs: Type.Optional(
      Type.Record(Type.String(), positionSchema, {
        description: 'Per MGMC name: its net position, added to the load of the bus it sits at.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Load overrides for one power flow.' },
);

/** A feeder or loads file with problems; `issues` lists all of them. Exit code 78, like a bad config. */
export class FeederFileError extends Error {
  override readonly name = 'FeederFileError';
  readonly exitCode = 78;

  constructor(
    readonly file: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    super(`${file}: ${count}\n${formatIssues(issues)}`);
  }
}

export interface Parsed<T> {
  readonly data?: T;
  readonly source?: YamlSource;
  readonly issues: ConfigIssue[];
}

/**
 * YAML, then the schema (defaults filled in); every problem with its position. `rootExpected` says what the file's
 * top level must be, for the error when it is not a mapping.
 */
export function parseWithSchema<S extends TSchema>(
  text: string,
  file: string,
  schema: S,
  rootExpected: string,
): Parsed<Static<S>> {
  const { source, issues } = parseYaml(file, text);
  // After a syntax error the tree is a guess; schema errors on it would send the reader after ghosts.
  if (issues.length > 0) return { issues: sortIssues(issues) };
  const root = source.document.contents;
  if (!isMap(root)) {
    const { line, column } = positionOf(source, [], 'value');
    const empty = root === null || (isScalar(root) && root.value === null);
    const got = empty ? 'an empty file' : isSeq(root) ? 'a list' : 'a single value';
    return {
      issues: [
        {
          file,
          line,
          column,
          path: '(root)',
          expected: rootExpected,
          hint: `got ${got}; see docs/feeder-format.md`,
        },
      ],
    };
  }
  let data: unknown;
  try {
    data = source.document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    const hint = error instanceof Error ? error.message : String(error);
    return { issues: [{ file, line: 1, column: 1, path: '(yaml)', expected: 'valid YAML', hint }] };
  }
  const validate = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true }).compile(schema);
  validate(data);
  const explained = explainSchemaErrors(source, schema as unknown as SchemaNode, data, validate.errors ?? []);
  if (explained.length > 0) return { issues: sortIssues(explained.map((e) => e.issue)) };
  return { data: data as Static<S>, source, issues: [] };
}

function problemIssues(source: YamlSource, problems: readonly FeederProblem[]): ConfigIssue[] {
  return problems.map((problem) => {
    const { line, column } = positionOf(source, problem.path, 'value');
    const issue: ConfigIssue = {
      file: source.file,
      line,
      column,
      path: formatPath(problem.path as PathSegment[]),
      expected: problem.expected,
    };
    return problem.hint === undefined ? issue : { ...issue, hint: problem.hint };
  });
}

type FeederFileData = Static<typeof feederFileSchema>;

function toSpec(data: FeederFileData): FeederSpec {
  const name = (value: string | number): string => String(value);
  return {
    name: data.name,
    baseKv: data.baseKv,
    baseMva: data.baseMva,
    ...(data.slack === undefined ? {} : { slack: name(data.slack) }),
    slackVoltagePu: data.slackVoltagePu,
    voltageBand: { min: data.voltageBand.min, max: data.voltageBand.max },
    buses: data.buses.map((b) => ({ name: name(b.name), pKw: b.pKw, qKvar: b.qKvar })),
    lines: data.lines.map((l) => ({
      name: l.name === undefined ? `${l.from}-${l.to}` : name(l.name),
      from: name(l.from),
      to: name(l.to),
      rOhm: l.rOhm,
      xOhm: l.xOhm,
      ampacityA: l.ampacityA,
      ...(l.status === undefined ? {} : { status: l.status }),
    })),
    mgmcs: data.mgmcs.map((m) => ({ mgmc: m.mgmc, bus: name(m.bus) })),
  };
}

export interface FeederCheck {
  readonly ok: boolean;
  readonly issues: readonly ConfigIssue[];
  /** Present when ok. */
  readonly feeder?: Feeder;
}

/** Checks the text of a feeder file; `file` is only used in messages. */
export function checkFeederText(text: string, file: string): FeederCheck {
  const parsed = parseWithSchema(text, file, feederFileSchema, 'a mapping (key: value lines) describing a feeder');
  if (parsed.data === undefined || parsed.source === undefined) return { ok: false, issues: parsed.issues };
  const spec = toSpec(parsed.data);
  const problems = checkFeeder(spec);
  if (problems.length > 0) return { ok: false, issues: sortIssues(problemIssues(parsed.source, problems)) };
  return { ok: true, issues: [], feeder: createFeeder(spec) };
}

/** Parses a feeder file's text; throws FeederFileError listing every problem. */
export function parseFeederText(text: string, file: string): Feeder {
  const checked = checkFeederText(text, file);
  if (checked.feeder === undefined) throw new FeederFileError(file, checked.issues);
  return checked.feeder;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new FeederFileError(path, [
      {
        file: path,
        line: 0,
        column: 0,
        path: '(file)',
        expected: `a readable ${what}`,
        hint: `cannot read ${resolve(path)}: ${describeFsError(error)}`,
      },
    ]);
  }
}

/** Reads and checks a feeder file; throws FeederFileError listing every problem. */
export async function loadFeederFile(path: string): Promise<Feeder> {
  return parseFeederText(await readText(path, 'feeder file'), path);
}

/** Checks a loads file against a feeder (bus and MGMC names must exist in it). */
export function checkLoadsText(
  text: string,
  file: string,
  feeder: Feeder,
): { ok: boolean; issues: readonly ConfigIssue[]; adjustment?: LoadAdjustment } {
  const parsed = parseWithSchema(text, file, loadsFileSchema, 'a mapping (key: value lines) describing load overrides');
  if (parsed.data === undefined || parsed.source === undefined) return { ok: false, issues: parsed.issues };
  const adjustment: LoadAdjustment = parsed.data;
  try {
    busLoads(feeder, adjustment);
  } catch (error) {
    if (!(error instanceof FeederError)) throw error;
    // The loads' problems name keys of this file (buses.NAME, mgmcs.NAME): point at the key.
    const issues = error.problems.map((problem) => {
      const { line, column } = positionOf(parsed.source as YamlSource, problem.path, 'key');
      const issue: ConfigIssue = {
        file,
        line,
        column,
        path: formatPath(problem.path as PathSegment[]),
        expected: problem.expected,
      };
      return problem.hint === undefined ? issue : { ...issue, hint: problem.hint };
    });
    return { ok: false, issues: sortIssues(issues) };
  }
  return { ok: true, issues: [], adjustment };
}

/** Reads a loads file for a feeder; throws FeederFileError listing every problem. */
export async function loadLoadsFile(path: string, feeder: Feeder): Promise<LoadAdjustment> {
  const checked = checkLoadsText(await readText(path, 'loads file'), path, feeder);
  if (checked.adjustment === undefined) throw new FeederFileError(path, checked.issues);
  return checked.adjustment;
}

/** A feeder as the text of a feeder file (what docs/feeder-format.md describes), e.g. to save a reconfiguration. */
export function feederToYaml(feeder: Feeder): string {
  const value = (v: string): string => (/^[A-Za-z0-9_.-]+$/.test(v) && !/^[0-9.]+$/.test(v) ? v : JSON.stringify(v));
  const out: string[] = [
    `name: ${value(feeder.name)}`,
    `baseKv: ${feeder.baseKv}`,
    `baseMva: ${feeder.baseMva}`,
    `slack: ${value(feeder.slack)}`,
    `slackVoltagePu: ${feeder.slackVoltagePu}`,
    `voltageBand: { min: ${feeder.voltageBand.min}, max: ${feeder.voltageBand.max} }`,
    'buses:',
    ...feeder.buses.map((b) => `  - { name: ${value(b.name)}, pKw: ${b.pKw}, qKvar: ${b.qKvar} }`),
    'lines:',
    ...feeder.lines.map(
      (l) =>
        `  - { name: ${value(l.name)}, from: ${value(l.from)}, to: ${value(l.to)}, rOhm: ${l.rOhm}, ` +
        `xOhm: ${l.xOhm}, ampacityA: ${l.ampacityA}${l.status === undefined ? '' : `, status: ${l.status}`} }`,
    ),
  ];
  out.push(feeder.mgmcs.length === 0 ? 'mgmcs: []' : 'mgmcs:');
  for (const m of feeder.mgmcs) out.push(`  - { mgmc: ${value(m.mgmc)}, bus: ${value(m.bus)} }`);
  return `${out.join('\n')}\n`;
}
