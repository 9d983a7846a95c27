import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatIssue } from '../../../agent/config/issues.js';
import { createFeeder, feederSpec } from '../../../agent/grid/feeder.js';
import {
  checkFeederText,
  checkLoadsText,
  FeederFileError,
  feederToYaml,
  loadFeederFile,
  loadLoadsFile,
  parseFeederText,
} from '../../../agent/grid/feeder-file.js';
import { ieee33 } from '../../../agent/grid/ieee33.js';
import { busLoads } from '../../../agent/grid/powerflow.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const dir = mkdtempSync(join(tmpdir(), 'mgmc-feeder-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(text: string): string[] {
  return checkFeederText(text, 'f.yaml').issues.map(formatIssue);
}

const HEAD = 'name: t\nbaseKv: 12.66\nbaseMva: 10\n';
const BUSES = 'buses:\n  - { name: 1 }\n  - { name: 2, pKw: 100, qKvar: 50 }\n  - { name: 3, pKw: 100 }\n';

describe('feeder files', () => {
  it('ship the IEEE 33-bus feeder as a file identical to the built-in one', async () => {
    const fromFile = await loadFeederFile(join(repoRoot, 'examples/feeder-ieee33.yaml'));
    expect(feederSpec(fromFile)).toEqual(feederSpec(createFeeder(ieee33())));
  });

  it('round-trip through feederToYaml', () => {
    const feeder = createFeeder({ ...ieee33(), mgmcs: [{ mgmc: 'mg a', bus: '18' }] });
    expect(feederSpec(parseFeederText(feederToYaml(feeder), 'x.yaml'))).toEqual(feederSpec(feeder));
  });

  it('read a small feeder with defaults: names from numbers, FROM-TO line names, band, slack, MGMCs', () => {
    const feeder = parseFeederText(
      `${HEAD}${BUSES}lines:\n  - { from: 1, to: 2, rOhm: 0.1, xOhm: 0.1, ampacityA: 100 }\n` +
        '  - { name: x, from: 2, to: 3, rOhm: 0.1, xOhm: 0, ampacityA: 100, status: closed }\n' +
        'mgmcs:\n  - { mgmc: mg-a, bus: 3 }\n',
      'f.yaml',
    );
    expect(feeder.lines.map((l) => l.name)).toEqual(['1-2', 'x']);
    expect(feeder.slack).toBe('1');
    expect(feeder.slackVoltagePu).toBe(1);
    expect(feeder.voltageBand).toEqual({ min: 0.95, max: 1.05 });
    expect(feeder.buses[2]).toEqual({ name: '3', pKw: 100, qKvar: 0 });
    expect(feeder.mgmcs).toEqual([{ mgmc: 'mg-a', bus: '3' }]);
  });

  it('point at the line that closes a loop and at the first bus of an island', () => {
    const text =
      `${HEAD}buses:\n  - { name: 1 }\n  - { name: 2 }\n  - { name: 3 }\n  - { name: 4 }\n  - { name: 5 }\n` +
      'lines:\n' +
      '  - { name: a, from: 1, to: 2, rOhm: 0.1, xOhm: 0.1, ampacityA: 100 }\n' +
      '  - { name: b, from: 2, to: 3, rOhm: 0.1, xOhm: 0.1, ampacityA: 100, status: closed }\n' +
      '  - { name: c, from: 3, to: 1, rOhm: 0.1, xOhm: 0.1, ampacityA: 100, status: closed }\n' +
      '  - { name: d, from: 4, to: 5, rOhm: 0.1, xOhm: 0.1, ampacityA: 100 }\n' +
      '  - { name: e, from: 5, to: 3, rOhm: 0.1, xOhm: 0.1, ampacityA: 100, status: open }\n';
    expect(problems(text)).toEqual([
      'f.yaml:8:13  buses[3].name  a bus connected to the slack bus 1 through closed lines  ' +
        'buses 4, 5 form an island; close one of the switches e',
      'f.yaml:13:78  lines[2].status  a radial feeder (no loop of closed lines)  ' +
        'line c (3-1) closes a loop of lines b, a, c; open one of the closed switches b, c',
    ]);
  });

  it('report unknown buses, duplicates and impedances with file:line:col, all at once', () => {
    const text =
      `${HEAD}${BUSES}  - { name: 2 }\nlines:\n` +
      '  - { name: a, from: 1, to: 22, rOhm: 0.1, xOhm: 0.1, ampacityA: 100 }\n' +
      '  - { name: b, from: 2, to: 3, rOhm: -0.5, xOhm: 0.1, ampacityA: 100 }\n' +
      '  - { name: c, from: 1, to: 3, rOhm: 0, xOhm: 0, ampacityA: 100 }\n' +
      'mgmcs:\n  - { mgmc: mg-a, bus: 7 }\n';
    expect(problems(text)).toEqual([
      'f.yaml:8:13  buses[3].name  a bus name used once  bus 2 is also buses[1]',
      "f.yaml:10:29  lines[0].to  the name of a bus of the feeder  line a (1-22): no bus 22; did you mean '2'?",
      'f.yaml:11:38  lines[1].rOhm  a resistance of at least 0 ohm  line b (2-3) has -0.5',
      'f.yaml:12:5  lines[2]  a line with an impedance (r or x above 0)  line c (1-3) has zero impedance; merge its two buses into one',
      'f.yaml:14:24  mgmcs[0].bus  the name of a bus of the feeder  MGMC mg-a: no bus 7; buses: 1, 2, 3',
    ]);
  });

  it('report schema problems (unknown keys, wrong types, missing keys) before the feeder checks', () => {
    const text =
      'name: t\nbaseKv: "12.66"\nbuses:\n  - { name: 1, pkw: 5 }\nlines:\n  - { from: 1, to: 2, rOhm: 0.1, xOhm: 0.1, ampacityA: 100, status: shut }\n';
    expect(problems(text)).toEqual([
      "f.yaml:1:1  baseMva  this required key  add 'baseMva:' at the top level: base power for per-unit values, MVA",
      "f.yaml:2:9  baseKv  a number  got the text '12.66'; remove the quotes",
      "f.yaml:4:16  buses[0].pkw  a known key of buses[0]  did you mean 'pKw'?",
      "f.yaml:6:69  lines[0].status  one of the allowed values  got 'shut'; allowed: open, closed",
    ]);
  });

  it('report YAML syntax errors and an empty file', () => {
    expect(problems('name: t\nbuses: [\n')[0]).toMatch(
      /^f\.yaml:2:8 {2}buses {2}valid YAML {2}the bracket opened here is never closed/,
    );
    expect(problems('# nothing yet\n')).toEqual([
      'f.yaml:1:1  (root)  a mapping (key: value lines) describing a feeder  got an empty file; see docs/feeder-format.md',
    ]);
  });

  it('throw FeederFileError for a file that cannot be read', async () => {
    const missing = join(dir, 'missing.yaml');
    const error = await loadFeederFile(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FeederFileError);
    expect((error as FeederFileError).exitCode).toBe(78);
    expect((error as FeederFileError).message).toMatch(
      /^.*missing\.yaml: 1 problem\n.*missing\.yaml {2}\(file\) {2}a readable feeder file {2}cannot read .*no such file/,
    );
  });
});

describe('loads files', () => {
  const feeder = createFeeder({ ...ieee33(), mgmcs: [{ mgmc: 'mg-a', bus: '18' }] });

  it('scale, override buses and add MGMC positions', async () => {
    const path = join(dir, 'loads.yaml');
    writeFileSync(path, 'scale: 2\nbuses:\n  "30": { pKw: 10 }\nmgmcs:\n  mg-a: { pKw: -100, qKvar: -5 }\n');
    const adjustment = await loadLoadsFile(path, feeder);
    const loads = busLoads(feeder, adjustment);
    expect(loads.pKw[1]).toBe(200);
    expect(loads.pKw[29]).toBe(10);
    expect(loads.qKvar[29]).toBe(1200);
    expect(loads.pKw[17]).toBe(180 - 100);
    expect(loads.qKvar[17]).toBe(80 - 5);
  });

  it('read JSON too, and point at unknown buses and MGMCs', () => {
    const text = '{\n  "scale": 1,\n  "buses": { "300": { "pKw": 1 } },\n  "mgmcs": { "mg-b": { "pKw": 1 } }\n}\n';
    expect(checkLoadsText(text, 'l.json', feeder).issues.map(formatIssue)).toEqual([
      'l.json:3:14  buses["300"]  the name of a bus of the feeder  no bus 300',
      'l.json:4:14  mgmcs.mg-b  an MGMC attached to the feeder (its mgmcs: list)  mg-b is not attached to feeder ieee33',
    ]);
    expect(
      checkLoadsText('scale: -1\nmgmcs:\n  mg-a: { qKvar: 1 }\n', 'l.yaml', feeder).issues.map(formatIssue),
    ).toEqual([
      'l.yaml:1:8  scale  a number of at least 0  got -1',
      "l.yaml:3:3  mgmcs.mg-a.pKw  this required key  add 'pKw:' under 'mg-a:': net import, kW (negative: export)",
    ]);
  });
});
