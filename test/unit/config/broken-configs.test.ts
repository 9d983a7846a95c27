/**
 * The mistakes technicians make in a site config, each in a file under test/fixtures/config/broken/, and the exact
 * lines `mgmc config check` prints for them: where (file:line:column), which key, what was expected and what to do.
 * The command runs through the CLI's main() as an operator's shell would run it, with the environment injected.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../agent/cli.js';
import type { Io } from '../../../agent/commands/io.js';
import { EX_CONFIG, loadConfig } from '../../../agent/config/index.js';
import { fixturesDir, repoRoot } from './helpers.js';

const brokenDir = join(fixturesDir, 'broken');
const PASSPHRASE_ENV = { MGMC_KEY_PASSPHRASE: 'a passphrase' };

interface Ran {
  readonly code: number;
  readonly stdout: string[];
  readonly stderr: string[];
}

async function mgmc(args: readonly string[], env: NodeJS.ProcessEnv = PASSPHRASE_ENV): Promise<Ran> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: Io = {
    env,
    stdin: process.stdin,
    out: (text) => stdout.push(...text.replace(/\n$/, '').split('\n')),
    err: (text) => stderr.push(...text.replace(/\n$/, '').split('\n')),
  };
  const code = await main(['node', 'mgmc', ...args], io);
  return { code, stdout, stderr };
}

/** The config check's complete output for a broken fixture: one line per problem, then the summary. */
function report(name: string, problems: readonly string[]): string[] {
  const file = join(brokenDir, name);
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  return [...problems.map((line) => `${file}:${line}`), `${count} in ${file}; nothing was changed`];
}

interface Case {
  readonly name: string;
  readonly what: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly problems: readonly string[];
}

const cases: readonly Case[] = [
  {
    name: 'unknown-profile.yaml',
    what: 'a device profile that does not exist, with the closest profile ids',
    problems: [
      "16:14  devices[0].profile  a profile id from hardware/profiles or 'sunspec'  did you mean 'eastron-sdm630'?",
      "20:14  devices[1].profile  a profile id from hardware/profiles or 'sunspec'  did you mean 'sunspec-1', 'sunspec-102', 'sunspec-120', 'sunspec-121', 'sunspec-123' or 'sunspec-124'?",
      "24:14  devices[2].profile  a profile id from hardware/profiles or 'sunspec'  known profiles: alfen-eve, eastron-sdm630, sunspec-1, sunspec-101, sunspec-102, sunspec-103, sunspec-120, sunspec-121, sunspec-123, sunspec-124, sunspec-201, sunspec-202, sunspec-203, sunspec-204, victron-vebus",
    ],
  },
  {
    name: 'duplicate-unit.yaml',
    what: 'a unit id used twice on one bus',
    problems: [
      "19:11  devices[1].unit  a unit id not used by another device on bus 'rs485-0'  unit 1 is also devices[0] (grid-meter); give each device on a bus its own unit id, here and in the device itself",
    ],
  },
  {
    name: 'unknown-key.yaml',
    what: 'unknown keys, with the key that was meant',
    problems: [
      "9:3  ledger.sealEverySecond  a known key of ledger  did you mean 'sealEverySeconds'?",
      "14:5  buses[0].timeout  a known key of buses[0]  did you mean 'timeoutMs'?",
    ],
  },
  {
    name: 'wrong-type.yaml',
    what: 'text where a number belongs',
    problems: [
      "9:21  ledger.sealEverySeconds  an integer from 1 to 3600  got the text 'ten'; write the number in digits",
      "14:11  buses[0].port  an integer from 1 to 65535  got the text '502'; remove the quotes",
    ],
  },
  {
    name: 'out-of-range.yaml',
    what: 'numbers out of range',
    problems: [
      '12:15  buses[0].baudRate  an integer from 300 to 4000000  got 96',
      '16:11  devices[0].unit  an integer from 0 to 255  got 300',
    ],
  },
  {
    name: 'missing-required.yaml',
    what: 'required keys left out, pointing at the mapping that should hold them',
    problems: [
      "3:1  site.name  this required key  add 'name:' under 'site:': name of the microgrid site, shown in status output and sent to the DSO",
      "4:1  identity.passphrase  this required key  add 'passphrase:' under 'identity:': passphrase of the keystore, as env:NAME (environment variable) or file:PATH (file content)",
      "11:5  devices[0].profile  this required key  add 'profile:' in devices[0]: register map: a profile id from hardware/profiles (e.g. eastron-sdm630), or sunspec to discover the models",
    ],
  },
  {
    name: 'bad-enum.yaml',
    what: 'values outside a fixed list',
    problems: [
      "10:11  buses[0].kind  one of the allowed values  got 'modbus-rtu'; allowed: tcp, rtu, rtu-over-tcp",
      "12:13  buses[0].parity  one of the allowed values  got 'None'; did you mean 'none'? allowed: none, even, odd",
    ],
  },
  {
    name: 'unknown-bus.yaml',
    what: 'a device on a bus that does not exist',
    problems: [
      "17:10  devices[0].bus  the name of a bus declared under buses  did you mean 'rs485-0'?",
      "21:10  devices[1].bus  the name of a bus declared under buses  buses are 'rs485-0' and 'lan'",
    ],
  },
  {
    name: 'unknown-building-device.yaml',
    what: 'a building naming devices that do not exist',
    problems: [
      "32:19  buildings[0].pv[0].device  the name of a device declared under devices  did you mean 'pv1'?",
      "34:19  buildings[0].batteries[0].device  the name of a device declared under devices  devices are 'pv1' and 'battery'",
    ],
  },
  {
    name: 'missing-env.yaml',
    what: 'an env: secret whose variable is not set',
    env: {},
    problems: [
      '7:15  identity.passphrase  environment variable MGMC_KEY_PASSPHRASE to be set  it is not set for the agent: for the service, put MGMC_KEY_PASSPHRASE=... in secrets.env beside this config (EnvironmentFile=, docs/deploy.md); in a shell, export MGMC_KEY_PASSPHRASE first',
    ],
  },
  {
    name: 'missing-secret-file.yaml',
    what: 'a file: secret that is not there, with its resolved path',
    problems: [
      `7:15  identity.passphrase  a readable secret file  cannot read ${join(brokenDir, 'secrets/passphrase')}: no such file; create it with the secret on one line (mode 0600, owned by the agent's user), or correct the path`,
    ],
  },
  {
    name: 'syntax-error.yaml',
    what: 'a YAML syntax error, at the bracket that is never closed',
    problems: ['10:10  dso.trade  valid YAML  the bracket opened here is never closed; close it with }'],
  },
  {
    name: 'duplicate-key.yaml',
    what: 'a duplicate key, naming the line of the first',
    problems: [
      '14:5  buses[0].baudRate  each key only once in a mapping  duplicate key (first set on line 12); keep one of them',
    ],
  },
  {
    name: 'tabs.yaml',
    what: 'tab indentation',
    problems: [
      '4:1  (yaml)  indentation with spaces  YAML does not allow tabs for indentation; replace them with spaces',
    ],
  },
  {
    name: 'several-errors.yaml',
    what: 'every problem of a file at once, in file order',
    env: {},
    problems: [
      '7:15  identity.passphrase  environment variable MGMC_SITE_PASSPHRASE to be set  it is not set for the agent: for the service, put MGMC_SITE_PASSPHRASE=... in secrets.env beside this config (EnvironmentFile=, docs/deploy.md); in a shell, export MGMC_SITE_PASSPHRASE first',
      "9:16  store.synchronous  one of the allowed values  got 'fast'; allowed: normal, full",
      '11:21  ledger.sealEverySeconds  an integer from 1 to 3600  got 0',
      "13:3  log.levle  a known key of log  did you mean 'level'?",
      "18:15  buses[0].baudRate  an integer from 300 to 4000000  got the text '9600'; remove the quotes",
      '23:17  devices[0].intervalMs  an integer from 100 to 3600000  got 50',
      "24:5  devices[1].name  this required key  add 'name:' in devices[1]: lower-case device name, used in readings, logs and status",
    ],
  },
];

describe('mgmc config check on broken site configs', () => {
  it.each(cases)('$name: $what', async ({ name, env, problems }) => {
    const ran = await mgmc(['config', 'check', join(brokenDir, name)], env);
    expect(ran.stderr).toEqual(report(name, problems));
    expect(ran.stdout).toEqual([]);
    expect(ran.code).toBe(EX_CONFIG);
  });

  it('reports a secret that does not resolve together with the cross-checks, not one run after the other', async () => {
    const ran = await mgmc(['config', 'check', join(brokenDir, 'duplicate-unit.yaml')], {});
    expect(ran.stderr).toEqual(
      report('duplicate-unit.yaml', [
        '7:15  identity.passphrase  environment variable MGMC_KEY_PASSPHRASE to be set  it is not set for the agent: for the service, put MGMC_KEY_PASSPHRASE=... in secrets.env beside this config (EnvironmentFile=, docs/deploy.md); in a shell, export MGMC_KEY_PASSPHRASE first',
        "19:11  devices[1].unit  a unit id not used by another device on bus 'rs485-0'  unit 1 is also devices[0] (grid-meter); give each device on a bus its own unit id, here and in the device itself",
      ]),
    );
  });

  it('--json gives the same problems as fields, for editors and scripts', async () => {
    const file = join(brokenDir, 'bad-enum.yaml');
    const ran = await mgmc(['config', 'check', '--json', file]);
    expect(ran.code).toBe(EX_CONFIG);
    expect(JSON.parse(ran.stdout.join('\n'))).toEqual({
      ok: false,
      file,
      issues: [
        {
          file,
          line: 10,
          column: 11,
          path: 'buses[0].kind',
          expected: 'one of the allowed values',
          hint: "got 'modbus-rtu'; allowed: tcp, rtu, rtu-over-tcp",
        },
        {
          file,
          line: 12,
          column: 13,
          path: 'buses[0].parity',
          expected: 'one of the allowed values',
          hint: "got 'None'; did you mean 'none'? allowed: none, even, odd",
        },
      ],
    });
  });
});

describe('mgmc run with a broken config', () => {
  it('exits 78 before starting anything, listing the same problems (systemd: RestartPreventExitStatus=78)', async () => {
    const file = join(brokenDir, 'unknown-bus.yaml');
    const ran = await mgmc(['run', '--config', file]);
    expect(ran.code).toBe(78);
    expect(ran.stdout).toEqual([]);
    expect(ran.stderr).toEqual([
      `mgmc: config ${file}: 2 problems`,
      ...report('unknown-bus.yaml', cases.find((c) => c.name === 'unknown-bus.yaml')?.problems ?? []).slice(0, -1),
    ]);
  });
});

describe('the shipped examples', () => {
  it.each(['examples/site.yaml', 'examples/dso.yaml'])('%s passes mgmc config check', async (name) => {
    const file = join(repoRoot, name);
    const ran = await mgmc(['config', 'check', file]);
    expect(ran.stderr).toEqual([]);
    expect(ran.stdout).toEqual([`${file}: ok`]);
    expect(ran.code).toBe(0);
  });

  it('examples/site.yaml is laid out for the service: state in /var/lib/mgmc-agent, serial lines by udev name', async () => {
    const config = await loadConfig(join(repoRoot, 'examples/site.yaml'), { env: PASSPHRASE_ENV });
    expect(config.role).toBe('mgmc');
    expect(config.store.path).toBe('/var/lib/mgmc-agent/mgmc.db');
    expect(config.identity.keystore).toBe('/var/lib/mgmc-agent/keys/mgmc.json');
    expect(config.metrics).toEqual({ enabled: true, host: '127.0.0.1', port: 9464 });
    expect(config.link?.url).toMatch(/^mqtts:\/\//);
    expect(config.link?.tls.ca).toBe(join(repoRoot, 'examples/tls/dso-ca.pem'));
    const serial = [...config.buses.flatMap((bus) => (bus.path === undefined ? [] : [bus.path]))];
    expect([...serial, ...config.meters.map((meter) => meter.path)]).toEqual([
      '/dev/mgmc/rs485-0',
      '/dev/mgmc/meter-0',
    ]);
    expect(config.devices.map((device) => [device.name, device.bus, device.unit, device.profile])).toEqual([
      ['pv1', 'lan-inverter', 1, 'sunspec'],
      ['grid-meter', 'rs485-0', 1, 'eastron-sdm630'],
      ['battery', 'lan-inverter', 2, 'sunspec'],
      ['wallbox', 'lan-inverter', 3, 'alfen-eve'],
    ]);
    expect(config.buildings.map((building) => building.tariff)).toEqual(['business']);
    expect(config.market.enabled).toBe(true);
    expect(config.optimizer.enabled).toBe(true);
  });
});
