import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AcceptedBlockRow, DsoChainStore } from '../../../agent/dso/chain-store.js';
import { fromHex, toHex, utf8 } from '../../../agent/identity/bytes.js';
import { fakeHash, MGMC_A, MGMC_B, T0, TempDir } from './helpers.js';

let dir: TempDir;
let store: DsoChainStore;
beforeEach(() => {
  dir = new TempDir();
  store = dir.chainStore();
});
afterEach(() => dir.cleanup());

function accepted(mgmc: string, height: number, n = height): AcceptedBlockRow {
  return {
    mgmc,
    height,
    hash: fromHex(fakeHash(n)),
    header: utf8(`{"height":${height}}`),
    signature: new Uint8Array(65).fill(n % 256),
    records: utf8(`records of ${height}`),
    received: T0 + height,
  };
}

const block = (height: number, kind = 'anchor') => ({
  height,
  hash: fromHex(fakeHash(10_000 + height)),
  kind,
  header: utf8(`{"dso":${height}}`),
  seals: new Uint8Array(65),
});

describe('DSO chain store', () => {
  it('numbers its own schema from 1', () => {
    expect(store.db.pragma('user_version', { simple: true })).toBe(1);
  });

  it('stores an accepted MGMC block once and tells duplicates from conflicts', () => {
    expect(store.insertAccepted(accepted(MGMC_A.address, 1))).toEqual({ status: 'inserted' });
    expect(store.insertAccepted(accepted(MGMC_A.address, 1))).toEqual({ status: 'duplicate' });
    const other = store.insertAccepted(accepted(MGMC_A.address, 1, 99));
    expect(other.status).toBe('conflict');
    expect(other.status === 'conflict' && toHex(other.storedHash)).toBe(fakeHash(1));
    // Same height of another MGMC is another block.
    expect(store.insertAccepted(accepted(MGMC_B.address, 1))).toEqual({ status: 'inserted' });
    expect(store.acceptedBlock(MGMC_A.address, 1)).toMatchObject({ height: 1, received: T0 + 1 });
    expect(new TextDecoder().decode(store.acceptedBlock(MGMC_A.address, 1)?.records)).toBe('records of 1');
  });

  it('keeps records or a reference to them, never neither', () => {
    const { records: _, ...noRecords } = accepted(MGMC_A.address, 2);
    expect(() => store.insertAccepted(noRecords)).toThrow(/needs its records or a reference/);
    expect(store.insertAccepted({ ...noRecords, recordsRef: 'blob://a/2' }).status).toBe('inserted');
    expect(store.acceptedBlock(MGMC_A.address, 2)?.recordsRef).toBe('blob://a/2');
  });

  it('lists pending entries in arrival order until a DSO block holds them', () => {
    store.insertAccepted(accepted(MGMC_B.address, 1, 21));
    store.insertAccepted(accepted(MGMC_A.address, 1, 11));
    store.insertAccepted(accepted(MGMC_A.address, 2, 12));
    expect(store.pendingCount()).toBe(3);
    expect(store.pendingEntries(2).map((p) => [p.mgmc, p.mgmcHeight])).toEqual([
      [MGMC_B.address, 1],
      [MGMC_A.address, 1],
    ]);
    store.insertDsoBlock(block(1), [
      { height: 1, index: 0, mgmc: MGMC_B.address, mgmcHeight: 1, headerHash: fromHex(fakeHash(21)) },
      { height: 1, index: 1, mgmc: MGMC_A.address, mgmcHeight: 1, headerHash: fromHex(fakeHash(11)) },
    ]);
    expect(store.pendingCount()).toBe(1);
    expect(store.pendingEntries().map((p) => p.mgmcHeight)).toEqual([2]);
    const anchor = store.anchorOf(MGMC_A.address, 1);
    expect(anchor).toMatchObject({ height: 1, index: 1, mgmc: MGMC_A.address, mgmcHeight: 1 });
    expect(anchor && toHex(anchor.headerHash)).toBe(fakeHash(11));
    expect(store.anchorOf(MGMC_A.address, 2)).toBeUndefined();
    expect(store.entriesOf(1).map((e) => e.index)).toEqual([0, 1]);
  });

  it('anchors an MGMC block once and writes a DSO block all or nothing', () => {
    const entry = { height: 1, index: 0, mgmc: MGMC_A.address, mgmcHeight: 1, headerHash: fromHex(fakeHash(1)) };
    store.insertDsoBlock(block(1), [entry]);
    expect(() => store.insertDsoBlock(block(2), [{ ...entry, height: 2 }])).toThrow(/UNIQUE/);
    expect(store.blockAt(2)).toBeUndefined();
    expect(() => store.insertDsoBlock(block(1), [])).toThrow(/UNIQUE/);
    expect(store.lastBlock()?.height).toBe(1);
  });

  it('finds the newest block of a kind and iterates blocks in order', () => {
    store.insertDsoBlock(block(1), []);
    store.insertDsoBlock(block(2, 'validator-set'), []);
    store.insertDsoBlock(block(3), []);
    expect(store.lastBlockOfKind('validator-set')?.height).toBe(2);
    expect(store.lastBlockOfKind('anchor')?.height).toBe(3);
    expect([...store.blocks(2)].map((b) => b.height)).toEqual([2, 3]);
  });

  it('locks a height to the one header this validator sealed there', () => {
    const seal = { height: 5, hash: fromHex(fakeHash(5)), header: utf8('{}'), entries: utf8('[]') };
    expect(store.recordOwnSeal(seal)).toBe('recorded');
    expect(store.recordOwnSeal(seal)).toBe('same');
    expect(store.recordOwnSeal({ ...seal, hash: fromHex(fakeHash(6)) })).toBe('conflict');
    store.pruneOwnSeals(5);
    expect(store.ownSealAt(5)).toBeDefined();
    store.pruneOwnSeals(6);
    expect(store.ownSealAt(5)).toBeUndefined();
  });

  it('keeps everything across a reopen', () => {
    store.insertAccepted(accepted(MGMC_A.address, 1));
    store.insertDsoBlock(block(1), []);
    store.setMeta('genesisHash', fakeHash(0));
    store.close();
    const again = dir.chainStore();
    expect(again.pendingCount()).toBe(1);
    expect(again.lastBlock()?.height).toBe(1);
    expect(again.getMeta('genesisHash')).toBe(fakeHash(0));
  });
});
