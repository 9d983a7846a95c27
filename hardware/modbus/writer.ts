/**
 * Setpoint writes the way field experience says they must be done: only inside the profile's range, scale factor
 * read in the same breath (a device's SF can change with firmware), the value read back and compared, and for
 * controls with a revert timer the timeout written first so the device never holds a stale limit forever.
 */
import { CodecError, checkWritable, decodePoint, encodeValue } from '../codec.js';
import type { DecodedValue, PointDef } from '../profile/types.js';
import { type ModbusBus, ModbusError, type PlacedPoint } from './types.js';

export interface SetpointControl {
  /** The point to set. */
  readonly point: PlacedPoint;
  /** Its revert-timeout point (seconds), when the device forgets the setpoint after a while. */
  readonly revertTimeout?: PlacedPoint;
  /** Its enable point, set to 1 after the value. */
  readonly enable?: PlacedPoint;
}

export interface WriteOutcome {
  /** True when the value read back equals what was written. */
  readonly ok: boolean;
  /** The value as requested, in the point's unit. */
  readonly requested: number;
  /** The registers written for the value. */
  readonly words: readonly number[];
  /** The value the device reports after the write, null when not implemented. */
  readonly readBack: DecodedValue;
  /** Why ok is false, in words for the log and the ledger. */
  readonly problem?: string;
}

/**
 * Finds the placed points of a control: its revert-timeout and enable points by the names the profile declares.
 * Throws when the profile names a point that is not placed (the profile and the placement disagree).
 */
export function controlFor(point: PlacedPoint, placed: readonly PlacedPoint[]): SetpointControl {
  const find = (name: string | undefined): PlacedPoint | undefined => {
    if (name === undefined) return undefined;
    const found = placed.find((p) => p.profileId === point.profileId && p.point.name === name);
    if (found === undefined) throw new Error(`point ${point.key}: its profile names ${name}, which is not placed`);
    return found;
  };
  const revertTimeout = find(point.point.revertTimeout);
  const enable = find(point.point.enable);
  return { point, ...(revertTimeout ? { revertTimeout } : {}), ...(enable ? { enable } : {}) };
}

async function readScaleFactor(bus: ModbusBus, unit: number, placed: PlacedPoint): Promise<number | null | undefined> {
  if (placed.sfAddress === undefined || placed.sfPoint === undefined) return undefined;
  const words = await bus.read(unit, placed.sfPoint.function, placed.sfAddress, 1);
  const sf = decodePoint(placed.sfPoint, words);
  return typeof sf === 'number' ? sf : null;
}

async function writeValue(bus: ModbusBus, unit: number, placed: PlacedPoint, value: number): Promise<number[]> {
  const sf = await readScaleFactor(bus, unit, placed);
  const words = encodeValue(placed.point, value, sf);
  await bus.write(unit, placed.address, words);
  return words;
}

function sameWords(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

/**
 * Writes `value` (in the point's unit) to a device and reads it back. With a revert timer, `revertSeconds` is
 * written first, then the value, then the enable flag. Rejects with a ModbusError kind 'refused' (nothing sent)
 * for a value outside the range or a read-only point; resolves with ok false when the device took the write but
 * reports something else.
 */
export async function writeSetpoint(
  bus: ModbusBus,
  unit: number,
  control: SetpointControl,
  value: number,
  options: { revertSeconds?: number } = {},
): Promise<WriteOutcome> {
  const { point } = control;
  try {
    checkWritable(point.point, value);
  } catch (error) {
    if (error instanceof CodecError) {
      throw new ModbusError('refused', `bus "${bus.name}" unit ${unit}: ${error.message}`, { bus: bus.name, unit });
    }
    throw error;
  }
  // A read-only revert point (Alfen's MaxCurrentValidTime counts down by itself) only tells how long the value
  // holds; writing it would be refused with exception 2 and lose the setpoint.
  if (
    control.revertTimeout !== undefined &&
    control.revertTimeout.point.access === 'rw' &&
    options.revertSeconds !== undefined
  ) {
    await writeValue(bus, unit, control.revertTimeout, options.revertSeconds);
  }
  let words: number[];
  try {
    words = await writeValue(bus, unit, point, value);
  } catch (error) {
    if (error instanceof CodecError) {
      throw new ModbusError('refused', `bus "${bus.name}" unit ${unit}: ${error.message}`, { bus: bus.name, unit });
    }
    throw error;
  }
  if (control.enable !== undefined) await writeValue(bus, unit, control.enable, 1);
  const back = await bus.read(unit, point.point.function, point.address, words.length);
  const sf = await readScaleFactor(bus, unit, point);
  const readBack = decodePoint(point.point, back, sf);
  if (sameWords(back, words)) return { ok: true, requested: value, words, readBack };
  return {
    ok: false,
    requested: value,
    words,
    readBack,
    problem: `bus "${bus.name}" unit ${unit}: wrote ${describe(point.point, value)} to ${point.key} at ${
      point.address
    } but the device reports ${readBack === null ? 'no value' : describe(point.point, readBack)}`,
  };
}

function describe(point: PointDef, value: DecodedValue): string {
  return `${String(value)}${point.unit ? ` ${point.unit}` : ''}`;
}
