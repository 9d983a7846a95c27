/**
 * The MGMC side of the DSO link end to end through the embedded broker (aedes, real sockets): registration,
 * authorization, blocks, receipts, anchoring, a restart with blocks sealed while the link was down. The DSO here is a
 * minimal responder built from the real chain pieces (DsoAnchor on a DsoChainStore, buildReceipts): it checks the
 * anonym proof and each header's signature, not the records (that is the DSO verifier's job, tested elsewhere).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { DsoAnchor, type SealedDsoBlock } from '../../agent/dso/anchor.js';
import { decodeDsoHeader, unpackSeals } from '../../agent/dso/chain.js';
import { DSO_CHAIN_MIGRATIONS, DsoChainStore } from '../../agent/dso/chain-store.js';
import type { DsoGenesis } from '../../agent/dso/genesis.js';
import { utf8 } from '../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../agent/ledger/block.js';
import { canonicalize } from '../../agent/ledger/canonical.js';
import { Ledger } from '../../agent/ledger/ledger.js';
import { ledgerSource } from '../../agent/ledger/pruning.js';
import { verifyChain } from '../../agent/ledger/verify.js';
import { verifyAnonymSig } from '../../agent/link/anonym.js';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../agent/link/embedded-broker.js';
import { type Envelope, EnvelopeSealer, openEnvelope } from '../../agent/link/envelope.js';
import { type LinkMessage, MqttLink } from '../../agent/link/mqtt-client.js';
import { createMgmcSync, type MgmcSync, nextLinkSession } from '../../agent/link/sync.js';
import { LinkTopics, parseTopic } from '../../agent/link/topics.js';
import { silentLogger } from '../../agent/logger.js';
import { openAgentDatabase } from '../../agent/store/agent-db.js';
import { openDatabase } from '../../agent/store/database.js';
import { LedgerStore } from '../../agent/store/ledger-store.js';

/** Test keys: they sign nothing outside this file. */
const MGMC = keyPairFromPrivateKey(fromHexString(`0x${'c3'.repeat(32)}`));
const VALIDATOR = keyPairFromPrivateKey(fromHexString(`0x${'d7'.repeat(32)}`));
const METER = keyPairFromPrivateKey(fromHexString(`0x${'e9'.repeat(32)}`));
const CHAIN = 9;
const topics = new LinkTopics(CHAIN);
const clock = systemClock();
const genesis: DsoGenesis = {
  chainId: 90,
  name: 'test feeder',
  time: Date.UTC(2026, 0, 1),
  validators: [VALIDATOR.address],
};

function fromHexString(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.slice(2), 'hex'));
}

const signer = (key: KeyPair) => signerFromPrivateKey(key.privateKey, key.address);

/** Waits for a condition (a deadline for a broken test, not a timing assertion). */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A DSO node reduced to what this test needs: it authorizes every registration with a valid anonym proof, anchors
 * every block whose header the MGMC signed, and answers header requests.
 */
class MiniDso {
  readonly link: MqttLink;
  readonly store: DsoChainStore;
  readonly anchor: DsoAnchor;
  readonly sealer: EnvelopeSealer;
  /** Envelope id of each block (by MGMC address/height), for the receipt's ref. */
  private readonly refs = new Map<string, string>();
  readonly blocksReceived: number[] = [];
  readonly problems: string[] = [];

  constructor(url: string, dbPath: string) {
    this.sealer = new EnvelopeSealer({ signer: signer(VALIDATOR), chainId: CHAIN, session: 1, clock });
    this.link = new MqttLink({
      url,
      sealer: this.sealer,
      topics,
      clock,
      logger: silentLogger(),
      protocolVersion: 4,
      announce: false,
      reconnectPeriodMs: 100,
      clientId: 'dso-test',
    });
    this.store = new DsoChainStore(openDatabase(dbPath, DSO_CHAIN_MIGRATIONS));
    this.anchor = DsoAnchor.open({
      store: this.store,
      genesis,
      clock,
      signer: signer(VALIDATOR),
      sealEveryEntries: 3,
      sealEverySeconds: 0.2,
      onSealed: (block) => this.publishSealed(block),
    });
  }

  async start(): Promise<void> {
    const handler = (m: LinkMessage) => this.onMessage(m);
    const subscribed = Promise.all(
      (['registration', 'blocks', 'messages'] as const).map((c) => this.link.subscribe(topics.nodeFilter(c), handler)),
    );
    this.link.connect();
    await subscribed;
    this.anchor.start();
  }

  async stop(): Promise<void> {
    this.anchor.stop();
    await this.link.close();
    this.store.close();
  }

  private send(topic: string, kind: string, body: Record<string, unknown>, retain = false): void {
    const sealed = this.sealer.seal(kind, body as never);
    this.link.publish(topic, sealed.bytes, { retain }).catch((err: Error) => this.problems.push(err.message));
  }

  private onMessage(message: LinkMessage): void {
    const topic = parseTopic(message.topic);
    if (topic.kind !== 'node') return;
    const opened = openEnvelope(message.payload, { chainId: CHAIN, expectedFrom: topic.address, maxBytes: 4 << 20 });
    if (!opened.ok) {
      this.problems.push(`${opened.reason}: ${opened.detail}`);
      return;
    }
    const envelope = opened.envelope;
    if (envelope.kind === 'registration') this.onRegistration(envelope);
    else if (envelope.kind === 'block') this.onBlock(envelope);
    else if (envelope.kind === 'headers-request') this.onHeadersRequest(envelope);
  }

  private onRegistration(envelope: Envelope): void {
    const body = envelope.body as { anonym: string; anonymSig: string; mgmc: string };
    if (!verifyAnonymSig(body, CHAIN) || body.mgmc !== envelope.from) {
      this.problems.push('bad registration');
      return;
    }
    this.send(topics.dsoMessages(envelope.from), 'authorization', {
      mgmc: envelope.from,
      ref: envelope.id,
      status: 'authorized',
      anonym: body.anonym,
    });
    this.send(topics.dsoAuthorized(), 'authorized-set', { anonyms: [body.anonym], serial: 1 }, true);
  }

  private onBlock(envelope: Envelope): void {
    const body = envelope.body as {
      header: { height: number; producer: string };
      records: unknown[];
      signature: string;
    };
    this.blocksReceived.push(body.header.height);
    this.refs.set(`${body.header.producer.toLowerCase()}/${body.header.height}`, envelope.id);
    const result = this.anchor.acceptMgmcBlock({
      header: body.header,
      signature: body.signature,
      records: utf8(body.records.map((r) => canonicalize(r as never)).join('\n')),
    });
    if (result.status === 'duplicate') {
      // A resent block: answer with its receipt again when it is anchored (docs/protocol.md section 11, step 4).
      const receipt = this.anchor.receipt(result.mgmc, result.height);
      if (receipt) this.send(topics.dsoReceipts(result.mgmc), 'receipt', { ref: envelope.id, receipt: { ...receipt } });
    } else if (result.status === 'rejected' || result.status === 'conflict') {
      this.problems.push(`block ${body.header.height}: ${result.detail}`);
    }
  }

  private onHeadersRequest(envelope: Envelope): void {
    const { from, to } = envelope.body as { from: number; to: number };
    const blocks = [];
    for (let h = from; h <= Math.min(to, from + 255); h++) {
      const row = this.store.blockAt(h);
      if (row === undefined) break;
      blocks.push({ header: { ...decodeDsoHeader(row.header) }, seals: unpackSeals(row.seals) });
    }
    this.send(topics.dsoMessages(envelope.from), 'dso-headers', { blocks });
  }

  private publishSealed(block: SealedDsoBlock): void {
    this.send(topics.dsoHeaders(), 'dso-header', { header: { ...block.header }, seals: [...block.seals] });
    for (const receipt of block.receipts) {
      const ref = this.refs.get(`${receipt.mgmc.toLowerCase()}/${receipt.mgmcHeight}`);
      this.send(topics.dsoReceipts(receipt.mgmc), 'receipt', { ...(ref ? { ref } : {}), receipt: { ...receipt } });
    }
  }
}

/** One run of the MGMC agent's DSO link on a database that survives restarts. */
class MgmcRun {
  readonly store: LedgerStore;
  readonly ledger: Ledger;
  readonly link: MqttLink;
  readonly sync: MgmcSync;

  constructor(url: string, dbPath: string) {
    this.store = new LedgerStore(openAgentDatabase(dbPath));
    this.ledger = Ledger.open({
      store: this.store,
      signer: signer(MGMC),
      clock,
      chainId: CHAIN,
      sealEveryRecords: 4,
      sealEverySeconds: 3600,
    });
    const sealer = new EnvelopeSealer({
      signer: signer(MGMC),
      chainId: CHAIN,
      session: nextLinkSession(this.store),
      clock,
    });
    this.link = new MqttLink({
      url,
      sealer,
      topics,
      clock,
      logger: silentLogger(),
      protocolVersion: 4,
      reconnectPeriodMs: 100,
    });
    this.sync = createMgmcSync({
      store: this.store,
      ledger: this.ledger,
      link: this.link,
      sealer,
      topics,
      genesis,
      registration: { meters: [METER.address], bus: 'bus-12', trade: { buy: true, sell: true }, anonymEpoch: 0 },
      privateKey: MGMC.privateKey,
      clock,
      logger: silentLogger(),
    });
  }

  start(): void {
    this.sync.start();
    this.link.connect();
  }

  readings(n: number, from: number): void {
    this.ledger.append(
      Array.from({ length: n }, (_, i) => ({
        type: 'reading' as const,
        body: { device: 'pv1', point: 'W', t: Date.UTC(2026, 0, 1) + (from + i) * 1000, value: from + i, unit: 'W' },
      })),
    );
  }

  async stop(): Promise<void> {
    this.ledger.stop();
    this.sync.stop();
    await this.link.close();
    this.store.close();
  }
}

let dir: string;
let broker: EmbeddedBroker;
const running: { stop(): Promise<void> }[] = [];
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mgmc-link-sync-'));
  broker = await startEmbeddedBroker();
});
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => {});
  await broker.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('DSO link sync through the embedded broker', () => {
  it('registers, ships every block once and in order, and anchors each with a checked receipt', async () => {
    const dso = new MiniDso(broker.url, join(dir, 'dso.db'));
    await dso.start();
    running.push(dso);
    let mgmc = new MgmcRun(broker.url, join(dir, 'agent.db'));
    running.push(mgmc);
    mgmc.readings(10, 0); // sealed before the link starts: shipped on start
    mgmc.start();
    await waitFor(() => mgmc.sync.stats().authorization.status === 'authorized', 'authorization');
    mgmc.readings(12, 10);
    mgmc.ledger.seal();
    const anchoredAll = (run: MgmcRun) => () => {
      const stats = run.sync.stats();
      return (
        stats.sealedHeight > 0 &&
        stats.anchoredHeight === stats.sealedHeight &&
        stats.outbox.pending + stats.outbox.sent === 0
      );
    };
    await waitFor(anchoredAll(mgmc), 'every block anchored and acknowledged');
    const first = mgmc.sync.stats();
    expect(first).toMatchObject({ shippedHeight: first.sealedHeight, bad: {}, rejections: {} });
    expect(first.authorizedSet).toEqual({ serial: 1, anonyms: 1 });
    expect(dso.problems).toEqual([]);

    // A restart whose blocks were sealed while the link was down (the agent died before shipping them).
    await running.pop()?.stop();
    const offline = new LedgerStore(openAgentDatabase(join(dir, 'agent.db')));
    const ledger = Ledger.open({
      store: offline,
      signer: signer(MGMC),
      clock,
      chainId: CHAIN,
      sealEveryRecords: 4,
      sealEverySeconds: 3600,
    });
    ledger.append(
      Array.from({ length: 9 }, (_, i) => ({
        type: 'reading' as const,
        body: { device: 'pv1', point: 'W', t: Date.UTC(2026, 0, 2) + i, value: i, unit: 'W' },
      })),
    );
    ledger.stop();
    offline.close();
    mgmc = new MgmcRun(broker.url, join(dir, 'agent.db'));
    running.push(mgmc);
    expect(mgmc.sync.stats().authorization.status).toBe('authorized'); // known before any message
    mgmc.start();
    await waitFor(anchoredAll(mgmc), 'the blocks sealed offline anchored too');
    const stats = mgmc.sync.stats();
    expect(stats.sealedHeight).toBeGreaterThan(first.sealedHeight);

    // The DSO holds every block once (a resend is a duplicate it drops), and every block is anchored.
    const accepted = Array.from({ length: stats.sealedHeight }, (_, i) => dso.store.acceptedBlock(MGMC.address, i + 1));
    expect(accepted.every((b) => b !== undefined)).toBe(true);
    expect(dso.store.acceptedBlock(MGMC.address, stats.sealedHeight + 1)).toBeUndefined();
    expect([...new Set(dso.blocksReceived)].sort((a, b) => a - b)).toEqual(
      Array.from({ length: stats.sealedHeight }, (_, i) => i + 1),
    );
    for (let h = 1; h <= stats.sealedHeight; h++) expect(dso.anchor.receipt(MGMC.address, h)).toBeDefined();
    expect(verifyChain(ledgerSource(mgmc.store), { strict: true })).toMatchObject({
      ok: true,
      blocks: stats.sealedHeight,
    });
    expect(dso.problems).toEqual([]);
  });
});
