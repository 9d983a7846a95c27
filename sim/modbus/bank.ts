/**
 * Register banks: what a simulated device exposes to its Modbus server. The servers only call read() and write();
 * device physics update values with set(). Bank-level faults (stuck values, a missing SunSpec end marker) are written
 * as RegisterBank wrappers around another bank, so the servers and their fault plans stay unaware of them.
 */

/** The registers of one simulated unit. */
export interface RegisterBank {
  /** Reads `count` registers of table `fn` (3 holding, 4 input) from `start`, or names the exception to answer. */
  read(fn: 3 | 4, start: number, count: number): number[] | { exception: number };
  /** Writes holding registers from `start`; returns the exception to answer, or undefined when accepted. */
  write(start: number, values: number[]): { exception: number } | undefined;
}

/**
 * The hook for bank-level faults and behaviours (stuck values, a SunSpec chain without end marker, values that
 * drift): a function that wraps a bank in another bank. The servers never know the difference.
 */
export type BankWrapper = (bank: RegisterBank) => RegisterBank;

/** A run of registers at `start`. */
export interface RegisterRange {
  readonly start: number;
  readonly values: readonly number[];
  /** Writes accepted over this whole range (holding registers only). Default false. */
  readonly writable?: boolean;
}

/** The ranges of an ArrayRegisterBank and its write hook. */
export interface ArrayRegisterBankOptions {
  /** Holding registers (FC 3, 6, 16). Ranges must not overlap. */
  readonly holding?: readonly RegisterRange[];
  /** Input registers (FC 4). */
  readonly input?: readonly RegisterRange[];
  /**
   * Called after an accepted write with the new values; may return an exception code to refuse it instead (the
   * write is then rolled back), e.g. 3 for a setpoint out of range.
   */
  readonly onWrite?: (start: number, values: readonly number[]) => number | undefined;
}

interface Block {
  readonly start: number;
  readonly values: Uint16Array;
  readonly writable: boolean;
}

/**
 * A bank of plain arrays. Reading or writing any address outside the declared ranges answers exception 2 (illegal
 * data address), as does writing a read-only range; values outside 0-65535 answer exception 3. A request may span
 * adjacent ranges.
 */
export class ArrayRegisterBank implements RegisterBank {
  private readonly holding: Block[];
  private readonly input: Block[];
  private readonly onWrite: ArrayRegisterBankOptions['onWrite'];

  constructor(options: ArrayRegisterBankOptions = {}) {
    this.holding = toBlocks(options.holding ?? [], 'holding');
    this.input = toBlocks(options.input ?? [], 'input');
    this.onWrite = options.onWrite;
  }

  /** The registers as the simulator's physics see them; throws for unmapped addresses (a bug in the simulator). */
  get(fn: 3 | 4, start: number, count: number): number[] {
    const out = this.read(fn, start, count);
    if (!Array.isArray(out)) throw new RangeError(`${table(fn)} registers ${start}+${count} are not all mapped`);
    return out;
  }

  /** Sets registers regardless of writability (device-side update); throws for unmapped addresses. */
  set(fn: 3 | 4, start: number, values: readonly number[]): void {
    const blocks = fn === 3 ? this.holding : this.input;
    for (let i = 0; i < values.length; i++) {
      const at = locate(blocks, start + i);
      if (!at) throw new RangeError(`${table(fn)} register ${start + i} is not mapped`);
      at.block.values[at.offset] = values[i]! & 0xffff;
    }
  }

  read(fn: 3 | 4, start: number, count: number): number[] | { exception: number } {
    const blocks = fn === 3 ? this.holding : fn === 4 ? this.input : undefined;
    if (!blocks) return { exception: 1 };
    const out: number[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const at = locate(blocks, start + i);
      if (!at) return { exception: 2 };
      out[i] = at.block.values[at.offset]!;
    }
    return out;
  }

  write(start: number, values: number[]): { exception: number } | undefined {
    const places: Array<{ block: Block; offset: number }> = [];
    for (let i = 0; i < values.length; i++) {
      const at = locate(this.holding, start + i);
      if (!at?.block.writable) return { exception: 2 };
      const v = values[i]!;
      if (!(Number.isInteger(v) && v >= 0 && v <= 0xffff)) return { exception: 3 };
      places.push(at);
    }
    const before = places.map((p) => p.block.values[p.offset]!);
    places.forEach((p, i) => {
      p.block.values[p.offset] = values[i]!;
    });
    const refused = this.onWrite?.(start, values);
    if (refused !== undefined) {
      places.forEach((p, i) => {
        p.block.values[p.offset] = before[i]!;
      });
      return { exception: refused };
    }
    return undefined;
  }
}

const table = (fn: 3 | 4) => (fn === 3 ? 'holding' : 'input');

function toBlocks(ranges: readonly RegisterRange[], name: string): Block[] {
  const blocks = ranges
    .map((r) => ({ start: r.start, values: Uint16Array.from(r.values), writable: r.writable ?? false }))
    .sort((a, b) => a.start - b.start);
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i]!;
    if (!(Number.isInteger(b.start) && b.start >= 0 && b.start + b.values.length <= 0x10000)) {
      throw new RangeError(`${name} range at ${b.start} (+${b.values.length}) lies outside 0-65535`);
    }
    const prev = blocks[i - 1];
    if (prev && prev.start + prev.values.length > b.start) {
      throw new RangeError(`${name} ranges at ${prev.start} and ${b.start} overlap`);
    }
  }
  return blocks;
}

function locate(blocks: readonly Block[], address: number): { block: Block; offset: number } | undefined {
  let lo = 0;
  let hi = blocks.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const b = blocks[mid]!;
    if (address < b.start) hi = mid - 1;
    else if (address >= b.start + b.values.length) lo = mid + 1;
    else return { block: b, offset: address - b.start };
  }
  return undefined;
}
