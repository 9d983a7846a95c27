/**
 * `mgmc run` as systemd runs it (the built CLI as a child process), polling a simulated site over Modbus TCP and
 * linked to a real mosquitto: once /healthz answers and blocks are sealed, SIGTERM must end it within 5 s with exit
 * 0, every record sealed into a chain that verifies, the database closed (its WAL checkpointed away) and the signed,
 * retained 'offline' published in place of the last will. On the way, `mgmc status` reads the running agent.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { generateKeyPair } from '../../agent/identity/keys.js';
import { writeKeystoreFile } from '../../agent/identity/keystore.js';
import { signerFromPrivateKey } from '../../agent/ledger/block.js';
import { openLedgerStore } from '../../agent/ledger/open.js';
import { storeSource } from '../../agent/ledger/sources.js';
import { verifyChain } from '../../agent/ledger/verify.js';
import { EnvelopeSealer, openEnvelope } from '../../agent/link/envelope.js';
import { type LinkMessage, MqttLink } from '../../agent/link/mqtt-client.js';
import { LinkTopics } from '../../agent/link/topics.js';
import { silentLogger } from '../../agent/logger.js';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite } from '../../sim/site-file.js';
import { type MosquittoBroker, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { describeIfTool } from './modbus-helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'agent', 'cli.js');
const CHAIN = 4343;
const PASS = 'sigterm test passphrase';

// requireMosquitto() warns loudly when mosquitto is missing, and throws in CI where it must be installed.
const describeWithBroker = describeIfTool('mosquitto', 'mosquitto', requireMosquitto());

/** Resolves once `condition` holds; rejects naming `what` after `timeoutMs` (a deadline for a broken run). */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeWithBroker('mgmc run stopped by SIGTERM', () => {
  let dir: string;
  let broker: MosquittoBroker;
  let sim: SimulatedSite;
  let child: ChildProcess | undefined;
  let watcher: MqttLink | undefined;
  let address: string;
  let output = '';

  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} is missing: run npm run build`).toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'mgmc-sigterm-'));
    broker = await startMosquitto();
    // The TCP part of the default site is enough here: no pty, no socat.
    const site = defaultSimSite();
    sim = await startSimulatedSite(
      {
        ...site,
        servers: site.servers.filter((s) => s.kind === 'tcp'),
        devices: site.devices.filter((d) => d.server === 'lan'),
        signingMeters: [],
        faults: [],
      },
      { speed: 60 },
    );
    const key = generateKeyPair();
    address = key.address;
    await writeKeystoreFile(join(dir, 'mgmc.json'), key.privateKey, PASS, { kdf: 'pbkdf2' });
    // No DSO runs: the MGMC registers and keeps its blocks in the outbox, which is all this test needs of the link.
    writeFileSync(
      join(dir, 'genesis.json'),
      JSON.stringify({ chainId: CHAIN, name: 'test feeder', time: 0, validators: [generateKeyPair().address] }),
    );
    const fieldSections = sim.agentConfig().replace(/^(\s+)profile: (.*)$/gm, '$1profile: $2\n$1intervalMs: 250');
    writeFileSync(
      join(dir, 'mgmc.yaml'),
      `role: mgmc
chainId: ${CHAIN}
site: { name: sigterm test }
identity: { keystore: ./mgmc.json, passphrase: env:MGMC_KEY_PASSPHRASE }
store: { path: ./mgmc.db, synchronous: normal }
ledger: { sealEverySeconds: 1, sealEveryRecords: 50 }
log: { level: info }
metrics: { port: 0 }
link: { url: "${broker.url}" }
dso: { genesis: ./genesis.json, feederBus: "18" }
${fieldSections}`,
    );
  }, 60_000);

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await watcher?.close();
    await sim?.close();
    await broker?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0 within 5 s with everything sealed, the database closed and offline published', async () => {
    // Watch the MGMC's availability from before it starts, as the DSO would.
    const topics = new LinkTopics(CHAIN);
    const watcherKey = generateKeyPair();
    watcher = new MqttLink({
      url: broker.url,
      sealer: new EnvelopeSealer({
        signer: signerFromPrivateKey(watcherKey.privateKey, watcherKey.address),
        chainId: CHAIN,
        session: 1,
        clock: systemClock(),
      }),
      topics,
      clock: systemClock(),
      logger: silentLogger(),
      announce: false,
      clientId: 'sigterm-watcher',
      reconnectPeriodMs: 100,
    });
    const availability: { state: unknown; reason: unknown; retain: boolean }[] = [];
    watcher.connect();
    await watcher.subscribe(topics.node(address, 'availability'), (message: LinkMessage) => {
      const opened = openEnvelope(message.payload, { chainId: CHAIN, expectedFrom: address });
      if (!opened.ok) throw new Error(`availability did not verify: ${opened.detail}`);
      availability.push({
        state: opened.envelope.body.state,
        reason: opened.envelope.body.reason,
        retain: message.retain,
      });
    });

    const agent = spawn(process.execPath, [CLI, 'run', '--config', join(dir, 'mgmc.yaml')], {
      cwd: dir,
      env: { ...process.env, MGMC_KEY_PASSPHRASE: PASS, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = agent;
    agent.stdout?.setEncoding('utf8').on('data', (s: string) => {
      output += s;
    });
    agent.stderr?.setEncoding('utf8').on('data', (s: string) => {
      output += s;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      agent.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const tail = () => `--- agent output ---\n${output.split('\n').slice(-30).join('\n')}`;

    // metrics.port 0: the port it got is in its log.
    let url = '';
    await until('the health endpoints', () => {
      url = /"msg":"health endpoints listening on (http:\/\/127\.0\.0\.1:\d+) /.exec(output)?.[1] ?? '';
      if (agent.exitCode !== null) throw new Error(`the agent exited ${agent.exitCode}\n${tail()}`);
      return url !== '';
    });
    const get = async (path: string) => {
      const response = await fetch(`${url}${path}`);
      return { status: response.status, text: await response.text() };
    };
    let metrics = '';
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
    await until(
      'healthz 200, the broker connected and three sealed blocks',
      async () => {
        if ((await get('/healthz')).status !== 200) return false;
        metrics = (await get('/metrics')).text;
        return gauge('mgmc_broker_connected') === 1 && gauge('mgmc_ledger_sealed_height') >= 3;
      },
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${metrics}\n${tail()}`);
    });
    expect(metrics).toMatch(/^mgmc_poll_read_duration_seconds_count\{device="pv"\} [1-9]\d*$/m);
    expect(gauge('mgmc_outbox_depth')).toBeGreaterThan(0);
    await until('online on the broker', () => availability.some((a) => a.state === 'online'));

    // The technician's view of the same agent, through the CLI.
    const status = spawnSync(process.execPath, [CLI, 'status', '--url', url], { encoding: 'utf8' });
    expect(status.status, `${status.stdout}\n${status.stderr}`).toBe(0);
    expect(status.stdout).toContain('MGMC "sigterm test"');
    expect(status.stdout).toMatch(/^pv +lan +1 +online +\d+ (ms|s) ago/m);
    expect(status.stdout).toContain(`broker: ${broker.url} connected`);

    const sent = Date.now();
    agent.kill('SIGTERM');
    const result = await exited;
    const tookMs = Date.now() - sent;
    expect(result, tail()).toEqual({ code: 0, signal: null });
    expect(tookMs, tail()).toBeLessThan(5000);
    expect(output).toMatch(/"module":"run".*"msg":"stopped cleanly"/);
    // Nothing went wrong on the way out (pino level 50 = error, 60 = fatal).
    expect(output, tail()).not.toMatch(/"level":[56]0/);

    // The signed, retained 'offline' of a clean close, not the broker's last will.
    await until('offline on the broker', () => availability.some((a) => a.state === 'offline'), 5000);
    expect(availability.at(-1)).toMatchObject({ state: 'offline', reason: 'close' });

    // Closed cleanly: SQLite checkpointed the WAL into the database and removed it.
    const db = join(dir, 'mgmc.db');
    const wal = `${db}-wal`;
    expect(!existsSync(wal) || statSync(wal).size === 0, 'the WAL is left over: the database was not closed').toBe(
      true,
    );
    const store = openLedgerStore(db, { readonly: true });
    try {
      const report = verifyChain(storeSource(store));
      expect(report.problem).toBeUndefined();
      expect(report.ok).toBe(true);
      expect(report.unsealed).toBe(0);
      expect(report.blocks).toBeGreaterThanOrEqual(3);
      // Every record the agent wrote is in a sealed block.
      const last = store.lastBlock();
      expect(last).toBeDefined();
      expect((last?.firstSeq ?? 0) + (last?.count ?? 0) - 1).toBe(store.lastSeq());
    } finally {
      store.close();
    }
  }, 60_000);
});
