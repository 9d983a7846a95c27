/** mgmc market replay: recompute every round's clearing of an interval from the ledger's orders. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { openLedgerStore } from '../ledger/open.js';
import { decodeRecord, type LedgerRecord } from '../ledger/records.js';
import { clearRound, type Trade, tradeId } from '../market/clearing.js';
import type { SignedOrder } from '../market/order.js';
import { fromOrderRecord, fromTradeRecord } from '../market/records.js';
import type { LedgerStore } from '../store/ledger-store.js';
import { CommandError, EXIT, type Io } from './io.js';

export interface MarketReplayOptions {
  readonly db: string;
  /** Interval start, ms. */
  readonly interval: number;
  readonly json: boolean;
}

export interface RoundReplay {
  readonly round: number;
  readonly orders: number;
  readonly trades: number;
  readonly ok: boolean;
  /** The first difference, for a person. */
  readonly difference?: string;
}

/** Interval start as ms since the epoch or ISO 8601 with a zone. */
export function parseIntervalArg(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidArgumentError('--interval must be ms since the epoch or an ISO 8601 time (2026-06-01T12:00:00Z)');
  }
  return n;
}

function openExisting(db: string): LedgerStore {
  const path = resolve(db);
  if (!existsSync(path)) throw new CommandError(`ledger database ${path} does not exist`, EXIT.noInput);
  try {
    return openLedgerStore(path, { readonly: true });
  } catch (err) {
    throw new CommandError((err as Error).message, EXIT.dataError);
  }
}

/** The first way `recorded` (trades of one round from the ledger) differs from `computed`, or undefined. */
function firstDifference(recorded: readonly { trade: Trade; seq: number }[], computed: readonly Trade[]) {
  const ours = new Map(computed.map((t) => [t.id, t]));
  const seen = new Set<string>();
  for (const { trade, seq } of recorded) {
    const where = `trade ${trade.id} (record ${seq})`;
    if (seen.has(trade.id)) return `${where} is recorded twice`;
    seen.add(trade.id);
    const mine = ours.get(trade.id);
    if (mine === undefined) {
      const { interval, round, offer, bid, qtyWh, price } = trade;
      const content = tradeId({ interval, round, offer, bid, qtyWh, price });
      return content === trade.id
        ? `${where}: ${trade.seller} -> ${trade.buyer}, ${trade.qtyWh} Wh at ${trade.price} does not follow from the round's orders`
        : `${where}: its id is not the digest of its content (altered after clearing?)`;
    }
    for (const field of ['qtyWh', 'price', 'seller', 'buyer', 'offer', 'bid', 'green', 'interval'] as const) {
      if (mine[field] !== trade[field]) {
        return `${where}: ${field} is recorded as ${JSON.stringify(trade[field])}, the clearing gives ${JSON.stringify(mine[field])}`;
      }
    }
  }
  const missing = computed.find((t) => !seen.has(t.id));
  if (missing !== undefined) {
    return `trade ${missing.id} (${missing.seller} -> ${missing.buyer}, ${missing.qtyWh} Wh at ${missing.price}) is missing from the ledger`;
  }
  return undefined;
}

/**
 * Reads the interval's `order` and `trade` records, re-checks each order's id and signature (chain id from the
 * database), recomputes clearRound per round and compares the recorded trades. Exit 0 when every round matches.
 */
export function marketReplay(io: Io, options: MarketReplayOptions): number {
  const store = openExisting(options.db);
  const orders = new Map<number, SignedOrder[]>();
  const trades = new Map<number, { trade: Trade; seq: number }[]>();
  const problems: string[] = [];
  let chainId: number;
  try {
    const stored = store.getMeta('chainId');
    if (stored === undefined) {
      throw new CommandError(`${resolve(options.db)} has no chain id: it is not an agent ledger`, EXIT.dataError);
    }
    chainId = Number(stored);
    for (const row of store.records(1)) {
      if (row.type !== 'order' && row.type !== 'trade') continue;
      if (row.body.length === 0) {
        problems.push(`${row.type} record ${row.seq} was pruned: the interval cannot be replayed from this database`);
        continue;
      }
      let record: LedgerRecord;
      try {
        record = decodeRecord(row.body, `record ${row.seq}`);
      } catch (err) {
        problems.push((err as Error).message);
        continue;
      }
      if (record.body.interval !== options.interval) continue;
      if (record.type === 'order') {
        const checked = fromOrderRecord(record.body, chainId);
        if (!checked.ok) {
          problems.push(`order record ${row.seq}: ${checked.code}: ${checked.detail}`);
          continue;
        }
        const list = orders.get(checked.order.round) ?? [];
        list.push(checked.order);
        orders.set(checked.order.round, list);
      } else {
        try {
          const trade = fromTradeRecord(record.body, `trade record ${row.seq}`);
          const list = trades.get(trade.round) ?? [];
          list.push({ trade, seq: row.seq });
          trades.set(trade.round, list);
        } catch (err) {
          problems.push((err as Error).message);
        }
      }
    }
  } finally {
    store.close();
  }

  const rounds: RoundReplay[] = [];
  for (const round of [...new Set([...orders.keys(), ...trades.keys()])].sort((a, b) => a - b)) {
    const roundOrders = orders.get(round) ?? [];
    const recorded = trades.get(round) ?? [];
    const computed = clearRound(roundOrders, { interval: options.interval, round }).trades;
    const difference = firstDifference(recorded, computed);
    rounds.push({
      round,
      orders: roundOrders.length,
      trades: recorded.length,
      ok: difference === undefined,
      ...(difference === undefined ? {} : { difference }),
    });
  }
  const ok = problems.length === 0 && rounds.every((r) => r.ok);
  if (options.json) {
    io.out(JSON.stringify({ interval: options.interval, chainId, ok, rounds, problems }));
    return ok ? EXIT.ok : EXIT.failed;
  }
  const when = new Date(options.interval).toISOString();
  if (rounds.length === 0 && problems.length === 0) {
    io.err(`no orders or trades for interval ${when} (${options.interval}) in ${resolve(options.db)}`);
    return EXIT.failed;
  }
  const lines = [`interval ${when}: ${rounds.length} round(s)`];
  for (const r of rounds) {
    lines.push(
      r.ok
        ? `  round ${r.round}: OK (${r.orders} order(s), ${r.trades} trade(s))`
        : `  round ${r.round}: DIFFERS: ${r.difference}`,
    );
  }
  for (const p of problems) lines.push(`  ${p}`);
  lines.push(ok ? 'every clearing matches its orders' : 'the recorded clearing does not follow from the orders');
  (ok ? io.out : io.err)(lines.join('\n'));
  return ok ? EXIT.ok : EXIT.failed;
}

/** `mgmc market …`: cli.ts calls this once. */
export function registerMarketCommands(program: Command, io: Io, done: (code: number) => void): void {
  const market = program.command('market').description('the P2P market: orders, clearings and settlements');
  market
    .command('replay')
    .description("recompute every round's clearing of an interval from the ledger's signed orders and compare trades")
    .requiredOption('--db <file>', 'agent database (ledger)')
    .requiredOption('--interval <time>', 'interval start: ms since the epoch or ISO 8601', parseIntervalArg)
    .option('--json', 'print as JSON', false)
    .action(async (o: MarketReplayOptions) => done(marketReplay(io, o)));
}
