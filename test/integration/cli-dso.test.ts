/**
 * `mgmc dso approve|reject|revoke|list`, run as the compiled CLI (`npm run build` first) against the database of a
 * DSO that is "running" in this process: the DSO keeps its connection open, the CLI writes beside it, and the DSO's
 * registry refresh() hands out the messages the change produced.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Registry } from '../../agent/dso/registry.js';
import { TempDir } from '../unit/dso/helpers.js';
import { ANONYM, METER, MGMC, registrationEnvelope, registryOn } from '../unit/dso/registry-helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'agent', 'cli.js');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function mgmc(args: readonly string[]): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, MGMC_KEY_PASSPHRASE: 'not used by dso commands but in the config' };
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

const said = (args: readonly string[], run: Run): string =>
  `mgmc ${args.join(' ')} exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;

function ok(args: readonly string[]): Run {
  const run = mgmc(args);
  expect(run.code, said(args, run)).toBe(0);
  return run;
}

let dir: TempDir;
let config: string;
let dso: Registry;

function writeConfig(name: string, role: 'dso' | 'mgmc', db: string): string {
  const file = dir.file(name);
  writeFileSync(
    file,
    `role: ${role}
site: { name: test DSO }
identity: { keystore: ./dso.json, passphrase: env:MGMC_KEY_PASSPHRASE }
store: { path: ${db} }
link: { url: "mqtt://127.0.0.1:1883" }
dso:
  genesis: ./genesis.json
${role === 'mgmc' ? '  feederBus: b1\n' : '  policy: { mode: manual }\n'}`,
  );
  return file;
}

beforeAll(() => {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: run \`npm run build\` first (\`npm test\` builds before testing)`);
  }
  dir = new TempDir();
  writeFileSync(
    dir.file('genesis.json'),
    JSON.stringify({ chainId: 1337, name: 'test', time: 0, validators: [MGMC[2].address] }),
  );
  config = writeConfig('dso.yaml', 'dso', './dso.db');
  // The running DSO: it owns the database and publishes what its registry hands out.
  const running = registryOn(dir, { mode: 'manual', allow: [] });
  dso = running.registry;
  dso.handleRegistration(registrationEnvelope(MGMC[0], { anonym: ANONYM[0], meters: [METER[0], METER[1]] }));
  running.clock.advance(60_000);
  dso.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[2]] }));
});

afterAll(() => dir?.cleanup());

describe('mgmc dso', () => {
  it('list shows the waiting MGMCs, in text and JSON', () => {
    const text = ok(['dso', 'list', '--config', config]).stdout;
    expect(text).toMatch(/MGMC\s+STATUS\s+ANONYM\s+BUS\s+METERS/);
    expect(text).toContain(`${MGMC[0].address}  pending`);
    expect(text).toContain(`mgmc dso approve ${MGMC[0].address}`);
    expect(text).toContain('authorized set: serial 0, 0 anonyms');
    const json = JSON.parse(ok(['dso', 'list', '--config', config, '--json']).stdout);
    expect(json.authorizedSet).toEqual({ serial: 0, anonyms: [] });
    expect(json.mgmcs.map((m: { mgmc: string; status: string }) => [m.mgmc, m.status])).toEqual([
      [MGMC[0].address, 'pending'],
      [MGMC[1].address, 'pending'],
    ]);
    expect(json.mgmcs[0].meters).toEqual(
      [METER[0].address, METER[1].address].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)),
    );
  });

  it('approve authorizes; the running DSO publishes the authorization and the new set on refresh', () => {
    const run = ok(['dso', 'approve', MGMC[0].address.toLowerCase(), '--config', config, '--by', 'alice']);
    expect(run.stdout).toContain(`${MGMC[0].address} authorized`);
    expect(run.stdout).toContain('next registry refresh');
    expect(dso.lookup(MGMC[0].address)?.status).toBe('pending');
    const out = dso.refresh();
    expect(out.map((m) => [m.kind, m.body.status ?? m.body.serial])).toEqual([
      ['authorization', 'authorized'],
      ['authorized-set', 1],
    ]);
    expect(dso.lookup(MGMC[0].address)).toMatchObject({ status: 'authorized', decidedBy: 'alice' });
    const again = JSON.parse(ok(['dso', 'approve', MGMC[0].address, '--config', config, '--json']).stdout);
    expect(again).toMatchObject({ mgmc: MGMC[0].address, changed: false, status: 'authorized' });
    expect(dso.refresh()).toEqual([]);
  });

  it('reject and revoke carry the reason to the MGMC', () => {
    ok(['dso', 'reject', MGMC[1].address, '--config', config, '--reason', 'unknown site']);
    ok(['dso', 'revoke', MGMC[0].address, '--config', config, '--reason', 'meter tampering']);
    const out = dso.refresh();
    // Answers come in the order the registrations arrived; the set comes last.
    expect(out.map((m) => [m.kind, m.body.mgmc ?? m.body.serial, m.body.status, m.body.reason])).toEqual([
      ['authorization', MGMC[0].address, 'revoked', 'meter tampering'],
      ['authorization', MGMC[1].address, 'rejected', 'unknown site'],
      ['authorized-set', 2, undefined, undefined],
    ]);
    expect(dso.authorizedSet()).toEqual({ serial: 2, anonyms: [] });
    const list = ok(['dso', 'list', '--config', config]).stdout;
    expect(list).toContain(`${MGMC[0].address}  revoked`);
    expect(list).toContain('meter tampering');
  });

  it('exits 1 for an action that cannot be done, naming why', () => {
    const run = mgmc(['dso', 'approve', MGMC[2].address, '--config', config]);
    expect(run.code, said(['approve'], run)).toBe(1);
    expect(run.stderr).toContain('has not registered with this DSO');
    expect(mgmc(['dso', 'reject', MGMC[0].address, '--config', config]).code).toBe(1);
  });

  it('exits 2 for a bad address or a config of another role, 66 without the database, 78 for a bad config', () => {
    const bad = mgmc(['dso', 'approve', '0x12', '--config', config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('40 hex digits');
    const mgmcConfig = writeConfig('mgmc.yaml', 'mgmc', './mgmc.db');
    const role = mgmc(['dso', 'list', '--config', mgmcConfig]);
    expect(role.code).toBe(2);
    expect(role.stderr).toContain('role: dso');
    const missing = mgmc(['dso', 'list', '--config', writeConfig('other.yaml', 'dso', './nothing-here.db')]);
    expect(missing.code).toBe(66);
    expect(missing.stderr).toContain('does not exist');
    writeFileSync(dir.file('broken.yaml'), 'role: dso\n');
    expect(mgmc(['dso', 'list', '--config', dir.file('broken.yaml')]).code).toBe(78);
    expect(mgmc(['dso', 'approve', MGMC[0].address]).code).toBe(2);
  });
});
