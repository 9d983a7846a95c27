import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import {
  addSeal,
  DsoAnchor,
  DsoAnchorError,
  type DsoAnchorOptions,
  isFinal,
  type Proposal,
  proposalSeals,
  proposeBlock,
  type SealedDsoBlock,
} from '../../../agent/dso/anchor.js';
import { buildDsoBlock, dsoHeaderHash, sealDsoBlock, verifyDsoHeader } from '../../../agent/dso/chain.js';
import type { DsoChainStore } from '../../../agent/dso/chain-store.js';
import type { DsoGenesis } from '../../../agent/dso/genesis.js';
import { checkReceipt } from '../../../agent/dso/receipt.js';
import type { KeyPair } from '../../../agent/identity/keys.js';
import { type SignedBlock, signHeader } from '../../../agent/ledger/block.js';
import { fakeHash, genesisOf, MGMC_A, MGMC_B, mgmcChain, signer, T0, TempDir, V } from './helpers.js';

let dir: TempDir;
let clock: ManualClock;
beforeEach(() => {
  dir = new TempDir();
  clock = new ManualClock(T0 + 60_000);
});
afterEach(() => dir.cleanup());

interface Node {
  anchor: DsoAnchor;
  store: DsoChainStore;
  sealed: SealedDsoBlock[];
  proposals: Proposal[];
}

function node(
  genesis: DsoGenesis,
  key: KeyPair | undefined,
  db = 'dso.db',
  extra: Partial<DsoAnchorOptions> = {},
): Node {
  const store = dir.chainStore(db);
  const sealed: SealedDsoBlock[] = [];
  const proposals: Proposal[] = [];
  const anchor = DsoAnchor.open({
    store,
    genesis,
    clock,
    sealEveryEntries: 3,
    sealEverySeconds: 30,
    ...(key ? { signer: signer(key) } : {}),
    onSealed: (b) => sealed.push(b),
    onProposal: (p) => proposals.push(p),
    ...extra,
  });
  return { anchor, store, sealed, proposals };
}

const input = (b: SignedBlock) => ({ header: b.header, signature: b.signature, records: new Uint8Array([1, 2, 3]) });

describe('single-validator anchoring', () => {
  const genesis = genesisOf([V[0]]);

  it('seals every M entries and gives a receipt per entry that checks', () => {
    const { anchor, sealed } = node(genesis, V[0]);
    const a = mgmcChain(MGMC_A, 3);
    const b = mgmcChain(MGMC_B, 2);
    expect(anchor.acceptMgmcBlock(input(a[0] as SignedBlock))).toMatchObject({ status: 'accepted', height: 1 });
    anchor.acceptMgmcBlock(input(b[0] as SignedBlock));
    expect(sealed).toHaveLength(0);
    anchor.acceptMgmcBlock(input(a[1] as SignedBlock));
    expect(sealed).toHaveLength(1);
    const block = sealed[0] as SealedDsoBlock;
    expect(block.header).toMatchObject({ height: 1, count: 3, kind: 'anchor', time: clock.now() });
    expect(block.entries.map((e) => [e.mgmc, e.mgmcHeight])).toEqual([
      [MGMC_A.address, 1],
      [MGMC_B.address, 1],
      [MGMC_A.address, 2],
    ]);
    expect(block.receipts).toHaveLength(3);
    for (const [i, receipt] of block.receipts.entries()) {
      expect(
        checkReceipt(JSON.parse(JSON.stringify(receipt)), genesis.validators, block.entries[i]?.headerHash ?? '').ok,
      ).toBe(true);
    }
    expect(anchor.height).toBe(1);
    expect(anchor.pendingCount).toBe(0);
    // The receipt rebuilt from the store (for re-delivery) is the one sent.
    expect(anchor.receipt(MGMC_B.address, 1)).toEqual(block.receipts[1]);
    expect(anchor.receipt(MGMC_B.address, 2)).toBeUndefined();
  });

  it('seals what is pending every N seconds', () => {
    const { anchor, sealed } = node(genesis, V[0]);
    anchor.start();
    anchor.acceptMgmcBlock(input(mgmcChain(MGMC_A, 1)[0] as SignedBlock));
    clock.advance(29_000);
    expect(sealed).toHaveLength(0);
    clock.advance(1_000);
    expect(sealed).toHaveLength(1);
    expect(sealed[0]?.header.count).toBe(1);
    // Nothing pending: no empty block.
    clock.advance(60_000);
    expect(sealed).toHaveLength(1);
    anchor.stop();
  });

  it('is idempotent: re-delivery is a duplicate and anchors nothing twice', () => {
    const { anchor, sealed, store } = node(genesis, V[0]);
    const [b1] = mgmcChain(MGMC_A, 1) as [SignedBlock];
    expect(anchor.acceptMgmcBlock(input(b1)).status).toBe('accepted');
    expect(anchor.seal()).toBeDefined();
    expect(anchor.acceptMgmcBlock(input(b1))).toMatchObject({ status: 'duplicate', hash: b1.hash });
    expect(anchor.seal()).toBeUndefined();
    expect(sealed).toHaveLength(1);
    expect(store.pendingCount()).toBe(0);
  });

  it('refuses forged MGMC blocks and reports a second block at one height', () => {
    const { anchor } = node(genesis, V[0]);
    const [b1] = mgmcChain(MGMC_A, 1) as [SignedBlock];
    const forged = { ...input(b1), header: { ...b1.header, root: fakeHash(9) } };
    expect(anchor.acceptMgmcBlock(forged)).toMatchObject({
      status: 'rejected',
      detail: expect.stringMatching(/signature/),
    });
    expect(anchor.acceptMgmcBlock({ ...input(b1), header: { ...b1.header, height: 0 } }).status).toBe('rejected');
    expect(anchor.acceptMgmcBlock({ header: b1.header, signature: b1.signature })).toMatchObject({
      status: 'rejected',
      detail: expect.stringMatching(/needs its records/),
    });
    anchor.acceptMgmcBlock(input(b1));
    const twin = signHeader({ ...b1.header, time: b1.header.time + 1 }, signer(MGMC_A));
    expect(anchor.acceptMgmcBlock(input(twin))).toMatchObject({
      status: 'conflict',
      detail: expect.stringMatching(/two different blocks at height 1/),
    });
  });

  it('survives a restart: pending entries stay pending, the chain continues', () => {
    const first = node(genesis, V[0]);
    const blocks = mgmcChain(MGMC_A, 4);
    for (const b of blocks.slice(0, 3)) first.anchor.acceptMgmcBlock(input(b));
    first.anchor.acceptMgmcBlock(input(blocks[3] as SignedBlock));
    expect(first.sealed).toHaveLength(1);
    first.store.close();
    const second = node(genesis, V[0]);
    expect(second.anchor.height).toBe(1);
    expect(second.anchor.pendingCount).toBe(1);
    const block = second.anchor.seal() as SealedDsoBlock;
    expect(block.header).toMatchObject({ height: 2, prev: first.sealed[0]?.hash });
    expect(block.entries.map((e) => e.mgmcHeight)).toEqual([4]);
  });

  it('refuses a database of another chain', () => {
    node(genesis, V[0]).store.close();
    expect(() => node(genesisOf([V[1]]), V[1])).toThrow(DsoAnchorError);
    expect(() => node(genesisOf([V[1]]), V[1])).toThrow(/genesis hash/);
  });

  it('checks its options', () => {
    expect(() => node(genesis, V[0], 'a.db', { sealEveryEntries: 0 })).toThrow(/sealEveryEntries/);
    expect(() => node(genesis, V[0], 'b.db', { sealEverySeconds: 0 })).toThrow(/sealEverySeconds/);
  });
});

describe('multi-validator sealing', () => {
  const four = [V[0], V[1], V[2], V[3]];
  const genesis = genesisOf(four);

  it('proposeBlock / addSeal / isFinal: final at 3 of 4', () => {
    const entries = [{ mgmc: MGMC_A.address, mgmcHeight: 1, headerHash: fakeHash(1) }];
    const proposal = proposeBlock(genesis, genesis.validators, entries, T0 + 1);
    for (const [i, key] of [V[0], V[1]].entries()) {
      expect(addSeal(proposal, sealDsoBlock(proposal.header, signer(key)))).toMatchObject({ ok: true, final: false });
      expect(proposal.seals.size).toBe(i + 1);
    }
    expect(isFinal(proposal)).toBe(false);
    expect(addSeal(proposal, sealDsoBlock(proposal.header, signer(V[1])))).toMatchObject({ ok: true, duplicate: true });
    expect(addSeal(proposal, sealDsoBlock(proposal.header, signer(V[4])))).toMatchObject({
      ok: false,
      kind: 'unknown-validator',
    });
    expect(addSeal(proposal, '0xdead')).toMatchObject({ ok: false, kind: 'bad-seal' });
    expect(addSeal(proposal, sealDsoBlock(proposal.header, signer(V[3])))).toMatchObject({ ok: true, final: true });
    expect(verifyDsoHeader(proposal.header, proposalSeals(proposal), genesis.validators, genesis).ok).toBe(true);
    expect(() => proposeBlock(genesis, [V[0].address], entries, T0)).toThrow(/not the set in force/);
  });

  it('a proposer collects seals from other validators, who then import the block', () => {
    const a = node(genesis, V[0], 'a.db');
    const b = node(genesis, V[1], 'b.db');
    const c = node(genesis, V[2], 'c.db');
    const observer = node(genesis, undefined, 'observer.db');
    for (const blk of mgmcChain(MGMC_A, 3)) a.anchor.acceptMgmcBlock(input(blk));
    expect(a.sealed).toHaveLength(0);
    const proposal = a.proposals[0] as Proposal;
    expect(proposal.seals.size).toBe(1);
    expect(a.anchor.proposal).toBe(proposal);
    // Offered again (not a new block) while it is open.
    expect(a.anchor.seal()).toBe(proposal);
    expect(a.proposals).toHaveLength(2);

    const sealB = b.anchor.sealProposal(proposal.header, proposal.entries);
    const sealC = c.anchor.sealProposal(proposal.header, proposal.entries);
    if (!sealB.ok || !sealC.ok) throw new Error('validators refused a good proposal');
    expect(a.anchor.addSeal(sealB.seal)).toMatchObject({ ok: true, final: false });
    const done = a.anchor.addSeal(sealC.seal);
    expect(done).toMatchObject({ ok: true, final: true });
    expect(a.sealed).toHaveLength(1);
    expect(a.anchor.proposal).toBeUndefined();
    const block = a.sealed[0] as SealedDsoBlock;
    expect(block.seals).toHaveLength(3);
    expect(a.anchor.addSeal(sealB.seal)).toMatchObject({ ok: false, detail: expect.stringMatching(/no DSO block/) });

    for (const other of [b, c, observer]) {
      expect(other.anchor.importBlock(block.header, block.seals, block.entries).ok).toBe(true);
      expect(other.anchor.height).toBe(1);
      expect(other.anchor.receipt(MGMC_A.address, 2)).toEqual(block.receipts[1]);
    }
    expect(observer.anchor.sealProposal(block.header, block.entries)).toMatchObject({ ok: false, kind: 'bad-height' });
    // A proposal that anchors an MGMC block a second time is not sealed.
    const again = proposeBlock(block.header, genesis.validators, block.entries.slice(0, 1), clock.now());
    expect(b.anchor.sealProposal(again.header, again.entries)).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/already anchored in DSO block 1/),
    });
  });

  it('a validator refuses proposals that do not extend its chain or match their entries', () => {
    const b = node(genesis, V[1], 'b.db');
    const entries = [{ mgmc: MGMC_A.address, mgmcHeight: 1, headerHash: fakeHash(1) }];
    const good = proposeBlock(genesis, genesis.validators, entries, T0 + 1);
    expect(b.anchor.sealProposal({ ...good.header, prev: fakeHash(3) }, entries)).toMatchObject({
      kind: 'broken-link',
    });
    expect(b.anchor.sealProposal(good.header, [{ ...entries[0]!, headerHash: fakeHash(2) }])).toMatchObject({
      kind: 'bad-header',
    });
    // One header per height: a second, different proposal at height 1 is never sealed.
    expect(b.anchor.sealProposal(good.header, entries).ok).toBe(true);
    expect(b.anchor.sealProposal(good.header, entries).ok).toBe(true);
    const rival = buildDsoBlock(genesis, [fakeHash(1)], T0 + 2);
    expect(b.anchor.sealProposal(rival, entries)).toMatchObject({
      ok: false,
      kind: 'duplicate-seal',
      detail: expect.stringMatching(/fork/),
    });
    // A block with too few seals is not imported.
    const two = [V[0], V[1]].map((k) => sealDsoBlock(good.header, signer(k)));
    expect(b.anchor.importBlock(good.header, two, entries)).toMatchObject({ ok: false, kind: 'too-few-seals' });
  });

  it('offers the same proposal again after a restart', () => {
    const a = node(genesis, V[0], 'a.db');
    for (const blk of mgmcChain(MGMC_A, 3)) a.anchor.acceptMgmcBlock(input(blk));
    const before = a.anchor.proposal as Proposal;
    a.store.close();
    clock.advance(5_000);
    const again = node(genesis, V[0], 'a.db');
    expect(again.anchor.proposal?.hash).toBe(before.hash);
    expect(again.anchor.seal()).toBe(again.anchor.proposal);
    for (const key of [V[1], V[2]]) again.anchor.addSeal(sealDsoBlock(before.header, signer(key)));
    expect(again.sealed[0]?.hash).toBe(dsoHeaderHash(before.header));
  });

  it('changes the validator set through a sealed validator-set block', () => {
    const solo = genesisOf([V[0]]);
    const a = node(solo, V[0], 'a.db');
    const change = a.anchor.proposeValidatorSet([V[0].address, V[1].address]) as SealedDsoBlock;
    expect(change.header).toMatchObject({ height: 1, kind: 'validator-set', count: 0 });
    expect(change.receipts).toHaveLength(0);
    expect(a.anchor.validators).toEqual(change.header.newValidators);
    // From now on 2 of 2: the block is proposed, not sealed alone.
    for (const blk of mgmcChain(MGMC_A, 3)) a.anchor.acceptMgmcBlock(input(blk));
    const proposal = a.anchor.proposal as Proposal;
    expect(proposal.header.height).toBe(2);
    expect(() => a.anchor.proposeValidatorSet([V[0].address])).toThrow(/still being sealed/);
    expect(a.anchor.addSeal(sealDsoBlock(proposal.header, signer(V[1])))).toMatchObject({ ok: true, final: true });
    expect(a.anchor.height).toBe(2);
    // The chain reopens with the new set in force.
    a.store.close();
    expect(node(solo, V[0], 'a.db').anchor.validators).toEqual(change.header.newValidators);
  });
});
