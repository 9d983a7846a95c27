/**
 * The DSO role's composition root (`mgmc run` with `role: dso`): it opens the DSO database, the registry, the block
 * verifier and the DSO chain, connects to the broker, and wires messages between them (docs/protocol.md section 11).
 *
 * One process per DSO is the node (`dso.anchor: true`): it seals DSO blocks, publishes headers and receipts, and
 * publishes the registry's changes. More processes (`dso.anchor: false`) share the incoming blocks and registrations
 * through an MQTT 5 shared subscription and the same database file.
 *
 * Nothing here must be delivered for correctness: a receipt or header lost while the broker is down heals itself (the
 * MGMC sends the block again and gets the receipt for a duplicate; its light client asks for missing headers), so
 * publishes are fire-and-forget with a log line on failure. Adjustment contracts are the exception: grid-security.ts
 * sends them again until acknowledged.
 *
 * With a feeder (StartDsoOptions.grid) the anchor node also runs grid security (grid-security.ts): it takes the MGMCs'
 * net positions from node/+/positions, checks the feeder and sends adjustment contracts on dso/adjustments/{addr};
 * acks come back on node/+/acks. Positions are not shared among verifiers: one process must see all of an interval.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { AgentConfig } from '../config/schema.js';
import type { Feeder } from '../grid/feeder.js';
import type { Address } from '../identity/keys.js';
import { readKeystoreFile } from '../identity/keystore.js';
import { SignatureVerifier } from '../identity/signing.js';
import { signerFromPrivateKey } from '../ledger/block.js';
import { type CanonicalValue, parseCanonical } from '../ledger/canonical.js';
import { type Envelope, type EnvelopeBody, EnvelopeSealer, openEnvelope } from '../link/envelope.js';
import { type LinkMessage, MqttLink } from '../link/mqtt-client.js';
import { LinkTopics, parseTopic } from '../link/topics.js';
import type { Logger } from '../logger.js';
import { MARKET_DELIVERY_KIND, MARKET_MOVE_KIND, MARKET_SEAL_KIND, sealBody } from '../market/session.js';
import { createWorkerSolver, type Solver } from '../optimizer/solver.js';
import { DsoAnchor, type SealedDsoBlock } from './anchor.js';
import { encodeDsoHeader, unpackSeals } from './chain.js';
import { DsoChainStore } from './chain-store.js';
import { openDsoDatabase } from './database.js';
import { loadGenesis } from './genesis.js';
import { GridSecurity, type GridSecuritySettings } from './grid-security.js';
import { MarketSequencer, type MarketSequencerOptions } from './market-sequencer.js';
import { encodeReceipt, type Receipt } from './receipt.js';
import { type OutgoingMessage, Registry } from './registry.js';
import { type BlockDelivery, type BlockOutcome, BlockVerifier, rejectionBody } from './verifier.js';

/** Most DSO headers sent in one `dso-headers` answer. */
export const MAX_HEADERS_PER_ANSWER = 256;
/** Most received blocks verified and stored in one transaction. */
const MAX_BLOCKS_PER_COMMIT = 64;
/** Receipts per `receipts` envelope. */
export const RECEIPTS_PER_ENVELOPE = 64;
/** Envelopes other than blocks (registrations, requests) are small. */
const MAX_SMALL_ENVELOPE = 64 * 1024;

export interface DsoStats {
  readonly address: string;
  readonly anchor: boolean;
  readonly link: string;
  readonly dsoHeight: number;
  readonly pendingEntries: number;
  readonly blocks: ReturnType<BlockVerifier['stats']>;
  readonly receiptsSent: number;
  readonly headersSent: number;
  readonly registrations: number;
  /** Envelopes dropped before any processing, by reason (bad signature, malformed, unexpected kind, ...). */
  readonly dropped: Readonly<Record<string, number>>;
  readonly publishFailures: number;
}

export interface RunningDso {
  readonly address: string;
  readonly link: MqttLink;
  readonly registry: Registry;
  readonly verifier: BlockVerifier;
  readonly anchor: DsoAnchor;
  readonly store: DsoChainStore;
  /** Grid security (positions, network check, adjustment contracts), when started with a feeder on the anchor node. */
  readonly grid: GridSecurity | undefined;
  /** The market sequencer, when started with `market` on the anchor node. */
  readonly market: MarketSequencer | undefined;
  stats(): DsoStats;
  /** Stops timers, seals what is pending (anchor node), leaves the broker and closes the database. */
  stop(): Promise<void>;
}

export interface StartDsoOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** How often parked blocks are retried, ms (default 250). */
  readonly parkedRetryMs?: number;
  /** How often the registry looks for operator changes (`mgmc dso approve`), ms (default 2000). */
  readonly registryRefreshMs?: number;
  /** Grid security on this feeder (anchor node only): positions in, adjustment contracts out. */
  readonly grid?: DsoGridOptions;
  /** The market sequencer (anchor node only): seals the MGMCs' market moves, re-opens intervals after caps. */
  readonly market?: DsoMarketOptions;
}

/** What the DSO's market sequencer needs beyond the node's own parts (market-sequencer.ts). */
export type DsoMarketOptions = Pick<
  MarketSequencerOptions,
  'prices' | 'roundCap' | 'maxAttempts' | 'maxQtyWh' | 'timing' | 'onInterval'
> & {
  /** Open every interval on the clock (default true); false: only runInterval()/settle() calls (tests). */
  readonly schedule?: boolean;
};

export interface DsoGridOptions extends GridSecuritySettings {
  /** The feeder the MGMCs' registered buses belong to. */
  readonly feeder: Feeder;
  /** The LP solver; default a HiGHS worker thread of its own, closed on stop(). */
  readonly solver?: Solver;
}

/** Starts the DSO role; returns once the database is open and the broker connection is being made. */
export async function startDso(config: AgentConfig, options: StartDsoOptions): Promise<RunningDso> {
  const { clock, logger } = options;
  const log = logger.child({ module: 'dso' });
  const linkConfig = config.link;
  const genesisPath = config.dso.genesis;
  if (linkConfig === undefined || genesisPath === undefined) {
    // The config cross-checks refuse this already; the composition root still says it plainly.
    throw new Error('role dso needs link (the broker) and dso.genesis in its config');
  }
  const genesis = loadGenesis(genesisPath);
  if (genesis.chainId !== config.chainId) {
    throw new Error(
      `${genesisPath}: the genesis is for chain ${genesis.chainId} but the config says chainId ${config.chainId}: ` +
        'use the same chain id in both',
    );
  }
  const key = await readKeystoreFile(config.identity.keystore, config.identity.passphrase.reveal());
  for (const warning of key.warnings) log.warn({ keystore: config.identity.keystore }, warning);
  const signer = signerFromPrivateKey(key.privateKey, key.address);
  const isAnchor = config.dso.anchor;

  const db = openDsoDatabase(config.store.path, { create: true, synchronous: config.store.synchronous });
  const store = new DsoChainStore(db);
  // Each process run gets its own link session, also when several processes share the database and the key.
  const session = db.transaction(() => {
    const next = Number(store.getMeta('linkSession') ?? '0') + 1;
    store.setMeta('linkSession', String(next));
    return next;
  })();

  const registry = new Registry({
    db,
    chainId: config.chainId,
    policy: { mode: config.dso.policy.mode, allow: config.dso.policy.allow },
    clock,
    logger: logger.child({ module: 'registry' }),
    publish: true,
  });
  const signatures = new SignatureVerifier();
  const verifier = new BlockVerifier({
    store,
    registry,
    chainId: config.chainId,
    clock,
    logger: logger.child({ module: 'verifier' }),
    maxBlockBytes: linkConfig.maxBlockBytes,
    signatures,
  });
  const topics = new LinkTopics(config.chainId);
  const sealer = new EnvelopeSealer({ signer, chainId: config.chainId, session, clock });
  const link = new MqttLink({
    url: linkConfig.url,
    sealer,
    topics,
    clock,
    logger,
    announce: false,
    protocolVersion: linkConfig.protocolVersion,
    clientId:
      linkConfig.clientId ??
      (isAnchor
        ? `dso-${key.address.toLowerCase().slice(2)}`
        : `dso-${key.address.toLowerCase().slice(2)}-v${session}`),
    // A verifier that dies must not keep a session the broker queues shared messages for.
    ...(isAnchor ? {} : { sessionExpirySeconds: 0 }),
    keepaliveSeconds: linkConfig.keepaliveSeconds,
    ...(linkConfig.username === undefined ? {} : { username: linkConfig.username }),
    ...(linkConfig.password === undefined ? {} : { password: linkConfig.password.reveal() }),
    ...(linkConfig.tls === undefined ? {} : { tls: linkConfig.tls }),
  });

  let acceptedSinceSeal = 0;
  let receiptsSent = 0;
  let headersSent = 0;
  let registrations = 0;
  let publishFailures = 0;
  const dropped: Record<string, number> = {};
  const drop = (reason: string, detail: string, topic: string) => {
    dropped[reason] = (dropped[reason] ?? 0) + 1;
    log.warn({ topic, reason }, `dropped a message: ${detail}`);
  };

  const send = (topic: string, kind: string, body: EnvelopeBody, retain = false): void => {
    const sealed = sealer.seal(kind, body);
    link.publish(topic, sealed.bytes, { retain }).catch((err: Error) => {
      publishFailures++;
      // Healed by the MGMC's resend (receipts, answers) or its header request (headers).
      log.debug({ topic, kind, err: err.message }, 'publish failed; the peer will ask again');
    });
  };
  const sendAll = (messages: readonly OutgoingMessage[]) => {
    for (const m of messages) send(m.topic, m.kind, m.body, m.retain ?? false);
  };
  const receiptBody = (receipt: Receipt): EnvelopeBody => ({
    receipt: parseCanonical(encodeReceipt(receipt)) as CanonicalValue,
  });
  const sendReceipt = (receipt: Receipt) => {
    receiptsSent++;
    send(topics.dsoReceipts(receipt.mgmc), 'receipt', receiptBody(receipt));
  };

  const onSealed = (block: SealedDsoBlock) => {
    acceptedSinceSeal = 0;
    headersSent++;
    send(topics.dsoHeaders(), 'dso-header', {
      header: parseCanonical(encodeDsoHeader(block.header)) as CanonicalValue,
      seals: [...block.seals],
    });
    // One signed envelope per MGMC per DSO block: signing is the DSO's dearest step, so never once per entry.
    const byMgmc = new Map<string, Receipt[]>();
    for (const receipt of block.receipts) {
      const list = byMgmc.get(receipt.mgmc) ?? [];
      list.push(receipt);
      byMgmc.set(receipt.mgmc, list);
    }
    for (const [mgmc, receipts] of byMgmc) {
      receiptsSent += receipts.length;
      // Chunks keep each envelope well under the receivers' size limit (a receipt is about 1-2 KB).
      for (let i = 0; i < receipts.length; i += RECEIPTS_PER_ENVELOPE) {
        send(topics.dsoReceipts(mgmc), 'receipts', {
          receipts: receipts
            .slice(i, i + RECEIPTS_PER_ENVELOPE)
            .map((r) => parseCanonical(encodeReceipt(r)) as CanonicalValue),
        });
      }
    }
    log.info({ height: block.header.height, entries: block.entries.length }, 'DSO block sealed');
  };

  const anchor = DsoAnchor.open({
    store,
    genesis,
    clock,
    sealEveryEntries: config.dso.sealEveryEntries,
    sealEverySeconds: config.dso.sealEverySeconds,
    signer,
    logger: logger.child({ module: 'anchor' }),
    onSealed,
  });

  const handleOutcome = (outcome: BlockOutcome) => {
    switch (outcome.status) {
      case 'accepted':
        // Counted here rather than asked of the store: pendingCount scans the accepted rows.
        acceptedSinceSeal++;
        if (isAnchor && acceptedSinceSeal >= config.dso.sealEveryEntries) {
          acceptedSinceSeal = 0;
          anchor.seal();
        }
        for (const next of verifier.retryParked(outcome.mgmc)) handleOutcome(next);
        return;
      case 'duplicate': {
        const receipt = anchor.receipt(outcome.mgmc, outcome.height);
        if (receipt !== undefined) sendReceipt(receipt);
        return;
      }
      case 'parked':
        return;
      case 'rejected': {
        const level = outcome.reason === 'out-of-order' || outcome.reason === 'unregistered' ? 'info' : 'warn';
        log[level](
          { mgmc: outcome.mgmc, height: outcome.height, reason: outcome.reason },
          `block rejected: ${outcome.detail}`,
        );
        if (/^0x[0-9a-fA-F]{40}$/.test(outcome.mgmc)) {
          send(topics.dsoMessages(outcome.mgmc), 'rejection', rejectionBody(outcome));
        }
        return;
      }
    }
  };

  const open = (message: LinkMessage, maxBytes: number): { envelope: Envelope; address: string } | undefined => {
    const parsed = parseTopic(message.topic);
    if (parsed.kind !== 'node') {
      drop('bad-topic', parsed.kind === 'unknown' ? parsed.reason : `unexpected ${parsed.kind} topic`, message.topic);
      return undefined;
    }
    const result = openEnvelope(message.payload, {
      chainId: config.chainId,
      expectedFrom: parsed.address,
      maxBytes,
      verifier: signatures,
    });
    if (!result.ok) {
      drop(result.reason, result.detail, message.topic);
      return undefined;
    }
    return { envelope: result.envelope, address: parsed.address };
  };

  // Every process refreshes: a verifier's registry must see approvals made elsewhere (the CLI, a registration that
  // another verifier handled), or it would refuse an authorized MGMC's blocks as unregistered.
  const refresh = () => {
    try {
      sendAll(registry.refresh());
    } catch (err) {
      log.error({ err }, 'registry refresh failed; will retry');
    }
  };

  // Blocks that arrive together are verified and stored in one transaction: one commit (one fsync) for the lot
  // instead of one per block. Nothing is lost by waiting: until its receipt the MGMC keeps every block.
  let batch: BlockDelivery[] = [];
  let flushQueued = false;
  const flush = () => {
    flushQueued = false;
    const deliveries = batch;
    batch = [];
    if (deliveries.length === 0) return;
    let outcomes: BlockOutcome[];
    try {
      outcomes = verifier.verifyBatch(deliveries);
    } catch (err) {
      log.error({ err, blocks: deliveries.length }, 'storing received blocks failed; the MGMCs will send them again');
      return;
    }
    let refreshed = false;
    outcomes.forEach((first, i) => {
      let outcome = first;
      const delivery = deliveries[i] as BlockDelivery;
      if (outcome.status === 'rejected' && outcome.reason === 'unregistered') {
        // Perhaps authorized a moment ago by another process: one indexed read tells, then verify again.
        if (!refreshed) refresh();
        refreshed = true;
        if (registry.lookup(delivery.topicAddress)?.status === 'authorized') {
          outcome = verifier.verify(delivery.envelope, delivery.topicAddress, delivery.wireBytes);
        }
      }
      handleOutcome(outcome);
    });
  };

  const onBlock = (message: LinkMessage) => {
    // The envelope adds its own fields around the block: allow for them above the block limit.
    const opened = open(message, linkConfig.maxBlockBytes + MAX_SMALL_ENVELOPE);
    if (opened === undefined) return;
    if (opened.envelope.kind !== 'block') {
      drop('unexpected-kind', `kind ${opened.envelope.kind} on a blocks topic`, message.topic);
      return;
    }
    batch.push({ envelope: opened.envelope, topicAddress: opened.address, wireBytes: message.payload.length });
    if (batch.length >= MAX_BLOCKS_PER_COMMIT) flush();
    else if (!flushQueued) {
      flushQueued = true;
      setImmediate(flush);
    }
  };

  const onRegistration = (message: LinkMessage) => {
    const opened = open(message, MAX_SMALL_ENVELOPE);
    if (opened === undefined) return;
    if (opened.envelope.kind !== 'registration') {
      drop('unexpected-kind', `kind ${opened.envelope.kind} on a registration topic`, message.topic);
      return;
    }
    registrations++;
    sendAll(registry.handleRegistration(opened.envelope));
  };

  const onNodeMessage = (message: LinkMessage) => {
    const opened = open(message, MAX_SMALL_ENVELOPE);
    if (opened === undefined) return;
    const { envelope } = opened;
    if (envelope.kind !== 'headers-request') {
      drop('unexpected-kind', `kind ${envelope.kind} on a messages topic`, message.topic);
      return;
    }
    const from = envelope.body.from;
    const to = envelope.body.to;
    if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && (from as number) >= 1)) {
      drop('bad-field', 'headers-request needs integer from >= 1 and to', message.topic);
      return;
    }
    const last = Math.min(to as number, anchor.height, (from as number) + MAX_HEADERS_PER_ANSWER - 1);
    const blocks: CanonicalValue[] = [];
    for (let h = from as number; h <= last; h++) {
      const row = store.blockAt(h);
      if (row === undefined) break;
      blocks.push({ header: parseCanonical(row.header) as CanonicalValue, seals: unpackSeals(row.seals) });
    }
    send(topics.dsoMessages(envelope.from), 'dso-headers', { blocks });
  };

  const report = (what: string) => (err: Error) =>
    log.error({ err: err.message }, `could not subscribe to ${what}: ${err.message}`);
  link.connect();
  const group = config.dso.shareGroup;
  // Shared subscriptions spread the work over verifier processes; a 3.1.1 broker (the demo's embedded one) has
  // none, so there the node subscribes plainly and must run alone.
  const shared = (filter: string) => (linkConfig.protocolVersion === 5 ? topics.shared(group, filter) : filter);
  void link.subscribe(shared(topics.nodeFilter('blocks')), onBlock).catch(report('blocks'));
  void link.subscribe(shared(topics.nodeFilter('registration')), onRegistration).catch(report('registrations'));
  void link.subscribe(shared(topics.nodeFilter('messages')), onNodeMessage).catch(report('messages'));

  const gridOptions = isAnchor ? options.grid : undefined;
  // The solver runs off the event loop, so a network check never holds up block verification.
  const ownSolver = gridOptions !== undefined && gridOptions.solver === undefined;
  const gridSolver = ownSolver ? createWorkerSolver({ logger }) : gridOptions?.solver;
  const grid =
    gridOptions === undefined || gridSolver === undefined
      ? undefined
      : new GridSecurity({
          ...gridOptions,
          solver: gridSolver,
          registry,
          signer,
          chainId: config.chainId,
          topics,
          clock,
          logger,
          publish: (topic, kind, body) => link.publish(topic, sealer.seal(kind, body).bytes),
        });
  if (grid !== undefined) {
    // Positions and acks of one interval must all reach this process: a plain subscription, not the shared one.
    const onGridMessage = (channel: 'positions' | 'acks') => (message: LinkMessage) => {
      const opened = open(message, MAX_SMALL_ENVELOPE);
      if (opened === undefined) return;
      const outcome = channel === 'positions' ? grid.acceptPosition(opened.envelope) : grid.acceptAck(opened.envelope);
      if (!outcome.ok) drop(outcome.reason, outcome.detail, message.topic);
    };
    void link.subscribe(topics.nodeFilter('positions'), onGridMessage('positions')).catch(report('positions'));
    void link.subscribe(topics.nodeFilter('acks'), onGridMessage('acks')).catch(report('acks'));
  }

  const market = isAnchor && options.market !== undefined ? startMarket(options.market) : undefined;
  function startMarket(settings: DsoMarketOptions): MarketSequencer {
    // Anonym -> MGMC, for the positions the market waits for; rebuilt when the authorized set changes.
    let byAnonym = new Map<string, Address>();
    let serial = -1;
    const mgmcOf = (anonym: Address): Address | undefined => {
      const set = registry.authorizedSet();
      if (set.serial !== serial) {
        byAnonym = new Map(
          registry
            .list()
            .filter((e) => e.status === 'authorized' && e.anonym !== undefined)
            .map((e) => [(e.anonym as Address).toLowerCase(), e.mgmc]),
        );
        serial = set.serial;
      }
      return byAnonym.get(anonym.toLowerCase());
    };
    const sequencer = new MarketSequencer({
      ...settings,
      chainId: config.chainId,
      clock,
      logger,
      publish: (interval, seal) =>
        link.publish(topics.market(interval, 'seal'), sealer.seal(MARKET_SEAL_KIND, sealBody(seal)).bytes),
      anonyms: () => registry.authorizedSet().anonyms,
      ...(grid === undefined
        ? {}
        : {
            security: {
              mgmcOf,
              positionTime: (interval, mgmc) => grid.positionTime(interval, mgmc),
              check: async (interval) => {
                const round = await grid.checkInterval(interval);
                return { sent: round.sent.length, secure: round.check?.secure };
              },
              pendingAcks: (interval) => grid.pendingAcks(interval),
            },
          }),
    });
    const onMarket = (channel: 'moves' | 'deliveries') => (message: LinkMessage) => {
      const parsed = parseTopic(message.topic);
      if (parsed.kind !== 'market') {
        drop('bad-topic', parsed.kind === 'unknown' ? parsed.reason : 'not a market topic', message.topic);
        return;
      }
      const result = openEnvelope(message.payload, {
        chainId: config.chainId,
        maxBytes: MAX_SMALL_ENVELOPE,
        verifier: signatures,
      });
      if (!result.ok) {
        drop(result.reason, result.detail, message.topic);
        return;
      }
      const envelope = result.envelope;
      const kind = channel === 'moves' ? MARKET_MOVE_KIND : MARKET_DELIVERY_KIND;
      const authorized = registry.authorizedSet().anonyms.some((a) => a.toLowerCase() === envelope.from.toLowerCase());
      if (envelope.kind !== kind || !authorized || envelope.body.interval !== parsed.interval) {
        drop(
          'market-refused',
          `${envelope.kind} from ${envelope.from}: ` +
            (envelope.kind !== kind
              ? `not a ${kind}`
              : !authorized
                ? 'not an authorized anonym'
                : 'its interval differs from the topic'),
          message.topic,
        );
        return;
      }
      const outcome = channel === 'moves' ? sequencer.acceptMove(envelope) : sequencer.acceptDelivery(envelope);
      if (!outcome.ok) drop(`market-${outcome.reason}`, outcome.detail, message.topic);
    };
    void link.subscribe(topics.marketFilter('moves'), onMarket('moves')).catch(report('market moves'));
    void link.subscribe(topics.marketFilter('deliveries'), onMarket('deliveries')).catch(report('market deliveries'));
    if (settings.schedule !== false) sequencer.start();
    return sequencer;
  }

  const timers: TimerHandle[] = [];
  timers.push(
    clock.setInterval(() => {
      for (const outcome of verifier.retryParked()) handleOutcome(outcome);
    }, options.parkedRetryMs ?? 250),
  );
  timers.push(clock.setInterval(refresh, options.registryRefreshMs ?? 2000));
  if (isAnchor) {
    anchor.start();
    // The retained set is the MGMCs' view of who may trade: publish it on every (re)connect.
    link.onState((change) => {
      if (change.state === 'online') sendAll([registry.authorizedSetMessage()]);
    });
  }
  log.info(
    { address: key.address, db: config.store.path, height: anchor.height, anchor: isAnchor, session },
    isAnchor ? 'DSO node started' : 'DSO verifier started',
  );

  let stopped = false;
  return {
    address: key.address,
    link,
    registry,
    verifier,
    anchor,
    store,
    grid,
    market,
    stats: () => ({
      address: key.address,
      anchor: isAnchor,
      link: link.state,
      dsoHeight: anchor.height,
      pendingEntries: anchor.pendingCount,
      blocks: verifier.stats(),
      receiptsSent,
      headersSent,
      registrations,
      dropped: { ...dropped },
      publishFailures,
    }),
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) t.cancel();
      market?.stop();
      grid?.stop();
      if (ownSolver) await gridSolver?.close();
      flush();
      anchor.stop();
      if (isAnchor) {
        try {
          // Entries accepted so far get their DSO block now rather than after the restart.
          anchor.seal();
        } catch (err) {
          log.error({ err }, 'final DSO seal failed; the entries stay pending in the database');
        }
      }
      await link.close();
      store.close();
      log.info({}, 'DSO stopped');
    },
  };
}
