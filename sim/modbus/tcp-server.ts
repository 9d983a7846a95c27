/**
 * The simulator's Modbus TCP server on node:net: MBAP framing, many clients, pipelined requests on one connection
 * answered in order, fault injection per unit. Malformed frames close that connection; nothing crashes the process.
 */
import { createServer, type Socket } from 'node:net';
import { type HardwareClock, type HardwareLogger, silentLogger, wallClock } from '../../hardware/clock.js';
import type { RegisterBank } from './bank.js';
import { dispatchRequest, type ModbusServerStats, StatsCounter } from './dispatch.js';
import { type Fault, FaultPlan } from './faults.js';
import { buildExceptionPdu, buildMbapFrame } from './pdu.js';

/** Where to listen, which units to serve and which faults to inject. */
export interface ModbusTcpServerOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** The simulated devices behind this server, by unit id. */
  readonly units: ReadonlyMap<number, RegisterBank>;
  /** A plan (shared with the test that scripts it) or a list of faults. */
  readonly faults?: FaultPlan | readonly Fault[];
  /** Clock the faults' from/until are read against, when `faults` is a list. Default the wall clock. */
  readonly clock?: HardwareClock;
  readonly logger?: HardwareLogger;
  /**
   * A request for a unit id that is not in `units`: 'ignore' (default, no answer, like a device that is not there) or
   * 'gateway-exception' (exception 0x0B, as a Modbus TCP gateway answers for a silent device behind it).
   */
  readonly unknownUnit?: 'ignore' | 'gateway-exception';
}

/** A running server. */
export interface ModbusTcpServerHandle {
  readonly host: string;
  readonly port: number;
  readonly faults: FaultPlan;
  stats(): ModbusServerStats;
  /** Closes every connection and stops listening. */
  close(): Promise<void>;
}

const MBAP_HEADER = 7;

/** Starts listening; resolves once the port is bound. */
export function startModbusTcpServer(options: ModbusTcpServerOptions): Promise<ModbusTcpServerHandle> {
  const logger = options.logger ?? silentLogger;
  const faults =
    options.faults instanceof FaultPlan
      ? options.faults
      : new FaultPlan(options.faults ?? [], options.clock ?? wallClock());
  const counter = new StatsCounter();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const serve = (socket: Socket) => {
    counter.connections += 1;
    sockets.add(socket);
    socket.setNoDelay(true);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    let buffer: Buffer = Buffer.alloc(0);
    let chain: Promise<void> = Promise.resolve();
    let inFlight = 0;

    const handle = async (frame: Buffer) => {
      const transactionId = frame.readUInt16BE(0);
      const unit = frame[6]!;
      const pdu = frame.subarray(MBAP_HEADER);
      counter.request(unit);
      const bank = options.units.get(unit);
      if (!bank) {
        if (options.unknownUnit === 'gateway-exception') {
          send(buildMbapFrame(transactionId, unit, buildExceptionPdu(pdu[0] ?? 0, 0x0b)));
        }
        return;
      }
      const outcome = dispatchRequest(bank, faults, unit, pdu, logger);
      if (outcome.kind === 'disconnect') {
        socket.destroy();
        return;
      }
      if (outcome.kind === 'silent') return;
      if (outcome.delayMs > 0) await delay(outcome.delayMs);
      send(buildMbapFrame(transactionId, outcome.unit, outcome.pdu));
    };

    const send = (frame: Buffer) => {
      if (socket.destroyed || !socket.writable) return;
      counter.answers += 1;
      socket.write(frame);
    };

    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      while (buffer.length >= MBAP_HEADER) {
        const protocol = buffer.readUInt16BE(2);
        const length = buffer.readUInt16BE(4);
        if (protocol !== 0 || length < 2 || length > 254) {
          counter.discarded += 1;
          logger.warn({ peer, protocol, length }, 'sim modbus tcp: malformed MBAP header, closing the connection');
          buffer = Buffer.alloc(0);
          socket.destroy();
          return;
        }
        if (buffer.length < 6 + length) break;
        const frame = Buffer.from(buffer.subarray(0, 6 + length));
        buffer = buffer.subarray(6 + length);
        inFlight += 1;
        counter.maxInFlight = Math.max(counter.maxInFlight, inFlight);
        chain = chain
          .then(() => (socket.destroyed ? undefined : handle(frame)))
          .catch((err: unknown) => {
            logger.error({ peer, error: err instanceof Error ? err.message : String(err) }, 'sim modbus tcp failed');
          })
          .finally(() => {
            inFlight -= 1;
          });
      }
    });
    socket.on('error', (err) => logger.debug({ peer, error: err.message }, 'sim modbus tcp: socket error'));
    socket.on('close', () => sockets.delete(socket));
  };

  const server = createServer(serve);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      server.on('error', (err) => logger.error({ error: err.message }, 'sim modbus tcp: server error'));
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('sim modbus tcp: server has no TCP address'));
        return;
      }
      resolve({
        host: address.address,
        port: address.port,
        faults,
        stats: () => counter.snapshot(),
        close: () =>
          new Promise<void>((done) => {
            for (const t of timers) clearTimeout(t);
            timers.clear();
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
