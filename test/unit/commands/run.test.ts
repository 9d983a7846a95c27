/** mgmc run: what the DSO node is started with from dso.grid and dso.market. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dsoRunOptions } from '../../../agent/commands/run.js';
import { loadConfig } from '../../../agent/config/index.js';

const repoRoot = join(import.meta.dirname, '../../..');
const dir = mkdtempSync(join(tmpdir(), 'mgmc-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function dsoConfig(dso: string) {
  const file = join(dir, `dso-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    `role: dso
site: { name: x }
identity: { keystore: ./k.json, passphrase: env:P }
link: { url: "mqtt://b" }
dso:
  genesis: ./g.json
${dso}`,
  );
  return loadConfig(file, { env: { P: 'x' } });
}

const feeder = join(repoRoot, 'examples/feeder-ieee33.yaml');

describe('dsoRunOptions()', () => {
  it('without dso.grid or dso.market starts neither', async () => {
    expect(await dsoRunOptions(await dsoConfig(''))).toEqual({});
  });

  it('without a market the grid checks on its own settle timer', async () => {
    const options = await dsoRunOptions(await dsoConfig(`  grid: { feeder: ${feeder}, settleSeconds: 2.5 }\n`));
    expect(options.market).toBeUndefined();
    expect(options.grid).toMatchObject({ intervalMs: 900_000, settleMs: 2500, maxRounds: 5 });
    expect(options.grid?.feeder.buses.length).toBeGreaterThan(0);
  });

  it('with a market the sequencer drives the check: no settle timer for the grid', async () => {
    const options = await dsoRunOptions(
      await dsoConfig(`  grid: { feeder: ${feeder}, settleSeconds: 2.5 }\n  market: { roundCap: 10 }\n`),
    );
    expect(options.grid).toBeDefined();
    expect(options.grid && 'settleMs' in options.grid).toBe(false);
    expect(options.grid).toMatchObject({ intervalMs: 900_000, maxRounds: 5 });
    expect(options.market).toMatchObject({ roundCap: 10, maxAttempts: 3, timing: { intervalMs: 900_000 } });
    expect(options.market?.prices(0).grid).toEqual({ importPrice: 300_000, exportPrice: 80_000 });
  });

  it('a market without a feeder runs without the network check', async () => {
    const options = await dsoRunOptions(await dsoConfig('  market: {}\n'));
    expect(options.grid).toBeUndefined();
    expect(options.market?.timing?.gateMs).toBe(300_000);
  });

  it('the shipped DSO example starts grid and market together', async () => {
    const config = await loadConfig(join(repoRoot, 'examples/dso.yaml'), { env: { MGMC_KEY_PASSPHRASE: 'x' } });
    const options = await dsoRunOptions(config);
    expect(options.market?.timing?.intervalMs).toBe(options.grid?.intervalMs);
    expect(options.grid && 'settleMs' in options.grid).toBe(false);
  });
});
