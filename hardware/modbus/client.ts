/**
 * Modbus buses: Modbus TCP (our own MBAP framing on node:net, see mbap.ts for why), RTU on a serial line and RTU
 * frames over a TCP socket (a transparent serial gateway), the latter two on modbus-serial. Each bus has one serialized queue (requests never overlap on the wire), connects lazily, reconnects
 * after a loss, and keeps per-unit back-off so a dead device never slows the others. Every rejection is a ModbusError
 * that names the bus, the endpoint, the unit and the register range, and says what to check.
 *
 * This is the only module that imports modbus-serial.
 */
import { createConnection, type Socket } from 'node:net';
import ModbusSerial from 'modbus-serial';
import type { HardwareClock, HardwareLogger } from '../clock.js';
import { silentLogger } from '../clock.js';
import type { ReadFunction } from '../profile/types.js';
import { type BackoffOptions, DEFAULT_BACKOFF, UnitBackoff } from './backoff.js';
import { decodeMbapAnswer, encodeMbapRequest, MbapFramer, type MbapRequest } from './mbap.js';
import { SerialQueue } from './queue.js';
import { RtuResponseFramer, rtuInterFrameMs } from './rtu.js';
import { type DeviceHealth, EXCEPTION_NAMES, type ModbusBus, ModbusError, type ModbusErrorKind } from './types.js';

// modbus-serial is CommonJS with `module.exports.default = module.exports`; under NodeNext the default import is the
// module object, and its `.default` is the class (at run time both are).
const ModbusRTU = ModbusSerial.default;
type Client = InstanceType<typeof ModbusRTU>;

/** Options every kind of bus has. */
export interface CommonBusOptions {
  /** The bus's name in logs and errors, e.g. "rs485-1" or "inverter-lan". */
  readonly name: string;
  /** Per-request answer timeout, ms. Default 1000. */
  readonly timeoutMs?: number;
  /** Time allowed to open the connection or serial port, ms. Default 3000. */
  readonly connectTimeoutMs?: number;
  /**
   * Minimum silence between the end of one exchange and the next request, ms. Default for `rtu`: 3.5 characters at the
   * baud rate (1.75 ms above 19200 baud); for `rtu-over-tcp`: 0 (the gateway paces its line); unused for `tcp`.
   */
  readonly interFrameMs?: number;
  /** Per-unit back-off after failures; defaults base 1000 ms, factor 2, max 60000 ms. */
  readonly backoff?: Partial<BackoffOptions>;
  /**
   * Extra attempts after a timeout or connection error (a probe after back-off is never retried). Default 1. For `tcp`
   * and after connection errors the retry goes out on a fresh connection.
   */
  readonly retries?: number;
  /** Write single registers with FC 6 instead of FC 16 (some devices only accept one or the other). Default false. */
  readonly writeSingle?: boolean;
}

/** Modbus TCP (MBAP framing). */
export interface TcpBusOptions extends CommonBusOptions {
  readonly kind: 'tcp';
  readonly host: string;
  /** Default 502. */
  readonly port?: number;
}

/** Modbus RTU on a serial port (RS-485 adapter, or a pty in tests). */
export interface RtuBusOptions extends CommonBusOptions {
  readonly kind: 'rtu';
  /** Device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/... */
  readonly path: string;
  readonly baudRate: number;
  /** Default 'none' (8N1, the usual setting of PV inverters and meters). */
  readonly parity?: 'none' | 'even' | 'odd';
  /** 7 or 8; default 8. */
  readonly dataBits?: number;
  /** 1 or 2; default 1. */
  readonly stopBits?: number;
}

/** RTU frames (with CRC) over a TCP socket: a serial-to-Ethernet gateway in transparent mode. */
export interface RtuOverTcpBusOptions extends CommonBusOptions {
  readonly kind: 'rtu-over-tcp';
  readonly host: string;
  readonly port: number;
}

export type ModbusBusOptions = TcpBusOptions | RtuBusOptions | RtuOverTcpBusOptions;

/** What a bus needs from its surroundings. */
export interface ModbusBusDeps {
  /** Used for all back-off timestamps and health; socket timeouts use real timers. */
  readonly clock: HardwareClock;
  readonly logger?: HardwareLogger;
}

/** Counters of one bus, for metrics and benchmarks. */
export interface ModbusBusStats {
  /** Request frames put on the wire (retries included, back-off refusals not). */
  readonly sent: number;
  /** Requests refused because their unit was in back-off. */
  readonly refusedBackoff: number;
  /** Connections (or serial port openings) made. */
  readonly connects: number;
}

/** A ModbusBus with its counters and endpoint description. */
export interface ModbusBusHandle extends ModbusBus {
  /** "host:port", "/dev/ttyUSB0 at 9600 baud" or "host:port (RTU over TCP)". */
  readonly endpoint: string;
  stats(): ModbusBusStats;
}

/**
 * Opens a bus. Nothing is connected until the first request; a lost connection is reopened by the next request.
 * Throws RangeError for options that can never work (bad port number, baud rate, timeouts).
 */
export function openModbusBus(options: ModbusBusOptions, deps: ModbusBusDeps): ModbusBusHandle {
  return new Bus(resolveOptions(options), deps.clock, deps.logger ?? silentLogger);
}

interface Resolved {
  readonly raw: ModbusBusOptions;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly interFrameMs: number;
  readonly backoff: BackoffOptions;
  readonly retries: number;
  readonly writeSingle: boolean;
  readonly endpoint: string;
}

function resolveOptions(o: ModbusBusOptions): Resolved {
  const where = `bus "${o.name}"`;
  const positive = (value: number | undefined, fallback: number, field: string) => {
    const v = value ?? fallback;
    if (!(Number.isFinite(v) && v > 0))
      throw new RangeError(`${where}: ${field} must be a positive number of ms, got ${v}`);
    return v;
  };
  const timeoutMs = positive(o.timeoutMs, 1000, 'timeoutMs');
  const connectTimeoutMs = positive(o.connectTimeoutMs, 3000, 'connectTimeoutMs');
  const retries = o.retries ?? 1;
  if (!(Number.isInteger(retries) && retries >= 0 && retries <= 10)) {
    throw new RangeError(`${where}: retries must be an integer from 0 to 10, got ${retries}`);
  }
  let endpoint: string;
  let interFrameDefault = 0;
  if (o.kind === 'rtu') {
    if (!(Number.isInteger(o.baudRate) && o.baudRate >= 300 && o.baudRate <= 4_000_000)) {
      throw new RangeError(`${where} (${o.path}): baudRate must be an integer like 9600 or 19200, got ${o.baudRate}`);
    }
    if (o.dataBits !== undefined && o.dataBits !== 7 && o.dataBits !== 8) {
      throw new RangeError(`${where} (${o.path}): dataBits must be 7 or 8, got ${o.dataBits}`);
    }
    if (o.stopBits !== undefined && o.stopBits !== 1 && o.stopBits !== 2) {
      throw new RangeError(`${where} (${o.path}): stopBits must be 1 or 2, got ${o.stopBits}`);
    }
    endpoint = `${o.path} at ${o.baudRate} baud`;
    interFrameDefault = rtuInterFrameMs(o.baudRate);
  } else {
    const port = o.port ?? 502;
    if (!(Number.isInteger(port) && port > 0 && port < 65536)) {
      throw new RangeError(`${where} (${o.host}): port must be 1-65535, got ${port}`);
    }
    endpoint = o.kind === 'tcp' ? `${o.host}:${port}` : `${o.host}:${port} (RTU over TCP)`;
  }
  const interFrameMs = o.interFrameMs ?? interFrameDefault;
  if (!(Number.isFinite(interFrameMs) && interFrameMs >= 0)) {
    throw new RangeError(`${where}: interFrameMs must be >= 0, got ${interFrameMs}`);
  }
  return {
    raw: o,
    timeoutMs,
    connectTimeoutMs,
    interFrameMs: o.kind === 'tcp' ? 0 : interFrameMs,
    backoff: { ...DEFAULT_BACKOFF, ...o.backoff },
    retries,
    writeSingle: o.writeSingle ?? false,
    endpoint,
  };
}

type Op =
  | { readonly type: 'read'; readonly fn: ReadFunction; readonly start: number; readonly count: number }
  | { readonly type: 'write'; readonly start: number; readonly values: readonly number[]; readonly single: boolean };

function describeOp(op: Op): string {
  if (op.type === 'read') return `read ${op.fn === 3 ? 'holding' : 'input'} ${op.start}+${op.count}`;
  return op.single ? `write single ${op.start}` : `write ${op.start}+${op.values.length}`;
}

/** The parts of modbus-serial's port objects we reach into (RTU framing); checked at run time. */
interface PortInternals {
  _client?: unknown;
  write(data: Buffer): void;
  emit(event: string, ...args: unknown[]): boolean;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

interface ByteSource {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  removeAllListeners(event: string): unknown;
}

function portOf(client: Client): PortInternals | undefined {
  const port = (client as unknown as { _port?: unknown })._port;
  if (typeof port !== 'object' || port === null) return undefined;
  const p = port as Partial<PortInternals>;
  return typeof p.write === 'function' && typeof p.emit === 'function' && typeof p.on === 'function'
    ? (port as PortInternals)
    : undefined;
}

function isByteSource(x: unknown): x is ByteSource {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as Partial<ByteSource>).on === 'function' &&
    typeof (x as Partial<ByteSource>).removeAllListeners === 'function'
  );
}

/** One open connection (or open serial port) and the request waiting on it. */
abstract class Link {
  open = true;
  /** Rejects the request in flight when the link dies under it. */
  pending: ((kind: ModbusErrorKind, reason: string) => void) | undefined;

  lost(kind: ModbusErrorKind, reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.pending?.(kind, reason);
  }
}

/** A modbus-serial client (RTU on a serial port, or RTU frames over TCP). */
class SerialLink extends Link {
  framer: RtuResponseFramer | undefined;
  /** performance.now() of the last byte received, to tell when the line has gone quiet. */
  lastByteAt = 0;

  constructor(readonly client: Client) {
    super();
  }
}

/** The answer a Modbus TCP link waits for. */
interface Awaited {
  readonly tid: number;
  readonly unit: number;
  readonly request: MbapRequest;
  readonly settle: (answer: { registers?: number[] } | ModbusError) => void;
}

/** A Modbus TCP connection on a node:net socket. */
class MbapLink extends Link {
  readonly framer = new MbapFramer();
  waiting: Awaited | undefined;
  private tid = 0;

  constructor(readonly socket: Socket) {
    super();
  }

  nextTid(): number {
    this.tid = (this.tid + 1) & 0xffff;
    return this.tid;
  }
}

interface ErrnoLike {
  message?: unknown;
  errno?: unknown;
  code?: unknown;
  name?: unknown;
  modbusCode?: unknown;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && typeof (err as ErrnoLike).message === 'string') {
    return (err as ErrnoLike).message as string;
  }
  return String(err);
}

/** Errors that are CRC failures (retried like timeouts although their kind is bad-response). */
const crcFailures = new WeakSet<ModbusError>();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class Bus implements ModbusBusHandle {
  readonly name: string;
  readonly endpoint: string;
  private readonly queue = new SerialQueue();
  private readonly units: UnitBackoff;
  private readonly lastDetail = new Map<number, string>();
  private link: Link | undefined;
  private closed = false;
  private lastExchangeEnd = 0;
  private counters = { sent: 0, refusedBackoff: 0, connects: 0 };

  constructor(
    private readonly opts: Resolved,
    clock: HardwareClock,
    private readonly logger: HardwareLogger,
  ) {
    this.name = opts.raw.name;
    this.endpoint = opts.endpoint;
    this.units = new UnitBackoff(opts.backoff, clock);
  }

  read(unit: number, fn: ReadFunction, start: number, count: number): Promise<number[]> {
    return this.submit(unit, { type: 'read', fn, start, count }) as Promise<number[]>;
  }

  async write(unit: number, start: number, values: readonly number[]): Promise<void> {
    const single = this.opts.writeSingle && values.length === 1;
    await this.submit(unit, { type: 'write', start, values: [...values], single });
  }

  health(unit: number): DeviceHealth {
    return this.units.health(unit);
  }

  stats(): ModbusBusStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Queued requests still come to their turn and are rejected there with their own unit and range.
    await this.dropLink('closed', 'the bus was closed');
  }

  private where(unit: number): string {
    return `bus "${this.name}" (${this.endpoint}) unit ${unit}`;
  }

  private fail(kind: ModbusErrorKind, unit: number, op: Op, detail: string, exceptionCode?: number): ModbusError {
    const verb = kind === 'backoff' || kind === 'refused' ? 'not sent' : 'failed';
    return new ModbusError(kind, `${this.where(unit)}: ${describeOp(op)} ${verb}: ${detail}`, {
      bus: this.name,
      unit,
      ...(exceptionCode === undefined ? {} : { exceptionCode }),
    });
  }

  private validate(unit: number, op: Op): string | undefined {
    const rtu = this.opts.raw.kind !== 'tcp';
    if (!(Number.isInteger(unit) && unit >= 0 && unit <= 255)) return `unit id must be an integer 0-255, got ${unit}`;
    if (rtu && unit === 0)
      return 'unit 0 is the RTU broadcast address and no device answers it: use the device unit id';
    if (rtu && unit > 247) return `RTU unit ids are 1-247, got ${unit}: check the device address`;
    if (!(Number.isInteger(op.start) && op.start >= 0 && op.start <= 0xffff)) {
      return `start address must be 0-65535 (protocol address, 0-based), got ${op.start}`;
    }
    if (op.type === 'read') {
      if (op.fn !== 3 && op.fn !== 4) return `function must be 3 (holding) or 4 (input), got ${op.fn}`;
      if (!(Number.isInteger(op.count) && op.count >= 1 && op.count <= 125)) {
        return `a read covers 1-125 registers, got ${op.count}: split the read`;
      }
      if (op.start + op.count > 0x10000) return 'the range runs past address 65535';
      return undefined;
    }
    if (op.values.length < 1 || op.values.length > 123) {
      return `a write covers 1-123 registers, got ${op.values.length}: split the write`;
    }
    if (op.start + op.values.length > 0x10000) return 'the range runs past address 65535';
    const bad = op.values.findIndex((v) => !(Number.isInteger(v) && v >= 0 && v <= 0xffff));
    if (bad >= 0) return `register values are integers 0-65535, value ${bad} is ${op.values[bad]}`;
    return undefined;
  }

  private submit(unit: number, op: Op): Promise<unknown> {
    const invalid = this.validate(unit, op);
    if (invalid) return Promise.reject(this.fail('refused', unit, op, invalid));
    if (this.closed) return Promise.reject(this.fail('closed', unit, op, 'the bus is closed'));
    const admission = this.units.admit(unit);
    if (!admission.send) return Promise.reject(this.backoffError(unit, op, admission.until, admission.failures));
    return this.queue.push(() => this.execute(unit, op));
  }

  private backoffError(unit: number, op: Op, until: number, failures: number): ModbusError {
    this.counters.refusedBackoff += 1;
    const last = this.lastDetail.get(unit);
    return this.fail(
      'backoff',
      unit,
      op,
      `the device is in back-off after ${failures} consecutive failure${failures === 1 ? '' : 's'}; next try after ` +
        `${new Date(until).toISOString()}${last ? ` (last error: ${last})` : ''}`,
    );
  }

  private async execute(unit: number, op: Op): Promise<unknown> {
    if (this.closed) throw this.fail('closed', unit, op, 'the bus is closed');
    const admission = this.units.admit(unit);
    if (!admission.send) throw this.backoffError(unit, op, admission.until, admission.failures);
    const attempts = admission.probe ? 1 : 1 + this.opts.retries;
    let last: ModbusError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) {
        this.logger.debug({ bus: this.name, unit, op: describeOp(op), error: last?.message }, 'modbus retry');
        await this.awaitQuietLine();
      }
      try {
        const result = await this.attempt(unit, op);
        if (this.units.success(unit)) {
          this.logger.info({ bus: this.name, unit, endpoint: this.endpoint }, 'modbus device answers again');
        }
        return result;
      } catch (err) {
        const error = err instanceof ModbusError ? err : this.fail('connection', unit, op, messageOf(err));
        if (error.kind === 'exception') {
          this.units.alive(unit, error.message);
          throw error;
        }
        if (error.kind === 'closed' || this.closed) throw error;
        last = error;
        // Modbus TCP: a fresh connection discards any late answer (and unsticks devices that wedge a connection).
        if (error.kind === 'timeout' && this.opts.raw.kind === 'tcp') await this.dropLink('connection', 'timeout');
        if (error.kind !== 'timeout' && error.kind !== 'connection' && !crcFailures.has(error)) break;
      }
    }
    const failure = last ?? this.fail('connection', unit, op, 'unknown failure');
    const at = failure.message.indexOf(' failed: ');
    this.lastDetail.set(unit, at >= 0 ? failure.message.slice(at + 9) : failure.message);
    const until = this.units.failure(unit, failure.message);
    const failures = this.units.health(unit).consecutiveFailures;
    this.logger.warn(
      { bus: this.name, unit, kind: failure.kind, failures, backoffUntil: until, error: failure.message },
      'modbus device in back-off',
    );
    throw failure;
  }

  /**
   * Before a retry on a serial line: a late answer may still be arriving, and a request sent into it collides on the
   * half-duplex bus. Waits until no byte has come for the inter-frame time (at most one request timeout).
   */
  private async awaitQuietLine(): Promise<void> {
    const link = this.link;
    if (!(link instanceof SerialLink) || !link.open) return;
    const quiet = Math.max(this.opts.interFrameMs, 1);
    const deadline = performance.now() + this.opts.timeoutMs;
    for (;;) {
      const now = performance.now();
      const wait = link.lastByteAt + quiet - now;
      if (wait <= 0 || now >= deadline) return;
      await sleep(Math.min(wait, deadline - now));
    }
  }

  private async attempt(unit: number, op: Op): Promise<unknown> {
    // An open link is used without an await, so the request is on the wire before the previous answer's caller
    // runs its continuation (decoding overlaps the next round trip instead of delaying it).
    const link = this.link?.open ? this.link : await this.connect(unit, op);
    if (this.closed) {
      await this.dropLink('closed', 'the bus was closed');
      throw this.fail('closed', unit, op, 'the bus was closed');
    }
    if (this.opts.interFrameMs > 0) {
      const wait = this.lastExchangeEnd + this.opts.interFrameMs - performance.now();
      if (wait > 0) await sleep(wait);
    }
    if (!link.open) throw this.fail('connection', unit, op, 'the connection was lost before the request was sent');
    this.counters.sent += 1;
    try {
      return await this.exchange(link, unit, op);
    } finally {
      this.lastExchangeEnd = performance.now();
    }
  }

  private exchange(link: Link, unit: number, op: Op): Promise<unknown> {
    if (link instanceof MbapLink) return this.exchangeMbap(link, unit, op);
    return this.exchangeSerial(link as SerialLink, unit, op);
  }

  /** One Modbus TCP request and its answer, matched by transaction id; late answers to earlier ids are dropped. */
  private exchangeMbap(link: MbapLink, unit: number, op: Op): Promise<unknown> {
    const request: MbapRequest =
      op.type === 'read'
        ? { fn: op.fn, start: op.start, count: op.count }
        : op.single
          ? { fn: 6, start: op.start, value: op.values[0] as number }
          : { fn: 16, start: op.start, values: op.values };
    const tid = link.nextTid();
    return new Promise<unknown>((resolve, reject) => {
      const settle = (answer: { registers?: number[] } | ModbusError) => {
        if (link.waiting?.tid !== tid) return;
        link.waiting = undefined;
        link.pending = undefined;
        clearTimeout(timer);
        if (answer instanceof ModbusError) reject(answer);
        else resolve(answer.registers);
      };
      const timer = setTimeout(() => settle(this.timeoutError(link, unit, op)), this.opts.timeoutMs);
      link.waiting = { tid, unit, request, settle };
      link.pending = (kind, reason) => settle(this.fail(kind, unit, op, reason));
      link.socket.write(encodeMbapRequest(tid, unit, request));
    });
  }

  /** Frames arrived on a Modbus TCP link: the one we wait for settles its request. */
  private onMbapData(link: MbapLink, chunk: Buffer): void {
    let frames: ReturnType<MbapFramer['push']>;
    try {
      frames = link.framer.push(chunk);
    } catch (err) {
      this.logger.warn({ bus: this.name, endpoint: this.endpoint, error: messageOf(err) }, 'modbus stream corrupt');
      link.lost('bad-response', `${messageOf(err)}; the connection was dropped`);
      link.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const waiting = link.waiting;
      if (waiting === undefined || frame.tid !== waiting.tid) {
        this.logger.debug({ bus: this.name, tid: frame.tid }, 'modbus answer to no pending request dropped');
        continue;
      }
      const op = this.opOf(waiting.request);
      if (frame.unit !== waiting.unit) {
        waiting.settle(
          this.fail(
            'bad-response',
            waiting.unit,
            op,
            `the answer came from unit ${frame.unit} instead of ${waiting.unit}: check the gateway's unit mapping`,
          ),
        );
        continue;
      }
      const answer = decodeMbapAnswer(waiting.request, frame.pdu);
      if (answer.ok) waiting.settle(answer);
      else if ('exception' in answer) waiting.settle(this.exceptionError(waiting.unit, op, answer.exception));
      else waiting.settle(this.fail('bad-response', waiting.unit, op, `malformed answer (${answer.malformed})`));
    }
  }

  private opOf(request: MbapRequest): Op {
    if (request.fn === 3 || request.fn === 4) {
      return { type: 'read', fn: request.fn, start: request.start, count: request.count };
    }
    if (request.fn === 6) return { type: 'write', start: request.start, values: [request.value], single: true };
    return { type: 'write', start: request.start, values: request.values, single: false };
  }

  private exceptionError(unit: number, op: Op, code: number): ModbusError {
    const name = EXCEPTION_NAMES[code] ?? 'unknown exception';
    const hint =
      code === 2
        ? ': the device has no such registers, check the register map (profile) and the address base'
        : code === 3
          ? ': the device refused the value or the count'
          : code === 1
            ? ': the device does not support this function'
            : '';
    return this.fail('exception', unit, op, `exception ${code} (${name})${hint}`, code);
  }

  private exchangeSerial(link: SerialLink, unit: number, op: Op): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      let settled = false;
      const finish = (error: ModbusError | undefined, value?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        link.pending = undefined;
        if (error) reject(error);
        else resolve(value);
      };
      // modbus-serial has its own transaction timeout; this guard only catches a callback that never comes.
      const guard = setTimeout(() => finish(this.timeoutError(link, unit, op)), this.opts.timeoutMs + 250);
      link.pending = (kind, reason) => finish(this.fail(kind, unit, op, reason));
      const onError = (err: unknown) => finish(this.mapError(err, link, unit, op));
      try {
        if (op.type === 'read') {
          const call = op.fn === 3 ? link.client.writeFC3.bind(link.client) : link.client.writeFC4.bind(link.client);
          call(unit, op.start, op.count, (err, res) => {
            if (err) return onError(err);
            const data = res?.data;
            if (!Array.isArray(data) || data.length !== op.count) {
              return finish(this.fail('bad-response', unit, op, `expected ${op.count} registers, got ${data?.length}`));
            }
            finish(undefined, data);
          });
        } else if (op.single) {
          link.client.writeFC6(unit, op.start, op.values[0]!, (err, res) => {
            if (err) return onError(err);
            if (res?.address !== op.start || res.value !== op.values[0]) {
              return finish(
                this.fail(
                  'bad-response',
                  unit,
                  op,
                  `the echo says ${res?.address}=${res?.value}, not what was written`,
                ),
              );
            }
            finish(undefined, undefined);
          });
        } else {
          link.client.writeFC16(unit, op.start, [...op.values], (err, res) => {
            if (err) return onError(err);
            if (res?.address !== op.start || res.length !== op.values.length) {
              return finish(
                this.fail('bad-response', unit, op, `the device acknowledged ${res?.address}+${res?.length} instead`),
              );
            }
            finish(undefined, undefined);
          });
        }
      } catch (err) {
        onError(err);
      }
    });
  }

  /** A bad-response caused by a CRC error: transmission noise, so it is retried like a timeout. */
  private crcFailure(unit: number, op: Op, detail: string): ModbusError {
    const error = this.fail('bad-response', unit, op, detail);
    crcFailures.add(error);
    return error;
  }

  private timeoutError(link: Link, unit: number, op: Op): ModbusError {
    if (link instanceof SerialLink && link.framer?.badCrcSeen) {
      return this.crcFailure(
        unit,
        op,
        `an answer arrived but its CRC was wrong: check for noise, cable shielding and termination, and that baud ` +
          `rate and parity match the device`,
      );
    }
    const o = this.opts.raw;
    const hint =
      o.kind === 'tcp'
        ? `check that unit id ${unit} is right and the device is on; many devices accept only one client at a time`
        : o.kind === 'rtu'
          ? `check the wiring (A/B not swapped), termination, that baud rate ${o.baudRate} and parity ` +
            `${o.parity ?? 'none'} match the device and that a device has unit id ${unit}`
          : `check the gateway's serial settings and that a device behind it has unit id ${unit}`;
    return this.fail('timeout', unit, op, `no answer within ${this.opts.timeoutMs} ms: ${hint}`);
  }

  private mapError(err: unknown, link: Link, unit: number, op: Op): ModbusError {
    const e = (typeof err === 'object' && err !== null ? err : {}) as ErrnoLike;
    const message = messageOf(err);
    if (typeof e.modbusCode === 'number') return this.exceptionError(unit, op, e.modbusCode);
    if (e.errno === 'ETIMEDOUT' || message === 'Timed out') return this.timeoutError(link, unit, op);
    const wrongUnit = /expected address (\d+) got (\d+)/.exec(message);
    if (wrongUnit) {
      return this.fail(
        'bad-response',
        unit,
        op,
        `the answer came from unit ${wrongUnit[2]} instead of ${wrongUnit[1]}: two devices may share an id, or the ` +
          `wrong device answered`,
      );
    }
    if (/CRC error/.test(message)) {
      return this.crcFailure(unit, op, 'the answer failed its CRC check: check for noise and termination');
    }
    if (/Data length error|Unexpected data error/.test(message)) {
      return this.fail('bad-response', unit, op, `malformed answer (${message})`);
    }
    if (e.name === 'PortNotOpenError' || message === 'Port Not Open') {
      link.lost('connection', 'port not open');
      return this.fail('connection', unit, op, 'the connection is not open');
    }
    return this.fail('connection', unit, op, message);
  }

  private async connect(unit: number, op: Op): Promise<Link> {
    if (this.link?.open) return this.link;
    this.link = undefined;
    const o = this.opts.raw;
    if (o.kind === 'tcp') return this.connectMbap(o, unit, op);
    const client = new ModbusRTU();
    const link = new SerialLink(client);
    const onPortError = (err: unknown) => {
      if (link.open) {
        this.logger.warn({ bus: this.name, endpoint: this.endpoint, error: messageOf(err) }, 'modbus port error');
      }
      link.lost('connection', `port error: ${messageOf(err)}`);
    };
    // Listeners first: an 'error' event without a listener would crash the process.
    client.on('error', onPortError);
    client.on('close', () => {
      if (link.open) this.logger.info({ bus: this.name, endpoint: this.endpoint }, 'modbus connection closed');
      link.lost('connection', 'the connection was closed by the other end');
    });
    try {
      let opening: Promise<void>;
      if (o.kind === 'rtu-over-tcp') opening = client.connectTelnet(o.host, { port: o.port });
      else {
        opening = client.connectRTUBuffered(o.path, {
          baudRate: o.baudRate,
          parity: o.parity ?? 'none',
          dataBits: o.dataBits ?? 8,
          stopBits: o.stopBits ?? 1,
        });
      }
      opening.catch(() => {}); // awaited below; avoids an unhandled rejection when the timeout wins
      const port = portOf(client);
      port?.on('error', onPortError);
      link.framer = this.installFramer(port, link);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no connection within ${this.opts.connectTimeoutMs} ms`)),
          this.opts.connectTimeoutMs,
        );
      });
      try {
        await Promise.race([opening, timeout]);
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      link.open = false;
      void shutdown(client, o.kind);
      const hint =
        o.kind === 'rtu'
          ? 'check that the adapter is plugged in, the path (ls /dev/serial/by-id/) and that no other program has ' +
            'the port open'
          : 'check the address and port, that the device is on the network and that its Modbus TCP server is enabled';
      throw this.fail('connection', unit, op, `cannot open ${this.endpoint}: ${messageOf(err)}; ${hint}`);
    }
    if (!link.open) throw this.fail('connection', unit, op, `${this.endpoint} closed right after opening`);
    client.setTimeout(this.opts.timeoutMs);
    this.counters.connects += 1;
    this.logger.debug({ bus: this.name, endpoint: this.endpoint }, 'modbus connected');
    this.link = link;
    return link;
  }

  /**
   * Replaces modbus-serial's RTU response framing (which drops answers from other unit ids, so they look like
   * timeouts, and can pick up stale bytes) with RtuResponseFramer: fresh buffer per request, CRC-checked resync,
   * wrong unit ids reported. Falls back to the library's framing if its internals ever change.
   */
  private installFramer(port: PortInternals | undefined, link: SerialLink): RtuResponseFramer | undefined {
    const source = port?._client;
    if (!port || !isByteSource(source)) {
      this.logger.warn({ bus: this.name }, 'modbus-serial port internals not as expected: using its own RTU framing');
      return undefined;
    }
    const framer = new RtuResponseFramer((frame) => {
      try {
        port.emit('data', frame);
      } catch (err) {
        this.logger.error({ bus: this.name, error: messageOf(err) }, 'modbus frame handling failed');
      }
    });
    source.removeAllListeners('data');
    source.on('data', (chunk: Buffer) => {
      link.lastByteAt = performance.now();
      framer.push(chunk);
    });
    const write = port.write.bind(port);
    port.write = (data: Buffer) => {
      framer.expect(data);
      write(data);
    };
    return framer;
  }

  private async dropLink(kind: ModbusErrorKind, reason: string): Promise<void> {
    const link = this.link;
    this.link = undefined;
    if (!link) return;
    link.lost(kind, reason);
    if (link instanceof MbapLink) await closeSocket(link.socket);
    else await shutdown((link as SerialLink).client, this.opts.raw.kind);
  }

  /** Opens a Modbus TCP connection on a node:net socket. */
  private async connectMbap(o: TcpBusOptions, unit: number, op: Op): Promise<Link> {
    const socket = createConnection({ host: o.host, port: o.port ?? 502 });
    socket.setNoDelay(true);
    const link = new MbapLink(socket);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no connection within ${this.opts.connectTimeoutMs} ms`));
        }, this.opts.connectTimeoutMs);
        const onError = (err: Error) => {
          cleanup();
          reject(err);
        };
        const onConnect = () => {
          cleanup();
          resolve();
        };
        const cleanup = () => {
          clearTimeout(timer);
          socket.off('error', onError);
          socket.off('connect', onConnect);
        };
        socket.once('error', onError);
        socket.once('connect', onConnect);
      });
    } catch (err) {
      link.open = false;
      socket.destroy();
      throw this.fail(
        'connection',
        unit,
        op,
        `cannot open ${this.endpoint}: ${messageOf(err)}; check the address and port, that the device is on the ` +
          'network and that its Modbus TCP server is enabled',
      );
    }
    // Listeners before anything else can happen: an 'error' event without a listener would crash the process.
    socket.on('error', (err) => {
      if (link.open) {
        this.logger.warn({ bus: this.name, endpoint: this.endpoint, error: err.message }, 'modbus connection error');
      }
      link.lost('connection', `connection error: ${err.message}`);
    });
    socket.on('close', () => {
      if (link.open) this.logger.info({ bus: this.name, endpoint: this.endpoint }, 'modbus connection closed');
      link.lost('connection', 'the connection was closed by the other end');
    });
    socket.on('data', (chunk: Buffer) => this.onMbapData(link, chunk));
    this.counters.connects += 1;
    this.logger.debug({ bus: this.name, endpoint: this.endpoint }, 'modbus connected');
    this.link = link;
    return link;
  }
}

/** Closes a client without ever throwing or hanging. */
function shutdown(client: Client, kind: ModbusBusOptions['kind']): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      if (kind === 'rtu') client.close(done);
      else client.destroy(done);
    } catch {
      done();
    }
  });
}

/** Closes a socket without ever throwing or hanging. */
function closeSocket(socket: Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, 1000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}
