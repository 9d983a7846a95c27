/**
 * Bank-level faults: what a broken device does with its own registers, as opposed to what happens on the wire
 * (sim/modbus/faults.ts). Each fault is a RegisterBank wrapper concern, scripted in time against an injected clock
 * (for a simulated site, the site's simulated clock), so the servers and the device's physics stay unaware of them.
 *
 * - 'stuck': a register range (a point) keeps the value it had at `from`, while the physics move on: a frozen
 *   sensor or a firmware that stopped updating its Modbus map. Writes still reach the device.
 * - 'missing-end-marker': the 0xFFFF end model after the last SunSpec model reads as "illegal data address", as on
 *   devices whose chain simply stops; discovery must stop there too.
 * - 'exception-range': reads (and, unless switched off, writes) touching a register range answer a Modbus
 *   exception, e.g. a block the device refuses while it is busy.
 */
import type { HardwareClock, TimerHandle } from '../../hardware/clock.js';
import type { BankWrapper, RegisterBank } from '../modbus/bank.js';

interface BankFaultWhen {
  /** Active from this clock time, ms since the epoch (inclusive); default always. */
  readonly from?: number;
  /** Active until this clock time (exclusive); default forever. */
  readonly until?: number;
}

/** One scripted bank fault. */
export type BankFault = BankFaultWhen &
  (
    | {
        readonly kind: 'stuck';
        /** Table: 3 holding (default), 4 input. */
        readonly fn?: 3 | 4;
        readonly start: number;
        /** Registers; default 1. */
        readonly count?: number;
      }
    | {
        readonly kind: 'missing-end-marker';
        /** Address of the end model's ID register (0xFFFF); its L register at address + 1 goes with it. */
        readonly address: number;
      }
    | {
        readonly kind: 'exception-range';
        /** Only this table; default both (and writes). */
        readonly fn?: 3 | 4;
        /** First and last register (inclusive). */
        readonly start: number;
        readonly end: number;
        /** Exception code; default 2 (illegal data address). */
        readonly code?: number;
        /** Refuse writes touching the range too. Default true. */
        readonly writes?: boolean;
      }
  );

/** 'stuck' | 'missing-end-marker' | 'exception-range'. */
export type BankFaultKind = BankFault['kind'];

interface Entry {
  readonly fault: BankFault;
  /** For 'stuck': the registers frozen at `from` (or the exception the bank gave then). */
  frozen?: number[] | { exception: number };
  timer?: TimerHandle;
}

/** A register bank with bank-level faults in front of it; faults can be added and cleared while it is served. */
export class FaultyBank implements RegisterBank {
  private entries: Entry[] = [];

  constructor(
    readonly inner: RegisterBank,
    private readonly clock: HardwareClock,
    faults: readonly BankFault[] = [],
  ) {
    for (const fault of faults) this.add(fault);
  }

  /**
   * Adds a fault. A 'stuck' fault captures the registers at `from` (now, if `from` has passed): by a timer on the
   * clock, or by poll() or the first read once the clock is past `from`, whichever comes first (a simulated clock
   * can jump ahead of its timers).
   */
  add(fault: BankFault): void {
    checkFault(fault);
    const entry: Entry = { fault };
    this.entries.push(entry);
    if (fault.kind !== 'stuck') return;
    const wait = (fault.from ?? Number.NEGATIVE_INFINITY) - this.clock.now();
    if (wait <= 0) this.capture(entry);
    else entry.timer = this.clock.setTimeout(() => this.capture(entry), wait);
  }

  /** Captures the stuck values whose `from` has come; call it after the device's registers were updated. */
  poll(): void {
    const now = this.clock.now();
    for (const entry of this.entries) {
      if (entry.fault.kind === 'stuck' && (entry.fault.from ?? Number.NEGATIVE_INFINITY) <= now) this.capture(entry);
    }
  }

  private capture(entry: Entry): void {
    const { fault } = entry;
    if (entry.frozen !== undefined || fault.kind !== 'stuck') return;
    entry.timer?.cancel();
    entry.frozen = this.inner.read(fault.fn ?? 3, fault.start, fault.count ?? 1);
  }

  /** Removes every fault and cancels pending captures. */
  clear(): void {
    for (const entry of this.entries) entry.timer?.cancel();
    this.entries = [];
  }

  /** The faults scripted, in the order added. */
  list(): BankFault[] {
    return this.entries.map((e) => e.fault);
  }

  read(fn: 3 | 4, start: number, count: number): number[] | { exception: number } {
    const active = this.active();
    const last = start + count - 1;
    for (const { fault } of active) {
      if (fault.kind === 'missing-end-marker') {
        if (fn === 3 && overlaps(start, last, fault.address, fault.address + 1)) return { exception: 2 };
      } else if (fault.kind === 'exception-range') {
        if ((fault.fn === undefined || fault.fn === fn) && overlaps(start, last, fault.start, fault.end)) {
          return { exception: fault.code ?? 2 };
        }
      }
    }
    for (const entry of active) this.capture(entry);
    const answer = this.inner.read(fn, start, count);
    if (!Array.isArray(answer)) return answer;
    const out = [...answer];
    for (const entry of active) {
      const { fault, frozen } = entry;
      if (fault.kind !== 'stuck' || frozen === undefined || (fault.fn ?? 3) !== fn) continue;
      const stuckLast = fault.start + (fault.count ?? 1) - 1;
      if (!overlaps(start, last, fault.start, stuckLast)) continue;
      // The registers were unreadable when they froze: they stay unreadable.
      if (!Array.isArray(frozen)) return frozen;
      for (let address = Math.max(start, fault.start); address <= Math.min(last, stuckLast); address++) {
        out[address - start] = frozen[address - fault.start] as number;
      }
    }
    return out;
  }

  write(start: number, values: number[]): { exception: number } | undefined {
    const last = start + values.length - 1;
    for (const { fault } of this.active()) {
      if (fault.kind !== 'exception-range' || fault.writes === false || fault.fn === 4) continue;
      if (overlaps(start, last, fault.start, fault.end)) return { exception: fault.code ?? 2 };
    }
    return this.inner.write(start, values);
  }

  private active(): Entry[] {
    const now = this.clock.now();
    return this.entries.filter(
      ({ fault }) =>
        (fault.from === undefined || now >= fault.from) && (fault.until === undefined || now < fault.until),
    );
  }
}

/** A BankWrapper applying `faults` (more can be added through the FaultyBank it returns). */
export function withBankFaults(faults: readonly BankFault[], clock: HardwareClock): BankWrapper {
  return (bank) => new FaultyBank(bank, clock, faults);
}

function overlaps(aFirst: number, aLast: number, bFirst: number, bLast: number): boolean {
  return aFirst <= bLast && bFirst <= aLast;
}

const isAddress = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff;

function checkFault(fault: BankFault): void {
  const what = `bank fault ${fault.kind}`;
  if (fault.from !== undefined && fault.until !== undefined && !(fault.until > fault.from)) {
    throw new RangeError(`${what}: until (${fault.until}) must be after from (${fault.from})`);
  }
  switch (fault.kind) {
    case 'stuck': {
      const count = fault.count ?? 1;
      if (!isAddress(fault.start) || !(Number.isInteger(count) && count >= 1 && fault.start + count <= 0x10000)) {
        throw new RangeError(`${what}: start ${fault.start} and count ${count} must name registers 0-65535`);
      }
      return;
    }
    case 'missing-end-marker':
      if (!isAddress(fault.address)) throw new RangeError(`${what}: address ${fault.address} is not a register`);
      return;
    case 'exception-range': {
      if (!isAddress(fault.start) || !isAddress(fault.end) || fault.end < fault.start) {
        throw new RangeError(`${what}: start ${fault.start} and end ${fault.end} must be registers with start <= end`);
      }
      const code = fault.code ?? 2;
      if (!(Number.isInteger(code) && code >= 1 && code <= 255)) {
        throw new RangeError(`${what}: code must be an exception code 1-255, got ${code}`);
      }
      return;
    }
  }
}
