import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { meterAddressFromPrivateKey } from '../../../firmware-bridge/batch.js';
import type { MeterSnapshot } from '../../../sim/physics/meter.js';
import { SimSite } from '../../../sim/physics/site.js';
import {
  checkSiteText,
  defaultSimSite,
  formatSiteFileIssue,
  loadSiteFile,
  parseSiteText,
  SiteFileError,
  testMeterKey,
} from '../../../sim/site-file.js';

const KEY = '11'.repeat(32);
const env = { SIM_METER_KEY: KEY };

const GOOD = `
seed: 42
location: { latitudeDeg: 48.1, longitudeDeg: 11.6 }
start: 2026-06-21T00:00:00+02:00
speed: 60
servers:
  - { name: lan, kind: tcp, port: 0 }
  - { name: rs485, kind: rtu, baudRate: 9600 }
devices:
  - { kind: pv-inverter, name: pv1, params: { acRatingW: 6000 }, server: lan, unit: 1, profiles: [sunspec-1, sunspec-103, sunspec-120, sunspec-123] }
  - { kind: battery, name: bat1, server: lan, profiles: [sunspec-1, sunspec-103, sunspec-124] }
  - { kind: building-load, name: house }
  - { kind: meter, name: grid, server: rs485 }
signingMeters:
  - { name: gm1, meter: grid, privateKey: env:SIM_METER_KEY, batchSeconds: 60 }
faults:
  - { device: pv1, kind: stuck, point: W, from: 3600, until: 7200 }
  - { device: grid, kind: no-answer, from: 600, until: 660 }
`;

/** Every issue line of a text that must fail. */
function problems(text: string, file = 'site.yaml'): string[] {
  const { config, issues } = checkSiteText(text, file, { env: {} });
  expect(config).toBeUndefined();
  return issues.map(formatSiteFileIssue);
}

describe('a valid site file', () => {
  it('becomes a site description, servers, served devices, signing meters and faults, with defaults filled in', () => {
    const config = parseSiteText(GOOD, 'site.yaml', { env });
    const start = Date.parse('2026-06-21T00:00:00+02:00');
    expect(config.speed).toBe(60);
    expect(config.description).toMatchObject({
      seed: 42,
      start: '2026-06-21T00:00:00+02:00',
      location: { latitudeDeg: 48.1, longitudeDeg: 11.6 },
    });
    expect(config.description.devices).toEqual([
      { kind: 'pv-inverter', name: 'pv1', params: { acRatingW: 6000, dcCapacityWp: 6600 } },
      { kind: 'battery', name: 'bat1', params: { capacityWh: 10_000, maxChargeW: 5000, maxDischargeW: 5000 } },
      { kind: 'building-load', name: 'house', params: { profile: 'office', peakW: 15_000 } },
      // A meter that names nothing sees every device that is not a meter.
      { kind: 'meter', name: 'grid', params: { sees: ['pv1', 'bat1', 'house'] } },
    ]);
    expect(config.servers).toEqual([
      { name: 'lan', kind: 'tcp', host: '127.0.0.1', port: 0 },
      { name: 'rs485', kind: 'rtu', baudRate: 9600 },
    ]);
    expect(config.devices.map((d) => [d.name, d.server, d.unit, d.profiles.join(' ')])).toEqual([
      ['pv1', 'lan', 1, 'sunspec-1 sunspec-103 sunspec-120 sunspec-123'],
      ['bat1', 'lan', 2, 'sunspec-1 sunspec-103 sunspec-124'],
      ['grid', 'rs485', 1, 'eastron-sdm630'],
    ]);
    expect(config.signingMeters).toHaveLength(1);
    expect(config.signingMeters[0]).toMatchObject({ name: 'gm1', meter: 'grid', batchSeconds: 60, sampleSeconds: 15 });
    expect(config.signingMeters[0]?.address).toBe(meterAddressFromPrivateKey(Buffer.from(KEY, 'hex')));
    expect(config.faults).toEqual([
      { device: 'pv1', kind: 'stuck', point: 'W', from: start + 3_600_000, until: start + 7_200_000 },
      { device: 'grid', kind: 'no-answer', from: start + 600_000, until: start + 660_000 },
    ]);
    expect(() => new SimSite(config.description)).not.toThrow();
  });

  it('a file with nothing but devices works, and a signing meter without a key gets a reproducible test key', () => {
    const config = parseSiteText(
      'devices:\n  - { kind: meter, name: m, params: { sees: [] } }\nsigningMeters:\n  - { name: s, meter: m }\n',
      'short.yaml',
    );
    expect(config.speed).toBe(1);
    expect(config.devices).toEqual([]);
    expect(config.signingMeters[0]?.address).toBe(
      meterAddressFromPrivateKey(testMeterKey(config.description.seed, 's')),
    );
  });

  it('takes where the energy counters start, and leaves the rest to the installed history', () => {
    const config = parseSiteText(
      [
        'devices:',
        '  - { kind: pv-inverter, name: pv, params: { initialEnergyWh: 0 } }',
        '  - { kind: battery, name: bat, params: { initialChargedWh: 1000, initialDischargedWh: 900 } }',
        '  - { kind: meter, name: m, params: { initialImportWh: 5 } }',
        '',
      ].join('\n'),
      'counters.yaml',
    );
    const site = new SimSite(config.description).snapshot().devices;
    expect(site.pv).toMatchObject({ lifetimeEnergyWh: 0 });
    expect(site.bat).toMatchObject({ chargedEnergyWh: 1000, dischargedEnergyWh: 900 });
    // The meter's import is given; its export is the battery's 900 Wh less what was used behind the meter.
    const m = site.m as MeterSnapshot;
    expect(m.importEnergyWh).toBe(5);
    expect(m.exportEnergyWh).toBeGreaterThanOrEqual(900 * 0.4);
    expect(m.exportEnergyWh).toBeLessThanOrEqual(900 * 0.7);
  });

  it('loads from a file and names an unreadable one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'site-file-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'site.yaml');
    writeFileSync(path, GOOD);
    expect(loadSiteFile(path, { env }).devices).toHaveLength(3);
    expect(() => loadSiteFile(join(dir, 'missing.yaml'))).toThrow(
      /missing\.yaml {2}\(file\) {2}a readable site file {2}no such file/,
    );
  });

  it('the embedded default site is consistent', () => {
    const config = defaultSimSite();
    const site = new SimSite(config.description);
    for (const d of config.devices) expect(site.device(d.name).kind).toBe(d.kind);
    expect(config.devices.find((d) => d.name === 'grid-meter')).toMatchObject({
      server: 'rs485',
      profiles: ['eastron-sdm630'],
    });
    expect(config.devices.find((d) => d.name === 'pv-meter')?.profiles).toContain('sunspec-203');
    expect(config.signingMeters.map((m) => m.meter)).toEqual(['grid-meter']);
  });
});

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

describe('a broken site file', () => {
  it('reports every problem at once, each with file:line:col, key path, what was expected and a hint', () => {
    const text = [
      'seed: 42', //                                                                                          1
      'sever: oops', //                                                                                       2
      'servers:', //                                                                                          3
      '  - { name: lan, kind: tcp, port: abc }', //                                                           4
      '  - { name: rs485, kind: rtu, host: x }', //                                                           5
      'devices:', //                                                                                          6
      '  - { kind: pv-inverter, name: pv1, params: { acRatingWW: 5000 }, server: lan, profiles: [sunspec-1, sunspec-130] }',
      '  - { kind: battery, name: bat1, server: lan, unit: 1 }', //                                           8
      '  - { kind: battery, name: bat2, server: lan, unit: 1 }', //                                           9
      '  - { kind: meter, name: grid, params: { sees: [pv1, bat3] }, server: rs4855 }', //                   10
      '  - { kind: solar, name: Bad Name }', //                                                              11
      'signingMeters:', //                                                                                   12
      '  - { name: gm1, meter: bat1, privateKey: env:SIM_METER_KEY }', //                                    13
      'faults:', //                                                                                          14
      '  - { device: pv2, kind: stuck, point: W }', //                                                       15
      '  - { device: bat1, kind: slow }', //                                                                 16
    ].join('\n');
    expect(problems(text)).toEqual([
      "site.yaml:2:1  sever  a known top-level key  did you mean 'seed' or 'servers'?",
      "site.yaml:4:35  servers[0].port  an integer from 0 to 65535  got 'abc'",
      'site.yaml:5:31  servers[1].host  no host on an rtu server  host is for kind: tcp',
      "site.yaml:7:47  devices[0].params.acRatingWW  a known key of devices[0].params  did you mean 'acRatingW'?",
      "site.yaml:7:102  devices[0].profiles[1]  a profile id from hardware/profiles  did you mean 'sunspec-103' or 'sunspec-120'?",
      'site.yaml:9:53  devices[2].unit  a unit id no other device on lan uses  devices[1] has 1',
      "site.yaml:10:54  devices[3].params.sees[1]  the name of a device of the site  did you mean 'bat1' or 'bat2'?",
      "site.yaml:10:71  devices[3].server  the name of a server under servers:  did you mean 'rs485'?",
      "site.yaml:11:13  devices[4].kind  one of pv-inverter, battery, building-load, ev-charger, meter  got 'solar'",
      "site.yaml:11:26  devices[4].name  a lower-case name (letters, digits, - and _; at most 32 characters)  got 'Bad Name'",
      'site.yaml:13:25  signingMeters[0].meter  the name of a device of kind meter  bat1 is a battery; a signing meter signs what a meter measures',
      'site.yaml:13:43  signingMeters[0].privateKey  the environment variable SIM_METER_KEY set  export SIM_METER_KEY=<64 hex digits> first',
      "site.yaml:15:15  faults[0].device  the name of a served device  did you mean 'pv1'?",
      'site.yaml:16:5  faults[1]  delayMs: (a slow fault needs it)  add delayMs: to faults[1]',
    ]);
  });

  it('SiteFileError lists them in its message', () => {
    expect(() => parseSiteText('devices: []\nspeed: 0\n', 'x.yaml')).toThrow(SiteFileError);
    try {
      parseSiteText('devices: []\nspeed: 0\n', 'x.yaml');
    } catch (error) {
      expect((error as Error).message).toBe(
        [
          'site file x.yaml: 2 problems',
          'x.yaml:1:10  devices  a list (not empty)  got an empty list',
          'x.yaml:2:8  speed  a number above 0, at most 100000  got 0',
        ].join('\n'),
      );
    }
  });

  it('YAML syntax errors alone, at their line and column', () => {
    expect(problems('devices:\n  - { kind: meter, name: m\nspeed: 2\n')).toEqual([
      expect.stringMatching(/^site\.yaml:3:1 {2}\(yaml\) {2}valid YAML {2}/),
    ]);
    expect(problems('speed: 1\nspeed: 2\ndevices: []\n')).toEqual([
      'site.yaml:2:1  (yaml)  each key only once in a mapping  this key appears twice; keep one of them',
    ]);
  });

  it('profile rules: kind, order, one map per device, base only for SunSpec', () => {
    const text = [
      'servers: [ { name: lan, kind: tcp } ]',
      'devices:',
      '  - { kind: battery, name: b1, server: lan, profiles: [sunspec-1, sunspec-123] }',
      '  - { kind: pv-inverter, name: p1, server: lan, profiles: [sunspec-103, sunspec-1] }',
      '  - { kind: meter, name: m1, server: lan, profiles: [sunspec-1, sunspec-203, eastron-sdm630] }',
      '  - { kind: ev-charger, name: e1, server: lan, base: 40000 }',
    ].join('\n');
    expect(problems(text)).toEqual([
      'site.yaml:3:67  devices[0].profiles[1]  a profile for a battery  profile sunspec-123 describes a pv-inverter, not a battery; a battery takes its setpoints through sunspec-124',
      'site.yaml:4:59  devices[1].profiles  sunspec-1 first  the SunSpec chain starts with the common model (sunspec-1)',
      'site.yaml:5:53  devices[2].profiles  SunSpec models or one absolute profile, not both  the agent polls a device with one profile; split eastron-sdm630 into a device of its own',
      'site.yaml:6:48  devices[3].base  no base on a device without SunSpec models  base is where "SunS" sits',
    ]);
  });

  it('what only the physics know is reported at the device', () => {
    expect(problems('devices:\n  - { kind: battery, name: b, params: { socMinPct: 90, socMaxPct: 20 } }\n')).toEqual([
      'site.yaml:2:31  devices[0].params  parameters the device model accepts  battery b: socMinPct (90) must be below socMaxPct (20)',
    ]);
  });

  it('fault keys are checked per kind', () => {
    const text = [
      'servers: [ { name: lan, kind: tcp } ]',
      'devices:',
      '  - { kind: pv-inverter, name: pv, server: lan }',
      '  - { kind: building-load, name: house }',
      'faults:',
      '  - { device: pv, kind: stuck, start: 40000, fn: 16, delayMs: 4 }',
      '  - { device: pv, kind: slow, delayMs: 100, from: 100, until: 50 }',
      '  - { device: house, kind: bad-crc }',
      '  - { device: pv, kind: stuck, point: Watts }',
    ].join('\n');
    expect(problems(text)).toEqual([
      'site.yaml:6:50  faults[0].fn  fn: 3 (holding) or 4 (input) for a register fault  got 16',
      'site.yaml:6:54  faults[0].delayMs  a key a stuck fault takes  allowed: point, start, count, fn',
      'site.yaml:7:63  faults[1].until  a time after from (100 s)  from and until are seconds after start',
      'site.yaml:8:15  faults[2].device  the name of a served device  house has no server:, so it has no registers to break',
      'site.yaml:9:39  faults[3].point  a point of pv  its points are in hardware/profiles/{sunspec-1,sunspec-103,sunspec-120,sunspec-123}.yaml',
    ]);
  });
});
