import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signDigest } from '../../../agent/identity/signing.js';
import { decodeHeader, headerHash, type Signer, signerFromPrivateKey, ZERO_HASH } from '../../../agent/ledger/block.js';
import { type Ledger, LedgerError } from '../../../agent/ledger/ledger.js';
import { METER_BATCH_FORMAT_V1, meterBatchDigest } from '../../../agent/ledger/meter-batch.js';
import { openLedgerStore, openWritableLedger } from '../../../agent/ledger/open.js';
import { decodeRecord, type NewRecord, RecordError } from '../../../agent/ledger/records.js';
import { storeSource } from '../../../agent/ledger/sources.js';
import { verifyChain } from '../../../agent/ledger/verify.js';
import type { LedgerStore } from '../../../agent/store/ledger-store.js';

/** Test keys: they sign nothing outside the temporary databases of this file. */
const PRODUCER = keyPairFromPrivateKey(fromHex(`0x${'11'.repeat(32)}`));
const OTHER = keyPairFromPrivateKey(fromHex(`0x${'22'.repeat(32)}`));
const METER = keyPairFromPrivateKey(fromHex(`0x${'33'.repeat(32)}`));
const CHAIN_ID = 4242;
const START = Date.UTC(2025, 0, 1);

const signer = (pair: KeyPair): Signer => signerFromPrivateKey(pair.privateKey, pair.address);

function readings(count: number, from = 0): NewRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    type: 'reading' as const,
    body: { device: 'meter1', point: 'W', t: START + (from + i) * 1000, value: 1000 + from + i, unit: 'W' },
  }));
}

function meterBatch(meter: KeyPair, signedBy: KeyPair, payloadText: string): NewRecord {
  const payload = new TextEncoder().encode(payloadText);
  return {
    type: 'meter-batch',
    body: {
      meter: meter.address,
      format: METER_BATCH_FORMAT_V1,
      payload: toHex(payload),
      sig: toHex(signDigest(meterBatchDigest(payload), signedBy.privateKey)),
    },
  };
}

let dir: string;
let path: string;
let clock: ManualClock;
const open: LedgerStore[] = [];

function openLedger(
  options: { key?: KeyPair; chainId?: number; sealEveryRecords?: number; sealEverySeconds?: number } = {},
): { store: LedgerStore; ledger: Ledger } {
  const opened = openWritableLedger({
    path,
    signer: signer(options.key ?? PRODUCER),
    clock,
    chainId: options.chainId ?? CHAIN_ID,
    sealEveryRecords: options.sealEveryRecords ?? 10,
    sealEverySeconds: options.sealEverySeconds ?? 5,
  });
  open.push(opened.store);
  return opened;
}

function close(store: LedgerStore): void {
  if (store.db.open) store.close();
}

/** Verifies the database at `path` through a separate read-only connection, as `mgmc ledger verify` does. */
function verifyFile() {
  const store = openLedgerStore(path, { readonly: true });
  try {
    return verifyChain(storeSource(store), { strict: true });
  } finally {
    store.close();
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mgmc-ledger-'));
  path = join(dir, 'ledger.db');
  clock = new ManualClock(START);
});

afterEach(() => {
  for (const store of open.splice(0)) close(store);
  rmSync(dir, { recursive: true, force: true });
});

describe('Ledger: sealing by count', () => {
  it('seals a block every sealEveryRecords records and keeps the rest pending', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 10 });
    expect(ledger.append(readings(7))).toEqual({ firstSeq: 1, lastSeq: 7 });
    expect(ledger.sealedHeight).toBe(0);
    expect(ledger.append(readings(7, 7))).toEqual({ firstSeq: 8, lastSeq: 14 });
    expect(ledger.sealedHeight).toBe(1);
    expect(ledger.append(readings(11, 14))).toEqual({ firstSeq: 15, lastSeq: 25 });
    expect(ledger.sealedHeight).toBe(2);
    expect(ledger.unsealedCount).toBe(5);
    expect(ledger.lastSeq).toBe(25);

    const blocks = [...store.blocks()];
    expect(blocks.map((b) => [b.height, b.firstSeq, b.count])).toEqual([
      [1, 1, 10],
      [2, 11, 10],
    ]);
    expect(store.lastSeq()).toBe(25);
    const report = verifyChain(storeSource(store), { strict: true });
    expect(report).toMatchObject({ ok: true, blocks: 2, records: 20, unsealed: 5, chainId: CHAIN_ID });
    expect(report.producer).toBe(PRODUCER.address);
  });

  it('seals several blocks when one batch holds more than a block', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 10 });
    ledger.append(readings(35));
    expect(ledger.sealedHeight).toBe(3);
    expect(ledger.unsealedCount).toBe(5);
    expect([...store.blocks()].map((b) => b.count)).toEqual([10, 10, 10]);
  });

  it('links every header to the previous one and signs it with the producer key', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 4 });
    ledger.append(readings(12));
    let prev = ZERO_HASH;
    for (const block of store.blocks()) {
      const header = decodeHeader(block.header);
      expect(header).toMatchObject({ version: 1, chainId: CHAIN_ID, height: block.height, producer: PRODUCER.address });
      expect(header.prev).toBe(prev);
      expect(toHex(headerHash(header))).toBe(toHex(block.hash));
      prev = toHex(block.hash);
    }
    expect(store.getMeta('chainId')).toBe(String(CHAIN_ID));
    expect(store.getMeta('producer')).toBe(PRODUCER.address);
  });

  it('stamps records with the clock, or with the time given', () => {
    const { store, ledger } = openLedger();
    clock.advance(1234);
    ledger.append([...readings(1), { ...readings(1)[0]!, time: START - 5 }]);
    const [a, b] = store.recordRange(1, 2).map((row) => decodeRecord(row.body));
    expect(a?.time).toBe(START + 1234);
    expect(b?.time).toBe(START - 5);
  });

  it('refuses nonsensical seal settings', () => {
    expect(() => openLedger({ sealEveryRecords: 0 })).toThrow(/sealEveryRecords must be >= 1/);
    expect(() => openLedger({ sealEverySeconds: 0 })).toThrow(/sealEverySeconds must be > 0/);
  });
});

describe('Ledger: sealed-block listeners', () => {
  it('tells listeners about each block after it is stored, in height order, until they stop listening', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 2 });
    const seen: { height: number; firstSeq: number; stored: boolean }[] = [];
    const stop = ledger.onSealed(({ block, firstSeq }) =>
      seen.push({ height: block.header.height, firstSeq, stored: store.blockAt(block.header.height) !== undefined }),
    );
    ledger.append(readings(5));
    ledger.seal();
    expect(seen).toEqual([
      { height: 1, firstSeq: 1, stored: true },
      { height: 2, firstSeq: 3, stored: true },
      { height: 3, firstSeq: 5, stored: true },
    ]);
    stop();
    ledger.append(readings(2, 5));
    expect(ledger.sealedHeight).toBe(4);
    expect(seen).toHaveLength(3);
  });

  it('keeps sealing when a listener throws', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 1 });
    let calls = 0;
    ledger.onSealed(() => {
      calls++;
      throw new Error('listener bug');
    });
    ledger.append(readings(3));
    expect(calls).toBe(3);
    expect(ledger.sealedHeight).toBe(3);
    expect(verifyChain(storeSource(store))).toMatchObject({ ok: true, blocks: 3 });
  });
});

describe('Ledger: sealing by time', () => {
  it('seals pending records after sealEverySeconds, and nothing when nothing is pending', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 1000, sealEverySeconds: 10 });
    ledger.start();
    ledger.append(readings(3));
    clock.advance(9_999);
    expect(ledger.sealedHeight).toBe(0);
    clock.advance(1);
    expect(ledger.sealedHeight).toBe(1);
    expect(ledger.unsealedCount).toBe(0);
    const first = store.blockAt(1)!;
    expect(first.count).toBe(3);
    expect(decodeHeader(first.header).time).toBe(START + 10_000);

    clock.advance(60_000);
    expect(ledger.sealedHeight).toBe(1);
    expect(store.counts().blocks).toBe(1);

    ledger.append(readings(2, 3));
    clock.advance(10_000);
    expect(ledger.sealedHeight).toBe(2);
    expect(store.blockAt(2)).toMatchObject({ firstSeq: 4, count: 2 });
    ledger.stop();
    expect(verifyChain(storeSource(store))).toMatchObject({ ok: true, blocks: 2, records: 5, unsealed: 0 });
  });

  it('does not seal on a timer that was never started', () => {
    const { ledger } = openLedger({ sealEveryRecords: 1000, sealEverySeconds: 1 });
    ledger.append(readings(3));
    clock.advance(60_000);
    expect(ledger.sealedHeight).toBe(0);
  });

  it('stop() cancels the timer and seals what is pending', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 10, sealEverySeconds: 10 });
    ledger.start();
    ledger.append(readings(23));
    expect(ledger.sealedHeight).toBe(2);
    ledger.stop();
    expect(ledger.sealedHeight).toBe(3);
    expect(ledger.unsealedCount).toBe(0);
    expect(store.blockAt(3)).toMatchObject({ firstSeq: 21, count: 3 });
    ledger.append(readings(1, 23));
    clock.advance(60_000);
    expect(ledger.sealedHeight).toBe(3);
    expect(ledger.unsealedCount).toBe(1);
  });
});

describe('Ledger: invalid input', () => {
  it('writes nothing when one record of a batch is invalid, naming its index and field', () => {
    const { store, ledger } = openLedger();
    const batch: NewRecord[] = [
      ...readings(2),
      { type: 'reading', body: { device: 'pv1', point: 'W', t: START, value: 1.5, unit: 'W' } },
    ];
    expect(() => ledger.append(batch)).toThrow(RecordError);
    expect(() => ledger.append(batch)).toThrow('record 2 of the batch: reading.value must be an integer, got 1.5');
    expect(store.lastSeq()).toBe(0);
    expect(ledger.lastSeq).toBe(0);
    expect(ledger.unsealedCount).toBe(0);
    expect(ledger.append(readings(1))).toEqual({ firstSeq: 1, lastSeq: 1 });
  });

  it('writes nothing for an unknown type or a float in an extra field', () => {
    const { store, ledger } = openLedger();
    expect(() => ledger.append([...readings(1), { type: 'nope' as 'event', body: {} }])).toThrow(
      /record 1 of the batch: unknown record type "nope"/,
    );
    expect(() =>
      ledger.append([{ type: 'event', body: { source: 's', kind: 'k', message: 'm', ratio: 0.25 } }]),
    ).toThrow(/body\.ratio: 0\.25 is not a safe integer/);
    expect(store.lastSeq()).toBe(0);
    expect(ledger.lastSeq).toBe(0);
  });

  // A bad time committed and signed would fail verification (bad-record) for good: refuse it before writing.
  it('refuses a negative explicit time and writes nothing', () => {
    const { store, ledger } = openLedger();
    expect(() => ledger.append([{ ...readings(1)[0]!, time: -5 }])).toThrow(/record 0 of the batch: .*time/);
    expect(store.lastSeq()).toBe(0);
  });

  it('treats an empty batch as a no-op', () => {
    const { store, ledger } = openLedger();
    expect(ledger.append([])).toEqual({ firstSeq: 1, lastSeq: 0 });
    expect(store.lastSeq()).toBe(0);
  });
});

describe('Ledger: reopening', () => {
  it('continues the chain: height, seq and prev link, and seals leftover records first', () => {
    const first = openLedger({ sealEveryRecords: 10 });
    first.ledger.append(readings(25));
    const block2Hash = toHex(first.store.blockAt(2)!.hash);
    // No stop(): as after a crash, 5 records are committed but unsealed.
    close(first.store);

    const second = openLedger({ sealEveryRecords: 10 });
    expect(second.ledger.sealedHeight).toBe(2);
    expect(second.ledger.lastSeq).toBe(25);
    expect(second.ledger.unsealedCount).toBe(5);
    expect(second.ledger.append(readings(5, 25))).toEqual({ firstSeq: 26, lastSeq: 30 });
    expect(second.ledger.sealedHeight).toBe(3);
    const block3 = second.store.blockAt(3)!;
    expect(block3).toMatchObject({ firstSeq: 21, count: 10 });
    expect(decodeHeader(block3.header).prev).toBe(block2Hash);
    close(second.store);

    expect(verifyFile()).toMatchObject({ ok: true, blocks: 3, records: 30, unsealed: 0 });
  });

  it('seals the leftover records on stop() after reopening', () => {
    const first = openLedger({ sealEveryRecords: 10 });
    first.ledger.append(readings(13));
    close(first.store);

    const second = openLedger({ sealEveryRecords: 10 });
    second.ledger.stop();
    expect(second.store.blockAt(2)).toMatchObject({ firstSeq: 11, count: 3 });
    close(second.store);
    expect(verifyFile()).toMatchObject({ ok: true, blocks: 2, records: 13, unsealed: 0 });
  });

  it('continues a chain that was closed cleanly', () => {
    const first = openLedger({ sealEveryRecords: 10 });
    first.ledger.append(readings(15));
    first.ledger.stop();
    close(first.store);

    const second = openLedger({ sealEveryRecords: 10 });
    expect(second.ledger.sealedHeight).toBe(2);
    expect(second.ledger.unsealedCount).toBe(0);
    second.ledger.append(readings(10, 15));
    expect(second.store.blockAt(3)).toMatchObject({ firstSeq: 16, count: 10 });
    close(second.store);
    expect(verifyFile()).toMatchObject({ ok: true, blocks: 3, records: 25 });
  });

  it('refuses another key, naming both addresses', () => {
    const first = openLedger();
    first.ledger.append(readings(3));
    close(first.store);
    expect(() => openLedger({ key: OTHER })).toThrow(LedgerError);
    expect(() => openLedger({ key: OTHER })).toThrow(
      `this ledger database was signed by ${PRODUCER.address}, but the key given is ${OTHER.address}`,
    );
    // The refused open closed its connection: the right key still opens the database.
    expect(openLedger().ledger.lastSeq).toBe(3);
  });

  it('refuses another chain id, naming both', () => {
    close(openLedger().store);
    expect(() => openLedger({ chainId: 1 })).toThrow(
      `this ledger database belongs to chain id ${CHAIN_ID}, but the config says 1`,
    );
  });

  it('refuses to continue when an unsealed record is missing', () => {
    const first = openLedger({ sealEveryRecords: 10 });
    first.ledger.append(readings(15));
    first.store.db.prepare('DELETE FROM records WHERE seq = 13').run();
    close(first.store);
    expect(() => openLedger({ sealEveryRecords: 10 })).toThrow(/unsealed record 13 is missing \(found 14\)/);
  });
});

describe('Ledger: meter batches', () => {
  it('keeps a meter-signed batch that verifies against the meter key', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 5 });
    ledger.append([...readings(2), meterBatch(METER, METER, 'meter1;t=1700000000;Wh=123456'), ...readings(2, 2)]);
    ledger.stop();
    const report = verifyChain(storeSource(store), { strict: true });
    expect(report).toMatchObject({ ok: true, blocks: 1, records: 5 });
  });

  it('fails verification with bad-meter-signature when another key signed the batch', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 5 });
    ledger.append([...readings(5), ...readings(3, 5), meterBatch(METER, OTHER, 'meter1;Wh=1'), ...readings(1, 8)]);
    ledger.stop();
    const report = verifyChain(storeSource(store));
    expect(report.ok).toBe(false);
    expect(report.blocks).toBe(1);
    expect(report.problem).toMatchObject({ height: 2, kind: 'bad-meter-signature', seq: 9 });
    expect(report.problem?.detail).toContain(`says meter ${METER.address} but was signed by ${OTHER.address}`);
  });

  it('fails verification with bad-meter-signature for an unknown batch format', () => {
    const { store, ledger } = openLedger({ sealEveryRecords: 5 });
    const batch = meterBatch(METER, METER, 'x');
    ledger.append([{ type: 'meter-batch', body: { ...batch.body, format: 'acme/v9' } }]);
    ledger.stop();
    expect(verifyChain(storeSource(store)).problem).toMatchObject({
      height: 1,
      kind: 'bad-meter-signature',
      seq: 1,
    });
  });
});
