/**
 * The messages carried in frames (frame.ts). Every message is a 4-byte header followed by a body whose layout depends
 * on the type; all integers are unsigned big-endian unless a table says otherwise, strings are a u8 byte length followed
 * by UTF-8, and a message must be exactly as long as its layout says (no trailing bytes). docs/firmware-protocol.md
 * has the byte tables; test/vectors/firmware.json has a frame for each type.
 *
 * Header: version u8 (= 1) ‖ type u8 ‖ seq u16. Each side numbers the requests it sends (HELLO, READING_BATCH from the
 * meter; TIME_SYNC, COMMAND from the agent) 1, 2, …, 65535, 1, …; a retransmission repeats the seq, and a response
 * (HELLO_ACK, TIME_SYNC_REPLY, ACK, NACK, COMMAND_ACK) carries the seq of the request it answers.
 */
import { addressFromBytes, addressToBytes } from './batch.js';

/** The protocol version this code speaks (header byte 0). */
export const PROTOCOL_VERSION = 1;
/** Bytes in the header: version, type, seq. */
export const HEADER_LENGTH = 4;
/** Bytes in a recoverable secp256k1 signature r ‖ s ‖ v. */
export const SIGNATURE_LENGTH = 65;
/** Longest serial number or firmware version string in a HELLO, in UTF-8 bytes. */
export const MAX_HELLO_STRING_BYTES = 64;

/** Wire codes of the message types. */
export const MessageType = {
  HELLO: 0x01,
  HELLO_ACK: 0x02,
  TIME_SYNC: 0x03,
  TIME_SYNC_REPLY: 0x04,
  READING_BATCH: 0x05,
  ACK: 0x06,
  NACK: 0x07,
  COMMAND: 0x08,
  COMMAND_ACK: 0x09,
} as const;

/** Message types by name, as in the `type` field of a decoded Message. */
export type MessageTypeName =
  | 'hello'
  | 'hello-ack'
  | 'time-sync'
  | 'time-sync-reply'
  | 'reading-batch'
  | 'ack'
  | 'nack'
  | 'command'
  | 'command-ack';

const TYPE_CODES: Record<MessageTypeName, number> = {
  hello: MessageType.HELLO,
  'hello-ack': MessageType.HELLO_ACK,
  'time-sync': MessageType.TIME_SYNC,
  'time-sync-reply': MessageType.TIME_SYNC_REPLY,
  'reading-batch': MessageType.READING_BATCH,
  ack: MessageType.ACK,
  nack: MessageType.NACK,
  command: MessageType.COMMAND,
  'command-ack': MessageType.COMMAND_ACK,
};
const TYPE_NAMES = new Map<number, MessageTypeName>(
  Object.entries(TYPE_CODES).map(([name, code]) => [code, name as MessageTypeName]),
);

/** Wire code of a message type name. */
export function messageTypeCode(type: MessageTypeName): number {
  return TYPE_CODES[type];
}

/** Name of a wire type code, or undefined for a code this version does not know. */
export function messageTypeName(code: number): MessageTypeName | undefined {
  return TYPE_NAMES.get(code);
}

/** HELLO capability flags (u32 bit mask). Bits not listed are reserved and sent as 0. */
export const Capability = {
  /** The meter sets its clock from a TIME_SYNC with the SET flag. */
  TIME_SET: 1 << 0,
  /** The meter obeys COMMAND set-interval. */
  SET_INTERVAL: 1 << 1,
  /** The meter obeys COMMAND request-batch. */
  REQUEST_BATCH: 1 << 2,
  /** The meter obeys COMMAND resend-unacked. */
  RESEND_UNACKED: 1 << 3,
  /** The meter keeps unacknowledged batches across a power loss. */
  PERSISTENT_STORE: 1 << 4,
} as const;

/** ACK status codes. */
export const AckStatus = {
  /** The batch was stored durably by the agent. */
  STORED: 0,
  /** The batch had been stored before (a retransmission or replay); it was not stored again. */
  DUPLICATE: 1,
} as const;

/**
 * NACK error codes. Transient codes (not-ready, store-failed, busy) ask the sender to retry later; the others are
 * permanent for that message and the sender must not retransmit it unchanged.
 */
export const NackCode = {
  BAD_MESSAGE: 1,
  UNSUPPORTED_VERSION: 2,
  UNKNOWN_TYPE: 3,
  NOT_READY: 4,
  WRONG_METER: 5,
  BAD_SIGNATURE: 6,
  BAD_PAYLOAD: 7,
  STORE_FAILED: 8,
  BUSY: 9,
} as const;
/** A NACK code defined by this version. */
export type NackCodeValue = (typeof NackCode)[keyof typeof NackCode];

/** True for NACK codes after which the sender retries later (not-ready, store-failed, busy). */
export function isTransientNack(code: number): boolean {
  return code === NackCode.NOT_READY || code === NackCode.STORE_FAILED || code === NackCode.BUSY;
}

/** COMMAND ids. */
export const CommandId = {
  /** Close the current batch now and send it (no arguments). */
  REQUEST_BATCH: 1,
  /** Set the batch interval: u32 ms, 1000..86 400 000. */
  SET_INTERVAL: 2,
  /** Send every stored unacknowledged batch now (no arguments). */
  RESEND_UNACKED: 3,
  /** Send a HELLO now (no arguments): an agent that starts after the meter learns who is there. */
  SEND_HELLO: 4,
} as const;

/** COMMAND_ACK status codes. */
export const CommandStatus = {
  OK: 0,
  UNKNOWN_COMMAND: 1,
  BAD_ARGUMENT: 2,
  FAILED: 3,
} as const;

/** Range of COMMAND set-interval, ms. */
export const MIN_INTERVAL_MS = 1000;
export const MAX_INTERVAL_MS = 86_400_000;

/** A command as sent in COMMAND. `other` carries an id this version does not define (for tests and extensions). */
export type MeterCommand =
  | { readonly kind: 'request-batch' }
  | { readonly kind: 'set-interval'; readonly intervalMs: number }
  | { readonly kind: 'resend-unacked' }
  | { readonly kind: 'send-hello' }
  | { readonly kind: 'other'; readonly id: number; readonly args: Uint8Array };

/** HELLO (0x01), meter → agent: who the meter is and what it speaks. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly seq: number;
  /** The meter's signing address (EIP-55). */
  readonly meter: string;
  /** Capability bit mask (Capability). */
  readonly capabilities: number;
  /** The meter's current batch interval, ms. */
  readonly intervalMs: number;
  /** Counter of the newest batch the meter has made, 0 if none yet. */
  readonly lastBatchCounter: number;
  /** Protocol versions the meter speaks, 1..16 entries of 1..255. */
  readonly versions: readonly number[];
  /** The meter's serial number (UTF-8, at most 64 bytes). */
  readonly serial: string;
  /** The firmware version (UTF-8, at most 64 bytes). */
  readonly firmware: string;
}

/** HELLO_ACK (0x02), agent → meter. */
export interface HelloAckMessage {
  readonly type: 'hello-ack';
  readonly seq: number;
  /** The protocol version the agent chose from the HELLO's list. */
  readonly version: number;
  /** The agent's clock when it answered, ms since the epoch. */
  readonly agentTimeMs: number;
}

/** TIME_SYNC (0x03), agent → meter. */
export interface TimeSyncMessage {
  readonly type: 'time-sync';
  readonly seq: number;
  readonly agentTimeMs: number;
  /** When true the meter sets its clock to agentTimeMs before answering (flags bit 0). */
  readonly set: boolean;
}

/** TIME_SYNC_REPLY (0x04), meter → agent. */
export interface TimeSyncReplyMessage {
  readonly type: 'time-sync-reply';
  readonly seq: number;
  /** agentTimeMs of the TIME_SYNC, echoed. */
  readonly agentTimeMs: number;
  /** The meter's clock when it answered (after setting it, if asked to). */
  readonly meterTimeMs: number;
}

/** READING_BATCH (0x05), meter → agent: a signed payload. */
export interface ReadingBatchMessage {
  readonly type: 'reading-batch';
  readonly seq: number;
  /** Exactly the bytes the meter signed (batch.ts, format mgmc-meter/v1), 1..65535 bytes. */
  readonly payload: Uint8Array;
  /** r ‖ s ‖ v, 65 bytes. */
  readonly signature: Uint8Array;
}

/** ACK (0x06), agent → meter: the batch is stored. */
export interface AckMessage {
  readonly type: 'ack';
  readonly seq: number;
  /** Wire type code of the acknowledged request (READING_BATCH in version 1). */
  readonly ackedType: number;
  /** AckStatus. */
  readonly status: number;
  /** The acknowledged batch's counter (0 when the request was not a batch). */
  readonly batchCounter: number;
}

/** NACK (0x07), either direction: a request refused. */
export interface NackMessage {
  readonly type: 'nack';
  readonly seq: number;
  /** Wire type code of the refused message (it may be a code this version does not know). */
  readonly nackedType: number;
  /** NackCode. */
  readonly code: number;
  /** A sentence for people (UTF-8, at most 255 bytes, may be empty). */
  readonly detail: string;
}

/** COMMAND (0x08), agent → meter. */
export interface CommandMessage {
  readonly type: 'command';
  readonly seq: number;
  readonly command: MeterCommand;
}

/** COMMAND_ACK (0x09), meter → agent. */
export interface CommandAckMessage {
  readonly type: 'command-ack';
  readonly seq: number;
  readonly commandId: number;
  /** CommandStatus. */
  readonly status: number;
  /** Command-specific result bytes (set-interval: the interval now in force, u32 ms), at most 255. */
  readonly result: Uint8Array;
}

/** Any message of protocol version 1. */
export type Message =
  | HelloMessage
  | HelloAckMessage
  | TimeSyncMessage
  | TimeSyncReplyMessage
  | ReadingBatchMessage
  | AckMessage
  | NackMessage
  | CommandMessage
  | CommandAckMessage;

/** A message that cannot be encoded or decoded; `code` is the NACK code a receiver answers with. */
export class MessageError extends Error {
  constructor(
    message: string,
    readonly code: NackCodeValue = NackCode.BAD_MESSAGE,
    /** Header fields when they could be read, so the receiver can NACK the right seq. */
    readonly header?: { readonly version: number; readonly type: number; readonly seq: number },
  ) {
    super(message);
    this.name = 'MessageError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

class Writer {
  private readonly parts: number[] = [];

  u8(value: number, what: string): this {
    checkUint(value, 0xff, what);
    this.parts.push(value);
    return this;
  }

  u16(value: number, what: string): this {
    checkUint(value, 0xffff, what);
    this.parts.push(value >> 8, value & 0xff);
    return this;
  }

  u32(value: number, what: string): this {
    checkUint(value, 0xffffffff, what);
    this.parts.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
    return this;
  }

  u64(value: number, what: string): this {
    checkUint(value, Number.MAX_SAFE_INTEGER, what);
    const big = BigInt(value);
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.parts.push(Number((big >> shift) & 0xffn));
    return this;
  }

  bytes(value: Uint8Array): this {
    for (const b of value) this.parts.push(b);
    return this;
  }

  string(value: string, max: number, what: string): this {
    const bytes = new TextEncoder().encode(value);
    if (bytes.length > max) throw new MessageError(`${what} is ${bytes.length} UTF-8 bytes, the limit is ${max}`);
    return this.u8(bytes.length, what).bytes(bytes);
  }

  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function checkUint(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new MessageError(`${what} must be an integer 0..${max}, got ${value}`);
  }
}

function checkSeq(seq: number): void {
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) throw new MessageError(`seq must be 0..65535, got ${seq}`);
}

/** Encodes a command's id and argument bytes. */
export function encodeCommand(command: MeterCommand): { id: number; args: Uint8Array } {
  switch (command.kind) {
    case 'request-batch':
      return { id: CommandId.REQUEST_BATCH, args: new Uint8Array(0) };
    case 'set-interval':
      checkInterval(command.intervalMs);
      return { id: CommandId.SET_INTERVAL, args: new Writer().u32(command.intervalMs, 'interval').done() };
    case 'resend-unacked':
      return { id: CommandId.RESEND_UNACKED, args: new Uint8Array(0) };
    case 'send-hello':
      return { id: CommandId.SEND_HELLO, args: new Uint8Array(0) };
    case 'other':
      checkUint(command.id, 0xff, 'command id');
      if (command.args.length > 0xff)
        throw new MessageError(`command arguments are ${command.args.length} bytes, max 255`);
      return { id: command.id, args: command.args };
  }
}

function checkInterval(ms: number): void {
  if (!Number.isInteger(ms) || ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) {
    throw new MessageError(
      `interval must be an integer number of ms from ${MIN_INTERVAL_MS} to ${MAX_INTERVAL_MS}, got ${ms}`,
      NackCode.BAD_MESSAGE,
    );
  }
}

/**
 * Encodes a message to its bytes (the frame body). Throws a MessageError naming the field when a value is out of
 * range. Vector: {type:'ack', seq:7, ackedType:5, status:0, batchCounter:42} → 01 06 00 07 05 00 00 00 00 2A.
 */
export function encodeMessage(message: Message): Uint8Array {
  checkSeq(message.seq);
  const w = new Writer().u8(PROTOCOL_VERSION, 'version').u8(TYPE_CODES[message.type], 'type').u16(message.seq, 'seq');
  switch (message.type) {
    case 'hello': {
      const versions = message.versions;
      if (versions.length < 1 || versions.length > 16) {
        throw new MessageError(`HELLO must list 1 to 16 protocol versions, got ${versions.length}`);
      }
      w.bytes(addressToBytes(message.meter, 'HELLO meter address'))
        .u32(message.capabilities, 'capabilities')
        .u32(message.intervalMs, 'interval')
        .u32(message.lastBatchCounter, 'last batch counter')
        .u8(versions.length, 'version count');
      for (const v of versions) {
        if (v === 0) throw new MessageError('protocol version 0 is reserved');
        w.u8(v, 'protocol version');
      }
      return w
        .string(message.serial, MAX_HELLO_STRING_BYTES, 'serial')
        .string(message.firmware, MAX_HELLO_STRING_BYTES, 'firmware version')
        .done();
    }
    case 'hello-ack':
      if (message.version === 0) throw new MessageError('protocol version 0 is reserved');
      return w.u8(message.version, 'version').u64(message.agentTimeMs, 'agent time').done();
    case 'time-sync':
      return w
        .u64(message.agentTimeMs, 'agent time')
        .u8(message.set ? 1 : 0, 'flags')
        .done();
    case 'time-sync-reply':
      return w.u64(message.agentTimeMs, 'agent time').u64(message.meterTimeMs, 'meter time').done();
    case 'reading-batch':
      if (message.payload.length < 1 || message.payload.length > 0xffff) {
        throw new MessageError(`batch payload must be 1..65535 bytes, got ${message.payload.length}`);
      }
      if (message.signature.length !== SIGNATURE_LENGTH) {
        throw new MessageError(`batch signature must be ${SIGNATURE_LENGTH} bytes, got ${message.signature.length}`);
      }
      return w.u16(message.payload.length, 'payload length').bytes(message.payload).bytes(message.signature).done();
    case 'ack':
      return w
        .u8(message.ackedType, 'acked type')
        .u8(message.status, 'ack status')
        .u32(message.batchCounter, 'batch counter')
        .done();
    case 'nack':
      return w
        .u8(message.nackedType, 'nacked type')
        .u8(message.code, 'nack code')
        .string(message.detail, 0xff, 'nack detail')
        .done();
    case 'command': {
      const { id, args } = encodeCommand(message.command);
      return w.u8(id, 'command id').u8(args.length, 'argument length').bytes(args).done();
    }
    case 'command-ack':
      if (message.result.length > 0xff)
        throw new MessageError(`command result is ${message.result.length} bytes, max 255`);
      return w
        .u8(message.commandId, 'command id')
        .u8(message.status, 'command status')
        .u8(message.result.length, 'result length')
        .bytes(message.result)
        .done();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

class Reader {
  private at = HEADER_LENGTH;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly typeName: string,
    private readonly header: { version: number; type: number; seq: number },
  ) {}

  private need(n: number, what: string): void {
    if (this.at + n > this.bytes.length) {
      throw new MessageError(
        `${this.typeName} is truncated: ${what} needs ${n} bytes at offset ${this.at}, the message has ${this.bytes.length}`,
        NackCode.BAD_MESSAGE,
        this.header,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.at++] as number;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = ((this.bytes[this.at] as number) << 8) | (this.bytes[this.at + 1] as number);
    this.at += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.at, 4).getUint32(0);
    this.at += 4;
    return v;
  }

  u64(what: string): number {
    this.need(8, what);
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.at, 8).getBigUint64(0);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is above 2^53 − 1`);
    return Number(v);
  }

  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }

  string(max: number, what: string): string {
    const length = this.u8(`${what} length`);
    if (length > max) this.fail(`${what} is ${length} bytes, the limit is ${max}`);
    const bytes = this.take(length, what);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  end(): void {
    if (this.at !== this.bytes.length) {
      this.fail(`${this.bytes.length - this.at} unexpected trailing bytes after offset ${this.at}`);
    }
  }

  fail(reason: string): never {
    throw new MessageError(`${this.typeName}: ${reason}`, NackCode.BAD_MESSAGE, this.header);
  }
}

/**
 * Decodes a frame body to a message. Strict: wrong version (code unsupported-version), unknown type (unknown-type),
 * missing or trailing bytes and out-of-range fields (bad-message) throw a MessageError carrying the NACK code and,
 * when readable, the header so the receiver can NACK the right seq.
 */
export function decodeMessage(bytes: Uint8Array): Message {
  if (bytes.length < HEADER_LENGTH) {
    throw new MessageError(`message of ${bytes.length} bytes is shorter than the ${HEADER_LENGTH}-byte header`);
  }
  const header = {
    version: bytes[0] as number,
    type: bytes[1] as number,
    seq: ((bytes[2] as number) << 8) | (bytes[3] as number),
  };
  if (header.version !== PROTOCOL_VERSION) {
    throw new MessageError(
      `message protocol version ${header.version} is not supported (this side speaks ${PROTOCOL_VERSION})`,
      NackCode.UNSUPPORTED_VERSION,
      header,
    );
  }
  const typeName = TYPE_NAMES.get(header.type);
  if (typeName === undefined) {
    throw new MessageError(
      `message type 0x${header.type.toString(16).padStart(2, '0')} is unknown`,
      NackCode.UNKNOWN_TYPE,
      header,
    );
  }
  const r = new Reader(bytes, typeName.toUpperCase().replaceAll('-', '_'), header);
  const seq = header.seq;
  let message: Message;
  switch (typeName) {
    case 'hello': {
      const meter = addressFromBytes(r.take(20, 'meter address'));
      const capabilities = r.u32('capabilities');
      const intervalMs = r.u32('interval');
      const lastBatchCounter = r.u32('last batch counter');
      const count = r.u8('version count');
      if (count < 1 || count > 16) r.fail(`must list 1 to 16 protocol versions, got ${count}`);
      const versions: number[] = [];
      for (let i = 0; i < count; i++) {
        const v = r.u8('protocol version');
        if (v === 0) r.fail('protocol version 0 is reserved');
        versions.push(v);
      }
      const serial = r.string(MAX_HELLO_STRING_BYTES, 'serial');
      const firmware = r.string(MAX_HELLO_STRING_BYTES, 'firmware version');
      message = { type: 'hello', seq, meter, capabilities, intervalMs, lastBatchCounter, versions, serial, firmware };
      break;
    }
    case 'hello-ack': {
      const version = r.u8('version');
      if (version === 0) r.fail('protocol version 0 is reserved');
      message = { type: 'hello-ack', seq, version, agentTimeMs: r.u64('agent time') };
      break;
    }
    case 'time-sync': {
      const agentTimeMs = r.u64('agent time');
      const flags = r.u8('flags');
      if ((flags & ~1) !== 0) r.fail(`flags 0x${flags.toString(16)} set reserved bits`);
      message = { type: 'time-sync', seq, agentTimeMs, set: (flags & 1) === 1 };
      break;
    }
    case 'time-sync-reply':
      message = { type: 'time-sync-reply', seq, agentTimeMs: r.u64('agent time'), meterTimeMs: r.u64('meter time') };
      break;
    case 'reading-batch': {
      const length = r.u16('payload length');
      if (length === 0) r.fail('payload is empty');
      const payload = r.take(length, 'payload');
      const signature = r.take(SIGNATURE_LENGTH, 'signature');
      message = { type: 'reading-batch', seq, payload, signature };
      break;
    }
    case 'ack':
      message = {
        type: 'ack',
        seq,
        ackedType: r.u8('acked type'),
        status: r.u8('ack status'),
        batchCounter: r.u32('batch counter'),
      };
      break;
    case 'nack':
      message = {
        type: 'nack',
        seq,
        nackedType: r.u8('nacked type'),
        code: r.u8('nack code'),
        detail: r.string(0xff, 'detail'),
      };
      break;
    case 'command': {
      const id = r.u8('command id');
      const args = r.take(r.u8('argument length'), 'arguments');
      message = { type: 'command', seq, command: decodeCommand(id, args) };
      break;
    }
    case 'command-ack': {
      const commandId = r.u8('command id');
      const status = r.u8('command status');
      const result = r.take(r.u8('result length'), 'result');
      message = { type: 'command-ack', seq, commandId, status, result };
      break;
    }
  }
  r.end();
  return message;
}

/**
 * Interprets a COMMAND's id and arguments. Unknown ids and known ids with arguments of the wrong length or range come
 * back as `{kind: 'other'}` so the receiver can answer COMMAND_ACK unknown-command or bad-argument (see
 * `checkCommand`) instead of dropping the message.
 */
export function decodeCommand(id: number, args: Uint8Array): MeterCommand {
  if (id === CommandId.REQUEST_BATCH && args.length === 0) return { kind: 'request-batch' };
  if (id === CommandId.RESEND_UNACKED && args.length === 0) return { kind: 'resend-unacked' };
  if (id === CommandId.SEND_HELLO && args.length === 0) return { kind: 'send-hello' };
  if (id === CommandId.SET_INTERVAL && args.length === 4) {
    const intervalMs = new DataView(args.buffer, args.byteOffset, 4).getUint32(0);
    if (intervalMs >= MIN_INTERVAL_MS && intervalMs <= MAX_INTERVAL_MS) return { kind: 'set-interval', intervalMs };
  }
  return { kind: 'other', id, args };
}

/**
 * For a decoded `other` command: the COMMAND_ACK status a meter answers with (unknown-command for an id it does not
 * know, bad-argument for a known id with wrong arguments), and a sentence saying why.
 */
export function checkCommand(command: MeterCommand): { status: number; reason: string } {
  if (command.kind !== 'other') return { status: CommandStatus.OK, reason: '' };
  const known = Object.values(CommandId) as number[];
  if (!known.includes(command.id)) {
    return { status: CommandStatus.UNKNOWN_COMMAND, reason: `command id ${command.id} is unknown` };
  }
  return {
    status: CommandStatus.BAD_ARGUMENT,
    reason: `command id ${command.id} got ${command.args.length} argument bytes that are not valid for it`,
  };
}

/** The response types: messages that answer a request and carry its seq. */
export function isResponse(message: Message): boolean {
  return (
    message.type === 'hello-ack' ||
    message.type === 'time-sync-reply' ||
    message.type === 'ack' ||
    message.type === 'nack' ||
    message.type === 'command-ack'
  );
}

/** Name of a NACK code for logs and errors ("store-failed"), or "code N" for an unknown one. */
export function nackCodeName(code: number): string {
  for (const [name, value] of Object.entries(NackCode)) {
    if (value === code) return name.toLowerCase().replaceAll('_', '-');
  }
  return `code ${code}`;
}
