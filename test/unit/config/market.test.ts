/** The `market` (role mgmc) and `dso.market` (role dso) sections: defaults, what they need, and their cross-checks. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkConfigFile, formatIssue, loadConfig } from '../../../agent/config/index.js';
import { examplePath, repoRoot } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mgmc-marketcheck-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ENV = { P: 'x' };
const A1 = '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf';
const A2 = '0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF';

const head = (role: 'mgmc' | 'dso') => `role: ${role}
site: { name: x }
identity: { keystore: ./k.json, passphrase: env:P }
`;

/** An MGMC with everything the market needs: link, buildings (optimizer on by default) and a signing meter. */
const tradingSite = `${head('mgmc')}link: { url: "mqtts://broker.example:8883" }
dso: { genesis: ./genesis.json, feederBus: bus-18 }
meters:
  - { name: revenue, path: /dev/ttyUSB0, address: "${A1}" }
  - { name: second, path: /dev/ttyUSB1, address: "${A2}" }
tariffs: [{ name: t, import: { price: 0.3 }, export: { price: 0.08 } }]
buildings: [{ name: b, tariff: t, importLimitW: 10000, exportLimitW: 5000 }]
`;

const dsoNode = `${head('dso')}link: { url: "mqtts://broker.example:8883" }
`;

let n = 0;
function write(text: string): string {
  n += 1;
  const file = join(dir, `c${n}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** The problems of a config, without the file name: `:line:column  path  expected  hint`. */
async function issues(text: string): Promise<string[]> {
  const file = write(text);
  const result = await checkConfigFile(file, { env: ENV });
  return result.issues.map((issue) => formatIssue(issue).slice(file.length));
}

describe('market (role mgmc)', () => {
  it('is off with empty rules when left out', async () => {
    const config = await loadConfig(write(head('mgmc')), { env: ENV });
    expect(config.market).toEqual({ enabled: false, green: false, intervalMinutes: 15, rules: { greenOnly: false } });
    expect(config.dso.market).toBeUndefined();
  });

  it('loads a full section on a site that has what the market needs', async () => {
    const config = await loadConfig(
      write(`${tradingSite}market:
  enabled: true
  green: true
  meter: second
  rules:
    floorPrice: 0.10
    ceilingPrice: 0.28
    maxQtyWh: 5000
    greenOnly: true
    allow: ["${A1}"]
    deny: ["${A2}"]
    roundCap: 12
`),
      { env: ENV },
    );
    expect(config.market).toEqual({
      enabled: true,
      green: true,
      intervalMinutes: 15,
      meter: 'second',
      rules: {
        floorPrice: 0.1,
        ceilingPrice: 0.28,
        maxQtyWh: 5000,
        greenOnly: true,
        allow: [A1],
        deny: [A2],
        roundCap: 12,
      },
    });
  });

  it('reports at market.enabled each thing the market needs that is missing', async () => {
    expect(await issues(`${head('mgmc')}market: { enabled: true }\n`)).toEqual([
      ':4:20  market.enabled  a link section when market.enabled  the market runs over the MQTT link to the DSO: add link: { url: ... }, or set enabled: false',
      ':4:20  market.enabled  buildings when market.enabled  the market trades what the optimizer plans for the buildings: add buildings:, or set enabled: false',
      ":4:20  market.enabled  a signing meter under meters when market.enabled  trades settle on the connection meter's signed readings: declare it under meters:",
    ]);
  });

  it('needs the optimizer enabled, because it trades what the optimizer plans', async () => {
    expect(await issues(`${tradingSite}optimizer: { enabled: false }\nmarket: { enabled: true }\n`)).toEqual([
      ':12:20  market.enabled  optimizer.enabled when market.enabled  the market trades what the optimizer plans: set optimizer.enabled: true, or market.enabled: false',
    ]);
  });

  it('a disabled market needs nothing, but its meter name is still checked', async () => {
    expect(await issues(`${head('mgmc')}market: { green: true }\n`)).toEqual([]);
    expect(await issues(`${tradingSite}market: { meter: revenu }\n`)).toEqual([
      ":11:18  market.meter  the name of a signing meter declared under meters  did you mean 'revenue'?",
    ]);
  });

  it('says when the meter named is a Modbus device rather than a signing meter', async () => {
    const text = `${tradingSite}buses: [{ name: lan, kind: tcp, host: 10.0.0.2 }]
devices: [{ name: grid-meter, bus: lan, profile: sunspec }]
market: { enabled: true, meter: grid-meter }
`;
    expect(await issues(text)).toEqual([
      ":13:33  market.meter  the name of a signing meter declared under meters  'grid-meter' is a Modbus device; trades settle on a meter that signs its readings (meters:)",
    ]);
  });

  it('checks the rules: floor against ceiling, empty allow, checksums, repeats, allowed and denied', async () => {
    const badChecksum = A1.replace('E5F', 'e5F');
    const text = `${head('mgmc')}market:
  rules:
    floorPrice: 0.3
    ceilingPrice: 0.2
    deny: ["${badChecksum}", "${A2}", "${A2}"]
`;
    expect(await issues(text)).toEqual([
      ':6:17  market.rules.floorPrice  at most ceilingPrice (0.2)  floorPrice is the least it sells for, ceilingPrice the most it buys for: were the two swapped?',
      `:8:12  market.rules.deny[0]  an anonym address with a valid EIP-55 checksum  ${badChecksum} has a wrong EIP-55 checksum (did you mean ${A1}? check for a typo)`,
      ':8:104  market.rules.deny[2]  each anonym once  also market.rules.deny[1]',
    ]);
    expect(await issues(`${head('mgmc')}market: { rules: { allow: [] } }\n`)).toEqual([
      ':4:27  market.rules.allow  at least one anonym in allow  an empty allow list trades with no one; leave allow out to trade with anyone',
    ]);
    expect(
      await issues(`${head('mgmc')}market: { rules: { allow: ["${A1}"], deny: ["${A1.toLowerCase()}"] } }\n`),
    ).toEqual([':4:82  market.rules.deny[0]  an anonym not also allowed  market.rules.allow[0] allows it; keep one']);
  });

  it.each([
    ['market: { enabled: yes }', 'market.enabled'],
    ['market: { rules: { floorPrice: -0.1 } }', 'market.rules.floorPrice'],
    ['market: { rules: { maxQtyWh: 0 } }', 'market.rules.maxQtyWh'],
    ['market: { rules: { maxQtyWh: 1.5 } }', 'market.rules.maxQtyWh'],
    ['market: { rules: { roundCap: 0 } }', 'market.rules.roundCap'],
    ['market: { rules: { deny: [bob] } }', 'market.rules.deny[0]'],
    ['market: { rules: { exclude: [] } }', 'market.rules.exclude'],
    ['market: { meter: "" }', 'market.meter'],
  ])('rejects %s', async (line, path) => {
    const found = await issues(`${head('mgmc')}${line}\n`);
    expect(
      found.some((issue) => issue.includes(`  ${path}  `)),
      found.join('\n'),
    ).toBe(true);
  });

  it('is reported in a DSO config, where it would do nothing', async () => {
    expect(await issues(`${dsoNode}dso: { genesis: ./g.json }\nmarket: { enabled: false }\n`)).toEqual([
      ":6:9  market  no market section for role dso  the DSO's market settings are dso.market; remove it",
    ]);
  });

  it('the shipped MGMC example trades, settling on its revenue meter', async () => {
    const config = await loadConfig(examplePath, { env: { MGMC_KEY_PASSPHRASE: 'x' } });
    expect(config.market.enabled).toBe(true);
    expect(config.market.meter).toBe(config.meters[0]?.name);
    expect(config.market.rules.floorPrice).toBeLessThan(config.market.rules.ceilingPrice ?? 0);
  });
});

describe('dso.market (role dso)', () => {
  it('is off when left out, and an empty section is on with every default', async () => {
    const off = await loadConfig(write(`${dsoNode}dso: { genesis: ./g.json }\n`), { env: ENV });
    expect(off.dso.market).toBeUndefined();
    const on = await loadConfig(write(`${dsoNode}dso: { genesis: ./g.json, market: {} }\n`), { env: ENV });
    expect(on.dso.market).toEqual({
      intervalMinutes: 15,
      leadMinutes: 15,
      gateMinutes: 5,
      phaseSeconds: 5,
      positionWaitSeconds: 10,
      deliveryDelayMinutes: 5,
      deliveryWaitSeconds: 60,
      roundCap: 30,
      maxAttempts: 3,
      importPrice: 0.3,
      exportPrice: 0.08,
      imbalancePrice: 0.35,
    });
  });

  it('reports a gate at or before the opening, and a feed-in price above the import price', async () => {
    const text = `${dsoNode}dso:
  genesis: ./g.json
  market:
    leadMinutes: 10
    gateMinutes: 10
    importPrice: 0.2
    exportPrice: 0.25
`;
    expect(await issues(text)).toEqual([
      ':9:18  dso.market.gateMinutes  less than leadMinutes (10)  the market opens leadMinutes before an interval and closes gateMinutes before it; it would never be open',
      ':11:18  dso.market.exportPrice  at most importPrice (0.2)  buying from the grid to sell it back would be free money',
    ]);
  });

  it('needs the same interval as dso.grid, pointing at the one written in the file', async () => {
    const both = `${dsoNode}dso:
  genesis: ./g.json
  grid: { feeder: ./f.yaml, intervalMinutes: 30 }
  market: { intervalMinutes: 15 }
`;
    expect(await issues(both)).toEqual([
      ':7:46  dso.grid.intervalMinutes  the market interval (dso.market.intervalMinutes: 15)  the network check runs on the market intervals: use the same length in dso.grid and dso.market',
    ]);
    const marketOnly = `${dsoNode}dso:
  genesis: ./g.json
  grid: { feeder: ./f.yaml }
  market: { intervalMinutes: 30 }
`;
    expect(await issues(marketOnly)).toEqual([
      ':8:30  dso.market.intervalMinutes  the grid interval (dso.grid.intervalMinutes: 15)  the network check runs on the market intervals: use the same length in dso.grid and dso.market',
    ]);
    expect(await issues(marketOnly.replace('intervalMinutes: 30', 'intervalMinutes: 15'))).toEqual([]);
  });

  it.each([
    ['market: { intervalMinutes: 0 }', 'dso.market.intervalMinutes'],
    ['market: { phaseSeconds: 0 }', 'dso.market.phaseSeconds'],
    ['market: { roundCap: 0 }', 'dso.market.roundCap'],
    ['market: { maxAttempts: 0 }', 'dso.market.maxAttempts'],
    ['market: { maxQtyWh: 0 }', 'dso.market.maxQtyWh'],
    ['market: { importPrice: -1 }', 'dso.market.importPrice'],
    ['market: { settleSeconds: 5 }', 'dso.market.settleSeconds'],
  ])('rejects %s', async (line, path) => {
    const found = await issues(`${dsoNode}dso:\n  genesis: ./g.json\n  ${line}\n`);
    expect(
      found.some((issue) => issue.includes(`  ${path}  `)),
      found.join('\n'),
    ).toBe(true);
  });

  it('is reported in an MGMC config, where it would do nothing', async () => {
    expect(await issues(`${head('mgmc')}dso: { market: {} }\n`)).toEqual([
      ':4:16  dso.market  no dso.market for role mgmc  dso.market is read by role dso only; remove it',
    ]);
  });

  it('the shipped DSO example runs a market on the grid check interval', async () => {
    const config = await loadConfig(join(repoRoot, 'examples/dso.yaml'), { env: { MGMC_KEY_PASSPHRASE: 'x' } });
    expect(config.dso.market?.intervalMinutes).toBe(config.dso.grid?.intervalMinutes);
    expect(config.dso.market?.exportPrice).toBeLessThan(config.dso.market?.importPrice ?? 0);
  });
});
