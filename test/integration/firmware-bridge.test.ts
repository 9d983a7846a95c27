/**
 * The agent's MeterLink and the simulated signing meter (sim/firmware-peer.ts) over a real pseudo-terminal pair made by
 * socat, each end opened through hardware/serial/port.ts (the serialport package), as on a gateway with a USB adapter.
 * Waits are deadlines for something to happen, never assertions about how long it took.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { addressFromPrivateKey } from '../../agent/identity/keys.js';
import { checkMeterBatch } from '../../agent/ledger/meter-batch.js';
import { meterBatchRecordBody } from '../../firmware-bridge/batch.js';
import {
  type LinkErrorEvent,
  MeterLink,
  type MeterLinkOptions,
  type ReceivedBatch,
} from '../../firmware-bridge/link.js';
import { NackCode } from '../../firmware-bridge/messages.js';
import { wallClock } from '../../hardware/clock.js';
import { closeSerialPort, listSerialPorts, openSerialPort, type SerialLine } from '../../hardware/serial/port.js';
import { FirmwarePeer, type FirmwarePeerOptions } from '../../sim/firmware-peer.js';
import { openPtyPair, type PtyPair, socatAvailable } from '../../sim/pty.js';

const HAVE_SOCAT = socatAvailable();
if (!HAVE_SOCAT && !process.env.CI) {
  console.warn('firmware-bridge integration tests SKIPPED: socat is not installed (apt-get install socat)');
}
const describePty = HAVE_SOCAT || process.env.CI ? describe : describe.skip;

const key = (n: number) => {
  const k = new Uint8Array(32);
  k[31] = n;
  return k;
};
const METER_KEY = key(1);
const OTHER_KEY = key(2);
const METER = addressFromPrivateKey(METER_KEY);
const OTHER = addressFromPrivateKey(OTHER_KEY);

/** Resolves when `condition` holds; rejects naming `what` after a generous deadline. */
async function until(what: string, condition: () => boolean, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Rig {
  pair: PtyPair;
  line: SerialLine;
  link: MeterLink;
  peer: FirmwarePeer;
  stored: ReceivedBatch[];
  errors: LinkErrorEvent[];
}

let rig: Rig | undefined;

async function start(
  peerOptions: Partial<FirmwarePeerOptions> = {},
  linkOptions: Partial<MeterLinkOptions> = {},
): Promise<Rig> {
  const pair = await openPtyPair();
  const clock = wallClock();
  const line = await openSerialPort({ path: pair.b, baudRate: 115200 });
  const stored: ReceivedBatch[] = [];
  const errors: LinkErrorEvent[] = [];
  const link = new MeterLink({
    stream: line,
    clock,
    timeoutMs: 300,
    retries: 8,
    expectedMeter: METER,
    onBatch: async (b) => {
      await new Promise((r) => setTimeout(r, 5)); // a store that takes a moment, as a disk does
      stored.push(b);
    },
    ...linkOptions,
  });
  link.on('error', (e) => errors.push(e));
  link.start();
  const peer = new FirmwarePeer({
    privateKey: METER_KEY,
    path: pair.a,
    clock,
    readings: (t) => ({
      importWh: Math.floor(t / 1000) % 1_000_000_000,
      exportWh: 17,
      powerW: 1200 - (Math.floor(t / 100) % 2400),
      voltageMv: 230_000 + (t % 1000),
      currentMa: 5_200,
      frequencyMhz: 50_000,
    }),
    batchIntervalMs: 400,
    sampleIntervalMs: 100,
    retransmitMs: 150,
    clockOffsetMs: 3_600_000,
    serial: 'SIM-42',
    firmware: 'sim 1.2.3',
    ...peerOptions,
  });
  await peer.start();
  rig = { pair, line, link, peer, stored, errors };
  return rig;
}

afterEach(async () => {
  if (rig === undefined) return;
  const { pair, line, link, peer } = rig;
  rig = undefined;
  await peer.stop();
  await link.close();
  await closeSerialPort(line);
  await pair.close();
});

const counters = (r: Rig) => r.stored.map((b) => b.batch.counter);

describePty('firmware-bridge over a socat pty pair', () => {
  it('says HELLO, delivers signed batches that the ledger verifies, syncs time and runs commands', async () => {
    const r = await start();
    await until('three stored batches', () => r.stored.length >= 3);
    expect(r.link.hello).toMatchObject({ meter: METER, serial: 'SIM-42', firmware: 'sim 1.2.3', version: 1 });
    const c = counters(r);
    expect(c.slice(0, 3)).toEqual([1, 2, 3]);
    for (const b of r.stored) {
      expect(checkMeterBatch(b.record)).toBeUndefined();
      expect(b.record.meter).toBe(METER);
      expect(b.batch.samples.length).toBeGreaterThanOrEqual(1);
    }
    const sync = await r.link.syncTime();
    expect(Math.abs(sync.offsetMs - 3_600_000)).toBeLessThanOrEqual(sync.rttMs / 2 + 1);
    const set = await r.link.syncTime({ set: true });
    expect(Math.abs(set.offsetMs)).toBeLessThanOrEqual(set.rttMs + 1);
    expect(await r.link.setBatchInterval(1000)).toBe(1000);
    const before = r.stored.length;
    await r.link.requestBatch();
    await until('the requested batch', () => r.stored.length > before);
    await until('every made batch acknowledged', () => r.peer.pendingCounters.length === 0);
    expect(counters(r)).toEqual(Array.from({ length: r.stored.length }, (_, i) => i + 1));
    expect(r.errors.filter((e) => e.kind !== 'late-response')).toEqual([]);
  });

  it('resynchronises after garbage and recovers corrupted frames by retransmission: nothing lost or doubled', async () => {
    const r = await start({ faults: { garbageBetweenFrames: 24, corruptCrcEvery: 4 } });
    await until('six stored batches', () => r.stored.length >= 6);
    const sync = await r.link.syncTime();
    expect(sync.meterMs).toBeGreaterThan(0);
    const c = counters(r);
    expect(c).toEqual(Array.from({ length: c.length }, (_, i) => i + 1));
    expect(r.peer.stats.crcCorrupted).toBeGreaterThan(0);
    expect(r.peer.stats.garbageBytes).toBeGreaterThan(0);
    expect(r.link.stats.errors.crc).toBeGreaterThan(0);
    expect(r.peer.stats.retransmissions).toBeGreaterThan(0);
    for (const b of r.stored) expect(checkMeterBatch(b.record)).toBeUndefined();
  });

  it('delivers a replayed batch once and detects a batch signed with the wrong key', async () => {
    const r = await start({ batchIntervalMs: 60_000 });
    await until('the HELLO', () => r.link.hello !== undefined);
    const first = r.peer.emitBatch();
    await until('the first batch acknowledged', () => r.peer.acked.includes(first));
    r.peer.replay(first);
    await until('the replay acknowledged as a duplicate', () => r.peer.stats.duplicateAcks >= 1);
    expect(counters(r)).toEqual([first]);
    expect(r.link.stats.duplicates).toBe(1);

    r.peer.faults.wrongKey = OTHER_KEY;
    const forged = r.peer.emitBatch();
    await until('the forged batch refused', () => r.peer.stats.batchesRefused >= 1);
    const refusal = r.errors.find((e) => e.kind === 'bad-signature');
    expect(refusal?.message).toContain(`names meter ${METER} but was signed by ${OTHER}`);
    expect(r.peer.nacks.map((n) => n.code)).toContain(NackCode.BAD_SIGNATURE);
    expect(counters(r)).not.toContain(forged);
    const made = r.peer.lastMade!;
    expect(checkMeterBatch(meterBatchRecordBody(made.payload, made.signature))).toBe(
      `meter batch says meter ${METER} but was signed by ${OTHER}`,
    );

    r.peer.faults.wrongKey = undefined;
    const next = r.peer.emitBatch();
    await until('the next good batch', () => counters(r).includes(next));
    expect(counters(r)).toEqual([first, next]);
  });

  it('reports a meter that is not the configured one and keeps running', async () => {
    const r = await start({}, { expectedMeter: OTHER });
    await until('a wrong-meter error', () => r.errors.some((e) => e.kind === 'wrong-meter'));
    expect(r.errors.find((e) => e.kind === 'wrong-meter')?.message).toContain(`says it is ${METER}`);
    expect(r.link.hello).toBeUndefined();
    await new Promise((res) => setTimeout(res, 600)); // let batches fall due: none may be stored
    expect(r.stored).toEqual([]);
    expect(r.peer.nacks.some((n) => n.code === NackCode.WRONG_METER)).toBe(true);
  });
});

describe('hardware/serial/port.ts', () => {
  it('explains a missing device', async () => {
    await expect(openSerialPort({ path: '/dev/ttyUSB-mgmc-missing', baudRate: 9600 })).rejects.toThrow(
      'no such serial device /dev/ttyUSB-mgmc-missing: check the cable and `ls /dev/serial/by-id`',
    );
  });

  it('refuses bad settings before touching the device', async () => {
    await expect(openSerialPort({ path: '/dev/null', baudRate: 0 })).rejects.toThrow(
      /baud rate must be a positive integer/,
    );
    await expect(openSerialPort({ path: '/dev/null', baudRate: 9600, parity: 'sometimes' as 'none' })).rejects.toThrow(
      /parity must be one of none, even, odd, mark, space/,
    );
  });

  it('says a non-tty is not a serial device', async () => {
    await expect(openSerialPort({ path: '/dev/null', baudRate: 9600 })).rejects.toThrow(
      /not a serial device|could not open/,
    );
  });

  it('lists ports, or says why it cannot (no udevadm in containers)', async () => {
    const listed = await listSerialPorts();
    expect(Array.isArray(listed.ports)).toBe(true);
    const failing = await listSerialPorts({
      list: async () => {
        throw Object.assign(new Error('spawn udevadm ENOENT'), { code: 'ENOENT' });
      },
      byIdDir: '/nonexistent-mgmc',
    });
    expect(failing).toEqual({
      ports: [],
      reason:
        'udevadm is not available (common in containers), so serial ports cannot be listed: give the device path ' +
        'directly, e.g. /dev/ttyUSB0',
    });
  });
});
