/**
 * The Modbus client against the simulator's TCP server on loopback: real sockets, scripted faults, a fake clock for
 * back-off decisions. Nothing here asserts how long something took; dead devices are shown by counting requests.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { wallClock } from '../../hardware/clock.js';
import { openModbusBus, type TcpBusOptions } from '../../hardware/modbus/client.js';
import { ModbusError } from '../../hardware/modbus/types.js';
import { ArrayRegisterBank } from '../../sim/modbus/bank.js';
import { buildMbapFrame, buildRequestPdu, parseResponsePdu } from '../../sim/modbus/pdu.js';
import { type ModbusTcpServerHandle, startModbusTcpServer } from '../../sim/modbus/tcp-server.js';
import { describeIfTool, fakeClock, pattern, patternRange, toolRuns } from './modbus-helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function makeBanks() {
  const one = new ArrayRegisterBank({
    holding: [patternRange(0, 200, true), patternRange(40000, 130)],
    input: [patternRange(30000, 10)],
  });
  const two = new ArrayRegisterBank({ holding: [patternRange(0, 50)] });
  return new Map([
    [1, one],
    [2, two],
  ]);
}

async function server(options: Partial<Parameters<typeof startModbusTcpServer>[0]> = {}) {
  const s = await startModbusTcpServer({ units: makeBanks(), ...options });
  cleanups.push(() => s.close());
  return s;
}

function bus(s: { host: string; port: number }, options: Partial<TcpBusOptions> = {}, clock = wallClock()) {
  const b = openModbusBus(
    { kind: 'tcp', name: 'lan', host: s.host, port: s.port, timeoutMs: 400, ...options },
    { clock },
  );
  cleanups.push(() => b.close());
  return b;
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

const range = (start: number, count: number) => Array.from({ length: count }, (_, i) => pattern(start + i));
const sent = (s: ModbusTcpServerHandle, unit: number) => s.stats().byUnit.get(unit) ?? 0;

describe('Modbus TCP client <-> simulator server', () => {
  it('reads holding and input registers, 125 at a time', async () => {
    const s = await server();
    const b = bus(s);
    expect(await b.read(1, 3, 40000, 125)).toEqual(range(40000, 125));
    expect(await b.read(1, 4, 30000, 10)).toEqual(range(30000, 10));
    expect(await b.read(2, 3, 0, 1)).toEqual([pattern(0)]);
    expect(b.health(1)).toMatchObject({ state: 'online', consecutiveFailures: 0 });
    expect(b.stats()).toMatchObject({ sent: 3, connects: 1 });
  });

  it('writes with FC 16, and with FC 6 for single registers when configured', async () => {
    const s = await server();
    // The server refuses FC 16 on unit 1 from register 150 on: only FC 6 can get through there.
    s.faults.add({ kind: 'exception', unit: 1, fn: 16, code: 1, start: 150, end: 199 });
    const multi = bus(s);
    const single = bus(s, { name: 'lan-fc6', writeSingle: true });

    await multi.write(1, 10, [7, 8, 9]);
    expect(await multi.read(1, 3, 9, 5)).toEqual([pattern(9), 7, 8, 9, pattern(13)]);

    const refused = await rejection(multi.write(1, 150, [42]));
    expect(refused.kind).toBe('exception');
    expect(refused.details.exceptionCode).toBe(1);

    await single.write(1, 150, [42]);
    expect(await single.read(1, 3, 150, 1)).toEqual([42]);
    await single.write(1, 20, [1, 2]); // two registers: FC 16 even on a writeSingle bus
    expect(await single.read(1, 3, 20, 2)).toEqual([1, 2]);
  });

  it('maps exceptions to ModbusErrors a technician can act on, and keeps the device online', async () => {
    const s = await server();
    const b = bus(s);
    const err = await rejection(b.read(1, 3, 5000, 10));
    expect(err.kind).toBe('exception');
    expect(err.details).toEqual({ bus: 'lan', unit: 1, exceptionCode: 2 });
    expect(err.message).toContain(
      `bus "lan" (127.0.0.1:${s.port}) unit 1: read holding 5000+10 failed: exception 2 (illegal data address)`,
    );
    expect(err.message).toMatch(/register map/);
    const ro = await rejection(b.write(1, 40000, [1]));
    expect(ro.message).toContain('write 40000+1 failed: exception 2');
    expect(b.health(1).state).toBe('online');
    expect(await b.read(1, 3, 0, 2)).toEqual(range(0, 2));
  });

  it('refuses impossible requests before sending, naming the problem', async () => {
    const s = await server();
    const b = bus(s);
    expect((await rejection(b.read(1, 3, 0, 126))).message).toMatch(/1-125 registers, got 126/);
    expect((await rejection(b.read(1, 3, 65535, 2))).message).toMatch(/past address 65535/);
    expect((await rejection(b.write(1, 0, [70000]))).kind).toBe('refused');
    expect((await rejection(b.read(256, 3, 0, 1))).message).toMatch(/unit id/);
    expect(s.stats().requests).toBe(0);
  });

  it('times out on a device that does not answer, retrying once on a fresh connection', async () => {
    const s = await server();
    s.faults.add({ kind: 'no-answer', unit: 1 });
    const b = bus(s, { timeoutMs: 300 }, fakeClock());
    const err = await rejection(b.read(1, 3, 0, 10));
    expect(err.kind).toBe('timeout');
    expect(err.message).toContain(`bus "lan" (127.0.0.1:${s.port}) unit 1: read holding 0+10 failed: no answer`);
    expect(sent(s, 1)).toBe(2);
    expect(s.stats().connections).toBe(2);
    expect(b.health(1)).toMatchObject({ state: 'offline', consecutiveFailures: 1 });
  });

  it('answers late are not mistaken for the next answer (slow device, fresh connection)', async () => {
    const s = await server();
    s.faults.add({ kind: 'slow', unit: 1, delayMs: 700, times: 1 });
    const b = bus(s, { timeoutMs: 300 });
    expect(await b.read(1, 3, 0, 4)).toEqual(range(0, 4)); // the retry answered
    expect(await b.read(1, 3, 100, 4)).toEqual(range(100, 4));
    expect(s.stats().connections).toBe(2);
  });

  it('retries on a fresh connection after the device drops it', async () => {
    const s = await server();
    s.faults.add({ kind: 'disconnect', unit: 1, times: 1 });
    const b = bus(s);
    expect(await b.read(1, 3, 40000, 3)).toEqual(range(40000, 3));
    expect(s.stats().connections).toBe(2);
    expect(b.stats().connects).toBe(2);
    expect(b.health(1).state).toBe('online');
  });

  it('reports an answer from the wrong unit as bad-response', async () => {
    const s = await server();
    s.faults.add({ kind: 'wrong-unit', unit: 1, answerAs: 9 });
    const b = bus(s, {}, fakeClock());
    const err = await rejection(b.read(1, 3, 0, 2));
    expect(err.kind).toBe('bad-response');
    expect(err.message).toMatch(/came from unit 9 instead of 1/);
    expect(sent(s, 1)).toBe(1); // not retried
  });

  it('a dead unit does not slow another unit on the same server: back-off, one probe, recovery', async () => {
    const s = await server();
    s.faults.add({ kind: 'no-answer', unit: 2 });
    const clock = fakeClock();
    const b = bus(s, { timeoutMs: 300, backoff: { baseMs: 1000, factor: 2, maxMs: 8000 } }, clock);

    expect((await rejection(b.read(2, 3, 0, 1))).kind).toBe('timeout');
    expect(sent(s, 2)).toBe(2); // request + retry

    // Interleave: unit 2 is refused without touching the wire, unit 1 is served.
    const work: Array<Promise<unknown>> = [];
    for (let i = 0; i < 10; i++) {
      work.push(b.read(1, 3, i, 1));
      work.push(b.read(2, 3, 0, 1).catch((e: unknown) => e));
    }
    const results = await Promise.all(work);
    for (let i = 0; i < 10; i++) {
      expect(results[2 * i]).toEqual([pattern(i)]);
      expect(results[2 * i + 1]).toBeInstanceOf(ModbusError);
      expect((results[2 * i + 1] as ModbusError).kind).toBe('backoff');
    }
    expect(sent(s, 2)).toBe(2);
    expect(sent(s, 1)).toBe(10);
    expect(b.stats().refusedBackoff).toBe(10);
    const refused = (results[1] as ModbusError).message;
    expect(refused).toMatch(/unit 2: read holding 0\+1 not sent: the device is in back-off after 1 consecutive/);
    expect(refused).toMatch(/last error: no answer within 300 ms/);
    expect(b.health(2)).toMatchObject({ state: 'offline', backoffUntil: clock.now() + 1000 });

    // Wait over: exactly one probe goes out (no retry), fails, and the wait doubles.
    clock.advance(1000);
    expect(b.health(2).state).toBe('degraded');
    const probes = [b.read(2, 3, 0, 1), b.read(2, 3, 1, 1), b.read(2, 3, 2, 1)].map((p) => rejection(p));
    const kinds = (await Promise.all(probes)).map((e) => e.kind);
    expect(kinds).toEqual(['timeout', 'backoff', 'backoff']);
    expect(sent(s, 2)).toBe(3);
    expect(b.health(2)).toMatchObject({ state: 'offline', consecutiveFailures: 2, backoffUntil: clock.now() + 2000 });

    // The device comes back: the next probe succeeds and everything is normal again.
    s.faults.clear(2);
    clock.advance(2000);
    expect(await b.read(2, 3, 5, 2)).toEqual(range(5, 2));
    expect(b.health(2)).toMatchObject({ state: 'online', consecutiveFailures: 0, lastGood: clock.now() });
    expect(await b.read(2, 3, 0, 1)).toEqual([pattern(0)]);
  });

  it('goes unknown -> online -> offline -> degraded -> online', async () => {
    const s = await server();
    const clock = fakeClock();
    const b = bus(s, { timeoutMs: 300, retries: 0 }, clock);
    expect(b.health(1)).toEqual({ state: 'unknown', consecutiveFailures: 0 });
    await b.read(1, 3, 0, 1);
    const firstGood = clock.now();
    expect(b.health(1)).toEqual({ state: 'online', consecutiveFailures: 0, lastGood: firstGood });
    clock.advance(5000);
    s.faults.add({ kind: 'no-answer', unit: 1, times: 1 });
    await rejection(b.read(1, 3, 0, 1));
    const offline = b.health(1);
    expect(offline.state).toBe('offline');
    expect(offline.lastGood).toBe(firstGood);
    expect(offline.lastError).toMatch(/no answer within 300 ms/);
    clock.advance(1000);
    expect(b.health(1).state).toBe('degraded');
    await b.read(1, 3, 0, 1);
    expect(b.health(1)).toEqual({
      state: 'online',
      consecutiveFailures: 0,
      lastGood: clock.now(),
      lastError: offline.lastError,
    });
  });

  it('a dead bus does not affect another bus', async () => {
    const live = await server();
    // A "device" that accepts connections and never answers.
    const dead = await server({ units: makeBanks(), faults: [{ kind: 'no-answer' }] });
    const deadBus = bus(dead, { name: 'dead', timeoutMs: 5000 });
    const liveBus = bus(live, { name: 'live' });
    let deadSettled = false;
    const deadRead = deadBus.read(1, 3, 0, 1).then(
      () => {
        deadSettled = true;
      },
      () => {
        deadSettled = true;
      },
    );
    for (let i = 0; i < 20; i++) expect(await liveBus.read(1, 3, i, 1)).toEqual([pattern(i)]);
    expect(deadSettled).toBe(false);
    await deadBus.close();
    await deadRead;
  });

  it('serves many requests queued at once, correctly and in order, never overlapping on the wire', async () => {
    const s = await server();
    const b = bus(s);
    const done: number[] = [];
    const reads = Array.from({ length: 60 }, (_, i) =>
      b.read(i % 2 === 0 ? 1 : 2, 3, i % 40, 1 + (i % 5)).then((v) => {
        done.push(i);
        return v;
      }),
    );
    const values = await Promise.all(reads);
    values.forEach((v, i) => {
      expect(v).toEqual(range(i % 40, 1 + (i % 5)));
    });
    expect(done).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(s.stats().maxInFlight).toBe(1);
  });

  it('rejects queued requests with "closed" when the bus is closed', async () => {
    const s = await server();
    s.faults.add({ kind: 'slow', unit: 1, delayMs: 200 });
    const b = bus(s);
    expect(await b.read(1, 3, 0, 1)).toEqual([pattern(0)]); // connected
    const first = rejection(b.read(1, 3, 0, 1)); // on the wire, answer 200 ms away
    const second = rejection(b.read(1, 3, 1, 1)); // queued
    await new Promise((r) => setTimeout(r, 50));
    await b.close();
    expect((await first).kind).toBe('closed');
    const queued = await second;
    expect(queued.kind).toBe('closed');
    expect(queued.message).toContain(
      `bus "lan" (127.0.0.1:${s.port}) unit 1: read holding 1+1 failed: the bus is closed`,
    );
    expect((await rejection(b.read(1, 3, 0, 1))).kind).toBe('closed');
  });

  it('reports a refused connection with the endpoint and what to check', async () => {
    const s = await server();
    const port = s.port;
    await s.close();
    const b = bus({ host: '127.0.0.1', port }, { retries: 0 }, fakeClock());
    const err = await rejection(b.read(1, 3, 0, 1));
    expect(err.kind).toBe('connection');
    expect(err.message).toContain(`bus "lan" (127.0.0.1:${port}) unit 1: read holding 0+1 failed: cannot open`);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.message).toMatch(/Modbus TCP server is enabled/);
  });
});

describe('simulator TCP server on the wire', () => {
  async function raw(s: ModbusTcpServerHandle): Promise<Socket & { frames: Buffer[]; gone: Promise<void> }> {
    const socket = connect(s.port, s.host) as Socket & { frames: Buffer[]; gone: Promise<void> };
    socket.on('error', () => {});
    socket.frames = [];
    let buffer = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      while (buffer.length >= 6 && buffer.length >= 6 + buffer.readUInt16BE(4)) {
        const n = 6 + buffer.readUInt16BE(4);
        socket.frames.push(buffer.subarray(0, n));
        buffer = buffer.subarray(n);
      }
    });
    socket.gone = new Promise((r) => socket.on('close', () => r()));
    await new Promise((r) => socket.once('connect', r));
    cleanups.push(async () => {
      socket.destroy();
    });
    return socket;
  }
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  };

  it('answers pipelined requests in order, each with its transaction id', async () => {
    const s = await server();
    s.faults.add({ kind: 'slow', unit: 1, delayMs: 50, times: 1 });
    const socket = await raw(s);
    socket.write(
      Buffer.concat([
        buildMbapFrame(11, 1, buildRequestPdu({ fn: 3, start: 0, count: 2 })),
        buildMbapFrame(12, 2, buildRequestPdu({ fn: 3, start: 5, count: 1 })),
        buildMbapFrame(13, 1, buildRequestPdu({ fn: 4, start: 30000, count: 1 })),
      ]),
    );
    await until(() => socket.frames.length === 3);
    expect(socket.frames.map((f) => f.readUInt16BE(0))).toEqual([11, 12, 13]);
    expect(socket.frames.map((f) => f[6])).toEqual([1, 2, 1]);
    expect(parseResponsePdu(socket.frames[0]!.subarray(7))).toEqual({ fn: 3, values: range(0, 2) });
    expect(parseResponsePdu(socket.frames[2]!.subarray(7))).toEqual({ fn: 4, values: range(30000, 1) });
    expect(s.stats().maxInFlight).toBe(3);
  });

  it('ignores unknown units by default, or answers exception 0x0B as a gateway', async () => {
    const quiet = await server();
    const gateway = await server({ unknownUnit: 'gateway-exception' });
    const a = await raw(quiet);
    const b = await raw(gateway);
    const frame = buildMbapFrame(1, 77, buildRequestPdu({ fn: 3, start: 0, count: 1 }));
    const probe = buildMbapFrame(2, 1, buildRequestPdu({ fn: 3, start: 0, count: 1 }));
    a.write(Buffer.concat([frame, probe]));
    b.write(frame);
    await until(() => a.frames.length === 1 && b.frames.length === 1);
    expect(a.frames.map((f) => f.readUInt16BE(0))).toEqual([2]);
    expect(parseResponsePdu(b.frames[0]!.subarray(7))).toEqual({ fn: 3, exception: 11 });
  });

  it('closes a connection that sends a malformed frame, and keeps serving others', async () => {
    const s = await server();
    const bad = await raw(s);
    const good = await raw(s);
    bad.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await bad.gone;
    good.write(buildMbapFrame(5, 1, buildRequestPdu({ fn: 3, start: 1, count: 1 })));
    await until(() => good.frames.length === 1);
    expect(parseResponsePdu(good.frames[0]!.subarray(7))).toEqual({ fn: 3, values: [pattern(1)] });
    expect(s.stats().discarded).toBe(1);
  });
});

const mbpoll = describeIfTool('mbpoll', 'mbpoll', toolRuns('mbpoll', ['-V']));
mbpoll('mbpoll (an independent Modbus master) against the simulator', () => {
  it('reads 10 holding registers at 40000 (mbpoll reference 40001, 1-based)', async () => {
    const s = await server();
    const args = ['-m', 'tcp', '-a', '1', '-r', '40001', '-c', '10', '-t', '4', '-1', '-p', String(s.port), s.host];
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('mbpoll', args);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(out.code, out.stderr).toBe(0);
    const values = [...out.stdout.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(values).toEqual(range(40000, 10).map((v, i) => [40001 + i, v]));
  });
});
