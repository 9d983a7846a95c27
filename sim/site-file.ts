/**
 * The simulator's site file (`mgmc sim --site FILE`): the physics of a site, the Modbus servers its devices sit
 * behind, its signing meters and scripted faults, in one YAML file. The format is documented in sim/README.md.
 *
 * Every problem in the file is reported at once, compiler style, `file:line:col  path  what was expected  hint`, so
 * a technician fixes a broken file in one pass. Checks run in layers that each report everything they find: YAML
 * syntax, the shape of every key (TypeBox schema, Ajv), device parameters per kind, cross-references (servers,
 * profiles, unit ids, meters, faults), and finally the physics models themselves.
 *
 * This module does not import agent/config (sim/ never imports agent/); it follows the same message conventions.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { meterAddressFromPrivateKey } from '../firmware-bridge/batch.js';
import { type Catalogue, formatPath, loadCatalogue } from '../hardware/profile/load.js';
import { closest } from '../hardware/profile/schema.js';
import type { Profile } from '../hardware/profile/types.js';
import {
  defaultProfiles,
  profileMismatch,
  type SimDeviceIdentity,
  SUNSPEC_DEFAULT_BASE,
} from './devices/register-map.js';
import type { EvDailyPattern } from './physics/ev.js';
import { parseInstant } from './physics/grid.js';
import { LOAD_PROFILES } from './physics/load.js';
import {
  type DeviceDescription,
  exampleSite,
  SIM_DEVICE_KINDS,
  type SimDeviceKind,
  SimSite,
  type SiteDescription,
} from './physics/site.js';

/** A Modbus server of the simulated site. */
export type SimServerSpec =
  | {
      readonly name: string;
      readonly kind: 'tcp';
      /** Address to listen on. Default 127.0.0.1. */
      readonly host: string;
      /** 0 picks a free port. */
      readonly port: number;
    }
  | {
      readonly name: string;
      /** An RS-485 line: a socat pty pair; the server holds one end, the agent gets the other. */
      readonly kind: 'rtu';
      readonly baudRate: number;
    };

/** A device that is served over Modbus. */
export interface SimServedDevice {
  readonly name: string;
  readonly kind: SimDeviceKind;
  readonly server: string;
  readonly unit: number;
  /** Profile ids: SunSpec models (sunspec-1 first) or one absolute profile. */
  readonly profiles: readonly string[];
  /** Address of "SunS" for SunSpec devices. */
  readonly base: number;
  readonly identity: SimDeviceIdentity;
}

/** A simulated signing meter (sim/firmware-peer.ts) measuring one meter of the site. */
export interface SigningMeterSpec {
  readonly name: string;
  /** The site meter whose readings it signs. */
  readonly meter: string;
  readonly privateKey: Uint8Array;
  /** Its address (from the key), for the agent's `meters:` section. */
  readonly address: string;
  readonly batchSeconds: number;
  readonly sampleSeconds: number;
  readonly baudRate: number;
}

export const WIRE_FAULT_KINDS = ['no-answer', 'slow', 'exception', 'bad-crc', 'disconnect', 'wrong-unit'] as const;
export const BANK_FAULT_KINDS = ['stuck', 'missing-end-marker', 'exception-range'] as const;
export type SimFaultKind = (typeof WIRE_FAULT_KINDS)[number] | (typeof BANK_FAULT_KINDS)[number];

/** A scripted fault of one device; times are absolute simulated times, ms since the epoch. */
export interface SimFaultSpec {
  readonly device: string;
  readonly kind: SimFaultKind;
  readonly from?: number;
  readonly until?: number;
  readonly times?: number;
  readonly fn?: number;
  /** 'stuck': a point of the device (`W` or `sunspec-103.W`), or `start`/`count`. */
  readonly point?: string;
  readonly start?: number;
  readonly end?: number;
  readonly count?: number;
  readonly code?: number;
  readonly delayMs?: number;
  readonly answerAs?: number;
  readonly writes?: boolean;
}

/** A checked site file: what startSimulatedSite needs. */
export interface SimSiteConfig {
  /** The file as named, for messages. */
  readonly file: string;
  /** The physics, as SimSite takes it (defaults filled in). */
  readonly description: SiteDescription;
  /** Simulated seconds per wall-clock second. */
  readonly speed: number;
  readonly servers: readonly SimServerSpec[];
  /** The devices that are served; the others run in the physics only (meters may see them). */
  readonly devices: readonly SimServedDevice[];
  readonly signingMeters: readonly SigningMeterSpec[];
  readonly faults: readonly SimFaultSpec[];
}

/** One problem in a site file. */
export interface SiteFileIssue {
  readonly file: string;
  /** 1-based; 0 when the problem concerns the whole file. */
  readonly line: number;
  readonly column: number;
  /** Key path such as `devices[2].params.acRatingW`; `(yaml)` for syntax errors, `(file)` for unreadable files. */
  readonly path: string;
  /** What was expected there, in words. */
  readonly expected: string;
  /** What to do about it. */
  readonly hint?: string;
}

/** `file:line:col  path  expected  hint`, two spaces between fields. */
export function formatSiteFileIssue(issue: SiteFileIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  return [where, issue.path, issue.expected, ...(issue.hint ? [issue.hint] : [])].join('  ');
}

/** Every problem of a site file, one per line in the message. */
export class SiteFileError extends Error {
  override name = 'SiteFileError';
  constructor(
    readonly file: string,
    readonly issues: readonly SiteFileIssue[],
  ) {
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    super(`site file ${file}: ${count}\n${issues.map(formatSiteFileIssue).join('\n')}`);
  }
}

export interface SiteFileOptions {
  /** Profiles to resolve ids against. Default the shipped catalogue. */
  readonly catalogue?: Catalogue;
  /** Where `env:NAME` keys are looked up. Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema. `expected` is an annotation the messages use where the generic words ("a text matching ...") would not help.

const NAME_RULE = {
  pattern: '^[a-z0-9][a-z0-9_-]*$',
  maxLength: 32,
  expected: 'a lower-case name (letters, digits, - and _; at most 32 characters)',
};
const Name = () => Type.String(NAME_RULE);
const Positive = () => Type.Number({ exclusiveMinimum: 0 });
const NonNegative = () => Type.Number({ minimum: 0 });
const Fraction = () => Type.Number({ minimum: 0, maximum: 1 });
const PhaseCount = () => Type.Unsafe<1 | 3>({ type: 'integer', enum: [1, 3] });
const PhaseNumber = () => Type.Unsafe<1 | 2 | 3>({ type: 'integer', enum: [1, 2, 3] });
const Strict = <T extends Parameters<typeof Type.Object>[0]>(properties: T) =>
  Type.Object(properties, { additionalProperties: false });
const Opt = <T extends TSchema>(schema: T) => Type.Optional(schema);
const Register = () => Type.Integer({ minimum: 0, maximum: 65535 });

const serverSchema = Strict({
  name: Name(),
  kind: Type.Unsafe<'tcp' | 'rtu'>({ type: 'string', enum: ['tcp', 'rtu'] }),
  host: Opt(Type.String({ minLength: 1 })),
  port: Opt(Type.Integer({ minimum: 0, maximum: 65535 })),
  baudRate: Opt(Type.Integer({ minimum: 300, maximum: 4_000_000 })),
});

const deviceSchema = Strict({
  kind: Type.Unsafe<SimDeviceKind>({ type: 'string', enum: [...SIM_DEVICE_KINDS] }),
  name: Name(),
  params: Opt(Type.Object({}, { expected: 'a mapping of the device parameters' })),
  server: Opt(Type.String({ minLength: 1 })),
  unit: Opt(Type.Integer({ minimum: 0, maximum: 255 })),
  profiles: Opt(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
  base: Opt(Register()),
  identity: Opt(
    Strict({
      manufacturer: Opt(Type.String({ maxLength: 32 })),
      model: Opt(Type.String({ maxLength: 32 })),
      serial: Opt(Type.String({ maxLength: 32 })),
      version: Opt(Type.String({ maxLength: 16 })),
      options: Opt(Type.String({ maxLength: 16 })),
    }),
  ),
});

const signingMeterSchema = Strict({
  name: Name(),
  meter: Type.String({ minLength: 1 }),
  privateKey: Opt(
    Type.String({
      minLength: 1,
      expected: 'env:NAME or a 32-byte hex key (64 hex digits)',
    }),
  ),
  batchSeconds: Opt(Type.Integer({ minimum: 1, maximum: 86_400 })),
  sampleSeconds: Opt(Type.Integer({ minimum: 1, maximum: 86_400 })),
  baudRate: Opt(Type.Integer({ minimum: 300, maximum: 4_000_000 })),
});

const faultSchema = Strict({
  device: Type.String({ minLength: 1 }),
  kind: Type.Unsafe<SimFaultKind>({ type: 'string', enum: [...WIRE_FAULT_KINDS, ...BANK_FAULT_KINDS] }),
  from: Opt(NonNegative()),
  until: Opt(Positive()),
  times: Opt(Type.Integer({ minimum: 1 })),
  fn: Opt(Type.Unsafe<number>({ type: 'integer', enum: [3, 4, 6, 16] })),
  point: Opt(Type.String({ minLength: 1 })),
  start: Opt(Register()),
  end: Opt(Register()),
  count: Opt(Type.Integer({ minimum: 1, maximum: 125 })),
  code: Opt(Type.Integer({ minimum: 1, maximum: 255 })),
  delayMs: Opt(Type.Number({ minimum: 0, maximum: 60_000 })),
  answerAs: Opt(Type.Integer({ minimum: 0, maximum: 255 })),
  writes: Opt(Type.Boolean()),
});

const siteFileSchema = Strict({
  name: Opt(Type.String({ minLength: 1, maxLength: 64 })),
  seed: Opt(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  location: Opt(
    Strict({
      latitudeDeg: Type.Number({ minimum: -90, maximum: 90 }),
      longitudeDeg: Type.Number({ minimum: -180, maximum: 180 }),
      utcOffsetMinutes: Opt(Type.Integer({ minimum: -720, maximum: 840 })),
    }),
  ),
  start: Opt(Type.String({ expected: 'an ISO 8601 time with an offset, e.g. 2026-06-21T00:00:00+02:00' })),
  speed: Opt(Type.Number({ exclusiveMinimum: 0, maximum: 100_000 })),
  cloudiness: Opt(Fraction()),
  grid: Opt(
    Strict({
      nominalVoltageV: Opt(Positive()),
      nominalFrequencyHz: Opt(Positive()),
      voltageDriftPct: Opt(NonNegative()),
      phaseNoisePct: Opt(NonNegative()),
      frequencySdHz: Opt(NonNegative()),
    }),
  ),
  servers: Opt(Type.Array(serverSchema)),
  devices: Type.Array(deviceSchema, { minItems: 1 }),
  signingMeters: Opt(Type.Array(signingMeterSchema)),
  faults: Opt(Type.Array(faultSchema)),
});
type RawSite = Static<typeof siteFileSchema>;
type RawDevice = Static<typeof deviceSchema>;

const CLOCK_TIME = { pattern: '^([01]\\d|2[0-3]):[0-5]\\d$', expected: "a local time 'HH:MM', e.g. '08:30'" };
const INSTANT = { expected: 'an ISO 8601 time with an offset, e.g. 2026-06-21T08:30:00+02:00' };

const paramSchemas: Readonly<Record<SimDeviceKind, TSchema>> = {
  'pv-inverter': Strict({
    dcCapacityWp: Opt(Positive()),
    acRatingW: Opt(Positive()),
    efficiency: Opt(Type.Number({ minimum: 0.01, maximum: 1 })),
    derate: Opt(Type.Number({ minimum: 0.01, maximum: 1 })),
    tiltDeg: Opt(Type.Number({ minimum: 0, maximum: 90 })),
    azimuthDeg: Opt(Type.Number({ minimum: 0, maximum: 360 })),
    albedo: Opt(Fraction()),
    phases: Opt(PhaseCount()),
    phase: Opt(PhaseNumber()),
    dcVoltageV: Opt(Positive()),
    startPowerW: Opt(NonNegative()),
    initialEnergyWh: Opt(NonNegative()),
  }),
  battery: Strict({
    capacityWh: Opt(Positive()),
    maxChargeW: Opt(NonNegative()),
    maxDischargeW: Opt(NonNegative()),
    socStartPct: Opt(Type.Number({ minimum: 0, maximum: 100 })),
    socMinPct: Opt(Type.Number({ minimum: 0, maximum: 100 })),
    socMaxPct: Opt(Type.Number({ minimum: 0, maximum: 100 })),
    chargeEfficiency: Opt(Type.Number({ minimum: 0.01, maximum: 1 })),
    dischargeEfficiency: Opt(Type.Number({ minimum: 0.01, maximum: 1 })),
    selfDischargePctPerDay: Opt(Type.Number({ minimum: 0, maximum: 50 })),
    phases: Opt(PhaseCount()),
    phase: Opt(PhaseNumber()),
    nominalVoltageV: Opt(Positive()),
    initialChargedWh: Opt(NonNegative()),
    initialDischargedWh: Opt(NonNegative()),
  }),
  'building-load': Strict({
    profile: Opt(Type.Unsafe<string>({ type: 'string', enum: [...LOAD_PROFILES] })),
    peakW: Opt(Positive()),
    noisePct: Opt(Type.Number({ minimum: 0, maximum: 50 })),
    curtailableShare: Opt(Fraction()),
    powerFactor: Opt(Type.Number({ minimum: 0.1, maximum: 1 })),
    phases: Opt(PhaseCount()),
    phase: Opt(PhaseNumber()),
    initialEnergyWh: Opt(NonNegative()),
  }),
  'ev-charger': Strict({
    maxCurrentA: Opt(Positive()),
    phases: Opt(PhaseCount()),
    phase: Opt(PhaseNumber()),
    fallbackCurrentA: Opt(NonNegative()),
    sessions: Opt(
      Type.Array(
        Strict({
          arrival: Type.String(INSTANT),
          departure: Type.String(INSTANT),
          energyWh: NonNegative(),
          maxCurrentA: Opt(Positive()),
          phases: Opt(PhaseCount()),
        }),
      ),
    ),
    daily: Opt(
      Type.Array(
        Strict({
          arrival: Type.String(CLOCK_TIME),
          departure: Type.String(CLOCK_TIME),
          energyWh: NonNegative(),
          jitterMin: Opt(NonNegative()),
          energyJitterPct: Opt(Type.Number({ minimum: 0, maximum: 100 })),
          days: Opt(Type.Unsafe<string>({ type: 'string', enum: ['all', 'weekdays', 'weekends'] })),
          probability: Opt(Fraction()),
          maxCurrentA: Opt(Positive()),
          phases: Opt(PhaseCount()),
        }),
      ),
    ),
    initialEnergyWh: Opt(NonNegative()),
  }),
  meter: Strict({
    sees: Opt(Type.Array(Type.String({ minLength: 1 }))),
    invert: Opt(Type.Boolean()),
    initialImportWh: Opt(NonNegative()),
    initialExportWh: Opt(NonNegative()),
  }),
};

/** Keys each fault kind takes besides device, kind, from and until. */
const FAULT_KEYS: Readonly<Record<SimFaultKind, { required: readonly string[]; optional: readonly string[] }>> = {
  'no-answer': { required: [], optional: ['times', 'fn'] },
  slow: { required: ['delayMs'], optional: ['times', 'fn'] },
  exception: { required: ['code'], optional: ['start', 'end', 'times', 'fn'] },
  'bad-crc': { required: [], optional: ['times', 'fn'] },
  disconnect: { required: [], optional: ['times', 'fn'] },
  'wrong-unit': { required: [], optional: ['answerAs', 'times', 'fn'] },
  stuck: { required: [], optional: ['point', 'start', 'count', 'fn'] },
  'missing-end-marker': { required: [], optional: [] },
  'exception-range': { required: ['start', 'end'], optional: ['code', 'fn', 'writes'] },
};

// ---------------------------------------------------------------------------------------------------------------
// Checking.

/** Checks a site file's text without throwing: the config when it is valid, and every problem found. */
export function checkSiteText(
  text: string,
  file: string,
  options: SiteFileOptions = {},
): { config?: SimSiteConfig; issues: SiteFileIssue[] } {
  const checker = new Checker(text, file, options);
  const config = checker.run();
  const issues = checker.sortedIssues();
  return config === undefined || issues.length > 0 ? { issues } : { config, issues };
}

/** Parses and checks a site file's text; throws SiteFileError listing every problem. */
export function parseSiteText(text: string, file: string, options: SiteFileOptions = {}): SimSiteConfig {
  const { config, issues } = checkSiteText(text, file, options);
  if (config === undefined || issues.length > 0) throw new SiteFileError(file, issues);
  return config;
}

/** Reads and checks a site file; throws SiteFileError listing every problem. */
export function loadSiteFile(path: string, options: SiteFileOptions = {}): SimSiteConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(error);
    throw new SiteFileError(path, [
      { file: path, line: 0, column: 0, path: '(file)', expected: 'a readable site file', hint: why },
    ]);
  }
  return parseSiteText(text, path, options);
}

type PathSegment = string | number;

class Checker {
  private readonly issues: SiteFileIssue[] = [];
  /** `expected` is an annotation the messages read; Ajv must know it or strict mode refuses the schemas. */
  private readonly ajv = new Ajv({ allErrors: true, strict: true, verbose: true }).addVocabulary(['expected']);
  private readonly validators = new Map<TSchema, ValidateFunction>();
  private readonly lineCounter = new LineCounter();
  private readonly document: Document.Parsed;
  /** Paths (as text) whose values the schema already refused, so later checks leave them alone. */
  private readonly refused = new Set<string>();

  constructor(
    text: string,
    private readonly file: string,
    private readonly options: SiteFileOptions,
  ) {
    this.document = parseDocument(text, { lineCounter: this.lineCounter, uniqueKeys: true, prettyErrors: false });
  }

  sortedIssues(): SiteFileIssue[] {
    return [...this.issues].sort((a, b) => a.line - b.line || a.column - b.column || a.path.localeCompare(b.path));
  }

  run(): SimSiteConfig | undefined {
    const seen = new Set<number>();
    for (const error of this.document.errors) {
      const offset = error.pos[0];
      // One YAML mistake often yields several parser errors at the same spot; the first says it best.
      if (seen.has(offset)) continue;
      seen.add(offset);
      const { line, col } = this.lineCounter.linePos(offset);
      const duplicate = error.code === 'DUPLICATE_KEY';
      this.issues.push({
        file: this.file,
        line,
        column: col,
        path: '(yaml)',
        expected: duplicate ? 'each key only once in a mapping' : 'valid YAML',
        hint: duplicate
          ? 'this key appears twice; keep one of them'
          : (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, ''),
      });
    }
    // After a syntax error the tree is a guess; schema errors on it would send people after ghosts.
    if (this.issues.length > 0) return undefined;
    const data: unknown = this.document.toJS({ maxAliasCount: 100 });
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      this.issue([], 'value', 'a mapping with at least a devices: list', 'see sim/README.md for the format');
      return undefined;
    }
    this.validate(siteFileSchema, data, []);
    const raw = data as RawSite;
    return this.build(raw);
  }

  private issue(path: readonly PathSegment[], at: 'key' | 'value', expected: string, hint?: string): void {
    const { line, column } = this.positionOf(path, at);
    this.issues.push({
      file: this.file,
      line,
      column,
      path: formatPath(path),
      expected,
      ...(hint === undefined ? {} : { hint }),
    });
  }

  /** Validates `data` (found at `base` in the file) against a schema, reporting every error. */
  private validate(schema: TSchema, data: unknown, base: readonly PathSegment[]): boolean {
    let validate = this.validators.get(schema);
    if (validate === undefined) {
      validate = this.ajv.compile(schema);
      this.validators.set(schema, validate);
    }
    if (validate(data)) return true;
    const errors = validate.errors ?? [];
    const wrongType = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
    const reported = new Set<string>();
    for (const error of errors) {
      // A value of the wrong type also fails its enum, range and pattern checks; the type says it all.
      if (error.keyword !== 'type' && wrongType.has(error.instancePath) && !aboutAChild(error)) continue;
      const at = [...base, ...pointerSegments(error.instancePath, data)];
      const explained = explain(error, at);
      const key = `${formatPath(explained.path)}\u0000${explained.expected}`;
      if (reported.has(key)) continue;
      reported.add(key);
      this.refused.add(formatPath(explained.path));
      this.issue(explained.pointAt ?? explained.path, explained.at, explained.expected, explained.hint);
    }
    return false;
  }

  private ok(path: readonly PathSegment[]): boolean {
    const text = formatPath(path);
    for (const refused of this.refused) if (text === refused || text.startsWith(`${refused}.`)) return false;
    return true;
  }

  private build(raw: RawSite): SimSiteConfig | undefined {
    const example = exampleSite();
    const catalogue = this.catalogue();

    let startMs = Number.NaN;
    const start = typeof raw.start === 'string' ? raw.start : example.start;
    try {
      startMs = parseInstant(start, 'start');
    } catch {
      if (this.ok(['start'])) {
        this.issue(
          ['start'],
          'value',
          'an ISO 8601 time with an offset',
          `e.g. 2026-06-21T00:00:00+02:00; got ${start}`,
        );
      }
    }
    const seconds = (value: number | undefined) => (value === undefined ? undefined : startMs + value * 1000);

    // Servers.
    const servers: SimServerSpec[] = [];
    const serverNames = new Set<string>();
    const ports = new Map<number, number>();
    for (const [i, s] of (Array.isArray(raw.servers) ? raw.servers : []).entries()) {
      if (s === null || typeof s !== 'object' || typeof s.name !== 'string') continue;
      if (serverNames.has(s.name)) {
        this.issue(
          ['servers', i, 'name'],
          'value',
          'a server name used once',
          `"${s.name}" names an earlier server too`,
        );
      }
      serverNames.add(s.name);
      if (s.kind === 'tcp') {
        if (s.baudRate !== undefined) {
          this.issue(['servers', i, 'baudRate'], 'key', 'no baudRate on a tcp server', 'baudRate is for kind: rtu');
        }
        const port = typeof s.port === 'number' ? s.port : 0;
        const other = ports.get(port);
        if (port !== 0 && other !== undefined) {
          this.issue(['servers', i, 'port'], 'value', 'a port no other server uses', `servers[${other}] has ${port}`);
        }
        ports.set(port, i);
        servers.push({ name: s.name, kind: 'tcp', host: s.host ?? '127.0.0.1', port });
      } else if (s.kind === 'rtu') {
        for (const key of ['host', 'port'] as const) {
          if (s[key] !== undefined) {
            this.issue(['servers', i, key], 'key', `no ${key} on an rtu server`, `${key} is for kind: tcp`);
          }
        }
        servers.push({ name: s.name, kind: 'rtu', baudRate: s.baudRate ?? 9600 });
      }
    }

    // Devices: names first, so meters and faults can refer to any of them.
    const rawDevices: RawDevice[] = Array.isArray(raw.devices) ? raw.devices : [];
    const deviceNames = new Map<string, number>();
    for (const [i, d] of rawDevices.entries()) {
      if (d === null || typeof d !== 'object' || typeof d.name !== 'string') continue;
      if (deviceNames.has(d.name)) {
        this.issue(
          ['devices', i, 'name'],
          'value',
          'a device name used once',
          `"${d.name}" names an earlier device too`,
        );
      } else {
        deviceNames.set(d.name, i);
      }
    }
    const allNames = [...deviceNames.keys()];
    const nonMeters = rawDevices.filter((d) => d?.kind !== 'meter' && typeof d?.name === 'string').map((d) => d.name);

    const descriptions: DeviceDescription[] = [];
    const served: SimServedDevice[] = [];
    // Units given in the file are claimed first, so a device without one never takes a unit another names.
    const unitsTaken = new Map<string, Map<number, number>>();
    for (const [i, d] of rawDevices.entries()) {
      if (typeof d?.server !== 'string' || typeof d.unit !== 'number') continue;
      const taken = unitsTaken.get(d.server) ?? new Map<number, number>();
      unitsTaken.set(d.server, taken);
      if (!taken.has(d.unit)) taken.set(d.unit, i);
    }
    for (const [i, d] of rawDevices.entries()) {
      if (d === null || typeof d !== 'object' || !SIM_DEVICE_KINDS.includes(d.kind) || typeof d.name !== 'string') {
        continue;
      }
      const params = this.params(d, i, allNames, nonMeters);
      if (params !== undefined) descriptions.push({ kind: d.kind, name: d.name, params } as DeviceDescription);
      this.serving(d, i, servers, unitsTaken, catalogue, served);
    }

    // Signing meters.
    const signingMeters: SigningMeterSpec[] = [];
    const meterNames = new Set<string>();
    for (const [i, m] of (Array.isArray(raw.signingMeters) ? raw.signingMeters : []).entries()) {
      if (m === null || typeof m !== 'object' || typeof m.name !== 'string' || typeof m.meter !== 'string') continue;
      if (meterNames.has(m.name)) {
        this.issue(['signingMeters', i, 'name'], 'value', 'a name used once', `"${m.name}" names an earlier one`);
      }
      meterNames.add(m.name);
      const target = rawDevices[deviceNames.get(m.meter) ?? -1];
      if (target === undefined) {
        this.issue(
          ['signingMeters', i, 'meter'],
          'value',
          'the name of a meter of the site',
          didYouMean(m.meter, allNames),
        );
      } else if (target.kind !== 'meter') {
        this.issue(
          ['signingMeters', i, 'meter'],
          'value',
          'the name of a device of kind meter',
          `${m.meter} is a ${target.kind}; a signing meter signs what a meter measures`,
        );
      }
      const batchSeconds = m.batchSeconds ?? 60;
      const sampleSeconds = m.sampleSeconds ?? Math.min(15, batchSeconds);
      if (sampleSeconds > batchSeconds && this.ok(['signingMeters', i])) {
        this.issue(
          ['signingMeters', i, 'sampleSeconds'],
          'value',
          `at most batchSeconds (${batchSeconds})`,
          'a batch holds at least one sample',
        );
      }
      const key = this.privateKey(m.privateKey, ['signingMeters', i, 'privateKey'], raw.seed ?? example.seed, m.name);
      if (key !== undefined) {
        signingMeters.push({
          name: m.name,
          meter: m.meter,
          privateKey: key.key,
          address: key.address,
          batchSeconds,
          sampleSeconds,
          baudRate: m.baudRate ?? 115_200,
        });
      }
    }

    // Faults.
    const faults: SimFaultSpec[] = [];
    for (const [i, f] of (Array.isArray(raw.faults) ? raw.faults : []).entries()) {
      if (f === null || typeof f !== 'object') continue;
      const spec = this.fault(f as Record<string, unknown>, i, served, rawDevices, catalogue, seconds);
      if (spec !== undefined) faults.push(spec);
    }

    const description: SiteDescription = {
      ...(raw.name === undefined ? {} : { name: raw.name }),
      seed: raw.seed ?? example.seed,
      location: raw.location ?? example.location,
      start,
      ...(raw.cloudiness === undefined ? {} : { cloudiness: raw.cloudiness }),
      ...(raw.grid === undefined ? {} : { grid: raw.grid }),
      devices: descriptions,
    };
    if (this.issues.length > 0) return undefined;
    // The models check what the schema cannot (SoC limits in order, sessions that overlap, meters in a cycle).
    try {
      new SimSite(description);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const culprit = rawDevices.findIndex((d) => typeof d?.name === 'string' && message.includes(` ${d.name}`));
      this.issue(
        culprit === -1 ? ['devices'] : ['devices', culprit, 'params'],
        'key',
        'parameters the device model accepts',
        message,
      );
      return undefined;
    }
    return {
      file: this.file,
      description,
      speed: raw.speed ?? 1,
      servers,
      devices: served,
      signingMeters,
      faults,
    };
  }

  private catalogue(): Catalogue {
    return this.options.catalogue ?? loadCatalogue();
  }

  /** A device's parameters with defaults filled in, or undefined when they are wrong. */
  private params(
    d: RawDevice,
    i: number,
    allNames: readonly string[],
    nonMeters: readonly string[],
  ): DeviceDescription['params'] | undefined {
    const path = ['devices', i, 'params'];
    const given = (d.params ?? {}) as Record<string, unknown>;
    if (!this.ok(path)) return undefined;
    if (!this.validate(paramSchemas[d.kind], given, path)) return undefined;
    switch (d.kind) {
      case 'pv-inverter': {
        const acRatingW = (given.acRatingW as number | undefined) ?? 9000;
        // A typical DC/AC ratio: the array a little larger than the inverter.
        return { dcCapacityWp: Math.round(acRatingW * 1.1), ...given, acRatingW };
      }
      case 'battery': {
        const capacityWh = (given.capacityWh as number | undefined) ?? 10_000;
        return { maxChargeW: capacityWh / 2, maxDischargeW: capacityWh / 2, ...given, capacityWh };
      }
      case 'building-load':
        return { profile: 'office', peakW: 15_000, ...given };
      case 'ev-charger': {
        const commuter: EvDailyPattern = {
          arrival: '08:30',
          departure: '17:30',
          energyWh: 20_000,
          jitterMin: 45,
          energyJitterPct: 40,
          days: 'weekdays',
          probability: 0.9,
        };
        const cars = given.sessions === undefined && given.daily === undefined ? { daily: [commuter] } : {};
        return { maxCurrentA: 16, ...cars, ...given };
      }
      case 'meter': {
        const sees = given.sees as string[] | undefined;
        for (const [j, seen] of (sees ?? []).entries()) {
          if (seen === d.name) {
            this.issue([...path, 'sees', j], 'value', 'another device', 'a meter cannot see itself');
          } else if (!allNames.includes(seen)) {
            this.issue([...path, 'sees', j], 'value', 'the name of a device of the site', didYouMean(seen, allNames));
          }
        }
        // A meter that names nothing sits at the connection point: it sees every device that is not a meter.
        return { ...given, sees: sees ?? nonMeters.filter((n) => n !== d.name) };
      }
    }
  }

  /** Checks where and how a device is served; adds it to `served` when it is. */
  private serving(
    d: RawDevice,
    i: number,
    servers: readonly SimServerSpec[],
    unitsTaken: Map<string, Map<number, number>>,
    catalogue: Catalogue,
    served: SimServedDevice[],
  ): void {
    const at = (key: string): PathSegment[] => ['devices', i, key];
    if (d.server === undefined) {
      for (const key of ['unit', 'profiles', 'base', 'identity'] as const) {
        if (d[key] !== undefined) {
          this.issue(
            at(key),
            'key',
            `no ${key} on a device without a server`,
            `add server: to serve ${d.name} over Modbus`,
          );
        }
      }
      return;
    }
    const server = servers.find((s) => s.name === d.server);
    if (server === undefined) {
      this.issue(
        at('server'),
        'value',
        'the name of a server under servers:',
        didYouMean(
          d.server,
          servers.map((s) => s.name),
        ),
      );
      return;
    }
    const taken = unitsTaken.get(server.name) ?? new Map<number, number>();
    unitsTaken.set(server.name, taken);
    let unit = d.unit;
    if (unit === undefined) {
      unit = 1;
      while (taken.has(unit)) unit++;
    } else if (server.kind === 'rtu' && (unit < 1 || unit > 247)) {
      this.issue(at('unit'), 'value', 'a unit id from 1 to 247 on an RS-485 line', `got ${unit}; 0 is broadcast`);
    } else if (taken.get(unit) !== i) {
      const other = taken.get(unit) as number;
      this.issue(
        at('unit'),
        'value',
        `a unit id no other device on ${server.name} uses`,
        `devices[${other}] has ${unit}`,
      );
    }
    taken.set(unit, i);

    const ids = d.profiles ?? defaultProfiles(d.kind, server.kind);
    const profiles: Profile[] = [];
    for (const [j, id] of ids.entries()) {
      if (typeof id !== 'string') continue;
      const where: PathSegment[] = d.profiles === undefined ? at('kind') : ['devices', i, 'profiles', j];
      if (!catalogue.has(id)) {
        this.issue(where, 'value', 'a profile id from hardware/profiles', didYouMean(id, catalogue.ids()));
        continue;
      }
      const profile = catalogue.get(id);
      const mismatch = profileMismatch(d.kind, profile);
      if (mismatch !== undefined) {
        this.issue(where, 'value', `a profile for a ${d.kind}`, mismatch);
        continue;
      }
      if (profiles.some((p) => p.id === id)) {
        this.issue(where, 'value', 'each profile once', `${id} is listed twice`);
        continue;
      }
      profiles.push(profile);
    }
    const sunspec = profiles.filter((p) => p.addressing === 'sunspec-model');
    const absolute = profiles.filter((p) => p.addressing === 'absolute');
    if (sunspec.length > 0 && absolute.length > 0) {
      this.issue(
        at('profiles'),
        'value',
        'SunSpec models or one absolute profile, not both',
        `the agent polls a device with one profile; split ${absolute.map((p) => p.id).join(', ')} into a device of its own`,
      );
    } else if (absolute.length > 1) {
      this.issue(
        at('profiles'),
        'value',
        'one absolute profile',
        'a device has one register map; make one device per map',
      );
    } else if (sunspec.length > 0 && sunspec[0]?.sunspec?.model !== 1) {
      this.issue(
        at('profiles'),
        'value',
        'sunspec-1 first',
        'the SunSpec chain starts with the common model (sunspec-1)',
      );
    }
    if (d.base !== undefined && sunspec.length === 0) {
      this.issue(at('base'), 'key', 'no base on a device without SunSpec models', 'base is where "SunS" sits');
    }
    if (profiles.length === ids.length) {
      served.push({
        name: d.name,
        kind: d.kind,
        server: server.name,
        unit,
        profiles: ids,
        base: d.base ?? SUNSPEC_DEFAULT_BASE,
        identity: d.identity ?? {},
      });
    }
  }

  /** A signing meter's key: env:NAME, hex, or (when omitted) a test key derived from the seed and the name. */
  private privateKey(
    given: string | undefined,
    path: PathSegment[],
    seed: number,
    name: string,
  ): { key: Uint8Array; address: string } | undefined {
    if (!this.ok(path)) return undefined;
    let hex: string;
    if (given === undefined) {
      return withAddress(testMeterKey(seed, name));
    }
    if (given.startsWith('env:')) {
      const variable = given.slice(4);
      const value = (this.options.env ?? process.env)[variable];
      if (value === undefined || value.trim() === '') {
        this.issue(
          path,
          'value',
          `the environment variable ${variable} set`,
          `export ${variable}=<64 hex digits> first`,
        );
        return undefined;
      }
      hex = value.trim();
    } else {
      hex = given;
    }
    const digits = hex.replace(/^0x/i, '');
    // The value is not echoed: it may be a real key.
    if (!/^[0-9a-fA-F]{64}$/.test(digits)) {
      this.issue(path, 'value', 'env:NAME or a 32-byte hex key (64 hex digits)', `got ${digits.length} characters`);
      return undefined;
    }
    const key = Uint8Array.from(Buffer.from(digits, 'hex'));
    const result = withAddress(key);
    if (result === undefined) this.issue(path, 'value', 'a valid secp256k1 private key', 'it is 0 or above the order');
    return result;
  }

  private fault(
    f: Record<string, unknown>,
    i: number,
    served: readonly SimServedDevice[],
    rawDevices: readonly RawDevice[],
    catalogue: Catalogue,
    seconds: (v: number | undefined) => number | undefined,
  ): SimFaultSpec | undefined {
    const path = (key?: string): PathSegment[] => (key === undefined ? ['faults', i] : ['faults', i, key]);
    if (!this.ok(path())) return undefined;
    const kind = f.kind as SimFaultKind;
    const device = f.device as string;
    const allNames = rawDevices.filter((d) => typeof d?.name === 'string').map((d) => d.name);
    const target = served.find((d) => d.name === device);
    if (target === undefined) {
      const raw = rawDevices.find((d) => d?.name === device);
      // A device whose serving has its own problem was reported there; a second line would only repeat it.
      if (raw?.server === undefined) {
        this.issue(
          path('device'),
          'value',
          'the name of a served device',
          raw !== undefined
            ? `${device} has no server:, so it has no registers to break`
            : didYouMean(device, allNames),
        );
      }
    }
    let good = target !== undefined;
    const keys = FAULT_KEYS[kind];
    for (const key of keys.required) {
      if (f[key] === undefined) {
        this.issue(path(), 'value', `${key}: (a ${kind} fault needs it)`, `add ${key}: to faults[${i}]`);
        good = false;
      }
    }
    for (const key of Object.keys(f)) {
      if (['device', 'kind', 'from', 'until', ...keys.required, ...keys.optional].includes(key)) continue;
      this.issue(
        path(key),
        'key',
        `a key a ${kind} fault takes`,
        `allowed: ${[...keys.required, ...keys.optional].join(', ') || 'from, until'}`,
      );
      good = false;
    }
    const from = f.from as number | undefined;
    const until = f.until as number | undefined;
    if (from !== undefined && until !== undefined && until <= from) {
      this.issue(path('until'), 'value', `a time after from (${from} s)`, 'from and until are seconds after start');
      good = false;
    }
    if ((BANK_FAULT_KINDS as readonly string[]).includes(kind) && f.fn !== undefined && f.fn !== 3 && f.fn !== 4) {
      this.issue(path('fn'), 'value', 'fn: 3 (holding) or 4 (input) for a register fault', `got ${String(f.fn)}`);
      good = false;
    }
    if (kind === 'stuck' && (f.point === undefined) === (f.start === undefined)) {
      this.issue(path(), 'value', 'either point: or start: (with count:)', 'name what freezes');
      good = false;
    }
    if (kind === 'stuck' && f.point !== undefined && target !== undefined) {
      const point = f.point as string;
      const candidates = target.profiles.flatMap((id) =>
        catalogue.has(id)
          ? catalogue
              .get(id)
              .points.filter((p) => p.type !== 'pad')
              .map((p) => `${id}.${p.name}`)
          : [],
      );
      const matches = candidates.filter((c) => c === point || c.endsWith(`.${point}`));
      if (matches.length === 0) {
        const bare = [...new Set(candidates.map((c) => c.slice(c.indexOf('.') + 1)))];
        const near = closest(point, bare, 1);
        const hint =
          near.length > 0
            ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}?`
            : `its points are in hardware/profiles/{${target.profiles.join(',')}}.yaml`;
        this.issue(path('point'), 'value', `a point of ${device}`, hint);
        good = false;
      } else if (matches.length > 1) {
        this.issue(path('point'), 'value', 'a point in one profile', `name one of ${matches.join(', ')}`);
        good = false;
      }
    }
    if (
      kind === 'missing-end-marker' &&
      target !== undefined &&
      !target.profiles.some((p) => p.startsWith('sunspec-'))
    ) {
      this.issue(path('kind'), 'value', 'a fault of a SunSpec device', `${device} has no SunSpec chain to end`);
      good = false;
    }
    if (kind === 'exception-range' && typeof f.start === 'number' && typeof f.end === 'number' && f.end < f.start) {
      this.issue(path('end'), 'value', `a register at or after start (${f.start})`, 'the range is start..end');
      good = false;
    }
    if (!good) return undefined;
    const copy = { ...f } as Record<string, unknown>;
    delete copy.from;
    delete copy.until;
    const fromMs = seconds(from);
    const untilMs = seconds(until);
    return {
      ...(copy as unknown as SimFaultSpec),
      ...(fromMs === undefined ? {} : { from: fromMs }),
      ...(untilMs === undefined ? {} : { until: untilMs }),
    };
  }

  /** Line and column of the key or value at `path`, or of the deepest part of the path that is in the file. */
  private positionOf(path: readonly PathSegment[], at: 'key' | 'value'): { line: number; column: number } {
    let node: unknown = this.document.contents;
    let best = startOf(node) ?? 0;
    for (const [i, segment] of path.entries()) {
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(segment),
        );
        if (pair === undefined) break;
        const keyStart = startOf(pair.key);
        const valueStart = startOf(pair.value);
        best = (last && at === 'key' ? keyStart : (valueStart ?? keyStart)) ?? best;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment];
        if (item === undefined) break;
        best = startOf(item) ?? best;
        node = item;
      } else {
        break;
      }
    }
    const { line, col } = this.lineCounter.linePos(best);
    return { line, column: col };
  }
}

function startOf(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  // An empty value (`key:` and nothing) has a zero-length range; the key is the better place to point at.
  return range !== undefined && range !== null && range[1] > range[0] ? range[0] : undefined;
}

/** Ajv's instancePath as segments; a segment is an index where the data holds a list. */
function pointerSegments(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const out: PathSegment[] = [];
  let node = data;
  for (const part of pointer.slice(1).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      out.push(Number(key));
      node = node[Number(key)];
    } else {
      out.push(key);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return out;
}

function aboutAChild(error: ErrorObject): boolean {
  return error.keyword === 'required' || error.keyword === 'additionalProperties';
}

interface Explanation {
  readonly path: PathSegment[];
  /** Where to point when the path itself is not in the file (a missing key: its mapping). */
  readonly pointAt?: PathSegment[];
  readonly at: 'key' | 'value';
  readonly expected: string;
  readonly hint?: string;
}

type SchemaNode = Record<string, unknown>;

/** One Ajv error in a technician's words. */
function explain(error: ErrorObject, at: PathSegment[]): Explanation {
  const params = error.params as Record<string, unknown>;
  const schema = (error.parentSchema ?? {}) as SchemaNode;
  const given = describeGiven(error.data);
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((schema.properties ?? {}) as SchemaNode);
      // Keys get one more edit of slack than values: `sever` for `servers` is a typo, not another word.
      const near = closest(key, allowed, 1);
      const hint =
        near.length > 0
          ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}?`
          : allowed.length > 0
            ? `allowed here: ${allowed.join(', ')}`
            : 'no keys are allowed here';
      return {
        path: [...at, key],
        at: 'key',
        expected: at.length === 0 ? 'a known top-level key' : `a known key of ${formatPath(at)}`,
        hint,
      };
    }
    case 'required': {
      const key = String(params.missingProperty);
      return { path: [...at, key], pointAt: at, at: 'key', expected: 'this required key', hint: `add '${key}:'` };
    }
    case 'type':
      return { path: at, at: 'value', expected: describeExpected(schema), hint: `got ${given}` };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const near = typeof error.data === 'string' ? closest(error.data, allowed) : [];
      const guess = near.length > 0 ? ` did you mean ${near.map((n) => `'${n}'`).join(' or ')}?` : '';
      return {
        path: at,
        at: 'value',
        expected: `one of ${allowed.join(', ')}`,
        hint: `got ${given};${guess}`.replace(/;$/, ''),
      };
    }
    case 'pattern':
    case 'minLength':
    case 'maxLength':
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
    case 'minItems':
      return { path: at, at: 'value', expected: describeExpected(schema), hint: `got ${given}` };
    default:
      return { path: at, at: 'value', expected: error.message ?? 'a valid value', hint: `got ${given}` };
  }
}

/** What a schema node accepts, in words. */
function describeExpected(schema: SchemaNode): string {
  if (typeof schema.expected === 'string') return schema.expected;
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map(String).join(', ')}`;
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const noun = schema.type === 'integer' ? 'an integer' : 'a number';
      const min = schema.minimum as number | undefined;
      const max = schema.maximum as number | undefined;
      const above = schema.exclusiveMinimum as number | undefined;
      if (min !== undefined && max !== undefined) return `${noun} from ${min} to ${max}`;
      if (above !== undefined && max !== undefined) return `${noun} above ${above}, at most ${max}`;
      if (above !== undefined) return `${noun} above ${above}`;
      if (min !== undefined) return `${noun} of at least ${min}`;
      if (max !== undefined) return `${noun} of at most ${max}`;
      return noun;
    }
    case 'string': {
      const max = schema.maxLength as number | undefined;
      return max === undefined ? 'a text (not empty)' : `a text of at most ${max} characters`;
    }
    case 'boolean':
      return 'true or false';
    case 'array':
      return typeof schema.minItems === 'number' && schema.minItems > 0 ? 'a list (not empty)' : 'a list';
    case 'object':
      return 'a mapping of keys to values';
    default:
      return 'a valid value';
  }
}

function describeGiven(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 37)}...` : value}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  return 'a mapping';
}

function didYouMean(given: string, candidates: readonly string[]): string {
  const near = closest(given, candidates);
  if (near.length > 0) return `did you mean ${near.map((n) => `'${n}'`).join(' or ')}?`;
  return candidates.length > 0 ? `known: ${candidates.join(', ')}` : 'there are none';
}

function withAddress(key: Uint8Array): { key: Uint8Array; address: string } | undefined {
  try {
    return { key, address: meterAddressFromPrivateKey(key) };
  } catch {
    return undefined;
  }
}

/**
 * The test key of a signing meter whose file gives none: derived from the site seed and the meter's name, so a site
 * file gives the same meter addresses every run. Anyone can derive it: for simulations only, never for real meters.
 */
export function testMeterKey(seed: number, name: string): Uint8Array {
  return Uint8Array.from(createHash('sha256').update(`mgmc-sim test meter key\u0000${seed}\u0000${name}`).digest());
}

/**
 * The embedded default site: the physics of exampleSite() (PV, battery, office load, EV charger, grid and PV meters)
 * with the PV inverter, battery, EV charger and PV meter on a Modbus TCP server, the grid meter as an Eastron SDM630
 * on an RS-485 line, and a signing meter on the grid meter.
 */
export function defaultSimSite(): SimSiteConfig {
  const description = exampleSite();
  const tcp = (name: string, kind: SimDeviceKind, unit: number, profiles: string[]): SimServedDevice => ({
    name,
    kind,
    server: 'lan',
    unit,
    profiles,
    base: SUNSPEC_DEFAULT_BASE,
    identity: {},
  });
  const key = testMeterKey(description.seed, 'grid-signer');
  return {
    file: '(default site)',
    description,
    speed: 1,
    servers: [
      { name: 'lan', kind: 'tcp', host: '127.0.0.1', port: 0 },
      { name: 'rs485', kind: 'rtu', baudRate: 9600 },
    ],
    devices: [
      tcp('pv', 'pv-inverter', 1, defaultProfiles('pv-inverter', 'tcp')),
      tcp('battery', 'battery', 2, defaultProfiles('battery', 'tcp')),
      tcp('ev', 'ev-charger', 3, ['alfen-eve']),
      tcp('pv-meter', 'meter', 4, ['sunspec-1', 'sunspec-203']),
      {
        name: 'grid-meter',
        kind: 'meter',
        server: 'rs485',
        unit: 1,
        profiles: ['eastron-sdm630'],
        base: SUNSPEC_DEFAULT_BASE,
        identity: {},
      },
    ],
    signingMeters: [
      {
        name: 'grid-signer',
        meter: 'grid-meter',
        privateKey: key,
        address: meterAddressFromPrivateKey(key),
        batchSeconds: 60,
        sampleSeconds: 15,
        baudRate: 115_200,
      },
    ],
    faults: [],
  };
}
