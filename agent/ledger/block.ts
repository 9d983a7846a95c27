/**
 * Block headers: {version, chainId, height, prev, root, time, count, producer} plus the producer's signature.
 * The header hash is the domain-separated signing digest of the canonical header (type tag mgmc/block-header/v1), so
 * the hash that links blocks is the same 32 bytes the producer signed and that ecrecover checks.
 */
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { type SignatureVerifier, signDigest, signingDigest, verifyDigest } from '../identity/signing.js';
import { canonicalBytes, parseCanonical } from './canonical.js';

export const BLOCK_VERSION = 1;
export const BLOCK_HEADER_TAG = 'mgmc/block-header/v1';
export const ZERO_HASH = `0x${'00'.repeat(32)}`;

export interface BlockHeader {
  readonly version: number;
  readonly chainId: number;
  /** 1 for the first block. */
  readonly height: number;
  /** Hash of the previous header; ZERO_HASH for height 1. */
  readonly prev: string;
  /** RFC 9162 Merkle root over the canonical bytes of the block's records, in seq order. */
  readonly root: string;
  readonly time: number;
  readonly count: number;
  readonly producer: Address;
}

export interface SignedBlock {
  readonly header: BlockHeader;
  /** 0x-hex of the header hash (the signed digest). */
  readonly hash: string;
  /** 0x-hex of the 65-byte signature r ‖ s ‖ v. */
  readonly signature: string;
}

/** Anything that can sign a digest: a key in memory today, a hardware key or a remote signer tomorrow. */
export interface Signer {
  readonly address: Address;
  signDigest(digest: Uint8Array): Uint8Array;
}

export function signerFromPrivateKey(privateKey: Uint8Array, address: Address): Signer {
  return { address, signDigest: (digest) => signDigest(digest, privateKey) };
}

export function encodeHeader(header: BlockHeader): Uint8Array {
  return canonicalBytes({
    version: header.version,
    chainId: header.chainId,
    height: header.height,
    prev: header.prev,
    root: header.root,
    time: header.time,
    count: header.count,
    producer: header.producer,
  });
}

export function headerHash(header: BlockHeader): Uint8Array {
  return signingDigest(BLOCK_HEADER_TAG, header.chainId, encodeHeader(header));
}

export function signHeader(header: BlockHeader, signer: Signer): SignedBlock {
  if (header.producer !== signer.address) {
    throw new Error(`block producer ${header.producer} is not the signing key ${signer.address}`);
  }
  const digest = headerHash(header);
  return { header, hash: toHex(digest), signature: toHex(signer.signDigest(digest)) };
}

/** True when the signature over the header was made by the header's producer. */
export function verifyHeaderSignature(block: SignedBlock, verifier?: SignatureVerifier): boolean {
  let signature: Uint8Array;
  try {
    signature = fromHex(block.signature, 'block signature', 65);
  } catch {
    return false;
  }
  const digest = headerHash(block.header);
  return verifier
    ? verifier.verify(digest, signature, block.header.producer)
    : verifyDigest(digest, signature, block.header.producer);
}

/** Parses a header from canonical bytes or a parsed object; throws an Error naming the bad field. */
export function decodeHeader(input: Uint8Array | string | object, where = 'block header'): BlockHeader {
  const value = (
    typeof input === 'object' && !(input instanceof Uint8Array) ? input : parseCanonical(input, where)
  ) as Record<string, unknown>;
  const allowed = ['version', 'chainId', 'height', 'prev', 'root', 'time', 'count', 'producer'];
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new Error(`${where}: unexpected field ${key}`);
  }
  const int = (key: string, min: number): number => {
    const v = value[key];
    if (!Number.isSafeInteger(v) || (v as number) < min)
      throw new Error(`${where}: ${key} must be an integer >= ${min}`);
    return v as number;
  };
  const hash = (key: string): string => {
    const v = value[key];
    if (typeof v !== 'string' || !/^0x[0-9a-f]{64}$/.test(v))
      throw new Error(`${where}: ${key} must be a 32-byte 0x-hex hash`);
    return v;
  };
  const version = int('version', 1);
  if (version !== BLOCK_VERSION) {
    throw new Error(
      `${where}: version ${version} is not supported (this mgmc reads version ${BLOCK_VERSION}): upgrade mgmc-agent`,
    );
  }
  const producer = value.producer;
  if (typeof producer !== 'string' || parseAddress(producer, `${where}: producer`) !== producer) {
    // One spelling only: the header hash covers the text, so a lower-case twin would be a different block.
    throw new Error(`${where}: producer must be an EIP-55 checksummed address`);
  }
  return {
    version,
    chainId: int('chainId', 0),
    height: int('height', 1),
    prev: hash('prev'),
    root: hash('root'),
    time: int('time', 0),
    count: int('count', 1),
    producer,
  };
}
