/**
 * The agent's Prometheus metrics: each series read on scrape from what the running parts report, the poll latency
 * histogram fed by the poller's hook, and one registry per agent (nothing lands in prom-client's global registry).
 */
import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { DsoStats } from '../../agent/dso/node.js';
import { AgentMetrics, type DsoMetricsSource, type MgmcMetricsSource } from '../../agent/metrics.js';
import type { OptimizerStats } from '../../agent/optimizer/service.js';
import type { DeviceStatus } from '../../agent/poll/poller.js';

function device(name: string, overrides: Partial<DeviceStatus> = {}): DeviceStatus {
  return {
    name,
    bus: 'lan',
    unit: 1,
    state: 'online',
    lastGood: 1_700_000_000_000,
    lastAttempt: 1_700_000_000_000,
    lastError: undefined,
    consecutiveFailures: 0,
    cycles: 10,
    failedCycles: 0,
    overruns: 0,
    ...overrides,
  };
}

/** A running MGMC as the metrics see it; the test changes its fields between scrapes. */
function fakeMgmc() {
  const state = {
    devices: [device('pv'), device('ev', { state: 'offline', lastGood: undefined, cycles: 7, failedCycles: 7 })],
    ledger: { sealedHeight: 42, unsealedCount: 3, lastSeq: 1234 },
    sync: {
      anchoredHeight: 40,
      outboxDepth: 2,
      oldestPendingAgeMs: 12_500 as number | undefined,
      receipts: 40,
      authorized: true,
      lastReceipt: 1_700_000_001_000 as number | undefined,
    },
    online: true,
    optimizer: { runs: 5, failures: 1, lastRunAt: 1_700_000_002_000, lastSolveMs: 35, lastStatus: 'optimal' },
  };
  const source: MgmcMetricsSource = {
    devices: () => state.devices,
    unresolved: () => [{ device: 'heat-pump', message: 'no answer' }],
    meters: () => [
      {
        name: 'grid-signer',
        path: '/dev/ttyUSB0',
        address: '0x0',
        connected: true,
        firmware: '1.0',
        batches: 9,
        lastBatch: undefined,
        lastError: undefined,
      },
    ],
    ledger: state.ledger,
    sync: {
      stats: () => ({
        anchoredHeight: state.sync.anchoredHeight,
        outboxDepth: state.sync.outboxDepth,
        outbox: {
          pending: 1,
          sent: 1,
          acked: 40,
          inFlight: 1,
          oldestPendingAgeMs: state.sync.oldestPendingAgeMs,
          heldKinds: [],
          held: 0,
        },
        receipts: state.sync.receipts,
        authorization: { status: state.sync.authorized ? 'authorized' : 'pending' },
      }),
      lastReceiptTime: () => state.sync.lastReceipt,
    },
    link: {
      get online() {
        return state.online;
      },
      connectionCount: 2,
    },
    optimizer: { service: { stats: () => state.optimizer as OptimizerStats } },
    market: {
      market: {
        stats: () => ({ seals: 17 }),
        participant: { stats: () => ({ attempts: 4, finals: 3, disputes: 1, settlements: 2, sent: 2 }) },
      },
    },
  };
  return { state, source };
}

/** The value of one sample line, e.g. sample(text, 'mgmc_poll_errors_total{device="ev"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('MGMC metrics', () => {
  it('reports devices, ledger, link, optimizer and market from the running agent, read on each scrape', async () => {
    const { state, source } = fakeMgmc();
    const metrics = new AgentMetrics();
    metrics.watchMgmc(source);
    let text = await metrics.text();

    expect(sample(text, 'mgmc_poll_reads_total{device="pv"}')).toBe(10);
    expect(sample(text, 'mgmc_poll_errors_total{device="pv"}')).toBe(0);
    expect(sample(text, 'mgmc_poll_errors_total{device="ev"}')).toBe(7);
    expect(sample(text, 'mgmc_device_online{device="pv"}')).toBe(1);
    expect(sample(text, 'mgmc_device_online{device="ev"}')).toBe(0);
    expect(sample(text, 'mgmc_device_last_good_read_timestamp_seconds{device="pv"}')).toBe(1_700_000_000);
    // A device that never answered has no last-good time at all, rather than 1970.
    expect(text).not.toContain('mgmc_device_last_good_read_timestamp_seconds{device="ev"}');
    expect(sample(text, 'mgmc_devices_unresolved')).toBe(1);
    expect(sample(text, 'mgmc_meter_connected{meter="grid-signer"}')).toBe(1);
    expect(sample(text, 'mgmc_meter_batches_total{meter="grid-signer"}')).toBe(9);
    expect(sample(text, 'mgmc_ledger_sealed_height')).toBe(42);
    expect(sample(text, 'mgmc_ledger_unsealed_records')).toBe(3);
    expect(sample(text, 'mgmc_ledger_last_seq')).toBe(1234);
    expect(sample(text, 'mgmc_ledger_anchored_height')).toBe(40);
    expect(sample(text, 'mgmc_outbox_depth')).toBe(2);
    expect(sample(text, 'mgmc_sync_lag_seconds')).toBe(12.5);
    expect(sample(text, 'mgmc_sync_receipts_total')).toBe(40);
    expect(sample(text, 'mgmc_sync_last_receipt_timestamp_seconds')).toBe(1_700_000_001);
    expect(sample(text, 'mgmc_sync_authorized')).toBe(1);
    expect(sample(text, 'mgmc_broker_connected')).toBe(1);
    expect(sample(text, 'mgmc_broker_connections_total')).toBe(2);
    expect(sample(text, 'mgmc_optimizer_runs_total')).toBe(5);
    expect(sample(text, 'mgmc_optimizer_failures_total')).toBe(1);
    expect(sample(text, 'mgmc_optimizer_last_solve_seconds')).toBe(0.035);
    expect(sample(text, 'mgmc_optimizer_last_run_timestamp_seconds')).toBe(1_700_000_002);
    expect(sample(text, 'mgmc_market_attempts_total')).toBe(4);
    expect(sample(text, 'mgmc_market_finals_total')).toBe(3);
    expect(sample(text, 'mgmc_market_disputes_total')).toBe(1);
    expect(sample(text, 'mgmc_market_settlements_total')).toBe(2);
    expect(sample(text, 'mgmc_market_deliveries_sent_total')).toBe(2);
    expect(sample(text, 'mgmc_market_seals_total')).toBe(17);
    expect(text).toContain('# TYPE mgmc_poll_errors_total counter');
    expect(text).toContain('# TYPE mgmc_outbox_depth gauge');

    // The next scrape sees the agent as it is then: the broker gone, the outbox drained, a device gone.
    state.online = false;
    state.sync.outboxDepth = 0;
    state.sync.oldestPendingAgeMs = undefined;
    state.ledger.sealedHeight = 43;
    state.devices = [device('pv', { cycles: 11 })];
    text = await metrics.text();
    expect(sample(text, 'mgmc_broker_connected')).toBe(0);
    expect(sample(text, 'mgmc_outbox_depth')).toBe(0);
    expect(sample(text, 'mgmc_sync_lag_seconds')).toBe(0);
    expect(sample(text, 'mgmc_ledger_sealed_height')).toBe(43);
    expect(sample(text, 'mgmc_poll_reads_total{device="pv"}')).toBe(11);
    expect(text).not.toContain('device="ev"');
  });

  it('measures each device read in a histogram, in seconds', async () => {
    const metrics = new AgentMetrics();
    metrics.observeRead('pv', 4);
    metrics.observeRead('pv', 30);
    metrics.observeRead('grid-meter', 320);
    const text = await metrics.text();
    expect(text).toContain('# TYPE mgmc_poll_read_duration_seconds histogram');
    expect(sample(text, 'mgmc_poll_read_duration_seconds_count{device="pv"}')).toBe(2);
    expect(sample(text, 'mgmc_poll_read_duration_seconds_sum{device="pv"}')).toBeCloseTo(0.034, 9);
    expect(sample(text, 'mgmc_poll_read_duration_seconds_bucket{le="0.005",device="pv"}')).toBe(1);
    expect(sample(text, 'mgmc_poll_read_duration_seconds_bucket{le="0.05",device="pv"}')).toBe(2);
    expect(sample(text, 'mgmc_poll_read_duration_seconds_bucket{le="0.25",device="grid-meter"}')).toBe(0);
    expect(sample(text, 'mgmc_poll_read_duration_seconds_bucket{le="0.5",device="grid-meter"}')).toBe(1);
  });

  it('leaves out the link, optimizer and market series when the agent runs without them', async () => {
    const { source } = fakeMgmc();
    const metrics = new AgentMetrics();
    metrics.watchMgmc({ ...source, sync: undefined, link: undefined, optimizer: undefined, market: undefined });
    const text = await metrics.text();
    expect(sample(text, 'mgmc_ledger_sealed_height')).toBe(42);
    for (const name of ['mgmc_outbox_depth', 'mgmc_broker_connected', 'mgmc_optimizer_runs_total', 'mgmc_market_']) {
      expect(text).not.toContain(name);
    }
  });

  it('leaves out the series of a part that cannot answer instead of failing the scrape', async () => {
    const { source } = fakeMgmc();
    const metrics = new AgentMetrics();
    metrics.watchMgmc({
      ...source,
      sync: {
        stats: () => {
          throw new TypeError('The database connection is not open');
        },
        lastReceiptTime: () => undefined,
      },
    });
    const text = await metrics.text();
    expect(sample(text, 'mgmc_ledger_sealed_height')).toBe(42);
    expect(sample(text, 'mgmc_outbox_depth')).toBeUndefined();
    expect(sample(text, 'mgmc_sync_receipts_total')).toBeUndefined();
    expect(text).toContain('# TYPE mgmc_outbox_depth gauge');
  });

  it('keeps each agent on its own registry: two agents in one process never mix, the global one stays empty', async () => {
    const a = new AgentMetrics();
    const b = new AgentMetrics();
    a.watchMgmc(fakeMgmc().source);
    const other = fakeMgmc();
    other.state.ledger.sealedHeight = 7;
    b.watchMgmc(other.source);
    expect(sample(await a.text(), 'mgmc_ledger_sealed_height')).toBe(42);
    expect(sample(await b.text(), 'mgmc_ledger_sealed_height')).toBe(7);
    expect(globalRegistry.getSingleMetric('mgmc_ledger_sealed_height')).toBeUndefined();
    expect(a.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('adds the process metrics (memory, CPU, event loop) on request', async () => {
    const text = await new AgentMetrics({ processMetrics: true }).text();
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });
});

describe('DSO metrics', () => {
  it('reports the DSO chain, the blocks by outcome and reason, and the broker', async () => {
    const stats: DsoStats = {
      address: '0xD50',
      anchor: true,
      link: 'online',
      dsoHeight: 12,
      pendingEntries: 3,
      blocks: { accepted: 100, duplicate: 4, parked: 2, rejected: { 'bad-signature': 1, 'out-of-order': 2 } },
      receiptsSent: 98,
      headersSent: 12,
      registrations: 5,
      dropped: { malformed: 1 },
      publishFailures: 0,
    };
    const source: DsoMetricsSource = {
      stats: () => stats,
      link: { online: true, connectionCount: 1 },
      registry: { authorizedSet: () => ({ anonyms: ['0x1', '0x2'] }) },
    };
    const metrics = new AgentMetrics();
    metrics.watchDso(source);
    const text = await metrics.text();
    expect(sample(text, 'mgmc_dso_chain_height')).toBe(12);
    expect(sample(text, 'mgmc_dso_pending_entries')).toBe(3);
    expect(sample(text, 'mgmc_dso_blocks_total{outcome="accepted"}')).toBe(100);
    expect(sample(text, 'mgmc_dso_blocks_total{outcome="duplicate"}')).toBe(4);
    expect(sample(text, 'mgmc_dso_blocks_total{outcome="parked"}')).toBe(2);
    expect(sample(text, 'mgmc_dso_blocks_total{outcome="rejected"}')).toBe(3);
    expect(sample(text, 'mgmc_dso_blocks_rejected_total{reason="out-of-order"}')).toBe(2);
    expect(sample(text, 'mgmc_dso_receipts_sent_total')).toBe(98);
    expect(sample(text, 'mgmc_dso_headers_sent_total')).toBe(12);
    expect(sample(text, 'mgmc_dso_registrations_total')).toBe(5);
    expect(sample(text, 'mgmc_dso_messages_dropped_total{reason="malformed"}')).toBe(1);
    expect(sample(text, 'mgmc_dso_publish_failures_total')).toBe(0);
    expect(sample(text, 'mgmc_dso_authorized_mgmcs')).toBe(2);
    expect(sample(text, 'mgmc_broker_connected')).toBe(1);
  });
});
