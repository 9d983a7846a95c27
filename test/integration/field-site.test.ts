/**
 * The "done when", in one test: the simulated site (Modbus TCP, RTU on a pty, a signing meter on a pty)
 * polled by the MGMC runtime, which fills its ledger with decoded readings and meter-signed batches that verify; a
 * device that stops answering leaves the others untouched.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { loadConfig } from '../../agent/config/index.js';
import { generateKeyPair } from '../../agent/identity/keys.js';
import { writeKeystoreFile } from '../../agent/identity/keystore.js';
import { checkMeterBatch } from '../../agent/ledger/meter-batch.js';
import { openLedgerStore } from '../../agent/ledger/open.js';
import { decodeRecord } from '../../agent/ledger/records.js';
import { storeSource } from '../../agent/ledger/sources.js';
import { verifyChain } from '../../agent/ledger/verify.js';
import { silentLogger } from '../../agent/logger.js';
import { type RunningMgmc, startMgmc } from '../../agent/main.js';
import { socatAvailable } from '../../sim/pty.js';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite } from '../../sim/site-file.js';
import { describeIfTool } from './modbus-helpers.js';

const describeWithSocat = describeIfTool('socat', 'socat', socatAvailable());

async function until(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeWithSocat('a simulated site polled by the MGMC runtime', () => {
  let dir: string;
  let sim: SimulatedSite;
  let agent: RunningMgmc | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mgmc-site-'));
    sim = await startSimulatedSite(defaultSimSite(), { speed: 60 });
    const key = generateKeyPair();
    await writeKeystoreFile(join(dir, 'mgmc.json'), key.privateKey, 'site test', { kdf: 'pbkdf2' });
    // Read every half second so the test sees state changes quickly.
    const fieldSections = sim.agentConfig().replace(/^(\s+)profile: (.*)$/gm, '$1profile: $2\n$1intervalMs: 500');
    writeFileSync(
      join(dir, 'mgmc.yaml'),
      `role: mgmc
site: { name: field test }
identity: { keystore: ./mgmc.json, passphrase: env:SITE_PASS }
store: { path: ./mgmc.db, synchronous: normal }
ledger: { sealEverySeconds: 1, sealEveryRecords: 500 }
log: { level: error }
${fieldSections}`,
    );
  });

  afterAll(async () => {
    await agent?.stop();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores decoded readings and verified meter batches, and one dead device costs the others nothing', async () => {
    const config = await loadConfig(join(dir, 'mgmc.yaml'), { env: { SITE_PASS: 'site test' } });
    agent = await startMgmc(config, { clock: systemClock(), logger: silentLogger() });
    expect(agent.unresolved()).toEqual([]);
    const running = agent;

    await until('every device online', () => running.poller.status().every((d) => d.state === 'online'));
    await until('a signed meter batch', () => running.meters().some((m) => m.batches > 0));

    // The EV charger stops answering; everything else keeps being read.
    sim.serverFaults.get('lan')?.add({ kind: 'no-answer', unit: 3 });
    await until('the charger offline', () => running.poller.status().find((d) => d.name === 'ev')?.state === 'offline');
    const cyclesBefore = new Map(running.poller.status().map((d) => [d.name, d.cycles - d.failedCycles]));
    await new Promise((r) => setTimeout(r, 2000));
    for (const device of running.poller.status()) {
      if (device.name === 'ev') continue;
      expect(device.state, device.name).toBe('online');
      expect(device.cycles - device.failedCycles, device.name).toBeGreaterThan(cyclesBefore.get(device.name) ?? 0);
    }

    await running.stop();
    agent = undefined;
    // The stopped agent sealed everything: the chain verifies end to end.
    const reopened = openLedgerStore(join(dir, 'mgmc.db'), { readonly: true });
    try {
      const report = verifyChain(storeSource(reopened));
      expect(report.problem).toBeUndefined();
      expect(report.ok).toBe(true);
      expect(report.unsealed).toBe(0);
      const kinds = new Map<string, number>();
      const points = new Set<string>();
      let batches = 0;
      for (const row of reopened.records(1, reopened.lastSeq() + 1)) {
        const record = decodeRecord(row.body);
        kinds.set(record.type, (kinds.get(record.type) ?? 0) + 1);
        if (record.type === 'reading') points.add(`${record.body.device}/${record.body.point}`);
        if (record.type === 'meter-batch') {
          expect(checkMeterBatch(record.body)).toBeUndefined();
          batches++;
        }
      }
      expect(batches).toBeGreaterThan(0);
      for (const expected of ['pv/W', 'battery/W', 'grid-meter/W', 'grid-meter/PhVphA', 'pv-meter/W', 'ev/W']) {
        expect(points, expected).toContain(expected);
      }
      expect(kinds.get('event')).toBeGreaterThanOrEqual(1);
    } finally {
      reopened.close();
    }
  }, 60_000);
});
