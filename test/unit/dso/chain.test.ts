import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import {
  buildDsoBlock,
  type DsoCheck,
  type DsoHeader,
  decodeDsoHeader,
  dsoHeaderHash,
  encodeDsoHeader,
  entriesRoot,
  packSeals,
  requiredSeals,
  sealDsoBlock,
  unpackSeals,
  ValidatorSetTracker,
  validatorSetHash,
  verifyDsoHeader,
} from '../../../agent/dso/chain.js';
import { encodeGenesis, genesisHash, parseGenesis, sortValidators } from '../../../agent/dso/genesis.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { addressFromPublicKey, type KeyPair } from '../../../agent/identity/keys.js';
import { DSO_CHAIN, fakeHash, genesisOf, signer, T0, V } from './helpers.js';

const seal = (header: DsoHeader, pairs: readonly KeyPair[]): string[] =>
  pairs.map((p) => sealDsoBlock(header, signer(p)));
const addresses = (pairs: readonly KeyPair[]) => pairs.map((p) => p.address);

function problem(check: DsoCheck): { kind: string; detail: string } {
  if (check.ok) throw new Error('expected the check to fail');
  return check;
}

describe('seal threshold', () => {
  it('needs more than two thirds: 1 of 1, 2 of 2, 3 of 3, 3 of 4, 4 of 5, 5 of 7', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map(requiredSeals)).toEqual([1, 2, 3, 3, 4, 5, 5, 7]);
  });
});

describe('single-validator chain', () => {
  const genesis = genesisOf([V[0]]);

  it('links block 1 to the genesis hash and accepts 1 of 1 seals', () => {
    const header = buildDsoBlock(genesis, [fakeHash(1), fakeHash(2)], T0 + 10);
    expect(header).toMatchObject({
      height: 1,
      prev: genesisHash(genesis),
      count: 2,
      kind: 'anchor',
      chainId: DSO_CHAIN,
    });
    expect(header.root).toBe(entriesRoot([fakeHash(1), fakeHash(2)]));
    expect(header.validatorSetHash).toBe(validatorSetHash(DSO_CHAIN, [V[0].address]));
    const check = verifyDsoHeader(header, seal(header, [V[0]]), genesis.validators, genesis);
    expect(check).toEqual({ ok: true, hash: dsoHeaderHash(header), signers: [V[0].address] });
    expect(problem(verifyDsoHeader(header, [], genesis.validators, genesis)).kind).toBe('too-few-seals');
  });

  it('follows a chain of blocks with the tracker', () => {
    const tracker = new ValidatorSetTracker(genesis);
    for (let h = 1; h <= 5; h++) {
      const header = buildDsoBlock(tracker.tip, [fakeHash(h)], T0 + h);
      expect(tracker.accept(header, seal(header, [V[0]])).ok).toBe(true);
      expect(tracker.height).toBe(h);
      expect(tracker.tipHash).toBe(dsoHeaderHash(header));
    }
  });

  it('never builds a block older than its parent, nor an empty anchor block', () => {
    const first = buildDsoBlock(genesis, [fakeHash(1)], T0 + 100);
    expect(buildDsoBlock(first, [fakeHash(2)], T0 + 50).time).toBe(T0 + 100);
    expect(() => buildDsoBlock(first, [], T0 + 200)).toThrow(/at least one MGMC block header hash/);
    expect(() => buildDsoBlock(first, [fakeHash(2)], T0, 'validator-set')).toThrow(/complete new validator set/);
  });
});

describe('four-validator chain (more than two thirds of 4 is 3)', () => {
  const four = [V[0], V[1], V[2], V[3]];
  const genesis = genesisOf(four);
  const header = buildDsoBlock(genesis, [fakeHash(1)], T0 + 1);

  it('is valid with 3 or 4 seals, in any order', () => {
    expect(verifyDsoHeader(header, seal(header, [V[3], V[0], V[2]]), genesis.validators, genesis).ok).toBe(true);
    expect(verifyDsoHeader(header, seal(header, four), genesis.validators, genesis).ok).toBe(true);
  });

  it('is invalid with 2 seals', () => {
    const p = problem(verifyDsoHeader(header, seal(header, [V[0], V[1]]), genesis.validators, genesis));
    expect(p.kind).toBe('too-few-seals');
    expect(p.detail).toMatch(/2 seal\(s\).*at least 3/);
  });

  it('rejects a seal by a non-member even next to three good ones', () => {
    const p = problem(verifyDsoHeader(header, seal(header, [V[0], V[1], V[2], V[4]]), genesis.validators, genesis));
    expect(p.kind).toBe('unknown-validator');
    expect(p.detail).toContain(V[4].address);
  });

  it('rejects the same validator sealing twice (it counts once, and the block is junk)', () => {
    const twice = [...seal(header, [V[0], V[1]]), sealDsoBlock(header, signer(V[0]))];
    expect(problem(verifyDsoHeader(header, twice, genesis.validators, genesis)).kind).toBe('duplicate-seal');
  });

  it('rejects malformed seals and seals over another header', () => {
    const good = seal(header, [V[0], V[1], V[2]]);
    expect(problem(verifyDsoHeader(header, [...good.slice(0, 2), '0x1234'], genesis.validators, genesis)).kind).toBe(
      'bad-seal',
    );
    const other = buildDsoBlock(genesis, [fakeHash(2)], T0 + 1);
    // A seal over another header recovers to some unrelated address.
    expect(
      problem(verifyDsoHeader(header, [...good.slice(0, 2), ...seal(other, [V[2]])], genesis.validators, genesis)).kind,
    ).toBe('unknown-validator');
  });

  it('checks height, link, chain, time and the validator set named in the header', () => {
    const b1 = header;
    const b2 = buildDsoBlock(b1, [fakeHash(2)], T0 + 2);
    const resealed = (h: DsoHeader) => verifyDsoHeader(h, seal(h, [V[0], V[1], V[2]]), genesis.validators, b1);
    expect(resealed(b2).ok).toBe(true);
    expect(problem(resealed({ ...b2, prev: fakeHash(99) })).kind).toBe('broken-link');
    expect(problem(resealed({ ...b2, height: 3 })).kind).toBe('bad-height');
    expect(problem(resealed({ ...b2, chainId: DSO_CHAIN + 1 })).kind).toBe('wrong-chain');
    expect(problem(resealed({ ...b2, time: T0 })).kind).toBe('bad-time');
    expect(problem(resealed({ ...b2, validatorSetHash: validatorSetHash(DSO_CHAIN, [V[0].address]) })).kind).toBe(
      'wrong-validator-set',
    );
    expect(problem(resealed({ ...b2, version: 2 })).kind).toBe('bad-header');
    // Block 1 again after block 1.
    expect(problem(resealed(b1)).kind).toBe('bad-height');
    // Seals checked against a set other than the one the chain put in force.
    expect(problem(verifyDsoHeader(b2, seal(b2, [V[0], V[1], V[2]]), addresses([V[0], V[1], V[2]]), b1)).kind).toBe(
      'wrong-validator-set',
    );
  });
});

describe('validator-set changes', () => {
  const four = [V[0], V[1], V[2], V[3]];
  const genesis = genesisOf(four);

  function chainWithChange(newSet: readonly KeyPair[], sealers: readonly KeyPair[]) {
    const tracker = new ValidatorSetTracker(genesis);
    const b1 = buildDsoBlock(genesis, [fakeHash(1)], T0 + 1);
    expect(tracker.accept(b1, seal(b1, [V[0], V[1], V[2]])).ok).toBe(true);
    const change = buildDsoBlock(b1, [], T0 + 2, 'validator-set', addresses(newSet));
    return { tracker, change, result: tracker.accept(change, seal(change, sealers)) };
  }

  it('replaces a validator from the block after the change on', () => {
    // Remove V3, add V4: sealed by three of the CURRENT set.
    const { tracker, change, result } = chainWithChange([V[0], V[1], V[2], V[4]], [V[0], V[1], V[3]]);
    expect(result.ok).toBe(true);
    expect(change.newValidators).toEqual(sortValidators(addresses([V[0], V[1], V[2], V[4]])));
    expect(tracker.validators).toEqual(change.newValidators);
    const b3 = buildDsoBlock(change, [fakeHash(3)], T0 + 3);
    expect(b3.validatorSetHash).toBe(validatorSetHash(DSO_CHAIN, addresses([V[0], V[1], V[2], V[4]])));
    // The removed validator's seal no longer counts: the old set cannot seal past the change.
    expect(problem(tracker.check(b3, seal(b3, [V[1], V[2], V[3]]))).kind).toBe('unknown-validator');
    // A block that still names the old set is refused even when sealed by members of both.
    const stale = { ...b3, validatorSetHash: change.validatorSetHash };
    expect(problem(tracker.check(stale, seal(stale, [V[0], V[1], V[2]]))).kind).toBe('wrong-validator-set');
    // The new validator seals from here on.
    expect(tracker.accept(b3, seal(b3, [V[4], V[1], V[2]])).ok).toBe(true);
  });

  it('adds a validator: the threshold grows with the set', () => {
    const { tracker, result } = chainWithChange([V[0], V[1], V[2], V[3], V[4]], [V[0], V[1], V[2]]);
    expect(result.ok).toBe(true);
    const b3 = buildDsoBlock(tracker.tip, [fakeHash(3)], T0 + 3);
    expect(problem(tracker.check(b3, seal(b3, [V[0], V[1], V[4]]))).kind).toBe('too-few-seals');
    expect(tracker.accept(b3, seal(b3, [V[0], V[1], V[2], V[4]])).ok).toBe(true);
  });

  it('removes a validator: three left, all three must seal', () => {
    const { tracker, result } = chainWithChange([V[0], V[1], V[2]], [V[1], V[2], V[3]]);
    expect(result.ok).toBe(true);
    const b3 = buildDsoBlock(tracker.tip, [fakeHash(3)], T0 + 3);
    expect(problem(tracker.check(b3, seal(b3, [V[0], V[1]]))).kind).toBe('too-few-seals');
    expect(tracker.accept(b3, seal(b3, [V[0], V[1], V[2]])).ok).toBe(true);
  });

  it('is refused unless more than two thirds of the current set seal it', () => {
    expect(problem(chainWithChange([V[4]], [V[0], V[1]]).result).kind).toBe('too-few-seals');
    // The incoming validators cannot vote themselves in.
    expect(problem(chainWithChange([V[4], V[5]], [V[0], V[4], V[5]]).result).kind).toBe('unknown-validator');
  });

  it('grows a single-node DSO to two validators (then 2 of 2)', () => {
    const solo = genesisOf([V[0]]);
    const tracker = new ValidatorSetTracker(solo);
    const change = buildDsoBlock(solo, [], T0 + 1, 'validator-set', addresses([V[0], V[1]]));
    expect(tracker.accept(change, seal(change, [V[0]])).ok).toBe(true);
    const b2 = buildDsoBlock(change, [fakeHash(2)], T0 + 2);
    expect(problem(tracker.check(b2, seal(b2, [V[0]]))).kind).toBe('too-few-seals');
    expect(tracker.accept(b2, seal(b2, [V[1], V[0]])).ok).toBe(true);
  });

  it('resumes a tracker from stored headers', () => {
    const { tracker, change } = chainWithChange([V[0], V[1], V[2], V[4]], [V[0], V[1], V[3]]);
    const resumed = ValidatorSetTracker.resume(genesis, change, change);
    expect(resumed.height).toBe(tracker.height);
    expect(resumed.validators).toEqual(tracker.validators);
    expect(() => new ValidatorSetTracker(genesis, { tip: change, validators: addresses(four) })).toThrow(
      /not the one it put in force/,
    );
  });
});

describe('header decoding', () => {
  const genesis = genesisOf([V[0]]);
  const anchor = buildDsoBlock(genesis, [fakeHash(1)], T0 + 1);
  const change = buildDsoBlock(anchor, [], T0 + 2, 'validator-set', addresses([V[1], V[0]]));

  it('round-trips canonical bytes', () => {
    expect(decodeDsoHeader(encodeDsoHeader(anchor))).toEqual(anchor);
    expect(decodeDsoHeader(encodeDsoHeader(change))).toEqual(change);
  });

  it('names what is wrong', () => {
    expect(() => decodeDsoHeader({ ...anchor, extra: 1 })).toThrow(/unexpected field extra/);
    expect(() => decodeDsoHeader({ ...anchor, newValidators: [V[1].address] })).toThrow(
      /only allowed in a validator-set/,
    );
    expect(() => decodeDsoHeader({ ...change, newValidators: undefined })).toThrow(/needs newValidators/);
    expect(() => decodeDsoHeader({ ...change, newValidators: [...(change.newValidators ?? [])].reverse() })).toThrow(
      /distinct and sorted/,
    );
    expect(() => decodeDsoHeader({ ...anchor, count: 0 })).toThrow(/count must be an integer >= 1/);
    expect(() => decodeDsoHeader({ ...anchor, kind: 'other' })).toThrow(/kind must be/);
    expect(() => decodeDsoHeader({ ...anchor, root: fakeHash(1).toUpperCase().replace('0X', '0x') })).toThrow(/root/);
    expect(() => decodeDsoHeader(' {}')).toThrow(/not in canonical form/);
  });

  it('packs seals as 65-byte runs', () => {
    const seals = seal(anchor, [V[0], V[1]]);
    expect(packSeals(seals)).toHaveLength(130);
    expect(unpackSeals(packSeals(seals))).toEqual(seals);
    expect(() => unpackSeals(new Uint8Array(64))).toThrow(/multiple of 65/);
  });
});

// --- Test vectors (test/vectors/dso-chain.json) ----------------------------------------------------------------------

const VECTORS = new URL('../../vectors/dso-chain.json', import.meta.url);

/** Builds the published vectors from fixed keys. MGMC_WRITE_VECTORS=1 rewrites the file. */
function buildVectors() {
  const keys = [V[0], V[1], V[2], V[3]].map((k) => ({ privateKey: toHex(k.privateKey), address: k.address }));
  const genesis = parseGenesis({
    chainId: 1337,
    name: 'vector feeder',
    time: 1767225600000,
    validators: keys.map((k) => k.address),
  });
  const entries = [1, 2, 3].map((n) => toHex(new Uint8Array(createHash('sha256').update(`mgmc header ${n}`).digest())));
  const anchor = buildDsoBlock(genesis, entries, 1767225660000);
  const change = buildDsoBlock(anchor, [], 1767225720000, 'validator-set', [keys[0]!.address, keys[1]!.address]);
  const block = (header: DsoHeader, sealers: readonly KeyPair[]) => ({
    header,
    canonical: new TextDecoder().decode(encodeDsoHeader(header)),
    hash: dsoHeaderHash(header),
    seals: seal(header, sealers),
  });
  return {
    description:
      'DSO chain (docs/protocol.md, "DSO chain and receipts"): genesis hash, validator-set hash, DSO header bytes, ' +
      'header hash (signing digest, tag mgmc/dso-block/v1) and seals. Generated by test/unit/dso/chain.test.ts ' +
      '(MGMC_WRITE_VECTORS=1, then biome format) from the fixed keys below and cross-checked there against hand-assembled digests.',
    keys,
    genesis: {
      value: genesis,
      canonical: new TextDecoder().decode(encodeGenesis(genesis)),
      hash: genesisHash(genesis),
      validatorSetHash: validatorSetHash(genesis.chainId, genesis.validators),
    },
    entries,
    root: entriesRoot(entries),
    blocks: [block(anchor, [V[0], V[1], V[2]]), block(change, [V[1], V[2], V[3]])],
  };
}

if (process.env.MGMC_WRITE_VECTORS === '1') writeFileSync(VECTORS, `${JSON.stringify(buildVectors(), null, 2)}\n`);

function referenceDigest(tag: string, chainId: number, text: string): string {
  const chain = Buffer.alloc(8);
  chain.writeBigUInt64BE(BigInt(chainId));
  const bytes = Buffer.concat([
    Buffer.from([0x19]),
    Buffer.from('mgmc\0'),
    Buffer.from(`${tag}\0`),
    chain,
    Buffer.from(text),
  ]);
  return toHex(keccak_256(bytes));
}

function referenceCanonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(referenceCanonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${referenceCanonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

function ecrecover(digest: string, signature: string): string {
  const sig = fromHex(signature);
  const rec = new Uint8Array(65);
  rec[0] = (sig[64] as number) - 27;
  rec.set(sig.subarray(0, 64), 1);
  return addressFromPublicKey(secp256k1.recoverPublicKey(rec, fromHex(digest), { prehash: false }));
}

describe('DSO chain vectors', () => {
  const vectors = JSON.parse(readFileSync(VECTORS, 'utf8'));

  it('are what the code produces from the fixed keys', () => {
    expect(vectors).toEqual(JSON.parse(JSON.stringify(buildVectors())));
  });

  it('match hand-assembled digests, Merkle root and ecrecover', () => {
    const { genesis } = vectors;
    expect(referenceCanonical(genesis.value)).toBe(genesis.canonical);
    expect(referenceDigest('mgmc/dso-genesis/v1', genesis.value.chainId, genesis.canonical)).toBe(genesis.hash);
    expect(
      referenceDigest('mgmc/dso-validator-set/v1', genesis.value.chainId, JSON.stringify(genesis.value.validators)),
    ).toBe(genesis.validatorSetHash);
    const [l0, l1, l2] = vectors.entries.map((e: string) => sha256(new Uint8Array([0]), fromHex(e)));
    const one = new Uint8Array([1]);
    expect(toHex(sha256(one, sha256(one, l0, l1), l2))).toBe(vectors.root);
    const [anchor, change] = vectors.blocks;
    expect(anchor.header.prev).toBe(genesis.hash);
    expect(anchor.header.root).toBe(vectors.root);
    expect(change.header.prev).toBe(anchor.hash);
    for (const block of vectors.blocks) {
      expect(referenceCanonical(block.header)).toBe(block.canonical);
      expect(referenceDigest('mgmc/dso-block/v1', block.header.chainId, block.canonical)).toBe(block.hash);
      const signers = block.seals.map((s: string) => ecrecover(block.hash, s));
      for (const s of signers) expect(genesis.value.validators).toContain(s);
    }
  });

  it('verify as a chain', () => {
    const genesis = parseGenesis(vectors.genesis.value);
    const tracker = new ValidatorSetTracker(genesis);
    for (const block of vectors.blocks) expect(tracker.accept(block.header, block.seals).ok).toBe(true);
    expect(tracker.validators).toEqual(vectors.blocks[1].header.newValidators);
  });
});
