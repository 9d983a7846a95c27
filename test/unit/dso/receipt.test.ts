import { describe, expect, it } from 'vitest';
import { buildDsoBlock, type DsoHeader, sealDsoBlock } from '../../../agent/dso/chain.js';
import {
  buildReceipt,
  buildReceipts,
  checkReceipt,
  type DsoEntry,
  encodeReceipt,
  parseReceipt,
  type Receipt,
} from '../../../agent/dso/receipt.js';
import type { KeyPair } from '../../../agent/identity/keys.js';
import { parseCanonical } from '../../../agent/ledger/canonical.js';
import { fakeHash, genesisOf, MGMC_A, MGMC_B, signer, T0, V } from './helpers.js';

const four = [V[0], V[1], V[2], V[3]];
const genesis = genesisOf(four);
const validators = genesis.validators;

function entries(n: number): DsoEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    mgmc: i % 2 === 0 ? MGMC_A.address : MGMC_B.address,
    mgmcHeight: Math.floor(i / 2) + 1,
    headerHash: fakeHash(i),
  }));
}

function sealedBlock(list: readonly DsoEntry[], sealers: readonly KeyPair[] = [V[0], V[1], V[2]]) {
  const header = buildDsoBlock(
    genesis,
    list.map((e) => e.headerHash),
    T0 + 1,
  );
  return { header, seals: sealers.map((s) => sealDsoBlock(header, signer(s))) };
}

/** JSON round trip, as a receipt travels. */
const wire = (receipt: Receipt): unknown => JSON.parse(JSON.stringify(receipt));

function failure(result: ReturnType<typeof checkReceipt>): string {
  if (result.ok) throw new Error('expected the receipt to be refused');
  return result.kind;
}

describe('receipts', () => {
  it('check for every entry of blocks of many sizes', () => {
    for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17]) {
      const list = entries(n);
      const { header, seals } = sealedBlock(list);
      const all = buildReceipts(header, seals, list);
      for (let i = 0; i < n; i++) {
        // The tree-once builder gives the same paths as RFC 9162 PATH() per leaf.
        expect(all[i], `n=${n} i=${i}`).toEqual(buildReceipt(header, seals, list, i));
        const result = checkReceipt(wire(all[i] as Receipt), validators, list[i]?.headerHash as string);
        expect(result, `n=${n} i=${i}`).toEqual({ ok: true, dsoHeight: 1, dsoHash: expect.any(String) });
      }
    }
  });

  it('are canonical JSON: integers and hex strings only', () => {
    const list = entries(3);
    const { header, seals } = sealedBlock(list);
    const receipt = buildReceipt(header, seals, list, 1);
    const bytes = encodeReceipt(receipt);
    expect(parseReceipt(parseCanonical(bytes))).toEqual(receipt);
    expect(receipt).toMatchObject({ version: 1, mgmc: MGMC_B.address, mgmcHeight: 1, index: 1 });
  });

  it('refuse to be built from entries the block does not commit to', () => {
    const list = entries(3);
    const { header, seals } = sealedBlock(list);
    expect(() => buildReceipt(header, seals, entries(4), 0)).toThrow(/not the ones DSO block 1 commits to/);
    expect(() => buildReceipts(header, seals, [...list].reverse())).toThrow(/not the ones/);
    expect(() => buildReceipt(header, seals, list, 3)).toThrow(/has no entry 3/);
  });
});

describe('forged receipts are refused', () => {
  const list = entries(5);
  const { header, seals } = sealedBlock(list);
  const good = buildReceipt(header, seals, list, 2);
  const hash = list[2]?.headerHash as string;
  const check = (receipt: unknown, expected = hash) => checkReceipt(receipt, validators, expected);

  it('accepts the genuine one', () => {
    expect(check(wire(good)).ok).toBe(true);
  });

  it('a wrong inclusion path, index or leaf', () => {
    const flipped = [...good.proof];
    flipped[0] = fakeHash(500);
    expect(failure(check({ ...good, proof: flipped }))).toBe('bad-proof');
    expect(failure(check({ ...good, proof: good.proof.slice(1) }))).toBe('bad-proof');
    expect(failure(check({ ...good, index: 3 }))).toBe('bad-proof');
    expect(failure(check({ ...good, index: 5 }))).toBe('bad-proof');
    // Another block's hash claimed, with the checker expecting it: the path does not lead there.
    expect(failure(check({ ...good, mgmcHeaderHash: fakeHash(77) }, fakeHash(77)))).toBe('bad-proof');
  });

  it('a header hash other than the one the checker expects', () => {
    expect(failure(check(wire(good), list[1]?.headerHash))).toBe('wrong-header-hash');
  });

  it('a DSO header with too few seals, unknown sealers or changed fields', () => {
    expect(failure(check({ ...good, dsoSeals: good.dsoSeals.slice(0, 2) }))).toBe('too-few-seals');
    const outsider = sealDsoBlock(header, signer(V[4]));
    expect(failure(check({ ...good, dsoSeals: [...good.dsoSeals.slice(0, 2), outsider] }))).toBe('unknown-validator');
    expect(failure(check({ ...good, dsoSeals: [...good.dsoSeals, good.dsoSeals[0]] }))).toBe('duplicate-seal');
    // A forged root (to fit a forged path) breaks every seal.
    const forged: DsoHeader = { ...header, root: fakeHash(1234) };
    expect(failure(check({ ...good, dsoHeader: forged }))).toBe('unknown-validator');
    // Sealed by a set that is not the one the checker trusts.
    const otherSet = genesisOf([V[4]]).validators;
    expect(checkReceipt(wire(good), otherSet, hash)).toMatchObject({ ok: false, kind: 'wrong-validator-set' });
  });

  it('malformed input, with the field named', () => {
    expect(check(null)).toMatchObject({ ok: false, kind: 'bad-receipt' });
    expect(check({ ...good, version: 2 })).toMatchObject({ ok: false, kind: 'bad-receipt' });
    expect(check({ ...good, extra: true })).toMatchObject({
      kind: 'bad-receipt',
      detail: expect.stringMatching(/extra/),
    });
    expect(check({ ...good, mgmcHeight: 1.5 })).toMatchObject({ detail: expect.stringMatching(/mgmcHeight/) });
    expect(check({ ...good, proof: [good.proof[0]?.toUpperCase().replace('0X', '0x')] })).toMatchObject({
      detail: expect.stringMatching(/proof\[0\]/),
    });
    expect(check({ ...good, dsoHeader: { ...header, count: -1 } })).toMatchObject({
      detail: expect.stringMatching(/dsoHeader: count/),
    });
  });
});
