/**
 * The MGMC's anonym (docs/protocol.md, "MQTT link", registration): the market identity the other microgrids see
 * instead of the MGMC's address, and the registration that binds the two for the DSO.
 *
 * The anonym key is derived from the MGMC's own key, so no second keystore is needed and a restart gives the same
 * anonym:
 *
 *   candidate(c) = HMAC-SHA256(key = MGMC private key (32 bytes),
 *                              data = "mgmc/anonym/v1" ‖ uint64_be(chainId) ‖ uint32_be(epoch) [‖ uint32_be(c)])
 *
 * where the first try (c = 0) has no counter and retries c = 1, 2, ... append it; the anonym key is the first candidate
 * that, read as a big-endian integer, is a valid secp256k1 scalar (0 < k < n). Without the MGMC key nobody can link
 * the anonym to the MGMC (HMAC is a PRF); the DSO learns the link from the registration. A new anonym is epoch + 1.
 *
 * `anonymSig` proves the MGMC holds the anonym key: the anonym key's signature (section 2) with tag `mgmc/anonym/v1`,
 * on the link's chain id, over canonical {"anonym": …, "mgmc": …} (both EIP-55).
 */
import { createHmac } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { concatBytes, fromHex, toHex, utf8 } from '../identity/bytes.js';
import { type Address, type KeyPair, keyPairFromPrivateKey, parseAddress } from '../identity/keys.js';
import { signDigest, signingDigest, verifyDigest } from '../identity/signing.js';
import { canonicalBytes, canonicalize } from '../ledger/canonical.js';

export const ANONYM_TAG = 'mgmc/anonym/v1';
const BUS_RE = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/;

export class AnonymError extends Error {
  override name = 'AnonymError';
}

/** The anonym key of the MGMC key `mgmcPrivateKey` on chain `chainId`, generation `epoch`. */
export function deriveAnonymKey(mgmcPrivateKey: Uint8Array, chainId: number, epoch: number): KeyPair {
  if (!(mgmcPrivateKey instanceof Uint8Array) || mgmcPrivateKey.length !== 32) {
    throw new AnonymError('the MGMC private key must be 32 bytes');
  }
  if (!Number.isSafeInteger(chainId) || chainId < 0)
    throw new AnonymError(`chain id ${chainId} is not an integer >= 0`);
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffff_ffff) {
    throw new AnonymError(`anonym epoch ${epoch} is not an integer from 0 to 4294967295 (config anonymEpoch)`);
  }
  const data = new Uint8Array(12);
  const view = new DataView(data.buffer);
  view.setBigUint64(0, BigInt(chainId));
  view.setUint32(8, epoch);
  const base = concatBytes(utf8(ANONYM_TAG), data);
  for (let counter = 0; counter <= 0xffff_ffff; counter++) {
    let input = base;
    if (counter > 0) {
      const suffix = new Uint8Array(4);
      new DataView(suffix.buffer).setUint32(0, counter);
      input = concatBytes(base, suffix);
    }
    const candidate = new Uint8Array(createHmac('sha256', mgmcPrivateKey).update(input).digest());
    // 0 or >= n happens with probability ~2^-128 per try: the counter exists so the rule is total, not because it runs.
    if (secp256k1.utils.isValidSecretKey(candidate)) return keyPairFromPrivateKey(candidate);
  }
  throw new AnonymError('no valid anonym key found'); // unreachable in practice
}

/** The digest the anonym key signs: section 2 with tag mgmc/anonym/v1 over canonical {anonym, mgmc}. */
export function anonymDigest(chainId: number, anonym: Address, mgmc: Address): Uint8Array {
  return signingDigest(ANONYM_TAG, chainId, canonicalBytes({ anonym, mgmc }));
}

/** 0x-hex anonymSig: the anonym key's signature binding it to `mgmc`. */
export function signAnonym(anonymKey: KeyPair, mgmc: Address, chainId: number): string {
  const digest = anonymDigest(chainId, anonymKey.address, parseAddress(mgmc, 'mgmc'));
  return toHex(signDigest(digest, anonymKey.privateKey));
}

/**
 * True when `anonymSig` is the signature of `anonym`'s key binding it to `mgmc` on `chainId`. Both addresses must be
 * EIP-55 (the signed bytes are those strings). Never throws.
 */
export function verifyAnonymSig(
  input: { readonly anonym: unknown; readonly mgmc: unknown; readonly anonymSig: unknown },
  chainId: number,
): boolean {
  try {
    const { anonym, mgmc, anonymSig } = input;
    if (typeof anonym !== 'string' || parseAddress(anonym) !== anonym) return false;
    if (typeof mgmc !== 'string' || parseAddress(mgmc) !== mgmc) return false;
    if (typeof anonymSig !== 'string' || !/^0x[0-9a-f]{130}$/.test(anonymSig)) return false;
    return verifyDigest(anonymDigest(chainId, anonym, mgmc), fromHex(anonymSig, 'anonymSig', 65), anonym);
  } catch {
    return false;
  }
}

// Type aliases, not interfaces: they fit EnvelopeBody (an index signature) as they are.
export type TradeFlags = {
  readonly buy: boolean;
  readonly sell: boolean;
};

/** The `registration` body (docs/protocol.md section 11). */
export type RegistrationBody = {
  readonly anonym: Address;
  readonly anonymSig: string;
  readonly bus: string;
  readonly meters: readonly Address[];
  readonly mgmc: Address;
  readonly trade: TradeFlags;
};

export interface RegistrationInput {
  /** The MGMC's private key (the anonym is derived from it). */
  readonly privateKey: Uint8Array;
  readonly chainId: number;
  /** The addresses of the MGMC's signing meters (config meters[].address), any order and case. */
  readonly meters: readonly string[];
  /** Its feeder bus, as the DSO's feeder model names it. */
  readonly bus: string;
  readonly trade: TradeFlags;
  readonly anonymEpoch: number;
}

/**
 * The MGMC's registration body: its address, its meters (EIP-55, distinct, sorted by lower-case hex, as the DSO
 * compares them), its bus, its trade flags and its anonym with the proof. Throws an AnonymError naming the bad input.
 */
export function buildRegistration(input: RegistrationInput): RegistrationBody {
  const own = keyPairFromPrivateKey(input.privateKey);
  // The DSO's rules (dso/registration.ts), checked here too so a bad config fails at start, not at the DSO.
  if (typeof input.bus !== 'string' || input.bus.trim() === '') {
    throw new AnonymError('the registration needs the feeder bus this MGMC is connected to');
  }
  if (input.bus.length > 64 || !BUS_RE.test(input.bus)) {
    throw new AnonymError(
      `feeder bus ${JSON.stringify(input.bus)} must be 1-64 printable ASCII characters without leading or trailing blanks`,
    );
  }
  if (typeof input.trade?.buy !== 'boolean' || typeof input.trade?.sell !== 'boolean') {
    throw new AnonymError('trade flags buy and sell must be true or false');
  }
  const meters = input.meters.map((m, i) => {
    try {
      return parseAddress(m, `meter ${i}`);
    } catch (err) {
      throw new AnonymError((err as Error).message);
    }
  });
  const sorted = [...new Set(meters)].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
  const anonym = deriveAnonymKey(input.privateKey, input.chainId, input.anonymEpoch);
  const clash = sorted.find((m) => m === own.address || m === anonym.address);
  if (clash !== undefined) {
    throw new AnonymError(`meter ${clash} is the MGMC's own key: a signing meter has a key of its own`);
  }
  return {
    anonym: anonym.address,
    anonymSig: signAnonym(anonym, own.address, input.chainId),
    bus: input.bus,
    meters: sorted,
    mgmc: own.address,
    trade: { buy: input.trade.buy, sell: input.trade.sell },
  };
}

/** Canonical text of a registration: two registrations are the same exactly when these are equal. */
export function registrationKey(body: RegistrationBody): string {
  return canonicalize(body);
}
