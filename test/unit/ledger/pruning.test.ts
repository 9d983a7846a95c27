/**
 * Pruning record bodies after anchoring: what is dropped, what is kept, and that `mgmc ledger verify` still checks
 * the whole chain and reports the pruned ranges and the anchored blocks.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import type { Io } from '../../../agent/commands/io.js';
import { ledgerExport, ledgerProve, ledgerShow, ledgerVerify } from '../../../agent/commands/ledger.js';
import { buildDsoBlock, sealDsoBlock } from '../../../agent/dso/chain.js';
import { buildReceipts } from '../../../agent/dso/receipt.js';
import { toHex } from '../../../agent/identity/bytes.js';
import { AnchorStore } from '../../../agent/ledger/anchor-store.js';
import { Ledger } from '../../../agent/ledger/ledger.js';
import { DsoLightClient, PRUNED_THROUGH_META } from '../../../agent/ledger/light-client.js';
import { anchorReport, ledgerSource, PruneError, pruneRecords } from '../../../agent/ledger/pruning.js';
import { storeSource } from '../../../agent/ledger/sources.js';
import { verifyChain } from '../../../agent/ledger/verify.js';
import { AGENT_DB_MIGRATIONS, AGENT_DB_VERSION, openAgentDatabase } from '../../../agent/store/agent-db.js';
import { openDatabase, StoreError } from '../../../agent/store/database.js';
import { LEDGER_MIGRATIONS, LedgerStore } from '../../../agent/store/ledger-store.js';
import { genesisOf, MGMC_A, signer, T0, TempDir, V } from '../dso/helpers.js';

const HOUR = 3_600_000;
const CHAIN = 4242;
const genesis = genesisOf([V[0]]);

let dir: TempDir;
let clock: ManualClock;
beforeEach(() => {
  dir = new TempDir();
  clock = new ManualClock(T0);
});
afterEach(() => dir.cleanup());

/** A ledger of `blocks` blocks of 3 readings, one per hour, the first `anchored` of them anchored by the DSO. */
function anchoredLedger(blocks: number, anchored: number) {
  const path = dir.file('agent.db');
  const store = dir.track(new LedgerStore(openAgentDatabase(path)));
  const ledger = Ledger.open({
    store,
    signer: signer(MGMC_A),
    clock,
    chainId: CHAIN,
    sealEveryRecords: 3,
    sealEverySeconds: 60,
  });
  for (let b = 0; b < blocks; b++) {
    ledger.append(
      Array.from({ length: 3 }, (_, i) => ({
        type: 'reading' as const,
        body: { device: 'pv1', point: 'W', t: clock.now(), value: b * 10 + i, unit: 'W' },
      })),
    );
    clock.advance(HOUR);
  }
  const anchors = new AnchorStore(store.db);
  const client = DsoLightClient.open({ genesis, anchors, ledger: store });
  const entries = Array.from({ length: anchored }, (_, i) => ({
    mgmc: MGMC_A.address,
    mgmcHeight: i + 1,
    headerHash: toHex((store.blockAt(i + 1) as { hash: Uint8Array }).hash),
  }));
  if (entries.length > 0) {
    const header = buildDsoBlock(
      genesis,
      entries.map((e) => e.headerHash),
      clock.now(),
    );
    const seals = [sealDsoBlock(header, signer(V[0]))];
    for (const receipt of buildReceipts(header, seals, entries)) {
      expect(client.acceptReceipt(JSON.parse(JSON.stringify(receipt)))).toMatchObject({ ok: true });
    }
  }
  return { path, store, ledger, anchors, client };
}

function captureIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    env: {},
    stdin: process.stdin,
    out: (t) => stdout.push(t),
    err: (t) => stderr.push(t),
    stdout,
    stderr,
  };
}

describe('AGENT_DB_MIGRATIONS', () => {
  it('is one gap-free list, and a database opened with it is refused by a shorter list', () => {
    const versions = AGENT_DB_MIGRATIONS.map((m) => m.version);
    expect(versions).toEqual(Array.from({ length: AGENT_DB_VERSION }, (_, i) => i + 1));
    const path = dir.file('full.db');
    openAgentDatabase(path).close();
    expect(() => openDatabase(path, LEDGER_MIGRATIONS)).toThrow(StoreError);
    // A database made by an older agent (the ledger only) is brought up to the whole schema.
    const old = dir.file('old.db');
    openDatabase(old, LEDGER_MIGRATIONS).close();
    const db = openAgentDatabase(old);
    expect(db.pragma('user_version', { simple: true })).toBe(AGENT_DB_VERSION);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
    expect(tables).toEqual(expect.arrayContaining(['records', 'outbox', 'dso_headers', 'anchors', 'shipped_blocks']));
    db.close();
  });
});

describe('pruneRecords', () => {
  it('drops the bodies of the prunable blocks, keeps their leaves, and verify still checks every root', () => {
    const { store, client } = anchoredLedger(5, 3);
    const range = client.prunableRecords(2.5 * HOUR, clock.now());
    expect(range).toEqual({ fromSeq: 1, toSeq: 9, toHeight: 3 });
    const result = pruneRecords(store, range as NonNullable<typeof range>, { batchRecords: 4 });
    expect(result).toEqual({ records: 9, throughSeq: 9, throughHeight: 3 });
    expect(store.getMeta(PRUNED_THROUGH_META)).toBe('9');
    const rows = store.recordRangeWithLeaves(8, 3);
    expect(rows.map((r) => [r.seq, r.body.length, r.leaf?.length])).toEqual([
      [8, 0, 32],
      [9, 0, 32],
      [10, expect.any(Number), undefined],
    ]);
    expect(rows[2]?.body.length).toBeGreaterThan(0);
    const report = verifyChain(ledgerSource(store), { strict: true });
    expect(report).toMatchObject({
      ok: true,
      blocks: 5,
      records: 15,
      pruned: [{ fromSeq: 1, toSeq: 9, fromHeight: 1, toHeight: 3 }],
    });
    // The plain store source (no leaves) sees pruned records as changed: pruned databases need ledgerSource.
    expect(verifyChain(storeSource(store)).problem).toMatchObject({ height: 1, kind: 'changed-record' });
    expect(client.prunableRecords(2.5 * HOUR, clock.now())).toBeUndefined();
  });

  it('prunes a large range over several calls when told to stop after some records', () => {
    const { store, client } = anchoredLedger(5, 5);
    const next = () => client.prunableRecords(0, clock.now()) as NonNullable<ReturnType<typeof client.prunableRecords>>;
    expect(pruneRecords(store, next(), { maxRecords: 5 })).toEqual({ records: 6, throughSeq: 6, throughHeight: 2 });
    expect(pruneRecords(store, next(), { maxRecords: 5 })).toEqual({ records: 6, throughSeq: 12, throughHeight: 4 });
    expect(pruneRecords(store, next(), { maxRecords: 5 })).toEqual({ records: 3, throughSeq: 15, throughHeight: 5 });
    expect(client.prunableRecords(0, clock.now())).toBeUndefined();
    expect(verifyChain(ledgerSource(store)).pruned).toEqual([{ fromSeq: 1, toSeq: 15, fromHeight: 1, toHeight: 5 }]);
  });

  it('refuses a range that does not follow what was pruned, and a block whose records no longer match its root', () => {
    const { store, client } = anchoredLedger(4, 4);
    expect(() => pruneRecords(store, { fromSeq: 4, toSeq: 9, toHeight: 3 })).toThrow(PruneError);
    const body = Buffer.from((store.recordRange(5, 1)[0] as { body: Uint8Array }).body).toString('utf8');
    store.db.prepare('UPDATE records SET body = ? WHERE seq = 5').run(Buffer.from(body.replace('"pv1"', '"pv2"')));
    const range = client.prunableRecords(0, clock.now()) as NonNullable<ReturnType<typeof client.prunableRecords>>;
    expect(() => pruneRecords(store, range)).toThrow(/block 2 do not match its signed root/);
    // Block 1 went before the damaged block 2 was found; nothing of block 2 or later was pruned.
    expect(store.getMeta(PRUNED_THROUGH_META)).toBe('3');
    expect(store.recordRange(4, 1)[0]?.body.length).toBeGreaterThan(0);
  });
});

describe('mgmc ledger verify on a pruned, anchored ledger', () => {
  it('prints the pruned range, the anchored height and the blocks with receipts', async () => {
    const { path, store, client } = anchoredLedger(5, 3);
    pruneRecords(
      store,
      client.prunableRecords(2.5 * HOUR, clock.now()) as NonNullable<ReturnType<typeof client.prunableRecords>>,
    );
    store.close();
    const io = captureIo();
    expect(await ledgerVerify(io, { db: path, json: false })).toBe(0);
    const text = io.stdout.join('\n');
    expect(text).toContain('ok — 5 block(s), 15 record(s) verified');
    expect(text).toContain('pruned: record bodies 1-9 (blocks 1-3), verified by their leaf hashes');
    expect(text).toContain('anchored through block 3 (DSO height 1); 3 block(s) with receipts: 1-3');
    const json = captureIo();
    expect(await ledgerVerify(json, { db: path, json: true })).toBe(0);
    expect(JSON.parse(json.stdout[0] as string)).toMatchObject({
      ok: true,
      pruned: [{ fromSeq: 1, toSeq: 9 }],
      anchors: { anchoredHeight: 3, receipts: 3, ranges: [{ first: 1, last: 3 }], problems: [] },
    });
  });

  it('says why a pruned record cannot be shown, proved or exported', async () => {
    const { path, store, client } = anchoredLedger(3, 2);
    pruneRecords(
      store,
      client.prunableRecords(0, clock.now()) as NonNullable<ReturnType<typeof client.prunableRecords>>,
    );
    store.close();
    const io = captureIo();
    expect(() => ledgerShow(io, { db: path, json: true, record: 2, tail: 5 })).toThrow(
      /record 2 was pruned after the DSO anchored block 1/,
    );
    expect(ledgerShow(io, { db: path, json: true, record: 7, tail: 5 })).toBe(0);
    await expect(ledgerProve(io, { db: path, record: 4 })).rejects.toThrow(/pruned/);
    await expect(ledgerExport(io, { db: path, format: 'jsonl', out: dir.file('x.jsonl') })).rejects.toThrow(
      /records 1..6 of this ledger were pruned/,
    );
  });

  it('fails when records of a block without a receipt were pruned, or a stored receipt does not hold', async () => {
    const { path, store, client } = anchoredLedger(3, 3);
    pruneRecords(
      store,
      client.prunableRecords(0, clock.now()) as NonNullable<ReturnType<typeof client.prunableRecords>>,
    );
    store.db.prepare('DELETE FROM anchors WHERE mgmc_height = 3').run();
    store.close();
    const io = captureIo();
    expect(await ledgerVerify(io, { db: path, json: false })).toBe(1);
    expect(io.stderr.join('\n')).toContain('records of block 3 were pruned, but the block has no DSO receipt');
  });

  it('reports a receipt that does not prove its block', () => {
    const { store, anchors } = anchoredLedger(2, 2);
    const row = anchors.anchorAt(2) as { receipt: Uint8Array };
    const receipt = JSON.parse(new TextDecoder().decode(row.receipt));
    store.db
      .prepare('UPDATE anchors SET receipt = ? WHERE mgmc_height = 2')
      .run(Buffer.from(JSON.stringify({ ...receipt, index: 0 })));
    expect(anchorReport(store, anchors)).toMatchObject({
      anchoredHeight: 2,
      receipts: 2,
      problems: [{ height: 2, detail: expect.stringMatching(/inclusion path/) }],
    });
  });
});
