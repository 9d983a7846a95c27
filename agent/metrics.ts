/**
 * Prometheus metrics of a running agent, one prom-client Registry per agent (never the library's global one, so two
 * agents in one process, as in tests and the demo, never mix their series).
 *
 * Almost everything is read on scrape through `collect()` from the counters and stats the running parts keep anyway,
 * so no deep code is instrumented and a scrape costs a few reads. The one exception is the read latency of each
 * device, which only the poller sees: it comes in through the poller's onRead hook (observeRead) into a histogram.
 * Counters fed from such stats restart from zero with the agent, as Prometheus counters may.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DsoStats } from './dso/node.js';
import type { Ledger } from './ledger/ledger.js';
import type { SyncStats } from './link/sync.js';
import type { MeterStatus } from './main.js';
import type { ParticipantStats } from './market/session.js';
import type { OptimizerStats } from './optimizer/service.js';
import type { DeviceStatus } from './poll/poller.js';

/** The parts of a running MGMC the metrics read (RunningMgmc fits; tests pass a fake). */
export interface MgmcMetricsSource {
  devices(): readonly DeviceStatus[];
  unresolved(): readonly unknown[];
  meters(): readonly MeterStatus[];
  readonly ledger: Pick<Ledger, 'sealedHeight' | 'unsealedCount' | 'lastSeq'>;
  readonly sync:
    | {
        stats(): Pick<SyncStats, 'anchoredHeight' | 'outboxDepth' | 'outbox' | 'receipts' | 'authorization'>;
        lastReceiptTime(): number | undefined;
      }
    | undefined;
  readonly link: { readonly online: boolean; readonly connectionCount: number } | undefined;
  readonly optimizer: { readonly service: { stats(): OptimizerStats } } | undefined;
  readonly market:
    | { readonly market: { stats(): { seals: number }; readonly participant: { stats(): ParticipantStats } } }
    | undefined;
}

/** The parts of a running DSO node the metrics read (RunningDso fits). */
export interface DsoMetricsSource {
  stats(): DsoStats;
  readonly link: { readonly online: boolean; readonly connectionCount: number };
  readonly registry: { authorizedSet(): { readonly anonyms: readonly unknown[] } };
}

export interface AgentMetricsOptions {
  /** Also the process metrics of prom-client (CPU, memory, event-loop lag, GC), on this registry. Default false. */
  readonly processMetrics?: boolean;
}

/** Read latency buckets, s: a Modbus TCP read takes ms, a 125-register RTU read at 9600 baud about 0.3 s. */
const READ_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly readSeconds: Histogram<'device'>;

  constructor(options: AgentMetricsOptions = {}) {
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
    this.readSeconds = new Histogram({
      name: 'mgmc_poll_read_duration_seconds',
      help: 'Time to read one device (all its register blocks), by device; failed reads included',
      labelNames: ['device'],
      buckets: READ_BUCKETS,
      registers: [this.registry],
    });
  }

  /** The poller's onRead hook (StartOptions.onRead). */
  readonly observeRead = (device: string, ms: number): void => {
    this.readSeconds.observe({ device }, ms / 1000);
  };

  /** The Prometheus text of every metric, as served on /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Registers the MGMC's metrics, read from `agent` on every scrape. Call once. */
  watchMgmc(agent: MgmcMetricsSource): void {
    const r = [this.registry];
    const devices = () => agent.devices();
    counterFrom(r, 'mgmc_poll_reads_total', 'Reads of each device since the agent started', ['device'], () =>
      devices().map((d) => [{ device: d.name }, d.cycles]),
    );
    counterFrom(r, 'mgmc_poll_errors_total', 'Reads of each device that failed (any block)', ['device'], () =>
      devices().map((d) => [{ device: d.name }, d.failedCycles]),
    );
    gaugeFrom(r, 'mgmc_device_online', '1 when the last read of the device answered in full, else 0', ['device'], () =>
      devices().map((d) => [{ device: d.name }, d.state === 'online' ? 1 : 0]),
    );
    gaugeFrom(
      r,
      'mgmc_device_last_good_read_timestamp_seconds',
      'When the device last answered in full (Unix time); absent before its first good read',
      ['device'],
      () => devices().flatMap((d) => (d.lastGood === undefined ? [] : [[{ device: d.name }, d.lastGood / 1000]])),
    );
    gaugeFrom(r, 'mgmc_devices_unresolved', 'Configured devices not polled: discovery failed, retried', [], () => [
      [{}, agent.unresolved().length],
    ]);
    gaugeFrom(r, 'mgmc_meter_connected', '1 while the signing meter serial line is open', ['meter'], () =>
      agent.meters().map((m) => [{ meter: m.name }, m.connected ? 1 : 0]),
    );
    counterFrom(r, 'mgmc_meter_batches_total', 'Meter-signed batches stored in the ledger', ['meter'], () =>
      agent.meters().map((m) => [{ meter: m.name }, m.batches]),
    );
    gaugeFrom(r, 'mgmc_ledger_sealed_height', 'Height of the last sealed ledger block', [], () => [
      [{}, agent.ledger.sealedHeight],
    ]);
    gaugeFrom(r, 'mgmc_ledger_unsealed_records', 'Records stored but not yet sealed into a block', [], () => [
      [{}, agent.ledger.unsealedCount],
    ]);
    gaugeFrom(r, 'mgmc_ledger_last_seq', 'Sequence number of the last ledger record', [], () => [
      [{}, agent.ledger.lastSeq],
    ]);

    const { sync, link, optimizer, market } = agent;
    if (sync !== undefined) {
      gaugeFrom(r, 'mgmc_ledger_anchored_height', 'Highest ledger block with a checked DSO receipt', [], () => [
        [{}, sync.stats().anchoredHeight],
      ]);
      gaugeFrom(
        r,
        'mgmc_outbox_depth',
        'Messages to the DSO not yet acknowledged (blocks without a receipt)',
        [],
        () => [[{}, sync.stats().outboxDepth]],
      );
      gaugeFrom(
        r,
        'mgmc_sync_lag_seconds',
        'Age of the oldest message to the DSO not yet acknowledged; 0 when the outbox is empty',
        [],
        () => [[{}, (sync.stats().outbox.oldestPendingAgeMs ?? 0) / 1000]],
      );
      counterFrom(r, 'mgmc_sync_receipts_total', 'New receipts from the DSO checked and stored', [], () => [
        [{}, sync.stats().receipts],
      ]);
      gaugeFrom(
        r,
        'mgmc_sync_last_receipt_timestamp_seconds',
        'When the last DSO receipt arrived (Unix time); absent before the first in this run',
        [],
        () => {
          const at = sync.lastReceiptTime();
          return at === undefined ? [] : [[{}, at / 1000]];
        },
      );
      gaugeFrom(r, 'mgmc_sync_authorized', '1 when the DSO authorized this MGMC (blocks are sent), else 0', [], () => [
        [{}, sync.stats().authorization.status === 'authorized' ? 1 : 0],
      ]);
    }
    if (link !== undefined) this.watchLink(link);
    if (optimizer !== undefined) {
      const stats = () => optimizer.service.stats();
      counterFrom(r, 'mgmc_optimizer_runs_total', 'Optimizer plans made', [], () => [[{}, stats().runs]]);
      counterFrom(r, 'mgmc_optimizer_failures_total', 'Optimizer plans that failed', [], () => [
        [{}, stats().failures],
      ]);
      gaugeFrom(r, 'mgmc_optimizer_last_solve_seconds', 'Solver time of the plan in force', [], () => {
        const ms = stats().lastSolveMs;
        return ms === undefined ? [] : [[{}, ms / 1000]];
      });
      gaugeFrom(
        r,
        'mgmc_optimizer_last_run_timestamp_seconds',
        'When the optimizer last planned (Unix time)',
        [],
        () => {
          const at = stats().lastRunAt;
          return at === undefined ? [] : [[{}, at / 1000]];
        },
      );
    }
    if (market !== undefined) {
      const participant = () => market.market.participant.stats();
      counterFrom(r, 'mgmc_market_attempts_total', 'Market interval attempts joined', [], () => [
        [{}, participant().attempts],
      ]);
      counterFrom(r, 'mgmc_market_finals_total', 'Market attempts that reached a final clearing', [], () => [
        [{}, participant().finals],
      ]);
      counterFrom(r, 'mgmc_market_disputes_total', 'Market seals that disagreed with this MGMC', [], () => [
        [{}, participant().disputes],
      ]);
      counterFrom(r, 'mgmc_market_settlements_total', 'Market intervals settled', [], () => [
        [{}, participant().settlements],
      ]);
      counterFrom(r, 'mgmc_market_deliveries_sent_total', 'Signed metered deliveries sent', [], () => [
        [{}, participant().sent],
      ]);
      counterFrom(r, 'mgmc_market_seals_total', 'Sequencer seals received and checked', [], () => [
        [{}, market.market.stats().seals],
      ]);
    }
  }

  /** Registers the DSO node's metrics, read from `dso` on every scrape. Call once. */
  watchDso(dso: DsoMetricsSource): void {
    const r = [this.registry];
    const stats = () => dso.stats();
    gaugeFrom(r, 'mgmc_dso_chain_height', 'Height of the DSO chain', [], () => [[{}, stats().dsoHeight]]);
    gaugeFrom(r, 'mgmc_dso_pending_entries', 'Accepted MGMC blocks waiting for the next DSO block', [], () => [
      [{}, stats().pendingEntries],
    ]);
    counterFrom(
      r,
      'mgmc_dso_blocks_total',
      'MGMC blocks received, by outcome (accepted, duplicate, parked, rejected)',
      ['outcome'],
      () => {
        const b = stats().blocks;
        const rejected = Object.values(b.rejected).reduce((sum, n) => sum + (n ?? 0), 0);
        return [
          [{ outcome: 'accepted' }, b.accepted],
          [{ outcome: 'duplicate' }, b.duplicate],
          [{ outcome: 'parked' }, b.parked],
          [{ outcome: 'rejected' }, rejected],
        ];
      },
    );
    counterFrom(r, 'mgmc_dso_blocks_rejected_total', 'MGMC blocks rejected, by reason', ['reason'], () =>
      Object.entries(stats().blocks.rejected).map(([reason, n]) => [{ reason }, n ?? 0]),
    );
    counterFrom(r, 'mgmc_dso_receipts_sent_total', 'Receipts sent to MGMCs', [], () => [[{}, stats().receiptsSent]]);
    counterFrom(r, 'mgmc_dso_headers_sent_total', 'DSO headers published', [], () => [[{}, stats().headersSent]]);
    counterFrom(r, 'mgmc_dso_registrations_total', 'MGMC registrations received', [], () => [
      [{}, stats().registrations],
    ]);
    counterFrom(r, 'mgmc_dso_messages_dropped_total', 'Messages dropped before processing, by reason', ['reason'], () =>
      Object.entries(stats().dropped).map(([reason, n]) => [{ reason }, n]),
    );
    counterFrom(r, 'mgmc_dso_publish_failures_total', 'Publishes to the broker that failed', [], () => [
      [{}, stats().publishFailures],
    ]);
    gaugeFrom(r, 'mgmc_dso_authorized_mgmcs', 'MGMCs in the authorized set', [], () => [
      [{}, dso.registry.authorizedSet().anonyms.length],
    ]);
    this.watchLink(dso.link);
  }

  private watchLink(link: { readonly online: boolean; readonly connectionCount: number }): void {
    const r = [this.registry];
    gaugeFrom(r, 'mgmc_broker_connected', '1 while connected to the MQTT broker, else 0', [], () => [
      [{}, link.online ? 1 : 0],
    ]);
    counterFrom(r, 'mgmc_broker_connections_total', 'Connections made to the broker (1 + reconnects)', [], () => [
      [{}, link.connectionCount],
    ]);
  }
}

type Labels = Record<string, string>;
type Sample = readonly [Labels, number];

/** A gauge whose samples are read on each scrape; series no longer reported disappear. */
function gaugeFrom(
  registers: Registry[],
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => readonly Sample[],
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers,
    collect() {
      this.reset();
      // reset() leaves a label-less gauge at 0: a timestamp never taken must be absent, not 1970.
      if (labelNames.length === 0) this.remove({});
      for (const [labels, value] of readSafely(read)) this.set(labels, value);
    },
  });
}

/** A counter mirroring a running total the agent keeps (prom-client counters cannot be set, so reset and add). */
function counterFrom(
  registers: Registry[],
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => readonly Sample[],
): void {
  new Counter({
    name,
    help,
    labelNames,
    registers,
    collect() {
      this.reset();
      if (labelNames.length === 0) this.remove({});
      for (const [labels, value] of readSafely(read)) this.inc(labels, value);
    },
  });
}

/**
 * A source that cannot answer (its database closed at the end of a stop) leaves its series out of this scrape
 * instead of failing the whole scrape: the other series, and the gap itself, are what a technician needs then.
 */
function readSafely(read: () => readonly Sample[]): readonly Sample[] {
  try {
    return read();
  } catch {
    return [];
  }
}
