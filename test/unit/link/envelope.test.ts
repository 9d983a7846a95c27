import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { addressFromPublicKey, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { SignatureVerifier } from '../../../agent/identity/signing.js';
import { signerFromPrivateKey } from '../../../agent/ledger/block.js';
import {
  EnvelopeError,
  type EnvelopeFields,
  EnvelopeSealer,
  newEnvelopeId,
  type OpenResult,
  openEnvelope,
  resealHistorical,
  sealEnvelope,
} from '../../../agent/link/envelope.js';

/** Test keys: they sign nothing outside this file. */
const KEY = keyPairFromPrivateKey(fromHex(`0x${'11'.repeat(32)}`));
const OTHER = keyPairFromPrivateKey(fromHex(`0x${'22'.repeat(32)}`));
const signer = signerFromPrivateKey(KEY.privateKey, KEY.address);
const other = signerFromPrivateKey(OTHER.privateKey, OTHER.address);
const CHAIN = 4242;
const T0 = Date.UTC(2025, 0, 1);

const FIELDS: EnvelopeFields = {
  id: `0x${'ab'.repeat(16)}`,
  kind: 'block',
  chainId: CHAIN,
  session: 3,
  seq: 17,
  time: T0,
  body: { height: 5, hash: `0x${'cd'.repeat(32)}` },
};

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytesOf = (s: string) => new TextEncoder().encode(s);

function rejected(result: OpenResult): Extract<OpenResult, { ok: false }> {
  if (result.ok) throw new Error('expected a rejection, the envelope was accepted');
  return result;
}

/** Re-signs an edited envelope object so that only the edit (not the signature) is what a check can object to. */
function resign(envelope: Record<string, unknown>, key = KEY.privateKey): Uint8Array {
  const { sig: _sig, ...unsigned } = envelope;
  const canonical = JSON.stringify(Object.fromEntries(Object.entries(unsigned).sort(([a], [b]) => (a < b ? -1 : 1))));
  const digest = keccak_256(new Uint8Array([...preimagePrefix(Number(unsigned.chainId ?? 0)), ...bytesOf(canonical)]));
  const rec = secp256k1.sign(digest, key, { prehash: false, format: 'recovered', lowS: true });
  const sig = toHex(new Uint8Array([...rec.subarray(1), 27 + (rec[0] as number)]));
  const withSig = { ...unsigned, sig };
  return bytesOf(JSON.stringify(Object.fromEntries(Object.entries(withSig).sort(([a], [b]) => (a < b ? -1 : 1)))));
}

/** 0x19 ‖ "mgmc" ‖ 0x00 ‖ "mgmc/link/v1" ‖ 0x00 ‖ uint64be(chain), assembled by hand. */
function preimagePrefix(chainId: number): number[] {
  const chain: number[] = [];
  let v = BigInt(chainId);
  for (let i = 0; i < 8; i++) {
    chain.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return [0x19, ...bytesOf('mgmc'), 0, ...bytesOf('mgmc/link/v1'), 0, ...chain];
}

describe('sealEnvelope / openEnvelope', () => {
  it('seals canonical JSON with exactly the specified fields and opens it again', () => {
    const { envelope, bytes } = sealEnvelope(signer, FIELDS);
    const parsed = JSON.parse(text(bytes));
    expect(Object.keys(parsed)).toEqual([
      'body',
      'chainId',
      'from',
      'id',
      'kind',
      'seq',
      'session',
      'sig',
      'time',
      'v',
    ]);
    expect(parsed).toMatchObject({ v: 1, id: FIELDS.id, kind: 'block', from: KEY.address, chainId: CHAIN, seq: 17 });
    expect(text(bytes)).not.toMatch(/\s/);
    const opened = openEnvelope(bytes, { chainId: CHAIN });
    expect(opened).toEqual({ ok: true, envelope });
  });

  it('signs the keccak digest of the domain-separated canonical bytes without sig (checked independently)', () => {
    const { envelope, bytes } = sealEnvelope(signer, FIELDS);
    const unsigned = text(bytes).replace(/,"sig":"0x[0-9a-f]{130}"/, '');
    const digest = keccak_256(new Uint8Array([...preimagePrefix(CHAIN), ...bytesOf(unsigned)]));
    const sig = fromHex(envelope.sig);
    const rec = new Uint8Array([(sig[64] as number) - 27, ...sig.subarray(0, 64)]);
    const pub = secp256k1.recoverPublicKey(rec, digest, { prehash: false });
    expect(addressFromPublicKey(pub)).toBe(KEY.address);
    // Deterministic (RFC 6979): the same fields always give the same bytes.
    expect(sealEnvelope(signer, FIELDS).bytes).toEqual(bytes);
  });

  it('gives each envelope a fresh 16-byte id unless one is given', () => {
    const { id: _id, ...noId } = FIELDS;
    const a = sealEnvelope(signer, noId).envelope.id;
    const b = sealEnvelope(signer, noId).envelope.id;
    expect(a).toMatch(/^0x[0-9a-f]{32}$/);
    expect(a).not.toBe(b);
    expect(newEnvelopeId()).toMatch(/^0x[0-9a-f]{32}$/);
  });

  it('refuses to seal invalid fields, naming the field', () => {
    expect(() => sealEnvelope(signer, { ...FIELDS, kind: 'Block' })).toThrow(/kind/);
    expect(() => sealEnvelope(signer, { ...FIELDS, session: 0 })).toThrow(/session/);
    expect(() => sealEnvelope(signer, { ...FIELDS, seq: -1 })).toThrow(/seq/);
    expect(() => sealEnvelope(signer, { ...FIELDS, id: 'abc' })).toThrow(/id/);
    expect(() => sealEnvelope(signer, { ...FIELDS, body: { watts: 1.5 } })).toThrow(/watts.*integer/);
    expect(() => sealEnvelope(signer, { ...FIELDS, body: [] as never })).toThrow(EnvelopeError);
  });

  it('flags a replay as historical with the same id, session, seq and body, and a valid signature', () => {
    const { envelope } = sealEnvelope(signer, FIELDS);
    const replay = resealHistorical(signer, envelope);
    expect(replay.envelope).toMatchObject({ ...FIELDS, historical: true, from: KEY.address });
    expect(text(replay.bytes)).toContain('"historical":true');
    expect(openEnvelope(replay.bytes, { chainId: CHAIN })).toEqual({ ok: true, envelope: replay.envelope });
    expect(resealHistorical(signer, replay.envelope).bytes).toEqual(replay.bytes);
    expect(() => resealHistorical(other, envelope)).toThrow(/not from the signing key/);
  });

  it('opens awkward bodies (non-ASCII, escapes, integer-like keys, a sig look-alike) and refuses them altered', () => {
    const tail = `,"sig":"0x${'ee'.repeat(65)}","time":1,"v":1}`;
    const bodies = [
      { note: 'Zählpunkt ⚡ 𝄞 "quoted" \\ \n \u0001 \u2028', list: ['ü', 'end'] },
      { '10': 1, '9': 2, a: { '2': 'x', '11': 'y' } }, // JavaScript puts integer-like keys first: not sorted order
      { tail, nested: { sig: `0x${'00'.repeat(65)}`, time: 7, v: 1 } },
      {},
    ];
    for (const body of bodies) {
      const sealed = sealEnvelope(signer, { ...FIELDS, body });
      expect(openEnvelope(sealed.bytes, { chainId: CHAIN }), JSON.stringify(body)).toEqual({
        ok: true,
        envelope: sealed.envelope,
      });
      const tampered = bytesOf(text(sealed.bytes).replace('"kind":"block"', '"kind":"blocks"'));
      expect(rejected(openEnvelope(tampered, { chainId: CHAIN })).reason).toBe('bad-signature');
      const later = bytesOf(text(sealed.bytes).replace(`"time":${T0}`, `"time":${T0 + 1}`));
      expect(rejected(openEnvelope(later, { chainId: CHAIN })).reason).toBe('bad-signature');
    }
  });

  it('accepts a cached SignatureVerifier with the same verdicts', () => {
    const verifier = new SignatureVerifier();
    const good = sealEnvelope(signer, FIELDS).bytes;
    expect(openEnvelope(good, { chainId: CHAIN, verifier }).ok).toBe(true);
    expect(openEnvelope(good, { chainId: CHAIN, verifier }).ok).toBe(true);
    const forged = bytesOf(text(good).replace('"height":5', '"height":6'));
    expect(rejected(openEnvelope(forged, { chainId: CHAIN, verifier })).reason).toBe('bad-signature');
  });
});

describe('openEnvelope rejections', () => {
  const good = sealEnvelope(signer, FIELDS);
  const parsed = JSON.parse(text(good.bytes)) as Record<string, unknown>;

  it('oversized, before parsing anything', () => {
    const r = rejected(openEnvelope(good.bytes, { chainId: CHAIN, maxBytes: 100 }));
    expect(r.reason).toBe('oversized');
    expect(r.detail).toMatch(/\d+ bytes, more than the 100/);
  });

  it('malformed-json: not UTF-8, not JSON, not an object', () => {
    expect(rejected(openEnvelope(new Uint8Array([0xff, 0xfe]), { chainId: CHAIN })).reason).toBe('malformed-json');
    expect(rejected(openEnvelope(bytesOf('{"v":1'), { chainId: CHAIN })).reason).toBe('malformed-json');
    expect(rejected(openEnvelope(bytesOf('[1,2]'), { chainId: CHAIN })).reason).toBe('malformed-json');
    expect(rejected(openEnvelope(bytesOf('null'), { chainId: CHAIN })).reason).toBe('malformed-json');
    expect(rejected(openEnvelope('text' as never, { chainId: CHAIN })).reason).toBe('malformed-json');
  });

  it('not-canonical: whitespace, key order, floats', () => {
    const spaced = bytesOf(JSON.stringify(parsed, null, 1));
    const r = rejected(openEnvelope(spaced, { chainId: CHAIN }));
    expect(r.reason).toBe('not-canonical');
    expect(r.id).toBe(FIELDS.id);
    expect(r.detail).toContain(`id ${FIELDS.id}`);
    const reordered = bytesOf(JSON.stringify({ v: 1, ...parsed }));
    expect(rejected(openEnvelope(reordered, { chainId: CHAIN })).reason).toBe('not-canonical');
    const float = bytesOf(text(good.bytes).replace('"height":5', '"height":5.5'));
    expect(rejected(openEnvelope(float, { chainId: CHAIN })).reason).toBe('not-canonical');
    const escaped = bytesOf(text(good.bytes).replace('"kind":"block"', '"kind":"\\u0062lock"'));
    expect(rejected(openEnvelope(escaped, { chainId: CHAIN })).reason).toBe('not-canonical');
  });

  it('not-canonical: a byte order mark before the JSON (a second encoding of the same envelope)', () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...good.bytes]);
    const r = rejected(openEnvelope(bom, { chainId: CHAIN }));
    expect(r.reason).toBe('not-canonical');
    expect(r.detail).toMatch(/byte order mark/);
  });

  it('missing-field and unknown-field, listing the fields', () => {
    const { seq: _seq, time: _time, ...missing } = parsed;
    const r = rejected(openEnvelope(resign(missing), { chainId: CHAIN }));
    expect(r.reason).toBe('missing-field');
    expect(r.detail).toMatch(/seq, time/);
    const { v: _v, ...noVersion } = parsed;
    expect(rejected(openEnvelope(resign(noVersion), { chainId: CHAIN })).reason).toBe('missing-field');
    const extra = rejected(openEnvelope(resign({ ...parsed, to: KEY.address }), { chainId: CHAIN }));
    expect(extra.reason).toBe('unknown-field');
    expect(extra.detail).toMatch(/unknown field to/);
  });

  it('bad-field, naming the field', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ id: 'x' }, /id/],
      [{ id: `0x${'AB'.repeat(16)}` }, /id/],
      [{ kind: 'Block' }, /kind/],
      [{ from: KEY.address.toLowerCase() }, /EIP-55/],
      [{ session: 0 }, /session/],
      [{ seq: -1 }, /seq/],
      [{ time: -5 }, /time/],
      [{ chainId: -1 }, /chainId/],
      [{ body: 'text' }, /body/],
      [{ historical: false }, /historical/],
    ];
    for (const [edit, field] of cases) {
      const r = rejected(openEnvelope(resign({ ...parsed, ...edit }), { chainId: CHAIN }));
      expect(r.reason, JSON.stringify(edit)).toBe('bad-field');
      expect(r.detail, JSON.stringify(edit)).toMatch(field);
    }
    const badSig = bytesOf(text(good.bytes).replace(/"sig":"0x[0-9a-f]+"/, '"sig":"0x1234"'));
    expect(rejected(openEnvelope(badSig, { chainId: CHAIN })).detail).toMatch(/sig/);
  });

  it('unsupported-version says to upgrade', () => {
    const r = rejected(openEnvelope(resign({ ...parsed, v: 2 }), { chainId: CHAIN }));
    expect(r.reason).toBe('unsupported-version');
    expect(r.detail).toMatch(/upgrade/);
  });

  it('wrong-chain and wrong-sender', () => {
    const r = rejected(openEnvelope(good.bytes, { chainId: 1 }));
    expect(r.reason).toBe('wrong-chain');
    expect(r.detail).toMatch(/chain 4242.*chain 1/);
    expect(openEnvelope(good.bytes, { chainId: CHAIN, expectedFrom: KEY.address.toLowerCase() }).ok).toBe(true);
    const s = rejected(openEnvelope(good.bytes, { chainId: CHAIN, expectedFrom: OTHER.address }));
    expect(s.reason).toBe('wrong-sender');
    expect(s.from).toBe(KEY.address);
  });

  it('bad-signature: altered body, another key claiming our address, a replay onto another chain', () => {
    const altered = bytesOf(text(good.bytes).replace('"height":5', '"height":6'));
    expect(rejected(openEnvelope(altered, { chainId: CHAIN })).reason).toBe('bad-signature');
    const impostor = resign(parsed, OTHER.privateKey); // from says KEY, signed by OTHER
    expect(rejected(openEnvelope(impostor, { chainId: CHAIN })).reason).toBe('bad-signature');
    const moved = bytesOf(text(good.bytes).replace(`"chainId":${CHAIN}`, '"chainId":1'));
    expect(rejected(openEnvelope(moved, { chainId: 1 })).reason).toBe('bad-signature');
    const historical = bytesOf(text(good.bytes).replace('"id"', '"historical":true,"id"'));
    expect(rejected(openEnvelope(historical, { chainId: CHAIN })).reason).toBe('bad-signature');
  });

  it('never throws on random or truncated input', () => {
    const whole = good.bytes;
    for (let i = 0; i < 300; i++) {
      const junk = i % 2 === 0 ? new Uint8Array(randomBytes(i % 50)) : whole.subarray(0, (i * 7) % whole.length);
      expect(openEnvelope(junk, { chainId: CHAIN }).ok).toBe(false);
    }
    for (let i = 0; i < whole.length; i += 3) {
      const flipped = whole.slice();
      flipped[i] = (flipped[i] as number) ^ 0x01;
      expect(() => openEnvelope(flipped, { chainId: CHAIN })).not.toThrow();
      expect(openEnvelope(flipped, { chainId: CHAIN }).ok, `byte ${i} flipped`).toBe(false);
    }
  });
});

describe('EnvelopeSealer', () => {
  it('numbers a session 1, 2, 3 with the clock time; unsequenced envelopes take seq 0 and leave the count', () => {
    const clock = new ManualClock(T0);
    const sealer = new EnvelopeSealer({ signer, chainId: CHAIN, session: 9, clock });
    expect(sealer.seal('birth', {}).envelope).toMatchObject({ seq: 1, session: 9, time: T0, kind: 'birth' });
    clock.advance(1000);
    const will = sealer.sealUnsequenced('availability', { state: 'offline' }).envelope;
    expect(will).toMatchObject({ seq: 0, session: 9, time: T0 + 1000 });
    expect(sealer.seal('block', { height: 1 }).envelope.seq).toBe(2);
    expect(sealer.nextSeq).toBe(3);
  });

  it('does not consume a seq when sealing fails', () => {
    const sealer = new EnvelopeSealer({ signer, chainId: CHAIN, session: 1, clock: new ManualClock(T0) });
    expect(() => sealer.seal('block', { bad: 0.5 })).toThrow(EnvelopeError);
    expect(sealer.seal('block', {}).envelope.seq).toBe(1);
    expect(() => new EnvelopeSealer({ signer, chainId: CHAIN, session: 0, clock: new ManualClock() })).toThrow(
      /session/,
    );
  });
});
