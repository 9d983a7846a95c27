/**
 * The `registration` body of the DSO link (docs/protocol.md section 11): what an MGMC tells the DSO about itself in
 * stage 1, and the anonym proof that binds its market pseudonym to it.
 *
 *   {"anonym":"0x…","anonymSig":"0x…","bus":"…","meters":["0x…",…],"mgmc":"0x…","trade":{"buy":true,"sell":true}}
 *
 * `anonymSig` is the anonym key's signature over signingDigest('mgmc/anonym/v1', chainId, canonical {anonym, mgmc}),
 * chainId being the link's (the envelope's). Only the holder of the anonym key can make it, so nobody can claim
 * another's pseudonym, and the pair cannot be replayed on another chain.
 *
 * The MGMC builds its body with agent/link/anonym.ts buildRegistration (anonym derived from its key);
 * buildRegistrationBody here takes any anonym Signer (tools, tests). The DSO checks bodies with parseRegistrationBody,
 * which never throws on bad input.
 */
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { verifyDigest } from '../identity/signing.js';
import type { Signer } from '../ledger/block.js';
// One definition of the anonym proof for both sides: the MGMC derives and signs with agent/link/anonym.ts.
import { ANONYM_TAG, anonymDigest } from '../link/anonym.js';
import type { EnvelopeBody } from '../link/envelope.js';

export { ANONYM_TAG, anonymDigest };
/** More meters than any building microgrid has; bounds what one registration can make the DSO store. */
export const MAX_METERS = 1024;
export const MAX_BUS_LENGTH = 64;

export interface TradeFlags {
  readonly buy: boolean;
  readonly sell: boolean;
}

/** A registration that passed every check of parseRegistrationBody. Addresses are EIP-55. */
export interface Registration {
  readonly mgmc: Address;
  /** Sorted by lower-case hex, distinct. */
  readonly meters: readonly Address[];
  readonly bus: string;
  readonly trade: TradeFlags;
  readonly anonym: Address;
  /** 0x + 130 lower-case hex digits. */
  readonly anonymSig: string;
}

export type RegistrationCheck =
  | { readonly ok: true; readonly registration: Registration }
  /** `reason` is for the MGMC's operator: it names the field and what was expected. */
  | { readonly ok: false; readonly reason: string };

const FIELDS = ['anonym', 'anonymSig', 'bus', 'meters', 'mgmc', 'trade'];
const SIG_RE = /^0x[0-9a-f]{130}$/;
// Printable ASCII without leading or trailing blanks: a bus name from a feeder model, safe in logs and tables.
const BUS_RE = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/;

/** The anonym proof made by any Signer holding the anonym key (a test key, a hardware key). Returns 0x-hex. */
export function signAnonymWith(anonymSigner: Signer, mgmc: Address, chainId: number): string {
  return toHex(anonymSigner.signDigest(anonymDigest(chainId, anonymSigner.address, mgmc)));
}

/** Orders addresses as the protocol does (by lower-case hex), EIP-55 checksummed, duplicates removed. */
export function sortAddresses(addresses: readonly string[]): Address[] {
  const byKey = new Map<string, Address>();
  for (const a of addresses) byKey.set(a.toLowerCase(), parseAddress(a));
  return [...byKey.keys()].sort().map((k) => byKey.get(k) as Address);
}

export interface RegistrationInput {
  readonly mgmc: Address;
  readonly meters: readonly string[];
  readonly bus: string;
  readonly trade: TradeFlags;
  /** The market key; it signs the anonym proof. */
  readonly anonym: Signer;
  readonly chainId: number;
}

/** The body of a `registration` envelope, meters sorted and the anonym proof signed. */
export function buildRegistrationBody(input: RegistrationInput): EnvelopeBody {
  const mgmc = parseAddress(input.mgmc, 'mgmc');
  return {
    anonym: input.anonym.address,
    anonymSig: signAnonymWith(input.anonym, mgmc, input.chainId),
    bus: input.bus,
    meters: sortAddresses(input.meters),
    mgmc,
    trade: { buy: input.trade.buy, sell: input.trade.sell },
  };
}

/**
 * Checks a registration body received in an envelope from `from` on chain `chainId`: exactly the six fields,
 * `mgmc` = `from`, meters EIP-55, sorted, distinct and none of them the MGMC's or the anonym's own key, a bus name,
 * trade flags, and an anonym proof made by the anonym key. Never throws.
 */
export function parseRegistrationBody(body: unknown, from: Address, chainId: number): RegistrationCheck {
  const fail = (reason: string): RegistrationCheck => ({ ok: false, reason });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return fail('registration body must be an object');
  }
  const input = body as Record<string, unknown>;
  const unknown = Object.keys(input).filter((k) => !FIELDS.includes(k));
  if (unknown.length > 0) return fail(`registration has unknown field ${unknown.slice(0, 5).join(', ')}`);
  const missing = FIELDS.filter((k) => input[k] === undefined);
  if (missing.length > 0) return fail(`registration lacks field ${missing.join(', ')}`);

  const mgmc = checksummed(input.mgmc);
  if (mgmc === undefined) return fail('registration mgmc must be an EIP-55 checksummed address');
  if (mgmc !== from) return fail(`registration mgmc ${mgmc} is not the envelope's sender ${from}`);

  const anonym = checksummed(input.anonym);
  if (anonym === undefined) return fail('registration anonym must be an EIP-55 checksummed address');
  if (anonym === mgmc) {
    return fail('registration anonym is the MGMC address itself: generate a separate market key for the anonym');
  }

  if (!Array.isArray(input.meters)) return fail('registration meters must be an array of addresses');
  if (input.meters.length > MAX_METERS) {
    return fail(`registration lists ${input.meters.length} meters, more than the ${MAX_METERS} a DSO accepts`);
  }
  const meters: Address[] = [];
  for (const [i, value] of input.meters.entries()) {
    const meter = checksummed(value);
    if (meter === undefined) return fail(`registration meters[${i}] must be an EIP-55 checksummed address`);
    const previous = meters[meters.length - 1];
    if (previous !== undefined && previous.toLowerCase() >= meter.toLowerCase()) {
      return fail(`registration meters must be sorted by lower-case hex and distinct (meters[${i}] ${meter})`);
    }
    if (meter === mgmc || meter === anonym) {
      return fail(`registration meters[${i}] is the MGMC's or the anonym's own key: a meter signs with its own key`);
    }
    meters.push(meter);
  }

  if (typeof input.bus !== 'string' || input.bus.length > MAX_BUS_LENGTH || !BUS_RE.test(input.bus)) {
    return fail(
      `registration bus must be the feeder bus name: 1-${MAX_BUS_LENGTH} printable ASCII characters, no leading or trailing blanks`,
    );
  }

  const trade = input.trade;
  if (typeof trade !== 'object' || trade === null || Array.isArray(trade)) {
    return fail('registration trade must be an object {"buy": true|false, "sell": true|false}');
  }
  const flags = trade as Record<string, unknown>;
  const tradeKeys = Object.keys(flags).sort();
  if (tradeKeys.join(',') !== 'buy,sell' || typeof flags.buy !== 'boolean' || typeof flags.sell !== 'boolean') {
    return fail('registration trade must be exactly {"buy": true|false, "sell": true|false}');
  }

  if (typeof input.anonymSig !== 'string' || !SIG_RE.test(input.anonymSig)) {
    return fail('registration anonymSig must be 0x + 130 lower-case hex digits (65 bytes r ‖ s ‖ v)');
  }
  let digest: Uint8Array;
  try {
    digest = anonymDigest(chainId, anonym, mgmc);
  } catch (err) {
    return fail(`registration anonym proof cannot be checked: ${(err as Error).message}`);
  }
  if (!verifyDigest(digest, fromHex(input.anonymSig, 'anonymSig'), anonym)) {
    return fail(
      `registration anonymSig is not a signature by the anonym key ${anonym} over (anonym, mgmc) with tag ${ANONYM_TAG} on chain ${chainId}`,
    );
  }
  return {
    ok: true,
    registration: {
      mgmc,
      meters,
      bus: input.bus,
      trade: { buy: flags.buy as boolean, sell: flags.sell as boolean },
      anonym,
      anonymSig: input.anonymSig,
    },
  };
}

/** The EIP-55 form of `value` when it already is exactly that, else undefined. */
function checksummed(value: unknown): Address | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    return parseAddress(value) === value ? value : undefined;
  } catch {
    return undefined;
  }
}
