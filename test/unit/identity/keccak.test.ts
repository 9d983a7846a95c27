import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../../agent/identity/bytes.js';
import { keccak256 } from '../../../agent/identity/keccak.js';
import { seededRandom } from '../../../agent/ledger/synthetic.js';

/** Deterministic pseudo-random bytes, so a failure names a length that reproduces. */
function randomBytes(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** Our digest and @noble/hashes' (the reference), as hex. */
function both(data: Uint8Array): [string, string] {
  return [toHex(keccak256(data)), toHex(keccak_256(data))];
}

describe('keccak256', () => {
  it('gives the published digests of "" and "abc"', () => {
    expect(toHex(keccak256(new Uint8Array(0)))).toBe(
      '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
    );
    expect(toHex(keccak256(utf8('abc')))).toBe('0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45');
  });

  it('is keccak (0x01 padding), not NIST SHA3-256 (0x06 padding)', () => {
    // SHA3-256("") = a7ffc6f8…; Ethereum addresses and our signatures depend on the original Keccak padding.
    expect(toHex(keccak256(new Uint8Array(0)))).not.toMatch(/^0xa7ffc6f8/);
  });

  it('matches @noble/hashes for every length 0..1000', () => {
    const data = randomBytes(1000, 7);
    const mismatches: number[] = [];
    for (let length = 0; length <= 1000; length++) {
      const [ours, reference] = both(data.subarray(0, length));
      if (ours !== reference) mismatches.push(length);
    }
    expect(mismatches).toEqual([]);
  });

  it.each([135, 136, 137, 271, 272, 273])('matches @noble/hashes at the rate boundary, %i bytes', (length) => {
    const [ours, reference] = both(randomBytes(length, length));
    expect(ours).toBe(reference);
  });

  it.each([64 * 1024, 1024 * 1024])('matches @noble/hashes for %i bytes', (length) => {
    const [ours, reference] = both(randomBytes(length, 3));
    expect(ours).toBe(reference);
  });

  it('pads with 0x81 when the message leaves exactly one byte of the last block', () => {
    // 135 bytes of 0x80 put the padding bits 0x01 and 0x80 in the same byte.
    const [ours, reference] = both(new Uint8Array(135).fill(0x80));
    expect(ours).toBe(reference);
  });

  it('hashes exactly the bytes of a subarray view at any byte offset', () => {
    const backing = randomBytes(4096, 11);
    for (const offset of [1, 2, 3, 5, 7, 136, 1001]) {
      for (const length of [0, 1, 31, 135, 136, 137, 272, 1000]) {
        const view = backing.subarray(offset, offset + length);
        expect(view.byteOffset).toBe(offset);
        // The reference hashes a copy, so bytes around the view cannot leak into its digest.
        expect(toHex(keccak256(view)), `offset ${offset}, length ${length}`).toBe(toHex(keccak_256(view.slice())));
      }
    }
  });

  it('accepts a Node Buffer (a Uint8Array, often a view into a shared pool)', () => {
    const buffer = Buffer.from('the quick brown fox jumps over the lazy dog');
    expect(toHex(keccak256(buffer))).toBe(toHex(keccak_256(new Uint8Array(buffer))));
  });

  it('leaves its input unchanged and returns a fresh 32-byte array', () => {
    const data = randomBytes(300, 5);
    const copy = data.slice();
    const first = keccak256(data);
    const second = keccak256(data);
    expect(data).toEqual(copy);
    expect(first).toHaveLength(32);
    expect(first).not.toBe(second);
    expect(first).toEqual(second);
  });

  it('refuses a value that is not a Uint8Array with a TypeError naming what it got', () => {
    expect(() => keccak256('abc' as unknown as Uint8Array)).toThrow(/keccak256 takes a Uint8Array, got string/);
    expect(() => keccak256(null as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('is the file tools/gen-keccak.mjs generates (edit the generator, not the output)', () => {
    // Throws, failing the test, when the committed agent/identity/keccak.ts is stale or was edited by hand.
    const generator = fileURLToPath(new URL('../../../tools/gen-keccak.mjs', import.meta.url));
    execFileSync(process.execPath, [generator, '--check'], { stdio: 'pipe' });
  });
});
