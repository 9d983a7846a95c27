/**
 * The DSO link's "done when", with the real parts: mosquitto with a test CA, client certificates, per-node passwords
 * and the ACL of docs/deploy-dso.md; `mgmc run` as the DSO and as the MGMC (child processes of the built CLI); the
 * MGMC polling a simulated site (Modbus TCP, RTU on a pty, a signing meter on a pty).
 *
 * The MGMC registers, the operator approves it with `mgmc dso approve`, blocks stream to the DSO and receipts come
 * back. Then the broker is stopped for a while and restarted, and the MGMC is SIGKILLed mid-stream and restarted.
 * Finally the site goes quiet, and the DSO must hold every MGMC block exactly once, in order, with the MGMC's
 * hashes and records that hash to the signed roots, and the MGMC must have a receipt for every block.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DsoChainStore } from '../../agent/dso/chain-store.js';
import { openDsoDatabase } from '../../agent/dso/database.js';
import { splitRecordLines } from '../../agent/dso/verifier.js';
import { fromHex, toHex } from '../../agent/identity/bytes.js';
import { generateKeyPair } from '../../agent/identity/keys.js';
import { writeKeystoreFile } from '../../agent/identity/keystore.js';
import { AnchorStore } from '../../agent/ledger/anchor-store.js';
import { decodeHeader } from '../../agent/ledger/block.js';
import { leafHash, merkleRoot } from '../../agent/ledger/merkle.js';
import { openLedgerStore } from '../../agent/ledger/open.js';
import { socatAvailable } from '../../sim/pty.js';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite } from '../../sim/site-file.js';
import { type MosquittoBroker, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { describeIfTool } from './modbus-helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'agent', 'cli.js');
const CHAIN = 4242;
const PASS = 'dso link test';

// requireMosquitto() warns loudly when mosquitto is missing, and throws in CI where it must be installed.
const describeE2e = describeIfTool('socat', 'socat', socatAvailable()).skipIf(!requireMosquitto());

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Agent {
  child: ChildProcess | undefined;
  output = '';
  exits: (number | string | null)[] = [];

  constructor(
    private readonly name: string,
    private readonly config: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  start(): void {
    const child = spawn(process.execPath, [CLI, 'run', '--config', this.config], {
      cwd: ROOT,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    child.on('exit', (code, signal) => this.exits.push(code ?? signal));
    this.child = child;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    this.child = undefined;
  }

  /** The last lines of its log, for a failing assertion. */
  tail(): string {
    return `--- ${this.name} log (tail) ---\n${this.output.split('\n').slice(-40).join('\n')}`;
  }
}

describeE2e('mgmc run as DSO and as MGMC against mosquitto', () => {
  let dir: string;
  let broker: MosquittoBroker;
  let sim: SimulatedSite | undefined;
  let dsoAgent: Agent;
  let mgmcAgent: Agent;
  let mgmcAddress: string;
  const env = (): NodeJS.ProcessEnv => ({
    ...process.env,
    MGMC_KEY_PASSPHRASE: PASS,
    DSO_LINK_PASSWORD: 'dso-secret',
    MGMC_LINK_PASSWORD: 'mgmc-secret',
  });

  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} is missing: run npm run build`).toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'mgmc-dso-link-'));
    const dsoKey = generateKeyPair();
    const mgmcKey = generateKeyPair();
    mgmcAddress = mgmcKey.address;
    await writeKeystoreFile(join(dir, 'dso.json'), dsoKey.privateKey, PASS, { kdf: 'pbkdf2' });
    await writeKeystoreFile(join(dir, 'mgmc.json'), mgmcKey.privateKey, PASS, { kdf: 'pbkdf2' });
    writeFileSync(
      join(dir, 'genesis.json'),
      JSON.stringify({ chainId: CHAIN, name: 'test feeder', time: 0, validators: [dsoKey.address] }),
    );

    const mgmcUser = mgmcKey.address.toLowerCase();
    // The ACL of docs/deploy-dso.md, for this chain.
    const acl = [
      `pattern write mgmc/v1/${CHAIN}/node/%u/#`,
      `pattern read mgmc/v1/${CHAIN}/dso/receipts/%u`,
      `pattern read mgmc/v1/${CHAIN}/dso/messages/%u`,
      `pattern read mgmc/v1/${CHAIN}/dso/headers`,
      `pattern read mgmc/v1/${CHAIN}/dso/authorized`,
      'user dso',
      `topic read mgmc/v1/${CHAIN}/node/#`,
      `topic write mgmc/v1/${CHAIN}/dso/#`,
      '',
    ].join('\n');
    broker = await startMosquitto({
      users: { dso: 'dso-secret', [mgmcUser]: 'mgmc-secret' },
      acl,
      tls: { requireClientCert: true },
    });
    const pki = broker.pki;
    if (pki === undefined) throw new Error('the test broker has no TLS material');
    const tls = `tls: { ca: ${pki.ca}, cert: ${pki.clientCert}, key: ${pki.clientKey} }`;

    writeFileSync(
      join(dir, 'dso.yaml'),
      `role: dso
chainId: ${CHAIN}
site: { name: test DSO }
identity: { keystore: ./dso.json, passphrase: env:MGMC_KEY_PASSPHRASE }
store: { path: ./dso.db, synchronous: normal }
log: { level: info }
link:
  url: ${broker.url}
  ${tls}
  username: dso
  password: env:DSO_LINK_PASSWORD
dso:
  genesis: ./genesis.json
  policy: { mode: manual }
  sealEverySeconds: 1
  sealEveryEntries: 32
`,
    );

    sim = await startSimulatedSite(defaultSimSite(), { speed: 60 });
    const fieldSections = sim.agentConfig().replace(/^(\s+)profile: (.*)$/gm, '$1profile: $2\n$1intervalMs: 500');
    writeFileSync(
      join(dir, 'mgmc.yaml'),
      `role: mgmc
chainId: ${CHAIN}
site: { name: field test }
identity: { keystore: ./mgmc.json, passphrase: env:MGMC_KEY_PASSPHRASE }
store: { path: ./mgmc.db, synchronous: normal }
ledger: { sealEverySeconds: 1, sealEveryRecords: 400 }
log: { level: info }
link:
  url: ${broker.url}
  ${tls}
  username: "${mgmcUser}"
  password: env:MGMC_LINK_PASSWORD
  receiptTimeoutMs: 3000
dso:
  genesis: ./genesis.json
  feederBus: "18"
${fieldSections}`,
    );
    dsoAgent = new Agent('dso', join(dir, 'dso.yaml'), env());
    mgmcAgent = new Agent('mgmc', join(dir, 'mgmc.yaml'), env());
  }, 120_000);

  afterAll(async () => {
    await mgmcAgent?.stop();
    await dsoAgent?.stop();
    await sim?.close();
    await broker?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cli = (args: readonly string[]) => {
    const run = spawnSync(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: env(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: run.status, stdout: run.stdout, stderr: run.stderr };
  };

  /** Height of the MGMC's last sealed block and of its last anchored one, read beside the running agent. */
  const mgmcHeights = (): { sealed: number; anchored: number } => {
    const store = openLedgerStore(join(dir, 'mgmc.db'), { readonly: true });
    try {
      return { sealed: store.lastBlock()?.height ?? 0, anchored: new AnchorStore(store.db).anchoredHeight() };
    } finally {
      store.close();
    }
  };
  /** Highest height h such that the DSO accepted the MGMC's blocks 1..h. */
  const dsoAccepted = (): number => {
    const store = new DsoChainStore(openDsoDatabase(join(dir, 'dso.db'), { readonly: true }));
    try {
      let h = 0;
      while (store.acceptedBlock(mgmcAddress, h + 1) !== undefined) h++;
      return h;
    } finally {
      store.close();
    }
  };
  const safe = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch {
      return fallback; // a database not created yet by the child process
    }
  };

  it('registers, streams, survives a broker outage and an agent kill, and loses or duplicates nothing', async () => {
    dsoAgent.start();
    mgmcAgent.start();
    const logs = () => `${dsoAgent.tail()}\n${mgmcAgent.tail()}\n--- mosquitto ---\n${broker.log().slice(-2000)}`;

    // Stage 1: the registration waits for the operator (manual policy), who approves it.
    await until(
      'the registration to be pending at the DSO',
      () => {
        const list = cli(['dso', 'list', '--config', join(dir, 'dso.yaml'), '--json']);
        return list.code === 0 && list.stdout.toLowerCase().includes(mgmcAddress.toLowerCase());
      },
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs()}`);
    });
    expect(safe(dsoAccepted, 0), 'no block is accepted before the MGMC is authorized').toBe(0);
    const approve = cli(['dso', 'approve', mgmcAddress, '--config', join(dir, 'dso.yaml')]);
    expect(approve.code, approve.stderr).toBe(0);

    await until('blocks accepted and anchored', () => safe(() => mgmcHeights().anchored, 0) >= 3).catch(
      (err: Error) => {
        throw new Error(`${err.message}\n${logs()}`);
      },
    );

    // Stage 2: the broker goes away while the MGMC keeps sealing, then comes back.
    await broker.stop();
    const sealedBeforeOutage = mgmcHeights().sealed;
    await until('blocks sealed while the broker is down', () => mgmcHeights().sealed >= sealedBeforeOutage + 3);
    await broker.start();
    const sealedAfterOutage = mgmcHeights().sealed;
    await until(
      'the backlog anchored after the outage',
      () => mgmcHeights().anchored >= sealedAfterOutage,
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs()}`);
    });

    // Stage 3: the MGMC dies without warning mid-stream and starts again on the same database.
    await mgmcAgent.stop('SIGKILL');
    mgmcAgent.start();
    const sealedAfterRestart = mgmcHeights().sealed;
    await until('new blocks after the restart', () => mgmcHeights().sealed >= sealedAfterRestart + 2);

    // The site goes quiet (devices offline, recorded once), so the chain stops growing and both sides can converge.
    await sim?.close();
    sim = undefined;
    let last = -1;
    let converged = 0;
    await until(
      'the MGMC to stop sealing and everything to be anchored',
      async () => {
        const { sealed, anchored } = mgmcHeights();
        const stable = sealed === last;
        last = sealed;
        if (!(stable && anchored === sealed && dsoAccepted() === sealed)) {
          await sleep(1500);
          return false;
        }
        converged = sealed;
        return true;
      },
      120_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message} (heights ${JSON.stringify(mgmcHeights())}, DSO ${dsoAccepted()})\n${logs()}`);
    });

    // Every block exactly once, in order, the same block the MGMC sealed, with records that hash to its root.
    let snapshotHeight = 0;
    const mgmcStore = openLedgerStore(join(dir, 'mgmc.db'), { readonly: true });
    const dsoDb = openDsoDatabase(join(dir, 'dso.db'), { readonly: true });
    const dsoStore = new DsoChainStore(dsoDb);
    try {
      const height = converged;
      snapshotHeight = height;
      expect(height).toBeGreaterThanOrEqual(8);
      // The agent still runs (a device may still change state and add a block): compare up to this snapshot.
      const rows = dsoDb
        .prepare('SELECT COUNT(*) AS n FROM accepted_mgmc_blocks WHERE mgmc = ? AND height <= ?')
        .get(mgmcAddress, height) as { n: number };
      expect(rows.n, 'the DSO holds each block once').toBe(height);
      for (let h = 1; h <= height; h++) {
        const ours = mgmcStore.blockAt(h);
        const theirs = dsoStore.acceptedBlock(mgmcAddress, h);
        expect(theirs, `DSO has block ${h}`).toBeDefined();
        expect(toHex(theirs?.hash ?? new Uint8Array()), `block ${h} is the one the MGMC sealed`).toBe(
          toHex(ours?.hash ?? new Uint8Array()),
        );
        const header = decodeHeader(theirs?.header ?? new Uint8Array(), `DSO copy of block ${h}`);
        const lines = splitRecordLines(theirs?.records ?? new Uint8Array());
        expect(lines.length).toBe(header.count);
        expect(toHex(merkleRoot(lines.map((line) => leafHash(line))))).toBe(header.root);
        expect(dsoStore.anchorOf(mgmcAddress, h), `block ${h} is in a DSO block`).toBeDefined();
      }
      const anchors = new AnchorStore(mgmcStore.db);
      expect(anchors.anchoredHeight(), 'the MGMC holds a receipt for every block').toBeGreaterThanOrEqual(height);
      expect(fromHex(toHex(mgmcStore.blockAt(height)?.hash ?? new Uint8Array())).length).toBe(32);
    } finally {
      mgmcStore.close();
      dsoStore.close();
    }

    // The MGMC's own check agrees: every block verifies and every block is anchored.
    const verify = cli(['ledger', 'verify', '--db', join(dir, 'mgmc.db'), '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const report = JSON.parse(verify.stdout) as { ok: boolean; anchors?: { anchoredHeight: number } };
    expect(report.ok).toBe(true);
    expect(report.anchors?.anchoredHeight ?? 0).toBeGreaterThanOrEqual(snapshotHeight);
    expect(mgmcAgent.exits).toContain('SIGKILL');
  }, 420_000);
});
