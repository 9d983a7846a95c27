/**
 * The optimizer inside the running MGMC against the simulated site: the first plan is made at start-up, signed into
 * the ledger as a schedule record, and dispatched over Modbus TCP; the simulated battery follows the setpoint; on
 * stop the devices are handed back. The battery's reserve is set above its present charge, so the plan must charge
 * at full power in the first interval whatever the time of day the test runs at.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { loadConfig } from '../../agent/config/index.js';
import { generateKeyPair } from '../../agent/identity/keys.js';
import { writeKeystoreFile } from '../../agent/identity/keystore.js';
import { openLedgerStore } from '../../agent/ledger/open.js';
import { decodeRecord } from '../../agent/ledger/records.js';
import { storeSource } from '../../agent/ledger/sources.js';
import { verifyChain } from '../../agent/ledger/verify.js';
import { createLogger } from '../../agent/logger.js';
import { type RunningMgmc, startMgmc } from '../../agent/main.js';
import { createInlineSolver, type Solver } from '../../agent/optimizer/solver.js';
import { socatAvailable } from '../../sim/pty.js';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite } from '../../sim/site-file.js';
import { describeIfTool } from './modbus-helpers.js';

async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeIfTool(
  'socat',
  'socat',
  socatAvailable(),
)('the optimizer in the running MGMC', () => {
  let dir: string;
  let sim: SimulatedSite;
  let agent: RunningMgmc | undefined;
  let solver: Solver | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mgmc-optimizer-site-'));
    sim = await startSimulatedSite(defaultSimSite(), { speed: 1 });
    const key = generateKeyPair();
    await writeKeystoreFile(join(dir, 'mgmc.json'), key.privateKey, 'site test', { kdf: 'pbkdf2' });
    const fieldSections = sim.agentConfig().replace(/^(\s+)profile: (.*)$/gm, '$1profile: $2\n$1intervalMs: 500');
    writeFileSync(
      join(dir, 'mgmc.yaml'),
      `role: mgmc
site: { name: optimizer test }
identity: { keystore: ./mgmc.json, passphrase: env:SITE_PASS }
store: { path: ./mgmc.db, synchronous: normal }
ledger: { sealEverySeconds: 1, sealEveryRecords: 500 }
log: { level: error }
${fieldSections}
tariffs:
  - { name: flat, import: { price: 0.30 }, export: { price: 0.08 } }
buildings:
  - name: office
    tariff: flat
    importLimitW: 43000
    exportLimitW: 30000
    load: { meter: grid-meter }
    pv: [{ device: pv, peakWp: 9900, acRatingW: 9000 }]
    batteries:
      - { device: battery, capacityWh: 10000, maxChargeW: 5000, maxDischargeW: 5000, socMinPct: 10, socMaxPct: 95, reservePct: 90 }
    evChargers: [{ device: ev, maxPowerW: 11000 }]
optimizer: { timeZone: Europe/Berlin, revertSeconds: 30 }
`,
    );
  });

  afterAll(async () => {
    await agent?.stop();
    await solver?.close();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('plans at start, records the schedule, dispatches the battery and hands it back on stop', async () => {
    const config = await loadConfig(join(dir, 'mgmc.yaml'), { env: { SITE_PASS: 'site test' } });
    solver = await createInlineSolver();
    agent = await startMgmc(config, {
      clock: systemClock(),
      logger: createLogger({ level: 'error', destination: process.stderr }),
      solver,
    });
    const running = agent;
    expect(running.optimizer).toBeDefined();
    await until('the first plan', () => running.optimizer?.service.current() !== undefined);
    const schedule = running.optimizer!.service.current()!;
    expect(schedule.status).toBe('optimal');
    const battery = schedule.buildings[0]!.ders.find((d) => d.name === 'battery')!;
    // Below its 90 % reserve: full charging power from the first interval on.
    expect(battery.powerW[0]).toBeCloseTo(-5000, 3);

    const simBattery = () => {
      const s = sim.site.snapshot().devices.battery;
      return s?.kind === 'battery' ? s : undefined;
    };
    await until('the simulated battery charging at 5 kW', () => Math.abs((simBattery()?.powerW ?? 0) + 5000) < 1);

    await running.stop();
    agent = undefined;
    // Handed back: the SunSpec 124 mode is cleared, so the battery no longer follows the agent.
    await until('the battery idle after stop', () => Math.abs(simBattery()?.powerW ?? 1) < 1, 10_000);

    const reopened = openLedgerStore(join(dir, 'mgmc.db'), { readonly: true });
    try {
      expect(verifyChain(storeSource(reopened)).ok).toBe(true);
      const schedules = [];
      for (const row of reopened.records(1, reopened.lastSeq() + 1)) {
        const record = decodeRecord(row.body);
        if (record.type === 'schedule') schedules.push(record.body);
      }
      expect(schedules.length).toBeGreaterThanOrEqual(1);
      expect(schedules[0]).toMatchObject({ building: 'office', stepMs: 900_000, steps: 96, status: 'optimal' });
      const ders = schedules[0]!.ders as Record<string, number[]>;
      expect(ders.battery?.[0]).toBe(-5000);
    } finally {
      reopened.close();
    }
  }, 90_000);
});
