/**
 * The DSO's proof-of-authority chain (docs/protocol.md, "DSO chain and receipts").
 *
 * A DSO block header commits, through an RFC 9162 Merkle root, to the MGMC block-header hashes the DSO accepted, in
 * order. It is valid when sealed by MORE than two thirds of the validator set in force (1 of 1 on a single node): each
 * seal a 65-byte signature over signingDigest('mgmc/dso-block/v1', chainId, canonical header), the signer recovered
 * from it. The set changes only through a 'validator-set' block, sealed by the set in force, and the new set applies
 * from the next block on. The header hash is the signed digest, so the 32 bytes that link blocks are the 32 bytes
 * the validators sealed.
 */
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { recoverAddress, SIGNATURE_LENGTH, signingDigest } from '../identity/signing.js';
import type { Signer } from '../ledger/block.js';
import { canonicalBytes, parseCanonical } from '../ledger/canonical.js';
import { leafHash, merkleRoot } from '../ledger/merkle.js';
import { type DsoGenesis, genesisHash, sortValidators } from './genesis.js';

export const DSO_BLOCK_VERSION = 1;
export const DSO_BLOCK_TAG = 'mgmc/dso-block/v1';
export const VALIDATOR_SET_TAG = 'mgmc/dso-validator-set/v1';

export type DsoBlockKind = 'anchor' | 'validator-set';

export interface DsoHeader {
  readonly version: number;
  readonly chainId: number;
  /** 1 for the first block after genesis. */
  readonly height: number;
  /** Hash of the previous DSO header; the genesis hash for height 1. */
  readonly prev: string;
  readonly time: number;
  /** Hash of the validator set that must seal this block (validatorSetHash()). */
  readonly validatorSetHash: string;
  /** RFC 9162 root over the anchored MGMC block-header hashes (leaf data: the 32 hash bytes), in order. */
  readonly root: string;
  readonly count: number;
  readonly kind: DsoBlockKind;
  /** 'validator-set' blocks only: the complete new set, sorted, in force from height + 1. */
  readonly newValidators?: readonly Address[];
}

export type DsoProblemKind =
  | 'bad-header'
  | 'wrong-chain'
  | 'bad-height'
  | 'broken-link'
  | 'bad-time'
  | 'wrong-validator-set'
  | 'bad-seal'
  | 'unknown-validator'
  | 'duplicate-seal'
  | 'too-few-seals';

export interface DsoProblem {
  readonly ok: false;
  readonly kind: DsoProblemKind;
  readonly detail: string;
}

export interface DsoAccepted {
  readonly ok: true;
  /** 0x-hex header hash. */
  readonly hash: string;
  /** Validators whose seals were counted, in seal order. */
  readonly signers: readonly Address[];
}

export type DsoCheck = DsoAccepted | DsoProblem;

/** Where a block is built on or checked against: the genesis, or the previous header. */
export type DsoParent = DsoGenesis | DsoHeader;

const HASH_RE = /^0x[0-9a-f]{64}$/;

export function isGenesis(parent: DsoParent): parent is DsoGenesis {
  return 'validators' in parent;
}

/** Canonical bytes of a DSO header. */
export function encodeDsoHeader(header: DsoHeader): Uint8Array {
  return canonicalBytes({
    version: header.version,
    chainId: header.chainId,
    height: header.height,
    prev: header.prev,
    time: header.time,
    validatorSetHash: header.validatorSetHash,
    root: header.root,
    count: header.count,
    kind: header.kind,
    newValidators: header.newValidators === undefined ? undefined : [...header.newValidators],
  });
}

/** The digest validators sign, which is also the header hash. */
export function dsoHeaderDigest(header: DsoHeader): Uint8Array {
  return signingDigest(DSO_BLOCK_TAG, header.chainId, encodeDsoHeader(header));
}

export function dsoHeaderHash(header: DsoHeader): string {
  return toHex(dsoHeaderDigest(header));
}

/** 0x-hex of signingDigest('mgmc/dso-validator-set/v1', chainId, canonical sorted address array). */
export function validatorSetHash(chainId: number, validators: readonly Address[]): string {
  return toHex(signingDigest(VALIDATOR_SET_TAG, chainId, canonicalBytes(sortValidators(validators))));
}

/** Seals needed from a set of n validators: more than two thirds, i.e. floor(2n/3) + 1 (1 of 1, 3 of 4, 5 of 7). */
export function requiredSeals(validators: number): number {
  return Math.floor((2 * validators) / 3) + 1;
}

/** Root over MGMC block-header hashes (0x-hex, 32 bytes each), in the order given. */
export function entriesRoot(headerHashes: readonly string[]): string {
  return toHex(merkleRoot(entryLeaves(headerHashes)));
}

export function entryLeaves(headerHashes: readonly string[]): Uint8Array[] {
  return headerHashes.map((h, i) => leafHash(fromHex(h, `entry ${i} (MGMC header hash)`, 32)));
}

/** Hash, height, time and next validator set of a parent. */
export function parentInfo(parent: DsoParent): { hash: string; height: number; time: number; setHash: string } {
  if (isGenesis(parent)) {
    return {
      hash: genesisHash(parent),
      height: 0,
      time: parent.time,
      setHash: validatorSetHash(parent.chainId, parent.validators),
    };
  }
  return {
    hash: dsoHeaderHash(parent),
    height: parent.height,
    time: parent.time,
    setHash:
      parent.kind === 'validator-set' && parent.newValidators
        ? validatorSetHash(parent.chainId, parent.newValidators)
        : parent.validatorSetHash,
  };
}

/**
 * The next header after `prev`: committing to `entries` (MGMC header hashes, in order). A 'validator-set' block names
 * the complete new set; an 'anchor' block needs at least one entry. `time` below the parent's is raised to it, so a
 * node whose clock stepped back still builds a valid block.
 */
export function buildDsoBlock(
  prev: DsoParent,
  entries: readonly string[],
  time: number,
  kind: DsoBlockKind = 'anchor',
  newValidators?: readonly Address[],
): DsoHeader {
  const parent = parentInfo(prev);
  if (!Number.isSafeInteger(time) || time < 0)
    throw new Error(`DSO block time must be ms since the epoch, got ${time}`);
  if (kind === 'anchor') {
    if (entries.length === 0) throw new Error('an anchor block needs at least one MGMC block header hash');
    if (newValidators !== undefined) throw new Error('only a validator-set block may name new validators');
  } else {
    if (newValidators === undefined || newValidators.length === 0) {
      throw new Error('a validator-set block must name the complete new validator set (at least one address)');
    }
    const sorted = sortValidators(newValidators);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i] === sorted[i - 1]) throw new Error(`validator ${sorted[i]} is listed twice in the new set`);
    }
  }
  return {
    version: DSO_BLOCK_VERSION,
    chainId: prev.chainId,
    height: parent.height + 1,
    prev: parent.hash,
    time: Math.max(time, parent.time),
    validatorSetHash: parent.setHash,
    root: entriesRoot(entries),
    count: entries.length,
    kind,
    ...(kind === 'validator-set' ? { newValidators: sortValidators(newValidators ?? []) } : {}),
  };
}

/** One validator's seal: 0x-hex of its 65-byte signature over the header digest. */
export function sealDsoBlock(header: DsoHeader, signer: Signer): string {
  return toHex(signer.signDigest(dsoHeaderDigest(header)));
}

/**
 * Checks that `seals` are enough distinct seals of `validators` over `header`, and that the header says it is sealed
 * by that set. Any seal that does not parse, is not from a member, or repeats a member fails the block: a block is
 * relayed as its proposer assembled it, and junk in it means the proposer is broken or hostile.
 */
export function verifyDsoSeals(header: DsoHeader, seals: readonly string[], validators: readonly Address[]): DsoCheck {
  const expectedSet = validatorSetHash(header.chainId, validators);
  if (header.validatorSetHash !== expectedSet) {
    return problem(
      'wrong-validator-set',
      `block ${header.height} says it is sealed by validator set ${header.validatorSetHash}, but the set in force is ${expectedSet}`,
    );
  }
  if (!Array.isArray(seals)) return problem('bad-seal', 'seals must be an array of 0x-hex signatures');
  const members = new Set(validators.map((v) => v.toLowerCase()));
  const digest = dsoHeaderDigest(header);
  const signers: Address[] = [];
  for (let i = 0; i < seals.length; i++) {
    let signer: Address;
    try {
      signer = recoverAddress(digest, fromHex(seals[i] as string, `seal ${i}`, SIGNATURE_LENGTH));
    } catch (err) {
      return problem(
        'bad-seal',
        `seal ${i} of block ${header.height} is not a valid signature: ${(err as Error).message}`,
      );
    }
    if (!members.has(signer.toLowerCase())) {
      return problem(
        'unknown-validator',
        `seal ${i} of block ${header.height} is by ${signer}, who is not in the validator set (${validators.join(', ')})`,
      );
    }
    const twin = signers.indexOf(signer);
    if (twin >= 0) {
      return problem('duplicate-seal', `seals ${twin} and ${i} of block ${header.height} are both by ${signer}`);
    }
    signers.push(signer);
  }
  const needed = requiredSeals(validators.length);
  if (signers.length < needed) {
    return problem(
      'too-few-seals',
      `block ${header.height} has ${signers.length} seal(s); more than two thirds of ${validators.length} validator(s) means at least ${needed}`,
    );
  }
  return { ok: true, hash: toHex(digest), signers };
}

/**
 * Full check of the next header: its place in the chain (verifyDsoLink), then the seals of `validators`, the set in
 * force after `prev`.
 */
export function verifyDsoHeader(
  header: DsoHeader,
  seals: readonly string[],
  validators: readonly Address[],
  prev: DsoParent,
): DsoCheck {
  const link = verifyDsoLink(header, prev);
  if (!link.ok) return link;
  return verifyDsoSeals(link.header, seals, validators);
}

/**
 * Everything but the seals: the header parses, and its chain, height, link, time and validator-set hash follow from
 * `prev`. A validator runs this on a proposal before sealing it.
 */
export function verifyDsoLink(header: DsoHeader, prev: DsoParent): { ok: true; header: DsoHeader } | DsoProblem {
  let checked: DsoHeader;
  try {
    checked = decodeDsoHeader(header);
  } catch (err) {
    return problem('bad-header', (err as Error).message);
  }
  const parent = parentInfo(prev);
  if (checked.chainId !== prev.chainId) {
    return problem('wrong-chain', `block is on chain ${checked.chainId}, this DSO chain is ${prev.chainId}`);
  }
  if (checked.height !== parent.height + 1) {
    return problem('bad-height', `block has height ${checked.height}, the next block is ${parent.height + 1}`);
  }
  if (checked.prev !== parent.hash) {
    return problem(
      'broken-link',
      `block ${checked.height} links to ${checked.prev}, but ${parent.height === 0 ? 'the genesis' : `block ${parent.height}`} has hash ${parent.hash}`,
    );
  }
  if (checked.time < parent.time) {
    return problem('bad-time', `block ${checked.height} has time ${checked.time}, before its parent's ${parent.time}`);
  }
  if (checked.validatorSetHash !== parent.setHash) {
    return problem(
      'wrong-validator-set',
      `block ${checked.height} names validator set ${checked.validatorSetHash}, but the set in force is ${parent.setHash}`,
    );
  }
  return { ok: true, header: checked };
}

/** Parses a header from canonical bytes or a parsed object; throws an Error naming the bad field. */
export function decodeDsoHeader(input: Uint8Array | string | object, where = 'DSO header'): DsoHeader {
  const value = (
    typeof input === 'object' && !(input instanceof Uint8Array) ? input : parseCanonical(input, where)
  ) as Record<string, unknown>;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${where}: not an object`);
  const allowed = [
    'version',
    'chainId',
    'height',
    'prev',
    'time',
    'validatorSetHash',
    'root',
    'count',
    'kind',
    'newValidators',
  ];
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key) && value[key] !== undefined) throw new Error(`${where}: unexpected field ${key}`);
  }
  const int = (key: string, min: number): number => {
    const v = value[key];
    if (!Number.isSafeInteger(v) || (v as number) < min) {
      throw new Error(`${where}: ${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const hash = (key: string): string => {
    const v = value[key];
    if (typeof v !== 'string' || !HASH_RE.test(v)) throw new Error(`${where}: ${key} must be a 32-byte 0x-hex hash`);
    return v;
  };
  const version = int('version', 1);
  if (version !== DSO_BLOCK_VERSION) {
    throw new Error(
      `${where}: version ${version} is not supported (this mgmc reads version ${DSO_BLOCK_VERSION}): upgrade mgmc-agent`,
    );
  }
  const kind = value.kind;
  if (kind !== 'anchor' && kind !== 'validator-set') {
    throw new Error(`${where}: kind must be "anchor" or "validator-set", got ${JSON.stringify(kind)}`);
  }
  const count = int('count', kind === 'anchor' ? 1 : 0);
  const header: DsoHeader = {
    version,
    chainId: int('chainId', 0),
    height: int('height', 1),
    prev: hash('prev'),
    time: int('time', 0),
    validatorSetHash: hash('validatorSetHash'),
    root: hash('root'),
    count,
    kind,
  };
  const list = value.newValidators;
  if (kind === 'anchor') {
    if (list !== undefined) throw new Error(`${where}: newValidators is only allowed in a validator-set block`);
    return header;
  }
  if (!Array.isArray(list) || list.length === 0) {
    throw new Error(`${where}: a validator-set block needs newValidators, a non-empty array of addresses`);
  }
  const newValidators = list.map((a, i) => {
    const address = parseAddress(a as string, `${where}: newValidators[${i}]`);
    if (address !== a) throw new Error(`${where}: newValidators[${i}] must be an EIP-55 checksummed address`);
    return address;
  });
  const sorted = sortValidators(newValidators);
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i] !== newValidators[i] || (i > 0 && sorted[i] === sorted[i - 1])) {
      throw new Error(`${where}: newValidators must be distinct and sorted by lower-case hex`);
    }
  }
  return { ...header, newValidators };
}

/** Seals as stored: the 65-byte signatures concatenated. */
export function packSeals(seals: readonly string[]): Uint8Array {
  const out = new Uint8Array(seals.length * SIGNATURE_LENGTH);
  seals.forEach((s, i) => {
    out.set(fromHex(s, `seal ${i}`, SIGNATURE_LENGTH), i * SIGNATURE_LENGTH);
  });
  return out;
}

export function unpackSeals(bytes: Uint8Array): string[] {
  if (bytes.length % SIGNATURE_LENGTH !== 0) {
    throw new Error(`stored seals are ${bytes.length} bytes, not a multiple of ${SIGNATURE_LENGTH}`);
  }
  const seals: string[] = [];
  for (let at = 0; at < bytes.length; at += SIGNATURE_LENGTH)
    seals.push(toHex(bytes.subarray(at, at + SIGNATURE_LENGTH)));
  return seals;
}

export interface TrackerState {
  /** The last accepted header. */
  readonly tip: DsoHeader;
  /** The validator set in force for the block after `tip`. */
  readonly validators: readonly Address[];
}

/**
 * Follows the chain from genesis: knows the tip and the validator set in force, accepts the next header only when it
 * verifies, and switches to a validator-set block's new set from the block after it.
 */
export class ValidatorSetTracker {
  private parent: DsoParent;
  private set: readonly Address[];

  constructor(
    readonly genesis: DsoGenesis,
    resume?: TrackerState,
  ) {
    this.parent = genesis;
    this.set = sortValidators(genesis.validators);
    if (resume !== undefined) {
      const tip = decodeDsoHeader(resume.tip, `DSO header ${resume.tip.height}`);
      if (tip.chainId !== genesis.chainId) {
        throw new Error(`DSO header ${tip.height} is on chain ${tip.chainId}, the genesis on ${genesis.chainId}`);
      }
      const set = sortValidators(resume.validators);
      if (parentInfo(tip).setHash !== validatorSetHash(genesis.chainId, set)) {
        throw new Error(
          `the validator set given to resume after DSO block ${tip.height} is not the one it put in force`,
        );
      }
      this.parent = tip;
      this.set = set;
    }
  }

  /**
   * A tracker for a chain already checked and stored: `tip` is the last stored header, `lastValidatorSet` the newest
   * stored 'validator-set' header (none: the genesis set is still in force).
   */
  static resume(genesis: DsoGenesis, tip?: DsoHeader, lastValidatorSet?: DsoHeader): ValidatorSetTracker {
    if (tip === undefined) return new ValidatorSetTracker(genesis);
    const validators = lastValidatorSet?.newValidators ?? genesis.validators;
    return new ValidatorSetTracker(genesis, { tip, validators });
  }

  /** The validator set that must seal the next block. */
  get validators(): readonly Address[] {
    return this.set;
  }

  get height(): number {
    return isGenesis(this.parent) ? 0 : this.parent.height;
  }

  get tip(): DsoParent {
    return this.parent;
  }

  get tipHash(): string {
    return parentInfo(this.parent).hash;
  }

  /** Checks the next header without accepting it. */
  check(header: DsoHeader, seals: readonly string[]): DsoCheck {
    return verifyDsoHeader(header, seals, this.set, this.parent);
  }

  /** Checks and, when valid, makes it the tip (and applies a validator-set block's new set). */
  accept(header: DsoHeader, seals: readonly string[]): DsoCheck {
    const result = this.check(header, seals);
    if (!result.ok) return result;
    const accepted = decodeDsoHeader(header);
    this.parent = accepted;
    if (accepted.kind === 'validator-set' && accepted.newValidators) this.set = accepted.newValidators;
    return result;
  }
}

function problem(kind: DsoProblemKind, detail: string): DsoProblem {
  return { ok: false, kind, detail };
}
