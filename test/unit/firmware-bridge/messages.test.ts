import { describe, expect, it } from 'vitest';
import {
  AckStatus,
  CommandId,
  CommandStatus,
  checkCommand,
  decodeCommand,
  decodeMessage,
  encodeCommand,
  encodeMessage,
  isResponse,
  isTransientNack,
  type Message,
  MessageError,
  MessageType,
  messageTypeCode,
  messageTypeName,
  NackCode,
  nackCodeName,
} from '../../../firmware-bridge/messages.js';

const h = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const METER = '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf';

const SAMPLES: Message[] = [
  {
    type: 'hello',
    seq: 1,
    meter: METER,
    capabilities: 0x0f,
    intervalMs: 900_000,
    lastBatchCounter: 41,
    versions: [1],
    serial: 'EM-2024-000123',
    firmware: '2.3.1',
  },
  { type: 'hello-ack', seq: 1, version: 1, agentTimeMs: 1_717_200_000_000 },
  { type: 'time-sync', seq: 9, agentTimeMs: 1_717_200_000_123, set: true },
  { type: 'time-sync', seq: 10, agentTimeMs: 0, set: false },
  { type: 'time-sync-reply', seq: 9, agentTimeMs: 1_717_200_000_123, meterTimeMs: 1_717_200_000_130 },
  { type: 'reading-batch', seq: 2, payload: h('4d474d42 01'), signature: new Uint8Array(65).fill(0x11) },
  { type: 'ack', seq: 2, ackedType: MessageType.READING_BATCH, status: AckStatus.STORED, batchCounter: 42 },
  { type: 'nack', seq: 3, nackedType: MessageType.READING_BATCH, code: NackCode.STORE_FAILED, detail: 'disk full ⚠' },
  { type: 'nack', seq: 4, nackedType: 0x7f, code: NackCode.UNKNOWN_TYPE, detail: '' },
  { type: 'command', seq: 11, command: { kind: 'request-batch' } },
  { type: 'command', seq: 12, command: { kind: 'set-interval', intervalMs: 60_000 } },
  { type: 'command', seq: 13, command: { kind: 'resend-unacked' } },
  { type: 'command', seq: 14, command: { kind: 'send-hello' } },
  { type: 'command', seq: 15, command: { kind: 'other', id: 200, args: h('0102') } },
  { type: 'command-ack', seq: 12, commandId: CommandId.SET_INTERVAL, status: CommandStatus.OK, result: h('0000ea60') },
  {
    type: 'command-ack',
    seq: 0xffff,
    commandId: 200,
    status: CommandStatus.UNKNOWN_COMMAND,
    result: new Uint8Array(0),
  },
];

function expectError(bytes: Uint8Array, pattern: RegExp, code: number = NackCode.BAD_MESSAGE): MessageError {
  try {
    decodeMessage(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(MessageError);
    expect((err as Error).message).toMatch(pattern);
    expect((err as MessageError).code).toBe(code);
    return err as MessageError;
  }
  throw new Error('expected decodeMessage to throw');
}

describe('messages', () => {
  it.each(SAMPLES.map((m) => [`${m.type} seq ${m.seq}`, m] as const))('round-trips %s', (_name, message) => {
    const bytes = encodeMessage(message);
    expect(bytes[0]).toBe(1);
    expect(bytes[1]).toBe(messageTypeCode(message.type));
    expect((bytes[2]! << 8) | bytes[3]!).toBe(message.seq);
    expect(decodeMessage(bytes)).toEqual(message);
  });

  it('lays out an ACK as 01 06 seq ackedType status counter', () => {
    const bytes = encodeMessage({ type: 'ack', seq: 7, ackedType: 5, status: 0, batchCounter: 42 });
    expect(bytes).toEqual(h('01 06 0007 05 00 0000002a'));
  });

  it('lays out a HELLO field by field', () => {
    const bytes = encodeMessage(SAMPLES[0]!);
    const expected = h(
      '01 01 0001' +
        '7e5f4552091a69125d5dfcb7b8c2659029395bdf' +
        '0000000f 000dbba0 00000029 01 01' +
        `0e ${Buffer.from('EM-2024-000123').toString('hex')}` +
        `05 ${Buffer.from('2.3.1').toString('hex')}`,
    );
    expect(bytes).toEqual(expected);
  });

  it('lays out TIME_SYNC, TIME_SYNC_REPLY, READING_BATCH, NACK and COMMAND', () => {
    expect(encodeMessage(SAMPLES[2]!)).toEqual(h('01 03 0009 0000018fd118947b 01'));
    expect(encodeMessage(SAMPLES[4]!)).toEqual(h('01 04 0009 0000018fd118947b 0000018fd1189482'));
    expect(encodeMessage(SAMPLES[5]!)).toEqual(h(`01 05 0002 0005 4d474d4201 ${'11'.repeat(65)}`));
    expect(encodeMessage({ type: 'nack', seq: 3, nackedType: 5, code: 8, detail: 'x' })).toEqual(
      h('01 07 0003 05 08 01 78'),
    );
    expect(encodeMessage(SAMPLES[10]!)).toEqual(h('01 08 000c 02 04 0000ea60'));
    expect(encodeMessage(SAMPLES[9]!)).toEqual(h('01 08 000b 01 00'));
  });

  it('names the header problems with the NACK code a receiver answers with', () => {
    expectError(h('01 06 00'), /shorter than the 4-byte header/);
    const v = expectError(h('02 06 0007 05 00 0000002a'), /version 2 is not supported/, NackCode.UNSUPPORTED_VERSION);
    expect(v.header).toEqual({ version: 2, type: 6, seq: 7 });
    const t = expectError(h('01 7f 1234'), /type 0x7f is unknown/, NackCode.UNKNOWN_TYPE);
    expect(t.header?.seq).toBe(0x1234);
  });

  it('refuses missing and trailing bytes, naming the message and field', () => {
    expectError(h('01 06 0007 05 00 000000'), /ACK is truncated: batch counter needs 4 bytes at offset 6/);
    const trailing = expectError(h('01 06 0007 05 00 0000002a ff'), /1 unexpected trailing bytes after offset 10/);
    expect(trailing.header?.seq).toBe(7);
    expectError(h('01 05 0002 0005 4d474d4201'), /READING_BATCH is truncated: signature needs 65 bytes/);
    expectError(h(`01 05 0002 0000 ${'11'.repeat(65)}`), /payload is empty/);
  });

  it('refuses bad strings, bad version lists, reserved flags and times above 2^53 − 1', () => {
    const hello = encodeMessage(SAMPLES[0]!);
    const badUtf8 = hello.slice();
    badUtf8[hello.length - 5] = 0xff; // inside the firmware string
    expectError(badUtf8, /firmware version is not valid UTF-8/);
    const noVersions = hello.slice();
    noVersions[36] = 0;
    expectError(noVersions, /must list 1 to 16 protocol versions, got 0/);
    expectError(h('01 03 0009 0000018fd118947b 02'), /flags 0x2 set reserved bits/);
    expectError(h('01 02 0001 01 0020000000000000'), /agent time 9007199254740992 is above 2\^53 − 1/);
    expectError(h('01 02 0001 00 0000000000000000'), /protocol version 0 is reserved/);
    const longSerial = h(`01 01 0001 ${'00'.repeat(20)} 00000000 00000000 00000000 01 01 41 ${'41'.repeat(65)} 00`);
    expectError(longSerial, /serial is 65 bytes, the limit is 64/);
  });

  it('refuses to encode out-of-range fields, naming them', () => {
    expect(() => encodeMessage({ type: 'ack', seq: 70000, ackedType: 5, status: 0, batchCounter: 1 })).toThrow(
      /seq must be 0..65535/,
    );
    expect(() => encodeMessage({ type: 'ack', seq: 1, ackedType: 5, status: 0, batchCounter: -1 })).toThrow(
      /batch counter must be an integer 0..4294967295, got -1/,
    );
    expect(() =>
      encodeMessage({ type: 'reading-batch', seq: 1, payload: h('01'), signature: new Uint8Array(64) }),
    ).toThrow(/signature must be 65 bytes, got 64/);
    expect(() => encodeMessage({ type: 'hello-ack', seq: 1, version: 1, agentTimeMs: 1.5 })).toThrow(/agent time/);
    expect(() =>
      encodeMessage({ ...(SAMPLES[0] as Extract<Message, { type: 'hello' }>), serial: 'x'.repeat(65) }),
    ).toThrow(/serial is 65 UTF-8 bytes, the limit is 64/);
    expect(() => encodeMessage({ ...(SAMPLES[0] as Extract<Message, { type: 'hello' }>), meter: '0x1234' })).toThrow(
      /HELLO meter address: expected 0x followed by 40 hex digits/,
    );
    expect(() => encodeMessage({ type: 'command', seq: 1, command: { kind: 'set-interval', intervalMs: 10 } })).toThrow(
      /interval must be an integer number of ms from 1000 to 86400000, got 10/,
    );
  });

  it('decodes unknown commands and bad arguments as "other" so the meter can answer them', () => {
    expect(decodeCommand(CommandId.SET_INTERVAL, h('000003e8'))).toEqual({ kind: 'set-interval', intervalMs: 1000 });
    const short = decodeCommand(CommandId.SET_INTERVAL, h('0003e8'));
    expect(short.kind).toBe('other');
    expect(checkCommand(short)).toMatchObject({ status: CommandStatus.BAD_ARGUMENT });
    const tooSmall = decodeCommand(CommandId.SET_INTERVAL, h('00000001'));
    expect(checkCommand(tooSmall).status).toBe(CommandStatus.BAD_ARGUMENT);
    const unknown = decodeCommand(99, new Uint8Array(0));
    expect(checkCommand(unknown)).toEqual({
      status: CommandStatus.UNKNOWN_COMMAND,
      reason: 'command id 99 is unknown',
    });
    expect(checkCommand({ kind: 'request-batch' }).status).toBe(CommandStatus.OK);
    expect(encodeCommand({ kind: 'send-hello' })).toEqual({ id: 4, args: new Uint8Array(0) });
  });

  it('classifies types and NACK codes', () => {
    expect(messageTypeName(5)).toBe('reading-batch');
    expect(messageTypeName(0x42)).toBeUndefined();
    expect(isResponse(SAMPLES[6]!)).toBe(true);
    expect(isResponse(SAMPLES[5]!)).toBe(false);
    expect(isTransientNack(NackCode.STORE_FAILED)).toBe(true);
    expect(isTransientNack(NackCode.BAD_SIGNATURE)).toBe(false);
    expect(nackCodeName(NackCode.NOT_READY)).toBe('not-ready');
    expect(nackCodeName(200)).toBe('code 200');
  });
});
