import { describe, expect, it } from 'vitest';
import { CobsError, cobsDecode, cobsEncode, cobsMaxEncodedLength } from '../../../firmware-bridge/cobs.js';

const h = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const range = (from: number, to: number) => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

// Cheshire & Baker's examples as catalogued on Wikipedia ("Consistent Overhead Byte Stuffing", examples 1-11), without
// the trailing 0x00 delimiter.
const VECTORS: [string, Uint8Array, Uint8Array][] = [
  ['empty', new Uint8Array(0), h('01')],
  ['00', h('00'), h('01 01')],
  ['00 00', h('00 00'), h('01 01 01')],
  ['00 11 00', h('00 11 00'), h('01 02 11 01')],
  ['11 22 00 33', h('11 22 00 33'), h('03 11 22 02 33')],
  ['11 22 33 44', h('11 22 33 44'), h('05 11 22 33 44')],
  ['11 00 00 00', h('11 00 00 00'), h('02 11 01 01 01')],
  ['01..FE (254 bytes)', range(1, 0xfe), cat([0xff], range(1, 0xfe))],
  ['00..FE (255 bytes)', range(0, 0xfe), cat([0x01, 0xff], range(1, 0xfe))],
  ['01..FF (255 bytes)', range(1, 0xff), cat([0xff], range(1, 0xfe), [0x02, 0xff])],
  ['02..FF 00 (255 bytes)', cat(range(2, 0xff), [0]), cat([0xff], range(2, 0xff), [0x01, 0x01])],
  ['03..FF 00 01 (255 bytes)', cat(range(3, 0xff), [0, 1]), cat([0xfe], range(3, 0xff), [0x02, 0x01])],
];

describe('COBS', () => {
  it.each(VECTORS)('encodes and decodes %s', (_name, data, encoded) => {
    expect(cobsEncode(data)).toEqual(encoded);
    expect(cobsDecode(encoded)).toEqual(data);
  });

  it('never produces 0x00 and stays within the overhead bound, for every length around the 254-byte block', () => {
    for (const fill of [0, 1, 0x55]) {
      for (let n = 0; n <= 520; n++) {
        const data = new Uint8Array(n).map((_, i) => (fill === 0x55 && i % 7 === 0 ? 0 : fill || (i % 255) + 1));
        const encoded = cobsEncode(data);
        expect(encoded.includes(0)).toBe(false);
        expect(encoded.length).toBeLessThanOrEqual(cobsMaxEncodedLength(n));
        expect(Buffer.from(cobsDecode(encoded)).equals(data)).toBe(true);
      }
    }
  });

  it('also decodes the non-minimal form with an empty block after a full one', () => {
    expect(cobsDecode(cat([0xff], range(1, 0xfe), [0x01]))).toEqual(range(1, 0xfe));
  });

  it('refuses a block that runs past the end, an embedded 0x00 and empty input, with reasons', () => {
    expect(() => cobsDecode(h('05 11 22'))).toThrow(/announces 4 data bytes but only 2 remain/);
    expect(() => cobsDecode(h('03 11 00'))).toThrow(/0x00 at offset 2/);
    expect(() => cobsDecode(h('00'))).toThrow(CobsError);
    expect(() => cobsDecode(new Uint8Array(0))).toThrow(/empty/);
    try {
      cobsDecode(h('05 11'));
    } catch (err) {
      expect((err as CobsError).kind).toBe('truncated');
    }
  });

  it('computes the overhead bound', () => {
    expect(cobsMaxEncodedLength(0)).toBe(1);
    expect(cobsMaxEncodedLength(254)).toBe(255);
    expect(cobsMaxEncodedLength(255)).toBe(257);
    expect(cobsMaxEncodedLength(1026)).toBe(1031);
  });
});
