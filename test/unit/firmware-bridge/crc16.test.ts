import { describe, expect, it } from 'vitest';
import { CRC16_CHECK, crc16 } from '../../../firmware-bridge/crc16.js';

/** Bit-by-bit CRC-16/CCITT-FALSE straight from the Rocksoft parameters, no table: the reference the table must match. */
function referenceCrc(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const inBit = (byte >> bit) & 1;
      const top = (crc >> 15) & 1;
      crc = (crc << 1) & 0xffff;
      if (top ^ inBit) crc ^= 0x1021;
    }
  }
  return crc; // xorout 0x0000, no reflection
}

const ascii = (s: string) => new TextEncoder().encode(s);

describe('crc16 (CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, refin/refout false, xorout 0)', () => {
  it('gives the catalogue check value 0x29B1 for "123456789"', () => {
    expect(crc16(ascii('123456789'))).toBe(0x29b1);
    expect(CRC16_CHECK).toBe(0x29b1);
  });

  it('matches known values for short inputs', () => {
    expect(crc16(new Uint8Array(0))).toBe(0xffff);
    expect(crc16(ascii('A'))).toBe(0xb915);
    expect(crc16(Uint8Array.of(0x01, 0x02, 0x03))).toBe(0xadad);
  });

  it('has residue 0: the CRC over data followed by its big-endian CRC is 0', () => {
    const data = ascii('meter frame');
    const crc = crc16(data);
    expect(crc16(Uint8Array.of(...data, crc >> 8, crc & 0xff))).toBe(0);
  });

  it('equals the bitwise reference on pseudo-random inputs of every length up to 300', () => {
    let x = 12345;
    for (let n = 0; n <= 300; n++) {
      const data = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        data[i] = x >>> 24;
      }
      expect(crc16(data)).toBe(referenceCrc(data));
    }
  });

  it('continues a running CRC over split input', () => {
    const data = ascii('123456789');
    for (let cut = 0; cut <= data.length; cut++) {
      expect(crc16(data.subarray(cut), crc16(data.subarray(0, cut)))).toBe(0x29b1);
    }
  });

  it('detects every single-bit error in a 64-byte frame', () => {
    const data = new Uint8Array(64).map((_, i) => i * 7);
    const good = crc16(data);
    for (let i = 0; i < data.length * 8; i++) {
      const flipped = data.slice();
      flipped[i >> 3] = (flipped[i >> 3] as number) ^ (1 << (i & 7));
      expect(crc16(flipped)).not.toBe(good);
    }
  });
});
