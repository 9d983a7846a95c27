/**
 * mgmc market replay: recompute every round's clearing of an interval from the ledger's orders. An interval may have
 * been bargained more than once (orders carry `attempt` from 2 on, after the DSO's caps); each (attempt, round) is
 * cleared on its own.
 */
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
  /** The bargaining attempt (1 for orders without `attempt`). */
  readonly attempt: number;
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

function roundKey(attempt: number, round: number): string {
  return `${attempt}/${round}`;
}

function parseRoundKey(key: string): { attempt: number; round: number } {
  const [attempt, round] = key.split('/').map(Number);
  return { attempt: attempt as number, round: round as number };
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
 * database), recomputes clearRound per attempt and round and compares the recorded trades. Exit 0 when every round
 * matches.
 */
export function marketReplay(io: Io, options: MarketReplayOptions): number {
  const store = openExisting(options.db);
  const orders = new Map<string, SignedOrder[]>();
  const attemptOf = new Map<string, number>();
  const recordedTrades: { trade: Trade; seq: number }[] = [];
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
        const attempt = checked.order.attempt ?? 1;
        attemptOf.set(checked.order.id, attempt);
        const key = roundKey(attempt, checked.order.round);
        const list = orders.get(key) ?? [];
        list.push(checked.order);
        orders.set(key, list);
      } else {
        try {
          recordedTrades.push({ trade: fromTradeRecord(record.body, `trade record ${row.seq}`), seq: row.seq });
        } catch (err) {
          problems.push((err as Error).message);
        }
      }
    }
  } finally {
    store.close();
  }

  // Trade records carry no attempt: a trade belongs to its offer's (or, with the offer missing, its bid's) attempt.
  // One whose orders are both missing is put in attempt 1, where the comparison names it.
  const trades = new Map<string, { trade: Trade; seq: number }[]>();
  for (const recorded of recordedTrades) {
    const { offer, bid, round } = recorded.trade;
    const key = roundKey(attemptOf.get(offer) ?? attemptOf.get(bid) ?? 1, round);
    const list = trades.get(key) ?? [];
    list.push(recorded);
    trades.set(key, list);
  }

  const rounds: RoundReplay[] = [];
  const keys = [...new Set([...orders.keys(), ...trades.keys()])].map(parseRoundKey);
  keys.sort((a, b) => a.attempt - b.attempt || a.round - b.round);
  for (const { attempt, round } of keys) {
    const key = roundKey(attempt, round);
    const roundOrders = orders.get(key) ?? [];
    const recorded = trades.get(key) ?? [];
    const computed = clearRound(roundOrders, { interval: options.interval, round }).trades;
    const difference = firstDifference(recorded, computed);
    rounds.push({
      attempt,
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
  // Ledgers of one attempt (all of them before re-trading) print as they always did: `round R`.
  const attempts = new Set(rounds.map((r) => r.attempt));
  const retraded = [...attempts].some((a) => a !== 1);
  const lines = [
    retraded
      ? `interval ${when}: ${rounds.length} round(s) in ${attempts.size} attempt(s)`
      : `interval ${when}: ${rounds.length} round(s)`,
  ];
  for (const r of rounds) {
    const name = retraded ? `attempt ${r.attempt} round ${r.round}` : `round ${r.round}`;
    lines.push(
      r.ok ? `  ${name}: OK (${r.orders} order(s), ${r.trades} trade(s))` : `  ${name}: DIFFERS: ${r.difference}`,
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
