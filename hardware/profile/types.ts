/**
 * Device profiles: a device's register map as data. One YAML file per profile under hardware/profiles/; the same
 * profile drives the agent's reads and writes and the simulator's register banks, so the two cannot disagree.
 * The file format is documented in hardware/README.md and checked by hardware/profile/schema.ts.
 */

/** What a device is. `common` is for fragments (SunSpec model 1) that describe any device. */
export const DEVICE_CLASSES = ['meter', 'pv-inverter', 'battery', 'ev-charger', 'building-load', 'common'] as const;
export type DeviceClass = (typeof DEVICE_CLASSES)[number];

/**
 * Register types. The first nine are the general ones; the rest are SunSpec names with SunSpec semantics
 * (sunssf: signed power-of-ten exponent; enum16/bitfield: unsigned; acc16/acc64: accumulators; pad: skipped).
 */
export const POINT_TYPES = [
  'u16',
  's16',
  'u32',
  's32',
  'u64',
  'acc32',
  'f32',
  'f64',
  'string',
  'sunssf',
  'enum16',
  'bitfield16',
  'bitfield32',
  'acc16',
  'acc64',
  's64',
  'pad',
] as const;
export type PointType = (typeof POINT_TYPES)[number];

/** big: high word first (the Modbus and SunSpec convention); little: low word first ("word swap"). */
export type WordOrder = 'big' | 'little';
/** Byte order inside each 16-bit register; big is the Modbus convention, little is "byte swap". */
export type ByteOrder = 'big' | 'little';
/** 3 = holding registers, 4 = input registers. */
export type ReadFunction = 3 | 4;

export interface WriteRange {
  /** Lowest value a write may set, in the point's unit (after scaling). */
  readonly min: number;
  /** Highest value a write may set, in the point's unit (after scaling). */
  readonly max: number;
}

export interface PointDef {
  readonly name: string;
  /**
   * Register address. For `addressing: absolute` profiles, the protocol address (0-based, as on the wire).
   * For `addressing: sunspec-model` profiles, the offset from the model's ID register (ID is 0, L is 1, the first
   * point is 2), as in the SunSpec model JSON files.
   */
  readonly address: number;
  readonly type: PointType;
  /** Registers occupied; required for `string` and `pad`, derived from the type otherwise. */
  readonly size: number;
  readonly function: ReadFunction;
  readonly wordOrder: WordOrder;
  readonly byteOrder: ByteOrder;
  /** Fixed multiplier applied to the raw value (e.g. 0.1 when the register counts 0.1 V). Default 1. */
  readonly scale: number;
  /** Name of a `sunssf` point of the same profile: engineering value = raw * scale * 10^sf. */
  readonly sf?: string;
  /** Engineering unit after scaling (W, Wh, V, A, Hz, var, VA, %, s, C, ...); absent for unitless points. */
  readonly unit?: string;
  /**
   * Raw values that mean "not implemented" and decode to null, never to a number. Defaults: in SunSpec profiles the
   * SunSpec sentinels of the type (0xFFFF u16, 0x8000 s16/sunssf, 0xFFFFFFFF u32, 0x80000000 s32, 0 acc, NaN f32,
   * all-zero string); in other profiles none (NaN floats always decode to null). For 64-bit types an entry may be a
   * bigint (0xFFFFFFFFFFFFFFFF is not a JS number); for strings only 0 is meaningful: every register zero.
   */
  readonly notImplemented: readonly (number | bigint)[];
  /** 'rw' points can be written, only within `range`. */
  readonly access: 'r' | 'rw';
  readonly range?: WriteRange;
  /**
   * For setpoints the device forgets after a timeout (SunSpec 123 WMaxLimPct with WMaxLimPct_RvrtTms): the point
   * holding the revert timeout in seconds. The writer re-sends the setpoint before it expires.
   */
  readonly revertTimeout?: string;
  /** Point to set to 1 to enable this control (SunSpec 123 WMaxLim_Ena), written after the value. */
  readonly enable?: string;
  readonly description?: string;
}

export interface Profile {
  /** Lower-case id, equal to the file name without .yaml: sunspec-103, eastron-sdm630. */
  readonly id: string;
  readonly name: string;
  readonly class: DeviceClass;
  /** Where the register map comes from: document, version, URL. Required: a map nobody can trace is not shipped. */
  readonly source: string;
  readonly addressing: 'absolute' | 'sunspec-model';
  /** For SunSpec model profiles: the model id and its fixed length L (registers after ID and L). */
  readonly sunspec?: { readonly model: number; readonly length: number };
  /** Byte order of the transport a device is usually on; informative. */
  readonly transport?: 'tcp' | 'rtu' | 'any';
  /** Addresses no read may span: a read containing address a-1 never contains a (a device would fail it). */
  readonly barriers: readonly number[];
  readonly points: readonly PointDef[];
  /** Absolute path of the YAML file it was loaded from, for error messages. */
  readonly file?: string;
}

/** A decoded value: a number in the point's unit, a string, or null when the device reports "not implemented". */
export type DecodedValue = number | string | null;
