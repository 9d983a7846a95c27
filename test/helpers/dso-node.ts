/**
 * A DSO node's files for integration tests: a keystore, a one-validator genesis and a config that authorizes the
 * given MGMCs at once (allow-list), written to `dir`; and a poll-until helper for things that arrive over a broker.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AgentConfig, loadConfig } from '../../agent/config/index.js';
import { generateKeyPair, type KeyPair } from '../../agent/identity/keys.js';
import { writeKeystoreFile } from '../../agent/identity/keystore.js';

export interface TestGenesis {
  readonly chainId: number;
  readonly name: string;
  readonly time: number;
  readonly validators: string[];
}

/** Writes dso.json, genesis.json and dso.yaml to `dir` and loads the config. */
export async function writeDsoNode(
  dir: string,
  options: { readonly chainId: number; readonly brokerUrl: string; readonly allow: readonly string[] },
): Promise<{ readonly key: KeyPair; readonly genesis: TestGenesis; readonly config: AgentConfig }> {
  const pass = 'dso test passphrase';
  const key = generateKeyPair();
  await writeKeystoreFile(join(dir, 'dso.json'), key.privateKey, pass, { kdf: 'pbkdf2' });
  const genesis: TestGenesis = { chainId: options.chainId, name: 'ieee33', time: 0, validators: [key.address] };
  writeFileSync(join(dir, 'genesis.json'), JSON.stringify(genesis));
  writeFileSync(
    join(dir, 'dso.yaml'),
    `role: dso
chainId: ${options.chainId}
site: { name: DSO }
identity: { keystore: ./dso.json, passphrase: env:PASS }
store: { path: ./dso.db, synchronous: normal }
log: { level: error }
link: { url: "${options.brokerUrl}" }
dso:
  genesis: ./genesis.json
  policy: { mode: allow-list, allow: [${options.allow.map((a) => `"${a}"`).join(', ')}] }
`,
  );
  return { key, genesis, config: await loadConfig(join(dir, 'dso.yaml'), { env: { PASS: pass } }) };
}

/** Resolves once `condition` holds; rejects naming `what` after `timeoutMs`. */
export async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
