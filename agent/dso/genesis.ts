/**
 * The DSO chain's genesis file: who may seal the first blocks, on which chain id, since when.
 *
 *   {"chainId": 7, "name": "feeder-north", "time": 1767225600000, "validators": ["0x…", "0x…"]}
 *
 * Every DSO node and every MGMC light client starts from the same file. Validators are normalised (EIP-55, sorted by
 * their lower-case hex) before hashing, so two copies that list the same set in another order have one genesis hash.
 * The first DSO block links to that hash (its `prev`).
 */
import { readFileSync } from 'node:fs';
import { toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { signingDigest } from '../identity/signing.js';
import { canonicalBytes } from '../ledger/canonical.js';

export const GENESIS_TAG = 'mgmc/dso-genesis/v1';

export interface DsoGenesis {
  readonly chainId: number;
  /** EIP-55 addresses, distinct, sorted by lower-case hex. */
  readonly validators: readonly Address[];
  /** ms since the Unix epoch (UTC); the first block's time may not be earlier. */
  readonly time: number;
  readonly name: string;
}

export class GenesisError extends Error {
  override name = 'GenesisError';
  constructor(
    message: string,
    /** The file (or 'genesis' for an in-memory object) and the field the problem is in, when there is one. */
    readonly file: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const FIELDS = ['chainId', 'validators', 'time', 'name'];

/** Reads and checks a genesis file; every error names the file and, where it applies, the field. */
export function loadGenesis(path: string): DsoGenesis {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new GenesisError(`${path}: cannot read the DSO genesis file (${why})`, path);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = /position (\d+)/.exec(message);
    const where = at ? `${path}:${lineColumn(text, Number(at[1]))}` : path;
    throw new GenesisError(`${where}: the DSO genesis file is not valid JSON (${message})`, path);
  }
  return parseGenesis(value, path);
}

/** Checks a parsed genesis object; `file` names it in errors. */
export function parseGenesis(value: unknown, file = 'genesis'): DsoGenesis {
  const fail = (field: string | undefined, message: string): never => {
    throw new GenesisError(`${file}: ${field === undefined ? '' : `${field}: `}${message}`, file, field);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(undefined, 'the DSO genesis must be a JSON object with chainId, validators, time and name');
  }
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!FIELDS.includes(key)) fail(key, `unknown field (a genesis has only ${FIELDS.join(', ')})`);
  }
  for (const key of FIELDS) if (!(key in input)) fail(key, 'missing');
  const { chainId, validators, time, name } = input;
  if (!Number.isSafeInteger(chainId) || (chainId as number) < 0) {
    fail('chainId', `must be a non-negative integer, got ${JSON.stringify(chainId)}`);
  }
  if (!Number.isSafeInteger(time) || (time as number) < 0) {
    fail('time', `must be ms since the Unix epoch (a non-negative integer), got ${JSON.stringify(time)}`);
  }
  if (typeof name !== 'string' || name.trim() === '' || !name.isWellFormed()) {
    fail('name', `must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  if (!Array.isArray(validators) || validators.length === 0) {
    return fail('validators', 'must be a non-empty array of validator addresses (one for a single-node DSO)');
  }
  const parsed: Address[] = [];
  for (let i = 0; i < validators.length; i++) {
    let address: Address;
    try {
      address = parseAddress(validators[i] as string, `validators[${i}]`);
    } catch (err) {
      return fail(`validators[${i}]`, (err as Error).message.replace(`validators[${i}]: `, ''));
    }
    const twin = parsed.indexOf(address);
    if (twin >= 0) fail(`validators[${i}]`, `${address} is listed twice (also validators[${twin}])`);
    parsed.push(address);
  }
  return {
    chainId: chainId as number,
    validators: sortValidators(parsed),
    time: time as number,
    name: name as string,
  };
}

/** Canonical bytes of the (normalised) genesis. */
export function encodeGenesis(genesis: DsoGenesis): Uint8Array {
  return canonicalBytes({
    chainId: genesis.chainId,
    name: genesis.name,
    time: genesis.time,
    validators: sortValidators(genesis.validators),
  });
}

/** 0x-hex of signingDigest('mgmc/dso-genesis/v1', chainId, canonical genesis): the first DSO block's `prev`. */
export function genesisHash(genesis: DsoGenesis): string {
  return toHex(signingDigest(GENESIS_TAG, genesis.chainId, encodeGenesis(genesis)));
}

/** Validators in their one canonical order: by lower-case hex, each EIP-55 checksummed. */
export function sortValidators(validators: readonly Address[]): Address[] {
  return validators
    .map((v) => parseAddress(v))
    .sort((a, b) => {
      const x = a.toLowerCase();
      const y = b.toLowerCase();
      return x < y ? -1 : x > y ? 1 : 0;
    });
}

function lineColumn(text: string, position: number): string {
  let line = 1;
  let column = 1;
  for (let i = 0; i < position && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return `${line}:${column}`;
}
