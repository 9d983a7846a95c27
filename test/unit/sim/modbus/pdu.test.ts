import { describe, expect, it } from 'vitest';
import { ArrayRegisterBank } from '../../../../sim/modbus/bank.js';
import {
  answerPdu,
  buildExceptionPdu,
  buildMbapFrame,
  buildRequestPdu,
  buildResponsePdu,
  buildRtuFrame,
  crc16Modbus,
  type ModbusRequest,
  parseRequestPdu,
  parseResponsePdu,
  rtuCrcOk,
} from '../../../../sim/modbus/pdu.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('CRC-16/MODBUS', () => {
  it('matches the published check value and known frames', () => {
    // CRC catalogue check value for "123456789"
    expect(crc16Modbus(Buffer.from('123456789'))).toBe(0x4b37);
    // Read holding 0+10 from unit 1: CRC sent low byte first as C5 CD
    expect(crc16Modbus(hex('01 03 00 00 00 0A'))).toBe(0xcdc5);
    expect(buildRtuFrame(1, hex('03 00 00 00 0A')).toString('hex')).toBe('01030000000ac5cd');
    // Write single register 1 <- 3 on unit 17 (Modbus over Serial Line spec example frame)
    expect(buildRtuFrame(0x11, hex('06 00 01 00 03')).toString('hex')).toBe('1106000100039a9b');
    // Exception response: unit 1, FC 0x83, code 2
    expect(buildRtuFrame(1, hex('83 02')).toString('hex')).toBe('018302c0f1');
  });

  it('rtuCrcOk accepts good frames and rejects any flipped bit', () => {
    const frame = buildRtuFrame(7, hex('04 00 10 00 02'));
    expect(rtuCrcOk(frame, 0, frame.length)).toBe(true);
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const bad = Buffer.from(frame);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      expect(rtuCrcOk(bad, 0, bad.length)).toBe(false);
    }
  });
});

describe('request PDUs', () => {
  const requests: ModbusRequest[] = [
    { fn: 3, start: 40000, count: 125 },
    { fn: 4, start: 0, count: 1 },
    { fn: 6, address: 40100, value: 0xbeef },
    { fn: 16, start: 1, values: [1, 2, 0xffff] },
  ];
  for (const request of requests) {
    it(`round-trips FC ${request.fn}`, () => {
      const parsed = parseRequestPdu(buildRequestPdu(request));
      expect(parsed).toEqual({ ok: true, request });
    });
  }

  it('builds the bytes the spec shows', () => {
    expect(buildRequestPdu({ fn: 3, start: 0x6b, count: 3 }).toString('hex')).toBe('03006b0003');
    expect(buildRequestPdu({ fn: 16, start: 1, values: [0x000a, 0x0102] }).toString('hex')).toBe(
      '100001000204000a0102',
    );
  });

  it('answers exceptions the way a device does', () => {
    expect(parseRequestPdu(hex('2b 0e 01 00'))).toEqual({ ok: false, fn: 0x2b, exception: 1 });
    expect(parseRequestPdu(hex('03 00 00 00 00'))).toEqual({ ok: false, fn: 3, exception: 3 }); // count 0
    expect(parseRequestPdu(hex('03 00 00 00 7e'))).toEqual({ ok: false, fn: 3, exception: 3 }); // 126
    expect(parseRequestPdu(hex('03 ff ff 00 02'))).toEqual({ ok: false, fn: 3, exception: 2 }); // past 65535
    expect(parseRequestPdu(hex('10 00 01 00 02 03 00 0a 01'))).toEqual({ ok: false, fn: 16, exception: 3 });
    expect(parseRequestPdu(hex('06 00 01 00'))).toEqual({ ok: false, fn: 6, exception: 3 });
  });
});

describe('response PDUs', () => {
  it('round-trips reads, writes and exceptions', () => {
    const read = buildResponsePdu({ fn: 3, start: 0, count: 3 }, [0x5375, 0x6e53, 1]);
    expect(read.toString('hex')).toBe('030653756e530001');
    expect(parseResponsePdu(read)).toEqual({ fn: 3, values: [0x5375, 0x6e53, 1] });
    expect(parseResponsePdu(buildResponsePdu({ fn: 6, address: 5, value: 9 }))).toEqual({
      fn: 6,
      address: 5,
      value: 9,
    });
    expect(parseResponsePdu(buildResponsePdu({ fn: 16, start: 5, values: [1, 2] }))).toEqual({
      fn: 16,
      start: 5,
      count: 2,
    });
    expect(buildExceptionPdu(3, 2).toString('hex')).toBe('8302');
    expect(parseResponsePdu(buildExceptionPdu(16, 4))).toEqual({ fn: 16, exception: 4 });
  });

  it('rejects malformed responses', () => {
    expect(() => parseResponsePdu(hex('03 04 00 01'))).toThrow(/byte count/);
    expect(() => parseResponsePdu(hex(''))).toThrow(/empty/);
    expect(() => parseResponsePdu(hex('83'))).toThrow(/exception/);
  });

  it('frames MBAP', () => {
    expect(buildMbapFrame(0x0102, 9, hex('03 00 00 00 01')).toString('hex')).toBe('01020000000609' + '0300000001');
  });
});

describe('answering from a bank', () => {
  const writes: Array<[number, readonly number[]]> = [];
  const bank = new ArrayRegisterBank({
    holding: [
      { start: 100, values: [1, 2, 3, 4] },
      { start: 104, values: [0, 0], writable: true },
    ],
    input: [{ start: 0, values: [42] }],
    onWrite: (start, values) => {
      writes.push([start, values]);
      return values.includes(999) ? 3 : undefined;
    },
  });

  it('reads across adjacent ranges and refuses unmapped addresses', () => {
    expect(parseResponsePdu(answerPdu(bank, buildRequestPdu({ fn: 3, start: 102, count: 4 })))).toEqual({
      fn: 3,
      values: [3, 4, 0, 0],
    });
    expect(parseResponsePdu(answerPdu(bank, buildRequestPdu({ fn: 3, start: 103, count: 4 })))).toEqual({
      fn: 3,
      exception: 2,
    });
    expect(parseResponsePdu(answerPdu(bank, buildRequestPdu({ fn: 4, start: 0, count: 1 })))).toEqual({
      fn: 4,
      values: [42],
    });
  });

  it('writes only writable ranges, and lets onWrite refuse (rolled back)', () => {
    expect(parseResponsePdu(answerPdu(bank, buildRequestPdu({ fn: 16, start: 104, values: [7, 8] })))).toEqual({
      fn: 16,
      start: 104,
      count: 2,
    });
    expect(bank.get(3, 104, 2)).toEqual([7, 8]);
    expect(parseResponsePdu(answerPdu(bank, buildRequestPdu({ fn: 6, address: 100, value: 1 })))).toEqual({
      fn: 6,
      exception: 2,
    });
    expect(parseResponsePdu(answerPdu(bank, buildRequestPdu({ fn: 6, address: 105, value: 999 })))).toEqual({
      fn: 6,
      exception: 3,
    });
    expect(bank.get(3, 105, 1)).toEqual([8]);
    expect(writes.map(([s]) => s)).toEqual([104, 105]);
  });
});
