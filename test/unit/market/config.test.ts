/** agent/market/config.ts: the market's config sections in the market's units (micro-units per kWh, ms). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type AgentConfig, loadConfig } from '../../../agent/config/index.js';
import { DEFAULT_MARKET_TIMING } from '../../../agent/dso/market-sequencer.js';
import {
  type DsoMarketSection,
  dsoMarketOptions,
  marketMeter,
  marketRules,
  microPerKWh,
} from '../../../agent/market/config.js';
import { CurveError } from '../../../agent/market/curve.js';
import { RulesError, rulePrice } from '../../../agent/market/rules.js';

const dir = mkdtempSync(join(tmpdir(), 'mgmc-marketconfig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const A1 = '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf';
const A2 = '0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF';
const A3 = '0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69';

let n = 0;
async function load(body: string, role: 'mgmc' | 'dso' = 'mgmc'): Promise<AgentConfig> {
  n += 1;
  const file = join(dir, `c${n}.yaml`);
  const link = role === 'dso' ? 'link: { url: "mqtt://b" }\n' : '';
  writeFileSync(
    file,
    `role: ${role}\nsite: { name: x }\nidentity: { keystore: ./k.json, passphrase: env:P }\n${link}${body}`,
  );
  return loadConfig(file, { env: { P: 'x' } });
}

describe('microPerKWh()', () => {
  it('turns currency per kWh into integer micro-units, rounded to the nearest', () => {
    expect(microPerKWh(0.3)).toBe(300_000);
    expect(microPerKWh(0.1)).toBe(100_000);
    expect(microPerKWh(0.1234567)).toBe(123_457);
    expect(microPerKWh(0)).toBe(0);
  });

  it('refuses a negative or non-finite price', () => {
    expect(() => microPerKWh(-0.01)).toThrow(/>= 0 \(currency per kWh\), got -0.01/);
    expect(() => microPerKWh(Number.NaN)).toThrow(RangeError);
  });
});

describe('marketRules()', () => {
  it('converts prices and keeps quantities, caps and anonyms (checksummed, sorted, once)', async () => {
    const config = await load(`market:
  rules:
    floorPrice: 0.10
    ceilingPrice: 0.28
    maxQtyWh: 5000
    greenOnly: true
    allow: ["${A3}", "${A1.toLowerCase()}"]
    deny: ["${A2}"]
    roundCap: 12
`);
    expect(marketRules(config)).toEqual({
      floorPrice: 100_000,
      ceilingPrice: 280_000,
      maxQtyWh: 5000,
      greenOnly: true,
      allow: [A3, A1],
      deny: [A2],
      roundCap: 12,
    });
  });

  it('a config without rules restricts nothing', async () => {
    const rules = marketRules(await load(''));
    expect(rules).toEqual({ greenOnly: false });
    expect(rulePrice(rules, 'offer', 1)).toBe(1);
    expect(rulePrice(rules, 'bid', 10_000_000)).toBe(10_000_000);
  });

  it('gives rules the market enforces in its own units', async () => {
    const rules = marketRules(await load('market: { rules: { floorPrice: 0.12, ceilingPrice: 0.25 } }\n'));
    expect(rulePrice(rules, 'offer', 90_000)).toBe(120_000);
    expect(rulePrice(rules, 'bid', 300_000)).toBe(250_000);
  });

  it('checks allow and deny through parseRules, naming market.rules', async () => {
    const config = await load(`market: { rules: { allow: ["${A1}"] } }\n`);
    // The config check refuses this file; a config built in code reaches parseRules unchecked.
    const unchecked = {
      ...config,
      market: { ...config.market, rules: { ...config.market.rules, deny: [A1, A1.replace('E5F', 'e5F')] } },
    } as AgentConfig;
    expect(() => marketRules(unchecked)).toThrow(RulesError);
    expect(() => marketRules(unchecked)).toThrow(/^market\.rules:\n {2}- deny\[1\]: .* wrong EIP-55 checksum/);
  });
});

describe('marketMeter()', () => {
  const meters = `meters:
  - { name: revenue, path: /dev/ttyUSB0, address: "${A1}" }
  - { name: second, path: /dev/ttyUSB1, address: "${A2}" }
`;

  it('is market.meter, else the first signing meter, else undefined', async () => {
    expect(marketMeter(await load(`${meters}market: { meter: second }\n`))).toBe('second');
    expect(marketMeter(await load(meters))).toBe('revenue');
    expect(marketMeter(await load(''))).toBeUndefined();
  });
});

describe('dsoMarketOptions()', () => {
  it('with the section defaults gives the sequencer its own default timing and the default prices', async () => {
    const section = (await load('dso: { genesis: ./g.json, market: {} }\n', 'dso')).dso.market;
    expect(section).toBeDefined();
    const options = dsoMarketOptions(section as DsoMarketSection);
    expect(options.timing).toEqual(DEFAULT_MARKET_TIMING);
    expect(options.roundCap).toBe(30);
    expect(options.maxAttempts).toBe(3);
    expect('maxQtyWh' in options).toBe(false);
    expect(options.prices(0)).toEqual({ grid: { importPrice: 300_000, exportPrice: 80_000 }, imbalancePrice: 350_000 });
    expect(options.prices(1_800_000_000_000)).toEqual(options.prices(0));
  });

  it('turns minutes and seconds into ms and passes the limits on', () => {
    const section: DsoMarketSection = {
      intervalMinutes: 5,
      leadMinutes: 10,
      gateMinutes: 1,
      phaseSeconds: 2.5,
      positionWaitSeconds: 0.5,
      deliveryDelayMinutes: 0,
      deliveryWaitSeconds: 30,
      roundCap: 8,
      maxAttempts: 2,
      maxQtyWh: 20_000,
      importPrice: 0.4,
      exportPrice: 0.4,
      imbalancePrice: 0.5,
    };
    const options = dsoMarketOptions(section);
    expect(options.timing).toEqual({
      intervalMs: 300_000,
      leadMs: 600_000,
      gateMs: 60_000,
      phaseMs: 2500,
      positionWaitMs: 500,
      deliveryDelayMs: 0,
      deliveryWaitMs: 30_000,
    });
    expect(options).toMatchObject({ roundCap: 8, maxAttempts: 2, maxQtyWh: 20_000 });
    expect(options.prices(0)).toEqual({
      grid: { importPrice: 400_000, exportPrice: 400_000 },
      imbalancePrice: 500_000,
    });
  });

  it('refuses a feed-in price above the import price', () => {
    const section = {
      intervalMinutes: 15,
      leadMinutes: 15,
      gateMinutes: 5,
      phaseSeconds: 5,
      positionWaitSeconds: 10,
      deliveryDelayMinutes: 5,
      deliveryWaitSeconds: 60,
      roundCap: 30,
      maxAttempts: 3,
      importPrice: 0.2,
      exportPrice: 0.3,
      imbalancePrice: 0.35,
    };
    expect(() => dsoMarketOptions(section)).toThrow(CurveError);
    expect(() => dsoMarketOptions(section)).toThrow(
      /^dso\.market: feed-in price 300000 is above the import price 200000/,
    );
  });
});
