/**
 * RFC 9162 (Certificate Transparency 2.0) Merkle trees over SHA-256.
 *
 * Leaves are hashed as SHA-256(0x00 ‖ data) and interior nodes as SHA-256(0x01 ‖ left ‖ right). Without that domain
 * separation an interior node's 64-byte preimage (left ‖ right) would also be a valid leaf datum, so an attacker
 * could present a proof that "includes" a forged leaf which is really an interior node of the tree (a
 * second-preimage attack); the distinct prefixes make leaf and node hashes come from disjoint input sets.
 *
 * Sizes and indices are plain numbers: anything that is not a non-negative safe integer is rejected, and the
 * verifiers shift with division rather than `>>` so trees beyond 2^31 leaves stay correct.
 */

import { hash } from 'node:crypto';

const HASH_SIZE = 32;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

/** SHA-256(0x00 ‖ data). */
export function leafHash(data: Uint8Array): Uint8Array {
  const input = new Uint8Array(data.length + 1);
  input[0] = LEAF_PREFIX;
  input.set(data, 1);
  return sha256(input);
}

/** SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const input = new Uint8Array(1 + left.length + right.length);
  input[0] = NODE_PREFIX;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return sha256(input);
}

/** MTH({}) = SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/**
 * MTH(D[n]) of RFC 9162 §2.1.1 over already-computed leaf hashes. The input array and its hashes are not modified,
 * and the result never aliases an input hash.
 */
export function merkleRoot(leafHashes: readonly Uint8Array[]): Uint8Array {
  assertLeafHashes(leafHashes);
  if (leafHashes.length === 0) return emptyRoot();
  return rangeRoot(leafHashes, 0, leafHashes.length, newScratch());
}

/** PATH(index, D[n]) of RFC 9162 §2.1.3.1, ordered from the leaf's sibling up to the root's child. */
export function inclusionProof(leafHashes: readonly Uint8Array[], index: number): Uint8Array[] {
  assertLeafHashes(leafHashes);
  const n = leafHashes.length;
  if (n === 0) throw new RangeError(`inclusionProof: the tree is empty, so no leaf index (got ${index}) is valid`);
  if (!Number.isSafeInteger(index) || index < 0 || index >= n) {
    throw new RangeError(`inclusionProof: index must be an integer in [0, ${n - 1}] for a tree of ${n}, got ${index}`);
  }
  // The RFC recursion appends each sibling after recursing, so walking top-down and reversing gives the same order
  // without re-slicing the leaves at every level.
  const scratch = newScratch();
  const path: Uint8Array[] = [];
  let start = 0;
  let end = n;
  while (end - start > 1) {
    const mid = start + largestPowerOfTwoBelow(end - start);
    if (index < mid) {
      path.push(rangeRoot(leafHashes, mid, end, scratch));
      end = mid;
    } else {
      path.push(rangeRoot(leafHashes, start, mid, scratch));
      start = mid;
    }
  }
  return path.reverse();
}

/**
 * Checks an inclusion proof with the algorithm of RFC 9162 §2.1.3.2. Returns false, never throws, for any malformed
 * input: non-integer or out-of-range index/size, hashes that are not 32-byte Uint8Arrays, or a proof of the wrong
 * length (too long trips step 4a, too short leaves sn non-zero in step 5).
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isSize(index) || !isSize(treeSize) || !isHash(leafHash) || !isHash(root) || !Array.isArray(proof)) return false;
  if (index >= treeSize) return false;
  const scratch = newScratch();
  let fn = index;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0 || !isHash(p)) return false;
    if (isOdd(fn) || fn === sn) {
      r = hashPair(scratch, p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = hashPair(scratch, r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalHashes(r, root);
}

/**
 * PROOF(oldSize, D[n]) of RFC 9162 §2.1.4.1 where n = leafHashes.length. oldSize = n yields the empty proof, as
 * SUBPROOF(m, D[m], true) = {} defines; oldSize = 0 is refused because nothing can be proven about the empty tree.
 */
export function consistencyProof(leafHashes: readonly Uint8Array[], oldSize: number): Uint8Array[] {
  assertLeafHashes(leafHashes);
  const n = leafHashes.length;
  if (n === 0) throw new RangeError(`consistencyProof: the tree is empty, so no old size (got ${oldSize}) is valid`);
  if (!Number.isSafeInteger(oldSize) || oldSize < 1 || oldSize > n) {
    throw new RangeError(
      `consistencyProof: oldSize must be an integer in [1, ${n}] for a tree of ${n}, got ${oldSize}`,
    );
  }
  // Same top-down walk as inclusionProof; `complete` is SUBPROOF's b flag, true while the old tree is still the
  // whole left-most subtree, whose root the verifier already has.
  const scratch = newScratch();
  const path: Uint8Array[] = [];
  let start = 0;
  let end = n;
  let complete = true;
  while (oldSize !== end) {
    const mid = start + largestPowerOfTwoBelow(end - start);
    if (oldSize <= mid) {
      path.push(rangeRoot(leafHashes, mid, end, scratch));
      end = mid;
    } else {
      path.push(rangeRoot(leafHashes, start, mid, scratch));
      start = mid;
      complete = false;
    }
  }
  if (!complete) path.push(rangeRoot(leafHashes, start, end, scratch));
  return path.reverse();
}

/**
 * Checks a consistency proof with the algorithm of RFC 9162 §2.1.4.2, which covers 0 < oldSize < newSize. Outside
 * that range: equal sizes are consistent exactly when the proof is empty and the roots are equal, and oldSize = 0 or
 * oldSize > newSize is always false. Never throws; malformed input returns false.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isSize(oldSize) || !isSize(newSize) || !isHash(oldRoot) || !isHash(newRoot) || !Array.isArray(proof)) {
    return false;
  }
  if (oldSize === 0 || oldSize > newSize) return false;
  if (oldSize === newSize) return proof.length === 0 && equalHashes(oldRoot, newRoot);
  // Step 1.
  if (proof.length === 0) return false;
  // Step 2: a power-of-two old tree is a complete subtree of the new one, so its root is the proof's implicit head.
  // Indexed through an offset so a hostile oversized proof is never copied; step 6a rejects it early anyway.
  const head = isPowerOfTwo(oldSize) ? 1 : 0;
  const pathLength = proof.length + head;
  const pathAt = (i: number): unknown => (i < head ? oldRoot : proof[i - head]);
  // Steps 3 and 4.
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  const first = pathAt(0);
  if (!isHash(first)) return false;
  const scratch = newScratch();
  let fr = first;
  let sr = first;
  // Step 6.
  for (let i = 1; i < pathLength; i++) {
    const c = pathAt(i);
    if (sn === 0 || !isHash(c)) return false;
    if (isOdd(fn) || fn === sn) {
      fr = hashPair(scratch, c, fr);
      sr = hashPair(scratch, c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = hashPair(scratch, sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // Step 7.
  return sn === 0 && equalHashes(fr, oldRoot) && equalHashes(sr, newRoot);
}

/**
 * MTH of leafHashes[start, end), end > start. Pairing neighbours level by level and carrying an odd last node up
 * unchanged builds the same tree as RFC 9162's "split at the largest power of two below n" rule: the left-most
 * power-of-two blocks pair off completely, and the ragged right edge is only joined once its level is reached.
 */
function rangeRoot(leafHashes: readonly Uint8Array[], start: number, end: number, scratch: Uint8Array): Uint8Array {
  const width = end - start;
  // Copied because callers own what we return and must not alias the caller's leaf array.
  if (width === 1) return new Uint8Array(leafHashes[start] as Uint8Array);
  // Interior nodes live as 32-char 'binary' (latin1) strings: a 'buffer' digest costs an off-heap allocation per
  // node, measured at over half the time of a 1000-leaf root, while a short string is an ordinary heap object.
  const level: string[] = new Array(Math.ceil(width / 2));
  let count = 0;
  let i = start;
  for (; i + 1 < end; i += 2) {
    scratch.set(leafHashes[i] as Uint8Array, 1);
    scratch.set(leafHashes[i + 1] as Uint8Array, 1 + HASH_SIZE);
    level[count++] = hash('sha256', scratch, 'binary');
  }
  if (i < end) level[count++] = String.fromCharCode(...(leafHashes[i] as Uint8Array));
  while (count > 1) {
    let out = 0;
    let j = 0;
    for (; j + 1 < count; j += 2) {
      writeBinary(scratch, level[j] as string, 1);
      writeBinary(scratch, level[j + 1] as string, 1 + HASH_SIZE);
      level[out++] = hash('sha256', scratch, 'binary');
    }
    if (j < count) level[out++] = level[j] as string;
    count = out;
  }
  return readBinary(level[0] as string);
}

/**
 * A per-call 0x01 ‖ left ‖ right buffer. At 65 bytes it is just over V8's on-heap typed-array limit, so allocating
 * one per node would cost an off-heap backing store each time.
 */
function newScratch(): Uint8Array {
  const scratch = new Uint8Array(1 + 2 * HASH_SIZE);
  scratch[0] = NODE_PREFIX;
  return scratch;
}

/** nodeHash for two 32-byte hashes, through a reused scratch buffer. */
function hashPair(scratch: Uint8Array, left: Uint8Array, right: Uint8Array): Uint8Array {
  scratch.set(left, 1);
  scratch.set(right, 1 + HASH_SIZE);
  return sha256(scratch);
}

function sha256(input: Uint8Array): Uint8Array {
  return readBinary(hash('sha256', input, 'binary'));
}

/** 'binary' (latin1) maps bytes 0..255 one-to-one onto code units 0..255, so these two are exact inverses. */
function writeBinary(target: Uint8Array, digest: string, offset: number): void {
  for (let k = 0; k < HASH_SIZE; k++) target[offset + k] = digest.charCodeAt(k);
}

function readBinary(digest: string): Uint8Array {
  const out = new Uint8Array(HASH_SIZE);
  writeBinary(out, digest, 0);
  return out;
}

function assertLeafHashes(leafHashes: readonly Uint8Array[]): void {
  if (!Array.isArray(leafHashes)) throw new TypeError('leafHashes must be an array of 32-byte leaf hashes');
  for (let i = 0; i < leafHashes.length; i++) {
    const h: unknown = leafHashes[i];
    if (!(h instanceof Uint8Array)) throw new TypeError(`leafHashes[${i}] must be a Uint8Array`);
    if (h.length !== HASH_SIZE) {
      throw new RangeError(`leafHashes[${i}] must be a ${HASH_SIZE}-byte hash, got ${h.length} bytes`);
    }
  }
}

/** Largest power of two strictly below n, for n >= 2 (the RFC's k). */
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_SIZE;
}

function isOdd(n: number): boolean {
  return n % 2 === 1;
}

function half(n: number): number {
  return Math.floor(n / 2);
}

function equalHashes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
