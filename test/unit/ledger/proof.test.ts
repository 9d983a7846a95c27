import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signDigest } from '../../../agent/identity/signing.js';
import { headerHash, signerFromPrivateKey } from '../../../agent/ledger/block.js';
import { openWritableLedger } from '../../../agent/ledger/open.js';
import { buildRecordProof, checkRecordProof, PROOF_KIND, type RecordProof } from '../../../agent/ledger/proof.js';
import type { LedgerStore } from '../../../agent/store/ledger-store.js';

/** Test keys: they sign nothing outside the temporary database of this file. */
const PRODUCER = keyPairFromPrivateKey(fromHex(`0x${'c3'.repeat(32)}`));
const OTHER = keyPairFromPrivateKey(fromHex(`0x${'d4'.repeat(32)}`));
const CHAIN_ID = 99;
/** Blocks of 7 records (an unbalanced Merkle tree), 3 blocks, then 3 unsealed records. */
const PER_BLOCK = 7;
const SEALED = 21;
const TOTAL = 24;

let dir: string;
let store: LedgerStore;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mgmc-proof-'));
  const opened = openWritableLedger({
    path: join(dir, 'ledger.db'),
    signer: signerFromPrivateKey(PRODUCER.privateKey, PRODUCER.address),
    clock: new ManualClock(Date.UTC(2025, 2, 1)),
    chainId: CHAIN_ID,
    sealEveryRecords: PER_BLOCK,
    sealEverySeconds: 10,
  });
  store = opened.store;
  opened.ledger.append(
    Array.from({ length: TOTAL }, (_, i) => ({
      type: 'reading' as const,
      body: { device: 'meter1', point: 'TotWhImp', t: 1_740_000_000_000 + i * 1000, value: 5000 + i, unit: 'Wh' },
    })),
  );
  expect(opened.ledger.sealedHeight).toBe(SEALED / PER_BLOCK);
});

afterAll(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A proof as a third party gets it: through JSON, then edited by `edit`. */
function proofJson(seq: number, edit?: (proof: Record<string, unknown> & RecordProof) => void): unknown {
  const proof = JSON.parse(JSON.stringify(buildRecordProof(store, seq)));
  edit?.(proof);
  return proof;
}

describe('buildRecordProof / checkRecordProof', () => {
  const seqs: [number, number, number][] = [];
  for (let height = 1; height <= SEALED / PER_BLOCK; height++) {
    const first = (height - 1) * PER_BLOCK + 1;
    for (const index of [0, 3, PER_BLOCK - 1]) seqs.push([first + index, height, index]);
  }

  it.each(seqs)('proves record %i in block %i (leaf %i)', (seq, height, index) => {
    const proof = buildRecordProof(store, seq);
    expect(proof).toMatchObject({ kind: PROOF_KIND, version: 1, leafIndex: index, treeSize: PER_BLOCK });
    expect(proof.record.seq).toBe(seq);
    expect(proof.block.header.height).toBe(height);
    const expected = {
      ok: true,
      detail: `record ${seq} is in block ${height} of chain ${CHAIN_ID}, signed by ${PRODUCER.address}`,
    };
    expect(checkRecordProof(proof)).toEqual(expected);
    expect(checkRecordProof(proofJson(seq))).toEqual(expected);
    expect(checkRecordProof(proofJson(seq), PRODUCER.address)).toEqual(expected);
    expect(checkRecordProof(proofJson(seq), PRODUCER.address.toLowerCase()).ok).toBe(true);
  });

  it('refuses to prove an unsealed record, saying to wait for the seal', () => {
    expect(() => buildRecordProof(store, SEALED + 1)).toThrow(
      `record ${SEALED + 1} is not sealed into a block yet: wait for the next seal`,
    );
  });

  it.each([0, TOTAL + 1, 10_000])('refuses to prove nonexistent record %i, giving the range', (seq) => {
    expect(() => buildRecordProof(store, seq)).toThrow(
      `record ${seq} does not exist (this ledger has records 1..${TOTAL})`,
    );
  });
});

describe('checkRecordProof: tampered proofs', () => {
  const SEQ = 11; // block 2, leaf 3

  it.each<[string, (p: Record<string, unknown> & RecordProof) => void, RegExp]>([
    [
      'a changed record value',
      (p) => {
        (p.record.body as { value: number }).value += 1;
      },
      /inclusion path does not lead/,
    ],
    [
      'a changed record seq',
      (p) => {
        (p.record as { seq: number }).seq = 12;
      },
      /inclusion path does not lead/,
    ],
    [
      'an extra record field',
      (p) => {
        (p.record as unknown as Record<string, unknown>).block = 2;
      },
      /proof record: unexpected field\(s\) block/,
    ],
    [
      'a changed path entry',
      (p) => {
        const path = p.path as string[];
        path[0] = `0x${'00'.repeat(32)}`;
      },
      /inclusion path does not lead/,
    ],
    [
      'a dropped path entry',
      (p) => {
        (p.path as string[]).pop();
      },
      /inclusion path does not lead/,
    ],
    [
      'a malformed path entry',
      (p) => {
        (p.path as string[])[1] = '0x1234';
      },
      /proof path entry/,
    ],
    [
      'another leaf index',
      (p) => {
        (p as { leafIndex: number }).leafIndex = 4;
      },
      /inclusion path does not lead/,
    ],
    [
      'a leaf index out of range',
      (p) => {
        (p as { leafIndex: number }).leafIndex = PER_BLOCK;
      },
      /inclusion path does not lead/,
    ],
    [
      'another tree size',
      (p) => {
        (p as { treeSize: number }).treeSize = 8;
      },
      /tree size 8 differs from the block's count 7/,
    ],
    [
      'a changed header root (hash kept)',
      (p) => {
        (p.block.header as { root: string }).root = `0x${'11'.repeat(32)}`;
      },
      /header hash does not match the header/,
    ],
    [
      'a changed header root without a hash',
      (p) => {
        (p.block.header as { root: string }).root = `0x${'11'.repeat(32)}`;
        delete (p.block as { hash?: string }).hash;
      },
      /block signature is not/,
    ],
    [
      'a changed header height',
      (p) => {
        (p.block.header as { height: number }).height = 3;
      },
      /header hash does not match the header/,
    ],
    [
      'a flipped signature byte',
      (p) => {
        const sig = fromHex(p.block.signature);
        sig[5] = (sig[5] as number) ^ 0x01;
        (p.block as { signature: string }).signature = toHex(sig);
      },
      /block signature is not .*'s/,
    ],
    [
      "another key's valid signature",
      (p) => {
        (p.block as { signature: string }).signature = toHex(signDigest(headerHash(p.block.header), OTHER.privateKey));
      },
      /block signature is not .*'s/,
    ],
    [
      'another kind',
      (p) => {
        (p as { kind: string }).kind = 'something-else';
      },
      /not an mgmc record proof/,
    ],
  ])('fails for %s', (_name, edit, message) => {
    const check = checkRecordProof(proofJson(SEQ, edit));
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(message);
  });

  it('fails for a header re-signed by another key when the producer is expected', () => {
    const proof = proofJson(SEQ, (p) => {
      const header = { ...p.block.header, producer: OTHER.address };
      const digest = headerHash(header);
      (p.block as unknown as Record<string, unknown>).header = header;
      (p.block as { hash: string }).hash = toHex(digest);
      (p.block as { signature: string }).signature = toHex(signDigest(digest, OTHER.privateKey));
    });
    // Self-consistent, so without an expected producer it holds; with one, it must not.
    expect(checkRecordProof(proof).ok).toBe(true);
    expect(checkRecordProof(proof, PRODUCER.address)).toEqual({
      ok: false,
      detail: `the block was produced by ${OTHER.address}, not by ${PRODUCER.address}`,
    });
  });

  it('fails when another producer is expected', () => {
    expect(checkRecordProof(proofJson(SEQ), OTHER.address)).toEqual({
      ok: false,
      detail: `the block was produced by ${PRODUCER.address}, not by ${OTHER.address}`,
    });
  });

  it.each([null, 'text', 42, {}, { kind: PROOF_KIND, version: 2 }])('fails for %j', (input) => {
    expect(checkRecordProof(input)).toEqual({ ok: false, detail: 'not an mgmc record proof (version 1)' });
  });

  it('fails, without throwing, for a proof with parts missing', () => {
    const check = checkRecordProof({ kind: PROOF_KIND, version: 1 });
    expect(check.ok).toBe(false);
    expect(check.detail.length).toBeGreaterThan(0);
  });
});
