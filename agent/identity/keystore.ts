/**
 * Key files in the Web3 Secret Storage v3 format, the one geth, ethers and most Ethereum wallets read and write, so
 * that an operator can move the agent's identity to and from standard tools.
 *
 * Writing follows geth: scrypt N=2^18 r=8 p=1, aes-128-ctr, lower-case `address` without 0x. Reading also accepts what
 * other writers produce: the `Crypto` key of older geth, PBKDF2-HMAC-SHA256, upper-case UUIDs, salts that are not 32
 * bytes, extra fields, and keys that older geth stored without their leading zero bytes.
 *
 * The KDFs run off the main thread (libuv pool, or noble's async scrypt that yields), because a geth-strength scrypt
 * takes about a second and the agent polls devices meanwhile.
 */
import { createCipheriv, pbkdf2 as pbkdf2Callback, randomBytes, randomUUID, scrypt } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { link, lstat, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { concatBytes, equalBytes, fromHex, toHex, utf8 } from './bytes.js';
import { type Address, keccak256, keyPairFromPrivateKey, toChecksumAddress } from './keys.js';

export type KeystoreErrorCode = 'ENOENT' | 'CORRUPT' | 'UNSUPPORTED' | 'BAD_PASSPHRASE' | 'ADDRESS_MISMATCH' | 'EXISTS';

export class KeystoreError extends Error {
  override readonly name = 'KeystoreError';
  readonly code: KeystoreErrorCode;
  /** The file (or other source label) the error is about, when known. */
  readonly source: string | undefined;

  constructor(code: KeystoreErrorCode, message: string, source?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.source = source;
  }
}

export interface ScryptParams {
  readonly n: number;
  readonly r: number;
  readonly p: number;
}

export interface ScryptKdfParams {
  readonly dklen: number;
  readonly n: number;
  readonly p: number;
  readonly r: number;
  readonly salt: string;
}

export interface Pbkdf2KdfParams {
  readonly c: number;
  readonly dklen: number;
  readonly prf: 'hmac-sha256';
  readonly salt: string;
}

/** A v3 keystore as we write it; byte fields are lower-case hex without 0x, as geth writes them. */
export interface KeystoreV3 {
  readonly address: string;
  readonly crypto: {
    readonly cipher: 'aes-128-ctr';
    readonly ciphertext: string;
    readonly cipherparams: { readonly iv: string };
    readonly kdf: 'scrypt' | 'pbkdf2';
    readonly kdfparams: ScryptKdfParams | Pbkdf2KdfParams;
    readonly mac: string;
  };
  readonly id: string;
  readonly version: 3;
}

export interface EncryptKeystoreOptions {
  readonly kdf?: 'scrypt' | 'pbkdf2';
  readonly scrypt?: ScryptParams;
  readonly pbkdf2?: { readonly c: number };
  /** Only for deterministic tests: fixed salt, IV and id. Never set these in production. */
  readonly salt?: Uint8Array;
  readonly iv?: Uint8Array;
  readonly uuid?: string;
}

export interface WriteKeystoreOptions extends EncryptKeystoreOptions {
  /** Replace an existing file. Off by default: the file may hold the only copy of a key. */
  readonly overwrite?: boolean;
}

export interface KeystoreFileContents {
  readonly privateKey: Uint8Array;
  /** EIP-55 checksummed. */
  readonly address: Address;
  /** Problems worth telling the operator about that did not stop the key from loading. */
  readonly warnings: string[];
}

/** geth's StandardScryptN / StandardScryptP. */
export const GETH_SCRYPT_PARAMS: ScryptParams = { n: 1 << 18, r: 8, p: 1 };
/** Same count as the spec's PBKDF2 test vector; geth itself only writes scrypt. */
export const DEFAULT_PBKDF2_ITERATIONS = 262_144;

const DKLEN = 32;
const KEY_LENGTH = 32;
const IV_LENGTH = 16;
const SALT_LENGTH = 32;
const MAC_LENGTH = 32;

// Upper bounds on what a file may ask of us. A keystore is untrusted input: without them a hand-edited or hostile file
// could make the agent hang for hours or allocate until the OOM killer steps in. Each is far above any real writer.
const MAX_SCRYPT_N = 2 ** 20;
const MAX_SCRYPT_R = 64;
const MAX_SCRYPT_P = 64;
/** scrypt's working set is 128·N·r bytes; 1 GiB is 4x geth's standard. */
const MAX_SCRYPT_MEMORY = 2 ** 30;
/** Memory traffic 128·N·r·p; 16x geth's standard, some seconds here. */
const MAX_SCRYPT_WORK = 2 ** 32;
const MAX_PBKDF2_ITERATIONS = 10_000_000;
const MAX_DKLEN = 64;
const MAX_SALT_LENGTH = 1024;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PASSPHRASE_HINT = 'check MGMC_KEY_PASSPHRASE (or whichever passphrase the key was given)';
const RESTORE_HINT = 'restore it from your backup';

interface ScryptSpec {
  kdf: 'scrypt';
  salt: Uint8Array;
  n: number;
  r: number;
  p: number;
  dklen: number;
}

interface Pbkdf2Spec {
  kdf: 'pbkdf2';
  salt: Uint8Array;
  c: number;
  dklen: number;
}

type KdfSpec = ScryptSpec | Pbkdf2Spec;

export async function encryptKeystore(
  privateKey: Uint8Array,
  passphrase: string,
  options: EncryptKeystoreOptions = {},
): Promise<KeystoreV3> {
  if (typeof passphrase !== 'string') throw new TypeError('keystore passphrase must be a string');
  const { address } = keyPairFromPrivateKey(privateKey);
  const salt = options.salt ?? new Uint8Array(randomBytes(SALT_LENGTH));
  const iv = options.iv ?? new Uint8Array(randomBytes(IV_LENGTH));
  const id = options.uuid ?? randomUUID();
  if (iv.length !== IV_LENGTH) throw new RangeError(`keystore iv must be ${IV_LENGTH} bytes, got ${iv.length}`);
  if (salt.length === 0 || salt.length > MAX_SALT_LENGTH) {
    throw new RangeError(`keystore salt must be 1 to ${MAX_SALT_LENGTH} bytes, got ${salt.length}`);
  }
  if (!UUID_RE.test(id)) throw new RangeError(`keystore id must be a UUID, got ${JSON.stringify(id)}`);

  let spec: KdfSpec;
  let kdfparams: ScryptKdfParams | Pbkdf2KdfParams;
  if ((options.kdf ?? 'scrypt') === 'scrypt') {
    const { n, r, p } = options.scrypt ?? GETH_SCRYPT_PARAMS;
    spec = { kdf: 'scrypt', salt, n, r, p, dklen: DKLEN };
    kdfparams = { dklen: DKLEN, n, p, r, salt: bare(salt) };
  } else {
    const c = options.pbkdf2?.c ?? DEFAULT_PBKDF2_ITERATIONS;
    spec = { kdf: 'pbkdf2', salt, c, dklen: DKLEN };
    kdfparams = { c, dklen: DKLEN, prf: 'hmac-sha256', salt: bare(salt) };
  }
  // Refuse to write a file that we (and other careful readers) would refuse to read back.
  const problem = kdfProblem(spec);
  if (problem !== undefined) throw new RangeError(`cannot encrypt keystore: ${problem}`);

  const derived = await deriveKey(spec, utf8(passphrase));
  try {
    const ciphertext = aes128Ctr(derived.subarray(0, 16), iv, privateKey);
    const mac = keccak256(concatBytes(derived.subarray(16, 32), ciphertext));
    return {
      address: bare(fromHex(address, 'address')),
      crypto: {
        cipher: 'aes-128-ctr',
        ciphertext: bare(ciphertext),
        cipherparams: { iv: bare(iv) },
        kdf: spec.kdf,
        kdfparams,
        mac: bare(mac),
      },
      id: id.toLowerCase(),
      version: 3,
    };
  } finally {
    derived.fill(0);
  }
}

/**
 * Decrypts a v3 keystore, given as parsed JSON or as the file's text. `source` names the file in error messages.
 * A wrong passphrase and a file altered after it was written look the same (the MAC does not match); both give
 * BAD_PASSPHRASE, and the message mentions both.
 */
export async function decryptKeystore(json: unknown, passphrase: string, source?: string): Promise<Uint8Array> {
  if (typeof passphrase !== 'string') throw new TypeError('keystore passphrase must be a string');
  const label = source === undefined ? 'keystore' : `keystore ${source}`;
  const parsed = parseKeystore(typeof json === 'string' ? parseJsonText(json, label, source) : json, label, source);

  const passphrases = [passphrase];
  // ethers normalizes passphrases to NFKC before the KDF and geth does not; for a passphrase whose NFKC form differs
  // (some accented or full-width input), try the other form before calling it wrong.
  const normalized = passphrase.normalize('NFKC');
  if (normalized !== passphrase) passphrases.push(normalized);

  for (const candidate of passphrases) {
    const derived = await deriveKey(parsed.kdf, utf8(candidate));
    try {
      const mac = keccak256(concatBytes(derived.subarray(16, 32), parsed.ciphertext));
      if (!equalBytes(mac, parsed.mac)) continue;
      const plain = aes128Ctr(derived.subarray(0, 16), parsed.iv, parsed.ciphertext);
      // Older geth wrote big.Int bytes, dropping leading zeros; the scalar is the same number, padded back to 32 bytes.
      const privateKey = new Uint8Array(KEY_LENGTH);
      privateKey.set(plain, KEY_LENGTH - plain.length);
      plain.fill(0);
      let address: Address;
      try {
        address = keyPairFromPrivateKey(privateKey).address;
      } catch (error) {
        throw new KeystoreError(
          'CORRUPT',
          `${label} decrypts to a value that is not a valid secp256k1 private key: the file was not written by a ` +
            `correct Ethereum tool; ${RESTORE_HINT}`,
          source,
          { cause: error },
        );
      }
      if (parsed.address !== undefined && parsed.address !== address.slice(2).toLowerCase()) {
        throw new KeystoreError(
          'ADDRESS_MISMATCH',
          `${label} says it holds address ${toChecksumAddress(`0x${parsed.address}`)} but its key belongs to ` +
            `${address}: the file was edited or pieced together from two keystores; ${RESTORE_HINT}`,
          source,
        );
      }
      return privateKey;
    } finally {
      derived.fill(0);
    }
  }
  throw new KeystoreError(
    'BAD_PASSPHRASE',
    `wrong passphrase for ${label} (MAC mismatch): ${PASSPHRASE_HINT}; if the passphrase is right, the file has been ` +
      `altered or damaged and you should ${RESTORE_HINT}`,
    source,
  );
}

/**
 * Writes a keystore atomically: a private temp file in the same directory, fsync, then a link or rename into place,
 * so a crash leaves either no file or a complete one, never a half-written key.
 */
export async function writeKeystoreFile(
  path: string,
  privateKey: Uint8Array,
  passphrase: string,
  options: WriteKeystoreOptions = {},
): Promise<KeystoreV3> {
  const overwrite = options.overwrite === true;
  // Checked before the KDF too, so that the operator hears about it at once instead of after a second of scrypt.
  if (!overwrite && (await exists(path))) throw existsError(path);
  const keystore = await encryptKeystore(privateKey, passphrase, options);

  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(keystore)}\n`, 'utf8');
    // The umask may have narrowed the mode further; the file is meant to be exactly 0600.
    await handle.chmod(0o600);
    await handle.sync();
    await handle.close();
    handle = undefined;
    if (overwrite) {
      await rename(temp, path);
    } else {
      await linkNoClobber(temp, path);
    }
  } finally {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
  }
  await syncDirectory(dir);
  return keystore;
}

/** Reads and decrypts a keystore file. Loose permissions are reported in `warnings`, not refused. */
export async function readKeystoreFile(path: string, passphrase: string): Promise<KeystoreFileContents> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      throw new KeystoreError(
        'ENOENT',
        `keystore ${path} does not exist: check the key file path in your config, or create the keystore first`,
        path,
        { cause: error },
      );
    }
    throw error;
  }
  const warnings: string[] = [];
  let text: string;
  try {
    // Mode and content come from the same open file, so a swap between the two checks cannot fool us.
    const info = await handle.stat();
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      warnings.push(
        `keystore ${path} is accessible to group or others (mode ${mode}); anyone who can read it can try ` +
          `passphrases offline: run chmod 600 ${path}`,
      );
    }
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
  const privateKey = await decryptKeystore(text, passphrase, path);
  return { privateKey, address: keyPairFromPrivateKey(privateKey).address, warnings };
}

interface ParsedKeystore {
  kdf: KdfSpec;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  mac: Uint8Array;
  /** 40 lower-case hex digits, when the file has an address. */
  address: string | undefined;
}

function parseJsonText(text: string, label: string, source: string | undefined): unknown {
  // A UTF-8 BOM is what some Windows editors add on save; it is not part of the JSON.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') {
    throw new KeystoreError('CORRUPT', `${label} is empty: the file is corrupted; ${RESTORE_HINT}`, source);
  }
  try {
    return JSON.parse(body);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position =
      /at position (\d+)/.exec(message)?.[1] ?? (/end of JSON input/.test(message) ? body.length : undefined);
    const where = position === undefined ? `(${message})` : `at position ${position}`;
    throw new KeystoreError(
      'CORRUPT',
      `${label} is not valid JSON ${where}: the file is corrupted; ${RESTORE_HINT}`,
      source,
      { cause: error },
    );
  }
}

function parseKeystore(json: unknown, label: string, source: string | undefined): ParsedKeystore {
  const corrupt = (what: string): KeystoreError =>
    new KeystoreError(
      'CORRUPT',
      `${label} ${what}: the file is damaged or is not a Web3 Secret Storage v3 keystore; ${RESTORE_HINT}`,
      source,
    );
  const unsupported = (what: string, todo: string): KeystoreError =>
    new KeystoreError('UNSUPPORTED', `${label} ${what}: ${todo}`, source);

  const field = (record: Record<string, unknown>, key: string, path: string): unknown => {
    if (!(key in record) || record[key] === undefined || record[key] === null) throw corrupt(`is missing "${path}"`);
    return record[key];
  };
  const object = (record: Record<string, unknown>, key: string, path: string): Record<string, unknown> => {
    const value = field(record, key, path);
    if (!isRecord(value)) throw corrupt(`has "${path}" of the wrong type (expected an object, got ${typeName(value)})`);
    return value;
  };
  const string = (record: Record<string, unknown>, key: string, path: string): string => {
    const value = field(record, key, path);
    if (typeof value !== 'string') {
      throw corrupt(`has "${path}" of the wrong type (expected a string, got ${typeName(value)})`);
    }
    return value;
  };
  const integer = (record: Record<string, unknown>, key: string, path: string): number => {
    const value = field(record, key, path);
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw corrupt(`has "${path}" of the wrong type (expected an integer, got ${typeName(value)})`);
    }
    return value;
  };
  const hex = (record: Record<string, unknown>, key: string, path: string, min: number, max: number): Uint8Array => {
    const text = string(record, key, path);
    let bytes: Uint8Array;
    try {
      // Writers agree on bare hex; a stray 0x is harmless, so accept it.
      bytes = fromHex(text.startsWith('0x') ? text : `0x${text}`, path);
    } catch {
      throw corrupt(`has "${path}" that is not hex`);
    }
    if (bytes.length < min || bytes.length > max) {
      const expected = min === max ? `${min}` : `${min} to ${max}`;
      throw corrupt(`has "${path}" of ${bytes.length} bytes (expected ${expected})`);
    }
    return bytes;
  };

  if (!isRecord(json)) throw corrupt(`is not a JSON object (got ${typeName(json)})`);
  const version = field(json, 'version', 'version');
  if (version !== 3) {
    throw unsupported(
      `is version ${JSON.stringify(version)}, not 3`,
      'only Web3 Secret Storage v3 keystores can be read; convert it with a current geth (geth account update)',
    );
  }
  const id = string(json, 'id', 'id');
  if (!UUID_RE.test(id)) throw corrupt(`has an "id" that is not a UUID (${JSON.stringify(id.slice(0, 40))})`);

  let address: string | undefined;
  if (json.address !== undefined && json.address !== null) {
    const text = string(json, 'address', 'address');
    const body = text.startsWith('0x') || text.startsWith('0X') ? text.slice(2) : text;
    if (!/^[0-9a-fA-F]{40}$/.test(body)) throw corrupt('has an "address" that is not 40 hex digits');
    address = body.toLowerCase();
  }

  // Older geth wrote "Crypto"; the spec and newer geth write "crypto".
  const cryptoKey = 'crypto' in json ? 'crypto' : 'Crypto' in json ? 'Crypto' : 'crypto';
  const crypto = object(json, cryptoKey, cryptoKey);
  const cipher = string(crypto, 'cipher', `${cryptoKey}.cipher`);
  if (cipher !== 'aes-128-ctr') {
    throw unsupported(
      `uses cipher ${JSON.stringify(cipher)}, which is not supported (only aes-128-ctr)`,
      'import it into geth or ethers and export it again; they write aes-128-ctr',
    );
  }
  const cipherparams = object(crypto, 'cipherparams', `${cryptoKey}.cipherparams`);
  const iv = hex(cipherparams, 'iv', `${cryptoKey}.cipherparams.iv`, IV_LENGTH, IV_LENGTH);
  const ciphertext = hex(crypto, 'ciphertext', `${cryptoKey}.ciphertext`, 1, KEY_LENGTH);
  const mac = hex(crypto, 'mac', `${cryptoKey}.mac`, MAC_LENGTH, MAC_LENGTH);
  const kdfName = string(crypto, 'kdf', `${cryptoKey}.kdf`);
  if (kdfName !== 'scrypt' && kdfName !== 'pbkdf2') {
    throw unsupported(
      `uses key derivation ${JSON.stringify(kdfName)}, which is not supported (only scrypt and pbkdf2)`,
      'import it into geth or ethers and export it again; they write scrypt',
    );
  }
  const params = object(crypto, 'kdfparams', `${cryptoKey}.kdfparams`);
  const at = (key: string): string => `${cryptoKey}.kdfparams.${key}`;
  const salt = hex(params, 'salt', at('salt'), 1, MAX_SALT_LENGTH);
  const dklen = integer(params, 'dklen', at('dklen'));
  let kdf: KdfSpec;
  if (kdfName === 'scrypt') {
    kdf = {
      kdf: 'scrypt',
      salt,
      dklen,
      n: integer(params, 'n', at('n')),
      r: integer(params, 'r', at('r')),
      p: integer(params, 'p', at('p')),
    };
  } else {
    const prf = string(params, 'prf', at('prf'));
    if (prf !== 'hmac-sha256') {
      throw unsupported(
        `uses PBKDF2 with ${JSON.stringify(prf)}, which is not supported (only hmac-sha256)`,
        'import it into geth or ethers and export it again',
      );
    }
    kdf = { kdf: 'pbkdf2', salt, dklen, c: integer(params, 'c', at('c')) };
  }
  const problem = kdfProblem(kdf);
  if (problem !== undefined) {
    throw unsupported(
      problem,
      'no standard tool writes such a file, so it has probably been tampered with; if it is genuine, decrypt it with ' +
        `geth and re-encrypt it with standard parameters (scrypt n=${GETH_SCRYPT_PARAMS.n}, r=8, p=1)`,
    );
  }
  return { kdf, iv, ciphertext, mac, address };
}

/** Why these KDF parameters are unusable or unreasonable, or undefined when they are fine. */
function kdfProblem(spec: KdfSpec): string | undefined {
  if (spec.dklen < DKLEN || spec.dklen > MAX_DKLEN) {
    return `asks for a derived key of ${spec.dklen} bytes (must be ${DKLEN} to ${MAX_DKLEN})`;
  }
  if (spec.kdf === 'pbkdf2') {
    if (spec.c < 1 || spec.c > MAX_PBKDF2_ITERATIONS) {
      return `asks for pbkdf2 c=${spec.c} iterations (must be 1 to ${MAX_PBKDF2_ITERATIONS}; more would stall for minutes)`;
    }
    return undefined;
  }
  const { n, r, p } = spec;
  if (n < 2 || n > MAX_SCRYPT_N || (n & (n - 1)) !== 0) {
    return `asks for scrypt n=${n} (must be a power of two from 2 to ${MAX_SCRYPT_N}; larger would take minutes or exhaust memory)`;
  }
  if (r < 1 || r > MAX_SCRYPT_R || p < 1 || p > MAX_SCRYPT_P) {
    return `asks for scrypt r=${r}, p=${p} (r must be 1 to ${MAX_SCRYPT_R}, p 1 to ${MAX_SCRYPT_P})`;
  }
  if (128 * n * r > MAX_SCRYPT_MEMORY) {
    return `asks for scrypt n=${n}, r=${r}, which needs ${(128 * n * r) / 2 ** 20} MiB (limit ${MAX_SCRYPT_MEMORY / 2 ** 20} MiB)`;
  }
  if (128 * n * r * p > MAX_SCRYPT_WORK) {
    return `asks for scrypt n=${n}, r=${r}, p=${p}, which would take minutes (n·r·p at most ${MAX_SCRYPT_WORK / 128})`;
  }
  return undefined;
}

async function deriveKey(spec: KdfSpec, passphrase: Uint8Array): Promise<Uint8Array> {
  if (spec.kdf === 'pbkdf2') {
    return new Promise((resolve, reject) => {
      pbkdf2Callback(passphrase, spec.salt, spec.c, spec.dklen, 'sha256', (error, key) =>
        error ? reject(error) : resolve(new Uint8Array(key)),
      );
    });
  }
  const { n, r, p, dklen, salt } = spec;
  // OpenSSL enforces RFC 7914's N < 2^(16·r), which geth and ethers do not; the spec's own scrypt test vector
  // (n=2^18, r=1) breaks it. Such files go to noble's scrypt, slower but still off the critical path.
  if (16 * r < 64 && n >= 2 ** (16 * r)) {
    return scryptAsync(passphrase, salt, { N: n, r, p, dkLen: dklen, maxmem: 128 * r * (n + p + 2) });
  }
  return new Promise((resolve, reject) => {
    // Node's default maxmem (32 MiB) is below geth's standard parameters (256 MiB).
    scrypt(passphrase, salt, dklen, { N: n, r, p, maxmem: 2 * 128 * r * (n + p + 2) }, (error, key) =>
      error ? reject(error) : resolve(new Uint8Array(key)),
    );
  });
}

function aes128Ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  // CTR mode is its own inverse, so one function both encrypts and decrypts.
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]));
}

/** Moves `temp` to `path` unless `path` exists. A hard link fails with EEXIST atomically; rename would clobber. */
async function linkNoClobber(temp: string, path: string): Promise<void> {
  try {
    await link(temp, path);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EEXIST') throw existsError(path);
    // Some filesystems (FAT, some network mounts) have no hard links; a check-then-rename is the best left there.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
    if (await exists(path)) throw existsError(path);
    await rename(temp, path);
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes the new directory entry durable; without it a power cut can lose the rename. Not possible on Windows.
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Best effort: the file itself is already synced.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    // lstat: a dangling symlink at the target still counts as "something is there".
    await lstat(path);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw error;
  }
}

function existsError(path: string): KeystoreError {
  return new KeystoreError(
    'EXISTS',
    `keystore ${path} already exists; refusing to overwrite it because it may hold the only copy of a key: move it ` +
      'aside or choose another path (or pass overwrite: true to replace it deliberately)',
    path,
  );
}

function bare(bytes: Uint8Array): string {
  return toHex(bytes).slice(2);
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
