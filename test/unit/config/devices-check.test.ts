/** Cross-checks of buses, devices and meters: every problem at once, each at its line with a hint. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkConfigFile, formatIssue } from '../../../agent/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'mgmc-devcheck-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAD = `role: mgmc
site: { name: x }
identity: { keystore: ./k.json, passphrase: env:P }
`;

async function check(body: string): Promise<string[]> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, HEAD + body);
  const result = await checkConfigFile(file, { env: { P: 'x' } });
  return result.issues.map((issue) => formatIssue(issue).slice(file.length));
}

describe('field config cross-checks', () => {
  it('accepts a consistent site', async () => {
    const issues = await check(`buses:
  - { name: lan, kind: tcp, host: 10.0.0.1 }
  - { name: rs485, kind: rtu, path: /dev/ttyUSB0, baudRate: 19200 }
devices:
  - { name: pv1, bus: lan, unit: 1, profile: sunspec }
  - { name: m1, bus: rs485, unit: 1, profile: eastron-sdm630, points: [W, TotWhImp] }
  - { name: m2, bus: rs485, unit: 1, profile: eastron-sdm630, enabled: false }
meters:
  - { name: rm, path: /dev/ttyUSB1, address: "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf" }
`);
    expect(issues).toEqual([]);
  });

  it('reports every broken reference at once, at its line, with near-miss hints', async () => {
    const issues = await check(`buses:
  - { name: lan, kind: tcp, host: 10.0.0.1 }
  - { name: lan, kind: rtu }
devices:
  - { name: pv1, bus: lann, unit: 1, profile: sunspec }
  - { name: m1, bus: lan, unit: 2, profile: eastron-sdm63 }
  - { name: m2, bus: lan, unit: 2, profile: eastron-sdm630, points: [W, TotWhImq] }
  - { name: m2, bus: lan, unit: 3, profile: eastron-sdm630, base: 40000 }
meters:
  - { name: m1, path: /dev/ttyUSB1, address: "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf" }
  - { name: rm2, path: /dev/ttyUSB1, address: "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf" }
`);
    expect(issues).toEqual([
      ':6:5  buses[1]  a path for an rtu bus  add path: /dev/serial/by-id/...',
      ":6:13  buses[1].name  a bus name used once  'lan' is also buses[0]",
      ":8:23  devices[0].bus  the name of a bus declared under buses  did you mean 'lan'?",
      ":9:45  devices[1].profile  a profile id from hardware/profiles or 'sunspec'  did you mean 'eastron-sdm630'?",
      ":10:33  devices[2].unit  a unit id not used by another device on bus 'lan'  unit 2 is also devices[1] (m1); give each device on a bus its own unit id, here and in the device itself",
      ":10:73  devices[2].points[1]  a point of profile eastron-sdm630  did you mean 'TotWhImp'?",
      ":11:13  devices[3].name  a device name used once  'm2' is also devices[2]",
      ':11:67  devices[3].base  base only with profile: sunspec  remove it or set profile: sunspec',
      ":13:13  meters[0].name  a name not used by another meter or device  a device is also named 'm1'",
      ':14:24  meters[1].path  a serial device used by one bus or meter only  /dev/ttyUSB1 is also used by meters[0]',
      ':14:47  meters[1].address  a meter address used once  meters[0] has the same address',
    ]);
  });

  it('asks for the settings a bus kind needs', async () => {
    const issues = await check(`buses:
  - { name: a, kind: tcp }
  - { name: b, kind: rtu, path: /dev/ttyS0, host: x }
  - { name: c, kind: rtu-over-tcp, host: gw, baudRate: 9600, backoff: { baseMs: 5000, maxMs: 1000 } }
`);
    expect(issues).toEqual([
      ':5:5  buses[0]  a host for a tcp bus  add host: 192.168.1.50',
      ':6:51  buses[1].host  no host on an rtu bus  did you mean kind: tcp?',
      ':7:56  buses[2].baudRate  no baudRate on a rtu-over-tcp bus  the gateway sets the serial speed',
      ':7:94  buses[2].backoff.maxMs  at least backoff.baseMs (5000)',
    ]);
  });
});
