import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { baseTable, buildPointTable, sumOfMultiples, verifyWithTable } from '../../../agent/identity/point-table.js';

const { Point } = secp256k1;
const N = Point.Fn.ORDER;
const G = Point.BASE;

/** Deterministic pseudo-random scalars below 2^256 (some above n, as digests can be), so failures reproduce. */
function scalar(label: string, i: number): bigint {
  const bytes = keccak_256(new TextEncoder().encode(`point table ${label} ${i}`));
  return BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

/** noble's a·A + b·B (0 <= a, b < n), affine, or undefined for infinity. */
function reference(A: typeof G, a: bigint, B: typeof G, b: bigint): { x: bigint; y: bigint } | undefined {
  const sum = A.multiplyUnsafe(a).add(B.multiplyUnsafe(b));
  return sum.is0() ? undefined : sum.toAffine();
}

const key = Point.fromBytes(secp256k1.getPublicKey(keccak_256(new TextEncoder().encode('point table key'))));

describe('sumOfMultiples', () => {
  for (const window of [2, 5, 6, 8]) {
    it(`matches noble for random scalars (key window ${window})`, () => {
      const table = buildPointTable(key, window);
      for (let i = 0; i < 40; i++) {
        const a = scalar(`a${window}`, i) % N;
        const b = scalar(`b${window}`, i) % N;
        expect(sumOfMultiples(baseTable(), a, table, b)).toEqual(reference(G, a, key, b));
      }
    });
  }

  it('handles boundary scalars: 0, 1, 2, n − 1, n − 2, powers of two and all-ones windows', () => {
    const table = buildPointTable(key, 6);
    const specials = [0n, 1n, 2n, 3n, N - 1n, N - 2n, (1n << 255n) - 1n, 1n << 200n, (1n << 128n) - 1n, 0x80n, 0x7fn];
    for (const a of specials) {
      for (const b of specials) {
        expect(sumOfMultiples(baseTable(), a, table, b), `a=${a} b=${b}`).toEqual(reference(G, a, key, b));
      }
    }
  });

  it('takes the exceptional additions: the running sum meets a table entry (doubling) or its negation (infinity)', () => {
    // With both tables over G the two walks add the same entries: a = b doubles at every window, a + b = n
    // cancels to infinity, and small differences hit both cases midway.
    const g6 = buildPointTable(G, 6);
    const g10 = baseTable();
    const cases: [bigint, bigint][] = [
      [5n, 5n],
      [1n, N - 1n],
      [12345n, N - 12345n],
      [scalar('x', 1) % N, scalar('x', 1) % N],
      [scalar('x', 2) % N, N - (scalar('x', 2) % N)],
      [1n << 64n, 1n << 64n],
      [(1n << 64n) + 3n, N - (1n << 64n)],
    ];
    for (const [a, b] of cases) {
      expect(sumOfMultiples(g10, a, g6, b), `a=${a} b=${b}`).toEqual(reference(G, a, G, b));
      expect(sumOfMultiples(g6, a, g6, b), `same table, a=${a} b=${b}`).toEqual(reference(G, a, G, b));
    }
    expect(sumOfMultiples(g6, 7n, g6, N - 7n)).toBeUndefined();
  });

  it('refuses bad windows and the point at infinity', () => {
    expect(() => buildPointTable(key, 1)).toThrow(/window/);
    expect(() => buildPointTable(key, 13)).toThrow(/window/);
    expect(() => buildPointTable(Point.ZERO, 6)).toThrow();
  });
});

describe('verifyWithTable', () => {
  const secret = keccak_256(new TextEncoder().encode('verify with table'));
  const publicKey = secp256k1.getPublicKey(secret, false);
  const table = buildPointTable(Point.fromBytes(publicKey), 6);
  const other = buildPointTable(key, 6);

  it('agrees with noble verification and recovery on valid, altered and foreign signatures', () => {
    for (let i = 0; i < 60; i++) {
      const digest = keccak_256(new TextEncoder().encode(`digest ${i}`));
      const h = BigInt(`0x${Buffer.from(digest).toString('hex')}`);
      const rec = secp256k1.sign(digest, secret, { prehash: false, format: 'recovered', lowS: true });
      const recovery = rec[0] as number;
      const r = BigInt(`0x${Buffer.from(rec.subarray(1, 33)).toString('hex')}`);
      const s = BigInt(`0x${Buffer.from(rec.subarray(33, 65)).toString('hex')}`);
      expect(verifyWithTable(table, h, r, s, recovery)).toBe(true);
      // The other recovery id names another key: ecrecover would not return this signer.
      expect(verifyWithTable(table, h, r, s, recovery ^ 1)).toBe(false);
      expect(verifyWithTable(table, h ^ 1n, r, s, recovery)).toBe(false);
      expect(verifyWithTable(table, h, r, s === 1n ? 2n : s - 1n, recovery)).toBe(false);
      expect(verifyWithTable(other, h, r, s, recovery)).toBe(false);
    }
  });

  it('reduces a digest at or above n the way ECDSA does', () => {
    // h and h + n are the same scalar: a signature over one verifies over the other (as in noble and ecrecover).
    for (let i = 0; i < 5; i++) {
      const h = scalar('small digest', i) % (2n ** 256n - N);
      const digest = Buffer.from(h.toString(16).padStart(64, '0'), 'hex');
      const rec = secp256k1.sign(digest, secret, { prehash: false, format: 'recovered', lowS: true });
      const r = BigInt(`0x${Buffer.from(rec.subarray(1, 33)).toString('hex')}`);
      const s = BigInt(`0x${Buffer.from(rec.subarray(33, 65)).toString('hex')}`);
      expect(verifyWithTable(table, h, r, s, rec[0] as number)).toBe(true);
      expect(verifyWithTable(table, h + N, r, s, rec[0] as number)).toBe(true);
    }
  });
});
