/**
 * What a device-profile file may contain, checked by hand rather than by a JSON-Schema validator: most of what goes
 * wrong in a register map is a cross-reference (an `sf` naming the wrong point, two points on one register), and the
 * technician needs one message per mistake that names the point, not a cascade of anyOf failures.
 *
 * The checks work on plain data (the YAML already turned into objects) and report key paths; load.ts turns paths
 * into file:line:column. The format itself is documented in hardware/README.md.
 */
import { integerRange, isIntegerType, isQuantityType, sunspecNotImplemented, typeRegisters } from '../codec.js';
import {
  type ByteOrder,
  DEVICE_CLASSES,
  type DeviceClass,
  POINT_TYPES,
  type PointDef,
  type PointType,
  type Profile,
  type ReadFunction,
  type WordOrder,
  type WriteRange,
} from './types.js';

export type PathSegment = string | number;

/** One problem in a profile, by key path; `at` says whether the key or its value is the place to point at. */
export interface SchemaProblem {
  readonly path: readonly PathSegment[];
  readonly at: 'key' | 'value';
  readonly message: string;
}

/** Top-level keys of a profile file. */
export const PROFILE_KEYS = [
  'id',
  'name',
  'class',
  'source',
  'addressing',
  'sunspec',
  'transport',
  'defaults',
  'barriers',
  'points',
] as const;

/** Keys of one entry of `points`. */
export const POINT_KEYS = [
  'name',
  'address',
  'type',
  'size',
  'function',
  'wordOrder',
  'byteOrder',
  'scale',
  'sf',
  'unit',
  'notImplemented',
  'access',
  'range',
  'revertTimeout',
  'enable',
  'description',
] as const;

const DEFAULTS_KEYS = ['function', 'wordOrder', 'byteOrder'] as const;
const SUNSPEC_KEYS = ['model', 'length'] as const;
const RANGE_KEYS = ['min', 'max'] as const;
const ADDRESSING = ['absolute', 'sunspec-model'] as const;
const TRANSPORTS = ['tcp', 'rtu', 'any'] as const;
const ORDERS = ['big', 'little'] as const;
const ACCESS = ['r', 'rw'] as const;

/** Lower-case words joined by `-`, `.` or `_`: safe as a file name and in a config file. */
const ID_PATTERN = /^[a-z0-9]+(?:[-._][a-z0-9]+)*$/;
/** No `.`: placed keys join profile id and point name with one (`sunspec-103.W`). */
const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** The SunSpec type names people copy from the SunSpec JSON, and ours. */
const TYPE_ALIASES: Readonly<Record<string, PointType>> = {
  uint16: 'u16',
  int16: 's16',
  uint32: 'u32',
  int32: 's32',
  uint64: 'u64',
  int64: 's64',
  float32: 'f32',
  float64: 'f64',
  count: 'u16',
  raw16: 'u16',
  enum32: 'u32',
  bitfield64: 'u64',
};

/** Optimal string alignment distance: Levenshtein plus swapped neighbours, the commonest typing slip. */
export function editDistance(a: string, b: string): number {
  const cols = b.length + 1;
  const d = new Array<number>((a.length + 1) * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] as number;
  for (let i = 0; i <= a.length; i++) d[i * cols] = i;
  for (let j = 0; j <= b.length; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      d[i * cols + j] = best;
    }
  }
  return at(a.length, b.length);
}

/**
 * The candidates nearest to `given` (case, `_` and `-` ignored), if near enough to be a typo of it; ties all
 * returned, sorted. `slack` widens "near enough" (ids are longer and more alike than keys).
 */
export function closest(given: string, candidates: Iterable<string>, slack = 0): string[] {
  const normal = (text: string): string => text.toLowerCase().replace(/[-_\s]/g, '');
  const wanted = normal(given);
  const limit = Math.max(1, Math.floor(wanted.length / 3)) + slack;
  let best = Number.POSITIVE_INFINITY;
  let found: string[] = [];
  for (const candidate of new Set(candidates)) {
    const distance = editDistance(wanted, normal(candidate));
    if (distance > limit || distance > best) continue;
    if (distance < best) found = [];
    best = distance;
    found.push(candidate);
  }
  return found.sort();
}

/** `; did you mean "a" or "b"?`, or '' when nothing is near. */
function didYouMean(given: string, candidates: Iterable<string>): string {
  const near = closest(given, candidates);
  if (near.length === 0) return '';
  return `; did you mean ${near.map((n) => JSON.stringify(n)).join(' or ')}?`;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/** `register 7` or `registers 7..8`. */
function registers(address: number, size: number): string {
  return size === 1 ? `register ${address}` : `registers ${address}..${address + size - 1}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface Draft {
  readonly index: number;
  readonly name?: string;
  readonly address?: number;
  readonly type?: PointType;
  readonly size?: number;
  readonly function: ReadFunction;
  readonly wordOrder: WordOrder;
  readonly byteOrder: ByteOrder;
  readonly scale: number;
  readonly sf?: string;
  readonly unit?: string;
  readonly notImplemented?: (number | bigint)[];
  readonly access: 'r' | 'rw';
  readonly range?: WriteRange;
  readonly revertTimeout?: string;
  readonly enable?: string;
  readonly description?: string;
}

type Report = (path: readonly PathSegment[], message: string, at?: 'key' | 'value') => void;

/** Reads typed fields of one mapping, reporting wrong ones; a wrong or missing field reads as undefined. */
class Fields {
  constructor(
    private readonly data: Record<string, unknown>,
    private readonly path: readonly PathSegment[],
    private readonly report: Report,
    allowed: readonly string[],
    what: string,
  ) {
    for (const key of Object.keys(data)) {
      if (allowed.includes(key)) continue;
      this.report(
        [...path, key],
        `unknown key "${key}" in ${what}${didYouMean(key, allowed) || `; allowed keys are ${allowed.join(', ')}`}`,
        'key',
      );
    }
  }

  private present(key: string, required: boolean, expected: string): unknown {
    const value = this.data[key];
    if (value === undefined || value === null) {
      if (required) this.report([...this.path, key], `missing ${key}: ${expected}`, 'key');
      return undefined;
    }
    return value;
  }

  text(key: string, required: boolean, pattern?: RegExp, expected = 'text'): string | undefined {
    const value = this.present(key, required, expected);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.trim() === '' || (pattern !== undefined && !pattern.test(value))) {
      this.report([...this.path, key], `expected ${expected}, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  oneOf<T extends string>(
    key: string,
    values: readonly T[],
    required: boolean,
    aliases: Readonly<Record<string, string>> = {},
  ): T | undefined {
    const expected = `one of ${values.join(', ')}`;
    const value = this.present(key, required, expected);
    if (value === undefined) return undefined;
    if (typeof value === 'string' && (values as readonly string[]).includes(value)) return value as T;
    const alias = typeof value === 'string' ? aliases[value] : undefined;
    const hint =
      alias !== undefined
        ? `; the SunSpec type ${value} is ${JSON.stringify(alias)} here`
        : typeof value === 'string'
          ? didYouMean(value, values)
          : '';
    this.report([...this.path, key], `expected ${expected}, got ${describe(value)}${hint}`);
    return undefined;
  }

  integer(key: string, min: number, max: number, required: boolean, expected?: string): number | undefined {
    const wanted = expected ?? `a whole number ${min}..${max}`;
    const value = this.present(key, required, wanted);
    if (value === undefined) return undefined;
    const number = typeof value === 'bigint' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < min || number > max) {
      this.report([...this.path, key], `expected ${wanted}, got ${describe(value)}`);
      return undefined;
    }
    return number;
  }

  number(key: string, required: boolean): number | undefined {
    const value = this.present(key, required, 'a number');
    if (value === undefined) return undefined;
    const number = typeof value === 'bigint' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isFinite(number)) {
      this.report([...this.path, key], `expected a number, got ${describe(value)}`);
      return undefined;
    }
    return number;
  }

  mapping(key: string, required: boolean, expected: string): Record<string, unknown> | undefined {
    const value = this.present(key, required, expected);
    if (value === undefined) return undefined;
    if (!isRecord(value)) {
      this.report([...this.path, key], `expected ${expected}, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  list(key: string, required: boolean, expected: string): unknown[] | undefined {
    const value = this.present(key, required, expected);
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) {
      this.report([...this.path, key], `expected ${expected}, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  has(key: string): boolean {
    return this.data[key] !== undefined && this.data[key] !== null;
  }
}

interface ProfileDefaults {
  readonly function: ReadFunction;
  readonly wordOrder: WordOrder;
  readonly byteOrder: ByteOrder;
}

/** Options of validateProfile. */
export interface ValidateOptions {
  /** The id the file name implies (`sunspec-103` for sunspec-103.yaml); the profile's id must equal it. */
  readonly expectedId?: string;
  /** Stored in the profile for later messages. */
  readonly file?: string;
}

/**
 * Checks a profile (parsed YAML) and builds it with every default applied. Returns every problem found; `profile` is
 * present only when there are none. Large integers may arrive as bigints (the loader keeps 64-bit sentinels exact).
 */
export function validateProfile(
  data: unknown,
  options: ValidateOptions = {},
): { profile?: Profile; problems: SchemaProblem[] } {
  const problems: SchemaProblem[] = [];
  const report: Report = (path, message, at = 'value') => problems.push({ path: [...path], at, message });
  if (!isRecord(data)) {
    report([], `expected a mapping with ${PROFILE_KEYS.join(', ')}; got ${describe(data)}`);
    return { problems };
  }
  const top = new Fields(data, [], report, PROFILE_KEYS, 'a profile');
  const id = top.text('id', true, ID_PATTERN, 'a lower-case id such as sunspec-103 or eastron-sdm630');
  if (id !== undefined && options.expectedId !== undefined && id !== options.expectedId) {
    report(
      ['id'],
      `id "${id}" differs from the file name ${options.expectedId}.yaml; make them equal (profiles are found by file name)`,
    );
  }
  const name = top.text('name', true, undefined, 'a human-readable name');
  const deviceClass = top.oneOf<DeviceClass>('class', DEVICE_CLASSES, true);
  const source = top.text('source', true, undefined, 'where the register map comes from (document, version, URL)');
  const addressing = top.oneOf('addressing', ADDRESSING, true);
  const transport = top.oneOf('transport', TRANSPORTS, false);

  let sunspec: { model: number; length: number } | undefined;
  const sunspecData = top.mapping('sunspec', addressing === 'sunspec-model', '{ model, length }');
  if (sunspecData !== undefined) {
    if (addressing === 'absolute') {
      report(['sunspec'], 'sunspec is only for addressing: sunspec-model; remove it or change addressing', 'key');
    }
    const fields = new Fields(sunspecData, ['sunspec'], report, SUNSPEC_KEYS, 'sunspec');
    const model = fields.integer('model', 1, 65534, true, 'the SunSpec model id, 1..65534');
    const length = fields.integer('length', 0, 65533, true, 'the model length L (registers after ID and L)');
    if (model !== undefined && length !== undefined) sunspec = { model, length };
  }

  const defaultsData = top.mapping('defaults', false, '{ function, wordOrder, byteOrder }');
  const defaultFields = new Fields(defaultsData ?? {}, ['defaults'], report, DEFAULTS_KEYS, 'defaults');
  const defaults: ProfileDefaults = {
    function: (defaultFields.integer('function', 3, 4, false, '3 (holding) or 4 (input registers)') ??
      3) as ReadFunction,
    wordOrder: defaultFields.oneOf('wordOrder', ORDERS, false) ?? 'big',
    byteOrder: defaultFields.oneOf('byteOrder', ORDERS, false) ?? 'big',
  };
  if (addressing === 'sunspec-model' && defaults.function !== 3) {
    report(['defaults', 'function'], 'SunSpec models are holding registers; use function 3');
  }

  const barriers: number[] = [];
  (top.list('barriers', false, 'a list of register addresses') ?? []).forEach((value, i) => {
    if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65535) barriers.push(value);
    else report(['barriers', i], `expected a register address 0..65535, got ${describe(value)}`);
  });

  const drafts: Draft[] = [];
  const pointsData = top.list('points', true, 'a list of points');
  if (pointsData !== undefined && pointsData.length === 0) report(['points'], 'a profile needs at least one point');
  (pointsData ?? []).forEach((value, i) => {
    if (!isRecord(value)) {
      report(['points', i], `expected a point mapping { name, address, type, ... }, got ${describe(value)}`);
      return;
    }
    drafts.push(checkPoint(value, i, defaults, report));
  });

  checkAcrossPoints(drafts, addressing, sunspec, report);
  if (problems.length > 0) return { problems };

  const sentinels = addressing === 'sunspec-model';
  const points: PointDef[] = drafts.map((draft) => {
    const type = draft.type as PointType;
    return {
      name: draft.name as string,
      address: draft.address as number,
      type,
      size: draft.size as number,
      function: draft.function,
      wordOrder: draft.wordOrder,
      byteOrder: draft.byteOrder,
      scale: draft.scale,
      ...(draft.sf === undefined ? {} : { sf: draft.sf }),
      ...(draft.unit === undefined ? {} : { unit: draft.unit }),
      notImplemented: draft.notImplemented ?? (sentinels ? [...sunspecNotImplemented(type)] : []),
      access: draft.access,
      ...(draft.range === undefined ? {} : { range: draft.range }),
      ...(draft.revertTimeout === undefined ? {} : { revertTimeout: draft.revertTimeout }),
      ...(draft.enable === undefined ? {} : { enable: draft.enable }),
      ...(draft.description === undefined ? {} : { description: draft.description }),
    };
  });
  const profile: Profile = {
    id: id as string,
    name: name as string,
    class: deviceClass as DeviceClass,
    source: source as string,
    addressing: addressing as Profile['addressing'],
    ...(sunspec === undefined ? {} : { sunspec }),
    ...(transport === undefined ? {} : { transport }),
    barriers,
    points,
    ...(options.file === undefined ? {} : { file: options.file }),
  };
  return { profile, problems };
}

function checkPoint(data: Record<string, unknown>, index: number, defaults: ProfileDefaults, report: Report): Draft {
  const path = ['points', index];
  const at = (key: string): PathSegment[] => [...path, key];
  const fields = new Fields(data, path, report, POINT_KEYS, `points[${index}]`);
  const name = fields.text('name', true, NAME_PATTERN, 'a point name (letters, digits, _ and -; no dots)');
  const address = fields.integer('address', 0, 65535, true, 'a register address 0..65535');
  const type = fields.oneOf('type', POINT_TYPES, true, TYPE_ALIASES);
  const fixed = type === undefined ? undefined : typeRegisters(type);

  let size = fields.integer('size', 1, 65535, type === 'string' || type === 'pad', 'a register count');
  if (fixed !== undefined && size !== undefined && size !== fixed) {
    report(at('size'), `a ${type} is ${fixed} register${fixed === 1 ? '' : 's'}, not ${size}; remove size`);
  }
  if (type === 'string' && size !== undefined && size > 125) {
    report(at('size'), `a string of ${size} registers cannot be read in one request (at most 125)`);
  }
  size = fixed ?? size;

  const fn = fields.integer('function', 3, 4, false, '3 (holding) or 4 (input registers)') as ReadFunction | undefined;
  const wordOrder = fields.oneOf('wordOrder', ORDERS, false);
  if (wordOrder !== undefined && type !== undefined && (fixed === 1 || type === 'string' || type === 'pad')) {
    const why = type === 'string' ? 'text runs from the first register on' : `a ${type} is one register`;
    report(at('wordOrder'), `wordOrder has no meaning here (${why}); remove it`, 'key');
  }
  const byteOrder = fields.oneOf('byteOrder', ORDERS, false);

  const quantity = type !== undefined && isQuantityType(type);
  const scale = fields.number('scale', false);
  if (scale === 0) report(at('scale'), 'scale 0 would make every reading 0; use a non-zero multiplier');
  const sf = fields.text('sf', false, NAME_PATTERN, 'the name of a sunssf point');
  const unit = fields.text('unit', false);
  for (const key of ['scale', 'sf'] as const) {
    if (fields.has(key) && type !== undefined && !quantity) {
      report(at(key), `${key} applies to quantities; a ${type} point has none`, 'key');
    }
  }

  const notImplemented = type === undefined ? undefined : readNotImplemented(fields, at, type, report);
  const access = fields.oneOf('access', ACCESS, false) ?? 'r';
  if (access === 'rw' && (type === 'string' || type === 'pad' || type === 'sunssf')) {
    report(at('access'), `${type} points cannot be written here; use access: r`);
  }
  let range: WriteRange | undefined;
  const rangeData = fields.mapping('range', access === 'rw', 'the write range { min, max } in the point unit');
  if (rangeData !== undefined) {
    const rangeFields = new Fields(rangeData, at('range'), report, RANGE_KEYS, 'range');
    const min = rangeFields.number('min', true);
    const max = rangeFields.number('max', true);
    if (access !== 'rw') report(at('range'), 'range limits writes; add access: rw or remove range', 'key');
    if (min !== undefined && max !== undefined) {
      if (min > max) report(at('range'), `min ${min} is greater than max ${max}`);
      else range = { min, max };
    }
  }
  if (range !== undefined && type !== undefined && isIntegerType(type) && sf === undefined && scale !== 0) {
    const [low, high] = integerRange(type);
    const factor = scale ?? 1;
    const raws = [range.min / factor, range.max / factor].map(Math.round);
    if (raws.some((raw) => raw < Number(low) || raw > Number(high))) {
      report(at('range'), `range ${range.min}..${range.max} does not fit a ${type} (raw ${low}..${high})`);
    }
  }
  const revertTimeout = fields.text('revertTimeout', false, NAME_PATTERN, 'the name of a point');
  const enable = fields.text('enable', false, NAME_PATTERN, 'the name of a point');
  for (const key of ['revertTimeout', 'enable'] as const) {
    if (fields.has(key) && access !== 'rw') report(at(key), `${key} belongs to writable points (access: rw)`, 'key');
  }
  const description = fields.text('description', false);

  return {
    index,
    ...(name === undefined ? {} : { name }),
    ...(address === undefined ? {} : { address }),
    ...(type === undefined ? {} : { type }),
    ...(size === undefined ? {} : { size }),
    function: fn ?? defaults.function,
    wordOrder: wordOrder ?? defaults.wordOrder,
    byteOrder: byteOrder ?? defaults.byteOrder,
    scale: scale ?? 1,
    ...(sf === undefined ? {} : { sf }),
    ...(unit === undefined ? {} : { unit }),
    ...(notImplemented === undefined ? {} : { notImplemented }),
    access,
    ...(range === undefined ? {} : { range }),
    ...(revertTimeout === undefined ? {} : { revertTimeout }),
    ...(enable === undefined ? {} : { enable }),
    ...(description === undefined ? {} : { description }),
  };
}

/**
 * notImplemented values are raw register values. For signed types the register's bit pattern (0x8000) is accepted
 * too and stored as the signed value (-32768) it decodes to, since datasheets print sentinels in hex.
 */
function readNotImplemented(
  fields: Fields,
  at: (key: string) => PathSegment[],
  type: PointType,
  report: Report,
): (number | bigint)[] | undefined {
  const list = fields.list('notImplemented', false, 'a list of raw values');
  if (list === undefined) return undefined;
  if (type === 'pad') {
    report(at('notImplemented'), 'a pad has no value; remove notImplemented', 'key');
    return undefined;
  }
  const values: (number | bigint)[] = [];
  list.forEach((value, i) => {
    const path = [...at('notImplemented'), i];
    if (type === 'string') {
      if (value === 0) values.push(0);
      else report(path, `for a string only 0 (every register zero) is meaningful, got ${describe(value)}`);
      return;
    }
    if (type === 'f32' || type === 'f64') {
      if (typeof value === 'number') values.push(value);
      else report(path, `expected a number (.nan for NaN), got ${describe(value)}`);
      return;
    }
    const integer =
      typeof value === 'bigint'
        ? value
        : typeof value === 'number' && Number.isSafeInteger(value)
          ? BigInt(value)
          : undefined;
    const [min, max] = integerRange(type);
    const bits = BigInt(typeRegisters(type) as number) * 16n;
    const signed = integer !== undefined && min < 0n && integer > max && integer < 1n << bits;
    const raw = signed ? BigInt.asIntN(Number(bits), integer) : integer;
    if (raw === undefined || raw < min || raw > max) {
      report(path, `expected a raw ${type} value ${min}..${max}, got ${describe(value)}`);
      return;
    }
    values.push(raw >= BigInt(Number.MIN_SAFE_INTEGER) && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : raw);
  });
  return values;
}

function checkAcrossPoints(
  drafts: readonly Draft[],
  addressing: string | undefined,
  sunspec: { model: number; length: number } | undefined,
  report: Report,
): void {
  const byName = new Map<string, Draft>();
  for (const draft of drafts) {
    if (draft.name === undefined) continue;
    const first = byName.get(draft.name);
    if (first !== undefined) {
      report(
        ['points', draft.index, 'name'],
        `duplicate point name "${draft.name}": points[${first.index}] has it too`,
      );
    } else {
      byName.set(draft.name, draft);
    }
  }
  const sunssfNames = drafts.filter((d) => d.type === 'sunssf' && d.name !== undefined).map((d) => d.name as string);
  const allNames = [...byName.keys()];

  for (const draft of drafts) {
    const at = (key: string): PathSegment[] => ['points', draft.index, key];
    if (draft.sf !== undefined) {
      const target = byName.get(draft.sf);
      if (target === undefined || (target.type !== undefined && target.type !== 'sunssf')) {
        const what = target === undefined ? '' : ` (it is a ${target.type} point)`;
        report(
          at('sf'),
          `"${draft.sf}" is not a sunssf point of this profile${what}${didYouMean(draft.sf, sunssfNames)}`,
        );
      } else if (target.function !== draft.function) {
        report(at('sf'), `"${draft.sf}" is read with function ${target.function}, this point with ${draft.function}`);
      }
    }
    for (const key of ['revertTimeout', 'enable'] as const) {
      const ref = draft[key];
      if (ref === undefined) continue;
      const target = byName.get(ref);
      if (target === undefined) {
        report(at(key), `"${ref}" is not a point of this profile${didYouMean(ref, allNames)}`);
      } else if (target === draft) {
        report(at(key), `a point cannot be its own ${key}`);
      } else if (key === 'enable' && target.access !== 'rw') {
        report(at(key), `"${ref}" is read-only; the point that enables a control must have access: rw`);
      }
    }
    if (draft.address !== undefined && draft.size !== undefined) {
      const last = draft.address + draft.size - 1;
      if (addressing === 'sunspec-model' && sunspec !== undefined && last > sunspec.length + 1) {
        report(
          at('address'),
          `the point ends at register ${last}, past the end of model ${sunspec.model} ` +
            `(ID 0, L 1, last register ${sunspec.length + 1})`,
        );
      } else if (last > 65535) {
        report(at('address'), `the point ends at register ${last}, past 65535`);
      }
    }
    if (addressing === 'sunspec-model' && draft.function !== 3) {
      report(at('function'), 'SunSpec models are holding registers; use function 3');
    }
  }

  // Pad points are the SunSpec way of saying "nothing here", so they may share registers with anything.
  const placed = drafts
    .filter((d) => d.address !== undefined && d.size !== undefined && d.type !== 'pad')
    .sort((a, b) => a.function - b.function || (a.address as number) - (b.address as number) || a.index - b.index);
  let previous: Draft | undefined;
  for (const draft of placed) {
    const start = draft.address as number;
    if (previous !== undefined && previous.function === draft.function) {
      const end = (previous.address as number) + (previous.size as number) - 1;
      if (start <= end) {
        const name = (d: Draft): string => (d.name === undefined ? '' : ` (${d.name})`);
        report(
          ['points', draft.index, 'address'],
          `${registers(start, draft.size as number)}${name(draft)} overlap points[${previous.index}]${name(previous)}` +
            ` at ${registers(previous.address as number, previous.size as number)}`,
        );
      }
    }
    if (
      previous === undefined ||
      previous.function !== draft.function ||
      start + (draft.size as number) > (previous.address as number) + (previous.size as number)
    ) {
      previous = draft;
    }
  }
}
