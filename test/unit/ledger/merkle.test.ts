import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  consistencyProof,
  emptyRoot,
  inclusionProof,
  leafHash,
  merkleRoot,
  nodeHash,
  verifyConsistency,
  verifyInclusion,
} from '../../../agent/ledger/merkle.js';

interface InclusionProbe {
  file: string;
  desc: string;
  wantErr: boolean;
  leafIndex: number;
  treeSize: number;
  leafHash: string;
  root: string;
  proof: string[];
}

interface ConsistencyProbe {
  file: string;
  desc: string;
  wantErr: boolean;
  oldSize: number;
  newSize: number;
  oldRoot: string;
  newRoot: string;
  proof: string[];
}

interface Vectors {
  source: { repository: string; commit: string };
  leafInputs: string[];
  subtreeHashes: string[][];
  roots: { treeSize: number; root: string }[];
  inclusionProofs: { leafIndex: number; treeSize: number; proof: string[] }[];
  consistencyProofs: { oldSize: number; newSize: number; proof: string[] }[];
  probes: { inclusion: InclusionProbe[]; consistency: ConsistencyProbe[] };
}

const vectors = JSON.parse(
  readFileSync(new URL('../../vectors/merkle-rfc9162.json', import.meta.url), 'utf8'),
) as Vectors;

const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const hexes = (list: readonly Uint8Array[]): string[] => list.map(toHex);

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7));
  return copy;
}

function withFlippedElement(proof: readonly Uint8Array[], at: number, bit: number): Uint8Array[] {
  return proof.map((p, i) => (i === at ? flipBit(p, bit) : p));
}

// Straight transcriptions of RFC 9162 §2.1, sharing nothing with the module under test (not even its hashing).
function refSha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}
const refLeaf = (data: Uint8Array): Uint8Array => refSha256(Uint8Array.of(0), data);
const refNode = (left: Uint8Array, right: Uint8Array): Uint8Array => refSha256(Uint8Array.of(1), left, right);

function refSplit(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function refMth(d: readonly Uint8Array[]): Uint8Array {
  if (d.length === 0) return refSha256();
  if (d.length === 1) return d[0] as Uint8Array;
  const k = refSplit(d.length);
  return refNode(refMth(d.slice(0, k)), refMth(d.slice(k)));
}

function refPath(m: number, d: readonly Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return [];
  const k = refSplit(d.length);
  if (m < k) return [...refPath(m, d.slice(0, k)), refMth(d.slice(k))];
  return [...refPath(m - k, d.slice(k)), refMth(d.slice(0, k))];
}

function refSubproof(m: number, d: readonly Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [refMth(d)];
  const k = refSplit(d.length);
  if (m <= k) return [...refSubproof(m, d.slice(0, k), b), refMth(d.slice(k))];
  return [...refSubproof(m - k, d.slice(k), false), refMth(d.slice(0, k))];
}

/**
 * The left/right descent PATH(index, D[size]) takes from the root. A verifier's hash computation is a function of
 * this alone, so a proof checked under another (index, size) with the same descent recomputes the same root and is
 * rightly accepted: RFC 9162 proofs do not commit to the size, the signed tree head does. Any other pair must fail.
 */
function inclusionShape(index: number, size: number): string | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  let shape = '';
  let m = index;
  let n = size;
  while (n > 1) {
    const k = refSplit(n);
    if (m < k) {
      shape += 'L';
      n = k;
    } else {
      shape += 'R';
      m -= k;
      n -= k;
    }
  }
  return shape;
}

/** Same idea for SUBPROOF(m, D[n], true), plus whether the proof's seed is the old root itself or a proof node. */
function consistencyShape(oldSize: number, newSize: number): string | null {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 1 || oldSize > newSize) {
    return null;
  }
  let shape = '';
  let m = oldSize;
  let n = newSize;
  let complete = true;
  while (m !== n) {
    const k = refSplit(n);
    if (m <= k) {
      shape += 'L';
      n = k;
    } else {
      shape += 'R';
      m -= k;
      n -= k;
      complete = false;
    }
  }
  return shape + (complete ? '=old' : '=node');
}

/**
 * Wrong values to try in place of `value` (out of `limit`): its neighbours, the range ends, bit-flipped and
 * doubled/halved variants. Trying every integer instead makes these loops hash-bound for seconds.
 */
function wrongValues(value: number, limit: number): number[] {
  const candidates = [-1, 0, 1, 2, value - 2, value - 1, value + 1, value + 2, value ^ 1, value ^ 2, value * 2];
  candidates.push(value >> 1, limit - 2, limit - 1, limit, limit + 1, limit + 2, limit * 2, limit >> 1);
  return [...new Set(candidates)].filter((v) => v !== value).sort((a, b) => a - b);
}

function makeLeaves(count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => leafHash(new TextEncoder().encode(`ledger record ${i}`)));
}

const isWellFormedHash = (text: string): boolean => text.length === 64;

describe('published vectors (transparency-dev/merkle)', () => {
  const leafHashes = vectors.leafInputs.map((input) => leafHash(fromHex(input)));
  const rootOf = (size: number): Uint8Array => fromHex(vectors.roots[size]?.root ?? '');

  it('names its source', () => {
    expect(vectors.source.repository).toBe('https://github.com/transparency-dev/merkle');
    expect(vectors.source.commit).toMatch(/^[0-9a-f]{40}$/);
  });

  it('hashes every leaf input to the published leaf hash', () => {
    expect(vectors.leafInputs).toHaveLength(8);
    expect(hexes(leafHashes)).toEqual(vectors.subtreeHashes[0]);
    expect(hexes(vectors.leafInputs.map((input) => refLeaf(fromHex(input))))).toEqual(vectors.subtreeHashes[0]);
  });

  it('reproduces every published complete-subtree hash', () => {
    for (const [level, hashes] of vectors.subtreeHashes.entries()) {
      const width = 2 ** level;
      for (const [i, expected] of hashes.entries()) {
        expect(toHex(merkleRoot(leafHashes.slice(i * width, (i + 1) * width)))).toBe(expected);
      }
    }
    const level1 = vectors.subtreeHashes[1] ?? [];
    expect(toHex(nodeHash(leafHashes[0] as Uint8Array, leafHashes[1] as Uint8Array))).toBe(level1[0]);
  });

  it('reproduces the published root of every size 0..8', () => {
    expect(vectors.roots.map((r) => r.treeSize)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(toHex(emptyRoot())).toBe(vectors.roots[0]?.root);
    for (const { treeSize, root } of vectors.roots) {
      expect(toHex(merkleRoot(leafHashes.slice(0, treeSize)))).toBe(root);
    }
    expect(toHex(merkleRoot(leafHashes))).toBe('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328');
  });

  it('builds and verifies every published inclusion proof', () => {
    expect(vectors.inclusionProofs).toHaveLength(5);
    for (const { leafIndex, treeSize, proof } of vectors.inclusionProofs) {
      const tree = leafHashes.slice(0, treeSize);
      expect(hexes(inclusionProof(tree, leafIndex))).toEqual(proof);
      const leaf = leafHashes[leafIndex] as Uint8Array;
      expect(verifyInclusion(leaf, leafIndex, treeSize, proof.map(fromHex), rootOf(treeSize))).toBe(true);
    }
  });

  it('builds and verifies every published consistency proof', () => {
    expect(vectors.consistencyProofs).toHaveLength(5);
    for (const { oldSize, newSize, proof } of vectors.consistencyProofs) {
      expect(hexes(consistencyProof(leafHashes.slice(0, newSize), oldSize))).toEqual(proof);
      expect(verifyConsistency(oldSize, newSize, rootOf(oldSize), rootOf(newSize), proof.map(fromHex))).toBe(true);
    }
  });

  // Upstream accepts any byte string as a root when the sizes are equal; we also demand 32-byte hashes, which flips
  // exactly one published "happy" probe (12-byte placeholder roots) to a rejection.
  const stricterThanUpstream = ['testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json'];

  it('agrees with every published inclusion probe, happy path and corrupted', () => {
    expect(vectors.probes.inclusion.length).toBeGreaterThan(90);
    for (const p of vectors.probes.inclusion) {
      const wellFormed = [p.leafHash, p.root, ...p.proof].every(isWellFormedHash);
      const got = verifyInclusion(fromHex(p.leafHash), p.leafIndex, p.treeSize, p.proof.map(fromHex), fromHex(p.root));
      expect(got, `${p.file}: ${p.desc}`).toBe(!p.wantErr && wellFormed);
    }
  });

  it('agrees with every published consistency probe, happy path and corrupted', () => {
    expect(vectors.probes.consistency.length).toBeGreaterThan(90);
    const downgraded: string[] = [];
    for (const p of vectors.probes.consistency) {
      const wellFormed = [p.oldRoot, p.newRoot, ...p.proof].every(isWellFormedHash);
      if (!p.wantErr && !wellFormed) downgraded.push(p.file);
      const proof = p.proof.map(fromHex);
      const got = verifyConsistency(p.oldSize, p.newSize, fromHex(p.oldRoot), fromHex(p.newRoot), proof);
      expect(got, `${p.file}: ${p.desc}`).toBe(!p.wantErr && wellFormed);
    }
    expect(downgraded).toEqual(stricterThanUpstream);
  });
});

describe('merkleRoot', () => {
  it('matches the recursive RFC 9162 definition for every size 0..300', () => {
    const leaves = makeLeaves(300);
    for (let n = 0; n <= 300; n++) {
      const subset = leaves.slice(0, n);
      expect(toHex(merkleRoot(subset)), `size ${n}`).toBe(toHex(refMth(subset)));
    }
  });

  it('neither mutates nor aliases its input', () => {
    const leaves = makeLeaves(5);
    const before = hexes(leaves);
    const single = merkleRoot(leaves.slice(0, 1));
    expect(single).not.toBe(leaves[0]);
    single.fill(0);
    merkleRoot(leaves);
    for (const proof of [inclusionProof(leaves, 3), consistencyProof(leaves, 3)]) {
      for (const p of proof) p.fill(0);
    }
    expect(hexes(leaves)).toEqual(before);
  });

  it('returns plain Uint8Arrays', () => {
    const leaves = makeLeaves(3);
    for (const h of [merkleRoot(leaves), emptyRoot(), leafHash(new Uint8Array(1)), ...inclusionProof(leaves, 0)]) {
      expect(Object.getPrototypeOf(h)).toBe(Uint8Array.prototype);
      expect(h).toHaveLength(32);
    }
  });

  it('rejects leaf hashes that are not 32-byte Uint8Arrays', () => {
    expect(() => merkleRoot([new Uint8Array(31)])).toThrow(RangeError);
    expect(() => merkleRoot([new Uint8Array(32), new Uint8Array(33)])).toThrow(/leafHashes\[1\] must be a 32-byte/);
    expect(() => merkleRoot(['x' as never])).toThrow(TypeError);
  });
});

describe('inclusion proofs, sizes 1..70', () => {
  const leaves = makeLeaves(70);

  it('builds the RFC PATH for every index and verifies it', () => {
    for (let n = 1; n <= 70; n++) {
      const tree = leaves.slice(0, n);
      const root = merkleRoot(tree);
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(tree, i);
        expect(hexes(proof), `PATH(${i}, D[${n}])`).toEqual(hexes(refPath(i, tree)));
        expect(verifyInclusion(tree[i] as Uint8Array, i, n, proof, root), `verify ${i} in ${n}`).toBe(true);
      }
    }
  });

  it('fails after flipping any proof element, the leaf or the root, and for the wrong index or size', () => {
    const wrong: string[] = [];
    const expectVerify = (label: string, got: boolean, want = false): void => {
      if (got !== want) wrong.push(`${label}: got ${got}`);
    };
    for (let n = 1; n <= 70; n++) {
      const tree = leaves.slice(0, n);
      const root = merkleRoot(tree);
      for (let i = 0; i < n; i++) {
        const at = `${i} in ${n}`;
        const leaf = tree[i] as Uint8Array;
        const proof = inclusionProof(tree, i);
        const bit = (i * 37 + n) % 256;
        for (let k = 0; k < proof.length; k++) {
          expectVerify(
            `${at}, proof[${k}] flipped`,
            verifyInclusion(leaf, i, n, withFlippedElement(proof, k, bit), root),
          );
        }
        expectVerify(`${at}, leaf flipped`, verifyInclusion(flipBit(leaf, bit), i, n, proof, root));
        expectVerify(`${at}, root flipped`, verifyInclusion(leaf, i, n, proof, flipBit(root, bit)));
        expectVerify(`${at}, extra element`, verifyInclusion(leaf, i, n, [...proof, root], root));
        if (proof.length > 0) expectVerify(`${at}, missing element`, verifyInclusion(leaf, i, n, proof.slice(1), root));

        const shape = inclusionShape(i, n);
        for (const j of wrongValues(i, n)) {
          expectVerify(`${at}, index ${j}`, verifyInclusion(leaf, j, n, proof, root));
        }
        for (const size of wrongValues(n, n)) {
          const want = inclusionShape(i, size) === shape;
          expectVerify(`${at}, size ${size}`, verifyInclusion(leaf, i, size, proof, root), want);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('throws RangeError for an index outside the tree', () => {
    const tree = leaves.slice(0, 5);
    expect(() => inclusionProof(tree, 5)).toThrow(RangeError);
    expect(() => inclusionProof(tree, 5)).toThrow(/\[0, 4\].*got 5/);
    expect(() => inclusionProof(tree, -1)).toThrow(RangeError);
    expect(() => inclusionProof(tree, 1.5)).toThrow(RangeError);
    expect(() => inclusionProof(tree, Number.NaN)).toThrow(RangeError);
    expect(() => inclusionProof([], 0)).toThrow(/tree is empty/);
  });
});

describe('consistency proofs, sizes 1..70', () => {
  const leaves = makeLeaves(70);
  const roots = Array.from({ length: 73 }, (_, n) => merkleRoot(leaves.slice(0, Math.min(n, 70))));

  it('builds the RFC PROOF for every old size and verifies it', () => {
    for (let n = 1; n <= 70; n++) {
      const tree = leaves.slice(0, n);
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(tree, m);
        expect(hexes(proof), `PROOF(${m}, D[${n}])`).toEqual(hexes(refSubproof(m, tree, true)));
        expect(verifyConsistency(m, n, roots[m] as Uint8Array, roots[n] as Uint8Array, proof), `${m}->${n}`).toBe(true);
      }
    }
  });

  it('fails after flipping any proof element or either root, and for wrong sizes', () => {
    const wrong: string[] = [];
    const expectVerify = (label: string, got: boolean, want = false): void => {
      if (got !== want) wrong.push(`${label}: got ${got}`);
    };
    for (let n = 1; n <= 70; n++) {
      const tree = leaves.slice(0, n);
      const newRoot = roots[n] as Uint8Array;
      for (let m = 1; m <= n; m++) {
        const at = `${m}->${n}`;
        const oldRoot = roots[m] as Uint8Array;
        const proof = consistencyProof(tree, m);
        const bit = (m * 29 + n) % 256;
        for (let k = 0; k < proof.length; k++) {
          const flipped = withFlippedElement(proof, k, bit);
          expectVerify(`${at}, proof[${k}] flipped`, verifyConsistency(m, n, oldRoot, newRoot, flipped));
        }
        expectVerify(`${at}, old root flipped`, verifyConsistency(m, n, flipBit(oldRoot, bit), newRoot, proof));
        expectVerify(`${at}, new root flipped`, verifyConsistency(m, n, oldRoot, flipBit(newRoot, bit), proof));
        expectVerify(`${at}, extra element`, verifyConsistency(m, n, oldRoot, newRoot, [...proof, newRoot]));
        if (proof.length > 0) {
          expectVerify(`${at}, missing element`, verifyConsistency(m, n, oldRoot, newRoot, proof.slice(1)));
        }

        const shape = consistencyShape(m, n);
        for (const size of wrongValues(m, n)) {
          const want = consistencyShape(size, n) === shape;
          expectVerify(`${at}, old size ${size}`, verifyConsistency(size, n, oldRoot, newRoot, proof), want);
        }
        for (const size of wrongValues(n, n)) {
          const want = consistencyShape(m, size) === shape;
          expectVerify(`${at}, new size ${size}`, verifyConsistency(m, size, oldRoot, newRoot, proof), want);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('treats equal sizes as consistent only with an empty proof and identical roots', () => {
    const root = roots[5] as Uint8Array;
    expect(consistencyProof(leaves.slice(0, 5), 5)).toEqual([]);
    expect(verifyConsistency(5, 5, root, root, [])).toBe(true);
    expect(verifyConsistency(5, 5, root, roots[4] as Uint8Array, [])).toBe(false);
    expect(verifyConsistency(5, 5, root, root, [root])).toBe(false);
    expect(verifyConsistency(0, 0, emptyRoot(), emptyRoot(), [])).toBe(false);
    expect(verifyConsistency(0, 5, emptyRoot(), root, [])).toBe(false);
  });

  it('throws RangeError for an old size outside 1..n', () => {
    const tree = leaves.slice(0, 5);
    expect(() => consistencyProof(tree, 0)).toThrow(RangeError);
    expect(() => consistencyProof(tree, 0)).toThrow(/\[1, 5\].*got 0/);
    expect(() => consistencyProof(tree, 6)).toThrow(RangeError);
    expect(() => consistencyProof(tree, 2.5)).toThrow(RangeError);
    expect(() => consistencyProof([], 0)).toThrow(/tree is empty/);
  });
});

describe('verifiers on malformed input', () => {
  const leaves = makeLeaves(6);
  const root = merkleRoot(leaves);
  const leaf = leaves[2] as Uint8Array;
  const proof = inclusionProof(leaves, 2);
  const oldRoot = merkleRoot(leaves.slice(0, 3));
  const cProof = consistencyProof(leaves, 3);
  const badNumbers = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 64, '2', null, undefined, 2n];
  const badHashes = [new Uint8Array(0), new Uint8Array(31), new Uint8Array(33), null, undefined, 'ab', [1, 2], {}];
  const badProofs = [null, undefined, 'proof', {}, [null], [new Uint8Array(31)], [...proof, ...proof], new Array(3)];

  it('never throws and returns false', () => {
    expect(verifyInclusion(leaf, 2, 6, proof, root)).toBe(true);
    for (const bad of badNumbers) {
      expect(verifyInclusion(leaf, bad as never, 6, proof, root)).toBe(false);
      expect(verifyInclusion(leaf, 2, bad as never, proof, root)).toBe(false);
      expect(verifyConsistency(bad as never, 6, oldRoot, root, cProof)).toBe(false);
      expect(verifyConsistency(3, bad as never, oldRoot, root, cProof)).toBe(false);
    }
    for (const bad of badHashes) {
      expect(verifyInclusion(bad as never, 2, 6, proof, root)).toBe(false);
      expect(verifyInclusion(leaf, 2, 6, proof, bad as never)).toBe(false);
      expect(verifyInclusion(leaf, 2, 6, [bad as never, ...proof.slice(1)], root)).toBe(false);
      expect(verifyConsistency(3, 6, bad as never, root, cProof)).toBe(false);
      expect(verifyConsistency(3, 6, oldRoot, bad as never, cProof)).toBe(false);
      expect(verifyConsistency(3, 6, oldRoot, root, [bad as never, ...cProof.slice(1)])).toBe(false);
    }
    for (const bad of badProofs) {
      expect(verifyInclusion(leaf, 2, 6, bad as never, root)).toBe(false);
      expect(verifyConsistency(3, 6, oldRoot, root, bad as never)).toBe(false);
    }
    expect(verifyConsistency(6, 3, root, oldRoot, cProof)).toBe(false);
  });

  it('rejects oversized proofs without walking them', () => {
    const huge = new Array<Uint8Array>(1_000_000).fill(root);
    expect(verifyInclusion(leaf, 2, 6, huge, root)).toBe(false);
    expect(verifyConsistency(3, 6, oldRoot, root, huge)).toBe(false);
  });
});
