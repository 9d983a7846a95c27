/**
 * The MGMC runtime's composition root: config in, running parts out. It unlocks the key, opens the ledger, opens
 * the buses, resolves and polls the devices, and listens to the signing meters; stop() takes them down in reverse
 * order. Nothing here is global: the clock, the logger and the config come in, so tests run a site in-process.
 */
import type { Duplex } from 'node:stream';
import { MeterLink, type ReceivedBatch } from '../firmware-bridge/link.js';
import type { ModbusBus } from '../hardware/modbus/types.js';
import { type Catalogue, loadCatalogue } from '../hardware/profile/load.js';
import { openSerialPort } from '../hardware/serial/port.js';
import type { Clock, TimerHandle } from './clock.js';
import type { AgentConfig } from './config/schema.js';
import { loadGenesis } from './dso/genesis.js';
import type { Address } from './identity/keys.js';
import { readKeystoreFile } from './identity/keystore.js';
import { signerFromPrivateKey } from './ledger/block.js';
import type { Ledger } from './ledger/ledger.js';
import { checkMeterBatch } from './ledger/meter-batch.js';
import { openWritableLedger } from './ledger/open.js';
import { MgmcAdjustments } from './link/adjustments.js';
import { deriveAnonymKey } from './link/anonym.js';
import { EnvelopeSealer } from './link/envelope.js';
import { type MarketRuntime, marketCurve, startMarketRuntime } from './link/market-runtime.js';
import { MqttLink } from './link/mqtt-client.js';
import { createMgmcSync, type MgmcSync, nextLinkSession } from './link/sync.js';
import { LinkTopics } from './link/topics.js';
import type { Logger } from './logger.js';
import { marketMeter, marketRules } from './market/config.js';
import { type OptimizerRuntime, startOptimizer } from './optimizer/runtime.js';
import { alignedHorizon } from './optimizer/site-model.js';
import type { Solver } from './optimizer/solver.js';
import { type DeviceStatus, Poller, type PollerOptions } from './poll/poller.js';
import { resolveSite } from './poll/resolve.js';
import type { LedgerStore } from './store/ledger-store.js';

export interface MeterStatus {
  readonly name: string;
  readonly path: string;
  readonly address: string;
  readonly connected: boolean;
  readonly firmware: string | undefined;
  readonly batches: number;
  readonly lastBatch: number | undefined;
  readonly lastError: string | undefined;
}

export interface RunningMgmc {
  readonly address: string;
  readonly ledger: Ledger;
  readonly store: LedgerStore;
  readonly poller: Poller;
  readonly buses: ReadonlyMap<string, ModbusBus>;
  /** Devices that could not be resolved at start (discovery failed); retried in the background. */
  unresolved(): readonly { device: string; message: string }[];
  /** Every polled device, also those resolved later by the retry (poller.status() has only the first ones). */
  devices(): DeviceStatus[];
  meters(): readonly MeterStatus[];
  /** The optimizer and dispatch, when the config has buildings and optimizer.enabled. */
  readonly optimizer: OptimizerRuntime | undefined;
  /** The DSO link, when the config has one. */
  readonly sync: MgmcSync | undefined;
  readonly link: MqttLink | undefined;
  /** The DSO's adjustment contracts (caps on the net position), when the config has a link. */
  readonly adjustments: MgmcAdjustments | undefined;
  /** The P2P market, when market.enabled (with a link and the optimizer). */
  readonly market: MarketRuntime | undefined;
  /**
   * Stops polling and the meters, seals what is unsealed and closes the database. `step` is told each part as it
   * begins, so a caller with a deadline can say which one hangs.
   */
  stop(step?: (name: string) => void): Promise<void>;
}

export interface StartOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Profiles; the shipped catalogue by default. */
  readonly catalogue?: Catalogue;
  /** How often devices that could not be resolved are tried again, ms. */
  readonly retryUnresolvedMs?: number;
  /** The optimizer's solver; a warm HiGHS in a worker thread by default (tests pass an in-process one). */
  readonly solver?: Solver;
  /** Told every device read and how long it took (metrics). */
  readonly onRead?: PollerOptions['onRead'];
}

/** Starts the MGMC role: returns once the ledger is open and polling has begun (devices may still be down). */
export async function startMgmc(config: AgentConfig, options: StartOptions): Promise<RunningMgmc> {
  const { clock, logger } = options;
  const log = logger.child({ module: 'main' });
  const key = await readKeystoreFile(config.identity.keystore, config.identity.passphrase.reveal());
  for (const warning of key.warnings) log.warn({ keystore: config.identity.keystore }, warning);
  const { store, ledger } = openWritableLedger({
    path: config.store.path,
    signer: signerFromPrivateKey(key.privateKey, key.address),
    clock,
    chainId: config.chainId,
    sealEveryRecords: config.ledger.sealEveryRecords,
    sealEverySeconds: config.ledger.sealEverySeconds,
    synchronous: config.store.synchronous,
    logger: logger.child({ module: 'ledger' }),
  });
  ledger.start();
  log.info({ address: key.address, db: config.store.path, height: ledger.sealedHeight }, 'ledger open');
  // The DSO link comes up before polling so that blocks sealed from the first cycle on are shipped; the agent never
  // waits for the broker (the outbox keeps everything until a receipt comes back).
  const dsoLink = config.link === undefined ? undefined : startLink(config, key, store, ledger, clock, logger);

  const catalogue = options.catalogue ?? loadCatalogue();
  const pollLogger = logger.child({ module: 'poll' });
  const site = await resolveSite(config, catalogue, clock, pollLogger);
  for (const problem of site.problems) log.warn({ device: problem.device }, problem.message);
  let optimizer: OptimizerRuntime | undefined;
  let market: MarketRuntime | undefined;
  const trading = config.market.enabled && dsoLink !== undefined;
  const poller = new Poller(site.targets, {
    clock,
    logger: pollLogger,
    sink: ledger,
    onCycle: () => optimizer?.sample(),
    ...(options.onRead === undefined ? {} : { onRead: options.onRead }),
  });
  poller.start();
  log.info({ devices: site.targets.length, buses: site.buses.size }, 'polling');
  const extraPollers: Poller[] = [];
  if (config.buildings.length > 0 && config.optimizer.enabled) {
    const polled = (device: string) => [poller, ...extraPollers].find((p) => p.has(device));
    optimizer = startOptimizer({
      config,
      clock,
      logger,
      ledger,
      db: store.db,
      latest: (device) => polled(device)?.latest(device),
      ...(options.solver === undefined ? {} : { solver: options.solver }),
      ...(dsoLink === undefined ? {} : { dso: dsoLink.adjustments }),
      // With the market on, the committed trades shape the plan and the market reports the positions they leave.
      ...(trading ? { publishPositions: false, commitments: (h) => market?.commitments(h) ?? noCommitments } : {}),
      // Devices resolved later (retry below) are planned for but dispatched only after a restart.
      devices: site.targets.map((t) => ({
        name: t.name,
        bus: t.bus,
        unit: t.unit,
        points: site.placed.get(t.name) ?? [],
      })),
    });
  }

  if (trading && dsoLink !== undefined && optimizer !== undefined) {
    market = startTrading(config, key, dsoLink, ledger, store, optimizer, clock, logger);
  } else if (config.market.enabled) {
    log.warn({}, 'market.enabled needs a link to the DSO and the optimizer; not trading');
  }

  // Devices whose discovery failed (switched off at start) are retried; resolved ones join a poller of their own.
  let unresolved = site.problems;
  let retryTimer: TimerHandle | undefined;
  const retry = async () => {
    if (unresolved.length === 0) return;
    const names = new Set(unresolved.map((p) => p.device));
    const again = await resolveSite(
      { buses: config.buses, devices: config.devices.filter((d) => names.has(d.name)) },
      catalogue,
      clock,
      pollLogger,
      site.buses,
    );
    unresolved = again.problems;
    if (again.targets.length > 0) {
      const extra = new Poller(again.targets, {
        clock,
        logger: pollLogger,
        sink: ledger,
        ...(options.onRead === undefined ? {} : { onRead: options.onRead }),
      });
      extra.start();
      extraPollers.push(extra);
      log.info({ devices: again.targets.map((t) => t.name) }, 'devices resolved on retry and now polled');
    }
  };
  if (unresolved.length > 0) {
    retryTimer = clock.setInterval(() => {
      retry().catch((error: unknown) => log.error({ err: error }, 'retrying unresolved devices failed'));
    }, options.retryUnresolvedMs ?? 60_000);
  }

  const meters = config.meters.map((meter) => startMeter(meter, ledger, store, clock, logger));

  return {
    address: key.address,
    ledger,
    store,
    poller,
    buses: site.buses,
    unresolved: () => unresolved,
    devices: () => [poller, ...extraPollers].flatMap((p) => p.status()),
    meters: () => meters.map((m) => m.status()),
    optimizer,
    sync: dsoLink?.sync,
    link: dsoLink?.link,
    adjustments: dsoLink?.adjustments,
    market,
    async stop(step = () => {}) {
      retryTimer?.cancel();
      step('market');
      await market?.stop();
      step('optimizer (devices handed back, solver closed)');
      await optimizer?.stop();
      step('polling (the reads in flight are stored)');
      await Promise.all([poller.stop(), ...extraPollers.map((p) => p.stop())]);
      step('meters');
      await Promise.all(meters.map((m) => m.stop()));
      step('buses');
      await Promise.all([...site.buses.values()].map((bus) => bus.close()));
      step('sealing the last block');
      ledger.stop();
      if (dsoLink !== undefined) {
        dsoLink.adjustments.stop();
        dsoLink.sync.stop();
        step('broker (publishing offline)');
        await dsoLink.link.close();
      }
      step('closing the database');
      store.close();
      log.info({ height: ledger.sealedHeight, lastSeq: ledger.lastSeq }, 'stopped');
    },
  };
}

/** Connects the MGMC to its DSO: registration, block shipping, receipts, the light client (agent/link/sync.ts). */
function startLink(
  config: AgentConfig,
  key: { privateKey: Uint8Array; address: Address },
  store: LedgerStore,
  ledger: Ledger,
  clock: Clock,
  logger: Logger,
): DsoLink {
  const linkConfig = config.link;
  const genesisPath = config.dso.genesis;
  const bus = config.dso.feederBus;
  if (linkConfig === undefined || genesisPath === undefined || bus === undefined) {
    throw new Error('a link to the DSO needs link.url, dso.genesis and dso.feederBus in the config');
  }
  const genesis = loadGenesis(genesisPath);
  if (genesis.chainId !== config.chainId) {
    throw new Error(
      `${genesisPath}: the DSO genesis is for chain ${genesis.chainId} but the config says chainId ` +
        `${config.chainId}: use the genesis file of your DSO and its chain id`,
    );
  }
  const signer = signerFromPrivateKey(key.privateKey, key.address);
  const sealer = new EnvelopeSealer({ signer, chainId: config.chainId, session: nextLinkSession(store), clock });
  const topics = new LinkTopics(config.chainId);
  const link = new MqttLink({
    url: linkConfig.url,
    sealer,
    topics,
    clock,
    logger,
    keepaliveSeconds: linkConfig.keepaliveSeconds,
    protocolVersion: linkConfig.protocolVersion,
    ...(linkConfig.clientId === undefined ? {} : { clientId: linkConfig.clientId }),
    ...(linkConfig.username === undefined ? {} : { username: linkConfig.username }),
    ...(linkConfig.password === undefined ? {} : { password: linkConfig.password.reveal() }),
    ...(linkConfig.tls === undefined ? {} : { tls: linkConfig.tls }),
  });
  const pruneAfterDays = config.ledger.pruneAfterDays;
  const sync = createMgmcSync({
    store,
    ledger,
    link,
    sealer,
    topics,
    genesis,
    registration: {
      meters: config.meters.map((m) => m.address),
      bus,
      trade: config.dso.trade,
      anonymEpoch: config.dso.anonymEpoch,
    },
    privateKey: key.privateKey,
    clock,
    logger,
    maxBlockBytes: linkConfig.maxBlockBytes,
    outboxOptions: { receiptTimeoutMs: linkConfig.receiptTimeoutMs },
    ...(pruneAfterDays === undefined ? {} : { pruneAfterMs: pruneAfterDays * 86_400_000 }),
  });
  const adjustments = new MgmcAdjustments({
    link,
    sealer,
    topics,
    db: store.db,
    privateKey: key.privateKey,
    validators: () => sync.validators(),
    clock,
    logger,
    ledger,
  });
  sync.start();
  // Before connecting, so a contract waiting for this MGMC on the broker finds its handler.
  adjustments.start();
  link.connect();
  return { sync, link, adjustments, topics, session: sealer.session };
}

interface DsoLink {
  readonly sync: MgmcSync;
  readonly link: MqttLink;
  readonly adjustments: MgmcAdjustments;
  readonly topics: LinkTopics;
  readonly session: number;
}

const noCommitments = { trades: [], caps: {} };

/**
 * The market agent: curves from the optimizer (the market interval's steps summed), caps from the DSO's contracts,
 * the outcome into the ledger and the plan (link/market-runtime.ts).
 */
function startTrading(
  config: AgentConfig,
  key: { privateKey: Uint8Array; address: Address },
  dsoLink: DsoLink,
  ledger: Ledger,
  store: LedgerStore,
  optimizer: OptimizerRuntime,
  clock: Clock,
  logger: Logger,
): MarketRuntime {
  const intervalMs = config.market.intervalMinutes * 60_000;
  const opt = config.optimizer;
  const meterName = marketMeter(config);
  const meter = config.meters.find((m) => m.name === meterName)?.address;
  const market = startMarketRuntime({
    chainId: config.chainId,
    clock,
    logger,
    link: dsoLink.link,
    topics: dsoLink.topics,
    session: dsoLink.session,
    anonymKey: deriveAnonymKey(key.privateKey, config.chainId, config.dso.anonymEpoch),
    validators: () => dsoLink.sync.validators(),
    ledger,
    store,
    intervalMs,
    rules: marketRules(config),
    green: config.market.green,
    ...(meter === undefined ? {} : { meter }),
    caps: (interval) => dsoLink.adjustments.capsFor(interval),
    publishPosition: (interval, netW, durationMs) => dsoLink.adjustments.publishPosition(interval, netW, durationMs),
    curve: async (interval) => {
      const now = clock.now();
      const h = alignedHorizon(now, opt.stepMinutes, opt.horizonHours);
      const steps: number[] = [];
      for (let s = 0; s < h.steps; s++) {
        const start = h.start + s * h.stepMs;
        if (start >= interval && start < interval + intervalMs) steps.push(s);
      }
      if (steps.length === 0) return undefined;
      const curves = await optimizer.service.priceResponse(steps, now);
      return marketCurve(curves, interval, h.stepMs);
    },
    onTraded: () => void optimizer.service.runOnce(),
  });
  market.start().catch((err: Error) => logger.error({ err }, `market subscription failed: ${err.message}`));
  return market;
}

type MeterConfig = AgentConfig['meters'][number];

/**
 * One signing meter: opens its serial line (again and again if it is unplugged), verifies each batch against the
 * configured address and stores it verbatim before the link acknowledges it.
 */
function startMeter(meter: MeterConfig, ledger: Ledger, store: LedgerStore, clock: Clock, logger: Logger) {
  const log = logger.child({ module: 'meter', meter: meter.name });
  let link: MeterLink | undefined;
  let stream: Duplex | undefined;
  let stopped = false;
  let reopenTimer: TimerHandle | undefined;
  let firmware: string | undefined;
  let batches = 0;
  let lastBatch: number | undefined;
  let lastError: string | undefined;

  const store1 = async (received: ReceivedBatch) => {
    const problem = checkMeterBatch(received.record);
    if (problem !== undefined) throw new Error(`meter '${meter.name}': ${problem}`);
    ledger.append([{ type: 'meter-batch', body: received.record }]);
    batches++;
    lastBatch = clock.now();
  };

  const open = async () => {
    if (stopped) return;
    try {
      stream = await openSerialPort({ path: meter.path, baudRate: meter.baudRate });
    } catch (error) {
      lastError = (error as Error).message;
      log.warn({ path: meter.path }, `meter '${meter.name}': ${lastError}; trying again in 10 s`);
      reopenTimer = clock.setTimeout(() => void open(), 10_000);
      return;
    }
    link = new MeterLink({
      stream,
      clock,
      expectedMeter: meter.address,
      onBatch: store1,
      isStored: (received) => store.hasRecordContaining('meter-batch', received.record.sig),
    });
    link.on('hello', (hello) => {
      firmware = hello.firmware;
      lastError = undefined;
      log.info({ firmware: hello.firmware, serial: hello.serial }, `meter '${meter.name}' says hello`);
    });
    link.on('error', (event) => {
      lastError = event.message;
      log.warn({ kind: event.kind }, `meter '${meter.name}': ${event.message}`);
    });
    stream.once('close', () => {
      if (stopped) return;
      link?.close();
      link = undefined;
      log.warn({ path: meter.path }, `meter '${meter.name}': serial line closed; reopening in 10 s`);
      reopenTimer = clock.setTimeout(() => void open(), 10_000);
    });
    link.start();
  };
  void open();

  return {
    status: (): MeterStatus => ({
      name: meter.name,
      path: meter.path,
      address: meter.address,
      connected: link !== undefined,
      firmware,
      batches,
      lastBatch,
      lastError,
    }),
    async stop() {
      stopped = true;
      reopenTimer?.cancel();
      link?.close();
      stream?.destroy();
    },
  };
}
