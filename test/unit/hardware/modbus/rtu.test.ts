import { describe, expect, it } from 'vitest';
import {
  buildRtuFrame,
  RtuResponseFramer,
  rtuInterFrameMs,
  rtuRequestLength,
  rtuResponseLength,
  rtuWireTimeMs,
} from '../../../../hardware/modbus/rtu.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('RTU wire arithmetic', () => {
  it('matches the Modbus serial line spec', () => {
    expect(rtuInterFrameMs(9600)).toBeCloseTo(4.0104, 3);
    expect(rtuInterFrameMs(19200)).toBeCloseTo(2.0052, 3);
    expect(rtuInterFrameMs(38400)).toBe(1.75);
    expect(rtuWireTimeMs(8 + 255, 9600)).toBeCloseTo(301.35, 1);
  });

  it('knows frame lengths by function code', () => {
    expect(rtuRequestLength(hex('01 03 00 00 00 0a c5 cd'))).toBe(8);
    expect(rtuRequestLength(hex('01 10 00 01 00 02'))).toBe('more');
    expect(rtuRequestLength(hex('01 10 00 01 00 02 04'))).toBe(13);
    expect(rtuRequestLength(hex('01 2b'))).toBe('unknown');
    expect(rtuResponseLength(hex('01 03 14'))).toBe(25);
    expect(rtuResponseLength(hex('01 83'))).toBe(5);
    expect(rtuResponseLength(hex('01 10'))).toBe(8);
  });
});

describe('RtuResponseFramer', () => {
  const request = buildRtuFrame(1, hex('03 00 00 00 02'));
  const answer = buildRtuFrame(1, hex('03 04 00 01 00 02'));

  function framer() {
    const frames: string[] = [];
    const f = new RtuResponseFramer((frame) => frames.push(frame.toString('hex')));
    return { f, frames };
  }

  it('finds an answer split over chunks, after noise', () => {
    const { f, frames } = framer();
    f.expect(request);
    f.push(hex('ff 00 03 13'));
    f.push(answer.subarray(0, 3));
    expect(frames).toEqual([]);
    f.push(answer.subarray(3));
    expect(frames).toEqual([answer.toString('hex')]);
  });

  it('drops bytes that arrive before a request and stale bytes of the previous exchange', () => {
    const { f, frames } = framer();
    f.push(answer); // unsolicited
    expect(frames).toEqual([]);
    f.expect(request);
    f.push(answer.subarray(0, 4)); // start of an answer...
    f.expect(request); // ...abandoned (timeout), new request
    f.push(answer);
    expect(frames).toEqual([answer.toString('hex')]);
  });

  it('hands on answers from another unit and exceptions, remembers bad CRCs', () => {
    const { f, frames } = framer();
    f.expect(request);
    const bad = Buffer.from(answer);
    bad[bad.length - 1]! ^= 0xff;
    f.push(bad);
    expect(frames).toEqual([]);
    expect(f.badCrcSeen).toBe(true);
    const other = buildRtuFrame(2, hex('03 04 00 01 00 02'));
    f.push(other);
    expect(frames).toEqual([other.toString('hex')]);

    f.expect(request);
    expect(f.badCrcSeen).toBe(false);
    const exception = buildRtuFrame(1, hex('83 02'));
    f.push(exception);
    expect(frames.at(-1)).toBe(exception.toString('hex'));
  });
});
