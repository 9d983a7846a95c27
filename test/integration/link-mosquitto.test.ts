/**
 * The DSO link against a real mosquitto (test/helpers/mosquitto.ts): signed envelopes through the broker, session
 * birth and last will, store-and-forward through broker outages, and TLS + passwords + ACLs as deployed.
 * One test at the end runs the embedded aedes broker the demo uses.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { fromHex } from '../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../agent/ledger/block.js';
import { startEmbeddedBroker } from '../../agent/link/embedded-broker.js';
import {
  type Envelope,
  EnvelopeSealer,
  type OpenResult,
  openEnvelope,
  ReplayGuard,
} from '../../agent/link/envelope.js';
import { LinkError, type LinkMessage, MqttLink, type MqttLinkOptions } from '../../agent/link/mqtt-client.js';
import { Outbox } from '../../agent/link/outbox.js';
import { OUTBOX_MIGRATIONS, OutboxStore } from '../../agent/link/outbox-store.js';
import { LinkTopics, parseTopic } from '../../agent/link/topics.js';
import { createLogger, type Logger, silentLogger } from '../../agent/logger.js';
import { openDatabase, type SqliteDatabase } from '../../agent/store/database.js';
import { LEDGER_MIGRATIONS } from '../../agent/store/ledger-store.js';
import { type MosquittoBroker, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

const HAVE_MOSQUITTO = requireMosquitto();

/** Test keys: they sign nothing outside this file. */
const MGMC_A = keyPairFromPrivateKey(fromHex(`0x${'a1'.repeat(32)}`));
const MGMC_B = keyPairFromPrivateKey(fromHex(`0x${'b2'.repeat(32)}`));
const DSO = keyPairFromPrivateKey(fromHex(`0x${'d5'.repeat(32)}`));
const CHAIN = 7;
const topics = new LinkTopics(CHAIN);
const clock = systemClock();

const sealerFor = (key: KeyPair, session = 1) =>
  new EnvelopeSealer({ signer: signerFromPrivateKey(key.privateKey, key.address), chainId: CHAIN, session, clock });

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function link(options: Partial<MqttLinkOptions> & { url: string; key: KeyPair; session?: number }): MqttLink {
  const { key, session, ...rest } = options;
  const l = new MqttLink({
    sealer: sealerFor(key, session),
    topics,
    clock,
    logger: silentLogger(),
    reconnectPeriodMs: 100,
    connectTimeoutMs: 3000,
    ...rest,
  });
  cleanup.push(() => l.close());
  return l;
}

/** Waits for a condition (a deadline for a broken test, not a timing assertion). */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function opened(message: LinkMessage, expectedFrom?: string): OpenResult {
  const parsed = parseTopic(message.topic);
  // On node/{address}/... topics the address is the sender's; on dso/.../{address} it is the recipient's.
  const from = expectedFrom ?? (parsed.kind === 'node' ? parsed.address : undefined);
  return openEnvelope(message.payload, { chainId: CHAIN, ...(from === undefined ? {} : { expectedFrom: from }) });
}

function mustOpen(message: LinkMessage): Envelope {
  const result = opened(message);
  if (!result.ok) throw new Error(`rejected envelope on ${message.topic}: ${result.reason}: ${result.detail}`);
  return result.envelope;
}

/** A TCP proxy whose connections the test can cut, as a crash or a network loss would (no MQTT DISCONNECT). */
async function tcpProxy(targetPort: number): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ port: targetPort, host: '127.0.0.1' });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

describe.skipIf(!HAVE_MOSQUITTO)('DSO link through mosquitto', () => {
  let broker: MosquittoBroker;

  describe('plain listener', () => {
    beforeEach(async () => {
      broker = await startMosquitto();
      cleanup.push(() => broker.dispose());
    });

    it('(1) carries signed envelopes both ways and rejects what is not one', async () => {
      const mgmc = link({ url: broker.url, key: MGMC_A });
      const dso = link({ url: broker.url, key: DSO, announce: false });
      const atDso: OpenResult[] = [];
      const atMgmc: Envelope[] = [];
      dso.connect();
      await dso.subscribe(topics.nodeFilter('blocks'), (m) => {
        atDso.push(opened(m));
      });
      mgmc.connect();
      await mgmc.subscribe(topics.dsoReceipts(MGMC_A.address), (m) => {
        atMgmc.push(mustOpen(m));
      });

      const block = sealerFor(MGMC_A).seal('block', { height: 1, hash: `0x${'ab'.repeat(32)}` });
      await mgmc.publish(topics.node(MGMC_A.address, 'blocks'), block.bytes);
      await waitFor(() => atDso.length === 1, 'the block at the DSO');
      expect(atDso[0]).toEqual({ ok: true, envelope: block.envelope });

      const receipt = sealerFor(DSO).seal('receipt', { for: block.envelope.id, height: 1 });
      await dso.publish(topics.dsoReceipts(MGMC_A.address), receipt.bytes);
      await waitFor(() => atMgmc.length === 1, 'the receipt at the MGMC');
      expect(atMgmc[0]).toEqual(receipt.envelope);

      // Whatever else arrives on the topic is refused with a reason, never thrown: junk, a forgery, another sender.
      const blocksA = topics.node(MGMC_A.address, 'blocks');
      execFileSync('mosquitto_pub', [
        '-p',
        String(broker.port),
        '-h',
        '127.0.0.1',
        '-q',
        '1',
        '-t',
        blocksA,
        '-m',
        'junk{',
      ]);
      const forged = new TextDecoder().decode(block.bytes).replace('"height":1', '"height":2');
      execFileSync('mosquitto_pub', [
        '-p',
        String(broker.port),
        '-h',
        '127.0.0.1',
        '-q',
        '1',
        '-t',
        blocksA,
        '-m',
        forged,
      ]);
      const fromB = sealerFor(MGMC_B).seal('block', { height: 1 });
      await dso.publish(blocksA, fromB.bytes);
      await waitFor(() => atDso.length === 4, 'three bad messages at the DSO');
      expect(atDso.slice(1).map((r) => (r.ok ? 'accepted' : r.reason))).toEqual([
        'malformed-json',
        'bad-signature',
        'wrong-sender',
      ]);

      await expect(mgmc.publish(topics.nodeFilter('blocks'), block.bytes)).rejects.toMatchObject({ code: 'bad-topic' });
    });

    it('(2) publishes a birth per connection, a retained online, and the retained offline will when the socket dies', async () => {
      const proxy = await tcpProxy(broker.port);
      cleanup.push(() => proxy.close());
      const watcher = link({ url: broker.url, key: DSO, announce: false });
      const seen: Envelope[] = [];
      watcher.connect();
      await watcher.subscribe(topics.nodeFilter('#', MGMC_A.address), (m) => {
        seen.push(mustOpen(m));
      });

      const mgmc = link({ url: proxy.url, key: MGMC_A, session: 42 });
      const states: string[] = [];
      mgmc.onState((c) => states.push(c.state));
      mgmc.connect();
      const availability = () => seen.filter((e) => e.kind === 'availability').map((e) => e.body);
      await waitFor(() => availability().length === 1 && seen.some((e) => e.kind === 'birth'), 'birth and online');
      expect(seen.find((e) => e.kind === 'birth')?.body).toMatchObject({ session: 42, connection: 1, state: 'online' });
      expect(availability()[0]).toMatchObject({ state: 'online', session: 42, connection: 1 });

      proxy.cut(); // the process dies or the cable is pulled: no DISCONNECT, so the broker sends the will
      await waitFor(() => availability().length >= 2, 'the last will');
      const will = seen.filter((e) => e.kind === 'availability')[1];
      expect(will?.body).toEqual({ state: 'offline', reason: 'will', session: 42, connection: 1 });
      expect(will?.seq).toBe(0);
      expect(will?.from).toBe(MGMC_A.address);

      // mqtt.js reconnects through the proxy: a second birth, online again.
      await waitFor(() => seen.filter((e) => e.kind === 'birth').length === 2 && availability().length >= 3, 'rebirth');
      expect(seen.filter((e) => e.kind === 'birth')[1]?.body).toMatchObject({ connection: 2, session: 42 });
      expect(availability().at(-1)).toMatchObject({ state: 'online', connection: 2 });
      expect(states).toEqual(expect.arrayContaining(['connecting', 'online', 'offline']));

      await mgmc.close();
      await waitFor(() => availability().at(-1)?.state === 'offline', 'offline on close');
      expect(availability().at(-1)).toMatchObject({ reason: 'close' });

      // A subscriber that comes later sees the retained state: offline.
      const late = link({ url: broker.url, key: DSO, announce: false, clientId: 'late-watcher' });
      const retained: LinkMessage[] = [];
      late.connect();
      await late.subscribe(topics.node(MGMC_A.address, 'availability'), (m) => {
        retained.push(m);
      });
      await waitFor(() => retained.length === 1, 'the retained availability');
      expect(retained[0]?.retain).toBe(true);
      expect(mustOpen(retained[0]!).body).toMatchObject({ state: 'offline', reason: 'close' });
    });

    it('(3) store and forward: starts with the broker down, survives a stop and a crash of the broker, loses and duplicates nothing', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mgmc-link-'));
      const db: SqliteDatabase = openDatabase(join(dir, 'agent.db'), [...LEDGER_MIGRATIONS, ...OUTBOX_MIGRATIONS]);
      cleanup.push(() => {
        db.close();
        rmSync(dir, { recursive: true, force: true });
      });

      // The DSO subscribes while the broker is up; its session (clean start false) persists in mosquitto.
      const dso = link({ url: broker.url, key: DSO, announce: false });
      const guard = new ReplayGuard();
      const received: string[] = []; // first arrivals, in order
      let deliveries = 0;
      let onDelivery: (() => void) | undefined;
      let outbox: Outbox | undefined;
      dso.connect();
      await dso.subscribe(topics.nodeFilter('blocks'), (m) => {
        const envelope = mustOpen(m);
        deliveries += 1;
        if (guard.admit(envelope).fresh) received.push(envelope.id);
        outbox?.acknowledge(envelope.id); // the signed receipt, simulated; idempotent for a redelivery
        onDelivery?.();
      });
      await broker.stop();

      // The agent starts while the broker is down and keeps working.
      const store = new OutboxStore(db, clock);
      const sealer = sealerFor(MGMC_A, 5);
      const mgmc = new MqttLink({
        url: broker.url,
        sealer,
        topics,
        clock,
        logger: silentLogger(),
        reconnectPeriodMs: 100,
      });
      cleanup.push(() => mgmc.close());
      const box = new Outbox({ store, transport: mgmc, sealer, clock, logger: silentLogger(), receiptTimeoutMs: 5000 });
      outbox = box;
      cleanup.push(() => box.stop());
      mgmc.connect();
      box.start();
      const enqueued: string[] = [];
      const blocks = topics.node(MGMC_A.address, 'blocks');
      const enqueue = (count: number) =>
        db.transaction(() => {
          for (let i = 0; i < count; i++) {
            enqueued.push(box.enqueue(blocks, 'block', { n: enqueued.length + 1 }).envelope.id);
          }
        })();
      for (let i = 0; i < 4; i++) enqueue(50);
      expect(mgmc.online).toBe(false);
      await expect(mgmc.publish(blocks, sealer.seal('block', {}).bytes)).rejects.toMatchObject({ code: 'offline' });
      expect(box.stats()).toMatchObject({ pending: 200, sent: 0, acked: 0 });

      // Phase 1: the broker comes up; everything arrives exactly once, in order.
      await broker.start();
      await waitFor(() => received.length === 200 && store.depth() === 0, 'all 200 delivered and acknowledged');
      expect(received).toEqual(enqueued);
      expect(deliveries).toBe(200);

      // Phase 2 and 3: the broker stops (SIGTERM), then crashes (SIGKILL), mid-stream; more is enqueued while down.
      for (const outage of ['stop', 'kill'] as const) {
        const target = received.length + 50;
        let down: Promise<void> | undefined;
        onDelivery = () => {
          if (received.length >= target && down === undefined) down = broker[outage]();
        };
        enqueue(200);
        await waitFor(() => down !== undefined, `the broker ${outage} mid-stream`);
        await down;
        onDelivery = undefined;
        enqueue(25);
        await broker.start();
        await waitFor(
          () => received.length === enqueued.length && store.depth() === 0,
          `all ${enqueued.length} delivered after the broker ${outage}`,
          60_000,
        );
      }
      expect(new Set(received)).toEqual(new Set(enqueued));
      expect(received).toHaveLength(enqueued.length); // the guard let each id through once
      expect(box.stats()).toMatchObject({ pending: 0, sent: 0, acked: enqueued.length });
      expect(store.depth()).toBe(0);
      // Redeliveries (QoS 1, replays) happen and are absorbed by the receiver; report them for the reader.
      console.info(
        `link store-and-forward: ${enqueued.length} messages, ${deliveries - received.length} redeliveries dropped by id`,
      );
    });
  });

  describe('TLS, passwords and ACLs', () => {
    const users = {
      [MGMC_A.address.toLowerCase()]: 'secret-a',
      [MGMC_B.address.toLowerCase()]: 'secret-b',
      dso: 'secret-dso',
    };
    // Each MGMC (username = its lower-case address) writes only under its own node topics and reads what the DSO
    // addresses to it; the DSO reads all MGMCs and writes the dso/ topics.
    const acl = [
      'pattern write mgmc/v1/+/node/%u/#',
      'pattern read mgmc/v1/+/dso/receipts/%u',
      'pattern read mgmc/v1/+/dso/messages/%u',
      'pattern read mgmc/v1/+/dso/headers',
      'pattern read mgmc/v1/+/dso/authorized',
      'user dso',
      'topic read mgmc/v1/+/node/#',
      'topic write mgmc/v1/+/dso/#',
      '',
    ].join('\n');

    beforeEach(async () => {
      broker = await startMosquitto({ users, acl, tls: { requireClientCert: true } });
      cleanup.push(() => broker.dispose());
    });

    const tls = () => ({ ca: broker.pki!.ca, cert: broker.pki!.clientCert, key: broker.pki!.clientKey });

    function capture(): { logger: Logger; lines: string[] } {
      const lines: string[] = [];
      return { logger: createLogger({ level: 'debug', destination: { write: (l: string) => lines.push(l) } }), lines };
    }

    it('(4) lets a client with valid credentials in, refuses another MGMC topic (PUBACK 0x87) and a wrong password', async () => {
      expect(broker.url).toMatch(/^mqtts:/);
      const dso = link({
        url: broker.url,
        key: DSO,
        announce: false,
        username: 'dso',
        password: 'secret-dso',
        tls: tls(),
      });
      const atDso: Envelope[] = [];
      dso.connect();
      await dso.subscribe(topics.nodeFilter('blocks'), (m) => {
        atDso.push(mustOpen(m));
      });

      const a = MGMC_A.address.toLowerCase();
      const mgmc = link({ url: broker.url, key: MGMC_A, username: a, password: 'secret-a', tls: tls() });
      mgmc.connect();
      await waitFor(() => mgmc.online, 'MGMC A online over TLS');
      const sealer = sealerFor(MGMC_A, 2);
      const own = sealer.seal('block', { height: 1 });
      await mgmc.publish(topics.node(MGMC_A.address, 'blocks'), own.bytes);

      // Mosquitto 2 answers a QoS 1 PUBLISH the ACL denies with PUBACK reason 0x87 (MQTT 5) and drops the message.
      const spoof = sealer.seal('block', { height: 666 });
      const refused = await mgmc.publish(topics.node(MGMC_B.address, 'blocks'), spoof.bytes).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(LinkError);
      expect(refused).toMatchObject({ code: 'refused', reasonCode: 0x87 });
      expect((refused as Error).message).toMatch(/not authorized.*ACL/i);
      const after = sealer.seal('block', { height: 2 });
      await mgmc.publish(topics.node(MGMC_A.address, 'blocks'), after.bytes);
      await waitFor(() => atDso.length === 2, 'the allowed blocks');
      expect(atDso.map((e) => e.id)).toEqual([own.envelope.id, after.envelope.id]); // the spoof never arrived

      // Reading another MGMC's receipts: mosquitto's acl_file grants the SUBSCRIBE (SUBACK QoS 1) and checks read
      // access per message, so nothing of B's ever arrives, while A's own receipt does.
      const atMgmc: string[] = [];
      const record = (m: LinkMessage) => {
        atMgmc.push(m.topic);
      };
      await mgmc.subscribe(topics.dsoReceipts(MGMC_B.address), record);
      await mgmc.subscribe(topics.dsoReceipts(MGMC_A.address), record);
      const dsoSealer = sealerFor(DSO);
      await dso.publish(topics.dsoReceipts(MGMC_B.address), dsoSealer.seal('receipt', { n: 1 }).bytes);
      await dso.publish(topics.dsoReceipts(MGMC_A.address), dsoSealer.seal('receipt', { n: 2 }).bytes);
      await waitFor(() => atMgmc.length === 1, "A's own receipt");
      expect(atMgmc).toEqual([topics.dsoReceipts(MGMC_A.address)]);

      // Wrong password: mosquitto answers CONNACK 0x87 (not 0x86); refused with a hint a technician can act on.
      const wrong = capture();
      const intruder = link({
        url: broker.url,
        key: MGMC_B,
        username: MGMC_B.address.toLowerCase(),
        password: 'guess',
        tls: tls(),
        logger: wrong.logger,
      });
      const states: string[] = [];
      intruder.onState((c) => states.push(c.state));
      intruder.connect();
      await waitFor(() => intruder.state === 'refused', 'the refusal');
      expect(states).not.toContain('online');
      expect(wrong.lines.join('\n')).toMatch(
        /refused the connection: Not authorized \(reason 135\); check link username and password/,
      );

      // No CA configured: the broker's certificate is not trusted, and the log says what to check.
      const noCa = capture();
      const untrusting = link({
        url: broker.url,
        key: MGMC_B,
        clientId: 'untrusting',
        username: MGMC_B.address.toLowerCase(),
        password: 'secret-b',
        tls: { cert: broker.pki!.clientCert, key: broker.pki!.clientKey },
        logger: noCa.logger,
      });
      untrusting.connect();
      await waitFor(() => noCa.lines.some((l) => l.includes('TLS')), 'the TLS error');
      expect(untrusting.online).toBe(false);
      expect(noCa.lines.join('\n')).toMatch(/TLS handshake with broker .* failed.*link\.tls\.ca/);

      expect(() => link({ url: broker.url, key: MGMC_B, tls: { ca: '/nonexistent/ca.pem' } }).connect()).toThrow(
        /cannot read the TLS CA certificate file \/nonexistent\/ca.pem/,
      );
    });
  });
});

describe('embedded broker (aedes, MQTT 3.1.1)', () => {
  it('carries envelopes, births and the outbox for the demo', async () => {
    const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' });
    cleanup.push(() => broker.close());
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const dso = link({ url: broker.url, key: DSO, announce: false, protocolVersion: 4 });
    const seen: Envelope[] = [];
    dso.connect();
    await dso.subscribe(topics.nodeFilter('#'), (m) => {
      seen.push(mustOpen(m));
    });

    const dir = mkdtempSync(join(tmpdir(), 'mgmc-link-aedes-'));
    const db = openDatabase(join(dir, 'agent.db'), [...LEDGER_MIGRATIONS, ...OUTBOX_MIGRATIONS]);
    cleanup.push(() => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const sealer = sealerFor(MGMC_A, 3);
    const mgmc = new MqttLink({ url: broker.url, sealer, topics, clock, logger: silentLogger(), protocolVersion: 4 });
    cleanup.push(() => mgmc.close());
    const outbox = new Outbox({
      store: new OutboxStore(db, clock),
      transport: mgmc,
      sealer,
      clock,
      logger: silentLogger(),
    });
    cleanup.push(() => outbox.stop());
    mgmc.connect();
    outbox.start();
    const ids = [1, 2, 3].map((n) => outbox.enqueue(topics.node(MGMC_A.address, 'blocks'), 'block', { n }).envelope.id);
    await waitFor(() => seen.filter((e) => e.kind === 'block').length === 3, 'three blocks via aedes');
    expect(seen.filter((e) => e.kind === 'block').map((e) => e.id)).toEqual(ids);
    expect(seen.find((e) => e.kind === 'birth')?.body).toMatchObject({ session: 3, connection: 1 });
    await waitFor(() => outbox.stats().sent === 3, 'PUBACKs recorded');
  });
});
