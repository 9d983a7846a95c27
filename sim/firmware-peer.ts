/**
 * A simulated signing smart meter: the firmware side of docs/firmware-protocol.md, with its own secp256k1 key.
 *
 * It says HELLO until acknowledged, answers TIME_SYNC and COMMANDs, closes a batch of samples every batch interval
 * (or on request-batch), signs it, sends it and retransmits it until ACKed, keeping at most `maxUnacked` unacknowledged
 * batches (the oldest is dropped, and counted, when that overflows). Faults can be switched on at any time through
 * `faults`: garbage between frames, a corrupted CRC every Nth frame, batches signed with a wrong key, replays of
 * acknowledged batches, silence.
 */
import type { Duplex } from 'node:stream';
import {
  BatchFlag,
  type ChannelName,
  encodeReadingBatch,
  meterAddressFromPrivateKey,
  type ReadingBatch,
  signReadingBatch,
} from '../firmware-bridge/batch.js';
import { cobsEncode } from '../firmware-bridge/cobs.js';
import { crc16 } from '../firmware-bridge/crc16.js';
import { DEFAULT_MAX_BODY_BYTES, FrameDecoder } from '../firmware-bridge/frame.js';
import {
  AckStatus,
  Capability,
  CommandStatus,
  checkCommand,
  decodeMessage,
  encodeCommand,
  encodeMessage,
  isTransientNack,
  type Message,
  MessageError,
  MessageType,
  NackCode,
  PROTOCOL_VERSION,
} from '../firmware-bridge/messages.js';
import type { HardwareClock } from '../hardware/clock.js';
import { closeSerialPort, openSerialPort } from '../hardware/serial/port.js';

/** What the meter measures at time t: integers in the channel units (missing channels read as 0). */
export type MeterSample = Partial<Record<ChannelName, number>>;

/** Faults to inject; each can be changed while the peer runs. */
export interface FirmwareFaults {
  /** Bytes of pseudo-random garbage (including 0x00 bytes) written before every frame. */
  garbageBetweenFrames?: number;
  /** Flip a CRC bit in every Nth frame sent (1 = every frame). */
  corruptCrcEvery?: number;
  /** Sign new batches with this key instead of the meter's own (the payload still names the meter). */
  wrongKey?: Uint8Array;
  /** Send nothing at all (still receives and keeps making batches). */
  silent?: boolean;
}

/** How the simulated meter is built; privateKey, clock, readings and one of stream/path are required. */
export interface FirmwarePeerOptions {
  /** The meter's 32-byte secp256k1 private key. */
  readonly privateKey: Uint8Array;
  /** The line to talk on, or `path` to open a serial device (e.g. a pty end from sim/pty.ts). */
  readonly stream?: Duplex;
  readonly path?: string;
  /** Baud rate when opening `path` (default 115200; a pty ignores it). */
  readonly baudRate?: number;
  readonly clock: HardwareClock;
  /** The measurement source: the meter's readings at meter time t (ms). */
  readonly readings: (t: number) => MeterSample;
  /** Channels in each batch (default importWh, exportWh, powerW, voltageMv, currentMa, frequencyMhz). */
  readonly channels?: readonly ChannelName[];
  /** A batch every … ms (default 60 000). */
  readonly batchIntervalMs?: number;
  /** A sample every … ms inside a batch (default 15 000). */
  readonly sampleIntervalMs?: number;
  /** Retransmit an unanswered HELLO or batch after … ms (default 1000). */
  readonly retransmitMs?: number;
  /** Unacknowledged batches kept (default 64). */
  readonly maxUnacked?: number;
  /** Counter of the first batch (default 1), as if the meter had made batches before. */
  readonly firstCounter?: number;
  /** The meter's clock runs this far ahead of `clock` until a TIME_SYNC sets it (default 0). */
  readonly clockOffsetMs?: number;
  readonly serial?: string;
  readonly firmware?: string;
  readonly faults?: FirmwareFaults;
}

/** Counters of a FirmwarePeer. */
export interface FirmwarePeerStats {
  framesSent: number;
  framesReceived: number;
  badFramesReceived: number;
  batchesMade: number;
  batchesAcked: number;
  /** ACKs with status duplicate. */
  duplicateAcks: number;
  retransmissions: number;
  /** Batches dropped because more than maxUnacked were waiting. */
  batchesDropped: number;
  /** Batches the agent refused permanently (bad signature, wrong meter, …). */
  batchesRefused: number;
  nacksReceived: number;
  helloAcked: number;
  timeSyncs: number;
  commands: number;
  crcCorrupted: number;
  garbageBytes: number;
}

interface OutgoingBatch {
  readonly counter: number;
  readonly seq: number;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
  lastSentMs: number;
}

const DEFAULT_CHANNELS: readonly ChannelName[] = [
  'importWh',
  'exportWh',
  'powerW',
  'voltageMv',
  'currentMa',
  'frequencyMhz',
];
const CAPABILITIES =
  Capability.TIME_SET | Capability.SET_INTERVAL | Capability.REQUEST_BATCH | Capability.RESEND_UNACKED;

/** A simulated signing meter. start() to run, stop() to end. */
export class FirmwarePeer {
  /** The meter's address (from its key). */
  readonly address: string;
  /** Faults in force; assign fields to change them while running. */
  faults: FirmwareFaults;
  readonly stats: FirmwarePeerStats = {
    framesSent: 0,
    framesReceived: 0,
    badFramesReceived: 0,
    batchesMade: 0,
    batchesAcked: 0,
    duplicateAcks: 0,
    retransmissions: 0,
    batchesDropped: 0,
    batchesRefused: 0,
    nacksReceived: 0,
    helloAcked: 0,
    timeSyncs: 0,
    commands: 0,
    crcCorrupted: 0,
    garbageBytes: 0,
  };
  /** Counters of the batches the agent acknowledged as stored, in order. */
  readonly acked: number[] = [];
  /** The newest batch made (as signed, faults included), for tests and logs. */
  lastMade: { readonly counter: number; readonly payload: Uint8Array; readonly signature: Uint8Array } | undefined;
  /** NACKs received, newest last (code and detail), for tests and logs. */
  readonly nacks: { readonly code: number; readonly type: number; readonly detail: string }[] = [];

  private readonly clock: HardwareClock;
  private readonly channels: readonly ChannelName[];
  private readonly sampleIntervalMs: number;
  private readonly retransmitMs: number;
  private readonly maxUnacked: number;
  private batchIntervalMs: number;
  private stream: Duplex | undefined;
  private ownsStream = false;
  private readonly decoder: FrameDecoder;
  private readonly unacked = new Map<number, OutgoingBatch>();
  /** Recently acknowledged batches, for replay(). */
  private readonly history: OutgoingBatch[] = [];
  private nextCounter: number;
  private seq = 0;
  private offsetMs: number;
  private clockSet = false;
  private windowStartMs = 0;
  private helloSeq = 0;
  private helloAckedFlag = false;
  private helloLastSentMs = Number.NEGATIVE_INFINITY;
  private lastCommand: { seq: number; response: Message } | undefined;
  private batchTimer: { cancel(): void } | undefined;
  private retransmitTimer: { cancel(): void } | undefined;
  private framesWritten = 0;
  private garbageState = 0x2545f491;
  private running = false;
  private readonly onData = (chunk: Buffer | Uint8Array) => {
    for (const body of this.decoder.push(chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk))) {
      this.stats.framesReceived++;
      this.handle(body);
    }
  };

  constructor(private readonly options: FirmwarePeerOptions) {
    this.address = meterAddressFromPrivateKey(options.privateKey);
    this.clock = options.clock;
    this.channels = options.channels ?? DEFAULT_CHANNELS;
    this.batchIntervalMs = options.batchIntervalMs ?? 60_000;
    this.sampleIntervalMs = options.sampleIntervalMs ?? 15_000;
    this.retransmitMs = options.retransmitMs ?? 1000;
    this.maxUnacked = options.maxUnacked ?? 64;
    this.nextCounter = options.firstCounter ?? 1;
    this.offsetMs = options.clockOffsetMs ?? 0;
    this.faults = { ...(options.faults ?? {}) };
    if (!(this.sampleIntervalMs > 0) || !(this.batchIntervalMs >= this.sampleIntervalMs)) {
      throw new Error('firmware peer: need 0 < sampleIntervalMs <= batchIntervalMs');
    }
    if ((options.stream === undefined) === (options.path === undefined)) {
      throw new Error('firmware peer: give exactly one of `stream` and `path`');
    }
    this.decoder = new FrameDecoder({
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      onError: () => {
        this.stats.badFramesReceived++;
      },
    });
  }

  /** Opens the line (when given a path), says HELLO and starts the batch schedule. */
  async start(): Promise<void> {
    if (this.running) return;
    if (this.options.stream !== undefined) this.stream = this.options.stream;
    else {
      this.stream = await openSerialPort({
        path: this.options.path as string,
        baudRate: this.options.baudRate ?? 115200,
      });
      this.ownsStream = true;
    }
    this.running = true;
    this.stream.on('data', this.onData);
    this.windowStartMs = this.meterNow();
    this.scheduleBatch();
    this.sendHello();
    this.scheduleRetransmit();
  }

  /** Stops timers and detaches; closes the line when the peer opened it. Unacknowledged batches are kept. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.batchTimer?.cancel();
    this.retransmitTimer?.cancel();
    this.stream?.off('data', this.onData);
    if (this.ownsStream && this.stream !== undefined) await closeSerialPort(this.stream);
  }

  /** The meter's clock (ms). */
  meterNow(): number {
    return this.clock.now() + this.offsetMs;
  }

  /** Counters of batches made but not yet acknowledged. */
  get pendingCounters(): number[] {
    return [...this.unacked.keys()];
  }

  /** Closes the current batch now (as request-batch does) and sends it; returns its counter. */
  emitBatch(): number {
    const now = this.meterNow();
    const start = this.windowStartMs;
    // samples at start, start + interval, … up to now (at least one)
    const samples = now >= start ? Math.floor((now - start) / this.sampleIntervalMs) + 1 : 1;
    const counter = this.makeBatch(start, samples);
    this.windowStartMs = start + samples * this.sampleIntervalMs;
    this.scheduleBatch();
    return counter;
  }

  /**
   * Sends an already acknowledged batch again, unchanged and under a new seq, as a replay attack or a confused
   * firmware would. `counter` defaults to the newest acknowledged batch. Returns the counter replayed.
   */
  replay(counter?: number): number {
    const entry =
      counter === undefined ? this.history[this.history.length - 1] : this.history.find((h) => h.counter === counter);
    if (entry === undefined) throw new Error('firmware peer: no acknowledged batch to replay');
    this.send({
      type: 'reading-batch',
      seq: this.nextSeq(),
      payload: entry.payload,
      signature: entry.signature,
    });
    return entry.counter;
  }

  // -------------------------------------------------------------------------------------------------------------

  private makeBatch(startMs: number, sampleCount: number): number {
    const samples: number[][] = [];
    for (let i = 0; i < sampleCount; i++) {
      const reading = this.options.readings(startMs + i * this.sampleIntervalMs);
      samples.push(this.channels.map((c) => reading[c] ?? 0));
    }
    const batch: ReadingBatch = {
      meter: this.address,
      counter: this.nextCounter++,
      flags: this.clockSet ? 0 : BatchFlag.CLOCK_UNSYNCED,
      startMs,
      intervalMs: this.sampleIntervalMs,
      channels: this.channels,
      samples,
    };
    const payload = encodeReadingBatch(batch);
    const signature = signReadingBatch(payload, this.faults.wrongKey ?? this.options.privateKey);
    const out: OutgoingBatch = { counter: batch.counter, seq: this.nextSeq(), payload, signature, lastSentMs: 0 };
    this.stats.batchesMade++;
    this.lastMade = { counter: out.counter, payload, signature };
    this.unacked.set(out.counter, out);
    while (this.unacked.size > this.maxUnacked) {
      const oldest = this.unacked.keys().next().value as number;
      this.unacked.delete(oldest);
      this.stats.batchesDropped++;
    }
    if (this.helloAckedFlag) this.sendBatch(out);
    return out.counter;
  }

  private sendBatch(b: OutgoingBatch): void {
    b.lastSentMs = this.clock.now();
    this.send({ type: 'reading-batch', seq: b.seq, payload: b.payload, signature: b.signature });
  }

  private scheduleBatch(): void {
    this.batchTimer?.cancel();
    if (!this.running) return;
    const due = this.windowStartMs + this.batchIntervalMs - this.meterNow();
    this.batchTimer = this.clock.setTimeout(
      () => {
        this.batchTimer = undefined;
        if (!this.running) return;
        const samples = Math.max(1, Math.floor(this.batchIntervalMs / this.sampleIntervalMs));
        const start = this.windowStartMs;
        this.windowStartMs = start + this.batchIntervalMs;
        this.makeBatch(start, samples);
        this.scheduleBatch();
      },
      Math.max(0, due),
    );
  }

  private scheduleRetransmit(): void {
    if (!this.running) return;
    this.retransmitTimer = this.clock.setTimeout(() => {
      this.retransmitTimer = undefined;
      if (!this.running) return;
      const now = this.clock.now();
      if (!this.helloAckedFlag) {
        if (now - this.helloLastSentMs >= this.retransmitMs) {
          this.stats.retransmissions++;
          this.sendHello(true);
        }
      } else {
        for (const b of this.unacked.values()) {
          if (now - b.lastSentMs >= this.retransmitMs) {
            if (b.lastSentMs > 0) this.stats.retransmissions++;
            this.sendBatch(b);
          }
        }
      }
      this.scheduleRetransmit();
    }, this.retransmitMs);
  }

  private sendHello(again = false): void {
    if (!again || this.helloSeq === 0) this.helloSeq = this.nextSeq();
    this.helloLastSentMs = this.clock.now();
    this.send({
      type: 'hello',
      seq: this.helloSeq,
      meter: this.address,
      capabilities: CAPABILITIES,
      intervalMs: this.batchIntervalMs,
      lastBatchCounter: this.nextCounter - 1,
      versions: [PROTOCOL_VERSION],
      serial: this.options.serial ?? 'SIM-0001',
      firmware: this.options.firmware ?? 'mgmc-sim-meter 1.0.0',
    });
  }

  private handle(body: Uint8Array): void {
    let message: Message;
    try {
      message = decodeMessage(body);
    } catch (err) {
      const h = err instanceof MessageError ? err.header : undefined;
      if (h !== undefined && h.type !== MessageType.NACK && h.type !== MessageType.ACK) {
        this.send({
          type: 'nack',
          seq: h.seq,
          nackedType: h.type,
          code: (err as MessageError).code,
          detail: (err as Error).message.slice(0, 200),
        });
      }
      return;
    }
    switch (message.type) {
      case 'hello-ack':
        if (message.seq !== this.helloSeq) return;
        if (!this.helloAckedFlag) {
          this.helloAckedFlag = true;
          this.stats.helloAcked++;
          for (const b of this.unacked.values()) this.sendBatch(b);
        }
        return;
      case 'ack': {
        const b = this.unacked.get(message.batchCounter);
        if (message.status === AckStatus.DUPLICATE) this.stats.duplicateAcks++;
        if (b === undefined) return; // an ACK for a replay or an ACK we had already
        this.unacked.delete(b.counter);
        this.stats.batchesAcked++;
        this.acked.push(b.counter);
        this.history.push(b);
        if (this.history.length > 16) this.history.shift();
        return;
      }
      case 'nack':
        this.stats.nacksReceived++;
        this.nacks.push({ code: message.code, type: message.nackedType, detail: message.detail });
        if (this.nacks.length > 64) this.nacks.shift();
        if (message.code === NackCode.NOT_READY) {
          this.helloAckedFlag = false;
          this.sendHello();
          return;
        }
        if (message.nackedType === MessageType.READING_BATCH && !isTransientNack(message.code)) {
          for (const b of this.unacked.values()) {
            if (b.seq === message.seq) {
              this.unacked.delete(b.counter);
              this.stats.batchesRefused++;
              break;
            }
          }
        }
        return;
      case 'time-sync': {
        this.stats.timeSyncs++;
        if (message.set) {
          this.offsetMs = message.agentTimeMs - this.clock.now();
          this.clockSet = true;
        }
        this.send({
          type: 'time-sync-reply',
          seq: message.seq,
          agentTimeMs: message.agentTimeMs,
          meterTimeMs: this.meterNow(),
        });
        return;
      }
      case 'command':
        this.handleCommand(message);
        return;
      case 'time-sync-reply':
      case 'command-ack':
        return; // responses only an agent receives: never answer a response
      default:
        this.send({
          type: 'nack',
          seq: message.seq,
          nackedType: body[1] as number,
          code: NackCode.BAD_MESSAGE,
          detail: `a meter does not accept ${message.type}`,
        });
    }
  }

  private handleCommand(message: Extract<Message, { type: 'command' }>): void {
    if (this.lastCommand?.seq === message.seq) {
      this.send(this.lastCommand.response); // a retransmission: our COMMAND_ACK was lost; do not run it twice
      return;
    }
    this.stats.commands++;
    const command = message.command;
    let status: number = CommandStatus.OK;
    let result = new Uint8Array(0);
    let after: (() => void) | undefined;
    switch (command.kind) {
      case 'request-batch':
        after = () => this.emitBatch();
        break;
      case 'set-interval':
        if (command.intervalMs < this.sampleIntervalMs) status = CommandStatus.BAD_ARGUMENT;
        else {
          this.batchIntervalMs = command.intervalMs;
          this.scheduleBatch();
        }
        result = new Uint8Array(4);
        new DataView(result.buffer).setUint32(0, this.batchIntervalMs);
        break;
      case 'resend-unacked':
        after = () => {
          for (const b of this.unacked.values()) this.sendBatch(b);
        };
        break;
      case 'send-hello':
        after = () => {
          this.helloAckedFlag = false;
          this.sendHello();
        };
        break;
      case 'other':
        status = checkCommand(command).status;
        break;
    }
    const response: Message = {
      type: 'command-ack',
      seq: message.seq,
      commandId: encodeCommand(command).id,
      status,
      result,
    };
    this.lastCommand = { seq: message.seq, response };
    this.send(response);
    after?.();
  }

  private nextSeq(): number {
    this.seq = this.seq >= 0xffff ? 1 : this.seq + 1;
    return this.seq;
  }

  private send(message: Message): void {
    const stream = this.stream;
    if (!this.running || stream === undefined || stream.destroyed || this.faults.silent) return;
    const body = encodeMessage(message);
    this.framesWritten++;
    const every = this.faults.corruptCrcEvery ?? 0;
    const corrupt = every > 0 && this.framesWritten % every === 0;
    let crc = crc16(body);
    if (corrupt) {
      crc ^= 0x0001;
      this.stats.crcCorrupted++;
    }
    const withCrc = new Uint8Array(body.length + 2);
    withCrc.set(body);
    withCrc[body.length] = crc >> 8;
    withCrc[body.length + 1] = crc & 0xff;
    const encoded = cobsEncode(withCrc);
    const garbage = this.garbage(this.faults.garbageBetweenFrames ?? 0);
    const wire = new Uint8Array(garbage.length + encoded.length + 2);
    wire.set(garbage, 0);
    wire[garbage.length] = 0x00; // the resynchronising delimiter before each frame
    wire.set(encoded, garbage.length + 1);
    wire[wire.length - 1] = 0x00;
    this.stats.framesSent++;
    this.stats.garbageBytes += garbage.length;
    stream.write(wire);
  }

  /** Deterministic garbage (xorshift32), about one byte in eight a 0x00 so it also fakes frame ends. */
  private garbage(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      let x = this.garbageState;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.garbageState = x >>> 0;
      out[i] = (this.garbageState & 0x7) === 0 ? 0 : (this.garbageState >>> 8) & 0xff;
    }
    return out;
  }
}
