/**
 * The compiled command line, run as an operator would: `node dist/agent/cli.js ...` with the passphrase in the
 * environment and stdin not a terminal. `npm run build` must come first; `npm test` does that.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../agent/cli.js';
import type { Io } from '../../agent/commands/io.js';
import { type CanonicalValue, canonicalBytes } from '../../agent/ledger/canonical.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'agent', 'cli.js');
const PASSPHRASE = 'correct horse battery staple';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI with stdin a pipe (not a TTY); `passphrase: undefined` leaves MGMC_KEY_PASSPHRASE unset. */
function mgmc(args: readonly string[], options: { passphrase?: string | undefined } = { passphrase: PASSPHRASE }): Run {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.MGMC_KEY_PASSPHRASE;
  if (options.passphrase !== undefined) env.MGMC_KEY_PASSPHRASE = options.passphrase;
  const result: SpawnSyncReturns<string> = spawnSync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env,
    input: '',
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A readable failure message: the command and what it printed. */
const said = (args: readonly string[], run: Run): string =>
  `mgmc ${args.join(' ')} exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;

function ok(args: readonly string[], options?: { passphrase?: string | undefined }): Run {
  const run = mgmc(args, options);
  expect(run.code, said(args, run)).toBe(0);
  return run;
}

let dir: string;
let key: string;
let address: string;
let otherAddress: string;
let db: string;
let keygenRun: Run;
let fillRun: Run;

beforeAll(() => {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: run \`npm run build\` first (\`npm test\` builds before testing)`);
  }
  dir = mkdtempSync(join(tmpdir(), 'mgmc-cli-'));
  key = join(dir, 'mgmc.json');
  db = join(dir, 'ledger.db');
  keygenRun = mgmc(['keygen', '--out', key, '--kdf', 'pbkdf2', '--json']);
  expect(keygenRun.code, said(['keygen'], keygenRun)).toBe(0);
  address = JSON.parse(keygenRun.stdout).address;
  const other = ok(['keygen', '--out', join(dir, 'other.json'), '--kdf', 'pbkdf2', '--json']);
  otherAddress = JSON.parse(other.stdout).address;
  fillRun = mgmc([
    'ledger',
    'fill',
    '--db',
    db,
    '--key',
    key,
    '--readings',
    '5000',
    '--seal-every-records',
    '500',
    '--json',
  ]);
  expect(fillRun.code, said(['ledger', 'fill'], fillRun)).toBe(0);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every command path of the program, from the same definition the binary is built from. */
function commandPaths(): string[][] {
  const io: Io = { env: {}, stdin: process.stdin, out: () => {}, err: () => {} };
  const paths: string[][] = [];
  const walk = (command: Command, path: string[]): void => {
    for (const sub of command.commands) {
      paths.push([...path, sub.name()]);
      walk(sub, [...path, sub.name()]);
    }
  };
  walk(
    buildProgram(io, () => {}),
    [],
  );
  return paths;
}

describe('mgmc: usage', () => {
  it('prints usage for --help and exits 0', () => {
    const run = ok(['--help']);
    expect(run.stdout).toContain('Usage: mgmc');
    for (const command of ['keygen', 'key', 'config', 'ledger', 'demo']) expect(run.stdout).toContain(command);
  });

  it.each(commandPaths().map((path) => [path.join(' '), path]))('prints usage for `%s --help`', (_name, path) => {
    const run = ok([...path, '--help']);
    expect(run.stdout).toContain(`Usage: mgmc ${path.join(' ')}`);
    expect(run.stderr).toBe('');
  });

  it('covers the commands of the brief', () => {
    const names = commandPaths().map((p) => p.join(' '));
    for (const expected of [
      'keygen',
      'key show',
      'config check',
      'config schema',
      'ledger verify',
      'ledger show',
      'ledger export',
      'ledger fill',
      'ledger prove',
      'ledger check-proof',
      'demo',
    ]) {
      expect(names).toContain(expected);
    }
  });

  it('prints the version', () => {
    expect(ok(['--version']).stdout.trim()).toBe('0.1.0');
  });

  it('exits 2 for an unknown command or option, pointing at --help', () => {
    const unknown = mgmc(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect(unknown.stderr).toContain('--help');
    const option = mgmc(['ledger', 'verify', '--db', db, '--no-such-option']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain('--no-such-option');
  });

  it('exits 2 for a bad option value', () => {
    const run = mgmc(['ledger', 'show', '--db', db, '--height', 'two']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--height must be an integer >= 1');
  });
});

describe('mgmc keygen / key show', () => {
  it('creates a 0600 keystore and prints its address', () => {
    expect(keygenRun.code).toBe(0);
    expect(JSON.parse(keygenRun.stdout)).toEqual({
      address: expect.stringMatching(/^0x[0-9a-fA-F]{40}$/),
      keystore: key,
    });
    expect(statSync(key).mode & 0o777).toBe(0o600);
  });

  it('refuses to overwrite a keystore (exit 73) and leaves it as it was', () => {
    const before = readFileSync(key, 'utf8');
    const run = mgmc(['keygen', '--out', key, '--kdf', 'pbkdf2']);
    expect(run.code).toBe(73);
    expect(run.stderr).toContain(key);
    expect(run.stderr).toContain('already exists');
    expect(readFileSync(key, 'utf8')).toBe(before);
  });

  it('exits 2 without MGMC_KEY_PASSPHRASE and a terminal, naming the variable, and writes nothing', () => {
    const out = join(dir, 'never.json');
    const run = mgmc(['keygen', '--out', out, '--kdf', 'pbkdf2'], { passphrase: undefined });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('MGMC_KEY_PASSPHRASE');
    expect(existsSync(out)).toBe(false);
  });

  it('key show --json prints the address without the passphrase', () => {
    const run = ok(['key', 'show', key, '--json'], { passphrase: undefined });
    expect(JSON.parse(run.stdout)).toEqual({ address, keystore: key, verified: false });
    expect(ok(['key', 'show', key], { passphrase: undefined }).stdout).toContain(address);
  });

  it('key show --verify decrypts the key with the right passphrase', () => {
    expect(JSON.parse(ok(['key', 'show', key, '--verify', '--json']).stdout)).toEqual({
      address,
      keystore: key,
      verified: true,
    });
  });

  it('key show --verify exits 65 with a wrong passphrase, naming the file', () => {
    const run = mgmc(['key', 'show', key, '--verify'], { passphrase: 'not the passphrase' });
    expect(run.code).toBe(65);
    expect(run.stderr).toContain(key);
    expect(run.stderr).toContain('wrong passphrase');
  });

  it('key show exits 66 for a missing keystore', () => {
    const run = mgmc(['key', 'show', join(dir, 'nope.json')]);
    expect(run.code).toBe(66);
    expect(run.stderr).toContain('nope.json');
  });
});

describe('mgmc ledger', () => {
  it('fill writes the readings in signed blocks', () => {
    expect(JSON.parse(fillRun.stdout)).toMatchObject({
      db,
      producer: address,
      readings: 5000,
      blocks: 10,
      height: 10,
      lastSeq: 5000,
    });
  });

  it('verify --db exits 0, in text and in JSON', () => {
    const text = ok(['ledger', 'verify', '--db', db]);
    expect(text.stdout).toContain(`${db}: ok — 10 block(s), 5000 record(s) verified`);
    const json = JSON.parse(ok(['ledger', 'verify', '--db', db, '--json']).stdout);
    expect(json).toMatchObject({ source: db, ok: true, blocks: 10, records: 5000, unsealed: 0, producer: address });
  });

  it('verify exits 2 unless exactly one of --db and --file is given', () => {
    expect(mgmc(['ledger', 'verify']).code).toBe(2);
    expect(mgmc(['ledger', 'verify', '--db', db, '--file', db]).code).toBe(2);
  });

  it('show prints the summary and recent blocks, in text and JSON', () => {
    const text = ok(['ledger', 'show', '--db', db]);
    expect(text.stdout).toContain(`producer ${address}`);
    expect(text.stdout).toContain('height 10  records 5000  unsealed 0');
    const json = JSON.parse(ok(['ledger', 'show', '--db', db, '--json']).stdout);
    expect(json).toMatchObject({ chainId: 1337, producer: address, height: 10, records: 5000, unsealed: 0 });
    expect(json.blocks.map((b: { height: number }) => b.height)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const tail = JSON.parse(ok(['ledger', 'show', '--db', db, '--json', '--tail', '3']).stdout);
    expect(tail.blocks.map((b: { firstSeq: number }) => b.firstSeq)).toEqual([3501, 4001, 4501]);
  });

  it('show --height prints one block', () => {
    const json = JSON.parse(ok(['ledger', 'show', '--db', db, '--height', '2', '--json']).stdout);
    expect(json).toMatchObject({ firstSeq: 501, header: { height: 2, count: 500, producer: address } });
    expect(ok(['ledger', 'show', '--db', db, '--height', '2']).stdout).toContain('"height": 2');
    expect(mgmc(['ledger', 'show', '--db', db, '--height', '11']).code).toBe(1);
  });

  it('show --record prints one record and its block', () => {
    const json = JSON.parse(ok(['ledger', 'show', '--db', db, '--record', '7', '--json']).stdout);
    expect(json).toMatchObject({ seq: 7, type: 'reading', block: 1 });
    expect(ok(['ledger', 'show', '--db', db, '--record', '7']).stdout).toContain('block 1');
    const missing = mgmc(['ledger', 'show', '--db', db, '--record', '5001']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('record 5001 does not exist');
  });

  it('export --format jsonl --out writes an export that verifies on its own', () => {
    const file = join(dir, 'export.jsonl');
    const run = ok(['ledger', 'export', '--db', db, '--format', 'jsonl', '--out', file]);
    expect(run.stderr).toContain('exported 10 block(s) and 5000 record(s)');
    expect(readFileSync(file, 'utf8').trimEnd().split('\n')).toHaveLength(1 + 10 + 5000);
    expect(ok(['ledger', 'verify', '--file', file]).stdout).toContain('ok — 10 block(s), 5000 record(s)');
    expect(JSON.parse(ok(['ledger', 'verify', '--file', file, '--json']).stdout)).toMatchObject({
      ok: true,
      blocks: 10,
      records: 5000,
    });
  });

  // Opening '/dev/stdout' would fail with ENXIO when stdout is a socket (a child of Node or of systemd).
  it('export without --out writes the same bytes to stdout', () => {
    const file = join(dir, 'export-for-stdout.jsonl');
    ok(['ledger', 'export', '--db', db, '--out', file]);
    expect(ok(['ledger', 'export', '--db', db]).stdout).toBe(readFileSync(file, 'utf8'));
  });

  it('verify --file exits 1 for a tampered export, naming the block', () => {
    const file = join(dir, 'export-tampered.jsonl');
    ok(['ledger', 'export', '--db', db, '--out', file]);
    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"seq":2345,'));
    lines[i] = (lines[i] as string).replace(/"value":(-?\d+)/, (_m, v: string) => `"value":${Number(v) + 1}`);
    writeFileSync(file, lines.join('\n'));
    const run = mgmc(['ledger', 'verify', '--file', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('FAILED at block 5: changed-record');
  });

  it('prove writes a proof that check-proof accepts, and refuses another producer', () => {
    const proof = join(dir, 'proof-1234.json');
    ok(['ledger', 'prove', '--db', db, '--record', '1234', '--out', proof]);
    const good = ok(['ledger', 'check-proof', proof]);
    expect(good.stdout).toContain(`ok: record 1234 is in block 3 of chain 1337, signed by ${address}`);
    ok(['ledger', 'check-proof', proof, '--producer', address]);
    const other = mgmc(['ledger', 'check-proof', proof, '--producer', otherAddress]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`not by ${otherAddress}`);
    expect(JSON.parse(mgmc(['ledger', 'check-proof', proof, '--producer', otherAddress, '--json']).stdout)).toEqual({
      ok: false,
      detail: expect.stringContaining('not by'),
    });
  });

  it('prove exits 1 for a record that does not exist', () => {
    const run = mgmc(['ledger', 'prove', '--db', db, '--record', '9999']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('record 9999 does not exist (this ledger has records 1..5000)');
  });

  it('check-proof exits 1 for a tampered proof and 65 for a file that is not JSON', () => {
    const proof = join(dir, 'proof-7.json');
    ok(['ledger', 'prove', '--db', db, '--record', '7', '--out', proof]);
    const json = JSON.parse(readFileSync(proof, 'utf8'));
    json.record.body.value += 1;
    writeFileSync(proof, JSON.stringify(json));
    expect(mgmc(['ledger', 'check-proof', proof]).code).toBe(1);
    writeFileSync(proof, '{"kind":');
    expect(mgmc(['ledger', 'check-proof', proof]).code).toBe(65);
  });

  it('verify --db exits 1 naming the block when one byte of a record in the database file changed', () => {
    // After fill the writer has closed, so every record is in the main file (no WAL to replay).
    const record = JSON.parse(ok(['ledger', 'show', '--db', db, '--record', '1234', '--json']).stdout);
    delete record.block;
    const bytes = Buffer.from(canonicalBytes(record as CanonicalValue));
    const copy = join(dir, 'tampered.db');
    copyFileSync(db, copy);
    const file = readFileSync(copy);
    const at = file.indexOf(bytes);
    expect(at, 'record 1234 must be found in the database file').toBeGreaterThan(0);
    expect(file.lastIndexOf(bytes)).toBe(at);
    const unit = file.indexOf('"unit":"', at) + '"unit":"'.length;
    file[unit] = (file[unit] as number) ^ 0x01;
    writeFileSync(copy, file);

    const run = mgmc(['ledger', 'verify', '--db', copy]);
    expect(run.code, said(['ledger', 'verify', '--db', copy], run)).toBe(1);
    expect(run.stderr).toContain('FAILED at block 3: changed-record');
    expect(run.stderr).toContain('2 block(s) before it verified');
    const json = JSON.parse(mgmc(['ledger', 'verify', '--db', copy, '--json']).stdout);
    expect(json).toMatchObject({ ok: false, blocks: 2, problem: { height: 3, kind: 'changed-record' } });
  });

  it('fill refuses another key for the same database (exit 65), naming both addresses', () => {
    const run = mgmc(['ledger', 'fill', '--db', db, '--key', join(dir, 'other.json'), '--readings', '1']);
    expect(run.code).toBe(65);
    expect(run.stderr).toContain(`signed by ${address}, but the key given is ${otherAddress}`);
  });

  it('fill --config takes the database, key, chain id and sealing from a site config', () => {
    const config = join(dir, 'site.yaml');
    writeFileSync(
      config,
      readFileSync(join(ROOT, 'examples', 'site.yaml'), 'utf8')
        .replace('path: /var/lib/mgmc-agent/mgmc.db', 'path: ./from-config.db')
        .replace('keystore: /var/lib/mgmc-agent/keys/mgmc.json', 'keystore: ./mgmc.json')
        .replace('sealEveryRecords: 1000', 'sealEveryRecords: 100')
        .replace('chainId: 1337', 'chainId: 77'),
    );
    const run = ok(['ledger', 'fill', '--config', config, '--readings', '250', '--json']);
    expect(JSON.parse(run.stdout)).toMatchObject({ db: join(dir, 'from-config.db'), producer: address, height: 3 });
    const report = JSON.parse(ok(['ledger', 'verify', '--db', join(dir, 'from-config.db'), '--json']).stdout);
    expect(report).toMatchObject({ ok: true, chainId: 77, blocks: 3, records: 250 });
  });

  it('fill exits 2 without --db and --key or --config, and with both', () => {
    const neither = mgmc(['ledger', 'fill', '--readings', '1']);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('give --db FILE and --key FILE, or --config FILE');
    const both = mgmc(['ledger', 'fill', '--readings', '1', '--config', 'examples/site.yaml', '--db', db]);
    expect(both.code).toBe(2);
  });

  it('fill exits 65 for a wrong passphrase and 2 without one', () => {
    const args = ['ledger', 'fill', '--db', join(dir, 'unused.db'), '--key', key, '--readings', '1'];
    const wrong = mgmc(args, { passphrase: 'wrong' });
    expect(wrong.code).toBe(65);
    expect(wrong.stderr).toContain(key);
    const none = mgmc(args, { passphrase: undefined });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('MGMC_KEY_PASSPHRASE');
    expect(existsSync(join(dir, 'unused.db'))).toBe(false);
  });

  it.each([
    ['verify', ['ledger', 'verify', '--db']],
    ['show', ['ledger', 'show', '--db']],
    ['export', ['ledger', 'export', '--db']],
    ['prove', ['ledger', 'prove', '--record', '1', '--db']],
  ])('%s exits 66 for a missing --db file, naming it', (_name, args) => {
    const missing = join(dir, 'no-such.db');
    const run = mgmc([...args, missing]);
    expect(run.code).toBe(66);
    expect(run.stderr).toContain(`ledger database ${missing} does not exist`);
    expect(existsSync(missing)).toBe(false);
  });

  it('verify exits 65 for a file that is not a ledger database or not an export', () => {
    const run = mgmc(['ledger', 'verify', '--db', key]);
    expect(run.code).toBe(65);
    expect(run.stderr).toContain(`cannot use database ${key}: file is not a database`);
    expect(JSON.parse(mgmc(['ledger', 'verify', '--db', key, '--json']).stdout)).toMatchObject({
      ok: false,
      problem: { kind: 'unreadable' },
    });
    const garbage = join(dir, 'garbage.jsonl');
    writeFileSync(garbage, 'garbage\n');
    const bad = mgmc(['ledger', 'verify', '--file', garbage]);
    expect(bad.code).toBe(65);
    expect(bad.stderr).toContain(`${garbage}:1: not a JSON object`);
  });

  it('exits 66 for a missing export or proof file', () => {
    expect(mgmc(['ledger', 'verify', '--file', join(dir, 'no-such.jsonl')]).code).toBe(66);
    expect(mgmc(['ledger', 'check-proof', join(dir, 'no-such.json')]).code).toBe(66);
  });
});

describe('mgmc config', () => {
  it('check accepts the example config when MGMC_KEY_PASSPHRASE is set', () => {
    const run = ok(['config', 'check', 'examples/site.yaml']);
    expect(run.stdout).toContain('site.yaml: ok');
  });

  it('check exits 78 listing every problem as file:line:column', () => {
    const run = mgmc(['config', 'check', 'test/fixtures/config/multi-error.yaml']);
    expect(run.code).toBe(78);
    const lines = run.stderr.split('\n').filter((l) => /multi-error\.yaml:\d+:\d+/.test(l));
    expect(lines.length).toBeGreaterThan(1);
    expect(run.stderr).toMatch(/\d+ problems in .*multi-error\.yaml; nothing was changed/);
  });

  it('schema prints a JSON Schema', () => {
    const schema = JSON.parse(ok(['config', 'schema']).stdout);
    expect(typeof schema.$schema).toBe('string');
    expect(schema.$schema).toContain('json-schema.org');
  });
});
