/**
 * The deployment files under deploy/ as systemd and udev read them: the settings that make the service safe to leave
 * alone (node started directly, no restart loop on a bad config, serial access, state and config directories),
 * agreement with the example config and the install script, and, where systemd-analyze is installed, systemd's own
 * verdict on the unit syntax. install.sh is only syntax-checked: it changes the system and never runs in tests.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../agent/config/index.js';
import { describeIfTool, toolRuns } from '../../integration/modbus-helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const deployFile = (name: string): string => join(ROOT, 'deploy', name);

/** A unit file as systemd reads it: section → key → every value given (later ones add to or override earlier). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1] as string, section);
      return;
    }
    const pair = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!pair || section === undefined) throw new Error(`line ${index + 1} is not KEY=value in a section: ${raw}`);
    const [, key, value] = pair as unknown as [string, string, string];
    section.set(key, [...(section.get(key) ?? []), value]);
  });
  return unit;
}

function values(unit: Unit, section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}

/** The one value of a key that must be set once. */
function one(unit: Unit, section: string, key: string): string {
  const all = values(unit, section, key);
  expect(all, `[${section}] ${key}`).toHaveLength(1);
  return all[0] as string;
}

function seconds(span: string): number {
  const match = /^(\d+)(ms|s|min)?$/.exec(span);
  if (!match) throw new Error(`not a time span: ${span}`);
  const n = Number(match[1]);
  return match[2] === 'ms' ? n / 1000 : match[2] === 'min' ? n * 60 : n;
}

const units = {
  'mgmc-agent.service': { config: 'site.yaml', example: 'examples/site.yaml', serial: true },
  'mgmc-dso.service': { config: 'dso.yaml', example: 'examples/dso.yaml', serial: false },
} as const;

describe.each(Object.entries(units))('deploy/%s', (name, expected) => {
  const unit = parseUnit(readFileSync(deployFile(name), 'utf8'));
  const execStart = one(unit, 'Service', 'ExecStart').split(/\s+/);
  const stateDirectory = one(unit, 'Service', 'StateDirectory');
  const configurationDirectory = one(unit, 'Service', 'ConfigurationDirectory');

  it('starts the compiled CLI with /usr/bin/node directly, never through npm or a shell', () => {
    expect(execStart.slice(0, 3)).toEqual(['/usr/bin/node', '/opt/mgmc-agent/dist/agent/cli.js', 'run']);
    expect(execStart.some((word) => /(^|\/)(npm|npx|sh|bash)$/.test(word))).toBe(false);
    expect(one(unit, 'Service', 'Type')).toBe('exec');
  });

  it('reads its config from the ConfigurationDirectory and works in the StateDirectory', () => {
    const config = execStart[execStart.indexOf('--config') + 1] as string;
    expect(posix.dirname(config)).toBe(`/etc/${configurationDirectory}`);
    expect(posix.basename(config)).toBe(expected.config);
    expect(one(unit, 'Service', 'WorkingDirectory')).toBe(`/var/lib/${stateDirectory}`);
    expect(one(unit, 'Service', 'EnvironmentFile')).toBe(`-/etc/${configurationDirectory}/secrets.env`);
  });

  it('is not restarted after exit 78 (bad config), is restarted after a crash, and stops looping', () => {
    expect(one(unit, 'Service', 'Restart')).toBe('on-failure');
    expect(one(unit, 'Service', 'RestartPreventExitStatus').split(/\s+/)).toContain('78');
    // systemd applies RestartPreventExitStatus to the main process only: a failing ExecStartPre would loop.
    expect(values(unit, 'Service', 'ExecStartPre')).toEqual([]);
    expect(Number(one(unit, 'Unit', 'StartLimitBurst'))).toBeGreaterThan(1);
    expect(seconds(one(unit, 'Unit', 'StartLimitIntervalSec'))).toBeGreaterThan(
      Number(one(unit, 'Unit', 'StartLimitBurst')) * seconds(one(unit, 'Service', 'RestartSec')),
    );
  });

  it('stops with SIGTERM and leaves room for the clean stop (at most 5 s) before SIGKILL', () => {
    expect(one(unit, 'Service', 'KillSignal')).toBe('SIGTERM');
    const timeout = seconds(one(unit, 'Service', 'TimeoutStopSec'));
    expect(timeout).toBeGreaterThanOrEqual(10);
    expect(timeout).toBeLessThanOrEqual(30);
  });

  it('runs as its own unprivileged user in a read-only system, writing only its state directory', () => {
    expect(one(unit, 'Service', 'User')).not.toBe('root');
    expect(one(unit, 'Service', 'NoNewPrivileges')).toBe('yes');
    expect(one(unit, 'Service', 'ProtectSystem')).toBe('strict');
    expect(one(unit, 'Service', 'ProtectHome')).toBe('yes');
    expect(one(unit, 'Service', 'PrivateTmp')).toBe('yes');
    expect(values(unit, 'Service', 'ReadWritePaths')).toEqual([`/var/lib/${stateDirectory}`]);
    expect(one(unit, 'Service', 'CapabilityBoundingSet')).toBe('');
    // V8 writes machine code at run time: node dies under MemoryDenyWriteExecute.
    expect(values(unit, 'Service', 'MemoryDenyWriteExecute')).toEqual([]);
    expect(values(unit, 'Service', 'ProtectClock')).toEqual([]);
    expect(one(unit, 'Install', 'WantedBy')).toBe('multi-user.target');
  });

  if (expected.serial) {
    it('reaches the serial lines through group dialout and does not fence devices off', () => {
      expect(one(unit, 'Service', 'SupplementaryGroups').split(/\s+/)).toContain('dialout');
      expect(values(unit, 'Service', 'PrivateDevices')).toEqual([]);
      expect(values(unit, 'Service', 'DevicePolicy')).toEqual([]);
    });
  } else {
    it('needs no devices at all', () => {
      expect(values(unit, 'Service', 'SupplementaryGroups')).toEqual([]);
      expect(one(unit, 'Service', 'PrivateDevices')).toBe('yes');
    });
  }
});

describe('deploy/mgmc-agent.service and examples/site.yaml', () => {
  it('agree: the database and keystore in the StateDirectory, the passphrase from the EnvironmentFile', async () => {
    const unit = parseUnit(readFileSync(deployFile('mgmc-agent.service'), 'utf8'));
    const state = `/var/lib/${one(unit, 'Service', 'StateDirectory')}/`;
    const config = await loadConfig(join(ROOT, 'examples/site.yaml'), { env: { MGMC_KEY_PASSPHRASE: 'x' } });
    expect(config.store.path.startsWith(state)).toBe(true);
    expect(config.identity.keystore.startsWith(state)).toBe(true);
    expect(config.identity.passphrase.reference).toBe('env:MGMC_KEY_PASSPHRASE');
  });
});

/** One `KEY=="value"` / `KEY="value"` / `KEY+="value"` of a udev rule. */
interface UdevPair {
  readonly key: string;
  readonly op: string;
  readonly value: string;
}

function parseUdevRule(line: string): UdevPair[] {
  const pairs: UdevPair[] = [];
  const token = /\s*([A-Z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)/y;
  while (token.lastIndex < line.length) {
    const start = token.lastIndex;
    const match = token.exec(line);
    if (!match) throw new Error(`cannot parse the udev rule at column ${start + 1}: ${line}`);
    pairs.push({ key: match[1] as string, op: match[2] as string, value: match[3] as string });
  }
  return pairs;
}

describe('deploy/99-mgmc-serial.rules', () => {
  const lines = readFileSync(deployFile('99-mgmc-serial.rules'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));
  // Parsed inside each test, so that a rule that does not parse fails a test instead of the whole file.
  const parsed = (): UdevPair[][] => lines.map(parseUdevRule);
  const symlinksOf = (rules: UdevPair[][]): string[] =>
    rules.flatMap((rule) => rule.filter((p) => p.key === 'SYMLINK').map((p) => `/dev/${p.value}`));

  it('parses: every rule is KEY=="value" matches and KEY="value" assignments', () => {
    const rules = parsed();
    expect(rules.length).toBeGreaterThanOrEqual(3);
    for (const rule of rules) {
      for (const pair of rule) {
        const assignment = ['SYMLINK', 'GROUP', 'MODE', 'OWNER'].includes(pair.key);
        expect(pair.op, pair.key).toBe(assignment ? (pair.key === 'SYMLINK' ? '+=' : '=') : '==');
      }
    }
  });

  it('gives each serial line a stable /dev/mgmc/ name, group dialout, mode 0660', () => {
    const rules = parsed();
    for (const rule of rules) {
      const has = (key: string, op: string, value: string) =>
        rule.some((p) => p.key === key && p.op === op && p.value === value);
      expect(has('SUBSYSTEM', '==', 'tty'), JSON.stringify(rule)).toBe(true);
      expect(has('GROUP', '=', 'dialout'), JSON.stringify(rule)).toBe(true);
      expect(has('MODE', '=', '0660'), JSON.stringify(rule)).toBe(true);
      expect(rule.filter((p) => p.key === 'SYMLINK').map((p) => p.value)).toEqual([
        expect.stringMatching(/^mgmc\/[a-z0-9-]+$/),
      ]);
      // A rule that matches only a vendor and product would name every adapter of that model alike.
      expect(
        rule.some((p) => ['ATTRS{serial}', 'ENV{ID_PATH}'].includes(p.key)),
        JSON.stringify(rule),
      ).toBe(true);
    }
    const symlinks = symlinksOf(rules);
    expect(new Set(symlinks).size).toBe(symlinks.length);
  });

  it('names the serial lines examples/site.yaml uses', async () => {
    const config = await loadConfig(join(ROOT, 'examples/site.yaml'), { env: { MGMC_KEY_PASSPHRASE: 'x' } });
    const used = [
      ...config.buses.flatMap((bus) => (bus.path === undefined ? [] : [bus.path])),
      ...config.meters.map((meter) => meter.path),
    ];
    expect(used.length).toBeGreaterThan(0);
    const symlinks = symlinksOf(parsed());
    for (const path of used) expect(symlinks).toContain(path);
  });
});

describe('deploy/install.sh', () => {
  const path = deployFile('install.sh');
  const text = readFileSync(path, 'utf8');

  it('is an executable POSIX sh script without syntax errors (checked with sh -n; never run here)', () => {
    expect(statSync(path).mode & 0o111).not.toBe(0);
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    const check = spawnSync('sh', ['-n', path], { encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('installs where the units look: the program, both units, the rule, the production dependencies only', () => {
    expect(text).toContain('APP=/opt/mgmc-agent\n');
    expect(text).toContain('NODE=/usr/bin/node\n');
    expect(text).toContain('npm ci --omit=dev');
    expect(text).toContain('/etc/systemd/system/mgmc-agent.service');
    expect(text).toContain('/etc/systemd/system/mgmc-dso.service');
    expect(text).toContain('/etc/udev/rules.d/99-mgmc-serial.rules');
    expect(text).toContain('"$SRC/hardware/profiles"');
  });
});

const analyzeAvailable = toolRuns('systemd-analyze', ['--version']);

describeIfTool(
  'systemd-analyze',
  'systemd',
  analyzeAvailable,
)('systemd-analyze verify', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mgmc-units-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(Object.keys(units))('finds nothing wrong in %s', (name) => {
    // verify checks that the ExecStart binary exists; node may live elsewhere on a development machine.
    const text = readFileSync(deployFile(name), 'utf8').replaceAll('/usr/bin/node', process.execPath);
    const copy = join(dir, name);
    writeFileSync(copy, text);
    const run = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    // Unknown keys and unparsable values are only warnings (exit 0): any line about this unit is a failure.
    const output = `${run.stdout}\n${run.stderr}`;
    const aboutUnit = output.split('\n').filter((line) => line.includes(name));
    expect(aboutUnit).toEqual([]);
    expect(run.status, output).toBe(0);
  });
});
