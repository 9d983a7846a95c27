/**
 * Domain-separated, Ethereum-compatible signatures.
 *
 * digest = keccak256(0x19 ‖ "mgmc" ‖ 0x00 ‖ typeTag ‖ 0x00 ‖ uint64be(chainId) ‖ canonicalBytes)
 * signature = r ‖ s ‖ v (65 bytes, low-s, v = 27 + recovery id), what Solidity's ecrecover takes.
 *
 * The 0x19 prefix (as in EIP-191) means a digest can never be confused with the hash of a signed Ethereum
 * transaction; the type tag and chain id mean a signature on one kind of object, or on one chain, is never valid for
 * another.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { concatBytes, toHex, utf8 } from './bytes.js';
import { keccak256 } from './keccak.js';
import { type Address, addressFromPublicKey } from './keys.js';
import { buildPointTable, type PointTable, verifyWithTable } from './point-table.js';

export const SIGNATURE_LENGTH = 65;
const PREFIX = concatBytes(new Uint8Array([0x19]), utf8('mgmc'), new Uint8Array([0]));
const TAG_RE = /^[a-z0-9][a-z0-9./-]{0,62}$/;

const { Point } = secp256k1;
const Fn = Point.Fn;
const HALF_N = Fn.ORDER >> 1n;

/** The 32-byte digest that is signed for an object of type `typeTag` on chain `chainId`. */
export function signingDigest(typeTag: string, chainId: number, canonical: Uint8Array): Uint8Array {
  if (!TAG_RE.test(typeTag)) throw new Error(`signature type tag ${JSON.stringify(typeTag)} is not a valid tag`);
  if (!Number.isSafeInteger(chainId) || chainId < 0)
    throw new Error(`chain id ${chainId} is not a non-negative integer`);
  const chain = new Uint8Array(8);
  new DataView(chain.buffer).setBigUint64(0, BigInt(chainId));
  return keccak256(concatBytes(PREFIX, utf8(typeTag), new Uint8Array([0]), chain, canonical));
}

/** Signs a 32-byte digest; returns r ‖ s ‖ v with low s and v in {27, 28}. */
export function signDigest(digest: Uint8Array, privateKey: Uint8Array): Uint8Array {
  checkDigest(digest);
  // noble returns recovery ‖ r ‖ s; prehash: false because the digest is already keccak (see NOTES: noble v2
  // would otherwise sign sha256(digest)).
  const rec = secp256k1.sign(digest, privateKey, { prehash: false, format: 'recovered', lowS: true });
  const out = new Uint8Array(SIGNATURE_LENGTH);
  out.set(rec.subarray(1, 65), 0);
  out[64] = 27 + (rec[0] as number);
  return out;
}

/** The public key (33 bytes, compressed) that made `signature` over `digest`; throws saying why it is malformed. */
export function recoverPublicKey(digest: Uint8Array, signature: Uint8Array): Uint8Array {
  // noble would silently truncate a longer input to 32 bytes, making a signature over d also "valid" for d ‖ junk.
  checkDigest(digest);
  const parsed = parseSignature(signature);
  const rec = new Uint8Array(65);
  rec[0] = parsed.recovery;
  rec.set(signature.subarray(0, 64), 1);
  return secp256k1.recoverPublicKey(rec, digest, { prehash: false });
}

/** Address of the key that made `signature` over `digest`, or a thrown Error saying why it is malformed. */
export function recoverAddress(digest: Uint8Array, signature: Uint8Array): Address {
  return addressFromPublicKey(recoverPublicKey(digest, signature));
}

/** True when `signature` over `digest` was made by `address`. Never throws on malformed input. */
export function verifyDigest(digest: Uint8Array, signature: Uint8Array, address: Address): boolean {
  try {
    return recoverAddress(digest, signature).toLowerCase() === address.toLowerCase();
  } catch {
    return false;
  }
}

interface ParsedSignature {
  r: bigint;
  s: bigint;
  recovery: number;
}

function parseSignature(signature: Uint8Array): ParsedSignature {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) {
    throw new Error(`signature must be ${SIGNATURE_LENGTH} bytes (r ‖ s ‖ v), got ${signature?.length ?? 'none'}`);
  }
  const v = signature[64] as number;
  if (v !== 27 && v !== 28) throw new Error(`signature v must be 27 or 28, got ${v}`);
  const r = bytesToBigInt(signature.subarray(0, 32));
  const s = bytesToBigInt(signature.subarray(32, 64));
  if (r <= 0n || r >= Fn.ORDER) throw new Error('signature r is out of range');
  // High-s signatures are malleable twins of valid ones; accepting them would let anyone make a second valid
  // signature for a block and so a second "different" block id.
  if (s <= 0n || s > HALF_N) throw new Error('signature s is zero or not low-s');
  return { r, s, recovery: v - 27 };
}

function checkDigest(digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new Error('digest must be 32 bytes');
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  return BigInt(toHex(bytes));
}

/**
 * Verifies many signatures from a few signers quickly. The first signature of each address is checked by public-key
 * recovery; the recovered key is then kept with a precomputed table (agent/identity/point-table.ts), which makes
 * later checks ~5x faster than recovery (a chain of blocks from one producer, the batches of one meter). Results are
 * identical to `verifyDigest`, including the recovery id (v) check, so a signature accepted here also passes
 * ecrecover.
 *
 * Memory: one table per remembered key (window 6: ~150 KB); at `maxKeys` the least recently learned key is dropped.
 */
export class SignatureVerifier {
  private readonly keys = new Map<string, PointTable>();

  /**
   * @param maxKeys keys remembered at once
   * @param window table window per key: 6 (default) is ~150 KB and ~12 ms to build, 8 is ~470 KB and ~35 ms and
   *   about 7 % faster per signature
   */
  constructor(
    private readonly maxKeys = 256,
    private readonly window = 6,
  ) {
    if (!(Number.isSafeInteger(maxKeys) && maxKeys >= 1)) throw new RangeError('maxKeys must be an integer >= 1');
    if (!(Number.isSafeInteger(window) && window >= 2 && window <= 12)) {
      throw new RangeError('window must be an integer 2..12');
    }
  }

  /** Number of keys remembered (for metrics and tests). */
  get size(): number {
    return this.keys.size;
  }

  verify(digest: Uint8Array, signature: Uint8Array, address: Address): boolean {
    try {
      checkDigest(digest);
      const key = address.toLowerCase();
      const table = this.keys.get(key);
      if (table === undefined) return this.learn(digest, signature, key);
      const { r, s, recovery } = parseSignature(signature);
      return verifyWithTable(table, bytesToBigInt(digest), r, s, recovery);
    } catch {
      return false;
    }
  }

  private learn(digest: Uint8Array, signature: Uint8Array, key: string): boolean {
    const parsed = parseSignature(signature);
    const rec = new Uint8Array(65);
    rec[0] = parsed.recovery;
    rec.set(signature.subarray(0, 64), 1);
    const publicKey = secp256k1.recoverPublicKey(rec, digest, { prehash: false });
    if (addressFromPublicKey(publicKey).toLowerCase() !== key) return false;
    if (this.keys.size >= this.maxKeys) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    this.keys.set(key, buildPointTable(Point.fromBytes(publicKey), this.window));
    return true;
  }
}
