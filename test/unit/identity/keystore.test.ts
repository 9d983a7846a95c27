import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { addressFromPrivateKey, generateKeyPair, toChecksumAddress } from '../../../agent/identity/keys.js';
import {
  decryptKeystore,
  encryptKeystore,
  KeystoreError,
  type KeystoreErrorCode,
  type KeystoreV3,
  readKeystoreFile,
  writeKeystoreFile,
} from '../../../agent/identity/keystore.js';

interface Vector {
  name: string;
  writer: string;
  source: string;
  password: string;
  privateKey?: string;
  address?: string;
  keystore: Record<string, unknown>;
}

interface EditableCrypto {
  cipher: string;
  ciphertext: string;
  cipherparams: { iv: string };
  kdf: string;
  kdfparams: Record<string, string | number>;
  mac?: string;
}

interface EditableKeystore {
  address?: string;
  id: string;
  version: number;
  crypto?: EditableCrypto;
}

interface VectorFile {
  vectors: Vector[];
  rejected: (Vector & { expect: KeystoreErrorCode })[];
}

const vectorFile = JSON.parse(
  await readFile(new URL('../../vectors/keystore-v3.json', import.meta.url), 'utf8'),
) as VectorFile;

const LIGHT = { n: 4096, r: 8, p: 1 };
const PASSPHRASE = 'correct horse battery staple';
const posix = process.platform !== 'win32';

/** Published keys from old geth lack leading zero bytes; the scalar is the same number at 32 bytes. */
function padKey(hex: string): string {
  return `0x${hex.slice(2).padStart(64, '0')}`;
}

async function expectKeystoreError(
  promise: Promise<unknown>,
  code: KeystoreErrorCode,
  ...fragments: string[]
): Promise<KeystoreError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KeystoreError);
  const keystoreError = error as KeystoreError;
  expect(keystoreError.code, keystoreError.message).toBe(code);
  for (const fragment of fragments) expect(keystoreError.message).toContain(fragment);
  return keystoreError;
}

describe('published keystore vectors', () => {
  it('has a source for every vector, and keystores written by geth and by ethers', () => {
    for (const vector of [...vectorFile.vectors, ...vectorFile.rejected]) expect(vector.source).toMatch(/^https:\/\//);
    expect(vectorFile.vectors.some((v) => v.writer === 'go-ethereum')).toBe(true);
    expect(vectorFile.vectors.some((v) => v.writer.startsWith('ethers.js'))).toBe(true);
    expect(vectorFile.vectors.some((v) => v.keystore.crypto === undefined)).toBe(true); // older geth's "Crypto"
  });

  for (const vector of vectorFile.vectors) {
    it(`decrypts ${vector.name} (${vector.writer})`, async () => {
      const key = await decryptKeystore(vector.keystore, vector.password, vector.name);
      expect(key).toHaveLength(32);
      if (vector.privateKey !== undefined) expect(toHex(key)).toBe(padKey(vector.privateKey));
      const address = addressFromPrivateKey(key);
      if (vector.address !== undefined) expect(address).toBe(toChecksumAddress(vector.address));
    });
  }

  for (const vector of vectorFile.rejected) {
    it(`rejects ${vector.name} as ${vector.expect}`, async () => {
      await expectKeystoreError(decryptKeystore(vector.keystore, vector.password, vector.name), vector.expect);
    });
  }

  it('re-encrypting a vector key with its published salt, iv and parameters reproduces the published file', async () => {
    for (const name of ['spec-pbkdf2', 'ethers-life']) {
      const vector = vectorFile.vectors.find((v) => v.name === name) as Vector;
      const published = (vector.keystore.crypto ?? vector.keystore.Crypto) as KeystoreV3['crypto'];
      const params = published.kdfparams;
      const kdf =
        'c' in params
          ? { kdf: 'pbkdf2' as const, pbkdf2: { c: params.c } }
          : { kdf: 'scrypt' as const, scrypt: { n: params.n, r: params.r, p: params.p } };
      const ours = await encryptKeystore(fromHex(vector.privateKey as string), vector.password, {
        ...kdf,
        salt: fromHex(`0x${params.salt}`),
        iv: fromHex(`0x${published.cipherparams.iv}`),
        uuid: vector.keystore.id as string,
      });
      expect(ours.crypto.ciphertext).toBe(published.ciphertext);
      expect(ours.crypto.mac).toBe(published.mac);
      expect(`0x${ours.address}`).toBe((vector.address as string).toLowerCase());
    }
  });
});

describe('encryptKeystore / decryptKeystore', () => {
  it('uses geth parameters by default (scrypt n=262144, r=8, p=1, dklen=32) and round-trips', async () => {
    const { privateKey, address } = generateKeyPair();
    const keystore = await encryptKeystore(privateKey, PASSPHRASE);
    expect(keystore.version).toBe(3);
    expect(keystore.address).toBe(address.slice(2).toLowerCase());
    expect(keystore.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(keystore.crypto.cipher).toBe('aes-128-ctr');
    expect(keystore.crypto.kdf).toBe('scrypt');
    expect(keystore.crypto.kdfparams).toMatchObject({ n: 262144, r: 8, p: 1, dklen: 32 });
    expect(keystore.crypto.kdfparams.salt).toMatch(/^[0-9a-f]{64}$/);
    expect(keystore.crypto.cipherparams.iv).toMatch(/^[0-9a-f]{32}$/);
    expect(keystore.crypto.mac).toMatch(/^[0-9a-f]{64}$/);
    expect(await decryptKeystore(JSON.parse(JSON.stringify(keystore)), PASSPHRASE)).toEqual(privateKey);
  });

  it('round-trips with light scrypt and with pbkdf2, including a key with a leading zero byte', async () => {
    const leadingZero = new Uint8Array(32).fill(0x42);
    leadingZero[0] = 0;
    for (const privateKey of [generateKeyPair().privateKey, leadingZero]) {
      const scrypt = await encryptKeystore(privateKey, PASSPHRASE, { scrypt: LIGHT });
      expect(scrypt.crypto.kdfparams).toMatchObject({ n: 4096, r: 8, p: 1, dklen: 32 });
      expect(await decryptKeystore(JSON.stringify(scrypt), PASSPHRASE)).toEqual(privateKey);

      const pbkdf2 = await encryptKeystore(privateKey, PASSPHRASE, { kdf: 'pbkdf2', pbkdf2: { c: 4096 } });
      expect(pbkdf2.crypto.kdfparams).toMatchObject({ c: 4096, dklen: 32, prf: 'hmac-sha256' });
      expect(await decryptKeystore(pbkdf2, PASSPHRASE)).toEqual(privateKey);
    }
  });

  it('is deterministic given salt, iv and uuid, and random otherwise', async () => {
    const { privateKey } = generateKeyPair();
    const fixed = { scrypt: LIGHT, salt: new Uint8Array(32).fill(1), iv: new Uint8Array(16).fill(2) };
    const uuid = '01234567-8901-4345-a789-012345678901';
    const a = await encryptKeystore(privateKey, PASSPHRASE, { ...fixed, uuid });
    const b = await encryptKeystore(privateKey, PASSPHRASE, { ...fixed, uuid });
    expect(a).toEqual(b);
    const c = await encryptKeystore(privateKey, PASSPHRASE, { scrypt: LIGHT });
    const d = await encryptKeystore(privateKey, PASSPHRASE, { scrypt: LIGHT });
    expect(c.crypto.ciphertext).not.toBe(d.crypto.ciphertext);
    expect(c.id).not.toBe(d.id);
  });

  it('accepts the NFKC form of a passphrase, as ethers writes it', async () => {
    const { privateKey } = generateKeyPair();
    const keystore = await encryptKeystore(privateKey, 'Caf\u00e9', { scrypt: LIGHT });
    expect(await decryptKeystore(keystore, 'Cafe\u0301')).toEqual(privateKey);
  });

  it('refuses to write parameters it would refuse to read', async () => {
    const { privateKey } = generateKeyPair();
    await expect(encryptKeystore(privateKey, PASSPHRASE, { scrypt: { n: 3000, r: 8, p: 1 } })).rejects.toThrow(
      RangeError,
    );
    await expect(encryptKeystore(privateKey, PASSPHRASE, { kdf: 'pbkdf2', pbkdf2: { c: 0 } })).rejects.toThrow(
      RangeError,
    );
    await expect(encryptKeystore(new Uint8Array(32), PASSPHRASE)).rejects.toThrow(/secp256k1/);
  });

  it('names the source in messages when given one', async () => {
    const keystore = await encryptKeystore(generateKeyPair().privateKey, PASSPHRASE, { scrypt: LIGHT });
    await expectKeystoreError(decryptKeystore(keystore, 'nope', 'backup.json'), 'BAD_PASSPHRASE', 'backup.json');
    await expectKeystoreError(decryptKeystore('{"version":3', PASSPHRASE, 'backup.json'), 'CORRUPT', 'backup.json');
    await expectKeystoreError(decryptKeystore([], PASSPHRASE), 'CORRUPT', 'not a JSON object');
  });
});

describe('keystore files', () => {
  let dir: string;
  let base: KeystoreV3;
  let baseKey: Uint8Array;
  let counter = 0;

  /** Writes `content` (an object, or raw text) to a new file and returns its path. */
  async function put(content: unknown, mode = 0o600): Promise<string> {
    counter += 1;
    const path = join(dir, `case-${counter}.json`);
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content), { mode });
    return path;
  }

  /** A copy of the base keystore after `change`; the crypto section is passed separately so it can be deleted. */
  function mutated(change: (keystore: EditableKeystore, crypto: EditableCrypto) => void): EditableKeystore {
    const copy = structuredClone(base) as unknown as EditableKeystore & { crypto: EditableCrypto };
    change(copy, copy.crypto);
    return copy;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mgmc-keystore-'));
    baseKey = generateKeyPair().privateKey;
    base = await encryptKeystore(baseKey, PASSPHRASE, { scrypt: LIGHT });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a 0600 file that readKeystoreFile reads back with a checksummed address and no warnings', async () => {
    const path = join(dir, 'written.json');
    const { privateKey, address } = generateKeyPair();
    const keystore = await writeKeystoreFile(path, privateKey, PASSPHRASE, { scrypt: LIGHT });
    if (posix) expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(keystore);
    const read = await readKeystoreFile(path, PASSPHRASE);
    expect(read.privateKey).toEqual(privateKey);
    expect(read.address).toBe(address);
    expect(read.warnings).toEqual([]);
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to overwrite an existing file unless told to', async () => {
    const path = join(dir, 'existing.json');
    const first = generateKeyPair().privateKey;
    await writeKeystoreFile(path, first, PASSPHRASE, { scrypt: LIGHT });
    const before = await readFile(path, 'utf8');
    await expectKeystoreError(
      writeKeystoreFile(path, generateKeyPair().privateKey, PASSPHRASE, { scrypt: LIGHT }),
      'EXISTS',
      path,
      'overwrite',
    );
    expect(await readFile(path, 'utf8')).toBe(before);

    const second = generateKeyPair().privateKey;
    await writeKeystoreFile(path, second, PASSPHRASE, { scrypt: LIGHT, overwrite: true });
    expect((await readKeystoreFile(path, PASSPHRASE)).privateKey).toEqual(second);
    if (posix) expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it.skipIf(!posix)('reads a group/world-readable file but warns to chmod 600', async () => {
    const path = await put(base);
    await chmod(path, 0o644);
    const read = await readKeystoreFile(path, PASSPHRASE);
    expect(read.privateKey).toEqual(baseKey);
    expect(read.warnings).toHaveLength(1);
    expect(read.warnings[0]).toContain(`chmod 600 ${path}`);
    expect(read.warnings[0]).toContain('0644');
  });

  it('ENOENT for a missing file', async () => {
    const path = join(dir, 'nowhere.json');
    await expectKeystoreError(readKeystoreFile(path, PASSPHRASE), 'ENOENT', path);
  });

  it('BAD_PASSPHRASE for a wrong passphrase', async () => {
    const path = await put(base);
    const error = await expectKeystoreError(
      readKeystoreFile(path, 'wrong'),
      'BAD_PASSPHRASE',
      `wrong passphrase for keystore ${path} (MAC mismatch)`,
      'MGMC_KEY_PASSPHRASE',
    );
    expect(error.source).toBe(path);
  });

  it('BAD_PASSPHRASE for a flipped ciphertext byte (indistinguishable from a wrong passphrase)', async () => {
    const path = await put(
      mutated((_, c) => {
        const flipped = Number.parseInt(c.ciphertext.slice(0, 2), 16) ^ 0x01;
        c.ciphertext = flipped.toString(16).padStart(2, '0') + c.ciphertext.slice(2);
      }),
    );
    await expectKeystoreError(readKeystoreFile(path, PASSPHRASE), 'BAD_PASSPHRASE', path, 'altered');
  });

  it('CORRUPT for truncated JSON, naming the position', async () => {
    const text = JSON.stringify(base);
    const path = await put(text.slice(0, 100));
    await expectKeystoreError(
      readKeystoreFile(path, PASSPHRASE),
      'CORRUPT',
      `keystore ${path} is not valid JSON at position `,
      'restore it from your backup',
    );
    await expectKeystoreError(readKeystoreFile(await put(''), PASSPHRASE), 'CORRUPT', 'is empty');
  });

  it('CORRUPT for a missing or mistyped field, naming the field', async () => {
    const missing = await put(mutated((_, c) => delete c.kdfparams.salt));
    await expectKeystoreError(readKeystoreFile(missing, PASSPHRASE), 'CORRUPT', missing, '"crypto.kdfparams.salt"');
    const noMac = await put(mutated((_, c) => delete c.mac));
    await expectKeystoreError(readKeystoreFile(noMac, PASSPHRASE), 'CORRUPT', noMac, '"crypto.mac"');
    const noCrypto = await put(mutated((k) => delete k.crypto));
    await expectKeystoreError(readKeystoreFile(noCrypto, PASSPHRASE), 'CORRUPT', noCrypto, '"crypto"');
    const badType = await put(mutated((_, c) => (c.kdfparams.n = '4096')));
    await expectKeystoreError(readKeystoreFile(badType, PASSPHRASE), 'CORRUPT', badType, 'expected an integer');
    const badIv = await put(mutated((_, c) => (c.cipherparams.iv = 'abcd')));
    await expectKeystoreError(readKeystoreFile(badIv, PASSPHRASE), 'CORRUPT', badIv, 'crypto.cipherparams.iv');
    const badId = await put(mutated((k) => (k.id = 'not-a-uuid')));
    await expectKeystoreError(readKeystoreFile(badId, PASSPHRASE), 'CORRUPT', badId, '"id"');
  });

  it('UNSUPPORTED for an unknown cipher, kdf, prf or version', async () => {
    const cipher = await put(mutated((_, c) => (c.cipher = 'aes-128-cbc')));
    await expectKeystoreError(readKeystoreFile(cipher, PASSPHRASE), 'UNSUPPORTED', cipher, 'aes-128-cbc');
    const kdf = await put(mutated((_, c) => (c.kdf = 'argon2id')));
    await expectKeystoreError(readKeystoreFile(kdf, PASSPHRASE), 'UNSUPPORTED', kdf, 'argon2id');
    const prf = await put(
      mutated((_, c) => {
        c.kdf = 'pbkdf2';
        c.kdfparams = { c: 4096, dklen: 32, prf: 'hmac-sha512', salt: c.kdfparams.salt as string };
      }),
    );
    await expectKeystoreError(readKeystoreFile(prf, PASSPHRASE), 'UNSUPPORTED', prf, 'hmac-sha512');
    const version = await put(mutated((k) => (k.version = 1)));
    await expectKeystoreError(readKeystoreFile(version, PASSPHRASE), 'UNSUPPORTED', version, 'version 1');
  });

  it('UNSUPPORTED, at once, for KDF parameters that would hang or exhaust memory', async () => {
    const started = performance.now();
    const hugeN = await put(mutated((_, c) => (c.kdfparams.n = 2 ** 21)));
    await expectKeystoreError(readKeystoreFile(hugeN, PASSPHRASE), 'UNSUPPORTED', hugeN, 'n=2097152');
    const oddN = await put(mutated((_, c) => (c.kdfparams.n = 3000)));
    await expectKeystoreError(readKeystoreFile(oddN, PASSPHRASE), 'UNSUPPORTED', oddN, 'power of two');
    const hugeR = await put(mutated((_, c) => (c.kdfparams.r = 4096)));
    await expectKeystoreError(readKeystoreFile(hugeR, PASSPHRASE), 'UNSUPPORTED', hugeR, 'r=4096');
    const hugeC = await put(
      mutated((_, c) => {
        c.kdf = 'pbkdf2';
        c.kdfparams = { c: 10 ** 8, dklen: 32, prf: 'hmac-sha256', salt: c.kdfparams.salt as string };
      }),
    );
    await expectKeystoreError(readKeystoreFile(hugeC, PASSPHRASE), 'UNSUPPORTED', hugeC, 'c=100000000');
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('ADDRESS_MISMATCH when the address field names another key', async () => {
    const other = generateKeyPair().address;
    const path = await put(mutated((k) => (k.address = other.slice(2).toLowerCase())));
    await expectKeystoreError(
      readKeystoreFile(path, PASSPHRASE),
      'ADDRESS_MISMATCH',
      path,
      other,
      addressFromPrivateKey(baseKey),
    );
  });
});
