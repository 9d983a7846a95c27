import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  type ConfigIssue,
  checkConfigFile,
  createConfigLoader,
  formatIssue,
  loadConfig,
  SecretValue,
} from '../../../agent/config/index.js';
import { examplePath, fixture, fixturesDir, schemaWithBroker } from './helpers.js';

const env = { MGMC_KEY_PASSPHRASE: 'example passphrase' };

function lines(issues: readonly ConfigIssue[]): string[] {
  return issues.map(formatIssue);
}

describe('loading a valid config', () => {
  it('loads the shipped example', async () => {
    const config = await loadConfig(examplePath, { env });
    expect(config.role).toBe('mgmc');
    expect(config.site.name).toBe('Riverside community microgrid');
    expect(config.chainId).toBe(1337);
    expect(config.identity.keystore).toBe('/var/lib/mgmc-agent/keys/mgmc.json');
    expect(config.identity.passphrase).toBeInstanceOf(SecretValue);
    expect(config.identity.passphrase.reveal()).toBe('example passphrase');
    expect(config.store).toEqual({ path: '/var/lib/mgmc-agent/mgmc.db', synchronous: 'full' });
    expect(config.link?.tls.ca).toBe(join(fixturesDir, '../../../examples/tls/dso-ca.pem'));
    expect(config.ledger).toEqual({ sealEverySeconds: 10, sealEveryRecords: 1000 });
    expect(config.log).toEqual({ level: 'info' });
  });

  it('fills in every default and resolves paths against the config file, not the working directory', async () => {
    const config = await loadConfig(fixture('minimal.yaml'), { env: {} });
    expect(config.chainId).toBe(1337);
    expect(config.identity.keystore).toBe(join(fixturesDir, 'keys/mgmc.json'));
    expect(config.store).toEqual({ path: join(fixturesDir, 'data/mgmc.db'), synchronous: 'full' });
    expect(config.ledger).toEqual({ sealEverySeconds: 10, sealEveryRecords: 1000 });
    expect(config.log).toEqual({ level: 'info' });
  });

  it('reads file: secrets relative to the config file and strips the trailing newline', async () => {
    const config = await loadConfig(fixture('minimal.yaml'), { env: {} });
    expect(config.identity.passphrase.reveal()).toBe('correct horse battery staple');
    expect(String(config.identity.passphrase)).toBe('[secret file:keys/passphrase.txt]');
  });

  it('reads env: secrets from the injected environment only', async () => {
    const name = 'MGMC_KEY_PASSPHRASE';
    const before = process.env[name];
    process.env[name] = 'from process.env';
    try {
      const config = await loadConfig(examplePath, { env: { [name]: 'injected' } });
      expect(config.identity.passphrase.reveal()).toBe('injected');
      expect((await checkConfigFile(examplePath, { env: {} })).ok).toBe(false);
    } finally {
      if (before === undefined) delete process.env[name];
      else process.env[name] = before;
    }
  });
});

describe('a file with many problems', () => {
  const file = fixture('multi-error.yaml');
  const expected = [
    `${file}:3:7  role  one of the allowed values  got 'microgrid'; allowed: mgmc, dso`,
    `${file}:4:1  site.name  this required key  add 'name:' under 'site:': name of the microgrid site, shown in status output and sent to the DSO`,
    `${file}:5:3  site.label  a known key of site  allowed here: name`,
    `${file}:6:10  chainId  an integer of at least 1  got the text '1337'; remove the quotes`,
    `${file}:9:15  identity.passphrase  a secret reference: env:NAME or file:PATH  inline secrets are not allowed; put it in an environment variable (env:NAME) or in a file only the agent can read (file:PATH)`,
    `${file}:11:16  store.synchronous  one of the allowed values  got 'fulll'; did you mean 'full'? allowed: normal, full`,
    `${file}:13:21  ledger.sealEverySeconds  an integer from 1 to 3600  got 0`,
    `${file}:14:3  ledger.sealEveryRecord  a known key of ledger  did you mean 'sealEveryRecords'?`,
    `${file}:16:10  log.level  one of the allowed values  got 'verbose'; allowed: trace, debug, info, warn, error, fatal`,
  ];

  it('reports every problem at once, each at its line and column', async () => {
    const result = await createConfigLoader(schemaWithBroker).check(file, { env: {} });
    expect(result.ok).toBe(false);
    expect(result.config).toBeUndefined();
    expect(lines(result.issues)).toEqual([
      ...expected,
      `${file}:19:13  broker.password  environment variable MGMC_TEST_BROKER_PASSWORD to be set  it is not set for the agent: for the service, put MGMC_TEST_BROKER_PASSWORD=... in secrets.env beside this config (EnvironmentFile=, docs/deploy.md); in a shell, export MGMC_TEST_BROKER_PASSWORD first`,
    ]);
  });

  it('with the agent schema, reports the unknown section instead of looking inside it', async () => {
    const result = await checkConfigFile(file, { env: {} });
    expect(lines(result.issues)).toEqual([
      ...expected,
      `${file}:17:1  broker  a known top-level key  allowed here: role, site, chainId, identity, store, ledger, log, link, dso, buses, devices, meters, tariffs, buildings, optimizer, market, metrics`,
    ]);
  });

  it('never repeats an inline secret in its messages', async () => {
    const result = await checkConfigFile(file, { env: {} });
    expect(lines(result.issues).join('\n')).not.toContain('hunter2');
  });

  it('throws a ConfigError with exit code 78 carrying the same issues', async () => {
    const error = await loadConfig(file, { env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.exitCode).toBe(78);
    expect(configError.name).toBe('ConfigError');
    expect(lines(configError.issues)).toEqual(lines((await checkConfigFile(file, { env: {} })).issues));
    expect(configError.message).toContain(`config ${file}: 10 problems`);
    expect(configError.message).toContain(expected[0]);
  });
});

describe('YAML problems', () => {
  it('reports a syntax error where the unclosed quote opens', async () => {
    const file = fixture('syntax-error.yaml');
    const result = await checkConfigFile(file, { env });
    expect(lines(result.issues)).toEqual([
      `${file}:3:9  site.name  valid YAML  the quote opened here is never closed; close it with "`,
    ]);
  });

  it('reports a duplicate key at the second occurrence, naming the first', async () => {
    const file = fixture('duplicate-key.yaml');
    const result = await checkConfigFile(file, { env });
    expect(lines(result.issues)).toEqual([
      `${file}:9:3  ledger.sealEverySeconds  each key only once in a mapping  duplicate key (first set on line 8); keep one of them`,
    ]);
  });

  it('reports tab indentation', async () => {
    const file = fixture('tabs.yaml');
    const result = await checkConfigFile(file, { env });
    expect(result.issues).toHaveLength(1);
    expect(result.issues[0]).toMatchObject({ line: 3, column: 1, expected: 'indentation with spaces' });
  });

  it('reports an empty file and a file of only comments', async () => {
    for (const name of ['empty.yaml', 'comments-only.yaml']) {
      const file = fixture(name);
      const result = await checkConfigFile(file, { env });
      expect(lines(result.issues)).toEqual([
        `${file}:1:1  (root)  a mapping of settings (key: value lines)  the file is empty; start from examples/site.yaml`,
      ]);
    }
  });

  it('points at a key that slipped out of its section', async () => {
    const file = fixture('misplaced-key.yaml');
    const result = await checkConfigFile(file, { env });
    expect(lines(result.issues)).toEqual([
      `${file}:7:1  sealEveryRecords  a known top-level key  'sealEveryRecords' belongs under 'ledger:'; check the indentation`,
      `${file}:9:10  log.level  one of trace, debug, info, warn, error, fatal  got 3`,
    ]);
  });
});

describe('files that cannot be read', () => {
  it('says clearly that the file does not exist', async () => {
    const file = fixture('does-not-exist.yaml');
    const result = await checkConfigFile(file, { env });
    expect(result.ok).toBe(false);
    expect(lines(result.issues)).toEqual([
      `${file}  (file)  a readable config file  cannot read ${join(fixturesDir, 'does-not-exist.yaml')}: no such file; check the path, or start a new file from examples/site.yaml`,
    ]);
    await expect(loadConfig(file, { env })).rejects.toMatchObject({ exitCode: 78 });
  });

  it('says so when given a directory', async () => {
    const result = await checkConfigFile(fixturesDir, { env });
    expect(result.issues[0]?.hint).toContain('it is a directory, not a file');
  });
});

describe('secrets that cannot be resolved', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mgmc-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const write = async (passphrase: string): Promise<string> => {
    const path = join(dir, 'agent.yaml');
    const text = `role: mgmc\nsite:\n  name: t\nidentity:\n  keystore: k.json\n  passphrase: ${passphrase}\n`;
    await writeFile(path, text);
    return path;
  };

  it('reports a missing env var at the line of the reference', async () => {
    const path = await write('env:MGMC_NOT_SET');
    const result = await checkConfigFile(path, { env: {} });
    expect(result.issues).toEqual([
      expect.objectContaining({
        line: 6,
        column: 15,
        path: 'identity.passphrase',
        expected: 'environment variable MGMC_NOT_SET to be set',
      }),
    ]);
  });

  it('reports an empty env var', async () => {
    const path = await write('env:MGMC_EMPTY');
    const result = await checkConfigFile(path, { env: { MGMC_EMPTY: '' } });
    expect(result.issues[0]).toMatchObject({ line: 6, hint: 'it is set but empty' });
  });

  it('reports an unreadable secret file with its resolved path', async () => {
    const path = await write('file:secrets/missing.txt');
    const result = await checkConfigFile(path, { env: {} });
    expect(result.issues[0]).toMatchObject({
      line: 6,
      column: 15,
      expected: 'a readable secret file',
      hint: `cannot read ${join(dir, 'secrets/missing.txt')}: no such file; create it with the secret on one line (mode 0600, owned by the agent's user), or correct the path`,
    });
  });

  it('reports an empty secret file', async () => {
    await writeFile(join(dir, 'empty.txt'), '\n');
    const path = await write('file:empty.txt');
    const result = await checkConfigFile(path, { env: {} });
    expect(result.issues[0]).toMatchObject({ line: 6, expected: 'a secret file with content' });
  });

  it('rejects a malformed env: reference without echoing it', async () => {
    const path = await write('env:not-a-name');
    const result = await checkConfigFile(path, { env: {} });
    expect(result.issues[0]).toMatchObject({
      line: 6,
      expected: 'a secret reference: env:NAME or file:PATH',
      hint: 'after env: comes a variable name of letters, digits and underscores, e.g. env:MGMC_KEY_PASSPHRASE',
    });
  });
});

describe('the loader never writes the config file', () => {
  for (const name of ['../../../examples/site.yaml', 'minimal.yaml', 'multi-error.yaml', 'duplicate-key.yaml']) {
    it(`leaves ${name} byte-for-byte unchanged`, async () => {
      const path = join(fixturesDir, name);
      const before = await readFile(path);
      const statBefore = await stat(path);
      await checkConfigFile(path, { env });
      await loadConfig(path, { env }).catch(() => undefined);
      const after = await readFile(path);
      expect(createHash('sha256').update(after).digest('hex')).toBe(createHash('sha256').update(before).digest('hex'));
      expect((await stat(path)).mtimeMs).toBe(statBefore.mtimeMs);
    });
  }
});
