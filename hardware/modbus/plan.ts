/**
 * Read planning: which requests read a device's points in as few round trips as the device allows. On a 9600-baud
 * line a request costs ~30 ms of turnaround before any data, so fewer, larger reads win; but a read must not run
 * into registers the device refuses (gaps, barriers), and a value must arrive in the same response as its scale
 * factor, or a change of scale between two reads would corrupt the value by a power of ten.
 */
import { registerCount } from '../codec.js';
import type { ReadFunction } from '../profile/types.js';
import type { PlacedPoint, ReadBlock } from './types.js';

/** A set of points that cannot be read under the given limits; the message names the points. */
export class PlanError extends Error {
  override name = 'PlanError';
}

/** Options of planReads. */
export interface PlanOptions {
  /** Largest read, in registers; Modbus allows 125 for functions 3 and 4 (some devices fewer). Default 125. */
  readonly maxRegisters?: number;
  /** Unlisted registers a read may run through between points (0 = only contiguous points share a read). */
  readonly maxGap?: number;
  /** Absolute addresses no read may span: no block holds both a-1 and a. */
  readonly barriers?: readonly number[];
}

/** A stretch of registers that must be read in one request: one point, or points tied to one scale factor. */
interface Atom {
  start: number;
  end: number;
  points: PlacedPoint[];
}

/** Plain code-unit order: the same plan on every machine, whatever its locale. */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function describe(point: PlacedPoint): string {
  const count = registerCount(point.point);
  const registers =
    count > 1 ? `registers ${point.address}..${point.address + count - 1}` : `register ${point.address}`;
  return `${point.key} (${point.profileId}, ${registers})`;
}

function checkOptions(options: PlanOptions): { maxRegisters: number; maxGap: number; barriers: number[] } {
  const maxRegisters = options.maxRegisters ?? 125;
  const maxGap = options.maxGap ?? 0;
  if (!Number.isInteger(maxRegisters) || maxRegisters < 1 || maxRegisters > 125) {
    throw new PlanError(`maxRegisters must be a whole number 1..125 (the Modbus limit), got ${maxRegisters}`);
  }
  if (!Number.isInteger(maxGap) || maxGap < 0) throw new PlanError(`maxGap must be a whole number >= 0, got ${maxGap}`);
  const barriers = [...new Set(options.barriers ?? [])].sort((a, b) => a - b);
  return { maxRegisters, maxGap, barriers };
}

/** The first barrier strictly inside [start, end): a read of that range would hold both b-1 and b. */
function barrierInside(barriers: readonly number[], start: number, end: number): number | undefined {
  return barriers.find((b) => b > start && b < end);
}

/**
 * Groups points into read requests: per function code, sorted by address, each block at most `maxRegisters` long,
 * running through at most `maxGap` unlisted registers between points and never across a barrier. A point and its
 * scale-factor register always share a block, and so do all points sharing one scale factor (the SunSpec A_SF of
 * A, AphA, AphB, AphC), even when that means reading through a longer gap. Blocks are as few as these rules allow
 * (greedy packing of the address-ordered groups is optimal for that) and the output depends only on the input set.
 * Throws PlanError when a point, or a point with its scale factor, cannot fit one request.
 */
export function planReads(points: readonly PlacedPoint[], options: PlanOptions = {}): ReadBlock[] {
  const { maxRegisters, maxGap, barriers } = checkOptions(options);
  const sorted = [...points].sort(
    (a, b) => a.point.function - b.point.function || a.address - b.address || byCodeUnits(a.key, b.key),
  );
  const keys = new Map<string, PlacedPoint>();
  for (const placed of sorted) {
    const other = keys.get(placed.key);
    if (other !== undefined) {
      throw new PlanError(`two points have the key ${placed.key}: ${describe(other)}, ${describe(placed)}`);
    }
    keys.set(placed.key, placed);
  }

  const blocks: ReadBlock[] = [];
  for (const fn of [3, 4] as const) {
    const ofFunction = sorted.filter((placed) => placed.point.function === fn);
    if (ofFunction.length === 0) continue;
    blocks.push(...packAtoms(fn, atomsOf(ofFunction, maxRegisters, barriers), maxRegisters, maxGap, barriers));
  }
  return blocks;
}

function atomsOf(points: readonly PlacedPoint[], maxRegisters: number, barriers: readonly number[]): Atom[] {
  const bySf = new Map<number, Atom>();
  const atoms: Atom[] = [];
  for (const placed of points) {
    const count = registerCount(placed.point);
    const start = placed.address;
    const end = start + count;
    if (!Number.isInteger(start) || start < 0 || end > 65536) {
      throw new PlanError(`point ${describe(placed)} is outside the register space 0..65535`);
    }
    if (count > maxRegisters) {
      throw new PlanError(`point ${describe(placed)} is ${count} registers, more than one read of ${maxRegisters}`);
    }
    const barrier = barrierInside(barriers, start, end);
    if (barrier !== undefined) {
      throw new PlanError(`point ${describe(placed)} straddles the read barrier at ${barrier}`);
    }
    const sf = placed.sfAddress;
    if (sf === undefined) {
      atoms.push({ start, end, points: [placed] });
      continue;
    }
    if (placed.sfPoint !== undefined && placed.sfPoint.function !== placed.point.function) {
      throw new PlanError(
        `point ${describe(placed)} is read with function ${placed.point.function}, its scale factor ${placed.point.sf} ` +
          `with ${placed.sfPoint.function}; they cannot share a read`,
      );
    }
    // Every point tied to one sf register contains it, so their union is one interval.
    const atom = bySf.get(sf);
    if (atom === undefined) {
      const tied: Atom = { start: Math.min(start, sf), end: Math.max(end, sf + 1), points: [placed] };
      bySf.set(sf, tied);
      atoms.push(tied);
    } else {
      atom.start = Math.min(atom.start, start);
      atom.end = Math.max(atom.end, end);
      atom.points.push(placed);
    }
  }
  for (const atom of bySf.values()) {
    const sfAddress = atom.points[0]?.sfAddress as number;
    const sfName = atom.points[0]?.point.sf ?? 'sf';
    const span = atom.end - atom.start;
    const farthest = [...atom.points].sort((a, b) => Math.abs(b.address - sfAddress) - Math.abs(a.address - sfAddress));
    const named = farthest.slice(0, 2).map(describe).join(' and ');
    if (span > maxRegisters) {
      throw new PlanError(
        `${named} and ${atom.points.length > 1 ? 'their' : 'its'} scale factor ${sfName} at ${sfAddress} need a read ` +
          `of ${span} registers (${atom.start}..${atom.end - 1}), more than ${maxRegisters}; a value must be read with ` +
          'its scale factor',
      );
    }
    const barrier = barrierInside(barriers, atom.start, atom.end);
    if (barrier !== undefined) {
      throw new PlanError(
        `${named} and the scale factor ${sfName} at ${sfAddress} lie on both sides of the read barrier at ${barrier}`,
      );
    }
  }
  return mergeOverlapping(atoms, maxRegisters, barriers);
}

/** Atoms that share registers (overlapping points, interleaved sf groups) must be read together. */
function mergeOverlapping(atoms: Atom[], maxRegisters: number, barriers: readonly number[]): Atom[] {
  atoms.sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: Atom[] = [];
  for (const atom of atoms) {
    const last = merged.at(-1);
    if (last !== undefined && atom.start < last.end) {
      last.end = Math.max(last.end, atom.end);
      last.points.push(...atom.points);
    } else {
      merged.push({ start: atom.start, end: atom.end, points: [...atom.points] });
    }
  }
  for (const atom of merged) {
    const barrier = barrierInside(barriers, atom.start, atom.end);
    if (atom.end - atom.start <= maxRegisters && barrier === undefined) continue;
    const names = atom.points.map(describe).join(', ');
    throw new PlanError(
      `${names} overlap or share scale factors, so they must be read together as registers ${atom.start}..` +
        `${atom.end - 1}, which ${barrier === undefined ? `is more than ${maxRegisters} registers` : `crosses the barrier at ${barrier}`}`,
    );
  }
  return merged;
}

function packAtoms(
  fn: ReadFunction,
  atoms: readonly Atom[],
  maxRegisters: number,
  maxGap: number,
  barriers: readonly number[],
): ReadBlock[] {
  const blocks: ReadBlock[] = [];
  let current: Atom | undefined;
  const close = (atom: Atom): void => {
    const points = [...atom.points].sort((a, b) => a.address - b.address || byCodeUnits(a.key, b.key));
    blocks.push({ function: fn, start: atom.start, count: atom.end - atom.start, points });
  };
  for (const atom of atoms) {
    if (
      current !== undefined &&
      atom.start - current.end <= maxGap &&
      atom.end - current.start <= maxRegisters &&
      barrierInside(barriers, current.start, atom.end) === undefined
    ) {
      current.end = atom.end;
      current.points.push(...atom.points);
      continue;
    }
    if (current !== undefined) close(current);
    current = { start: atom.start, end: atom.end, points: [...atom.points] };
  }
  if (current !== undefined) close(current);
  return blocks;
}

/** What a plan costs on the wire. */
export interface PlanStats {
  /** Requests per poll. */
  readonly requests: number;
  /** Registers transferred per poll. */
  readonly registersRead: number;
  /** Registers holding a point or a scale factor that is used. */
  readonly registersUsed: number;
  /** Registers read only to bridge gaps (registersRead - registersUsed). */
  readonly registersWasted: number;
}

/** Counts requests and registers of a plan, for logs, `mgmc devices` and the planner benchmark. */
export function planStats(blocks: readonly ReadBlock[]): PlanStats {
  let registersRead = 0;
  let registersUsed = 0;
  for (const block of blocks) {
    registersRead += block.count;
    const used = new Set<number>();
    for (const placed of block.points) {
      const count = registerCount(placed.point);
      for (let i = 0; i < count; i++) used.add(placed.address + i);
      if (placed.sfAddress !== undefined) used.add(placed.sfAddress);
    }
    registersUsed += [...used].filter(
      (address) => address >= block.start && address < block.start + block.count,
    ).length;
  }
  return { requests: blocks.length, registersRead, registersUsed, registersWasted: registersRead - registersUsed };
}
