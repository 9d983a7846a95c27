/**
 * The published ledger vectors (test/vectors/ledger.json) pin the wire format for other implementations. Each is
 * checked twice: against our code, and against an independent computation from node:crypto and noble primitives
 * assembled here by hand, following docs/protocol.md rather than our modules.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { addressFromPublicKey } from '../../../agent/identity/keys.js';
import { signDigest } from '../../../agent/identity/signing.js';
import { encodeHeader, headerHash, signerFromPrivateKey, signHeader } from '../../../agent/ledger/block.js';
import { type CanonicalValue, canonicalize } from '../../../agent/ledger/canonical.js';
import { leafHash, merkleRoot } from '../../../agent/ledger/merkle.js';
import { checkMeterBatch, meterBatchDigest } from '../../../agent/ledger/meter-batch.js';
import { encodeRecord, type LedgerRecord } from '../../../agent/ledger/records.js';

const vectors = JSON.parse(readFileSync(new URL('../../vectors/ledger.json', import.meta.url), 'utf8'));

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const text = (s: string) => new TextEncoder().encode(s);

/** RFC 8785 for integer-only data, written independently: sorted keys, JSON.stringify for scalars. */
function referenceCanonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(referenceCanonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${referenceCanonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** keccak256(0x19 ‖ "mgmc" ‖ 0x00 ‖ tag ‖ 0x00 ‖ uint64be(chainId) ‖ bytes), as docs/protocol.md specifies. */
function referenceDigest(tag: string, chainId: number, bytes: Uint8Array): Uint8Array {
  const chain = Buffer.alloc(8);
  chain.writeBigUInt64BE(BigInt(chainId));
  return keccak_256(
    Buffer.concat([
      Buffer.from([0x19]),
      Buffer.from('mgmc'),
      Buffer.from([0]),
      Buffer.from(tag),
      Buffer.from([0]),
      chain,
      bytes,
    ]),
  );
}

function ecrecover(digest: Uint8Array, signature: Uint8Array): string {
  const rec = new Uint8Array(65);
  rec[0] = (signature[64] as number) - 27;
  rec.set(signature.subarray(0, 64), 1);
  return addressFromPublicKey(secp256k1.recoverPublicKey(rec, digest, { prehash: false }));
}

describe('ledger vectors', () => {
  it('canonical encoding matches the vectors and an independent RFC 8785 encoder', () => {
    for (const v of vectors.canonical) {
      expect(canonicalize(v.input as CanonicalValue), v.name).toBe(v.canonical);
      expect(referenceCanonical(v.input), v.name).toBe(v.canonical);
    }
  });

  it('record bytes and leaf hashes', () => {
    for (const v of vectors.records) {
      const bytes = encodeRecord(v.record as LedgerRecord);
      expect(new TextDecoder().decode(bytes)).toBe(v.canonical);
      expect(referenceCanonical(v.record)).toBe(v.canonical);
      expect(toHex(leafHash(bytes))).toBe(v.leafHash);
      expect(toHex(sha256(new Uint8Array([0]), text(v.canonical)))).toBe(v.leafHash);
    }
  });

  it('Merkle root of the three records (RFC 9162: node(node(l0, l1), l2))', () => {
    const leaves = vectors.records.map((v: { leafHash: string }) => fromHex(v.leafHash));
    expect(toHex(merkleRoot(leaves))).toBe(vectors.block.root);
    const one = new Uint8Array([1]);
    expect(toHex(sha256(one, sha256(one, leaves[0], leaves[1]), leaves[2]))).toBe(vectors.block.root);
  });

  it('block header bytes, hash and signature', () => {
    const { header, canonical, hash, signature } = vectors.block;
    expect(new TextDecoder().decode(encodeHeader(header))).toBe(canonical);
    expect(referenceCanonical(header)).toBe(canonical);
    expect(toHex(headerHash(header))).toBe(hash);
    expect(toHex(referenceDigest('mgmc/block-header/v1', header.chainId, text(canonical)))).toBe(hash);
    // RFC 6979 signatures are deterministic: the same key and header give the same bytes.
    const signer = signerFromPrivateKey(fromHex(vectors.keys.producerPrivateKey), vectors.keys.producer);
    expect(signHeader(header, signer).signature).toBe(signature);
    expect(ecrecover(fromHex(hash), fromHex(signature))).toBe(vectors.keys.producer);
  });

  it('meter batch signature (chain-independent: chain id 0)', () => {
    const { payloadUtf8, digest, signature } = vectors.meterBatch;
    expect(toHex(meterBatchDigest(text(payloadUtf8)))).toBe(digest);
    expect(toHex(referenceDigest('mgmc/meter-batch/v1', 0, text(payloadUtf8)))).toBe(digest);
    expect(toHex(signDigest(fromHex(digest), fromHex(vectors.keys.meterPrivateKey)))).toBe(signature);
    expect(ecrecover(fromHex(digest), fromHex(signature))).toBe(vectors.keys.meter);
    const record = vectors.records.find((r: { record: LedgerRecord }) => r.record.type === 'meter-batch').record;
    expect(checkMeterBatch(record.body)).toBeUndefined();
    expect(checkMeterBatch({ ...record.body, meter: vectors.keys.producer })).toMatch(/signed by/);
  });
});
