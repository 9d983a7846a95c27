/**
 * The Modbus client over real ptys (socat pairs) against the simulator's RTU server: the serial port is opened by
 * modbus-serial/serialport exactly as a USB RS-485 adapter would be. Also RTU over TCP through a small TCP <-> pty
 * bridge, and the baud relay that gives a pty real wire timing.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { wallClock } from '../../hardware/clock.js';
import { type ModbusBusOptions, openModbusBus } from '../../hardware/modbus/client.js';
import { rtuWireTimeMs } from '../../hardware/modbus/rtu.js';
import { ModbusError } from '../../hardware/modbus/types.js';
import { startBaudRelay } from '../../sim/baud-relay.js';
import { ArrayRegisterBank } from '../../sim/modbus/bank.js';
import { buildRequestPdu, buildRtuFrame, parseResponsePdu, rtuCrcOk } from '../../sim/modbus/pdu.js';
import { startModbusRtuServer } from '../../sim/modbus/rtu-server.js';
import { openTtyLine } from '../../sim/modbus/tty-line.js';
import { openPtyPair, socatAvailable } from '../../sim/pty.js';
import { describeIfTool, fakeClock, pattern, patternRange } from './modbus-helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const range = (start: number, count: number) => Array.from({ length: count }, (_, i) => pattern(start + i));

function banks() {
  return new Map([
    [1, new ArrayRegisterBank({ holding: [patternRange(0, 200, true), patternRange(40000, 130)] })],
    [2, new ArrayRegisterBank({ holding: [{ start: 0, values: [0xaaaa, 0xbbbb] }], input: [patternRange(0, 10)] })],
  ]);
}

async function line(options: { faults?: Parameters<typeof startModbusRtuServer>[0]['faults'] } = {}) {
  const pair = await openPtyPair();
  cleanups.push(() => pair.close());
  const server = await startModbusRtuServer({ path: pair.a, baudRate: 9600, units: banks(), ...options });
  cleanups.push(() => server.close());
  return { pair, server };
}

function rtuBus(path: string, options: Partial<ModbusBusOptions> = {}, clock = wallClock()) {
  const bus = openModbusBus(
    { kind: 'rtu', name: 'rs485-1', path, baudRate: 9600, timeoutMs: 500, ...options } as ModbusBusOptions,
    { clock },
  );
  cleanups.push(() => bus.close());
  return bus;
}

async function rejection(p: Promise<unknown>): Promise<ModbusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ModbusError);
    return err as ModbusError;
  }
  throw new Error('expected a rejection');
}

/** Writes bytes onto the line from the agent's side, as noise from another transmitter would appear. */
function inject(path: string, bytes: Buffer) {
  const fd = openSync(path, constants.O_WRONLY | constants.O_NOCTTY);
  try {
    writeSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

const describeRtu = describeIfTool('socat', 'socat', socatAvailable());

describeRtu('Modbus RTU client over a pty pair <-> simulator RTU server', () => {
  it('reads and writes, with two unit ids on one line', async () => {
    const { pair, server } = await line();
    const bus = rtuBus(pair.b);
    expect(await bus.read(1, 3, 40000, 125)).toEqual(range(40000, 125));
    expect(await bus.read(2, 3, 0, 2)).toEqual([0xaaaa, 0xbbbb]);
    expect(await bus.read(2, 4, 3, 4)).toEqual(range(3, 4));
    await bus.write(1, 10, [1, 2, 3]);
    expect(await bus.read(1, 3, 10, 3)).toEqual([1, 2, 3]);
    const err = await rejection(bus.read(2, 3, 100, 1));
    expect(err.kind).toBe('exception');
    expect(err.message).toContain(
      `bus "rs485-1" (${pair.b} at 9600 baud) unit 2: read holding 100+1 failed: exception 2 (illegal data address)`,
    );
    expect(server.stats().byUnit).toEqual(
      new Map([
        [1, 3],
        [2, 3],
      ]),
    );
  });

  it('writes single registers with FC 6 when configured', async () => {
    const { pair } = await line({ faults: [{ kind: 'exception', fn: 16, code: 1 }] });
    const bus = rtuBus(pair.b, { writeSingle: true });
    await bus.write(1, 5, [4242]);
    expect(await bus.read(1, 3, 5, 1)).toEqual([4242]);
    expect((await rejection(bus.write(1, 5, [1, 2]))).details.exceptionCode).toBe(1);
  });

  it('a bad CRC on the answer is a bad-response, retried once; the device recovers', async () => {
    const { pair, server } = await line({ faults: [{ kind: 'bad-crc', unit: 1, times: 2 }] });
    const clock = fakeClock();
    const bus = rtuBus(pair.b, { timeoutMs: 300 }, clock);
    const err = await rejection(bus.read(1, 3, 0, 4));
    expect(err.kind).toBe('bad-response');
    expect(err.message).toMatch(/unit 1: read holding 0\+4 failed: an answer arrived but its CRC was wrong/);
    expect(server.stats().byUnit.get(1)).toBe(2); // request + one retry
    expect(bus.health(1).state).toBe('offline');
    // unit 2 on the same line is unaffected
    expect(await bus.read(2, 3, 0, 1)).toEqual([0xaaaa]);
    clock.advance(1000);
    expect(await bus.read(1, 3, 0, 4)).toEqual(range(0, 4));
    expect(bus.health(1).state).toBe('online');
  });

  it('a device that does not answer times out, and the line keeps working for the others', async () => {
    const { pair, server } = await line({ faults: [{ kind: 'no-answer', unit: 2 }] });
    const clock = fakeClock();
    const bus = rtuBus(pair.b, { timeoutMs: 300 }, clock);
    const err = await rejection(bus.read(2, 3, 0, 1));
    expect(err.kind).toBe('timeout');
    expect(err.message).toMatch(/no answer within 300 ms: check the wiring .*baud rate 9600 and parity none/);
    expect((await rejection(bus.read(2, 3, 0, 1))).kind).toBe('backoff');
    expect(await bus.read(1, 3, 0, 2)).toEqual(range(0, 2));
    expect(server.stats().byUnit.get(2)).toBe(2);
  });

  it('garbage on the line before a request does not stop the right answer', async () => {
    const { pair, server } = await line();
    const bus = rtuBus(pair.b);
    expect(await bus.read(1, 3, 0, 1)).toEqual([pattern(0)]); // port open
    // noise, a truncated frame for unit 1, and an FC 16 header promising 128 bytes that never come
    inject(pair.b, Buffer.from('ff00550103000001011000000040800102', 'hex'));
    expect(await bus.read(1, 3, 40010, 20)).toEqual(range(40010, 20));
    expect(await bus.read(2, 3, 0, 2)).toEqual([0xaaaa, 0xbbbb]);
    expect(server.stats().discarded).toBeGreaterThan(0);
  });

  it('an answer from the wrong unit id is a bad-response naming both ids', async () => {
    const { pair } = await line({ faults: [{ kind: 'wrong-unit', unit: 1, answerAs: 5, times: 1 }] });
    const bus = rtuBus(pair.b, {}, fakeClock());
    const err = await rejection(bus.read(1, 3, 0, 2));
    expect(err.kind).toBe('bad-response');
    expect(err.message).toMatch(/came from unit 5 instead of 1/);
  });

  it('the server gives no answer to a request with a bad CRC, and resynchronises', async () => {
    const { pair, server } = await line();
    const master = openTtyLine(pair.b);
    cleanups.push(() => master.close());
    let received = Buffer.alloc(0);
    master.onData((chunk) => {
      received = Buffer.concat([received, chunk]);
    });
    const good = buildRtuFrame(1, buildRequestPdu({ fn: 3, start: 7, count: 2 }));
    const bad = Buffer.from(good);
    bad[bad.length - 1]! ^= 0x01;
    master.write(Buffer.concat([bad, good]));
    for (let i = 0; i < 500 && received.length < 9; i++) await new Promise((r) => setTimeout(r, 10));
    expect(received.length).toBe(9);
    expect(rtuCrcOk(received, 0, 9)).toBe(true);
    expect(parseResponsePdu(received.subarray(1, 7))).toEqual({ fn: 3, values: range(7, 2) });
    expect(server.stats()).toMatchObject({ requests: 1, answers: 1 });
  });

  it('reports a serial port that cannot be opened, with the path and what to check', async () => {
    const bus = rtuBus('/dev/ttyNOPE-mgmc-test', { retries: 0 }, fakeClock());
    const err = await rejection(bus.read(1, 3, 0, 1));
    expect(err.kind).toBe('connection');
    expect(err.message).toContain(
      'bus "rs485-1" (/dev/ttyNOPE-mgmc-test at 9600 baud) unit 1: read holding 0+1 failed',
    );
    expect(err.message).toMatch(/adapter is plugged in/);
  });

  it('RTU over TCP (transparent serial gateway) reaches the same devices', async () => {
    const { pair } = await line();
    // The gateway: one TCP client at a time, bytes passed to and from the serial line unchanged.
    const serial = openTtyLine(pair.b);
    let client: Socket | undefined;
    serial.onData((chunk) => client?.write(chunk));
    const gateway = createServer((socket) => {
      client = socket;
      socket.on('data', (d: Buffer) => serial.write(d));
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', () => r()));
    cleanups.push(async () => {
      client?.destroy();
      await new Promise((r) => gateway.close(r));
      await serial.close();
    });
    const address = gateway.address();
    if (address === null || typeof address === 'string') throw new Error('no gateway port');
    const bus = openModbusBus(
      { kind: 'rtu-over-tcp', name: 'gw', host: '127.0.0.1', port: address.port, timeoutMs: 500 },
      { clock: wallClock() },
    );
    cleanups.push(() => bus.close());
    expect(await bus.read(1, 3, 40000, 125)).toEqual(range(40000, 125));
    await bus.write(1, 3, [9]);
    expect(await bus.read(1, 3, 2, 3)).toEqual([pattern(2), 9, pattern(4)]);
    expect(await bus.read(2, 4, 0, 3)).toEqual(range(0, 3));
    expect(bus.endpoint).toBe(`127.0.0.1:${address.port} (RTU over TCP)`);
  });

  it('through the baud relay, a 125-register read at 9600 baud takes at least the wire time', async () => {
    const agentSide = await openPtyPair();
    cleanups.push(() => agentSide.close());
    const deviceSide = await openPtyPair();
    cleanups.push(() => deviceSide.close());
    const relay = startBaudRelay({ from: agentSide.a, to: deviceSide.a, baudRate: 9600, bitsPerChar: 11 });
    cleanups.push(() => relay.close());
    const server = await startModbusRtuServer({ path: deviceSide.b, baudRate: 9600, units: banks() });
    cleanups.push(() => server.close());
    const bus = rtuBus(agentSide.b, { timeoutMs: 2000 });
    expect(await bus.read(1, 3, 0, 1)).toEqual([pattern(0)]); // open the port outside the measurement
    const started = performance.now();
    expect(await bus.read(1, 3, 40000, 125)).toEqual(range(40000, 125));
    const elapsed = performance.now() - started;
    const wire = rtuWireTimeMs(8 + 255, 9600, 11); // request + answer characters: physics, a lower bound
    expect(elapsed).toBeGreaterThanOrEqual(0.9 * wire);
    expect(relay.stats()).toEqual({ forward: 16, backward: 7 + 255 });
  });
});
