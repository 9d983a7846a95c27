import { describe, expect, it } from 'vitest';
import { decodeMbapAnswer, encodeMbapRequest, MbapFramer, MbapStreamError } from '../../../../hardware/modbus/mbap.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('encodeMbapRequest', () => {
  // Byte layouts from the Modbus Application Protocol v1.1b3 (PDUs) and Messaging on TCP/IP guide v1.0b (MBAP).
  it('frames a read of holding registers', () => {
    expect(encodeMbapRequest(1, 1, { fn: 3, start: 40000, count: 2 })).toEqual(hex('0001 0000 0006 01 03 9C40 0002'));
  });

  it('frames a read of input registers (spec example: 0x0008, one register)', () => {
    expect(encodeMbapRequest(0x1234, 0xff, { fn: 4, start: 8, count: 1 })).toEqual(
      hex('1234 0000 0006 FF 04 0008 0001'),
    );
  });

  it('frames a single write (spec example: register 2 = 0x0003)', () => {
    expect(encodeMbapRequest(7, 17, { fn: 6, start: 1, value: 3 })).toEqual(hex('0007 0000 0006 11 06 0001 0003'));
  });

  it('frames a multiple write (spec example: 2 registers at 1 = 0x000A 0x0102)', () => {
    expect(encodeMbapRequest(65535, 1, { fn: 16, start: 1, values: [0x000a, 0x0102] })).toEqual(
      hex('FFFF 0000 000B 01 10 0001 0002 04 000A 0102'),
    );
  });

  it('wraps the transaction id at 16 bits', () => {
    expect(encodeMbapRequest(65536 + 5, 1, { fn: 3, start: 0, count: 1 }).readUInt16BE(0)).toBe(5);
  });
});

describe('MbapFramer', () => {
  const answer = hex('0001 0000 0007 01 03 04 00E6 0001');

  it('finds one frame in one chunk', () => {
    const frames = new MbapFramer().push(answer);
    expect(frames).toHaveLength(1);
    expect(frames[0]?.tid).toBe(1);
    expect(frames[0]?.unit).toBe(1);
    expect(frames[0]?.pdu).toEqual(hex('03 04 00E6 0001'));
  });

  it('joins a frame split over chunks, byte by byte', () => {
    const framer = new MbapFramer();
    const found = [];
    for (const byte of answer) found.push(...framer.push(Buffer.from([byte])));
    expect(found).toHaveLength(1);
    expect(found[0]?.pdu).toEqual(hex('03 04 00E6 0001'));
  });

  it('splits two frames and a partial third in one chunk, keeping the rest', () => {
    const second = hex('0002 0000 0003 02 83 02');
    const third = hex('0003 0000 0007 01 03 04 0000 0001');
    const framer = new MbapFramer();
    const first = framer.push(Buffer.concat([answer, second, third.subarray(0, 5)]));
    expect(first.map((f) => f.tid)).toEqual([1, 2]);
    expect(first[1]?.unit).toBe(2);
    const rest = framer.push(third.subarray(5));
    expect(rest.map((f) => f.tid)).toEqual([3]);
  });

  it('refuses a stream that is not Modbus TCP (protocol id) or out of step (length)', () => {
    expect(() => new MbapFramer().push(hex('0001 0001 0006 01 03 9C40 0002'))).toThrow(MbapStreamError);
    expect(() => new MbapFramer().push(hex('0001 0000 0001 01 03'))).toThrow(/outside 2..254/);
    expect(() => new MbapFramer().push(hex('0001 0000 0100 01 03'))).toThrow(/outside 2..254/);
  });

  it('forgets a partial frame on reset', () => {
    const framer = new MbapFramer();
    framer.push(answer.subarray(0, 9));
    framer.reset();
    expect(framer.push(answer).map((f) => f.tid)).toEqual([1]);
  });
});

describe('decodeMbapAnswer', () => {
  it('decodes registers of a read', () => {
    expect(decodeMbapAnswer({ fn: 3, start: 0, count: 2 }, hex('03 04 00E6 FFFF'))).toEqual({
      ok: true,
      registers: [230, 65535],
    });
  });

  it('reports an exception with its code', () => {
    expect(decodeMbapAnswer({ fn: 4, start: 0, count: 2 }, hex('84 02'))).toEqual({ ok: false, exception: 2 });
  });

  it('calls a short, long or foreign answer malformed', () => {
    const read = { fn: 3, start: 0, count: 2 } as const;
    expect(decodeMbapAnswer(read, hex('03 02 00E6'))).toMatchObject({ ok: false, malformed: /expected 2 registers/ });
    expect(decodeMbapAnswer(read, hex('03 04 00E6 0001 00'))).toMatchObject({ ok: false });
    expect(decodeMbapAnswer(read, hex('04 04 00E6 0001'))).toMatchObject({ ok: false, malformed: /function 4/ });
    expect(decodeMbapAnswer(read, hex(''))).toMatchObject({ ok: false, malformed: 'empty PDU' });
  });

  it('checks the echo of writes', () => {
    expect(decodeMbapAnswer({ fn: 6, start: 1, value: 3 }, hex('06 0001 0003'))).toEqual({ ok: true });
    expect(decodeMbapAnswer({ fn: 6, start: 1, value: 3 }, hex('06 0001 0004'))).toMatchObject({ ok: false });
    expect(decodeMbapAnswer({ fn: 16, start: 1, values: [1, 2] }, hex('10 0001 0002'))).toEqual({ ok: true });
    expect(decodeMbapAnswer({ fn: 16, start: 1, values: [1, 2] }, hex('10 0001 0001'))).toMatchObject({
      ok: false,
      malformed: /acknowledged 1\+1/,
    });
  });
});
