import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { DsoAnchor, type SealedDsoBlock } from '../../../agent/dso/anchor.js';
import {
  buildDsoBlock,
  type DsoBlockKind,
  type DsoHeader,
  type DsoParent,
  sealDsoBlock,
} from '../../../agent/dso/chain.js';
import type { DsoGenesis } from '../../../agent/dso/genesis.js';
import { buildReceipts, type DsoEntry, type Receipt } from '../../../agent/dso/receipt.js';
import { toHex, utf8 } from '../../../agent/identity/bytes.js';
import type { Address, KeyPair } from '../../../agent/identity/keys.js';
import { AnchorStore } from '../../../agent/ledger/anchor-store.js';
import { decodeHeader } from '../../../agent/ledger/block.js';
import { Ledger } from '../../../agent/ledger/ledger.js';
import { DsoLightClient, LightClientError, PRUNED_THROUGH_META } from '../../../agent/ledger/light-client.js';
import type { NewRecord } from '../../../agent/ledger/records.js';
import { openAgentDatabase } from '../../../agent/store/agent-db.js';
import { LedgerStore } from '../../../agent/store/ledger-store.js';
import { fakeHash, genesisOf, MGMC_A, MGMC_B, MGMC_CHAIN, signer, T0, TempDir, V } from '../dso/helpers.js';

const HOUR = 3_600_000;

let dir: TempDir;
let clock: ManualClock;
beforeEach(() => {
  dir = new TempDir();
  clock = new ManualClock(T0);
});
afterEach(() => dir.cleanup());

/** An MGMC: its agent database holds the ledger tables and the light client's (the whole schema). */
class Mgmc {
  readonly store: LedgerStore;
  readonly ledger: Ledger;
  readonly anchors: AnchorStore;
  client: DsoLightClient;

  constructor(
    readonly genesis: DsoGenesis,
    readonly key: KeyPair = MGMC_A,
  ) {
    const db = openAgentDatabase(dir.file('ledger.db'));
    this.store = dir.track(new LedgerStore(db));
    this.anchors = new AnchorStore(db);
    this.ledger = Ledger.open({
      store: this.store,
      signer: signer(key),
      clock,
      chainId: MGMC_CHAIN,
      sealEveryRecords: 2,
      sealEverySeconds: 60,
    });
    this.client = DsoLightClient.open({ genesis, anchors: this.anchors, ledger: this.store });
  }

  /** Seals `n` blocks of 2 readings, one per hour. */
  blocks(n: number): void {
    for (let i = 0; i < n; i++) {
      this.ledger.append(readings(2));
      clock.advance(HOUR);
    }
  }

  /** DSO entries for own blocks, as the DSO would list them. */
  entries(heights: readonly number[]): DsoEntry[] {
    return heights.map((h) => {
      const row = this.store.blockAt(h);
      if (row === undefined) throw new Error(`no block ${h}`);
      return { mgmc: this.key.address, mgmcHeight: h, headerHash: toHex(row.hash) };
    });
  }

  /** Own blocks as the DSO receives them. */
  signedBlocks(): { header: object; signature: string; records: Uint8Array }[] {
    return [...this.store.blocks()].map((b) => ({
      header: decodeHeader(b.header),
      signature: toHex(b.signature),
      records: utf8(
        this.store
          .recordRange(b.firstSeq, b.count)
          .map((r) => new TextDecoder().decode(r.body))
          .join('\n'),
      ),
    }));
  }
}

let recordCount = 0;
function readings(n: number): NewRecord[] {
  return Array.from({ length: n }, () => ({
    type: 'reading' as const,
    body: { device: 'meter1', point: 'W', t: T0 + recordCount, value: recordCount++, unit: 'W' },
  }));
}

/** A DSO chain built by hand, so each test chooses who seals what. */
class FakeDso {
  tip: DsoParent;

  constructor(genesis: DsoGenesis) {
    this.tip = genesis;
  }

  block(
    entries: readonly DsoEntry[],
    sealers: readonly KeyPair[],
    kind: DsoBlockKind = 'anchor',
    newValidators?: readonly Address[],
  ): { header: DsoHeader; seals: string[]; receipts: Receipt[] } {
    const header = buildDsoBlock(
      this.tip,
      entries.map((e) => e.headerHash),
      clock.now(),
      kind,
      newValidators,
    );
    const seals = sealers.map((k) => sealDsoBlock(header, signer(k)));
    this.tip = header;
    return { header, seals, receipts: buildReceipts(header, seals, entries) };
  }
}

const wire = (receipt: Receipt): unknown => JSON.parse(JSON.stringify(receipt));

describe('light client with a single-validator DSO', () => {
  const genesis = genesisOf([V[0]]);

  it('anchors own blocks end to end through the DSO anchoring loop', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(3);
    const sealed: SealedDsoBlock[] = [];
    const dso = DsoAnchor.open({
      store: dir.chainStore(),
      genesis,
      clock,
      signer: signer(V[0]),
      sealEveryEntries: 3,
      sealEverySeconds: 30,
      onSealed: (b) => sealed.push(b),
    });
    for (const b of mgmc.signedBlocks()) expect(dso.acceptMgmcBlock(b).status).toBe('accepted');
    const block = sealed[0] as SealedDsoBlock;
    expect(mgmc.client.acceptHeader(block.header, block.seals)).toMatchObject({
      ok: true,
      height: 1,
      duplicate: false,
    });
    expect(mgmc.client.anchoredHeight()).toBe(0);
    for (const receipt of block.receipts) {
      expect(mgmc.client.acceptReceipt(wire(receipt))).toEqual({
        ok: true,
        mgmcHeight: receipt.mgmcHeight,
        dsoHeight: 1,
        duplicate: false,
      });
    }
    expect(mgmc.client.anchoredHeight()).toBe(3);
    expect(mgmc.client.isAnchored(2)).toBe(true);
    expect(mgmc.client.receipt(2)).toEqual(block.receipts[1]);
  });

  it('takes re-delivered headers and receipts as duplicates', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(1);
    const dso = new FakeDso(genesis);
    const b1 = dso.block(mgmc.entries([1]), [V[0]]);
    expect(mgmc.client.acceptHeader(b1.header, b1.seals).ok).toBe(true);
    expect(mgmc.client.acceptHeader(b1.header, b1.seals)).toMatchObject({ ok: true, duplicate: true });
    expect(mgmc.client.acceptReceipt(wire(b1.receipts[0] as Receipt))).toMatchObject({ ok: true, duplicate: false });
    expect(mgmc.client.acceptReceipt(wire(b1.receipts[0] as Receipt))).toMatchObject({ ok: true, duplicate: true });
    expect(mgmc.anchors.anchorCount()).toBe(1);
  });

  it('accepts a receipt whose header is the next one, and asks for missing headers otherwise', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(2);
    const dso = new FakeDso(genesis);
    const b1 = dso.block(mgmc.entries([1]), [V[0]]);
    const b2 = dso.block(mgmc.entries([2]), [V[0]]);
    expect(mgmc.client.acceptReceipt(wire(b2.receipts[0] as Receipt))).toMatchObject({
      ok: false,
      kind: 'unknown-dso-header',
      detail: expect.stringMatching(/fetch the headers/),
    });
    expect(mgmc.client.acceptReceipt(wire(b1.receipts[0] as Receipt))).toMatchObject({ ok: true, dsoHeight: 1 });
    expect(mgmc.client.dsoHeight()).toBe(1);
    expect(mgmc.client.acceptReceipt(wire(b2.receipts[0] as Receipt))).toMatchObject({ ok: true, dsoHeight: 2 });
    expect(mgmc.client.anchoredHeight()).toBe(2);
  });

  it('counts anchored height over the unbroken run from block 1', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(4);
    const dso = new FakeDso(genesis);
    const b1 = dso.block(mgmc.entries([2, 4, 1, 3]), [V[0]]);
    mgmc.client.acceptHeader(b1.header, b1.seals);
    const [r2, r4, r1, r3] = b1.receipts as [Receipt, Receipt, Receipt, Receipt];
    mgmc.client.acceptReceipt(wire(r2));
    mgmc.client.acceptReceipt(wire(r4));
    expect(mgmc.client.anchoredHeight()).toBe(0);
    expect(mgmc.client.isAnchored(4)).toBe(true);
    expect(mgmc.client.isAnchored(3)).toBe(false);
    mgmc.client.acceptReceipt(wire(r1));
    expect(mgmc.client.anchoredHeight()).toBe(2);
    mgmc.client.acceptReceipt(wire(r3));
    expect(mgmc.client.anchoredHeight()).toBe(4);
  });

  it('reports a second header at an accepted height as a conflict', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(1);
    const dso = new FakeDso(genesis);
    const b1 = dso.block(mgmc.entries([1]), [V[0]]);
    mgmc.client.acceptHeader(b1.header, b1.seals);
    const rival = new FakeDso(genesis).block(
      [{ mgmc: MGMC_B.address, mgmcHeight: 1, headerHash: fakeHash(1) }],
      [V[0]],
    );
    expect(mgmc.client.acceptHeader(rival.header, rival.seals)).toMatchObject({
      ok: false,
      kind: 'conflict',
      detail: expect.stringMatching(/two blocks at one height/),
    });
  });

  it('restores its state when reopened and refuses another DSO chain', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(1);
    const dso = new FakeDso(genesis);
    const change = dso.block([], [V[0]], 'validator-set', [V[0].address, V[1].address]);
    const b2 = dso.block(mgmc.entries([1]), [V[0], V[1]]);
    mgmc.client.acceptHeader(change.header, change.seals);
    mgmc.client.acceptReceipt(wire(b2.receipts[0] as Receipt));
    const reopened = DsoLightClient.open({ genesis, anchors: mgmc.anchors, ledger: mgmc.store });
    expect(reopened.dsoHeight()).toBe(2);
    expect(reopened.anchoredHeight()).toBe(1);
    expect(reopened.validators()).toEqual(change.header.newValidators);
    expect(() =>
      DsoLightClient.open({ genesis: genesisOf([V[1]]), anchors: mgmc.anchors, ledger: mgmc.store }),
    ).toThrow(LightClientError);
  });
});

describe('light client with a four-validator DSO', () => {
  const four = [V[0], V[1], V[2], V[3]];
  const genesis = genesisOf(four);

  it('rejects headers with too few seals, with the reason', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(1);
    const b1 = new FakeDso(genesis).block(mgmc.entries([1]), [V[0], V[1]]);
    const result = mgmc.client.acceptHeader(b1.header, b1.seals);
    expect(result).toMatchObject({ ok: false, kind: 'too-few-seals', detail: expect.stringMatching(/at least 3/) });
    expect(mgmc.client.dsoHeight()).toBe(0);
    // The receipt carrying that header is refused for the same reason.
    expect(mgmc.client.acceptReceipt(wire(b1.receipts[0] as Receipt))).toMatchObject({
      ok: false,
      kind: 'too-few-seals',
    });
    expect(mgmc.client.acceptHeader(b1.header, [...b1.seals, sealDsoBlock(b1.header, signer(V[3]))]).ok).toBe(true);
  });

  it('rejects unknown and duplicate seals', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(1);
    const b1 = new FakeDso(genesis).block(mgmc.entries([1]), [V[0], V[1], V[4]]);
    expect(mgmc.client.acceptHeader(b1.header, b1.seals)).toMatchObject({ kind: 'unknown-validator' });
    const twice = [b1.seals[0], b1.seals[1], b1.seals[0]] as string[];
    expect(mgmc.client.acceptHeader(b1.header, twice)).toMatchObject({ kind: 'duplicate-seal' });
  });

  it('follows a validator-set change and rejects blocks the old set seals after it', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(2);
    const dso = new FakeDso(genesis);
    const b1 = dso.block(mgmc.entries([1]), [V[0], V[1], V[2]]);
    const change = dso.block(
      [],
      [V[1], V[2], V[3]],
      'validator-set',
      [V[0], V[1], V[2], V[4]].map((k) => k.address),
    );
    for (const b of [b1, change]) expect(mgmc.client.acceptHeader(b.header, b.seals).ok).toBe(true);
    const byOldSet = new FakeDso(genesis);
    byOldSet.tip = change.header;
    const stale = byOldSet.block(mgmc.entries([2]), [V[1], V[2], V[3]]);
    expect(mgmc.client.acceptHeader(stale.header, stale.seals)).toMatchObject({ ok: false, kind: 'unknown-validator' });
    expect(mgmc.client.acceptReceipt(wire(stale.receipts[0] as Receipt))).toMatchObject({ kind: 'unknown-validator' });
    const b3 = dso.block(mgmc.entries([2]), [V[4], V[0], V[1]]);
    expect(mgmc.client.acceptReceipt(wire(b3.receipts[0] as Receipt))).toMatchObject({ ok: true, dsoHeight: 3 });
    expect(mgmc.client.acceptReceipt(wire(b1.receipts[0] as Receipt))).toMatchObject({ ok: true, dsoHeight: 1 });
    expect(mgmc.client.anchoredHeight()).toBe(2);
  });
});

describe('forged receipts', () => {
  const genesis = genesisOf([V[0], V[1], V[2], V[3]]);

  function setup() {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(3);
    const dso = new FakeDso(genesis);
    const b1 = dso.block(
      [...mgmc.entries([1, 2]), { mgmc: MGMC_B.address, mgmcHeight: 1, headerHash: fakeHash(7) }],
      [V[0], V[1], V[2]],
    );
    expect(mgmc.client.acceptHeader(b1.header, b1.seals).ok).toBe(true);
    return { mgmc, dso, b1, good: b1.receipts[1] as Receipt };
  }

  it('a wrong inclusion path', () => {
    const { mgmc, good } = setup();
    expect(mgmc.client.acceptReceipt({ ...(wire(good) as object), proof: [fakeHash(1), fakeHash(2)] })).toMatchObject({
      kind: 'bad-proof',
    });
    expect(mgmc.client.acceptReceipt({ ...(wire(good) as object), index: 0 })).toMatchObject({ kind: 'bad-proof' });
    expect(mgmc.client.anchoredHeight()).toBe(0);
  });

  it('a header hash that is not own block at that height', () => {
    const { mgmc, good } = setup();
    expect(mgmc.client.acceptReceipt({ ...(wire(good) as object), mgmcHeight: 3 })).toMatchObject({
      kind: 'wrong-header-hash',
    });
    expect(mgmc.client.acceptReceipt({ ...(wire(good) as object), mgmcHeight: 9 })).toMatchObject({
      kind: 'unknown-block',
    });
  });

  it("another MGMC's receipt", () => {
    const { mgmc, b1 } = setup();
    expect(mgmc.client.acceptReceipt(wire(b1.receipts[2] as Receipt))).toMatchObject({ kind: 'not-ours' });
  });

  it('a DSO header other than the accepted one at its height', () => {
    const { mgmc } = setup();
    const fork = new FakeDso(genesis).block(mgmc.entries([2]), [V[0], V[1], V[2]]);
    expect(mgmc.client.acceptReceipt(wire(fork.receipts[0] as Receipt))).toMatchObject({ kind: 'dso-header-mismatch' });
  });

  it('a header with too few seals, and malformed input', () => {
    const { mgmc, dso } = setup();
    const b2 = dso.block(mgmc.entries([3]), [V[0], V[1]]);
    expect(mgmc.client.acceptReceipt(wire(b2.receipts[0] as Receipt))).toMatchObject({ kind: 'too-few-seals' });
    expect(mgmc.client.acceptReceipt({ version: 1 })).toMatchObject({ kind: 'bad-receipt' });
    expect(mgmc.client.acceptReceipt('receipt')).toMatchObject({ kind: 'bad-receipt' });
  });
});

describe('pruning', () => {
  const genesis = genesisOf([V[0]]);

  it('offers the records of anchored blocks older than the retention, in seq ranges', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(4); // blocks 1..4 sealed at T0, T0+1h, T0+2h, T0+3h; records 1..8
    const dso = new FakeDso(genesis);
    const b1 = dso.block(mgmc.entries([1, 2, 3]), [V[0]]);
    for (const r of b1.receipts) mgmc.client.acceptReceipt(wire(r));
    const now = T0 + 10 * HOUR;
    // Anchored 1..3; retention 8.5 h keeps blocks sealed after T0 + 1.5 h.
    expect(mgmc.client.prunableRecords(8.5 * HOUR, now)).toEqual({ fromSeq: 1, toSeq: 4, toHeight: 2 });
    // Block 4 is old enough but not anchored.
    expect(mgmc.client.prunableRecords(HOUR, now)).toEqual({ fromSeq: 1, toSeq: 6, toHeight: 3 });
    expect(mgmc.client.prunableRecords(20 * HOUR, now)).toBeUndefined();
    // After pruning through record 4, the next range starts at 5.
    mgmc.store.setMeta({ [PRUNED_THROUGH_META]: '4' });
    expect(mgmc.client.prunableRecords(HOUR, now)).toEqual({ fromSeq: 5, toSeq: 6, toHeight: 3 });
    expect(mgmc.client.prunableRecords(8.5 * HOUR, now)).toBeUndefined();
  });

  it('offers nothing before any receipt', () => {
    const mgmc = new Mgmc(genesis);
    mgmc.blocks(2);
    expect(mgmc.client.prunableRecords(0, T0 + 100 * HOUR)).toBeUndefined();
  });
});
