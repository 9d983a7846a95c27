/**
 * Two DSO verifier processes (here: two runtimes in one test process, each with its own database connection and its
 * own broker session) share the MGMC blocks through an MQTT 5 shared subscription on a real mosquitto: both do part
 * of the work, every block is stored once, and the MGMC gets a receipt for every block. Meanwhile a rogue client
 * sends garbage, forged, oversized and unregistered messages: each is refused, counted, and nothing crashes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { loadConfig } from '../../agent/config/index.js';
import { openDsoDatabase } from '../../agent/dso/database.js';
import { type RunningDso, startDso } from '../../agent/dso/node.js';
import { toHex } from '../../agent/identity/bytes.js';
import { generateKeyPair, type KeyPair } from '../../agent/identity/keys.js';
import { writeKeystoreFile } from '../../agent/identity/keystore.js';
import { signerFromPrivateKey, signHeader, ZERO_HASH } from '../../agent/ledger/block.js';
import { leafHash, merkleRoot } from '../../agent/ledger/merkle.js';
import { encodeRecord } from '../../agent/ledger/records.js';
import { syntheticReadings } from '../../agent/ledger/synthetic.js';
import { EnvelopeSealer } from '../../agent/link/envelope.js';
import { MqttLink } from '../../agent/link/mqtt-client.js';
import { LinkTopics } from '../../agent/link/topics.js';
import { silentLogger } from '../../agent/logger.js';
import { type RunningMgmc, startMgmc } from '../../agent/main.js';
import { type MosquittoBroker, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

const CHAIN = 77;
const PASS = 'two verifiers';

async function until(what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// requireMosquitto() warns loudly when mosquitto is missing, and throws in CI where it must be installed.
const describeMosquitto = describe.skipIf(!requireMosquitto());

describeMosquitto('two DSO verifiers on one shared subscription', () => {
  let dir: string;
  let broker: MosquittoBroker;
  let dsoA: RunningDso | undefined;
  let dsoB: RunningDso | undefined;
  let mgmc: RunningMgmc | undefined;
  let rogueLink: MqttLink | undefined;
  let rogue: KeyPair;
  let mgmcKey: KeyPair;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mgmc-verifiers-'));
    broker = await startMosquitto();
    const dsoKey = generateKeyPair();
    mgmcKey = generateKeyPair();
    rogue = generateKeyPair();
    await writeKeystoreFile(join(dir, 'dso.json'), dsoKey.privateKey, PASS, { kdf: 'pbkdf2' });
    await writeKeystoreFile(join(dir, 'mgmc.json'), mgmcKey.privateKey, PASS, { kdf: 'pbkdf2' });
    writeFileSync(
      join(dir, 'genesis.json'),
      JSON.stringify({ chainId: CHAIN, name: 'verifiers', time: 0, validators: [dsoKey.address] }),
    );
    const dsoConfig = (anchor: boolean) => `role: dso
chainId: ${CHAIN}
site: { name: DSO ${anchor ? 'node' : 'verifier'} }
identity: { keystore: ./dso.json, passphrase: env:PASS }
store: { path: ./dso.db, synchronous: normal }
log: { level: error }
link: { url: "${broker.url}", maxBlockBytes: 131072 }
dso:
  genesis: ./genesis.json
  policy: { mode: allow-list, allow: ["${mgmcKey.address}"] }
  sealEverySeconds: 1
  sealEveryEntries: 16
  anchor: ${anchor}
`;
    writeFileSync(join(dir, 'dso-a.yaml'), dsoConfig(true));
    writeFileSync(join(dir, 'dso-b.yaml'), dsoConfig(false));
    writeFileSync(
      join(dir, 'mgmc.yaml'),
      `role: mgmc
chainId: ${CHAIN}
site: { name: verifier test site }
identity: { keystore: ./mgmc.json, passphrase: env:PASS }
store: { path: ./mgmc.db, synchronous: normal }
ledger: { sealEverySeconds: 1, sealEveryRecords: 40 }
log: { level: error }
link: { url: "${broker.url}", receiptTimeoutMs: 3000 }
dso: { genesis: ./genesis.json, feederBus: "7" }
`,
    );
  });

  afterAll(async () => {
    await rogueLink?.close();
    await mgmc?.stop();
    await dsoB?.stop();
    await dsoA?.stop();
    await broker?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shares the blocks, stores each once, receipts all, and survives bad input', async () => {
    const env = { PASS };
    const clock = systemClock();
    const logger = silentLogger();
    dsoA = await startDso(await loadConfig(join(dir, 'dso-a.yaml'), { env }), { clock, logger });
    dsoB = await startDso(await loadConfig(join(dir, 'dso-b.yaml'), { env }), { clock, logger });
    const a = dsoA;
    const b = dsoB;
    await until('both DSO runtimes online', () => a.link.online && b.link.online);
    mgmc = await startMgmc(await loadConfig(join(dir, 'mgmc.yaml'), { env }), { clock, logger });
    const sync = mgmc.sync;
    if (sync === undefined) throw new Error('the MGMC started without its DSO link');
    await until('the MGMC authorized', () => sync.stats().authorization.status === 'authorized');

    // A rogue on the same broker (no ACL here): garbage, a forged sender, an oversized and an unregistered block.
    const topics = new LinkTopics(CHAIN);
    const rogueSealer = new EnvelopeSealer({
      signer: signerFromPrivateKey(rogue.privateKey, rogue.address),
      chainId: CHAIN,
      session: 1,
      clock,
    });
    rogueLink = new MqttLink({ url: broker.url, sealer: rogueSealer, topics, clock, logger, announce: false });
    rogueLink.connect();
    const r = rogueLink;
    await until('the rogue online', () => r.online);
    const rogueBlocks = topics.node(rogue.address, 'blocks');
    await r.publish(rogueBlocks, new TextEncoder().encode('{"not": json'));
    // Sealed by the rogue but published on the MGMC's topic: the sender is not who the topic says.
    await r.publish(topics.node(mgmcKey.address, 'blocks'), rogueSealer.seal('block', { header: {} }).bytes);
    await r.publish(rogueBlocks, rogueSealer.seal('block', { pad: 'x'.repeat(300_000) }).bytes);
    // A well-formed block from an MGMC the DSO never authorized.
    const rogueSigner = signerFromPrivateKey(rogue.privateKey, rogue.address);
    const record = {
      body: { device: 'x', point: 'W', t: 1, unit: 'W', value: 1 },
      seq: 1,
      time: 1,
      type: 'reading' as const,
    };
    const signed = signHeader(
      {
        version: 1,
        chainId: CHAIN,
        height: 1,
        prev: ZERO_HASH,
        root: toHex(merkleRoot([leafHash(encodeRecord(record))])),
        time: 1,
        count: 1,
        producer: rogue.address,
      },
      rogueSigner,
    );
    await r.publish(
      rogueBlocks,
      rogueSealer.seal('block', { header: { ...signed.header }, records: [record], signature: signed.signature }).bytes,
    );
    await r.publish(
      topics.node(rogue.address, 'messages'),
      rogueSealer.seal('headers-request', { from: 'one', to: 2 }).bytes,
    );

    // The MGMC's ledger grows while the two verifiers share the incoming blocks.
    for (const batch of syntheticReadings(1200, Date.now(), 40)) {
      mgmc.ledger.append(batch);
      await new Promise((r2) => setTimeout(r2, 60));
    }
    mgmc.ledger.seal();
    const running = mgmc;
    await until(
      'every block anchored',
      () => {
        const s = sync.stats();
        return s.sealedHeight > 0 && s.anchoredHeight === running.ledger.sealedHeight;
      },
      90_000,
    ).catch((err: Error) => {
      const detail = {
        mgmc: sync.stats(),
        nodeA: a.stats(),
        verifierB: b.stats(),
        sealed: running.ledger.sealedHeight,
      };
      throw new Error(`${err.message}: ${JSON.stringify(detail)}`);
    });

    const height = mgmc.ledger.sealedHeight;
    expect(height).toBeGreaterThanOrEqual(5);
    const statsA = a.stats();
    const statsB = b.stats();
    expect(statsA.blocks.accepted, 'the node verified some blocks').toBeGreaterThan(0);
    expect(statsB.blocks.accepted, 'the second verifier verified some blocks').toBeGreaterThan(0);
    expect(statsA.blocks.accepted + statsB.blocks.accepted, 'each block accepted exactly once').toBe(height);

    const db = openDsoDatabase(join(dir, 'dso.db'), { readonly: true });
    try {
      const stored = db
        .prepare('SELECT height FROM accepted_mgmc_blocks WHERE mgmc = ? ORDER BY height')
        .all(mgmcKey.address) as { height: number }[];
      expect(stored.map((row) => row.height)).toEqual(Array.from({ length: height }, (_, i) => i + 1));
    } finally {
      db.close();
    }

    // Every bad message was refused for its reason and counted by whichever verifier got it; both still run.
    const dropped = (reason: string) => (statsA.dropped[reason] ?? 0) + (statsB.dropped[reason] ?? 0);
    const rejected = (code: string) =>
      ((statsA.blocks.rejected as Record<string, number>)[code] ?? 0) +
      ((statsB.blocks.rejected as Record<string, number>)[code] ?? 0);
    await until('the bad input counted', () => {
      const sa = a.stats();
      const sb = b.stats();
      const total = (s: typeof sa) =>
        Object.values(s.dropped).reduce((n, v) => n + v, 0) +
        Object.values(s.blocks.rejected as Record<string, number>).reduce((n, v) => n + v, 0);
      return total(sa) + total(sb) >= 5;
    });
    const finalA = a.stats();
    const finalB = b.stats();
    const all = { ...finalA.dropped };
    for (const [k, v] of Object.entries(finalB.dropped)) all[k] = (all[k] ?? 0) + v;
    expect(all['malformed-json'] ?? 0).toBe(1);
    expect(all['wrong-sender'] ?? 0).toBe(1);
    expect(all.oversized ?? 0).toBe(1);
    expect(all['bad-field'] ?? 0).toBe(1);
    expect(
      ((finalA.blocks.rejected as Record<string, number>).unregistered ?? 0) +
        ((finalB.blocks.rejected as Record<string, number>).unregistered ?? 0),
    ).toBe(1);
    expect(sync.stats().rejections.unregistered ?? 0, 'no verifier refused the authorized MGMC').toBe(0);
    expect(dropped('malformed-json') + rejected('unregistered')).toBe(2);
    expect(a.link.online && b.link.online).toBe(true);
  }, 180_000);
});
