import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { checkMeterBatch } from '../../../agent/ledger/meter-batch.js';
import {
  encodeReadingBatch,
  meterAddressFromPrivateKey,
  type ReadingBatch,
  signReadingBatch,
} from '../../../firmware-bridge/batch.js';
import { encodeFrameForWire, FrameDecoder } from '../../../firmware-bridge/frame.js';
import {
  type LinkErrorEvent,
  type MeterHello,
  MeterLink,
  type MeterLinkOptions,
  type ReceivedBatch,
  truncateUtf8,
} from '../../../firmware-bridge/link.js';
import {
  AckStatus,
  CommandStatus,
  decodeMessage,
  encodeMessage,
  type Message,
  MessageType,
  NackCode,
} from '../../../firmware-bridge/messages.js';
import { FirmwarePeer } from '../../../sim/firmware-peer.js';

const key = (n: number) => {
  const k = new Uint8Array(32);
  k[31] = n;
  return k;
};
const KEY1 = key(1);
const KEY2 = key(2);
const METER1 = meterAddressFromPrivateKey(KEY1);
const METER2 = meterAddressFromPrivateKey(KEY2);
const T0 = 1_717_200_000_000;

class End extends Duplex {
  other: End | undefined;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.other?.push(chunk);
    cb();
  }
}

/** Two connected in-memory stream ends: what one writes, the other reads. */
function streamPair(): [End, End] {
  const a = new End();
  const b = new End();
  a.other = b;
  b.other = a;
  return [a, b];
}

/** Lets stream events and promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function batchPayload(counter: number, meter = METER1, powerW = 1000): Uint8Array {
  const batch: ReadingBatch = {
    meter,
    counter,
    flags: 0,
    startMs: T0 + counter * 60_000,
    intervalMs: 30_000,
    channels: ['importWh', 'powerW'],
    samples: [
      [1000 + counter, powerW],
      [1001 + counter, powerW + 1],
    ],
  };
  return encodeReadingBatch(batch);
}

/** An agent-side MeterLink talking to a scripted meter end that records what the link sends. */
function setup(options: Partial<MeterLinkOptions> = {}) {
  const [agentEnd, meterEnd] = streamPair();
  const clock = new ManualClock(T0);
  const stored: ReceivedBatch[] = [];
  const errors: LinkErrorEvent[] = [];
  const hellos: MeterHello[] = [];
  const link = new MeterLink({
    stream: agentEnd,
    clock,
    requestHello: false,
    timeoutMs: 500,
    retries: 2,
    onBatch: async (b) => {
      stored.push(b);
    },
    ...options,
  });
  link.on('error', (e) => errors.push(e));
  link.on('hello', (h) => hellos.push(h));
  const sent: Message[] = [];
  const decoder = new FrameDecoder();
  meterEnd.on('data', (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) sent.push(decodeMessage(body));
  });
  const meter = {
    send(message: Message) {
      meterEnd.write(encodeFrameForWire(encodeMessage(message)));
    },
    raw(bytes: Uint8Array) {
      meterEnd.write(bytes);
    },
    hello(seq = 1, meterAddress = METER1, versions = [1]) {
      meter.send({
        type: 'hello',
        seq,
        meter: meterAddress,
        capabilities: 0,
        intervalMs: 60_000,
        lastBatchCounter: 0,
        versions,
        serial: 'S-1',
        firmware: 'fw 1.0',
      });
    },
    batch(seq: number, payload: Uint8Array, signWith = KEY1) {
      meter.send({ type: 'reading-batch', seq, payload, signature: signReadingBatch(payload, signWith) });
    },
  };
  link.start();
  return { link, clock, stored, errors, hellos, sent, meter, agentEnd, meterEnd };
}

const kinds = (errors: LinkErrorEvent[]) => errors.map((e) => e.kind);

describe('MeterLink: hello', () => {
  it('answers HELLO with HELLO_ACK (version 1, agent time), reports it once, re-acks a retransmission', async () => {
    const t = setup();
    t.meter.hello(5);
    await settle();
    expect(t.sent).toEqual([{ type: 'hello-ack', seq: 5, version: 1, agentTimeMs: T0 }]);
    expect(t.hellos).toHaveLength(1);
    expect(t.link.hello).toMatchObject({ meter: METER1, firmware: 'fw 1.0', serial: 'S-1', version: 1 });
    t.meter.hello(5);
    await settle();
    expect(t.sent).toHaveLength(2);
    expect(t.hellos).toHaveLength(1);
  });

  it('refuses a HELLO from another meter than the configured one: an error event and a NACK, no crash', async () => {
    const t = setup({ expectedMeter: METER2.toLowerCase() });
    t.meter.hello(1, METER1);
    await settle();
    expect(kinds(t.errors)).toEqual(['wrong-meter']);
    expect(t.errors[0]?.message).toContain(`says it is ${METER1}`);
    expect(t.errors[0]?.message).toContain('check which meter is wired to this port');
    expect(t.sent[0]).toMatchObject({
      type: 'nack',
      seq: 1,
      nackedType: MessageType.HELLO,
      code: NackCode.WRONG_METER,
    });
    expect(t.link.hello).toBeUndefined();
    t.meter.batch(2, batchPayload(1));
    await settle();
    expect(t.sent[1]).toMatchObject({ type: 'nack', code: NackCode.NOT_READY });
    expect(t.stored).toEqual([]);
  });

  it('refuses a HELLO offering no protocol version it speaks', async () => {
    const t = setup();
    t.meter.hello(1, METER1, [2, 3]);
    await settle();
    expect(kinds(t.errors)).toEqual(['no-common-version']);
    expect(t.sent[0]).toMatchObject({ type: 'nack', code: NackCode.UNSUPPORTED_VERSION });
  });

  it('asks for a HELLO on start, retries on the clock and reports a timeout without throwing', async () => {
    const t = setup({ requestHello: true });
    await settle();
    expect(t.sent).toEqual([{ type: 'command', seq: 1, command: { kind: 'send-hello' } }]);
    t.clock.advance(500);
    t.clock.advance(500);
    await settle();
    expect(t.sent).toHaveLength(3);
    expect(t.link.stats.retransmissions).toBe(2);
    t.clock.advance(500);
    await settle();
    expect(kinds(t.errors)).toEqual(['timeout']);
    expect(t.errors[0]?.message).toMatch(/did not answer COMMAND send-hello \(seq 1\) after 3 attempts of 500 ms/);
  });
});

describe('MeterLink: batches', () => {
  it('NACKs a batch before HELLO with not-ready', async () => {
    const t = setup();
    t.meter.batch(1, batchPayload(1));
    await settle();
    expect(t.sent).toEqual([
      {
        type: 'nack',
        seq: 1,
        nackedType: MessageType.READING_BATCH,
        code: NackCode.NOT_READY,
        detail: 'send HELLO first',
      },
    ]);
    expect(kinds(t.errors)).toEqual(['not-ready']);
  });

  it('acknowledges a batch only after the handler stored it, and delivers a retransmission once', async () => {
    const gate = deferred();
    const received: ReceivedBatch[] = [];
    const t = setup({
      onBatch: async (b) => {
        received.push(b);
        await gate.promise;
      },
    });
    t.meter.hello(1);
    await settle();
    const payload = batchPayload(7);
    t.meter.batch(2, payload);
    await settle();
    expect(received).toHaveLength(1);
    expect(t.sent.filter((m) => m.type === 'ack')).toEqual([]);
    t.meter.batch(2, payload); // retransmitted while it is being stored
    await settle();
    expect(received).toHaveLength(1);
    gate.resolve();
    await settle();
    expect(t.sent.filter((m) => m.type === 'ack')).toEqual([
      { type: 'ack', seq: 2, ackedType: MessageType.READING_BATCH, status: AckStatus.STORED, batchCounter: 7 },
    ]);
    const r = received[0]!;
    expect(r.batch.counter).toBe(7);
    expect(r.batch.samples).toEqual([
      [1007, 1000],
      [1008, 1001],
    ]);
    expect(checkMeterBatch(r.record)).toBeUndefined();
    t.meter.batch(2, payload); // retransmitted after the ACK was lost
    t.meter.batch(9, payload); // replayed under a new seq
    await settle();
    expect(t.sent.filter((m) => m.type === 'ack').map((m) => [m.seq, (m as { status: number }).status])).toEqual([
      [2, AckStatus.STORED],
      [2, AckStatus.DUPLICATE],
      [9, AckStatus.DUPLICATE],
    ]);
    expect(received).toHaveLength(1);
    expect(t.link.stats).toMatchObject({ batchesStored: 1, duplicates: 2 });
  });

  it('stores batches one at a time, in arrival order', async () => {
    const gates = [deferred(), deferred()];
    const order: string[] = [];
    const t = setup({
      onBatch: async (b) => {
        order.push(`start ${b.batch.counter}`);
        await gates[b.batch.counter - 1]!.promise;
        order.push(`end ${b.batch.counter}`);
      },
    });
    t.meter.hello(1);
    t.meter.batch(2, batchPayload(1));
    t.meter.batch(3, batchPayload(2));
    await settle();
    expect(order).toEqual(['start 1']);
    gates[0]!.resolve();
    await settle();
    gates[1]!.resolve();
    await settle();
    expect(order).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('NACKs store-failed when the handler rejects, and stores the retry', async () => {
    let fail = true;
    const t = setup({
      onBatch: async (b) => {
        if (fail) throw new Error('database is locked');
        t.stored.push(b);
      },
    });
    t.meter.hello(1);
    t.meter.batch(2, batchPayload(1));
    await settle();
    expect(t.sent[1]).toEqual({
      type: 'nack',
      seq: 2,
      nackedType: MessageType.READING_BATCH,
      code: NackCode.STORE_FAILED,
      detail: 'not stored: database is locked',
    });
    expect(kinds(t.errors)).toEqual(['store-failed']);
    fail = false;
    t.meter.batch(2, batchPayload(1));
    await settle();
    expect(t.sent[2]).toMatchObject({ type: 'ack', status: AckStatus.STORED, batchCounter: 1 });
    expect(t.stored).toHaveLength(1);
  });

  it('refuses a batch signed by another key (bad-signature) and one from another meter (wrong-meter)', async () => {
    const t = setup();
    t.meter.hello(1);
    t.meter.batch(2, batchPayload(1), KEY2);
    t.meter.batch(3, batchPayload(1, METER2), KEY2);
    t.meter.send({ type: 'reading-batch', seq: 4, payload: Uint8Array.of(1, 2, 3), signature: new Uint8Array(65) });
    await settle();
    expect(kinds(t.errors)).toEqual(['bad-signature', 'wrong-meter', 'bad-payload']);
    expect(t.errors[0]?.message).toContain(`names meter ${METER1} but was signed by ${METER2}`);
    expect(t.sent.slice(1).map((m) => (m as { code: number }).code)).toEqual([
      NackCode.BAD_SIGNATURE,
      NackCode.WRONG_METER,
      NackCode.BAD_PAYLOAD,
    ]);
    expect(t.stored).toEqual([]);
  });

  it('reports a gap in counters and a reused counter (delivering the second batch: nothing signed is lost)', async () => {
    const t = setup();
    t.meter.hello(1);
    t.meter.batch(2, batchPayload(1));
    t.meter.batch(3, batchPayload(4));
    t.meter.batch(4, batchPayload(4, METER1, 5));
    await settle();
    expect(kinds(t.errors).sort()).toEqual(['counter-reuse', 'gap']);
    expect(t.errors.find((e) => e.kind === 'gap')?.message).toMatch(
      /batch 4 .* follows batch 1: 2 batch\(es\) between were not received/,
    );
    expect(t.stored.map((b) => b.batch.counter)).toEqual([1, 4, 4]);
  });

  it('asks isStored about batches it does not remember (after a restart) and acks those as duplicates', async () => {
    const t = setup({ isStored: (b) => b.batch.counter === 3 });
    t.meter.hello(1);
    t.meter.batch(2, batchPayload(3));
    t.meter.batch(3, batchPayload(4));
    await settle();
    expect(t.sent.slice(1).map((m) => (m as { status: number }).status)).toEqual([
      AckStatus.DUPLICATE,
      AckStatus.STORED,
    ]);
    expect(t.stored.map((b) => b.batch.counter)).toEqual([4]);
  });

  it('forgets the oldest counters beyond rememberBatches', async () => {
    const t = setup({ rememberBatches: 2 });
    t.meter.hello(1);
    for (let c = 1; c <= 3; c++) t.meter.batch(c + 1, batchPayload(c));
    await settle();
    t.meter.batch(10, batchPayload(1));
    await settle();
    expect(t.stored.map((b) => b.batch.counter)).toEqual([1, 2, 3, 1]);
  });
});

describe('MeterLink: bad input and resynchronisation', () => {
  it('counts garbage and bad frames and still handles the next good frame', async () => {
    const t = setup();
    t.meter.raw(Uint8Array.of(0x13, 0x37, 0xff, 0x00, 0x05, 0x01, 0x00));
    const hello = encodeFrameForWire(
      encodeMessage({
        type: 'hello',
        seq: 1,
        meter: METER1,
        capabilities: 0,
        intervalMs: 1000,
        lastBatchCounter: 0,
        versions: [1],
        serial: '',
        firmware: '',
      }),
    );
    const corrupt = hello.slice();
    corrupt[10] = (corrupt[10] as number) ^ 0x40;
    t.meter.raw(corrupt);
    t.meter.raw(hello);
    await settle();
    expect(t.hellos).toHaveLength(1);
    expect(kinds(t.errors).sort()).toEqual(['crc', 'truncated', 'truncated']);
    expect(t.link.frameStats.frames).toBe(1);
  });

  it('NACKs a malformed request with its seq but never NACKs a malformed response', async () => {
    const t = setup();
    t.meter.raw(encodeFrameForWire(Uint8Array.of(1, MessageType.HELLO, 0, 9, 1, 2, 3)));
    t.meter.raw(encodeFrameForWire(Uint8Array.of(1, MessageType.COMMAND_ACK, 0, 9)));
    t.meter.raw(encodeFrameForWire(Uint8Array.of(9, MessageType.HELLO, 0, 10)));
    t.meter.raw(encodeFrameForWire(Uint8Array.of(1, 0x66, 0, 11)));
    await settle();
    expect(kinds(t.errors)).toEqual(['bad-message', 'bad-message', 'unsupported-version', 'unknown-type']);
    expect(t.sent.map((m) => [m.seq, (m as { code: number }).code])).toEqual([
      [9, NackCode.BAD_MESSAGE],
      [10, NackCode.UNSUPPORTED_VERSION],
      [11, NackCode.UNKNOWN_TYPE],
    ]);
  });

  it('refuses messages only an agent sends', async () => {
    const t = setup();
    t.meter.send({ type: 'time-sync', seq: 3, agentTimeMs: 1, set: false });
    await settle();
    expect(kinds(t.errors)).toEqual(['unexpected']);
    expect(t.sent[0]).toMatchObject({ type: 'nack', seq: 3, code: NackCode.BAD_MESSAGE });
  });

  it('reports responses that match no waiting request', async () => {
    const t = setup();
    t.meter.send({ type: 'time-sync-reply', seq: 77, agentTimeMs: 1, meterTimeMs: 2 });
    await settle();
    expect(kinds(t.errors)).toEqual(['late-response']);
  });
});

describe('MeterLink: time sync and commands', () => {
  it('measures the meter clock offset from the echoed agent time', async () => {
    const t = setup();
    const result = t.link.syncTime();
    await settle();
    const req = t.sent[0] as Extract<Message, { type: 'time-sync' }>;
    expect(req).toEqual({ type: 'time-sync', seq: 1, agentTimeMs: T0, set: false });
    t.clock.advance(40);
    t.meter.send({ type: 'time-sync-reply', seq: 1, agentTimeMs: T0, meterTimeMs: T0 + 20 + 5000 });
    expect(await result).toEqual({
      agentSentMs: T0,
      meterMs: T0 + 5020,
      agentReceivedMs: T0 + 40,
      rttMs: 40,
      offsetMs: 5000,
    });
  });

  it('retries TIME_SYNC with a fresh agent time under the same seq', async () => {
    const t = setup();
    const result = t.link.syncTime({ set: true });
    await settle();
    t.clock.advance(500);
    await settle();
    expect(t.sent.map((m) => [m.seq, (m as { agentTimeMs: number }).agentTimeMs])).toEqual([
      [1, T0],
      [1, T0 + 500],
    ]);
    t.meter.send({ type: 'time-sync-reply', seq: 1, agentTimeMs: T0 + 500, meterTimeMs: T0 + 500 });
    expect((await result).offsetMs).toBe(0);
  });

  it('runs commands and reports their status', async () => {
    const t = setup();
    const interval = t.link.setBatchInterval(300_000);
    await settle();
    expect(t.sent[0]).toEqual({ type: 'command', seq: 1, command: { kind: 'set-interval', intervalMs: 300_000 } });
    t.meter.send({
      type: 'command-ack',
      seq: 1,
      commandId: 2,
      status: CommandStatus.OK,
      result: Uint8Array.of(0, 4, 0x93, 0xe0),
    });
    expect(await interval).toBe(300_000);
    const other = t.link.command({ kind: 'other', id: 99, args: new Uint8Array(0) });
    await settle();
    t.meter.send({
      type: 'command-ack',
      seq: 2,
      commandId: 99,
      status: CommandStatus.UNKNOWN_COMMAND,
      result: new Uint8Array(0),
    });
    expect(await other).toMatchObject({ status: 1, statusName: 'unknown-command' });
    const refused = t.link.requestBatch();
    await settle();
    t.meter.send({
      type: 'command-ack',
      seq: 3,
      commandId: 1,
      status: CommandStatus.FAILED,
      result: new Uint8Array(0),
    });
    await expect(refused).rejects.toThrow(/meter refused request-batch: failed/);
  });

  it('retries after a transient NACK and gives up on a permanent one', async () => {
    const t = setup();
    const a = t.link.requestBatch();
    await settle();
    t.meter.send({ type: 'nack', seq: 1, nackedType: MessageType.COMMAND, code: NackCode.BUSY, detail: '' });
    await settle();
    t.clock.advance(500);
    await settle();
    expect(t.sent).toHaveLength(2);
    t.meter.send({ type: 'command-ack', seq: 1, commandId: 1, status: CommandStatus.OK, result: new Uint8Array(0) });
    await a;
    const b = t.link.syncTime();
    await settle();
    t.meter.send({
      type: 'nack',
      seq: 2,
      nackedType: MessageType.TIME_SYNC,
      code: NackCode.BAD_MESSAGE,
      detail: 'nope',
    });
    await expect(b).rejects.toThrow(/the meter refused TIME_SYNC \(seq 2\): bad-message: nope/);
    expect(kinds(t.errors)).toEqual(['nack']);
  });

  it('rejects waiting requests on close and when the stream ends', async () => {
    const t = setup();
    const pending = t.link.syncTime();
    await t.link.close();
    await expect(pending).rejects.toThrow(/abandoned: the meter link was closed/);
    await expect(t.link.syncTime()).rejects.toThrow(/closed/);

    const u = setup();
    const waiting = u.link.syncTime();
    u.agentEnd.push(null);
    await expect(waiting).rejects.toThrow(/abandoned: the serial line was closed/);
    expect(kinds(u.errors)).toContain('stream');
  });

  it('checks its options', () => {
    const [a] = streamPair();
    const base = { stream: a, clock: new ManualClock(), onBatch: async () => {} };
    expect(() => new MeterLink({ ...base, timeoutMs: 0 })).toThrow(/timeoutMs must be a positive integer/);
    expect(() => new MeterLink({ ...base, expectedMeter: 'meter-1' })).toThrow(/expected meter address/);
  });

  it('truncates NACK details on a character boundary', () => {
    expect(truncateUtf8('abc', 10)).toBe('abc');
    expect(truncateUtf8('aé', 2)).toBe('a');
    expect(new TextEncoder().encode(truncateUtf8('⚡'.repeat(100), 255)).length).toBe(255);
  });
});

describe('MeterLink with the simulated firmware peer (manual clock)', () => {
  function run(faults: ConstructorParameters<typeof FirmwarePeer>[0]['faults'] = {}) {
    const [agentEnd, meterEnd] = streamPair();
    const clock = new ManualClock(T0);
    const stored: ReceivedBatch[] = [];
    const errors: LinkErrorEvent[] = [];
    const link = new MeterLink({
      stream: agentEnd,
      clock,
      timeoutMs: 300,
      retries: 5,
      expectedMeter: METER1,
      onBatch: async (b) => {
        stored.push(b);
      },
    });
    link.on('error', (e) => errors.push(e));
    const peer = new FirmwarePeer({
      privateKey: KEY1,
      stream: meterEnd,
      clock,
      readings: (t) => ({ importWh: Math.floor((t - T0) / 1000), powerW: 3600, voltageMv: 230_000 }),
      channels: ['importWh', 'powerW', 'voltageMv'],
      batchIntervalMs: 10_000,
      sampleIntervalMs: 2_500,
      retransmitMs: 1_000,
      clockOffsetMs: 90_000,
      faults,
    });
    /** Advances the clock in small steps, letting streams deliver between them. */
    const advance = async (ms: number, step = 100) => {
      for (let t = 0; t < ms; t += step) {
        clock.advance(step);
        await settle();
      }
    };
    return { link, peer, clock, stored, errors, advance };
  }

  it('says HELLO, delivers signed batches in order, syncs and sets the clock', async () => {
    const r = run();
    r.link.start();
    await r.peer.start();
    await r.advance(31_000);
    expect(r.link.hello?.meter).toBe(METER1);
    expect(r.stored.map((b) => b.batch.counter)).toEqual([1, 2, 3]);
    for (const b of r.stored) expect(checkMeterBatch(b.record)).toBeUndefined();
    expect(r.stored[0]?.batch.samples.length).toBe(4);
    expect(r.peer.acked).toEqual([1, 2, 3]);
    // the offset is exact up to half the round trip (the meter answers somewhere inside it)
    const sync = r.link.syncTime({ set: false });
    await r.advance(100);
    const measured = await sync;
    expect(Math.abs(measured.offsetMs - 90_000)).toBeLessThanOrEqual(measured.rttMs / 2);
    const set = r.link.syncTime({ set: true });
    await r.advance(100);
    const after = await set;
    expect(Math.abs(after.offsetMs)).toBeLessThanOrEqual(after.rttMs); // set to the send time: behind by up to one trip
    await r.peer.stop();
    await r.link.close();
  });

  it('recovers from corrupted CRCs and garbage by retransmission; nothing is lost or doubled', async () => {
    const r = run({ corruptCrcEvery: 3, garbageBetweenFrames: 12 });
    r.link.start();
    await r.peer.start();
    await r.advance(61_000);
    expect(r.stored.map((b) => b.batch.counter)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.peer.stats.crcCorrupted).toBeGreaterThan(0);
    expect(r.link.stats.errors.crc).toBeGreaterThan(0);
    expect(r.peer.stats.retransmissions).toBeGreaterThan(0);
    const interval = r.link.setBatchInterval(20_000);
    await r.advance(2_000);
    expect(await interval).toBe(20_000);
    await r.peer.stop();
    await r.link.close();
  });

  it('acks a replayed batch as a duplicate and delivers it once; refuses a wrong-key batch', async () => {
    const r = run();
    r.link.start();
    await r.peer.start();
    await r.advance(11_000);
    expect(r.stored.map((b) => b.batch.counter)).toEqual([1]);
    r.peer.replay(1);
    await r.advance(500);
    expect(r.stored).toHaveLength(1);
    expect(r.peer.stats.duplicateAcks).toBe(1);
    r.peer.faults.wrongKey = KEY2;
    const forged = r.peer.emitBatch();
    await r.advance(500);
    expect(r.errors.map((e) => e.kind)).toContain('bad-signature');
    expect(r.peer.stats.batchesRefused).toBe(1);
    expect(r.stored.map((b) => b.batch.counter)).not.toContain(forged);
    r.peer.faults.wrongKey = undefined;
    const next = r.peer.emitBatch();
    await r.advance(500);
    expect(r.stored.map((b) => b.batch.counter)).toEqual([1, next]);
    await r.peer.stop();
    await r.link.close();
  });

  it('keeps batches while the line is silent and sends them afterwards; request-batch closes one now', async () => {
    const r = run();
    r.link.start();
    await r.peer.start();
    await r.advance(1_000);
    r.peer.faults.silent = true;
    await r.advance(30_000);
    expect(r.stored).toEqual([]);
    expect(r.peer.pendingCounters).toEqual([1, 2, 3]);
    r.peer.faults.silent = false;
    await r.advance(2_000);
    expect(r.stored.map((b) => b.batch.counter)).toEqual([1, 2, 3]);
    const req = r.link.requestBatch();
    await r.advance(500);
    await req;
    expect(r.stored.map((b) => b.batch.counter)).toEqual([1, 2, 3, 4]);
    await r.peer.stop();
    await r.link.close();
  });
});
