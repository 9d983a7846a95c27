/**
 * secp256k1 key pairs and Ethereum-style addresses (keccak-256 of the uncompressed public key, last 20 bytes,
 * EIP-55 mixed-case checksum), so that any Ethereum tool can check who signed.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { fromHex, toHex, utf8 } from './bytes.js';
import { keccak256 } from './keccak.js';

export type Address = string;

export interface KeyPair {
  readonly privateKey: Uint8Array;
  /** 33-byte compressed public key. */
  readonly publicKey: Uint8Array;
  readonly address: Address;
}

/** keccak-256 (agent/identity/keccak.ts), exported here too because callers already import it from keys.js. */
export { keccak256 };

export function generateKeyPair(): KeyPair {
  return keyPairFromPrivateKey(secp256k1.utils.randomSecretKey());
}

export function keyPairFromPrivateKey(privateKey: Uint8Array): KeyPair {
  if (!secp256k1.utils.isValidSecretKey(privateKey)) {
    throw new Error('private key is not a valid secp256k1 scalar (must be 32 bytes, 0 < k < n)');
  }
  const publicKey = secp256k1.getPublicKey(privateKey, true);
  return { privateKey, publicKey, address: addressFromPublicKey(publicKey) };
}

/** Address of a compressed (33-byte) or uncompressed (65-byte) public key. */
export function addressFromPublicKey(publicKey: Uint8Array): Address {
  // fromBytes checks that the bytes are a point on the curve, in either form: 65 junk bytes have no address.
  const uncompressed = secp256k1.Point.fromBytes(publicKey).toBytes(false);
  const digest = keccak256(uncompressed.subarray(1));
  return toChecksumAddress(toHex(digest.subarray(12)));
}

export function addressFromPrivateKey(privateKey: Uint8Array): Address {
  return keyPairFromPrivateKey(privateKey).address;
}

/** EIP-55: each hex letter is upper-case when the matching nibble of keccak(lower-case hex) is >= 8. */
export function toChecksumAddress(address: string): Address {
  const bytes = fromHex(address, 'address', 20);
  const lower = toHex(bytes).slice(2);
  const hash = keccak256(utf8(lower));
  let out = '0x';
  for (let i = 0; i < 40; i++) {
    const nibble = ((hash[i >> 1] as number) >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    const c = lower[i] as string;
    out += nibble >= 8 ? c.toUpperCase() : c;
  }
  return out;
}

/**
 * Parses an address. All-lower or all-upper hex is accepted as is; mixed case must carry a valid EIP-55 checksum,
 * because a mixed-case typo is exactly what the checksum exists to catch.
 */
export function parseAddress(text: string, what = 'address'): Address {
  if (typeof text !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(text)) {
    throw new Error(`${what}: expected 0x followed by 40 hex digits, got ${JSON.stringify(text)}`);
  }
  const body = text.slice(2);
  const checksummed = toChecksumAddress(text);
  const mixed = body !== body.toLowerCase() && body !== body.toUpperCase();
  if (mixed && checksummed !== text) {
    throw new Error(`${what}: ${text} has a wrong EIP-55 checksum (did you mean ${checksummed}? check for a typo)`);
  }
  return checksummed;
}

export function isAddress(text: unknown): text is Address {
  try {
    parseAddress(text as string);
    return true;
  } catch {
    return false;
  }
}
