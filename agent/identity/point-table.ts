/**
 * Fast secp256k1 ECDSA verification for keys that sign many messages (a producer's blocks, a meter's batches).
 *
 * Why not noble's own verify: with a public key it runs ~700 verifications/s on one core, and ~1,900/s with
 * `point.precompute()` (its table walk is the constant-time kernel with complete projective additions). node:crypto
 * cannot help: it verifies only over a digest it computes itself (SHA-2, SHA-3), never keccak-256 or a given digest.
 *
 * What this does instead (all on public data, so variable time is fine): for a key Q it keeps the signed fixed-window
 * table of noble's `precompute` — for every window w the multiples j·2^(w·W)·Q, j = 1..2^(W−1) — but normalized to
 * affine coordinates, and sums u1·G + u2·Q as one run of mixed Jacobian + affine additions (7M + 4S each, no
 * doublings: they are baked into the tables). About 70 additions and two inversions per signature, roughly 4x
 * noble's plain verify and on par with node:crypto's native secp256k1 verify (bench/verify-blocks.ts measures it).
 *
 * Correctness is pinned by test/unit/identity/point-table.test.ts against noble (random scalars, the exceptional
 * additions P + P and P + (−P), boundary scalars) and by SignatureVerifier's tests against recovery.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';

const { Point } = secp256k1;
const Fp = Point.Fp;
const Fn = Point.Fn;
const P = Fp.ORDER;
const SCALAR_BITS = 256;

type CurvePoint = InstanceType<typeof Point>;

/** Multiples of one point for windowed multiplication, affine, flattened as [x0, y0, x1, y1, …]. */
export interface PointTable {
  readonly window: number;
  readonly windows: number;
  /** Entries per window: 2^(window − 1). */
  readonly half: number;
  readonly coords: readonly bigint[];
}

/** Window sizes: below 2 the table degenerates, above 12 a table costs tens of MB. */
const MIN_WINDOW = 2;
const MAX_WINDOW = 12;

/**
 * Builds the table of `point` for window `window`: (⌈256/W⌉ + 1) · 2^(W−1) points (W = 6: 1,408 points, about
 * 150 KB and 10-15 ms; W = 8: 4,224 points, about 470 KB and 35 ms). The extra window absorbs the carry of signed
 * digit recoding. No entry is the point at infinity: each is j·2^k·Q with 0 < j < n and n prime.
 */
export function buildPointTable(point: CurvePoint, window: number): PointTable {
  if (!Number.isInteger(window) || window < MIN_WINDOW || window > MAX_WINDOW) {
    throw new RangeError(`table window must be an integer ${MIN_WINDOW}..${MAX_WINDOW}, got ${window}`);
  }
  point.assertValidity();
  if (point.is0()) throw new RangeError('cannot build a table for the point at infinity');
  const windows = Math.ceil(SCALAR_BITS / window) + 1;
  const half = 2 ** (window - 1);
  const points: CurvePoint[] = [];
  let base = point;
  for (let w = 0; w < windows; w++) {
    let acc = base;
    for (let i = 0; i < half; i++) {
      points.push(acc);
      acc = acc.add(base);
    }
    base = (points[points.length - 1] as CurvePoint).double();
  }
  // One inversion for the whole table (Montgomery's trick) instead of one per point.
  const inverses = Fp.invertBatch(points.map((p) => p.Z));
  const coords = new Array<bigint>(2 * points.length);
  for (let i = 0; i < points.length; i++) {
    const p = points[i] as CurvePoint;
    const iz = inverses[i] as bigint;
    coords[2 * i] = (p.X * iz) % P;
    coords[2 * i + 1] = (p.Y * iz) % P;
  }
  return { window, windows, half, coords };
}

/** Jacobian accumulator (x = X/Z², y = Y/Z³); Z = 0 is the point at infinity. */
interface Jacobian {
  X: bigint;
  Y: bigint;
  Z: bigint;
}

const mod = (a: bigint): bigint => {
  const r = a % P;
  return r < 0n ? r + P : r;
};

/**
 * Adds k·Q to `acc`, where `table` is Q's table and 0 <= k < 2^256. Signed digits in [−2^(W−1), 2^(W−1)]: a digit
 * above half borrows from the next window, so every window needs one table entry (or none for 0) and its negation
 * is a free y → −y.
 */
function addMultiple(acc: Jacobian, table: PointTable, k: bigint): void {
  const { window, windows, half, coords } = table;
  const full = 2 * half;
  const mask = BigInt(full - 1);
  const shift = BigInt(window);
  let { X, Y, Z } = acc;
  let rest = k;
  let carry = 0;
  for (let w = 0; w < windows; w++) {
    let digit = Number(rest & mask) + carry;
    rest >>= shift;
    carry = 0;
    if (digit > half) {
      digit -= full;
      carry = 1;
    }
    if (digit === 0) continue;
    const at = 2 * (w * half + (digit < 0 ? -digit : digit) - 1);
    const x2 = coords[at] as bigint;
    const y2 = digit < 0 ? P - (coords[at + 1] as bigint) : (coords[at + 1] as bigint);
    if (Z === 0n) {
      X = x2;
      Y = y2;
      Z = 1n;
      continue;
    }
    // madd-2007-bl (hyperelliptic.org EFD, Jacobian, a = 0, Z2 = 1).
    const Z1Z1 = (Z * Z) % P;
    const U2 = (x2 * Z1Z1) % P;
    const S2 = (((y2 * Z) % P) * Z1Z1) % P;
    let H = U2 - X;
    if (H < 0n) H += P;
    let R = S2 - Y;
    if (R < 0n) R += P;
    if (H === 0n) {
      // Same x: the entry is the accumulator itself (double it) or its negation (the sum is infinity).
      if (R === 0n) ({ X, Y, Z } = double(X, Y, Z));
      else {
        X = 0n;
        Y = 1n;
        Z = 0n;
      }
      continue;
    }
    R += R;
    if (R >= P) R -= P;
    const HH = (H * H) % P;
    const I = (4n * HH) % P;
    const J = (H * I) % P;
    const V = (X * I) % P;
    const X3 = mod(R * R - J - V - V);
    const Y3 = mod(R * (V - X3) - 2n * Y * J);
    const ZH = Z + H;
    Z = mod(ZH * ZH - Z1Z1 - HH);
    X = X3;
    Y = Y3;
  }
  if (rest !== 0n || carry !== 0) throw new RangeError('scalar does not fit the table');
  acc.X = X;
  acc.Y = Y;
  acc.Z = Z;
}

/** dbl-2009-l (EFD, Jacobian, a = 0). secp256k1 has no point of order 2, so Y is never 0 here. */
function double(X: bigint, Y: bigint, Z: bigint): Jacobian {
  const A = (X * X) % P;
  const B = (Y * Y) % P;
  const C = (B * B) % P;
  const XB = X + B;
  const D = mod(2n * (XB * XB - A - C));
  const E = (3n * A) % P;
  const F = (E * E) % P;
  const X3 = mod(F - 2n * D);
  return { X: X3, Y: mod(E * (D - X3) - 8n * C), Z: (2n * Y * Z) % P };
}

/** a·A + b·B for the tables of A and B (0 <= a, b < 2^256), affine, or undefined for the point at infinity. */
export function sumOfMultiples(
  tableA: PointTable,
  a: bigint,
  tableB: PointTable,
  b: bigint,
): { x: bigint; y: bigint } | undefined {
  const acc: Jacobian = { X: 0n, Y: 1n, Z: 0n };
  addMultiple(acc, tableA, a);
  addMultiple(acc, tableB, b);
  if (acc.Z === 0n) return undefined;
  const iz = Fp.inv(acc.Z);
  const iz2 = (iz * iz) % P;
  return { x: (acc.X * iz2) % P, y: (((acc.Y * iz2) % P) * iz) % P };
}

/**
 * The generator's table, built on first use: window 10, 13,824 points, ~1.5 MB and ~100 ms here, once per process
 * (window 8 builds in a third of the time but verifies ~10 % slower; 12 is no faster). A derived constant of the
 * curve, like noble's own precomputed base point, so it is shared rather than built per verifier.
 */
let generatorTable: PointTable | undefined;
const GENERATOR_WINDOW = 10;

export function baseTable(): PointTable {
  generatorTable ??= buildPointTable(Point.BASE, GENERATOR_WINDOW);
  return generatorTable;
}

/**
 * ECDSA verification of (r, s) over the 32-byte digest whose big-endian value is `digest`, with the key whose table
 * is `key`, and the recovery id: true when R = (h/s)·G + (r/s)·Q has x = r and y of parity `recovery`, exactly what
 * public-key recovery with that id would confirm. The caller has checked 0 < r < n and 0 < s <= n/2.
 * Accepts only x = r (recovery ids 0 and 1), never x = r + n.
 */
export function verifyWithTable(key: PointTable, digest: bigint, r: bigint, s: bigint, recovery: number): boolean {
  const h = Fn.create(digest);
  const sInv = Fn.inv(s);
  const acc: Jacobian = { X: 0n, Y: 1n, Z: 0n };
  addMultiple(acc, baseTable(), Fn.mul(h, sInv));
  addMultiple(acc, key, Fn.mul(r, sInv));
  const { X, Y, Z } = acc;
  if (Z === 0n) return false;
  const ZZ = (Z * Z) % P;
  // x = X/Z² = r, checked without an inversion; only a match pays for the one that the parity of y needs.
  if (X !== (r * ZZ) % P) return false;
  const iz = Fp.inv(Z);
  const y = (((Y * iz) % P) * ((iz * iz) % P)) % P;
  return Number(y & 1n) === recovery;
}
