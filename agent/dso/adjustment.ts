/**
 * Trading-adjustment contracts (docs/protocol.md section 11, "Grid security"): the caps on one MGMC's net position
 * for one market interval that the DSO's network check decided, signed by the DSO and encrypted to that MGMC.
 *
 *   contract = {"caps":{"maxExportW":e?,"maxImportW":i?},"dso":"0x…","durationMs":d,"expiry":t,"id":"0x…16 bytes",
 *               "interval":t0,"issued":t1,"iteration":n,"mgmc":"0x…","positionW":p,"reason":"…","v":1}
 *   sig      = r ‖ s ‖ v over signingDigest('mgmc/adjustment/v1', chainId, canonical contract), by `dso`
 *   sealed   = ECIES (section 9) of canonical {"contract":…,"sig":"0x…"} to the MGMC's public key, sender `dso`
 *
 * The signature stays with the decrypted contract, so the MGMC keeps proof of what the DSO ordered, and an auditor
 * can check it without the MGMC's key. Both sides use this module: the DSO to sign and encrypt, the MGMC to decrypt
 * and verify (openAdjustment never throws on bad input; it names the reason).
 */
import { randomBytes } from 'node:crypto';
import { fromHex, toHex } from '../identity/bytes.js';
import { decryptWith, ECIES_SCHEME, type EciesEnvelope, encryptTo } from '../identity/ecies.js';
import {
  type Address,
  addressFromPublicKey,
  isAddress,
  keyPairFromPrivateKey,
  parseAddress,
} from '../identity/keys.js';
import { recoverAddress, recoverPublicKey, signingDigest } from '../identity/signing.js';
import type { Signer } from '../ledger/block.js';
import { type CanonicalValue, canonicalBytes, parseCanonical } from '../ledger/canonical.js';
import { type Envelope, type EnvelopeBody, envelopeDigest } from '../link/envelope.js';

export const ADJUSTMENT_TAG = 'mgmc/adjustment/v1';
export const ADJUSTMENT_VERSION = 1;
/** Link envelope kinds of the grid-security exchange. */
export const POSITION_KIND = 'position';
export const ADJUSTMENT_KIND = 'adjustment';
export const ADJUSTMENT_ACK_KIND = 'adjustment-ack';
export const MAX_REASON_LENGTH = 500;
/** A net position or cap beyond 10 GW is a unit mistake (kW sent as W...), not a microgrid. */
export const MAX_POWER_W = 10_000_000_000;

export interface AdjustmentCaps {
  /** Largest net import, W. */
  readonly maxImportW?: number;
  /** Largest net export, W, as a positive number. */
  readonly maxExportW?: number;
}

export interface AdjustmentContract {
  readonly v: 1;
  /** 0x + 32 lower-case hex digits; the MGMC refuses an id it has seen (replay). */
  readonly id: string;
  /** The DSO validator that signs it. */
  readonly dso: Address;
  /** The MGMC it binds. */
  readonly mgmc: Address;
  /** Start of the market interval, ms UTC. */
  readonly interval: number;
  /** Length of the interval, ms. */
  readonly durationMs: number;
  /** When the DSO decided it, ms. */
  readonly issued: number;
  /** After this (ms) the MGMC refuses it: normally the end of the interval. */
  readonly expiry: number;
  /** The DSO's network-check round for this interval that decided it (1, 2, ...). */
  readonly iteration: number;
  /** The net position the MGMC reported and the caps answer, W (+ import). */
  readonly positionW: number;
  readonly caps: AdjustmentCaps;
  /** Why, for a person (the violations found). */
  readonly reason: string;
}

export interface SignedAdjustment {
  readonly contract: AdjustmentContract;
  /** 0x-hex of the DSO's 65-byte signature. */
  readonly sig: string;
}

/** Why an MGMC refuses an adjustment (the ack's `reason`). */
export type AdjustmentRejection =
  | 'malformed'
  | 'not-for-me'
  | 'undecryptable'
  | 'bad-signature'
  | 'unknown-issuer'
  | 'wrong-recipient'
  | 'expired'
  | 'replayed'
  | 'superseded';

export type OpenedAdjustment =
  | {
      readonly ok: true;
      readonly signed: SignedAdjustment;
      /** The signing digest (0x-hex): the ack names it, so the DSO knows which content was accepted. */
      readonly digest: string;
      /** Canonical bytes of {contract, sig}, as stored. */
      readonly bytes: Uint8Array;
    }
  | {
      readonly ok: false;
      readonly reason: AdjustmentRejection;
      readonly detail: string;
      /** The contract id, when decryption got that far. */
      readonly id?: string;
      readonly interval?: number;
    };

export class AdjustmentError extends Error {
  override name = 'AdjustmentError';
}

const ID_RE = /^0x[0-9a-f]{32}$/;
const SIG_RE = /^0x[0-9a-f]{130}$/;
const CONTRACT_FIELDS = [
  'caps',
  'dso',
  'durationMs',
  'expiry',
  'id',
  'interval',
  'issued',
  'iteration',
  'mgmc',
  'positionW',
  'reason',
  'v',
];

export function newAdjustmentId(): string {
  return toHex(randomBytes(16));
}

/** The digest the DSO signs for `contract` on chain `chainId`. */
export function adjustmentDigest(chainId: number, contract: AdjustmentContract): Uint8Array {
  return signingDigest(ADJUSTMENT_TAG, chainId, canonicalBytes(contract as unknown as CanonicalValue));
}

/** Signs a contract with the DSO's key; throws AdjustmentError naming the field when the contract is invalid. */
export function signAdjustment(signer: Signer, chainId: number, contract: AdjustmentContract): SignedAdjustment {
  const problem = contractProblem(contract);
  if (problem !== undefined) throw new AdjustmentError(`cannot sign adjustment ${contract.id}: ${problem}`);
  if (contract.dso !== signer.address) {
    throw new AdjustmentError(`adjustment ${contract.id} names DSO ${contract.dso} but is signed by ${signer.address}`);
  }
  return { contract, sig: toHex(signer.signDigest(adjustmentDigest(chainId, contract))) };
}

/** Canonical bytes of a signed contract: what is encrypted, stored and recorded. */
export function signedAdjustmentBytes(signed: SignedAdjustment): Uint8Array {
  return canonicalBytes({ contract: signed.contract, sig: signed.sig } as unknown as CanonicalValue);
}

/** Encrypts a signed contract to the MGMC's public key (33 or 65 bytes). */
export function encryptAdjustment(signed: SignedAdjustment, recipientPublicKey: Uint8Array): EciesEnvelope {
  if (addressFromPublicKey(recipientPublicKey) !== signed.contract.mgmc) {
    throw new AdjustmentError(
      `the public key given is ${addressFromPublicKey(recipientPublicKey)}'s, not that of the contract's MGMC ` +
        signed.contract.mgmc,
    );
  }
  return encryptTo(recipientPublicKey, signedAdjustmentBytes(signed), { sender: signed.contract.dso });
}

/** The body of an `adjustment` link envelope. */
export function adjustmentBody(encrypted: EciesEnvelope): EnvelopeBody {
  return { encrypted: { ...encrypted } };
}

export interface OpenAdjustmentOptions {
  /** The MGMC's private key. */
  readonly privateKey: Uint8Array;
  readonly chainId: number;
  /** The DSO validators this MGMC follows (genesis, then validator-set blocks). */
  readonly validators: readonly Address[];
  /** Now, ms: a contract whose expiry is not after now is refused. */
  readonly now: number;
}

/**
 * Decrypts and checks the body of an `adjustment` envelope, in this order: shape (malformed), recipient of the
 * encryption (not-for-me), decryption (undecryptable: altered, or not encrypted to this key), the contract's fields
 * (malformed), its MGMC (wrong-recipient), the encryption's sender (bad-signature when it is not the contract's DSO),
 * the signature (bad-signature), the signer being a validator (unknown-issuer), the expiry (expired). Replays and
 * superseded contracts are for the caller's store to tell. Never throws.
 */
export function openAdjustment(body: unknown, options: OpenAdjustmentOptions): OpenedAdjustment {
  const encrypted = (body as { encrypted?: unknown } | null | undefined)?.encrypted as
    | Record<string, unknown>
    | undefined;
  if (typeof encrypted !== 'object' || encrypted === null || Array.isArray(encrypted)) {
    return { ok: false, reason: 'malformed', detail: 'the body has no encrypted object' };
  }
  if (encrypted.scheme !== ECIES_SCHEME) {
    return {
      ok: false,
      reason: 'malformed',
      detail: `encrypted.scheme is ${JSON.stringify(encrypted.scheme)}, expected ${ECIES_SCHEME}`,
    };
  }
  let own: Address;
  try {
    own = keyPairFromPrivateKey(options.privateKey).address;
  } catch (err) {
    return { ok: false, reason: 'undecryptable', detail: (err as Error).message };
  }
  if (!isAddress(encrypted.recipient) || parseAddress(encrypted.recipient) !== own) {
    return {
      ok: false,
      reason: 'not-for-me',
      detail: `the adjustment is encrypted to ${String(encrypted.recipient).slice(0, 42)}, not to this MGMC (${own})`,
    };
  }
  let plaintext: Uint8Array;
  try {
    plaintext = decryptWith(options.privateKey, encrypted as unknown as EciesEnvelope);
  } catch (err) {
    return { ok: false, reason: 'undecryptable', detail: (err as Error).message };
  }
  let parsed: CanonicalValue;
  try {
    parsed = parseCanonical(plaintext, 'decrypted adjustment');
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message };
  }
  const outer = parsed as { contract?: unknown; sig?: unknown } | null;
  if (typeof outer !== 'object' || outer === null || Array.isArray(outer) || Object.keys(outer).length !== 2) {
    return { ok: false, reason: 'malformed', detail: 'the decrypted adjustment must be exactly {contract, sig}' };
  }
  const contract = outer.contract as AdjustmentContract;
  const problem = contractProblem(contract);
  if (problem !== undefined) return { ok: false, reason: 'malformed', detail: `contract: ${problem}` };
  const known = { id: contract.id, interval: contract.interval };
  if (typeof outer.sig !== 'string' || !SIG_RE.test(outer.sig)) {
    return { ok: false, reason: 'malformed', detail: 'sig must be 0x + 130 lower-case hex digits', ...known };
  }
  if (contract.mgmc !== own) {
    return {
      ok: false,
      reason: 'wrong-recipient',
      detail: `contract ${contract.id} binds MGMC ${contract.mgmc}, not this MGMC (${own})`,
      ...known,
    };
  }
  if (!isAddress(encrypted.sender) || parseAddress(encrypted.sender) !== contract.dso) {
    return {
      ok: false,
      reason: 'bad-signature',
      detail: `contract ${contract.id} names DSO ${contract.dso} but was encrypted by ${String(encrypted.sender)}`,
      ...known,
    };
  }
  const digest = adjustmentDigest(options.chainId, contract);
  let signer: Address;
  try {
    signer = recoverAddress(digest, fromHex(outer.sig, 'sig', 65));
  } catch (err) {
    return {
      ok: false,
      reason: 'bad-signature',
      detail: `contract ${contract.id}: ${(err as Error).message}`,
      ...known,
    };
  }
  if (signer !== contract.dso) {
    return {
      ok: false,
      reason: 'bad-signature',
      detail: `contract ${contract.id} is signed by ${signer}, not by the DSO it names (${contract.dso}); altered or forged`,
      ...known,
    };
  }
  if (!options.validators.some((v) => v.toLowerCase() === signer.toLowerCase())) {
    return {
      ok: false,
      reason: 'unknown-issuer',
      detail: `contract ${contract.id} is signed by ${signer}, who is not a DSO validator (${options.validators.join(', ')})`,
      ...known,
    };
  }
  if (contract.expiry <= options.now) {
    return {
      ok: false,
      reason: 'expired',
      detail:
        `contract ${contract.id} for interval ${new Date(contract.interval).toISOString()} expired at ` +
        `${new Date(contract.expiry).toISOString()} (now ${new Date(options.now).toISOString()})`,
      ...known,
    };
  }
  const signed: SignedAdjustment = { contract, sig: outer.sig };
  return { ok: true, signed, digest: toHex(digest), bytes: signedAdjustmentBytes(signed) };
}

/** What is wrong with a contract's fields, or undefined. */
export function contractProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object';
  const c = value as Record<string, unknown>;
  const keys = Object.keys(c);
  const missing = CONTRACT_FIELDS.filter((f) => c[f] === undefined);
  if (missing.length > 0) return `lacks ${missing.join(', ')}`;
  const unknown = keys.filter((k) => !CONTRACT_FIELDS.includes(k));
  if (unknown.length > 0) return `has unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`;
  if (c.v !== ADJUSTMENT_VERSION) return `v must be ${ADJUSTMENT_VERSION} (this agent reads that version)`;
  if (typeof c.id !== 'string' || !ID_RE.test(c.id)) return 'id must be 0x + 32 lower-case hex digits';
  for (const key of ['dso', 'mgmc']) {
    const a = c[key];
    if (typeof a !== 'string' || !isAddress(a) || parseAddress(a) !== a) {
      return `${key} must be an EIP-55 address, got ${JSON.stringify(a)?.slice(0, 60)}`;
    }
  }
  const int = (key: string, min: number): boolean => Number.isSafeInteger(c[key]) && (c[key] as number) >= min;
  if (!int('interval', 0)) return 'interval must be ms since the epoch (an integer >= 0)';
  if (!int('durationMs', 1)) return 'durationMs must be an integer >= 1';
  if (!int('issued', 0)) return 'issued must be ms since the epoch';
  if (!int('expiry', 0)) return 'expiry must be ms since the epoch';
  if (!int('iteration', 1)) return 'iteration must be an integer >= 1';
  if (!Number.isSafeInteger(c.positionW) || Math.abs(c.positionW as number) > MAX_POWER_W) {
    return `positionW must be an integer W within ±${MAX_POWER_W}`;
  }
  if (typeof c.reason !== 'string' || c.reason.length > MAX_REASON_LENGTH) {
    return `reason must be a text of at most ${MAX_REASON_LENGTH} characters`;
  }
  const caps = c.caps as Record<string, unknown> | null;
  if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) return 'caps must be an object';
  const capKeys = Object.keys(caps);
  if (capKeys.length === 0) return 'caps must set maxImportW, maxExportW or both';
  for (const key of capKeys) {
    if (key !== 'maxImportW' && key !== 'maxExportW') return `caps has unknown field ${key}`;
    const w = caps[key];
    if (!Number.isSafeInteger(w) || (w as number) < 0 || (w as number) > MAX_POWER_W) {
      return `caps.${key} must be an integer W from 0 to ${MAX_POWER_W}`;
    }
  }
  return undefined;
}

/**
 * The public key (33 bytes, compressed) that signed a link envelope, recovered from its signature. The DSO learns an
 * MGMC's encryption key this way from the `position` it answers: no key exchange, and the key is the one that
 * address signs with. Only for an envelope openEnvelope accepted; throws when the key is not the sender's.
 */
export function recoverEnvelopeKey(envelope: Envelope): Uint8Array {
  const signature = fromHex(envelope.sig, 'sig', 65);
  const v = signature[64] as number;
  if (v !== 27 && v !== 28) throw new AdjustmentError(`envelope ${envelope.id} has signature v outside 27/28`);
  const compressed = recoverPublicKey(envelopeDigest(envelope), signature);
  if (addressFromPublicKey(compressed) !== envelope.from) {
    throw new AdjustmentError(`the signature of envelope ${envelope.id} is not ${envelope.from}'s`);
  }
  return compressed;
}
