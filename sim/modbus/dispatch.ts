/**
 * What the simulator's servers (TCP and RTU) do with one request PDU for one unit: look up the bank, apply the fault
 * plan, execute, and say what to send back. Framing stays in the servers.
 */
import type { HardwareLogger } from '../../hardware/clock.js';
import type { RegisterBank } from './bank.js';
import type { FaultPlan } from './faults.js';
import { answerRequest, buildExceptionPdu, parseRequestPdu, requestRange } from './pdu.js';

/** What to do about one request. */
export type Outcome =
  | { readonly kind: 'silent' }
  | { readonly kind: 'disconnect' }
  | {
      readonly kind: 'answer';
      /** Unit id to put in the answer (another one under a 'wrong-unit' fault). */
      readonly unit: number;
      readonly pdu: Buffer;
      readonly delayMs: number;
      readonly badCrc: boolean;
    };

/** Counters of a simulated server, for tests ("the dead unit got no more requests") and benchmarks. */
export interface ModbusServerStats {
  /** Complete request frames received (any unit). */
  readonly requests: number;
  /** Requests per unit id. */
  readonly byUnit: ReadonlyMap<number, number>;
  /** Answers sent. */
  readonly answers: number;
  /** Connections accepted (TCP). */
  readonly connections: number;
  /** Most requests seen waiting or in progress at once on one connection (1 = the client never pipelined). */
  readonly maxInFlight: number;
  /** Frames dropped as malformed (TCP) or bytes discarded as garbage / bad CRC (RTU). */
  readonly discarded: number;
}

/** Mutable counters behind ModbusServerStats. */
export class StatsCounter {
  requests = 0;
  answers = 0;
  connections = 0;
  maxInFlight = 0;
  discarded = 0;
  readonly byUnit = new Map<number, number>();

  /** Counts one request for `unit`. */
  request(unit: number): void {
    this.requests += 1;
    this.byUnit.set(unit, (this.byUnit.get(unit) ?? 0) + 1);
  }

  /** A copy for callers. */
  snapshot(): ModbusServerStats {
    return {
      requests: this.requests,
      byUnit: new Map(this.byUnit),
      answers: this.answers,
      connections: this.connections,
      maxInFlight: this.maxInFlight,
      discarded: this.discarded,
    };
  }
}

/** Handles one request PDU for `unit` held by `bank`; a bank that throws answers exception 4 (device failure). */
export function dispatchRequest(
  bank: RegisterBank,
  faults: FaultPlan,
  unit: number,
  pdu: Uint8Array,
  logger: HardwareLogger,
): Outcome {
  const parsed = parseRequestPdu(pdu);
  const fn = parsed.ok ? parsed.request.fn : parsed.fn;
  const range = parsed.ok ? requestRange(parsed.request) : { start: 0, count: 1 };
  const fault = faults.decide(unit, fn, range.start, range.count);
  if (fault.disconnect) return { kind: 'disconnect' };
  if (fault.drop) return { kind: 'silent' };
  let answer: Buffer;
  if (fault.exception !== undefined) answer = buildExceptionPdu(fn, fault.exception);
  else if (!parsed.ok) answer = buildExceptionPdu(parsed.fn, parsed.exception);
  else {
    try {
      answer = answerRequest(bank, parsed.request);
    } catch (err) {
      logger.error({ unit, fn, error: err instanceof Error ? err.message : String(err) }, 'sim bank failed');
      answer = buildExceptionPdu(fn, 4);
    }
  }
  return { kind: 'answer', unit: fault.answerAs ?? unit, pdu: answer, delayMs: fault.delayMs, badCrc: fault.badCrc };
}

/** Applies a broadcast write (RTU unit 0) to every bank; broadcasts are never answered. */
export function applyBroadcast(banks: Iterable<RegisterBank>, pdu: Uint8Array): void {
  const parsed = parseRequestPdu(pdu);
  if (!parsed.ok || (parsed.request.fn !== 6 && parsed.request.fn !== 16)) return;
  for (const bank of banks) {
    try {
      answerRequest(bank, parsed.request);
    } catch {
      // a broadcast has no answer to carry the failure
    }
  }
}
