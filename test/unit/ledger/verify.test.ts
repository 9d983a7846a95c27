/**
 * Tampering with a stored chain, through SQL, in the database file's bytes and in a JSONL export: verification must
 * name the first bad block and what is wrong with it.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signDigest } from '../../../agent/identity/signing.js';
import {
  type BlockHeader,
  decodeHeader,
  encodeHeader,
  headerHash,
  signerFromPrivateKey,
} from '../../../agent/ledger/block.js';
import { openLedgerStore, openWritableLedger } from '../../../agent/ledger/open.js';
import { exportJsonl, jsonlSource, storeSource } from '../../../agent/ledger/sources.js';
import { type VerifyOptions, type VerifyReport, verifyChain } from '../../../agent/ledger/verify.js';
import { AGENT_DB_MIGRATIONS } from '../../../agent/store/agent-db.js';
import { openDatabase, type SqliteDatabase } from '../../../agent/store/database.js';

/** Test keys: they sign nothing outside the temporary databases of this file. */
const PRODUCER = keyPairFromPrivateKey(fromHex(`0x${'a1'.repeat(32)}`));
const OTHER = keyPairFromPrivateKey(fromHex(`0x${'b2'.repeat(32)}`));
const CHAIN_ID = 31;
const PER_BLOCK = 100;
const SEALED = 2000;
const UNSEALED = 7;
const BLOCKS = SEALED / PER_BLOCK;
/** The record most tests tamper with, and the block it is in (records 1201..1300). */
const SEQ = 1234;
const HEIGHT = 13;

let dir: string;
let template: string;
let exported: string;
let copies = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mgmc-verify-'));
  template = join(dir, 'template.db');
  const { store, ledger } = openWritableLedger({
    path: template,
    signer: signerFromPrivateKey(PRODUCER.privateKey, PRODUCER.address),
    clock: new ManualClock(Date.UTC(2025, 5, 1)),
    chainId: CHAIN_ID,
    sealEveryRecords: PER_BLOCK,
    sealEverySeconds: 10,
  });
  const devices = ['pv1', 'bat1', 'meter1'];
  for (let start = 0; start < SEALED + UNSEALED; start += 250) {
    const count = Math.min(250, SEALED + UNSEALED - start);
    ledger.append(
      Array.from({ length: count }, (_, i) => ({
        type: 'reading' as const,
        body: {
          device: devices[(start + i) % 3] as string,
          point: 'W',
          t: 1_750_000_000_000 + (start + i) * 1000,
          value: 100_000 + start + i,
          unit: 'W',
        },
      })),
    );
  }
  expect(ledger.sealedHeight).toBe(BLOCKS);
  expect(ledger.unsealedCount).toBe(UNSEALED);
  exported = join(dir, 'template.jsonl');
  await exportJsonl(store, exported);
  // Closing the only connection checkpoints the WAL: every byte is in the main file from here on.
  store.close();
  expect(existsSync(`${template}-wal`)).toBe(false);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh copy of the good chain. */
function copy(): string {
  const path = join(dir, `copy-${++copies}.db`);
  copyFileSync(template, path);
  return path;
}

/** Opens a copy the way the brief says tampering happens: a read-write connection and SQL. */
function tamper(path: string, edit: (db: SqliteDatabase) => void): void {
  const db = openDatabase(path, AGENT_DB_MIGRATIONS);
  try {
    edit(db);
  } finally {
    db.close();
  }
}

function verifyDb(path: string, options: VerifyOptions = {}): VerifyReport {
  const store = openLedgerStore(path, { readonly: true });
  try {
    return verifyChain(storeSource(store), options);
  } finally {
    store.close();
  }
}

function body(db: SqliteDatabase, seq: number): Buffer {
  return (db.prepare('SELECT body FROM records WHERE seq = ?').get(seq) as { body: Buffer }).body;
}

function setBody(db: SqliteDatabase, seq: number, bytes: Uint8Array): void {
  db.prepare('UPDATE records SET body = ? WHERE seq = ?').run(bytes, seq);
}

function header(db: SqliteDatabase, height: number): BlockHeader {
  return decodeHeader(
    (db.prepare('SELECT header FROM blocks WHERE height = ?').get(height) as { header: Buffer }).header,
  );
}

function blockHash(db: SqliteDatabase, height: number): string {
  return toHex((db.prepare('SELECT hash FROM blocks WHERE height = ?').get(height) as { hash: Buffer }).hash);
}

/** Flips one bit of the first letter of the "unit" value: still a valid record, but not the one that was signed. */
function changeOneByte(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  const at = out.indexOf('"unit":"') + '"unit":"'.length;
  out[at] = (out[at] as number) ^ 0x01;
  return out;
}

/** The chain up to the bad block verified; nothing after it counts. */
function expectFailure(report: VerifyReport, height: number, kind: string): void {
  expect(report.ok).toBe(false);
  expect(report.problem?.kind).toBe(kind);
  expect(report.problem?.height).toBe(height);
  expect(report.blocks).toBe(height - 1);
  expect(report.records).toBe((height - 1) * PER_BLOCK);
}

describe('verifyChain on the database', () => {
  it('accepts the good chain, strict or not', () => {
    for (const strict of [false, true]) {
      const report = verifyDb(template, { strict });
      expect(report).toMatchObject({
        ok: true,
        chainId: CHAIN_ID,
        producer: PRODUCER.address,
        blocks: BLOCKS,
        records: SEALED,
        unsealed: UNSEALED,
      });
      expect(report.problem).toBeUndefined();
      expect(report.headHash).toMatch(/^0x[0-9a-f]{64}$/);
    }
  });

  it('accepts the expected chain id and producer, and refuses others', () => {
    expect(verifyDb(template, { chainId: CHAIN_ID, producer: PRODUCER.address }).ok).toBe(true);
    expectFailure(verifyDb(template, { chainId: CHAIN_ID + 1 }), 1, 'wrong-chain');
    expectFailure(verifyDb(template, { producer: OTHER.address }), 1, 'wrong-producer');
  });

  it('finds one changed byte of a record body: changed-record at its block', () => {
    const path = copy();
    tamper(path, (db) => setBody(db, SEQ, changeOneByte(body(db, SEQ))));
    const report = verifyDb(path);
    expectFailure(report, HEIGHT, 'changed-record');
    expect(report.problem?.detail).toContain('do not match the signed Merkle root');
    expect(verifyDb(path, { strict: true }).problem).toMatchObject({ height: HEIGHT, kind: 'changed-record' });
  });

  it('finds two record bodies swapped within a block: reordered-record naming the record', () => {
    const path = copy();
    tamper(path, (db) => {
      const a = body(db, SEQ);
      const b = body(db, SEQ + 6);
      setBody(db, SEQ, b);
      setBody(db, SEQ + 6, a);
    });
    const report = verifyDb(path);
    // The Merkle root is checked first, so a swap is reported as changed-record; the detail names the reorder.
    expectFailure(report, HEIGHT, 'reordered-record');
    expect(report.problem?.seq).toBe(SEQ);
    expect(report.problem?.detail).toContain(`record ${SEQ} holds record ${SEQ + 6}`);
  });

  it('finds a deleted record row: missing-record with its seq', () => {
    const path = copy();
    tamper(path, (db) => db.prepare('DELETE FROM records WHERE seq = ?').run(SEQ));
    const report = verifyDb(path);
    expectFailure(report, HEIGHT, 'missing-record');
    expect(report.problem?.seq).toBe(SEQ);
    expect(report.problem?.detail).toBe(`record ${SEQ} is missing (found ${SEQ + 1} in its place)`);
  });

  it("finds the deletion of a block's last record", () => {
    const path = copy();
    const last = HEIGHT * PER_BLOCK;
    tamper(path, (db) => db.prepare('DELETE FROM records WHERE seq = ?').run(last));
    const report = verifyDb(path);
    expectFailure(report, HEIGHT, 'missing-record');
    expect(report.problem?.seq).toBe(last);
    expect(report.problem?.detail).toContain(`found ${PER_BLOCK - 1}: record ${last} is missing`);
  });

  it('finds a deleted block row in the middle: missing-block, reported at the next block found', () => {
    const path = copy();
    tamper(path, (db) => db.prepare('DELETE FROM blocks WHERE height = 7').run());
    const report = verifyDb(path);
    // problem.height is the block where verification stopped (8); the detail names the missing one.
    expect(report).toMatchObject({ ok: false, blocks: 6, records: 600 });
    expect(report.problem).toMatchObject({ height: 8, kind: 'missing-block' });
    expect(report.problem?.detail).toBe('block 7 is missing (next block found is 8)');
  });

  it('names a range of deleted blocks', () => {
    const path = copy();
    tamper(path, (db) => db.prepare('DELETE FROM blocks WHERE height IN (7, 8, 9)').run());
    const report = verifyDb(path);
    expect(report.problem).toMatchObject({ height: 10, kind: 'missing-block' });
    expect(report.problem?.detail).toBe('block 7..9 is missing (next block found is 10)');
  });

  it('cannot see a deleted last block by itself, but the head hash changes', () => {
    const path = copy();
    tamper(path, (db) => db.prepare('DELETE FROM blocks WHERE height = ?').run(BLOCKS));
    const report = verifyDb(path);
    // Truncation is only visible against a head hash known from elsewhere (a DSO, an earlier verify).
    expect(report).toMatchObject({ ok: true, blocks: BLOCKS - 1, unsealed: PER_BLOCK + UNSEALED });
    expect(report.headHash).not.toBe(verifyDb(template).headHash);
  });

  it('finds a header whose prev was changed: bad-header, since the stored hash no longer matches', () => {
    const path = copy();
    tamper(path, (db) => {
      const h = { ...header(db, 5), prev: blockHash(db, 3) };
      db.prepare('UPDATE blocks SET header = ? WHERE height = 5').run(encodeHeader(h));
    });
    const report = verifyDb(path);
    expectFailure(report, 5, 'bad-header');
    expect(report.problem?.detail).toContain('stored header hash does not match the header');
  });

  it('finds a header whose prev and hash were both changed: broken-link', () => {
    const path = copy();
    let fake = '';
    tamper(path, (db) => {
      const h = { ...header(db, 5), prev: blockHash(db, 3) };
      fake = h.prev;
      db.prepare('UPDATE blocks SET header = ?, hash = ? WHERE height = 5').run(encodeHeader(h), headerHash(h));
    });
    const report = verifyDb(path);
    expectFailure(report, 5, 'broken-link');
    expect(report.problem?.detail).toContain(`prev is ${fake} but block 4 has hash`);
  });

  it('finds a signature replaced by a valid signature of another key: bad-signature', () => {
    const path = copy();
    tamper(path, (db) => {
      const h = header(db, 5);
      db.prepare('UPDATE blocks SET signature = ? WHERE height = 5').run(signDigest(headerHash(h), OTHER.privateKey));
    });
    const report = verifyDb(path);
    expectFailure(report, 5, 'bad-signature');
    expect(report.problem?.detail).toContain(PRODUCER.address);
  });

  it.each([
    ['in r', 10],
    ['in s', 40],
    ['in v', 64],
  ])('finds one flipped byte of a signature (%s): bad-signature', (_where, index) => {
    const path = copy();
    tamper(path, (db) => {
      const sig = Buffer.from(
        (db.prepare('SELECT signature FROM blocks WHERE height = 5').get() as { signature: Buffer }).signature,
      );
      sig[index] = (sig[index] as number) ^ 0xff;
      db.prepare('UPDATE blocks SET signature = ? WHERE height = 5').run(sig);
    });
    expectFailure(verifyDb(path), 5, 'bad-signature');
  });

  it('finds a block re-signed, consistently, by another producer: wrong-producer', () => {
    const path = copy();
    tamper(path, (db) => {
      const h = { ...header(db, 5), producer: OTHER.address };
      const digest = headerHash(h);
      db.prepare('UPDATE blocks SET header = ?, hash = ?, signature = ? WHERE height = 5').run(
        encodeHeader(h),
        digest,
        signDigest(digest, OTHER.privateKey),
      );
    });
    expectFailure(verifyDb(path), 5, 'wrong-producer');
  });

  it('finds a block filed under another first seq: bad-header', () => {
    const path = copy();
    tamper(path, (db) => db.prepare('UPDATE blocks SET first_seq = first_seq + 1 WHERE height = 5').run());
    const report = verifyDb(path);
    expectFailure(report, 5, 'bad-header');
    expect(report.problem?.detail).toContain('filed as starting at record 402');
  });

  it('finds one byte changed in the database file itself, by block height', () => {
    const path = copy();
    let original = Buffer.alloc(0);
    tamper(path, (db) => {
      original = Buffer.from(body(db, SEQ));
    });
    const file = readFileSync(path);
    const at = file.indexOf(original);
    expect(at).toBeGreaterThan(0);
    expect(file.lastIndexOf(original)).toBe(at);
    const unit = file.indexOf('"unit":"', at) + '"unit":"'.length;
    expect(unit).toBeLessThan(at + original.length);
    file[unit] = (file[unit] as number) ^ 0x01;
    writeFileSync(path, file);

    const report = verifyDb(path);
    expectFailure(report, HEIGHT, 'changed-record');
  });
});

describe('verifyChain on a JSONL export', () => {
  const lines = (): string[] => readFileSync(exported, 'utf8').trimEnd().split('\n');
  const recordLine = (all: readonly string[], seq: number): number =>
    all.findIndex((line) => line.startsWith('{"kind":"record"') && JSON.parse(line).record.seq === seq);
  const blockLine = (all: readonly string[], height: number): number =>
    all.findIndex((line) => {
      const value = JSON.parse(line);
      return value.kind === 'block' && value.height === height;
    });

  function verifyLines(all: readonly string[], options: VerifyOptions = {}): VerifyReport {
    const path = join(dir, `export-${++copies}.jsonl`);
    writeFileSync(path, `${all.join('\n')}\n`);
    return verifyChain(jsonlSource(path), options);
  }

  it('verifies the export, strict or not, with the same head as the database', () => {
    const head = verifyDb(template).headHash;
    for (const strict of [false, true]) {
      const report = verifyChain(jsonlSource(exported), { strict });
      expect(report).toMatchObject({
        ok: true,
        chainId: CHAIN_ID,
        producer: PRODUCER.address,
        blocks: BLOCKS,
        records: SEALED,
        headHash: head,
      });
    }
    expect(jsonlSource(exported).meta).toMatchObject({
      kind: 'mgmc-ledger-export',
      version: 1,
      chainId: CHAIN_ID,
      blocks: BLOCKS,
      records: SEALED + UNSEALED,
    });
  });

  // The record lines after the last block are the unsealed records; they must be counted, not swallowed.
  it('counts the unsealed records at the end of the export', () => {
    expect(verifyChain(jsonlSource(exported)).unsealed).toBe(UNSEALED);
  });

  it('finds a changed value in a record line: changed-record', () => {
    const all = lines();
    const i = recordLine(all, SEQ);
    const value = JSON.parse(all[i] as string);
    value.record.body.value += 1;
    all[i] = JSON.stringify(value);
    expectFailure(verifyLines(all), HEIGHT, 'changed-record');
  });

  it('finds two record lines swapped: reordered-record naming the record', () => {
    const all = lines();
    const i = recordLine(all, SEQ);
    const j = recordLine(all, SEQ + 1);
    [all[i], all[j]] = [all[j] as string, all[i] as string];
    const report = verifyLines(all);
    expectFailure(report, HEIGHT, 'reordered-record');
    expect(report.problem?.seq).toBe(SEQ);
    expect(report.problem?.detail).toContain(`record ${SEQ} holds record ${SEQ + 1}`);
  });

  it('finds a deleted block line: missing-block at the next block', () => {
    const all = lines();
    all.splice(blockLine(all, 7), 1);
    const report = verifyLines(all);
    expect(report).toMatchObject({ ok: false, blocks: 6, records: 600 });
    expect(report.problem).toMatchObject({ height: 8, kind: 'missing-block' });
    expect(report.problem?.detail).toBe('block 7 is missing (next block found is 8)');
  });

  it('finds a deleted record line: missing-record in its block', () => {
    const all = lines();
    all.splice(recordLine(all, SEQ), 1);
    const report = verifyLines(all);
    expectFailure(report, HEIGHT, 'missing-record');
    // Records are filed by position, so the rest shift up; the first record carrying a later seq names the gap.
    expect(report.problem?.seq).toBe(SEQ);
  });

  it('finds a changed signature and a changed hash in a block line', () => {
    const all = lines();
    const i = blockLine(all, 5);
    const block = JSON.parse(all[i] as string);
    const withSig = [...all];
    withSig[i] = JSON.stringify({ ...block, signature: toHex(signDigest(fromHex(block.hash), OTHER.privateKey)) });
    expectFailure(verifyLines(withSig), 5, 'bad-signature');
    const withHash = [...all];
    withHash[i] = JSON.stringify({ ...block, hash: `0x${'00'.repeat(32)}` });
    expectFailure(verifyLines(withHash), 5, 'bad-header');
  });
});
