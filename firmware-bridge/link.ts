/**
 * MeterLink: the agent's end of the serial line to one signing meter (docs/firmware-protocol.md §6).
 *
 * It frames and parses messages over any Duplex stream (a serial port, a pty, an in-memory pair), answers the meter's
 * HELLO, verifies every READING_BATCH's signature, hands each new batch to the caller's `onBatch` handler and sends
 * the ACK only after the handler's promise resolved (the handler stores the batch durably, so a power cut never loses
 * a batch the meter was told it may delete). Retransmitted and replayed batches are acknowledged again but delivered
 * once. The agent's own requests (TIME_SYNC, COMMAND) are retried on a timeout. Nothing the meter sends can make it
 * throw: bad frames and bad messages are counted and reported as 'error' events.
 */
import type { Duplex } from 'node:stream';
import {
  addressToBytes,
  meterBatchDigest,
  meterBatchRecordBody,
  type ReadingBatch,
  verifyReadingBatch,
} from './batch.js';
import { DEFAULT_MAX_BODY_BYTES, encodeFrameForWire, FrameDecoder, type FrameError } from './frame.js';
import {
  AckStatus,
  type CommandAckMessage,
  CommandStatus,
  decodeMessage,
  encodeMessage,
  isResponse,
  isTransientNack,
  type Message,
  MessageError,
  MessageType,
  type MeterCommand,
  messageTypeCode,
  messageTypeName,
  NackCode,
  type NackCodeValue,
  nackCodeName,
  PROTOCOL_VERSION,
  type TimeSyncReplyMessage,
} from './messages.js';

/** The timer source MeterLink needs: structurally hardware/clock.ts's HardwareClock (and agent/clock.ts's Clock). */
export interface LinkClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): { cancel(): void };
}

/** What the meter said about itself in its HELLO. */
export interface MeterHello {
  /** The meter's signing address, EIP-55. */
  readonly meter: string;
  readonly firmware: string;
  readonly serial: string;
  /** Protocol versions the meter offered. */
  readonly versions: readonly number[];
  /** The version the link chose. */
  readonly version: number;
  readonly capabilities: number;
  readonly intervalMs: number;
  readonly lastBatchCounter: number;
}

/** A verified batch handed to the onBatch handler. */
export interface ReceivedBatch {
  readonly batch: ReadingBatch;
  /** The exact signed bytes. */
  readonly payload: Uint8Array;
  /** r ‖ s ‖ v, 65 bytes. */
  readonly signature: Uint8Array;
  /** keccak digest the meter signed (meterBatchDigest(payload)). */
  readonly digest: Uint8Array;
  /** The ledger `meter-batch` record body: {meter, format: 'mgmc-meter/v1', payload, sig}. */
  readonly record: { readonly meter: string; readonly format: string; readonly payload: string; readonly sig: string };
}

/** The kinds of 'error' event a MeterLink reports (each counted in stats.errors). */
export type LinkErrorKind =
  /** Frame layer: bad CRC, oversized, truncated (FrameDecoder). */
  | 'crc'
  | 'oversized'
  | 'truncated'
  /** A frame whose message could not be parsed. */
  | 'bad-message'
  | 'unsupported-version'
  | 'unknown-type'
  /** A message that the agent never expects from a meter (e.g. a COMMAND). */
  | 'unexpected'
  /** The HELLO's or a batch's meter address is not the expected one. */
  | 'wrong-meter'
  /** A batch whose signature does not recover to the meter it names. */
  | 'bad-signature'
  /** A batch payload that does not decode as mgmc-meter/v1. */
  | 'bad-payload'
  /** A batch arrived before any HELLO; the meter was told to say HELLO first. */
  | 'not-ready'
  /** The onBatch handler rejected: the batch was NACKed (store-failed) and the meter will retry. */
  | 'store-failed'
  /** A batch reused the counter of a different batch (the meter broke the counter rule); it was still delivered. */
  | 'counter-reuse'
  /** A batch counter jumped ahead: batches between were never received. */
  | 'gap'
  /** The meter did not answer one of our requests after all retries. */
  | 'timeout'
  /** The meter NACKed one of our requests or responses. */
  | 'nack'
  /** A response for a request that is no longer pending (answered already or given up). */
  | 'late-response'
  /** The meter offered no protocol version this link speaks. */
  | 'no-common-version'
  /** The stream failed or closed. */
  | 'stream';

/** An 'error' event: what happened, a sentence for people, and how often this kind has happened on this link. */
export interface LinkErrorEvent {
  readonly kind: LinkErrorKind;
  readonly message: string;
  readonly count: number;
}

/** Counters of a MeterLink since it was made. */
export interface LinkStats {
  framesIn: number;
  framesOut: number;
  /** Batches delivered to onBatch and acknowledged. */
  batchesStored: number;
  /** Batches acknowledged as duplicates without delivery. */
  duplicates: number;
  /** Retransmissions of our own requests after a timeout. */
  retransmissions: number;
  errors: Partial<Record<LinkErrorKind, number>>;
}

/** What syncTime() measured. */
export interface TimeSyncResult {
  /** Agent clock when the (last) TIME_SYNC was sent. */
  readonly agentSentMs: number;
  /** Meter clock in the reply. */
  readonly meterMs: number;
  /** Agent clock when the reply arrived. */
  readonly agentReceivedMs: number;
  /** Round trip, ms. */
  readonly rttMs: number;
  /** Meter clock minus agent clock, assuming a symmetric path: meterMs − (sent + received) / 2, rounded. */
  readonly offsetMs: number;
}

/** The meter's COMMAND_ACK to command(). */
export interface CommandResult {
  /** CommandStatus code. */
  readonly status: number;
  /** 'ok', 'unknown-command', 'bad-argument' or 'failed'. */
  readonly statusName: string;
  readonly result: Uint8Array;
}

/** Options of a MeterLink; only stream, clock and onBatch are required. */
export interface MeterLinkOptions {
  readonly stream: Duplex;
  readonly clock: LinkClock;
  /**
   * Stores a verified batch durably; the ACK is sent when the promise resolves. A rejection NACKs the batch
   * (store-failed) and the meter retries later. Called for one batch at a time, in arrival order.
   */
  readonly onBatch: (batch: ReceivedBatch) => Promise<void>;
  /** For batches the link no longer remembers (after a restart): true when this exact batch is already stored. */
  readonly isStored?: (batch: ReceivedBatch) => boolean | Promise<boolean>;
  /** The meter address configured for this port; a HELLO or batch from another meter is refused (error event). */
  readonly expectedMeter?: string;
  /** Wait for an answer to each request attempt, ms (default 1000). */
  readonly timeoutMs?: number;
  /** Retransmissions after the first attempt (default 3). */
  readonly retries?: number;
  /** Largest frame body accepted and sent (default 1024). */
  readonly maxBodyBytes?: number;
  /** Batches remembered for duplicate detection (default 4096). */
  readonly rememberBatches?: number;
  /** On start(), ask the meter to say HELLO (COMMAND send-hello) so an agent that starts later learns who is there (default true). */
  readonly requestHello?: boolean;
}

type Listener<T> = (value: T) => void;
interface LinkEvents {
  hello: MeterHello;
  /** After a batch was stored and acknowledged. */
  batch: ReceivedBatch;
  error: LinkErrorEvent;
}

interface Pending {
  readonly seq: number;
  readonly expect: Message['type'];
  readonly label: string;
  attempts: number;
  timer: { cancel(): void } | undefined;
  build: () => Message;
  readonly resolve: (m: Message) => void;
  readonly reject: (e: Error) => void;
}

const LINK_VERSIONS = [PROTOCOL_VERSION];
const COMMAND_STATUS_NAMES = ['ok', 'unknown-command', 'bad-argument', 'failed'];

function hex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}

/** The agent's end of the line to one signing meter. Call start() to begin; close() to stop. */
export class MeterLink {
  private readonly stream: Duplex;
  private readonly clock: LinkClock;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxBodyBytes: number;
  private readonly rememberBatches: number;
  private readonly expected: string | undefined;
  private readonly decoder: FrameDecoder;
  private readonly listeners: { [K in keyof LinkEvents]: Listener<LinkEvents[K]>[] } = {
    hello: [],
    batch: [],
    error: [],
  };
  private readonly pending = new Map<number, Pending>();
  /** batch counter → digest hex of the batch stored under it. */
  private readonly stored = new Map<number, string>();
  /** `${counter}:${digest}` of batches queued or being stored. */
  private readonly inFlight = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private highestCounter = 0;
  private seq = 0;
  private helloInfo: MeterHello | undefined;
  private helloSeq = -1;
  private started = false;
  private closed = false;
  private ended = false;
  private readonly statsData: LinkStats = {
    framesIn: 0,
    framesOut: 0,
    batchesStored: 0,
    duplicates: 0,
    retransmissions: 0,
    errors: {},
  };
  private readonly onData = (chunk: Buffer | Uint8Array) => this.receive(chunk);
  private readonly onEnd = () => this.streamEnded('the serial line was closed');
  private readonly onStreamError = (err: Error) => this.raise('stream', `serial line error: ${err.message}`);

  constructor(private readonly options: MeterLinkOptions) {
    this.stream = options.stream;
    this.clock = options.clock;
    this.timeoutMs = positiveInt(options.timeoutMs ?? 1000, 'timeoutMs');
    this.retries = nonNegativeInt(options.retries ?? 3, 'retries');
    this.maxBodyBytes = positiveInt(options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, 'maxBodyBytes');
    this.rememberBatches = positiveInt(options.rememberBatches ?? 4096, 'rememberBatches');
    if (options.expectedMeter !== undefined) {
      addressToBytes(options.expectedMeter, 'expected meter address');
      this.expected = options.expectedMeter.toLowerCase();
    }
    this.decoder = new FrameDecoder({
      maxBodyBytes: this.maxBodyBytes,
      onError: (e: FrameError) => this.raise(e.kind, e.message),
    });
  }

  /** Registers a listener. 'error' events never throw when nobody listens (unlike Node's EventEmitter). */
  on<K extends keyof LinkEvents>(event: K, listener: Listener<LinkEvents[K]>): this {
    this.listeners[event].push(listener);
    return this;
  }

  /** Removes a listener registered with on(). */
  off<K extends keyof LinkEvents>(event: K, listener: Listener<LinkEvents[K]>): this {
    const list = this.listeners[event];
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  /** Starts reading the stream and, unless requestHello is false, asks the meter for a HELLO. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stream.on('data', this.onData);
    this.stream.on('end', this.onEnd);
    this.stream.on('close', this.onEnd);
    this.stream.on('error', this.onStreamError);
    if (this.options.requestHello ?? true) {
      this.command({ kind: 'send-hello' }).catch(() => {
        // the timeout was already reported as an 'error' event; the meter may still say HELLO on its own
      });
    }
  }

  /** What the meter said in its last accepted HELLO, or undefined before one. */
  get hello(): MeterHello | undefined {
    return this.helloInfo;
  }

  /** A copy of the counters. */
  get stats(): LinkStats {
    return { ...this.statsData, errors: { ...this.statsData.errors } };
  }

  /** Frame-layer counters (good frames, CRC errors, …). */
  get frameStats() {
    return { ...this.decoder.stats };
  }

  /**
   * Measures (and with `set`, sets) the meter's clock: sends TIME_SYNC with the agent time and returns the offset.
   * Rejects when the meter does not answer after all retries or refuses.
   */
  async syncTime(options: { set?: boolean } = {}): Promise<TimeSyncResult> {
    const reply = (await this.request('time-sync-reply', 'TIME_SYNC', (seq) => ({
      type: 'time-sync',
      seq,
      agentTimeMs: this.clock.now(),
      set: options.set ?? false,
    }))) as TimeSyncReplyMessage;
    const received = this.clock.now();
    const sent = reply.agentTimeMs;
    return {
      agentSentMs: sent,
      meterMs: reply.meterTimeMs,
      agentReceivedMs: received,
      rttMs: received - sent,
      offsetMs: Math.round(reply.meterTimeMs - (sent + received) / 2),
    };
  }

  /** Sends a COMMAND and resolves with the meter's COMMAND_ACK (whatever its status). */
  async command(command: MeterCommand): Promise<CommandResult> {
    const label = `COMMAND ${command.kind}`;
    const ack = (await this.request('command-ack', label, (seq) => ({
      type: 'command',
      seq,
      command,
    }))) as CommandAckMessage;
    return {
      status: ack.status,
      statusName: COMMAND_STATUS_NAMES[ack.status] ?? `status ${ack.status}`,
      result: ack.result,
    };
  }

  /** Asks the meter to close its current batch and send it now. Rejects unless the meter answers ok. */
  async requestBatch(): Promise<void> {
    const r = await this.command({ kind: 'request-batch' });
    if (r.status !== CommandStatus.OK) throw new Error(`meter refused request-batch: ${r.statusName}`);
  }

  /** Sets the meter's batch interval; resolves with the interval the meter reports in force. */
  async setBatchInterval(intervalMs: number): Promise<number> {
    const r = await this.command({ kind: 'set-interval', intervalMs });
    if (r.status !== CommandStatus.OK) throw new Error(`meter refused set-interval ${intervalMs} ms: ${r.statusName}`);
    if (r.result.length !== 4) return intervalMs;
    return new DataView(r.result.buffer, r.result.byteOffset, 4).getUint32(0);
  }

  /**
   * Stops: cancels timers, rejects pending requests, waits for a batch being stored to finish (its ACK is still
   * sent if the stream is open) and detaches from the stream. The stream itself belongs to the caller.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.rejectAll('the meter link was closed');
    await this.queue;
    this.closed = true;
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onStreamError);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Receiving

  private receive(chunk: Buffer | Uint8Array): void {
    if (this.closed) return;
    const bodies = this.decoder.push(chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk));
    for (const body of bodies) {
      this.statsData.framesIn++;
      this.handleBody(body);
    }
  }

  private handleBody(body: Uint8Array): void {
    let message: Message;
    try {
      message = decodeMessage(body);
    } catch (err) {
      const e = err instanceof MessageError ? err : new MessageError(String(err));
      const kind: LinkErrorKind =
        e.code === NackCode.UNSUPPORTED_VERSION
          ? 'unsupported-version'
          : e.code === NackCode.UNKNOWN_TYPE
            ? 'unknown-type'
            : 'bad-message';
      this.raise(kind, `from the meter: ${e.message}`);
      // Never answer a response with a NACK (two confused peers would NACK each other forever).
      const h = e.header;
      if (h !== undefined && !isResponseCode(h.type)) this.nack(h.seq, h.type, e.code, e.message);
      return;
    }
    if (isResponse(message)) {
      this.handleResponse(message);
      return;
    }
    switch (message.type) {
      case 'hello':
        this.handleHello(message);
        return;
      case 'reading-batch':
        this.handleBatch(message);
        return;
      default:
        this.raise('unexpected', `the meter sent a ${message.type} message, which only an agent sends`);
        this.nack(
          message.seq,
          messageTypeCode(message.type),
          NackCode.BAD_MESSAGE,
          `an agent does not accept ${message.type}`,
        );
    }
  }

  private handleResponse(message: Message): void {
    const pending = this.pending.get(message.seq);
    if (message.type === 'nack') {
      const name = messageTypeName(message.nackedType) ?? `type ${message.nackedType}`;
      const what = `${nackCodeName(message.code)}${message.detail ? `: ${message.detail}` : ''}`;
      if (pending !== undefined && message.nackedType === messageTypeCode(pending.build().type)) {
        if (isTransientNack(message.code)) return; // the retry timer sends it again
        this.settle(pending);
        this.raise('nack', `the meter refused ${pending.label} (seq ${message.seq}): ${what}`);
        pending.reject(new Error(`the meter refused ${pending.label} (seq ${message.seq}): ${what}`));
        return;
      }
      this.raise('nack', `the meter refused our ${name} (seq ${message.seq}): ${what}`);
      return;
    }
    if (pending === undefined || pending.expect !== message.type) {
      this.raise('late-response', `${message.type} for seq ${message.seq} matches no request waiting for an answer`);
      return;
    }
    this.settle(pending);
    pending.resolve(message);
  }

  private handleHello(message: Extract<Message, { type: 'hello' }>): void {
    const known = this.helloInfo;
    if (known !== undefined && message.seq === this.helloSeq && known.meter === message.meter) {
      this.send({ type: 'hello-ack', seq: message.seq, version: known.version, agentTimeMs: this.clock.now() });
      return; // a retransmission: our HELLO_ACK was lost
    }
    if (this.expected !== undefined && message.meter.toLowerCase() !== this.expected) {
      this.raise(
        'wrong-meter',
        `the meter on this line says it is ${message.meter} (serial ${JSON.stringify(message.serial)}) but the ` +
          `configuration expects ${this.options.expectedMeter}: check which meter is wired to this port, or the config`,
      );
      this.nack(
        message.seq,
        MessageType.HELLO,
        NackCode.WRONG_METER,
        `this port expects meter ${this.options.expectedMeter}`,
      );
      return;
    }
    const common = message.versions.filter((v) => LINK_VERSIONS.includes(v));
    if (common.length === 0) {
      this.raise(
        'no-common-version',
        `the meter speaks protocol versions ${message.versions.join(', ')}; this agent speaks ${LINK_VERSIONS.join(', ')}: update one of them`,
      );
      this.nack(
        message.seq,
        MessageType.HELLO,
        NackCode.UNSUPPORTED_VERSION,
        `agent speaks ${LINK_VERSIONS.join(', ')}`,
      );
      return;
    }
    const version = Math.max(...common);
    if (known !== undefined && known.meter !== message.meter) {
      // Another meter on the same line (swapped hardware): its counters are its own.
      this.stored.clear();
      this.highestCounter = 0;
    }
    this.helloInfo = {
      meter: message.meter,
      firmware: message.firmware,
      serial: message.serial,
      versions: message.versions,
      version,
      capabilities: message.capabilities,
      intervalMs: message.intervalMs,
      lastBatchCounter: message.lastBatchCounter,
    };
    this.helloSeq = message.seq;
    this.send({ type: 'hello-ack', seq: message.seq, version, agentTimeMs: this.clock.now() });
    this.emit('hello', this.helloInfo);
  }

  private handleBatch(message: Extract<Message, { type: 'reading-batch' }>): void {
    const hello = this.helloInfo;
    if (hello === undefined) {
      this.raise(
        'not-ready',
        `a batch (seq ${message.seq}) arrived before the meter's HELLO; asked the meter to say HELLO`,
      );
      this.nack(message.seq, MessageType.READING_BATCH, NackCode.NOT_READY, 'send HELLO first');
      return;
    }
    const check = verifyReadingBatch(message.payload, message.signature);
    if (!check.ok) {
      const code = check.kind === 'bad-payload' ? NackCode.BAD_PAYLOAD : NackCode.BAD_SIGNATURE;
      this.raise(check.kind, `batch from ${hello.meter} refused: ${check.reason}`);
      this.nack(message.seq, MessageType.READING_BATCH, code, check.reason);
      return;
    }
    const batch = check.batch;
    if (batch.meter !== hello.meter) {
      const reason = `batch ${batch.counter} is from meter ${batch.meter}, but this line's meter said HELLO as ${hello.meter}`;
      this.raise('wrong-meter', reason);
      this.nack(message.seq, MessageType.READING_BATCH, NackCode.WRONG_METER, reason);
      return;
    }
    const digest = meterBatchDigest(message.payload);
    const digestHex = hex(digest);
    const previous = this.stored.get(batch.counter);
    if (previous === digestHex) {
      this.statsData.duplicates++;
      this.ack(message.seq, batch.counter, AckStatus.DUPLICATE);
      return;
    }
    const key = `${batch.counter}:${digestHex}`;
    if (this.inFlight.has(key)) return; // a retransmission while we store it: the ACK follows the store
    const reused = previous !== undefined || [...this.inFlight].some((k) => k.startsWith(`${batch.counter}:`));
    if (reused) {
      this.raise(
        'counter-reuse',
        `meter ${batch.meter} sent two different batches numbered ${batch.counter}; both are kept (the meter's counter ` +
          'must never repeat: check its firmware or whether it was reset)',
      );
    }
    const received: ReceivedBatch = {
      batch,
      payload: message.payload,
      signature: message.signature,
      digest,
      record: meterBatchRecordBody(message.payload, message.signature),
    };
    this.inFlight.add(key);
    this.queue = this.queue.then(() => this.store(message.seq, received, key, reused));
  }

  private async store(seq: number, received: ReceivedBatch, key: string, reused: boolean): Promise<void> {
    const { counter } = received.batch;
    try {
      if (!reused && this.options.isStored !== undefined && (await this.options.isStored(received))) {
        this.remember(counter, key);
        this.statsData.duplicates++;
        this.ack(seq, counter, AckStatus.DUPLICATE);
        return;
      }
      await this.options.onBatch(received);
    } catch (err) {
      this.inFlight.delete(key);
      const reason = err instanceof Error ? err.message : String(err);
      this.raise('store-failed', `batch ${counter} from ${received.batch.meter} could not be stored: ${reason}`);
      this.nack(seq, MessageType.READING_BATCH, NackCode.STORE_FAILED, `not stored: ${reason}`);
      return;
    }
    this.remember(counter, key);
    this.statsData.batchesStored++;
    this.ack(seq, counter, AckStatus.STORED);
    if (this.highestCounter > 0 && counter > this.highestCounter + 1) {
      this.raise(
        'gap',
        `batch ${counter} from ${received.batch.meter} follows batch ${this.highestCounter}: ` +
          `${counter - this.highestCounter - 1} batch(es) between were not received (yet)`,
      );
    }
    this.highestCounter = Math.max(this.highestCounter, counter);
    this.emit('batch', received);
  }

  private remember(counter: number, key: string): void {
    this.inFlight.delete(key);
    this.stored.delete(counter);
    this.stored.set(counter, key.slice(key.indexOf(':') + 1));
    while (this.stored.size > this.rememberBatches) {
      const oldest = this.stored.keys().next().value as number;
      this.stored.delete(oldest);
    }
  }

  private streamEnded(reason: string): void {
    if (this.closed || this.ended) return;
    this.ended = true;
    this.decoder.end();
    this.raise('stream', reason);
    this.rejectAll(reason);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Sending

  private request(expect: Message['type'], label: string, build: (seq: number) => Message): Promise<Message> {
    if (this.closed) return Promise.reject(new Error('the meter link is closed'));
    const seq = this.nextSeq();
    return new Promise<Message>((resolve, reject) => {
      const pending: Pending = {
        seq,
        expect,
        label,
        attempts: 0,
        timer: undefined,
        build: () => build(seq),
        resolve,
        reject,
      };
      this.pending.set(seq, pending);
      this.attempt(pending);
    });
  }

  private attempt(pending: Pending): void {
    pending.attempts++;
    if (pending.attempts > 1) this.statsData.retransmissions++;
    this.send(pending.build());
    pending.timer = this.clock.setTimeout(() => {
      pending.timer = undefined;
      if (!this.pending.has(pending.seq)) return;
      if (pending.attempts <= this.retries) {
        this.attempt(pending);
        return;
      }
      this.pending.delete(pending.seq);
      const message =
        `the meter did not answer ${pending.label} (seq ${pending.seq}) after ${pending.attempts} attempts of ` +
        `${this.timeoutMs} ms: check the cable, the baud rate and that the meter is powered`;
      this.raise('timeout', message);
      pending.reject(new Error(message));
    }, this.timeoutMs);
  }

  private settle(pending: Pending): void {
    pending.timer?.cancel();
    this.pending.delete(pending.seq);
  }

  private rejectAll(reason: string): void {
    for (const pending of [...this.pending.values()]) {
      this.settle(pending);
      pending.reject(new Error(`${pending.label} (seq ${pending.seq}) abandoned: ${reason}`));
    }
  }

  private nextSeq(): number {
    for (let i = 0; i < 0xffff; i++) {
      this.seq = this.seq >= 0xffff ? 1 : this.seq + 1;
      if (!this.pending.has(this.seq)) return this.seq;
    }
    throw new Error('65535 requests are waiting for the meter: no sequence number is free');
  }

  private ack(seq: number, batchCounter: number, status: number): void {
    this.send({ type: 'ack', seq, ackedType: MessageType.READING_BATCH, status, batchCounter });
  }

  private nack(seq: number, type: number, code: NackCodeValue, detail: string): void {
    this.send({ type: 'nack', seq, nackedType: type, code, detail: truncateUtf8(detail, 255) });
  }

  private send(message: Message): void {
    if (this.closed || this.stream.destroyed || this.stream.writableEnded) return;
    let bytes: Uint8Array;
    try {
      bytes = encodeFrameForWire(encodeMessage(message), this.maxBodyBytes);
    } catch (err) {
      this.raise('bad-message', `could not encode our ${message.type}: ${(err as Error).message}`);
      return;
    }
    this.statsData.framesOut++;
    this.stream.write(bytes);
  }

  private raise(kind: LinkErrorKind, message: string): void {
    const count = (this.statsData.errors[kind] ?? 0) + 1;
    this.statsData.errors[kind] = count;
    this.emit('error', { kind, message, count });
  }

  private emit<K extends keyof LinkEvents>(event: K, value: LinkEvents[K]): void {
    for (const listener of [...this.listeners[event]]) {
      try {
        listener(value);
      } catch {
        // a throwing listener must not break the link
      }
    }
  }
}

function isResponseCode(type: number): boolean {
  return (
    type === MessageType.HELLO_ACK ||
    type === MessageType.TIME_SYNC_REPLY ||
    type === MessageType.ACK ||
    type === MessageType.NACK ||
    type === MessageType.COMMAND_ACK
  );
}

/** Cuts `text` to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, max: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= max) return text;
  let end = max;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

function positiveInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${what} must be a positive integer, got ${value}`);
  return value;
}

function nonNegativeInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0) throw new Error(`${what} must be a non-negative integer, got ${value}`);
  return value;
}
