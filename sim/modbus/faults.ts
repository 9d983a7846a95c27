/**
 * Fault injection for the simulator's Modbus servers: per unit id, scripted in time against an injected clock.
 * Wire-level faults only (what happens to a request and its answer); bank-level faults such as stuck values or a
 * missing SunSpec end marker wrap the RegisterBank instead (see bank.ts).
 */
import { type HardwareClock, wallClock } from '../../hardware/clock.js';

interface FaultWhen {
  /** The unit the fault applies to; undefined: every unit of the server. */
  readonly unit?: number;
  /** Active from this clock time (ms since epoch, inclusive); default always. */
  readonly from?: number;
  /** Active until this clock time (exclusive); default forever. */
  readonly until?: number;
  /** Applies to at most this many matching requests, then is spent. Default unlimited. */
  readonly times?: number;
  /** Only requests with this function code (3, 4, 6, 16); default all. */
  readonly fn?: number;
}

/** One scripted fault. */
export type Fault = FaultWhen &
  (
    | { readonly kind: 'no-answer' }
    /** Answer after `delayMs` (real time: the answer is late on the wire). */
    | { readonly kind: 'slow'; readonly delayMs: number }
    /** Answer with exception `code`, for requests touching [start, end] (inclusive) when given. */
    | { readonly kind: 'exception'; readonly code: number; readonly start?: number; readonly end?: number }
    /** RTU: send the answer with its CRC inverted. No effect on Modbus TCP. */
    | { readonly kind: 'bad-crc' }
    /** TCP: destroy the connection instead of answering. On RTU: no answer. */
    | { readonly kind: 'disconnect' }
    /** Answer with another unit id (default unit + 1). */
    | { readonly kind: 'wrong-unit'; readonly answerAs?: number }
  );

/** 'no-answer' | 'slow' | 'exception' | 'bad-crc' | 'disconnect' | 'wrong-unit'. */
export type FaultKind = Fault['kind'];

/** What a server does with one request. */
export interface FaultDecision {
  /** Send nothing. */
  readonly drop: boolean;
  /** Close the connection (TCP). */
  readonly disconnect: boolean;
  /** Delay before answering, ms. */
  readonly delayMs: number;
  /** Answer this exception instead of executing the request. */
  readonly exception?: number;
  /** Invert the answer's CRC (RTU). */
  readonly badCrc: boolean;
  /** Answer with this unit id. */
  readonly answerAs?: number;
}

/** No fault. */
export const NO_FAULT: FaultDecision = { drop: false, disconnect: false, delayMs: 0, badCrc: false };

interface Entry {
  readonly fault: Fault;
  remaining: number;
}

/** A list of faults evaluated per request against the clock; tests and scenarios add and clear them at will. */
export class FaultPlan {
  private entries: Entry[] = [];

  constructor(
    faults: readonly Fault[] = [],
    private readonly clock: HardwareClock = wallClock(),
  ) {
    for (const f of faults) this.add(f);
  }

  /** Adds a fault. */
  add(fault: Fault): void {
    if (fault.kind === 'slow' && !(fault.delayMs >= 0)) throw new RangeError(`slow fault needs delayMs >= 0`);
    if (fault.kind === 'exception' && !(Number.isInteger(fault.code) && fault.code > 0 && fault.code < 256)) {
      throw new RangeError(`exception fault needs a code 1-255, got ${fault.code}`);
    }
    this.entries.push({ fault, remaining: fault.times ?? Number.POSITIVE_INFINITY });
  }

  /** Removes the faults of `unit` (those without a unit stay), or all faults when no unit is given. */
  clear(unit?: number): void {
    this.entries = unit === undefined ? [] : this.entries.filter((e) => e.fault.unit !== unit);
  }

  /** The faults currently scripted (spent ones included until cleared). */
  list(): Fault[] {
    return this.entries.map((e) => e.fault);
  }

  /**
   * Decides what happens to a request for `unit` touching registers [start, start + count) now. Several active faults
   * combine (e.g. slow and wrong-unit); `times` counts down for each fault that applied.
   */
  decide(unit: number, fn: number, start: number, count: number): FaultDecision {
    const now = this.clock.now();
    let drop = false;
    let disconnect = false;
    let delayMs = 0;
    let exception: number | undefined;
    let badCrc = false;
    let answerAs: number | undefined;
    for (const entry of this.entries) {
      const f = entry.fault;
      if (entry.remaining <= 0) continue;
      if (f.unit !== undefined && f.unit !== unit) continue;
      if (f.fn !== undefined && f.fn !== fn) continue;
      if (f.from !== undefined && now < f.from) continue;
      if (f.until !== undefined && now >= f.until) continue;
      switch (f.kind) {
        case 'no-answer':
          drop = true;
          break;
        case 'slow':
          delayMs = Math.max(delayMs, f.delayMs);
          break;
        case 'exception': {
          const lo = f.start ?? 0;
          const hi = f.end ?? 0xffff;
          if (start > hi || start + count - 1 < lo) continue;
          exception ??= f.code;
          break;
        }
        case 'bad-crc':
          badCrc = true;
          break;
        case 'disconnect':
          disconnect = true;
          break;
        case 'wrong-unit':
          answerAs = f.answerAs ?? (unit + 1) & 0xff;
          break;
      }
      entry.remaining -= 1;
    }
    if (!drop && !disconnect && delayMs === 0 && exception === undefined && !badCrc && answerAs === undefined) {
      return NO_FAULT;
    }
    return {
      drop,
      disconnect,
      delayMs,
      badCrc,
      ...(exception === undefined ? {} : { exception }),
      ...(answerAs === undefined ? {} : { answerAs }),
    };
  }
}
