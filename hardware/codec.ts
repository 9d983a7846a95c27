/**
 * The register codec: raw Modbus registers <-> typed raw values <-> engineering values. Pure functions, shared by the
 * agent (reading devices) and the simulator (serving registers), so both sides of a test agree by construction.
 *
 * Precision decisions, in one place:
 * - 64-bit integers (u64, s64, acc64) decode to a number while they are safe integers and to a bigint beyond that;
 *   scaling turns a bigint into the nearest double (an energy counter above 2^53 Wh loses its last digits, which no
 *   meter resolves anyway).
 * - Scaling works in decimal: `raw * scale * 10^sf` is computed as an integer product divided by an exact power of
 *   ten, so 22999 with sf -2 reads 229.99, never 229.98999999999998.
 * - f32 values are reported as the shortest decimal that reads back as the same float32 (229.99, not
 *   229.99000549316406): the device stored 229.99, the extra digits are float32's, not the measurement's.
 */
import type { ReadBlock } from './modbus/types.js';
import type { DecodedValue, PointDef, PointType } from './profile/types.js';

/** A value the codec could not decode or encode; the message names the point and the value. */
export class CodecError extends Error {
  override name = 'CodecError';
}

/** A register value before scaling: integers (bigint beyond 2^53), floats, or text. */
export type RawValue = number | bigint | string;

/** The fields of a point the codec reads; a full PointDef fits, so do hand-made test points. */
export type CodecPoint = Pick<
  PointDef,
  'name' | 'type' | 'size' | 'wordOrder' | 'byteOrder' | 'scale' | 'sf' | 'unit' | 'notImplemented' | 'access' | 'range'
>;

type Kind = 'uint' | 'int' | 'float' | 'string' | 'pad';

interface TypeInfo {
  readonly kind: Kind;
  /** Registers; 0 for string and pad, whose size the profile gives. */
  readonly registers: number;
}

const TYPES: Readonly<Record<PointType, TypeInfo>> = {
  u16: { kind: 'uint', registers: 1 },
  s16: { kind: 'int', registers: 1 },
  u32: { kind: 'uint', registers: 2 },
  s32: { kind: 'int', registers: 2 },
  u64: { kind: 'uint', registers: 4 },
  acc32: { kind: 'uint', registers: 2 },
  f32: { kind: 'float', registers: 2 },
  f64: { kind: 'float', registers: 4 },
  string: { kind: 'string', registers: 0 },
  sunssf: { kind: 'int', registers: 1 },
  enum16: { kind: 'uint', registers: 1 },
  bitfield16: { kind: 'uint', registers: 1 },
  bitfield32: { kind: 'uint', registers: 2 },
  acc16: { kind: 'uint', registers: 1 },
  acc64: { kind: 'uint', registers: 4 },
  s64: { kind: 'int', registers: 4 },
  pad: { kind: 'pad', registers: 0 },
};

/** Registers a type occupies, or undefined for `string` and `pad` (their size is part of the profile). */
export function typeRegisters(type: PointType): number | undefined {
  const registers = TYPES[type].registers;
  return registers === 0 ? undefined : registers;
}

/** True for types whose value is a quantity (so `scale`, `sf` and `unit` make sense): not enums, bitfields, text. */
export function isQuantityType(type: PointType): boolean {
  const kind = TYPES[type].kind;
  return (kind === 'uint' || kind === 'int' || kind === 'float') && !NON_QUANTITY.has(type);
}

const NON_QUANTITY: ReadonlySet<PointType> = new Set(['sunssf', 'enum16', 'bitfield16', 'bitfield32']);

/** True for integer types (raw values are whole numbers with a fixed range). */
export function isIntegerType(type: PointType): boolean {
  const kind = TYPES[type].kind;
  return kind === 'uint' || kind === 'int';
}

/** The raw range of an integer type as bigints: [min, max]. */
export function integerRange(type: PointType): readonly [bigint, bigint] {
  const info = TYPES[type];
  const bits = BigInt(info.registers * 16);
  if (info.kind === 'uint') return [0n, (1n << bits) - 1n];
  if (info.kind === 'int') return [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
  throw new CodecError(`${type} is not an integer type`);
}

/**
 * The SunSpec "not implemented" values of a type (SunSpec Information Model Reference, "unimplemented" values).
 * Floats are NaN (any NaN decodes to null anyway); strings list 0, meaning every register zero; pad has none.
 */
export function sunspecNotImplemented(type: PointType): readonly (number | bigint)[] {
  switch (type) {
    case 'u16':
    case 'enum16':
    case 'bitfield16':
      return [0xffff];
    case 's16':
    case 'sunssf':
      return [-0x8000];
    case 'u32':
    case 'bitfield32':
      return [0xffffffff];
    case 's32':
      return [-0x80000000];
    case 'u64':
      return [0xffffffffffffffffn];
    case 's64':
      return [-0x8000000000000000n];
    case 'acc16':
    case 'acc32':
    case 'acc64':
      return [0];
    case 'f32':
    case 'f64':
      return [Number.NaN];
    case 'string':
      return [0];
    case 'pad':
      return [];
  }
}

/** Registers a point occupies on the wire. */
export function registerCount(point: Pick<PointDef, 'type' | 'size'>): number {
  return TYPES[point.type].registers || point.size;
}

function label(point: Pick<PointDef, 'name' | 'type'>): string {
  return `point ${point.name} (${point.type})`;
}

/**
 * The point's registers as bytes in big-endian order (most significant first), undoing word and byte swaps. Strings
 * keep their register order: characters always run from the first register on, only bytes inside a register swap.
 */
function canonicalBytes(point: CodecPoint, words: ArrayLike<number>, offset: number): Uint8Array {
  const count = registerCount(point);
  if (words.length - offset < count) {
    throw new CodecError(`${label(point)} needs ${count} registers, got ${Math.max(0, words.length - offset)}`);
  }
  const bytes = new Uint8Array(count * 2);
  const reverse = point.wordOrder === 'little' && point.type !== 'string';
  const swap = point.byteOrder === 'little';
  for (let i = 0; i < count; i++) {
    const word = words[offset + (reverse ? count - 1 - i : i)] as number;
    if (!Number.isInteger(word) || word < 0 || word > 0xffff) {
      throw new CodecError(`${label(point)}: register ${i} holds ${word}, not a 16-bit value (0..65535)`);
    }
    bytes[2 * i] = swap ? word & 0xff : word >>> 8;
    bytes[2 * i + 1] = swap ? word >>> 8 : word & 0xff;
  }
  return bytes;
}

/** Inverse of canonicalBytes. */
function wordsFromBytes(point: CodecPoint, bytes: Uint8Array): number[] {
  const count = bytes.length / 2;
  const words = new Array<number>(count);
  const reverse = point.wordOrder === 'little' && point.type !== 'string';
  const swap = point.byteOrder === 'little';
  for (let i = 0; i < count; i++) {
    const hi = bytes[2 * i] as number;
    const lo = bytes[2 * i + 1] as number;
    words[reverse ? count - 1 - i : i] = swap ? (lo << 8) | hi : (hi << 8) | lo;
  }
  return words;
}

const UTF8 = new TextDecoder();
const FLOAT_SCRATCH = new DataView(new ArrayBuffer(4));

/** A checked 16-bit register value, byte-swapped when the point says so. */
function wordAt(point: CodecPoint, words: ArrayLike<number>, index: number, register: number): number {
  const word = words[index] as number;
  if (!(word >= 0 && word <= 0xffff && Number.isInteger(word))) {
    throw new CodecError(`${label(point)}: register ${register} holds ${word}, not a 16-bit value (0..65535)`);
  }
  return point.byteOrder === 'little' ? ((word & 0xff) << 8) | (word >>> 8) : word;
}

/**
 * The common one- and two-register integers straight from the words: the poller decodes thousands of points per
 * cycle, and the byte-array route below allocates twice per point. Same results, checked by the codec vectors.
 */
function decodeSmallInteger(point: CodecPoint, words: ArrayLike<number>, offset: number, info: TypeInfo) {
  if (info.registers === 1) {
    if (words.length - offset < 1) return undefined;
    const w = wordAt(point, words, offset, 0);
    return info.kind === 'uint' ? w : (w << 16) >> 16;
  }
  if (words.length - offset < 2) return undefined;
  const little = point.wordOrder === 'little';
  const hi = wordAt(point, words, offset + (little ? 1 : 0), little ? 1 : 0);
  const lo = wordAt(point, words, offset + (little ? 0 : 1), little ? 0 : 1);
  return info.kind === 'uint' ? hi * 0x10000 + lo : (hi << 16) | lo | 0;
}

function decodeAt(point: CodecPoint, words: ArrayLike<number>, offset: number): RawValue | null {
  const info = TYPES[point.type];
  if (info.kind === 'pad') return null;
  if ((info.kind === 'uint' || info.kind === 'int') && (info.registers === 1 || info.registers === 2)) {
    const raw = decodeSmallInteger(point, words, offset, info);
    if (raw !== undefined) return isNotImplemented(point, raw) ? null : raw;
  }
  if (info.kind === 'float' && info.registers === 2 && words.length - offset >= 2) {
    const little = point.wordOrder === 'little';
    // Synchronous use only, so one scratch view serves every call.
    FLOAT_SCRATCH.setUint16(0, wordAt(point, words, offset + (little ? 1 : 0), little ? 1 : 0));
    FLOAT_SCRATCH.setUint16(2, wordAt(point, words, offset + (little ? 0 : 1), little ? 0 : 1));
    const raw = FLOAT_SCRATCH.getFloat32(0);
    return Number.isNaN(raw) || isNotImplemented(point, raw) ? null : raw;
  }
  const bytes = canonicalBytes(point, words, offset);
  if (info.kind === 'string') {
    if (bytes.every((byte) => byte === 0)) return point.notImplemented.some((v) => v === 0) ? null : '';
    const end = bytes.indexOf(0);
    // A NUL ends the text (C strings); whatever a device leaves after it is not part of the value.
    return UTF8.decode(end === -1 ? bytes : bytes.subarray(0, end)).replace(/ +$/, '');
  }
  const view = new DataView(bytes.buffer);
  let raw: number | bigint;
  if (info.kind === 'float') {
    raw = info.registers === 2 ? view.getFloat32(0) : view.getFloat64(0);
    if (Number.isNaN(raw)) return null;
  } else if (info.registers === 1) {
    raw = info.kind === 'uint' ? view.getUint16(0) : view.getInt16(0);
  } else if (info.registers === 2) {
    raw = info.kind === 'uint' ? view.getUint32(0) : view.getInt32(0);
  } else {
    const big = info.kind === 'uint' ? view.getBigUint64(0) : view.getBigInt64(0);
    raw = big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  return isNotImplemented(point, raw) ? null : raw;
}

function isWhole(value: number | bigint): boolean {
  return typeof value === 'bigint' || Number.isInteger(value);
}

function isNotImplemented(point: CodecPoint, raw: number | bigint): boolean {
  for (const sentinel of point.notImplemented) {
    if (typeof raw === 'number' && typeof sentinel === 'number') {
      if (raw === sentinel) return true;
    } else if (isWhole(raw) && isWhole(sentinel) && BigInt(raw) === BigInt(sentinel)) {
      // One side is a bigint: 64-bit sentinels such as 0xFFFFFFFFFFFFFFFF are not JS numbers.
      return true;
    }
  }
  return false;
}

/**
 * Decodes a point's registers (`words[0]` is its first register) into its raw value: a number, a bigint (64-bit
 * integers beyond 2^53), a string, or null for a not-implemented sentinel, a NaN float, or a pad.
 */
export function decodeRaw(point: CodecPoint, words: ArrayLike<number>): RawValue | null {
  return decodeAt(point, words, 0);
}

const decimalPartsCache = new Map<number, { mantissa: number; exponent: number }>();

/** Decimal form of a finite number: value = mantissa * 10^exponent, mantissa an integer. */
function decimalParts(value: number): { mantissa: number; exponent: number } {
  // Profiles use a handful of scales (0.1, 0.01, 1000): remember them rather than format a string per reading.
  const known = decimalPartsCache.get(value);
  if (known !== undefined) return known;
  const [digits = '0', exp = '0'] = value.toExponential().split('e');
  const [whole = '0', fraction = ''] = digits.split('.');
  const parts = { mantissa: Number(whole + fraction), exponent: Number(exp) - fraction.length };
  if (decimalPartsCache.size < 256) decimalPartsCache.set(value, parts);
  return parts;
}

/** value * 10^exponent, exact when value and the result are exact (multiply or divide by an exact power of ten). */
function shiftDecimal(value: number, exponent: number): number {
  return exponent >= 0 ? value * 10 ** exponent : value / 10 ** -exponent;
}

/** The shortest decimal that is the same float32: what the device's value was before float32 rounded it. */
function shortestFloat32(value: number): number {
  if (!Number.isFinite(value)) return value;
  // A float32 is within half an ulp (< 6e-8 relative) of its shortest decimal, far less than half a unit of the 6th
  // digit, so when 6 digits round-trip they are that decimal padded with zeros: one formatting instead of six.
  const six = Number(value.toPrecision(6));
  if (Math.fround(six) === value) return six;
  for (let digits = 7; digits <= 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

/** SunSpec limits scale factors to -10..10; anything else is a device fault, not a scale. */
const SF_LIMIT = 10;

function checkSf(point: CodecPoint, sf: number | null | undefined): number | null {
  if (point.sf === undefined) return 0;
  if (sf === undefined) {
    throw new CodecError(`${label(point)} is scaled by ${point.sf}; pass its value (null if not implemented)`);
  }
  if (sf === null) return null;
  if (!Number.isInteger(sf) || Math.abs(sf) > SF_LIMIT) {
    throw new CodecError(`${label(point)}: scale factor ${point.sf} is ${sf}, outside -${SF_LIMIT}..${SF_LIMIT}`);
  }
  return sf;
}

/**
 * Raw value -> engineering value: raw * scale * 10^sf, rounded to the decimals that product really has. Returns null
 * when the raw value is null or the scale factor is null (not implemented). `sf` is required for points with `sf`
 * and ignored for others. Bigints above 2^53 lose precision here (see the module comment).
 */
export function scaleValue(point: CodecPoint, raw: number | bigint | null, sf?: number | null): number | null {
  if (raw === null) return null;
  const exponent10 = checkSf(point, sf);
  if (exponent10 === null) return null;
  const kind = TYPES[point.type].kind;
  if (kind === 'string' || kind === 'pad') throw new CodecError(`${label(point)} has no numeric value`);
  let result: number;
  if (kind === 'float') {
    const value = point.type === 'f32' ? shortestFloat32(Number(raw)) : Number(raw);
    if (point.scale === 1 && exponent10 === 0) return value === 0 ? 0 : value;
    const { mantissa, exponent } = decimalParts(point.scale);
    // A float has no fixed number of decimals; 15 significant digits drop the binary noise and keep the reading.
    result = Number(shiftDecimal(value * mantissa, exponent + exponent10).toPrecision(15));
  } else {
    if (typeof raw === 'number' && !Number.isInteger(raw)) {
      throw new CodecError(`${label(point)}: raw ${raw} is not whole`);
    }
    const { mantissa, exponent } = point.scale === 1 ? { mantissa: 1, exponent: 0 } : decimalParts(point.scale);
    const product =
      typeof raw === 'number' && Number.isSafeInteger(raw * mantissa)
        ? raw * mantissa
        : Number(BigInt(raw) * BigInt(mantissa));
    result = shiftDecimal(product, exponent + exponent10);
  }
  return result === 0 ? 0 : result;
}

/** Registers -> engineering value (a string for text points); `sf` as in scaleValue. */
export function decodePoint(point: CodecPoint, words: ArrayLike<number>, sf?: number | null): DecodedValue {
  const raw = decodeRaw(point, words);
  if (typeof raw === 'string') return raw;
  return scaleValue(point, raw, sf);
}

/** How an unlisted sf register decodes: a SunSpec sunssf, big-endian, 0x8000 meaning not implemented. */
const PLAIN_SF: CodecPoint = {
  name: 'sf',
  type: 'sunssf',
  size: 1,
  wordOrder: 'big',
  byteOrder: 'big',
  scale: 1,
  notImplemented: [-0x8000],
  access: 'r',
};

/** Where each point of a block and its scale factor sit in the block's registers; computed once per block. */
interface BlockPlan {
  readonly offsets: Int32Array;
  /** Index into `sfSlots` of each point's scale factor, or -1 when the point is not scaled by a register. */
  readonly sfOf: Int32Array;
  readonly sfSlots: readonly { readonly offset: number; readonly point: CodecPoint }[];
}

const plans = new WeakMap<ReadBlock, BlockPlan>();

function planBlock(block: ReadBlock): BlockPlan {
  const known = plans.get(block);
  if (known !== undefined) return known;
  const offsetOf = (address: number, count: number, what: string): number => {
    const offset = address - block.start;
    if (offset < 0 || offset + count > block.count) {
      throw new CodecError(
        `${what} at ${address} lies outside the block ${block.start}..${block.start + block.count - 1}`,
      );
    }
    return offset;
  };
  const offsets = new Int32Array(block.points.length);
  const sfOf = new Int32Array(block.points.length).fill(-1);
  const sfSlots: { offset: number; point: CodecPoint }[] = [];
  const sfIndex = new Map<number, number>();
  block.points.forEach((placed, i) => {
    const { point } = placed;
    offsets[i] = offsetOf(placed.address, registerCount(point), `point ${placed.key}`);
    if (point.sf === undefined || TYPES[point.type].kind === 'string') return;
    const sfAddress = placed.sfAddress;
    if (sfAddress === undefined) throw new CodecError(`point ${placed.key} has sf ${point.sf} but no sfAddress`);
    let slot = sfIndex.get(sfAddress);
    if (slot === undefined) {
      const sfPoint =
        placed.sfPoint ?? block.points.find((p) => p.address === sfAddress && p.point.type === 'sunssf')?.point;
      slot = sfSlots.length;
      sfSlots.push({ offset: offsetOf(sfAddress, 1, `scale factor of ${placed.key}`), point: sfPoint ?? PLAIN_SF });
      sfIndex.set(sfAddress, slot);
    }
    sfOf[i] = slot;
  });
  const plan = { offsets, sfOf, sfSlots };
  plans.set(block, plan);
  return plan;
}

/**
 * Decodes every point of a planned block read, in the order of `block.points`: each value with its scale factor
 * from the same read. The placement is worked out once per block (the poller decodes the same blocks every cycle).
 */
export function decodeBlockValues(block: ReadBlock, words: ArrayLike<number>): DecodedValue[] {
  if (words.length < block.count) {
    throw new CodecError(
      `read of ${block.count} registers from ${block.start} (function ${block.function}) returned ${words.length}`,
    );
  }
  const { offsets, sfOf, sfSlots } = planBlock(block);
  const sfs = new Array<number | null>(sfSlots.length);
  for (let k = 0; k < sfSlots.length; k++) {
    const slot = sfSlots[k] as (typeof sfSlots)[number];
    const sfRaw = decodeAt(slot.point, words, slot.offset);
    sfs[k] = typeof sfRaw === 'number' ? sfRaw : null;
  }
  const points = block.points;
  const values = new Array<DecodedValue>(points.length);
  for (let i = 0; i < points.length; i++) {
    const point = (points[i] as ReadBlock['points'][number]).point;
    const raw = decodeAt(point, words, offsets[i] as number);
    if (typeof raw === 'string') values[i] = raw;
    else {
      const slot = sfOf[i] as number;
      values[i] = scaleValue(point, raw, slot < 0 ? undefined : (sfs[slot] as number | null));
    }
  }
  return values;
}

/**
 * Decodes every point of a planned block read (`words` as read, `words[0]` at `block.start`), each scaled by its
 * scale factor from the same read. Keys are the placed points' keys.
 */
export function decodeBlock(block: ReadBlock, words: ArrayLike<number>): Map<string, DecodedValue> {
  const values = decodeBlockValues(block, words);
  const result = new Map<string, DecodedValue>();
  block.points.forEach((placed, i) => {
    result.set(placed.key, values[i] as DecodedValue);
  });
  return result;
}

const F32_MAX = 3.4028234663852886e38;

/** Why the type cannot hold `raw`, or undefined if it can (strings are checked by length in encodeRaw). */
function rawProblem(point: CodecPoint, raw: number | bigint): string | undefined {
  const info = TYPES[point.type];
  if (info.kind === 'float') {
    const value = Number(raw);
    return info.registers === 2 && Number.isFinite(value) && Math.abs(value) > F32_MAX
      ? `beyond the float32 range ±${F32_MAX}`
      : undefined;
  }
  if (typeof raw === 'number' && !Number.isInteger(raw)) return `not a whole number (${point.type} holds integers)`;
  const [min, max] = integerRange(point.type);
  const big = BigInt(raw);
  return big < min || big > max ? `outside the ${point.type} range ${min}..${max}` : undefined;
}

/**
 * Raw value -> registers, the inverse of decodeRaw. `null` encodes the point's first not-implemented value (NaN for
 * floats, all zeros for strings). Throws CodecError for values the type cannot hold: out of range, not whole, text
 * too long.
 */
export function encodeRaw(point: CodecPoint, raw: RawValue | null): number[] {
  const info = TYPES[point.type];
  const count = registerCount(point);
  if (info.kind === 'pad') return new Array<number>(count).fill(0);
  if (raw === null) return encodeRaw(point, notImplementedRaw(point));
  const bytes = new Uint8Array(count * 2);
  const view = new DataView(bytes.buffer);
  if (info.kind === 'string') {
    if (typeof raw !== 'string') throw new CodecError(`${label(point)} holds text, got ${String(raw)}`);
    const encoded = new TextEncoder().encode(raw);
    if (encoded.length > bytes.length) {
      throw new CodecError(
        `${label(point)}: "${raw}" is ${encoded.length} bytes, the point holds ${bytes.length} (${count} registers)`,
      );
    }
    bytes.set(encoded);
    return wordsFromBytes(point, bytes);
  }
  if (typeof raw === 'string') throw new CodecError(`${label(point)} holds a number, got text "${raw}"`);
  const problem = rawProblem(point, raw);
  if (problem !== undefined) throw new CodecError(`${label(point)}: ${raw} is ${problem}`);
  if (info.kind === 'float') {
    if (info.registers === 2) view.setFloat32(0, Number(raw));
    else view.setFloat64(0, Number(raw));
    return wordsFromBytes(point, bytes);
  }
  const big = BigInt(raw);
  if (info.registers === 1) view.setUint16(0, Number(BigInt.asUintN(16, big)));
  else if (info.registers === 2) view.setUint32(0, Number(BigInt.asUintN(32, big)));
  else view.setBigUint64(0, BigInt.asUintN(64, big));
  return wordsFromBytes(point, bytes);
}

function notImplementedRaw(point: CodecPoint): RawValue {
  const kind = TYPES[point.type].kind;
  if (kind === 'float') return Number.NaN;
  if (kind === 'string') return '';
  const first = point.notImplemented[0];
  if (first === undefined) throw new CodecError(`${label(point)} has no not-implemented value to encode`);
  return first;
}

/**
 * Engineering value -> registers: divides by scale and 10^sf and rounds to a whole number for integer types.
 * Throws CodecError when the result does not fit the type (the message gives the raw value and the scaling).
 * Strings and null pass through to encodeRaw. Range and access are checkWritable's business, not this function's.
 */
export function encodeValue(point: CodecPoint, value: number | string | null, sf?: number | null): number[] {
  if (value === null || typeof value === 'string') return encodeRaw(point, value);
  const exponent10 = checkSf(point, sf);
  const unit = point.unit ? ` ${point.unit}` : '';
  if (exponent10 === null) {
    throw new CodecError(
      `${label(point)}: cannot write ${value}${unit} while scale factor ${point.sf} is not implemented`,
    );
  }
  if (!Number.isFinite(value) && TYPES[point.type].kind !== 'float') {
    throw new CodecError(`${label(point)}: ${value} is not a finite number`);
  }
  const { mantissa, exponent } = point.scale === 1 ? { mantissa: 1, exponent: 0 } : decimalParts(point.scale);
  let raw = shiftDecimal(value, -(exponent + exponent10)) / mantissa;
  if (isIntegerType(point.type)) raw = Math.round(raw) || 0;
  const problem = rawProblem(point, raw);
  if (problem !== undefined) {
    const scaling = [point.scale === 1 ? '' : `scale ${point.scale}`, point.sf ? `${point.sf} = ${exponent10}` : '']
      .filter((part) => part !== '')
      .join(', ');
    throw new CodecError(`${label(point)}: ${value}${unit} is raw ${raw}${scaling ? ` (${scaling})` : ''}, ${problem}`);
  }
  return encodeRaw(point, raw);
}

/** Throws CodecError unless the point may be written and `value` (engineering units) is inside its range. */
export function checkWritable(point: CodecPoint & Pick<PointDef, 'unit'>, value: number): void {
  const unit = point.unit ? ` ${point.unit}` : '';
  if (point.access !== 'rw') throw new CodecError(`${label(point)} is read-only; it cannot be set to ${value}${unit}`);
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new CodecError(`${label(point)}: ${String(value)} is not a finite number`);
  }
  const range = point.range;
  if (range === undefined) throw new CodecError(`${label(point)} has no write range; its profile must give one`);
  if (value < range.min || value > range.max) {
    throw new CodecError(`${label(point)}: ${value}${unit} is outside its range ${range.min}..${range.max}${unit}`);
  }
}
