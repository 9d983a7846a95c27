/**
 * The simulator's Modbus RTU server on a serial line (a socat pty end): one RS-485 line with one or more unit ids on
 * it. Frames are found by the length rules of their function code and a correct CRC, not by an idle timer, so it
 * answers as soon as a request is complete; bytes that form no valid frame (noise, a request with a bad CRC, traffic
 * for other units) are discarded and the server resynchronises on the next valid frame. Unit 0 is broadcast: writes
 * apply to every unit, nothing is answered.
 */
import { type HardwareClock, type HardwareLogger, silentLogger, wallClock } from '../../hardware/clock.js';
import { buildRtuFrame, rtuCharTimeMs, rtuCrcOk, rtuRequestLength } from '../../hardware/modbus/rtu.js';
import type { RegisterBank } from './bank.js';
import { applyBroadcast, dispatchRequest, type ModbusServerStats, StatsCounter } from './dispatch.js';
import { type Fault, FaultPlan } from './faults.js';
import { buildExceptionPdu } from './pdu.js';
import { openTtyLine } from './tty-line.js';

/** The line, its units and the faults to inject. */
export interface ModbusRtuServerOptions {
  /** The device end of a pty pair (sim/pty.ts), or any raw tty. */
  readonly path: string;
  /** The line's baud rate: sets the default frame gap (a pty itself ignores it). */
  readonly baudRate: number;
  /** The devices on this line, by unit id (1-247). */
  readonly units: ReadonlyMap<number, RegisterBank>;
  readonly faults?: FaultPlan | readonly Fault[];
  readonly clock?: HardwareClock;
  readonly logger?: HardwareLogger;
  /**
   * Silence after which bytes that formed no frame are given up (and a complete frame of an unknown function code for
   * one of our units is answered with exception 1). Frames are found by length, so this adds no latency; default
   * the larger of 3.5 characters and 20 ms, because event-loop jitter must not cut a frame in two.
   */
  readonly frameGapMs?: number;
}

/** A running server. */
export interface ModbusRtuServerHandle {
  readonly path: string;
  readonly faults: FaultPlan;
  stats(): ModbusServerStats;
  close(): Promise<void>;
}

const MAX_BUFFER = 1024;

/** Finds the first complete request frame with a valid CRC at or after offset 0. */
function findFrame(buf: Buffer): { offset: number; length: number } | undefined {
  for (let i = 0; i + 4 <= buf.length; i++) {
    const length = rtuRequestLength(buf, i);
    if (typeof length !== 'number' || i + length > buf.length) continue;
    if (rtuCrcOk(buf, i, length)) return { offset: i, length };
  }
  return undefined;
}

/** Opens the line and starts answering. */
export async function startModbusRtuServer(options: ModbusRtuServerOptions): Promise<ModbusRtuServerHandle> {
  const logger = options.logger ?? silentLogger;
  const faults =
    options.faults instanceof FaultPlan
      ? options.faults
      : new FaultPlan(options.faults ?? [], options.clock ?? wallClock());
  const frameGapMs = options.frameGapMs ?? Math.max(20, 3.5 * rtuCharTimeMs(options.baudRate));
  const counter = new StatsCounter();
  const line = openTtyLine(options.path);
  const timers = new Set<NodeJS.Timeout>();
  let buffer: Buffer = Buffer.alloc(0);
  let idle: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();
  let closed = false;

  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const send = (unit: number, pdu: Buffer, badCrc: boolean) => {
    if (closed) return;
    const frame = buildRtuFrame(unit, pdu);
    if (badCrc) {
      frame[frame.length - 2]! ^= 0xff;
      frame[frame.length - 1]! ^= 0xff;
    }
    counter.answers += 1;
    line.write(frame);
  };

  const handle = async (frame: Buffer) => {
    const unit = frame[0]!;
    const pdu = frame.subarray(1, frame.length - 2);
    if (unit === 0) {
      counter.request(0);
      applyBroadcast(options.units.values(), pdu);
      return;
    }
    const bank = options.units.get(unit);
    if (!bank) return; // another device's frame on the shared line
    counter.request(unit);
    const outcome = dispatchRequest(bank, faults, unit, pdu, logger);
    if (outcome.kind !== 'answer') return; // no answer; 'disconnect' has no meaning on a serial line
    if (outcome.delayMs > 0) await delay(outcome.delayMs);
    send(outcome.unit, outcome.pdu, outcome.badCrc);
  };

  const enqueue = (frame: Buffer) => {
    chain = chain
      .then(() => (closed ? undefined : handle(frame)))
      .catch((err: unknown) => {
        logger.error({ path: options.path, error: err instanceof Error ? err.message : String(err) }, 'sim rtu failed');
      });
  };

  const scan = () => {
    for (let found = findFrame(buffer); found; found = findFrame(buffer)) {
      if (found.offset > 0) {
        counter.discarded += found.offset;
        logger.debug({ path: options.path, bytes: found.offset }, 'sim rtu: discarded bytes before a frame');
      }
      enqueue(Buffer.from(buffer.subarray(found.offset, found.offset + found.length)));
      buffer = buffer.subarray(found.offset + found.length);
    }
  };

  const onIdle = () => {
    idle = undefined;
    if (buffer.length === 0) return;
    // A whole frame with a function code we have no length rule for: answer "illegal function" if it is ours.
    const unit = buffer[0]!;
    if (buffer.length >= 4 && options.units.has(unit) && rtuCrcOk(buffer, 0, buffer.length)) {
      const fn = buffer[1]!;
      counter.request(unit);
      const reply = buildExceptionPdu(fn, 1);
      chain = chain.then(() => send(unit, reply, false));
    } else {
      counter.discarded += buffer.length;
      logger.debug({ path: options.path, bytes: buffer.length }, 'sim rtu: discarded bytes that formed no frame');
    }
    buffer = Buffer.alloc(0);
  };

  line.onData((chunk) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    if (buffer.length > MAX_BUFFER) {
      counter.discarded += buffer.length - MAX_BUFFER;
      buffer = buffer.subarray(buffer.length - MAX_BUFFER);
    }
    scan();
    if (idle) clearTimeout(idle);
    idle = buffer.length > 0 ? setTimeout(onIdle, frameGapMs) : undefined;
  });
  line.onClose((reason) => {
    if (!closed) logger.warn({ path: options.path, reason }, 'sim rtu: serial line lost');
  });

  return {
    path: options.path,
    faults,
    stats: () => counter.snapshot(),
    close: async () => {
      closed = true;
      if (idle) clearTimeout(idle);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await line.close();
    },
  };
}
