import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { DsoAnchor } from '../../../agent/dso/anchor.js';
import {
  type AcceptedBlockRow,
  DSO_CHAIN_MIGRATIONS,
  DsoChainStore,
  type InsertOutcome,
} from '../../../agent/dso/chain-store.js';
import { checkReceipt } from '../../../agent/dso/receipt.js';
import {
  type BlockOutcome,
  type BlockRejected,
  BlockVerifier,
  type BlockVerifierOptions,
  type RegistryEntry,
  type RegistryLookup,
  rejectionBody,
} from '../../../agent/dso/verifier.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signDigest } from '../../../agent/identity/signing.js';
import { type BlockHeader, decodeHeader, encodeHeader, signHeader, ZERO_HASH } from '../../../agent/ledger/block.js';
import type { CanonicalValue } from '../../../agent/ledger/canonical.js';
import { leafHash, merkleRoot } from '../../../agent/ledger/merkle.js';
import { METER_BATCH_FORMAT_V1, meterBatchDigest } from '../../../agent/ledger/meter-batch.js';
import { openWritableLedger } from '../../../agent/ledger/open.js';
import { splitRecordLines } from '../../../agent/ledger/record-lines.js';
import { decodeRecord, encodeRecord, type LedgerRecord, type NewRecord } from '../../../agent/ledger/records.js';
import { type Envelope, openEnvelope, sealEnvelope } from '../../../agent/link/envelope.js';
import { openDatabase } from '../../../agent/store/database.js';
import { genesisOf, MGMC_A, MGMC_B, signer, T0, TempDir, V } from './helpers.js';

const CHAIN = 4242;
/** Meter keys: they sign nothing outside this file's temporary databases. */
const METER = keyPairFromPrivateKey(fromHex(`0x${'61'.repeat(32)}`));
const METER_2 = keyPairFromPrivateKey(fromHex(`0x${'62'.repeat(32)}`));
const STRANGER = keyPairFromPrivateKey(fromHex(`0x${'63'.repeat(32)}`));

/** A block as the MGMC sends it: header and records as objects, signature as hex. */
interface Block {
  readonly header: BlockHeader;
  readonly records: LedgerRecord[];
  readonly signature: string;
  readonly hash: string;
}

class Registry implements RegistryLookup {
  readonly entries = new Map<string, RegistryEntry>();

  set(mgmc: KeyPair, status: RegistryEntry['status'], meters: readonly KeyPair[] = [METER, METER_2]): void {
    this.entries.set(mgmc.address.toLowerCase(), {
      status,
      meters: new Set(meters.map((m) => m.address.toLowerCase())),
    });
  }

  lookup(mgmc: string): RegistryEntry | undefined {
    return this.entries.get(mgmc);
  }
}

let dir: TempDir;
let clock: ManualClock;
let registry: Registry;
let ledgers = 0;

beforeEach(() => {
  dir = new TempDir();
  clock = new ManualClock(T0);
  registry = new Registry();
  registry.set(MGMC_A, 'authorized');
  registry.set(MGMC_B, 'authorized');
});
afterEach(() => dir.cleanup());

function reading(i: number): NewRecord {
  return { type: 'reading', body: { device: 'pv1', point: 'W', t: T0 + i * 1000, value: 1000 + i, unit: 'W' } };
}

function meterBatch(meter: KeyPair, signedBy: KeyPair, text: string): NewRecord {
  const payload = new TextEncoder().encode(text);
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

/**
 * A real chain from the MGMC's Ledger: `batches[i]` is appended and sealed as block i + 1, and the blocks are read
 * back from its database as the outbox would send them.
 */
function chain(producer: KeyPair, batches: readonly (readonly NewRecord[])[]): Block[] {
  const { store, ledger } = openWritableLedger({
    path: dir.file(`mgmc-${ledgers++}.db`),
    signer: signer(producer),
    clock,
    chainId: CHAIN,
    sealEveryRecords: 100_000,
    sealEverySeconds: 3600,
  });
  try {
    for (const batch of batches) {
      clock.advance(1000);
      ledger.append(batch);
      ledger.seal();
    }
    return [...store.blocks()].map((row) => ({
      header: decodeHeader(row.header),
      records: store.recordRange(row.firstSeq, row.count).map((r) => decodeRecord(r.body)),
      signature: toHex(row.signature),
      hash: toHex(row.hash),
    }));
  } finally {
    store.close();
  }
}

const readings = (from: number, n: number): NewRecord[] => Array.from({ length: n }, (_, i) => reading(from + i));

/** Three blocks: readings, then readings with a meter batch from each registered meter, then readings. */
function standardChain(producer: KeyPair = MGMC_A): Block[] {
  return chain(producer, [
    readings(0, 3),
    [...readings(3, 2), meterBatch(METER, METER, 'batch 1'), meterBatch(METER_2, METER_2, 'batch 2')],
    readings(5, 4),
  ]);
}

let envelopeSeq = 0;

/** The block in a `block` envelope signed by `from`, sealed and opened as the link would. */
function envelopeOf(block: Block, from: KeyPair = MGMC_A, body?: Record<string, unknown>): Envelope {
  const sealed = sealEnvelope(signer(from), {
    kind: 'block',
    chainId: CHAIN,
    session: 1,
    seq: ++envelopeSeq,
    time: clock.now(),
    body: (body ?? { header: { ...block.header }, records: block.records, signature: block.signature }) as Record<
      string,
      CanonicalValue
    >,
  });
  const opened = openEnvelope(sealed.bytes, { chainId: CHAIN, maxBytes: 4 * 1024 * 1024 });
  if (!opened.ok) throw new Error(`test envelope does not open: ${opened.detail}`);
  return opened.envelope;
}

/** The block with a changed header, signed again by `by` (so the header signature itself is valid). */
function resigned(block: Block, change: Partial<BlockHeader>, by: KeyPair = MGMC_A): Block {
  const header = { ...block.header, ...change };
  const signed = signHeader(header, signer(by));
  return { header, records: block.records, signature: signed.signature, hash: signed.hash };
}

function verifier(extra: Partial<BlockVerifierOptions> = {}, store = dir.chainStore()): BlockVerifier {
  return new BlockVerifier({ store, registry, chainId: CHAIN, clock, ...extra });
}

const topic = (k: KeyPair) => k.address.toLowerCase();

function expectRejected(outcome: BlockOutcome, reason: BlockRejected['reason']): BlockRejected {
  expect(outcome.status, JSON.stringify(outcome)).toBe('rejected');
  const rejected = outcome as BlockRejected;
  expect(rejected.reason, rejected.detail).toBe(reason);
  return rejected;
}

describe('BlockVerifier: a valid chain', () => {
  it('accepts a chain in order and stores each block so it can be re-served and re-verified', () => {
    const store = dir.chainStore();
    const v = verifier({}, store);
    const blocks = standardChain();
    for (const block of blocks) {
      const env = envelopeOf(block);
      expect(v.verify(env, topic(MGMC_A))).toEqual({
        status: 'accepted',
        ref: env.id,
        mgmc: MGMC_A.address,
        height: block.header.height,
        hash: block.hash,
      });
    }
    for (const block of blocks) {
      const row = store.acceptedBlock(MGMC_A.address, block.header.height);
      expect(row).toBeDefined();
      expect(toHex(row?.hash as Uint8Array)).toBe(block.hash);
      expect(toHex(row?.header as Uint8Array)).toBe(toHex(encodeHeader(block.header)));
      expect(toHex(row?.signature as Uint8Array)).toBe(block.signature);
      expect(row?.received).toBe(clock.now());
      // The stored lines are the canonical records: they hash to the signed root and decode to what was sent.
      const lines = splitRecordLines(row?.records as Uint8Array);
      expect(lines.map((l) => decodeRecord(l))).toEqual(block.records);
      expect(lines.map((l) => toHex(l))).toEqual(block.records.map((r) => toHex(encodeRecord(r))));
      expect(toHex(merkleRoot(lines.map(leafHash)))).toBe(block.header.root);
    }
    expect(store.lastAcceptedHeight(MGMC_A.address)).toBe(3);
    expect(v.stats()).toMatchObject({ accepted: 3, duplicate: 0, parked: 0, rejected: {} });
  });

  it('keeps the chains of two MGMCs apart', () => {
    const v = verifier();
    const a = standardChain(MGMC_A);
    const b = standardChain(MGMC_B);
    for (let i = 0; i < 3; i++) {
      expect(v.verify(envelopeOf(a[i] as Block), topic(MGMC_A)).status).toBe('accepted');
      expect(v.verify(envelopeOf(b[i] as Block, MGMC_B), topic(MGMC_B)).status).toBe('accepted');
    }
  });

  it('leaves accepted blocks pending for the anchor, which seals them into a DSO block with receipts', () => {
    const store = dir.chainStore();
    const v = verifier({}, store);
    const blocks = standardChain();
    for (const block of blocks) v.verify(envelopeOf(block), topic(MGMC_A));
    expect(store.pendingEntries().map((p) => [p.mgmc, p.mgmcHeight, toHex(p.headerHash)])).toEqual(
      blocks.map((b) => [MGMC_A.address, b.header.height, b.hash]),
    );
    const genesis = genesisOf([V[0]]);
    const anchor = DsoAnchor.open({
      store,
      genesis,
      clock,
      sealEveryEntries: 10,
      sealEverySeconds: 30,
      signer: signer(V[0]),
    });
    const sealed = anchor.seal();
    expect(sealed && 'receipts' in sealed).toBe(true);
    expect(store.pendingCount()).toBe(0);
    const receipt = anchor.receipt(MGMC_A.address, 2);
    expect(receipt?.mgmcHeaderHash).toBe(blocks[1]?.hash);
    expect(checkReceipt(receipt, genesis.validators, blocks[1]?.hash as string).ok).toBe(true);
  });

  it('answers a re-delivered block as a duplicate and stores nothing twice', () => {
    const store = dir.chainStore();
    const v = verifier({}, store);
    const [b1, b2] = standardChain();
    const env1 = envelopeOf(b1 as Block);
    expect(v.verify(env1, topic(MGMC_A)).status).toBe('accepted');
    expect(v.verify(env1, topic(MGMC_A))).toEqual({
      status: 'duplicate',
      ref: env1.id,
      mgmc: MGMC_A.address,
      height: 1,
      hash: b1?.hash,
    });
    expect(v.verify(envelopeOf(b2 as Block), topic(MGMC_A)).status).toBe('accepted');
    // An old block resent later (a replayed outbox, a new envelope id) is still a duplicate.
    expect(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('duplicate');
    expect(store.pendingCount()).toBe(2);
    expect(v.stats()).toMatchObject({ accepted: 2, duplicate: 2 });
  });
});

describe('BlockVerifier: rejections, one crafted block per code', () => {
  it('wrong-producer: a header naming another producer, or a message on another MGMC topic', () => {
    const v = verifier();
    const [a1] = standardChain(MGMC_A);
    const [b1] = standardChain(MGMC_B);
    // MGMC_A forwards MGMC_B's block (validly signed by B) on its own topic.
    const forwarded = expectRejected(v.verify(envelopeOf(b1 as Block, MGMC_A), topic(MGMC_A)), 'wrong-producer');
    expect(forwarded.detail).toContain(MGMC_B.address);
    expect(forwarded.mgmc).toBe(topic(MGMC_A));
    // A's own block, but on B's topic.
    expectRejected(v.verify(envelopeOf(a1 as Block, MGMC_A), topic(MGMC_B)), 'wrong-producer');
  });

  it('wrong-chain: a header of another chain id', () => {
    const v = verifier();
    const [b1] = standardChain();
    const other = resigned(b1 as Block, { chainId: CHAIN + 1 });
    const r = expectRejected(v.verify(envelopeOf(other), topic(MGMC_A)), 'wrong-chain');
    expect(r.detail).toContain(String(CHAIN));
  });

  it('unregistered: unknown, pending or rejected MGMCs; revoked: a revoked one', () => {
    const v = verifier();
    const [b1] = standardChain();
    registry.entries.delete(topic(MGMC_A));
    expectRejected(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)), 'unregistered');
    registry.set(MGMC_A, 'pending');
    expect(expectRejected(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)), 'unregistered').detail).toContain(
      'approve',
    );
    registry.set(MGMC_A, 'rejected');
    expectRejected(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)), 'unregistered');
    registry.set(MGMC_A, 'revoked');
    expectRejected(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)), 'revoked');
    registry.set(MGMC_A, 'authorized');
    expect(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
  });

  it('checks the registry before the header: an unregistered MGMC with a broken header is unregistered', () => {
    const v = verifier();
    const [b1] = standardChain();
    registry.entries.delete(topic(MGMC_A));
    const body = { header: { ...(b1 as Block).header, extra: 1 }, records: b1?.records, signature: b1?.signature };
    expectRejected(v.verify(envelopeOf(b1 as Block, MGMC_A, body), topic(MGMC_A)), 'unregistered');
  });

  it('bad-header: a header with an unknown field or a malformed hash, a body that is not a block', () => {
    const v = verifier();
    const [b1] = standardChain();
    const block = b1 as Block;
    const extra = { header: { ...block.header, extra: 1 }, records: block.records, signature: block.signature };
    expect(expectRejected(v.verify(envelopeOf(block, MGMC_A, extra), topic(MGMC_A)), 'bad-header').detail).toContain(
      'extra',
    );
    const badPrev = { header: { ...block.header, prev: '0x1234' }, records: block.records, signature: block.signature };
    expectRejected(v.verify(envelopeOf(block, MGMC_A, badPrev), topic(MGMC_A)), 'bad-header');
    const noHeader = { records: block.records, signature: block.signature };
    expectRejected(v.verify(envelopeOf(block, MGMC_A, noHeader), topic(MGMC_A)), 'bad-header');
    const junk = { header: block.header, records: block.records, signature: block.signature, note: 'x' };
    expectRejected(v.verify(envelopeOf(block, MGMC_A, junk), topic(MGMC_A)), 'bad-header');
  });

  it('bad-signature: a header signed by another key, a malformed signature, a changed header', () => {
    const v = verifier();
    const [b1] = standardChain();
    const block = b1 as Block;
    // Signed by STRANGER but naming MGMC_A as producer: built by hand, signHeader refuses to do it.
    const forged = toHex(signDigest(fromHex(block.hash), STRANGER.privateKey));
    expectRejected(v.verify(envelopeOf({ ...block, signature: forged }), topic(MGMC_A)), 'bad-signature');
    expectRejected(v.verify(envelopeOf({ ...block, signature: '0x1234' }), topic(MGMC_A)), 'bad-signature');
    const altered = { ...block, header: { ...block.header, time: block.header.time + 1 } };
    expectRejected(v.verify(envelopeOf(altered), topic(MGMC_A)), 'bad-signature');
    // The signature is step 3, the records step 5: a forged block without records is a bad signature.
    const bare = { header: block.header, records: 'none', signature: forged };
    expectRejected(v.verify(envelopeOf(block, MGMC_A, bare), topic(MGMC_A)), 'bad-signature');
    const noRecords = { header: block.header, records: 'none', signature: block.signature };
    expectRejected(v.verify(envelopeOf(block, MGMC_A, noRecords), topic(MGMC_A)), 'missing-record');
    // Nothing was stored, and the genuine block is still accepted.
    expect(v.verify(envelopeOf(block), topic(MGMC_A)).status).toBe('accepted');
  });

  it('broken-link: prev is not the last accepted block (or not zero for block 1)', () => {
    const v = verifier();
    const [b1, b2] = standardChain();
    expectRejected(
      v.verify(envelopeOf(resigned(b1 as Block, { prev: b2?.hash as string })), topic(MGMC_A)),
      'broken-link',
    );
    expect(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
    const r = expectRejected(
      v.verify(envelopeOf(resigned(b2 as Block, { prev: ZERO_HASH })), topic(MGMC_A)),
      'broken-link',
    );
    expect(r.detail).toContain(b1?.hash as string);
    expect(r.height).toBe(2);
  });

  it('conflict: another block at an accepted height (the MGMC signed a fork)', () => {
    const store = dir.chainStore();
    const v = verifier({}, store);
    const [b1] = standardChain();
    const [fork1] = chain(MGMC_A, [readings(100, 2)]);
    expect(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
    const r = expectRejected(v.verify(envelopeOf(fork1 as Block), topic(MGMC_A)), 'conflict');
    expect(r.detail).toContain(b1?.hash as string);
    expect(r.detail).toContain(fork1?.hash as string);
    expect(toHex(store.acceptedHash(MGMC_A.address, 1) as Uint8Array)).toBe(b1?.hash);
  });

  it('missing-record: a record dropped, too many records, or seqs that do not follow the last block', () => {
    const v = verifier();
    const [b1, b2] = standardChain();
    const block = b1 as Block;
    const dropped = expectRejected(
      v.verify(envelopeOf({ ...block, records: block.records.slice(0, 2) }), topic(MGMC_A)),
      'missing-record',
    );
    expect(dropped.detail).toContain('declares 3 records but carries 2');
    const extra = [...block.records, { ...(block.records[2] as LedgerRecord), seq: 4 }];
    expectRejected(v.verify(envelopeOf({ ...block, records: extra }), topic(MGMC_A)), 'missing-record');
    const gap = block.records.map((r, i) => (i === 1 ? { ...r, seq: 7 } : r));
    expect(
      expectRejected(v.verify(envelopeOf({ ...block, records: gap }), topic(MGMC_A)), 'missing-record').detail,
    ).toContain('record 2 is missing');
    // Block 2 of another chain that restarts at seq 1, validly signed, linked to the accepted block 1.
    expect(v.verify(envelopeOf(block), topic(MGMC_A)).status).toBe('accepted');
    const restarted = (b2 as Block).records.map((r, i) => ({ ...r, seq: i + 1 }));
    const root = toHex(merkleRoot(restarted.map((r) => leafHash(encodeRecord(r)))));
    const b2restart = resigned({ ...(b2 as Block), records: restarted }, { root });
    const r = expectRejected(v.verify(envelopeOf(b2restart), topic(MGMC_A)), 'missing-record');
    expect(r.detail).toContain('must start at seq 4');
  });

  it('bad-record: a record that is not valid or cannot be canonical', () => {
    const v = verifier();
    const [b1] = standardChain();
    const block = b1 as Block;
    const withType = block.records.map((r, i) => (i === 0 ? { ...r, type: 'gossip' } : r)) as LedgerRecord[];
    expect(
      expectRejected(v.verify(envelopeOf({ ...block, records: withType }), topic(MGMC_A)), 'bad-record').detail,
    ).toContain('gossip');
    const noUnit = block.records.map((r, i) => (i === 2 ? { ...r, body: { ...r.body, unit: undefined } } : r));
    expectRejected(v.verify(envelopeOf({ ...block, records: noUnit }), topic(MGMC_A)), 'bad-record');
    // A float cannot be canonical; such an envelope never opens, so the in-memory envelope is handed over directly.
    const env = envelopeOf(block);
    const floaty = block.records.map((r, i) => (i === 1 ? { ...r, body: { ...r.body, value: 1.5 } } : r));
    const inMemory = { ...env, body: { ...env.body, records: floaty } } as unknown as Envelope;
    expectRejected(v.verify(inMemory, topic(MGMC_A)), 'bad-record');
  });

  it('changed-record: a valid record changed after sealing', () => {
    const v = verifier();
    const [b1] = standardChain();
    const block = b1 as Block;
    const changed = block.records.map((r, i) => (i === 1 ? { ...r, body: { ...r.body, value: 999_999 } } : r));
    const r = expectRejected(v.verify(envelopeOf({ ...block, records: changed }), topic(MGMC_A)), 'changed-record');
    expect(r.detail).toContain(block.header.root);
  });

  it('bad-meter-signature: a batch signed by another key than the meter it names, or of an unknown format', () => {
    const v = verifier();
    const [b1] = chain(MGMC_A, [[reading(0), meterBatch(METER, STRANGER, 'forged batch')]]);
    const r = expectRejected(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)), 'bad-meter-signature');
    expect(r.detail).toContain(STRANGER.address);
    const [c1] = chain(MGMC_A, [
      [{ type: 'meter-batch', body: { ...meterBatch(METER, METER, 'x').body, format: 'acme/v9' } }],
    ]);
    expect(expectRejected(v.verify(envelopeOf(c1 as Block), topic(MGMC_A)), 'bad-meter-signature').detail).toContain(
      'acme/v9',
    );
  });

  it('bad-meter-signature for a registered meter whose key is already cached', () => {
    const v = verifier();
    const [b1, b2] = chain(MGMC_A, [
      [meterBatch(METER, METER, 'good batch')],
      [reading(1), meterBatch(METER, METER, 'good again'), meterBatch(METER, STRANGER, 'forged')],
    ]);
    expect(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
    const r = expectRejected(v.verify(envelopeOf(b2 as Block), topic(MGMC_A)), 'bad-meter-signature');
    expect(r.detail).toContain('record 4');
  });

  it('unknown-meter: a correctly signed batch from a meter the MGMC did not register', () => {
    const v = verifier();
    const [b1] = chain(MGMC_A, [[reading(0), meterBatch(STRANGER, STRANGER, 'stranger batch')]]);
    const r = expectRejected(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)), 'unknown-meter');
    expect(r.detail).toContain(STRANGER.address);
    // Registered for MGMC_B is not registered for MGMC_A.
    registry.set(MGMC_B, 'authorized', [STRANGER]);
    expectRejected(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)), 'unknown-meter');
    registry.set(MGMC_A, 'authorized', [METER, STRANGER]);
    expect(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
  });

  it('oversized: by its wire size before any work, or by its records', () => {
    const v = verifier({ maxBlockBytes: 2048 });
    const [b1] = chain(MGMC_A, [readings(0, 30)]);
    const env = envelopeOf(b1 as Block);
    expectRejected(v.verify(env, topic(MGMC_A), 5000), 'oversized');
    const r = expectRejected(v.verify(env, topic(MGMC_A)), 'oversized');
    expect(r.detail).toContain('2048');
  });

  it('builds the rejection body of section 11', () => {
    const v = verifier();
    const [, , b3] = standardChain();
    const env = envelopeOf(b3 as Block);
    expect(v.verify(env, topic(MGMC_A)).status).toBe('parked');
    clock.advance(2000);
    const [outcome] = v.retryParked();
    const rejected = expectRejected(outcome as BlockOutcome, 'out-of-order');
    expect(rejectionBody(rejected)).toEqual({
      ref: env.id,
      reason: 'out-of-order',
      detail: rejected.detail,
      height: 3,
      expected: 1,
    });
    const unregistered = v.verify(envelopeOf(b3 as Block, MGMC_B), topic(MGMC_B)) as BlockRejected;
    expect(Object.keys(rejectionBody(unregistered, '0xabc')).sort()).toEqual(['detail', 'height', 'reason', 'ref']);
  });
});

describe('BlockVerifier: blocks out of order', () => {
  it('parks a block ahead of the expected height and rejects it out-of-order after parkMs, naming the expected one', () => {
    const store = dir.chainStore();
    const v = verifier({ parkMs: 2000 }, store);
    const [b1, , b3] = standardChain();
    expect(v.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
    const env3 = envelopeOf(b3 as Block);
    expect(v.verify(env3, topic(MGMC_A))).toEqual({
      status: 'parked',
      ref: env3.id,
      mgmc: MGMC_A.address,
      height: 3,
      hash: b3?.hash,
      expected: 2,
    });
    expect(v.parkedCount).toBe(1);
    clock.advance(1999);
    expect(v.retryParked()).toEqual([]);
    expect(v.parkedCount).toBe(1);
    clock.advance(1);
    const [r] = v.retryParked();
    expect(r).toMatchObject({ status: 'rejected', reason: 'out-of-order', ref: env3.id, height: 3, expected: 2 });
    expect(v.parkedCount).toBe(0);
    expect(store.lastAcceptedHeight(MGMC_A.address)).toBe(1);
  });

  it('accepts a parked block once its predecessor arrives, and the ones parked behind it', () => {
    const v = verifier();
    const blocks = chain(MGMC_A, [readings(0, 1), readings(1, 2), readings(3, 3), readings(6, 1)]);
    const [b1, b2, b3, b4] = blocks as [Block, Block, Block, Block];
    expect(v.verify(envelopeOf(b4), topic(MGMC_A)).status).toBe('parked');
    expect(v.verify(envelopeOf(b3), topic(MGMC_A)).status).toBe('parked');
    expect(v.verify(envelopeOf(b2), topic(MGMC_A))).toMatchObject({ status: 'parked', expected: 1 });
    expect(v.verify(envelopeOf(b1), topic(MGMC_A)).status).toBe('accepted');
    clock.advance(500);
    expect(v.retryParked(MGMC_A.address).map((o) => [o.status, 'height' in o ? o.height : 0])).toEqual([
      ['accepted', 2],
      ['accepted', 3],
      ['accepted', 4],
    ]);
    expect(v.parkedCount).toBe(0);
  });

  it('keeps the first parking time when a parked block is delivered again', () => {
    const v = verifier({ parkMs: 2000 });
    const [, b2] = standardChain();
    v.verify(envelopeOf(b2 as Block), topic(MGMC_A));
    clock.advance(1500);
    expect(v.verify(envelopeOf(b2 as Block), topic(MGMC_A)).status).toBe('parked');
    clock.advance(500);
    expect(v.retryParked()).toMatchObject([{ status: 'rejected', reason: 'out-of-order', expected: 1 }]);
  });

  it('rejects a parked block whose MGMC was revoked while it waited', () => {
    const v = verifier();
    const [b1, b2] = standardChain();
    v.verify(envelopeOf(b2 as Block), topic(MGMC_A));
    v.verify(envelopeOf(b1 as Block), topic(MGMC_A));
    registry.set(MGMC_A, 'revoked');
    expect(v.retryParked()).toMatchObject([{ status: 'rejected', reason: 'revoked', height: 2 }]);
  });

  it('rejects out-of-order at once when too many blocks are parked', () => {
    const v = verifier({ maxParked: 1 });
    const [, b2, b3] = standardChain();
    expect(v.verify(envelopeOf(b2 as Block), topic(MGMC_A)).status).toBe('parked');
    expectRejected(v.verify(envelopeOf(b3 as Block), topic(MGMC_A)), 'out-of-order');
  });
});

describe('BlockVerifier: several processes on one database', () => {
  /** A second connection to the same file, as another verifier process has. */
  function secondStore(): DsoChainStore {
    return dir.track(new DsoChainStore(openDatabase(dir.file('dso.db'), DSO_CHAIN_MIGRATIONS)));
  }

  /** A store whose insert first lets `before` run: the other process wins the race between check and insert. */
  class RacingStore extends DsoChainStore {
    before: (() => void) | undefined;
    override insertAccepted(row: AcceptedBlockRow): InsertOutcome {
      const run = this.before;
      this.before = undefined;
      run?.();
      return super.insertAccepted(row);
    }
  }

  it('two verifiers racing the same block: one accepts, the other reports a duplicate, one row stored', () => {
    const first = verifier({}, dir.chainStore('dso.db'));
    const racing = dir.track(new RacingStore(openDatabase(dir.file('dso.db'), DSO_CHAIN_MIGRATIONS)));
    const second = verifier({}, racing);
    const [b1] = standardChain();
    const env = envelopeOf(b1 as Block);
    let firstOutcome: BlockOutcome | undefined;
    racing.before = () => {
      firstOutcome = first.verify(env, topic(MGMC_A));
    };
    const secondOutcome = second.verify(env, topic(MGMC_A));
    expect(firstOutcome?.status).toBe('accepted');
    expect(secondOutcome.status).toBe('duplicate');
    expect(racing.pendingCount()).toBe(1);
  });

  it('two verifiers racing different blocks at one height: one accepted, the other a conflict', () => {
    const first = verifier({}, dir.chainStore('dso.db'));
    const racing = dir.track(new RacingStore(openDatabase(dir.file('dso.db'), DSO_CHAIN_MIGRATIONS)));
    const second = verifier({}, racing);
    const [b1] = standardChain();
    const [fork1] = chain(MGMC_A, [readings(50, 1)]);
    racing.before = () => {
      expect(first.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
    };
    expectRejected(second.verify(envelopeOf(fork1 as Block), topic(MGMC_A)), 'conflict');
  });

  it('accepts the next block when another process accepted the previous one', () => {
    const v1 = verifier({}, dir.chainStore('dso.db'));
    const v2 = verifier({}, secondStore());
    const [b1, b2, b3] = standardChain();
    expect(v2.verify(envelopeOf(b1 as Block), topic(MGMC_A)).status).toBe('accepted');
    // v1 has never seen MGMC_A's chain: it reads the head from the database.
    expect(v1.verify(envelopeOf(b3 as Block), topic(MGMC_A))).toMatchObject({ status: 'parked', expected: 2 });
    expect(v2.verify(envelopeOf(b2 as Block), topic(MGMC_A)).status).toBe('accepted');
    expect(v1.retryParked()).toMatchObject([{ status: 'accepted', height: 3 }]);
    // And v2, whose cached head is now stale, sees block 3 as a duplicate.
    expect(v2.verify(envelopeOf(b3 as Block), topic(MGMC_A)).status).toBe('duplicate');
  });
});

describe('BlockVerifier: batches', () => {
  it('verifies a batch in one transaction with the outcomes of one-by-one verification', () => {
    const store = dir.chainStore();
    const v = verifier({}, store);
    const [b1, b2, b3] = standardChain();
    const [fork] = chain(MGMC_A, [readings(70, 1)]);
    const deliveries = [b2, b1, b1, fork, b3].map((b) => ({
      envelope: envelopeOf(b as Block),
      topicAddress: topic(MGMC_A),
    }));
    expect(v.verifyBatch(deliveries).map((o) => (o.status === 'rejected' ? o.reason : o.status))).toEqual([
      'parked',
      'accepted',
      'duplicate',
      'conflict',
      'parked',
    ]);
    expect(v.retryParked().map((o) => [o.status, 'height' in o ? o.height : 0])).toEqual([
      ['accepted', 2],
      ['accepted', 3],
    ]);
    expect(store.lastAcceptedHeight(MGMC_A.address)).toBe(3);
  });

  it('stores nothing of a batch when the database fails, and throws', () => {
    class FailingStore extends DsoChainStore {
      inserts = 0;
      override insertAccepted(row: AcceptedBlockRow): InsertOutcome {
        if (++this.inserts === 2) throw new Error('disk I/O error');
        return super.insertAccepted(row);
      }
    }
    const store = dir.track(new FailingStore(openDatabase(dir.file('dso.db'), DSO_CHAIN_MIGRATIONS)));
    const v = verifier({}, store);
    const blocks = standardChain();
    const deliveries = blocks.map((b) => ({ envelope: envelopeOf(b), topicAddress: topic(MGMC_A) }));
    expect(() => v.verifyBatch(deliveries)).toThrow(/disk I\/O/);
    expect(store.lastAcceptedHeight(MGMC_A.address)).toBe(0);
    expect(v.stats().accepted).toBe(0);
    // The cache forgot the rolled-back block 1: the batch again is accepted whole.
    expect(v.verifyBatch(deliveries).map((o) => o.status)).toEqual(['accepted', 'accepted', 'accepted']);
  });

  it('keeps blocks parked when retrying them fails at the database', () => {
    class FailingStore extends DsoChainStore {
      fail = false;
      override insertAccepted(row: AcceptedBlockRow): InsertOutcome {
        if (this.fail) throw new Error('database is locked');
        return super.insertAccepted(row);
      }
    }
    const store = dir.track(new FailingStore(openDatabase(dir.file('dso.db'), DSO_CHAIN_MIGRATIONS)));
    const v = verifier({}, store);
    const [b1, b2] = standardChain();
    v.verify(envelopeOf(b2 as Block), topic(MGMC_A));
    v.verify(envelopeOf(b1 as Block), topic(MGMC_A));
    store.fail = true;
    expect(v.retryParked()).toEqual([]);
    expect(v.parkedCount).toBe(1);
    store.fail = false;
    expect(v.retryParked()).toMatchObject([{ status: 'accepted', height: 2 }]);
  });
});
