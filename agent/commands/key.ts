/** mgmc keygen, mgmc key show. */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { generateKeyPair, toChecksumAddress } from '../identity/keys.js';
import { KeystoreError, readKeystoreFile, writeKeystoreFile } from '../identity/keystore.js';
import { CommandError, EXIT, getPassphrase, type Io } from './io.js';

export async function keygen(
  io: Io,
  options: { out: string; kdf: 'scrypt' | 'pbkdf2'; force: boolean; json: boolean },
): Promise<number> {
  const path = resolve(options.out);
  const passphrase = await getPassphrase(io, 'create');
  const pair = generateKeyPair();
  try {
    // A fresh checkout has no keys/ directory yet; keys deserve a directory only the owner can enter.
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeKeystoreFile(path, pair.privateKey, passphrase, { kdf: options.kdf, overwrite: options.force });
  } catch (err) {
    if (err instanceof KeystoreError && err.code === 'EXISTS') {
      throw new CommandError(
        `keystore ${path} already exists; refusing to overwrite it because it may hold the only copy of a key: ` +
          'move it aside or choose another path (or pass --force to replace it deliberately)',
        EXIT.cantCreate,
      );
    }
    throw keystoreToCommandError(err);
  }
  if (options.json) io.out(JSON.stringify({ address: pair.address, keystore: path }));
  else io.out(`created ${path}\naddress ${pair.address}`);
  return EXIT.ok;
}

/**
 * Prints the address of a keystore. Without --verify it reads the file's `address` field (no passphrase needed);
 * with --verify it decrypts the key and derives the address, which proves the passphrase and the file are good.
 */
export async function keyShow(io: Io, file: string, options: { json: boolean; verify: boolean }): Promise<number> {
  const path = resolve(file);
  let address: string;
  let verified = false;
  let warnings: string[] = [];
  if (options.verify) {
    try {
      const contents = await readKeystoreFile(path, await getPassphrase(io, 'unlock'));
      address = contents.address;
      warnings = contents.warnings;
      verified = true;
    } catch (err) {
      throw keystoreToCommandError(err);
    }
  } else {
    let json: { address?: unknown };
    try {
      json = JSON.parse(await readFile(path, 'utf8')) as { address?: unknown };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new CommandError(`keystore ${path} does not exist`, EXIT.noInput);
      throw new CommandError(`keystore ${path} is not valid JSON: the file is corrupted`, EXIT.dataError);
    }
    if (typeof json.address !== 'string' || !/^(0x)?[0-9a-fA-F]{40}$/.test(json.address)) {
      throw new CommandError(
        `keystore ${path} has no address field: run with --verify to derive it from the key`,
        EXIT.dataError,
      );
    }
    address = toChecksumAddress(json.address.startsWith('0x') ? json.address : `0x${json.address}`);
  }
  for (const w of warnings) io.err(`warning: ${w}`);
  if (options.json) io.out(JSON.stringify({ address, keystore: path, verified }));
  else io.out(verified ? address : `${address}  (from the file's address field; --verify decrypts to prove it)`);
  return EXIT.ok;
}

export function keystoreToCommandError(err: unknown): unknown {
  if (!(err instanceof KeystoreError)) return err;
  const code = err.code === 'ENOENT' ? EXIT.noInput : err.code === 'EXISTS' ? EXIT.cantCreate : EXIT.dataError;
  return new CommandError(err.message, code);
}
