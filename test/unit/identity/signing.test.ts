import { readFile } from 'node:fs/promises';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import {
  recoverAddress,
  SIGNATURE_LENGTH,
  SignatureVerifier,
  signDigest,
  signingDigest,
  verifyDigest,
} from '../../../agent/identity/signing.js';

interface SigningVector {
  name: string;
  privateKey: string;
  address: string;
  tag: string;
  chainId: number;
  canonicalUtf8: string;
  preimage: string;
  digest: string;
  signature: string;
}

const vectorFile = JSON.parse(await readFile(new URL('../../vectors/signing.json', import.meta.url), 'utf8')) as {
  vectors: SigningVector[];
};

const N = secp256k1.Point.Fn.ORDER;
const HALF_N = N >> 1n;

// --- independent helpers (no code from agent/identity beyond hex conversion) ---

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);

function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) out.push(...p);
  return Uint8Array.from(out);
}

/** Big-endian 8 bytes, built with BigInt arithmetic rather than DataView. */
function u64be(value: number): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  for (let i = 0; i < 8; i++) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

/** The mgmc digest preimage, assembled byte by byte: 0x19 ‖ "mgmc" ‖ 0x00 ‖ tag ‖ 0x00 ‖ uint64be(chain) ‖ bytes. */
function handPreimage(tag: string, chainId: number, canonical: Uint8Array): Uint8Array {
  return cat([0x19, 0x6d, 0x67, 0x6d, 0x63, 0x00], enc(tag), [0x00], u64be(chainId), canonical);
}

/** Ethereum personal_sign / eth_sign hash (EIP-191 version 0x45): keccak256("\x19Ethereum Signed Message:\n" + len + m). */
function eip191Hash(message: string): Uint8Array {
  const bytes = enc(message);
  return keccak_256(cat(enc(`\x19Ethereum Signed Message:\n${bytes.length}`), bytes));
}

/** Deterministic pseudo-random 32 bytes, so that failures reproduce. */
function det(label: string, i: number): Uint8Array {
  return keccak_256(enc(`mgmc signing test ${label} ${i}`));
}

function toBig(bytes: Uint8Array): bigint {
  return BigInt(toHex(bytes));
}

function big32(value: bigint): Uint8Array {
  return fromHex(`0x${value.toString(16).padStart(64, '0')}`);
}

function withR(sig: Uint8Array, r: bigint): Uint8Array {
  const out = Uint8Array.from(sig);
  out.set(big32(r), 0);
  return out;
}

function withS(sig: Uint8Array, s: bigint): Uint8Array {
  const out = Uint8Array.from(sig);
  out.set(big32(s), 32);
  return out;
}

function withV(sig: Uint8Array, v: number): Uint8Array {
  const out = Uint8Array.from(sig);
  out[64] = v;
  return out;
}

function flipByte(bytes: Uint8Array, index: number, mask = 0x01): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[index] = (out[index] as number) ^ mask;
  return out;
}

/** The malleable twin of a low-s signature: (r, n - s) with the other recovery id. A valid ECDSA signature. */
function highSTwin(sig: Uint8Array): Uint8Array {
  const s = toBig(sig.subarray(32, 64));
  return withV(withS(sig, N - s), (sig[64] as number) === 27 ? 28 : 27);
}

const keys: KeyPair[] = Array.from({ length: 6 }, (_, i) => keyPairFromPrivateKey(det('key', i)));
const alice = keys[0] as KeyPair;
const bob = keys[1] as KeyPair;

/**
 * Signatures published by Ethereum libraries over EIP-191 personal-message hashes. They are not our domain format;
 * they show that signDigest/recoverAddress produce and read exactly what ecrecover and other wallets do for a digest.
 */
const ETHEREUM_VECTORS = [
  {
    source: 'web3.js 1.x docs, docs/web3-eth-accounts.rst, accounts.sign / accounts.recover',
    privateKey: '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318',
    address: '0x2c7536E3605D9C16a7a3D7b1898e529396a65c23',
    message: 'Some data',
    messageHash: '0x1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655',
    r: '0xb91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd',
    s: '0x6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a029',
    v: 0x1c,
  },
  {
    source: 'web3.js 4.x docs, https://docs.web3js.org/api/web3-eth-accounts/function/recover',
    privateKey: '0xbe6383dad004f233317e46ddb46ad31b16064d14447a95cc1d8c8d4bc61c3728',
    address: '0xEB014f8c8B418Db6b45774c326A0E64C78914dC0',
    message: 'Some data',
    messageHash: '0x1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655',
    r: '0xa8037a6116c176a25e6fc224947fde9e79a2deaa0dd8b67b366fbdfdbffc01f9',
    s: '0x53e41351267b20d4a89ebfe9c8f03c04de9b345add4a52f15bd026b63c8fb150',
    v: 0x1b,
  },
  {
    source: 'viem src/accounts/utils/sign.test.ts (Anvil account #0), same signature as signMessage("hello world")',
    privateKey: '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
    address: '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266',
    message: 'hello world',
    messageHash: '0xd9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68',
    r: '0xa461f509887bd19e312c0c58467ce8ff8e300d3c1a90b608a760c5b80318eaf1',
    s: '0x5fe57c96f9175d6cd4daad4663763baa7e78836e067d0163e9a2ccf2ff753f5b',
    v: 27,
  },
] as const;

describe('signingDigest', () => {
  it.each(vectorFile.vectors)('matches the independent computation for vector "$name"', (v) => {
    const canonical = enc(v.canonicalUtf8);
    const preimage = handPreimage(v.tag, v.chainId, canonical);
    expect(toHex(preimage)).toBe(v.preimage);
    expect(toHex(keccak_256(preimage))).toBe(v.digest);
    expect(toHex(signingDigest(v.tag, v.chainId, canonical))).toBe(v.digest);
  });

  it('encodes the chain id as 8 big-endian bytes', () => {
    expect(u64be(Number.MAX_SAFE_INTEGER)).toEqual([0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for (const chainId of [0, 1, 255, 256, 31337, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]) {
      const bytes = enc('{"x":1}');
      expect(toHex(signingDigest('mgmc/block-header/v1', chainId, bytes))).toBe(
        toHex(keccak_256(handPreimage('mgmc/block-header/v1', chainId, bytes))),
      );
    }
  });

  it('separates domains: the tag, the chain id and the bytes all change the digest', () => {
    const bytes = enc('{"height":7}');
    const digests = [
      signingDigest('mgmc/block-header/v1', 1, bytes),
      signingDigest('mgmc/meter-batch/v1', 1, bytes),
      signingDigest('mgmc/block-header/v2', 1, bytes),
      signingDigest('mgmc/block-header/v1', 0, bytes),
      signingDigest('mgmc/block-header/v1', 2, bytes),
      signingDigest('mgmc/block-header/v1', 256, bytes),
      signingDigest('mgmc/block-header/v1', 1, enc('{"height":8}')),
      // Moving a byte between the tag and the payload must not give the same preimage.
      signingDigest('mgmc/block-header/v1x', 1, bytes),
      signingDigest('mgmc/block-header/v1', 1, cat(enc('x'), bytes)),
      // And the digest is never an Ethereum personal-message hash of the same bytes.
      eip191Hash('{"height":7}'),
    ].map(toHex);
    expect(new Set(digests).size).toBe(digests.length);
  });

  it.each([
    ['an empty tag', ''],
    ['an upper-case tag', 'MGMC/block'],
    ['a tag with a space', 'mgmc/block header'],
    ['a tag with a NUL byte', 'mgmc\u0000block'],
    ['a tag starting with a slash', '/mgmc'],
    ['a 64-character tag', 'a'.repeat(64)],
  ])('rejects %s', (_label, tag) => {
    expect(() => signingDigest(tag, 1, new Uint8Array(0))).toThrow(
      `signature type tag ${JSON.stringify(tag)} is not a valid tag`,
    );
  });

  it('accepts a 63-character tag', () => {
    expect(signingDigest('a'.repeat(63), 1, new Uint8Array(0))).toHaveLength(32);
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])('rejects the chain id %s', (chainId) => {
    expect(() => signingDigest('mgmc/block-header/v1', chainId, new Uint8Array(0))).toThrow(
      `chain id ${chainId} is not a non-negative integer`,
    );
  });
});

describe('fixed vectors (test/vectors/signing.json)', () => {
  it.each(vectorFile.vectors)('signs and verifies vector "$name"', (v) => {
    const kp = keyPairFromPrivateKey(fromHex(v.privateKey));
    expect(kp.address).toBe(v.address);
    const digest = fromHex(v.digest, 'digest', 32);
    const signature = fromHex(v.signature, 'signature', 65);
    expect(toHex(signDigest(digest, kp.privateKey))).toBe(v.signature);
    expect(recoverAddress(digest, signature)).toBe(v.address);
    expect(verifyDigest(digest, signature, v.address)).toBe(true);
    expect(new SignatureVerifier().verify(digest, signature, v.address)).toBe(true);
    // Independent check with noble directly: a standard ECDSA signature over the digest, low s.
    const s = toBig(signature.subarray(32, 64));
    expect(s <= HALF_N).toBe(true);
    expect(secp256k1.verify(signature.subarray(0, 64), digest, kp.publicKey, { prehash: false })).toBe(true);
  });
});

describe('interoperability with Ethereum signatures', () => {
  it('computes EIP-191 hashes like web3.js (hashMessage("Hello World") from the web3.js 1.x docs)', () => {
    expect(toHex(eip191Hash('Hello World'))).toBe('0xa1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2');
  });

  it.each(ETHEREUM_VECTORS)('reproduces and recovers the published signature: $source', (v) => {
    const digest = eip191Hash(v.message);
    expect(toHex(digest)).toBe(v.messageHash);
    const published = cat(fromHex(v.r), fromHex(v.s), [v.v]);
    // RFC 6979 nonces: the same key and digest give the very same bytes as the Ethereum library did.
    expect(toHex(signDigest(digest, fromHex(v.privateKey)))).toBe(toHex(published));
    expect(recoverAddress(digest, published)).toBe(v.address);
    expect(verifyDigest(digest, published, v.address)).toBe(true);
    expect(new SignatureVerifier().verify(digest, published, v.address)).toBe(true);
  });

  it('reproduces a published v = 28 signature over a raw hash (viem sign.test.ts, Anvil account #0)', () => {
    const digest = fromHex('0x9a74cb859ad30835ffb2da406423233c212cf6dd78e6c2c98b0c9289568954ae');
    const expected =
      '0xc4d8bcda762d35ea79d9542b23200f46c2c1899db15bf929bbacaf609581db08' +
      '31538374a01206517edd934e474212a0f1e2d62e9a01cd64f1cf94ea2e098849' +
      '1c';
    const priv = fromHex('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80');
    expect(toHex(signDigest(digest, priv))).toBe(expected);
    expect(recoverAddress(digest, fromHex(expected))).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
  });
});

describe('signDigest and recoverAddress', () => {
  it('round-trips with 65-byte low-s signatures and v in {27, 28}', () => {
    const vs = new Set<number>();
    for (let i = 0; i < 120; i++) {
      const kp = keys[i % keys.length] as KeyPair;
      const digest = det('round trip', i);
      const sig = signDigest(digest, kp.privateKey);
      expect(sig).toHaveLength(SIGNATURE_LENGTH);
      const v = sig[64] as number;
      expect([27, 28]).toContain(v);
      vs.add(v);
      const r = toBig(sig.subarray(0, 32));
      const s = toBig(sig.subarray(32, 64));
      expect(r > 0n && r < N).toBe(true);
      expect(s > 0n && s <= HALF_N).toBe(true);
      expect(recoverAddress(digest, sig)).toBe(kp.address);
      expect(verifyDigest(digest, sig, kp.address)).toBe(true);
      expect(verifyDigest(digest, sig, kp.address.toLowerCase())).toBe(true);
    }
    // Both recovery ids occur (each has probability 1/2 per signature).
    expect(vs).toEqual(new Set([27, 28]));
  });

  it('is deterministic (RFC 6979): the same digest and key give the same bytes', () => {
    for (let i = 0; i < 10; i++) {
      const digest = det('deterministic', i);
      const a = signDigest(digest, alice.privateKey);
      const b = signDigest(Uint8Array.from(digest), Uint8Array.from(alice.privateKey));
      expect(toHex(a)).toBe(toHex(b));
      expect(toHex(signDigest(det('deterministic other', i), alice.privateKey))).not.toBe(toHex(a));
      expect(toHex(signDigest(digest, bob.privateKey))).not.toBe(toHex(a));
    }
  });

  it('signs the digest as given, without hashing it again', () => {
    const digest = det('prehash', 0);
    const sig = signDigest(digest, alice.privateKey);
    expect(secp256k1.verify(sig.subarray(0, 64), digest, alice.publicKey, { prehash: false })).toBe(true);
  });

  it('rejects a digest that is not 32 bytes when signing', () => {
    for (const len of [0, 31, 33, 64]) {
      expect(() => signDigest(new Uint8Array(len), alice.privateKey)).toThrow('digest must be 32 bytes');
    }
  });

  it('a signature made for one domain does not verify in another', () => {
    const bytes = enc('{"height":42,"prev":"0xabc"}');
    const digest = signingDigest('mgmc/block-header/v1', 1, bytes);
    const sig = signDigest(digest, alice.privateKey);
    expect(verifyDigest(digest, sig, alice.address)).toBe(true);
    const others = [
      signingDigest('mgmc/meter-batch/v1', 1, bytes),
      signingDigest('mgmc/block-header/v1', 2, bytes),
      signingDigest('mgmc/block-header/v1', 0, bytes),
      eip191Hash('{"height":42,"prev":"0xabc"}'),
    ];
    const verifier = new SignatureVerifier();
    expect(verifier.verify(digest, sig, alice.address)).toBe(true);
    for (const other of others) {
      expect(verifyDigest(other, sig, alice.address)).toBe(false);
      expect(verifier.verify(other, sig, alice.address)).toBe(false);
      // Recovery either fails or names someone else.
      let recovered: string | undefined;
      try {
        recovered = recoverAddress(other, sig);
      } catch {
        recovered = undefined;
      }
      expect(recovered).not.toBe(alice.address);
    }
  });
});

describe('tampering and malformed signatures', () => {
  const digest = det('tamper', 0);
  const sig = signDigest(digest, alice.privateKey);

  it('fails when any byte of r, s or v, or of the digest, is changed', () => {
    const cached = new SignatureVerifier();
    expect(cached.verify(digest, sig, alice.address)).toBe(true);
    for (let i = 0; i < SIGNATURE_LENGTH; i++) {
      for (const mask of [0x01, 0x80]) {
        const bad = flipByte(sig, i, mask);
        expect(verifyDigest(digest, bad, alice.address), `signature byte ${i} ^ ${mask}`).toBe(false);
        expect(cached.verify(digest, bad, alice.address), `cached, signature byte ${i} ^ ${mask}`).toBe(false);
        expect(new SignatureVerifier().verify(digest, bad, alice.address), `fresh, byte ${i} ^ ${mask}`).toBe(false);
      }
    }
    for (let i = 0; i < 32; i++) {
      const bad = flipByte(digest, i);
      expect(verifyDigest(bad, sig, alice.address), `digest byte ${i}`).toBe(false);
      expect(cached.verify(bad, sig, alice.address), `cached, digest byte ${i}`).toBe(false);
    }
  });

  it('fails when v is swapped between 27 and 28 (the other candidate key is recovered)', () => {
    const swapped = withV(sig, (sig[64] as number) === 27 ? 28 : 27);
    let recovered: string | undefined;
    try {
      recovered = recoverAddress(digest, swapped);
    } catch {
      recovered = undefined;
    }
    expect(recovered).not.toBe(alice.address);
    expect(verifyDigest(digest, swapped, alice.address)).toBe(false);
    const cached = new SignatureVerifier();
    expect(cached.verify(digest, sig, alice.address)).toBe(true);
    expect(cached.verify(digest, swapped, alice.address)).toBe(false);
  });

  it('rejects the high-s twin, although it is a valid ECDSA signature', () => {
    for (let i = 0; i < 10; i++) {
      const d = det('high s', i);
      const low = signDigest(d, alice.privateKey);
      const twin = highSTwin(low);
      // The twin really is valid ECDSA for the same key (noble with lowS: false agrees) …
      expect(secp256k1.verify(twin.subarray(0, 64), d, alice.publicKey, { prehash: false, lowS: false })).toBe(true);
      // … but we refuse it, on every path.
      expect(() => recoverAddress(d, twin)).toThrow('signature s is zero or not low-s');
      expect(verifyDigest(d, twin, alice.address)).toBe(false);
      expect(new SignatureVerifier().verify(d, twin, alice.address)).toBe(false);
      const cached = new SignatureVerifier();
      expect(cached.verify(d, low, alice.address)).toBe(true);
      expect(cached.verify(d, twin, alice.address)).toBe(false);
    }
  });

  it.each([
    ['r = 0', () => withR(sig, 0n), 'signature r is out of range'],
    ['r = n', () => withR(sig, N), 'signature r is out of range'],
    ['r = n + 1', () => withR(sig, N + 1n), 'signature r is out of range'],
    ['r = 2^256 - 1', () => withR(sig, 2n ** 256n - 1n), 'signature r is out of range'],
    ['s = 0', () => withS(sig, 0n), 'signature s is zero or not low-s'],
    ['s = n/2 + 1', () => withS(sig, HALF_N + 1n), 'signature s is zero or not low-s'],
    ['s = n', () => withS(sig, N), 'signature s is zero or not low-s'],
    ['s = 2^256 - 1', () => withS(sig, 2n ** 256n - 1n), 'signature s is zero or not low-s'],
    ['v = 0', () => withV(sig, 0), 'signature v must be 27 or 28, got 0'],
    ['v = 1', () => withV(sig, 1), 'signature v must be 27 or 28, got 1'],
    ['v = 26', () => withV(sig, 26), 'signature v must be 27 or 28, got 26'],
    ['v = 29', () => withV(sig, 29), 'signature v must be 27 or 28, got 29'],
    ['v = 37 (EIP-155 style)', () => withV(sig, 37), 'signature v must be 27 or 28, got 37'],
    ['64 bytes', () => sig.subarray(0, 64), 'signature must be 65 bytes (r ‖ s ‖ v), got 64'],
    ['66 bytes', () => cat(sig, [0]), 'signature must be 65 bytes (r ‖ s ‖ v), got 66'],
    ['0 bytes', () => new Uint8Array(0), 'signature must be 65 bytes (r ‖ s ‖ v), got 0'],
  ])('rejects %s with a clear message, and verification says false', (_label, make, message) => {
    const bad = make();
    expect(() => recoverAddress(digest, bad)).toThrow(message);
    expect(verifyDigest(digest, bad, alice.address)).toBe(false);
    expect(new SignatureVerifier().verify(digest, bad, alice.address)).toBe(false);
    const cached = new SignatureVerifier();
    expect(cached.verify(digest, sig, alice.address)).toBe(true);
    expect(cached.verify(digest, bad, alice.address)).toBe(false);
  });

  it('never throws from verifyDigest or SignatureVerifier.verify on garbage', () => {
    const garbage: unknown[] = [undefined, null, 'x', 65, Array.from(sig), {}];
    const verifier = new SignatureVerifier();
    for (const g of garbage) {
      expect(verifyDigest(digest, g as Uint8Array, alice.address)).toBe(false);
      expect(verifier.verify(digest, g as Uint8Array, alice.address)).toBe(false);
      expect(verifyDigest(g as Uint8Array, sig, alice.address)).toBe(false);
      expect(verifier.verify(g as Uint8Array, sig, alice.address)).toBe(false);
    }
    expect(verifyDigest(digest, sig, 'not an address')).toBe(false);
    expect(verifier.verify(digest, sig, 'not an address')).toBe(false);
  });

  // noble truncates a longer "digest" to its first 32 bytes; without the length check a signature over d would also
  // "verify" for d ‖ anything, and verifyDigest would disagree with SignatureVerifier.
  it('recoverAddress rejects a digest that is not 32 bytes', () => {
    expect(() => recoverAddress(cat(digest, [0x00]), sig)).toThrow('digest must be 32 bytes');
  });

  it('verifyDigest agrees with SignatureVerifier on digests that are not 32 bytes', () => {
    for (const d of [cat(digest, [0x00]), cat(digest, digest), digest.subarray(0, 31), new Uint8Array(0)]) {
      expect(verifyDigest(d, sig, alice.address)).toBe(new SignatureVerifier().verify(d, sig, alice.address));
    }
  });
});

describe('SignatureVerifier agrees with verifyDigest', () => {
  type Case = { digest: Uint8Array; signature: Uint8Array; address: string };

  /** ~300 cases: valid ones, and the ways a signature is wrong in practice. */
  function makeCases(count: number): Case[] {
    const cases: Case[] = [];
    for (let i = 0; i < count; i++) {
      const signer = keys[i % keys.length] as KeyPair;
      const other = keys[(i + 1) % keys.length] as KeyPair;
      const digest = det('agree digest', i);
      const noise = det('agree noise', i);
      const sig = signDigest(digest, signer.privateKey);
      const pos = (noise[0] as number) % SIGNATURE_LENGTH;
      switch (i % 12) {
        case 0:
          cases.push({ digest, signature: sig, address: signer.address });
          break;
        case 1:
          cases.push({ digest, signature: sig, address: signer.address.toLowerCase() });
          break;
        case 2: // someone else's address claimed
          cases.push({ digest, signature: sig, address: other.address });
          break;
        case 3: // an address no key of ours has
          cases.push({ digest, signature: sig, address: toHex(noise.subarray(0, 20)) });
          break;
        case 4:
          cases.push({
            digest,
            signature: flipByte(sig, pos, 1 << ((noise[1] as number) % 8)),
            address: signer.address,
          });
          break;
        case 5:
          cases.push({ digest: flipByte(digest, (noise[2] as number) % 32), signature: sig, address: signer.address });
          break;
        case 6:
          cases.push({ digest, signature: highSTwin(sig), address: signer.address });
          break;
        case 7:
          cases.push({ digest, signature: withV(sig, (sig[64] as number) === 27 ? 28 : 27), address: signer.address });
          break;
        case 8: // a real signature of the claimed signer, but over another digest
          cases.push({
            digest,
            signature: signDigest(det('agree replay', i), signer.privateKey),
            address: signer.address,
          });
          break;
        case 9: // another key's signature over this digest, claimed as the signer's
          cases.push({ digest, signature: signDigest(digest, other.privateKey), address: signer.address });
          break;
        case 10: // forged: random r and s, valid-looking v
          cases.push({
            digest,
            signature: cat(noise, det('agree noise 2', i), [27 + (i % 2)]),
            address: signer.address,
          });
          break;
        default:
          cases.push({
            digest,
            signature: withS(sig, (noise[3] as number) % 2 === 0 ? 0n : N),
            address: signer.address,
          });
      }
    }
    return cases;
  }

  const cases = makeCases(300);

  it('over 300 mixed cases, with a shared (cached), a fresh and a tiny-cache verifier', () => {
    const shared = new SignatureVerifier();
    const tiny = new SignatureVerifier(2);
    let accepted = 0;
    for (const [i, c] of cases.entries()) {
      const expected = verifyDigest(c.digest, c.signature, c.address);
      if (expected) accepted++;
      expect(shared.verify(c.digest, c.signature, c.address), `case ${i} (shared)`).toBe(expected);
      expect(new SignatureVerifier().verify(c.digest, c.signature, c.address), `case ${i} (fresh)`).toBe(expected);
      expect(tiny.verify(c.digest, c.signature, c.address), `case ${i} (tiny cache)`).toBe(expected);
    }
    // Cases 0 and 1 of every 12 are valid; every other kind must be refused.
    expect(accepted).toBe(50);
  });

  it('agrees again when the same cases are replayed in reverse order (cache already warm)', () => {
    const shared = new SignatureVerifier();
    for (const c of cases) shared.verify(c.digest, c.signature, c.address);
    for (const [i, c] of [...cases.entries()].reverse()) {
      expect(shared.verify(c.digest, c.signature, c.address), `case ${i}`).toBe(
        verifyDigest(c.digest, c.signature, c.address),
      );
    }
  });

  it('verifies many signatures from one key on the cached path, and still refuses tampered ones', () => {
    const verifier = new SignatureVerifier();
    for (let i = 0; i < 150; i++) {
      const digest = det('one key', i);
      const sig = signDigest(digest, alice.privateKey);
      expect(verifier.verify(digest, sig, alice.address)).toBe(true);
      const bad = flipByte(sig, i % SIGNATURE_LENGTH);
      expect(verifier.verify(digest, bad, alice.address)).toBe(verifyDigest(digest, bad, alice.address));
      expect(verifier.verify(digest, bad, alice.address)).toBe(false);
      // Bob's valid signature is not Alice's, even though Alice's key is cached.
      expect(verifier.verify(digest, signDigest(digest, bob.privateKey), alice.address)).toBe(false);
    }
  });

  it('interleaves several keys, including with a cache smaller than the number of keys', () => {
    // A key evicted from a small cache is learned again (with a new precomputed table), so keep the loop short.
    for (const verifier of [new SignatureVerifier(), new SignatureVerifier(3), new SignatureVerifier(1)]) {
      for (let i = 0; i < 24; i++) {
        const kp = keys[(i * 5) % keys.length] as KeyPair;
        const digest = det('several', i);
        const sig = signDigest(digest, kp.privateKey);
        expect(verifier.verify(digest, sig, kp.address)).toBe(true);
        expect(verifier.verify(digest, highSTwin(sig), kp.address)).toBe(false);
        const wrong = keys[(i * 5 + 1) % keys.length] as KeyPair;
        expect(verifier.verify(digest, sig, wrong.address)).toBe(false);
      }
    }
  });

  it('does not cache a key from a signature that failed', () => {
    const verifier = new SignatureVerifier();
    const digest = det('no cache on failure', 0);
    // Bob's signature claimed for Alice: refused, and must not make Bob's key "Alice's".
    expect(verifier.verify(digest, signDigest(digest, bob.privateKey), alice.address)).toBe(false);
    const d2 = det('no cache on failure', 1);
    expect(verifier.verify(d2, signDigest(d2, bob.privateKey), alice.address)).toBe(false);
    expect(verifier.verify(d2, signDigest(d2, alice.privateKey), alice.address)).toBe(true);
  });
});

describe('SignatureVerifier options', () => {
  it('agrees with recovery for every table window, including a warm cache', () => {
    for (const window of [2, 4, 8]) {
      const verifier = new SignatureVerifier(4, window);
      for (let i = 0; i < 12; i++) {
        const kp = keys[i % 3] as KeyPair;
        const digest = det(`window ${window}`, i);
        const sig = signDigest(digest, kp.privateKey);
        expect(verifier.verify(digest, sig, kp.address)).toBe(true);
        // v 27 <-> 28: the other recovery id names another key.
        expect(verifier.verify(digest, flipByte(sig, 64, 0x07), kp.address)).toBe(false);
        expect(verifier.verify(det('other', i), sig, kp.address)).toBe(false);
      }
    }
  });

  it('remembers at most maxKeys keys, dropping the one learned first', () => {
    const verifier = new SignatureVerifier(2);
    const [a, b, c] = keys as [KeyPair, KeyPair, KeyPair];
    for (const kp of [a, b, c]) {
      const digest = det('evict', 0);
      expect(verifier.verify(digest, signDigest(digest, kp.privateKey), kp.address)).toBe(true);
    }
    expect(verifier.size).toBe(2);
    // a was dropped and is learned again by recovery; the answers never change.
    const digest = det('evict', 1);
    expect(verifier.verify(digest, signDigest(digest, a.privateKey), a.address)).toBe(true);
    expect(verifier.size).toBe(2);
  });

  it('refuses unusable options', () => {
    expect(() => new SignatureVerifier(0)).toThrow(/maxKeys/);
    expect(() => new SignatureVerifier(8, 1)).toThrow(/window/);
    expect(() => new SignatureVerifier(8, 13)).toThrow(/window/);
  });
});
