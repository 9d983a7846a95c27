import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CodecError,
  type CodecPoint,
  checkWritable,
  decodeBlock,
  decodePoint,
  decodeRaw,
  encodeRaw,
  encodeValue,
  type RawValue,
  registerCount,
  scaleValue,
  sunspecNotImplemented,
} from '../../../hardware/codec.js';
import type { PlacedPoint, ReadBlock } from '../../../hardware/modbus/types.js';
import type { PointType } from '../../../hardware/profile/types.js';

type JsonRaw = number | string | null | { bigint: string };

interface Vectors {
  values: {
    type: PointType;
    wordOrder: 'big' | 'little';
    byteOrder: 'big' | 'little';
    words: number[];
    raw: JsonRaw;
  }[];
  sentinels: { vectors: { type: PointType; size?: number; words: number[]; absolute: JsonRaw }[] };
  strings: {
    vectors: { size: number; byteOrder: 'big' | 'little'; words: number[]; raw: string; decodeOnly?: string }[];
  };
  scaling: { vectors: { type: PointType; raw: JsonRaw; scale?: number; sf?: number | null; value: number | null }[] };
  encodeValues: {
    vectors: {
      type: PointType;
      value: number;
      scale?: number;
      sf?: number;
      wordOrder?: 'big' | 'little';
      byteOrder?: 'big' | 'little';
      words: number[];
    }[];
  };
  encodeErrors: { vectors: { type: PointType; size?: number; raw: JsonRaw; error: string }[] };
  encodeValueErrors: {
    vectors: {
      type: PointType;
      value: number | string;
      scale?: number;
      sf?: number | null;
      unit?: string;
      error: string;
    }[];
  };
  buffer: {
    vectors: {
      type: PointType;
      wordOrder: 'big' | 'little';
      byteOrder: 'big' | 'little';
      wire: string;
      read: string;
    }[];
  };
}

const vectors = JSON.parse(readFileSync(new URL('../../vectors/codec.json', import.meta.url), 'utf8')) as Vectors;

function raw(value: JsonRaw): RawValue | null {
  return value !== null && typeof value === 'object' ? BigInt(value.bigint) : value;
}

function point(type: PointType, extra: Partial<CodecPoint> = {}): CodecPoint {
  const size = { string: 4, pad: 1 }[type as string] ?? registerCount({ type, size: 0 });
  return {
    name: 'P',
    type,
    size,
    wordOrder: 'big',
    byteOrder: 'big',
    scale: 1,
    notImplemented: [],
    access: 'r',
    ...extra,
  };
}

function hex(words: readonly number[]): string {
  return words.map((w) => w.toString(16).padStart(4, '0')).join(' ');
}

describe('decodeRaw and encodeRaw: every type x word order x byte order (test/vectors/codec.json)', () => {
  for (const v of vectors.values) {
    const p = point(v.type, { wordOrder: v.wordOrder, byteOrder: v.byteOrder });
    it(`${v.type} ${v.wordOrder}/${v.byteOrder} [${hex(v.words)}] = ${JSON.stringify(v.raw)}`, () => {
      const expected = raw(v.raw);
      const decoded = decodeRaw(p, v.words);
      expect(decoded).toEqual(expected);
      // 64-bit values come back as numbers while they are safe integers, as bigints beyond.
      if (typeof expected === 'bigint') expect(typeof decoded).toBe('bigint');
      expect(encodeRaw(p, expected)).toEqual(v.words);
    });
  }

  it('covers every numeric type in all four orders', () => {
    const seen = new Set(vectors.values.map((v) => `${v.type}/${v.wordOrder}/${v.byteOrder}`));
    const numeric: PointType[] = ['u16', 's16', 'u32', 's32', 'u64', 'acc32', 'f32', 'f64', 'sunssf', 'enum16'];
    numeric.push('bitfield16', 'bitfield32', 'acc16', 'acc64', 's64');
    for (const type of numeric) {
      for (const order of ['big/big', 'little/big', 'big/little', 'little/little']) {
        expect(seen.has(`${type}/${order}`), `${type} ${order}`).toBe(true);
      }
    }
  });
});

describe('cross-checked with node:buffer', () => {
  for (const v of vectors.buffer.vectors) {
    it(`${v.type} ${v.wordOrder}/${v.byteOrder} wire ${v.wire} = Buffer.${v.read}`, () => {
      const bytes = Buffer.from(v.wire, 'hex');
      const words = Array.from({ length: bytes.length / 2 }, (_, i) => bytes.readUInt16BE(2 * i));
      const read = (bytes as unknown as Record<string, (offset: number) => number | bigint>)[v.read];
      expect(read).toBeTypeOf('function');
      const expected = read?.call(bytes, 0);
      const decoded = decodeRaw(point(v.type, { wordOrder: v.wordOrder, byteOrder: v.byteOrder }), words);
      // Safe 64-bit integers decode to numbers; Buffer's 64-bit readers always give bigints.
      expect(typeof expected === 'bigint' && typeof decoded === 'number' ? BigInt(decoded) : decoded).toBe(expected);
    });
  }
});

describe('not-implemented sentinels', () => {
  for (const v of vectors.sentinels.vectors) {
    const extra = v.size === undefined ? {} : { size: v.size };
    it(`${v.type} [${hex(v.words)}]: null in a SunSpec profile, ${JSON.stringify(v.absolute)} without sentinels`, () => {
      const sunspec = point(v.type, { ...extra, notImplemented: sunspecNotImplemented(v.type) });
      expect(decodeRaw(sunspec, v.words)).toBeNull();
      expect(decodePoint(sunspec, v.words)).toBeNull();
      expect(decodeRaw(point(v.type, extra), v.words)).toEqual(raw(v.absolute));
      // null encodes the sentinel, which is how the simulator serves a point it does not implement.
      expect(decodeRaw(sunspec, encodeRaw(sunspec, null))).toBeNull();
    });
  }

  it('accepts a bigint sentinel for 64-bit types and a signed value for signed types', () => {
    expect(sunspecNotImplemented('u64')).toEqual([0xffffffffffffffffn]);
    expect(sunspecNotImplemented('s16')).toEqual([-0x8000]);
    expect(encodeRaw(point('u64', { notImplemented: [0xffffffffffffffffn] }), null)).toEqual([
      0xffff, 0xffff, 0xffff, 0xffff,
    ]);
    expect(encodeRaw(point('s16', { notImplemented: sunspecNotImplemented('s16') }), null)).toEqual([0x8000]);
  });

  it('decodes device-specific sentinels listed in the profile', () => {
    const p = point('u16', { notImplemented: [0, 0xfffe] });
    expect(decodeRaw(p, [0])).toBeNull();
    expect(decodeRaw(p, [0xfffe])).toBeNull();
    expect(decodeRaw(p, [0xffff])).toBe(0xffff);
  });
});

describe('strings', () => {
  for (const v of vectors.strings.vectors) {
    it(`${v.byteOrder} [${hex(v.words)}] = ${JSON.stringify(v.raw)}${v.decodeOnly ? ` (${v.decodeOnly})` : ''}`, () => {
      const p = point('string', { size: v.size, byteOrder: v.byteOrder });
      expect(decodeRaw(p, v.words)).toBe(v.raw);
      expect(decodePoint(p, v.words)).toBe(v.raw);
      if (v.decodeOnly === undefined) expect(encodeRaw(p, v.raw)).toEqual(v.words);
    });
  }

  it('ignores wordOrder: text always runs from the first register on', () => {
    const p = point('string', { size: 2, wordOrder: 'little' });
    expect(decodeRaw(p, [0x4142, 0x4344])).toBe('ABCD');
    expect(encodeRaw(p, 'ABCD')).toEqual([0x4142, 0x4344]);
  });
});

describe('scaleValue', () => {
  for (const v of vectors.scaling.vectors) {
    const sfName = v.sf === undefined ? {} : { sf: 'X_SF' };
    const p = point(v.type, { scale: v.scale ?? 1, ...sfName });
    it(`${v.type} ${JSON.stringify(v.raw)} x ${v.scale ?? 1} x 10^${v.sf ?? 0} = ${v.value}`, () => {
      const value = scaleValue(p, raw(v.raw) as number | bigint, v.sf);
      expect(value).toBe(v.value);
      if (v.value !== null && v.type !== 'f32' && v.type !== 'f64' && typeof raw(v.raw) === 'number') {
        // The inverse gives back the raw value exactly.
        expect(decodeRaw(p, encodeValue(p, v.value, v.sf))).toBe(raw(v.raw));
      }
    });
  }

  it('never returns -0', () => {
    expect(Object.is(scaleValue(point('s16', { scale: -1 }), 0), 0)).toBe(true);
  });

  it('needs the scale factor of a scaled point and refuses implausible ones', () => {
    const p = point('u16', { sf: 'W_SF' });
    expect(() => scaleValue(p, 5)).toThrow(/W_SF; pass its value/);
    expect(() => scaleValue(p, 5, 11)).toThrow(/scale factor W_SF is 11, outside -10..10/);
    expect(() => scaleValue(p, 5, 0.5)).toThrow(CodecError);
  });

  it('ignores a scale factor for a point without sf', () => {
    expect(scaleValue(point('u16'), 5, 3)).toBe(5);
  });
});

describe('encodeValue', () => {
  for (const v of vectors.encodeValues.vectors) {
    const p = point(v.type, {
      scale: v.scale ?? 1,
      ...(v.sf === undefined ? {} : { sf: 'X_SF' }),
      wordOrder: v.wordOrder ?? 'big',
      byteOrder: v.byteOrder ?? 'big',
    });
    it(`${v.type} ${v.value} / ${v.scale ?? 1} / 10^${v.sf ?? 0} = [${hex(v.words)}]`, () => {
      expect(encodeValue(p, v.value, v.sf)).toEqual(v.words);
    });
  }

  for (const v of vectors.encodeValueErrors.vectors) {
    it(`refuses ${v.type} ${v.value}: ${v.error}`, () => {
      const p = point(v.type, {
        name: 'WMaxLimPct',
        scale: v.scale ?? 1,
        ...(v.sf === undefined ? {} : { sf: 'WMaxLimPct_SF' }),
        ...(v.unit === undefined ? {} : { unit: v.unit }),
      });
      const value = typeof v.value === 'string' ? Number(v.value) : v.value;
      expect(() => encodeValue(p, value, v.sf)).toThrow(CodecError);
      expect(() => encodeValue(p, value, v.sf)).toThrow(v.error);
    });
  }
});

describe('encodeRaw refuses what the type cannot hold', () => {
  for (const v of vectors.encodeErrors.vectors) {
    it(`${v.type} ${JSON.stringify(v.raw)}: ${v.error}`, () => {
      const p = point(v.type, v.size === undefined ? {} : { size: v.size });
      expect(() => encodeRaw(p, raw(v.raw))).toThrow(CodecError);
      expect(() => encodeRaw(p, raw(v.raw))).toThrow(v.error);
      expect(() => encodeRaw(p, raw(v.raw))).toThrow('point P');
    });
  }

  it('refuses words that are not 16-bit registers and too few registers', () => {
    expect(() => decodeRaw(point('u16'), [70000])).toThrow(/not a 16-bit value/);
    expect(() => decodeRaw(point('u32'), [1])).toThrow(/needs 2 registers, got 1/);
  });

  it('encodes a pad as zeros and decodes it as nothing', () => {
    const pad = point('pad', { size: 3 });
    expect(encodeRaw(pad, 0)).toEqual([0, 0, 0]);
    expect(decodeRaw(pad, [1, 2, 3])).toBeNull();
  });
});

describe('checkWritable', () => {
  const setpoint = point('u16', { name: 'WMaxLimPct', access: 'rw', range: { min: 0, max: 100 }, unit: '%' });

  it('accepts values inside the range, bounds included', () => {
    expect(() => checkWritable(setpoint, 0)).not.toThrow();
    expect(() => checkWritable(setpoint, 100)).not.toThrow();
    expect(() => checkWritable(setpoint, 55.5)).not.toThrow();
  });

  it('names the point, the value and the range', () => {
    expect(() => checkWritable(setpoint, 120)).toThrow('point WMaxLimPct (u16): 120 % is outside its range 0..100 %');
    expect(() => checkWritable(setpoint, Number.NaN)).toThrow(/not a finite number/);
  });

  it('refuses read-only points', () => {
    expect(() => checkWritable(point('u16', { name: 'W' }), 1)).toThrow('point W (u16) is read-only');
  });
});

describe('decodeBlock', () => {
  const sf = point('sunssf', { name: 'A_SF', notImplemented: sunspecNotImplemented('sunssf') });
  const current = (name: string): CodecPoint => point('u16', { name, sf: 'A_SF', unit: 'A', notImplemented: [0xffff] });
  const placed = (p: CodecPoint, address: number, sfAddress?: number): PlacedPoint => ({
    key: p.name,
    profileId: 'test',
    point: { ...p, function: 3, address: address - 100 },
    address,
    ...(sfAddress === undefined ? {} : { sfAddress, sfPoint: { ...sf, function: 3, address: sfAddress - 100 } }),
  });
  const block: ReadBlock = {
    function: 3,
    start: 100,
    count: 5,
    points: [placed(current('A'), 100, 104), placed(current('AphA'), 101, 104), placed(current('AphB'), 102, 104)],
  };

  it('scales every point with the scale factor read in the same block', () => {
    const values = decodeBlock(block, [1234, 0xffff, 5, 0, 0xfffe]);
    expect(Object.fromEntries(values)).toEqual({ A: 12.34, AphA: null, AphB: 0.05 });
  });

  it('gives null for every point when the scale factor is not implemented', () => {
    const values = decodeBlock(block, [1234, 1, 5, 0, 0x8000]);
    expect(Object.fromEntries(values)).toEqual({ A: null, AphA: null, AphB: null });
  });

  it('reads the scale factor as a plain SunSpec sunssf when the placed point does not carry it', () => {
    const bare = { ...block, points: block.points.map(({ sfPoint: _, ...rest }) => rest) };
    expect(decodeBlock(bare, [1234, 1, 5, 0, 0xffff]).get('A')).toBe(123.4);
  });

  it('says which read came back short and which scale factor lies outside the block', () => {
    expect(() => decodeBlock(block, [1, 2, 3])).toThrow('read of 5 registers from 100 (function 3) returned 3');
    const outside = { ...block, count: 3, points: block.points.slice(0, 1) };
    expect(() => decodeBlock(outside, [1, 2, 3])).toThrow(/scale factor of A at 104 lies outside the block 100..102/);
  });
});
