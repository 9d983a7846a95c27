import { describe, expect, it } from 'vitest';
import { cobsEncode } from '../../../firmware-bridge/cobs.js';
import { crc16 } from '../../../firmware-bridge/crc16.js';
import {
  DEFAULT_MAX_BODY_BYTES,
  decodeFrame,
  encodeFrame,
  encodeFrameForWire,
  FrameDecoder,
  type FrameError,
} from '../../../firmware-bridge/frame.js';

const h = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

/** A frame assembled by hand from the spec: COBS(body ‖ crc16be(body)) ‖ 00. */
function handFrame(body: Uint8Array, crcXor = 0): Uint8Array {
  const crc = crc16(body) ^ crcXor;
  return cat(cobsEncode(cat(body, Uint8Array.of(crc >> 8, crc & 0xff))), Uint8Array.of(0));
}

function collect(options: ConstructorParameters<typeof FrameDecoder>[0] = {}) {
  const errors: FrameError[] = [];
  const decoder = new FrameDecoder({ ...options, onError: (e) => errors.push(e) });
  return { decoder, errors };
}

describe('encodeFrame / decodeFrame', () => {
  it('frames 01 02 03 as 06 01 02 03 AD AD 00', () => {
    expect(encodeFrame(h('010203'))).toEqual(h('06 01 02 03 AD AD 00'));
    expect(encodeFrameForWire(h('010203'))).toEqual(h('00 06 01 02 03 AD AD 00'));
    expect(decodeFrame(h('06 01 02 03 AD AD 00'))).toEqual(h('010203'));
    expect(decodeFrame(h('06 01 02 03 AD AD'))).toEqual(h('010203'));
  });

  it('stuffs zeros in the body and in the CRC', () => {
    const body = h('00 00 01 00');
    const frame = encodeFrame(body);
    expect(frame.indexOf(0)).toBe(frame.length - 1);
    expect(frame).toEqual(handFrame(body));
    expect(decodeFrame(frame)).toEqual(body);
  });

  it('refuses empty and oversized bodies and reports bad frames', () => {
    expect(() => encodeFrame(new Uint8Array(0))).toThrow(/must not be empty/);
    expect(() => encodeFrame(new Uint8Array(DEFAULT_MAX_BODY_BYTES + 1))).toThrow(/exceeds the limit of 1024/);
    expect(() => encodeFrame(new Uint8Array(10), 8)).toThrow(/10 bytes exceeds the limit of 8/);
    expect(() => decodeFrame(handFrame(h('0102'), 1))).toThrow(/CRC mismatch/);
    expect(() => decodeFrame(h('02 01'))).toThrow(/too short/);
  });
});

describe('FrameDecoder', () => {
  const bodies = [h('01'), h('00'), h('0102030405'), new Uint8Array(300).map((_, i) => i), new Uint8Array(1024)];
  const wire = cat(...bodies.map((b) => encodeFrameForWire(b)));

  it('decodes a stream of frames fed in one chunk, byte by byte and in uneven chunks', () => {
    for (const size of [wire.length, 1, 2, 3, 7, 64, 255]) {
      const { decoder, errors } = collect();
      const out: Uint8Array[] = [];
      for (let i = 0; i < wire.length; i += size) out.push(...decoder.push(wire.subarray(i, i + size)));
      expect(out).toEqual(bodies);
      expect(errors).toEqual([]);
      expect(decoder.stats.frames).toBe(bodies.length);
      expect(decoder.stats.bytes).toBe(wire.length);
    }
  });

  it('calls onFrame for each good frame', () => {
    const seen: Uint8Array[] = [];
    const decoder = new FrameDecoder({ onFrame: (b) => seen.push(b) });
    decoder.push(wire);
    expect(seen).toEqual(bodies);
  });

  it('counts a bad CRC and carries on with the next frame', () => {
    const { decoder, errors } = collect();
    const out = decoder.push(cat(Uint8Array.of(0), handFrame(h('0a0b'), 0x8000), encodeFrameForWire(h('0c'))));
    expect(out).toEqual([h('0c')]);
    expect(errors.map((e) => e.kind)).toEqual(['crc']);
    expect(errors[0]?.message).toMatch(/CRC mismatch/);
    expect(decoder.stats.crc).toBe(1);
  });

  it('resynchronises after garbage: garbage closed off by the leading delimiter costs only itself', () => {
    const { decoder, errors } = collect();
    const garbage = h('ff 13 37 42 99 01 02');
    const out = decoder.push(cat(garbage, encodeFrameForWire(h('aa')), garbage, encodeFrameForWire(h('bb'))));
    expect(out).toEqual([h('aa'), h('bb')]);
    expect(errors).toHaveLength(2);
    expect(decoder.stats.discardedBytes).toBe(2 * garbage.length);
  });

  it('counts a frame cut short (a reset mid-frame) as truncated and keeps the next frame', () => {
    const { decoder, errors } = collect();
    const frame = encodeFrameForWire(new Uint8Array(40).fill(7));
    const out = decoder.push(cat(frame.subarray(0, 20), encodeFrameForWire(h('cc'))));
    expect(out).toEqual([h('cc')]);
    expect(errors.map((e) => e.kind)).toEqual(['truncated']);
    expect(decoder.stats.truncated).toBe(1);
  });

  it('counts a runt frame (fewer than 3 decoded bytes) as truncated', () => {
    const { decoder, errors } = collect();
    expect(decoder.push(h('00 02 01 00 01 00'))).toEqual([]);
    expect(errors.map((e) => e.kind)).toEqual(['truncated', 'truncated']);
  });

  it('drops an oversized frame with bounded memory and reports it once at its delimiter', () => {
    const { decoder, errors } = collect({ maxBodyBytes: 16 });
    const long = new Uint8Array(5000).fill(0x41);
    for (let i = 0; i < long.length; i += 100) decoder.push(long.subarray(i, i + 100));
    expect(decoder.pending).toBe(0);
    expect(errors).toEqual([]);
    const out = decoder.push(cat(Uint8Array.of(0), encodeFrameForWire(h('dd'), 16)));
    expect(out).toEqual([h('dd')]);
    expect(errors.map((e) => e.kind)).toEqual(['oversized']);
    expect(errors[0]?.length).toBe(5000);
    expect(decoder.stats.oversized).toBe(1);
  });

  it('refuses a body above the limit even when its encoding fits the buffer bound', () => {
    const { decoder, errors } = collect({ maxBodyBytes: 16 });
    expect(decoder.push(encodeFrameForWire(new Uint8Array(17).fill(1), 17))).toEqual([]);
    expect(errors.map((e) => e.kind)).toEqual(['oversized']);
  });

  it('counts a partial frame at the end of the stream as truncated', () => {
    const { decoder, errors } = collect();
    decoder.push(h('00 05 01 02'));
    expect(decoder.pending).toBe(3);
    decoder.end();
    expect(errors.map((e) => e.kind)).toEqual(['truncated']);
    expect(decoder.pending).toBe(0);
  });

  it('ignores empty frames (runs of delimiters)', () => {
    const { decoder, errors } = collect();
    expect(decoder.push(new Uint8Array(50))).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('never throws on random input and still decodes a good frame afterwards', () => {
    const { decoder } = collect({ maxBodyBytes: 64 });
    let x = 99;
    for (let round = 0; round < 2000; round++) {
      const chunk = new Uint8Array((round % 37) + 1);
      for (let i = 0; i < chunk.length; i++) {
        x = (x * 1664525 + 1013904223) >>> 0;
        chunk[i] = x % 5 === 0 ? 0 : x >>> 24;
      }
      expect(() => decoder.push(chunk)).not.toThrow();
    }
    expect(decoder.push(encodeFrameForWire(h('ee'), 64))).toEqual([h('ee')]);
    const s = decoder.stats;
    expect(s.crc + s.truncated + s.oversized).toBeGreaterThan(0);
  });

  it('refuses a nonsensical limit', () => {
    expect(() => new FrameDecoder({ maxBodyBytes: 0 })).toThrow(/positive integer/);
  });
});
