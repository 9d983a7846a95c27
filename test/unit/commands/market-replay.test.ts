/** mgmc market replay: recompute each round's clearing from the ledger's signed orders and compare the trades. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { EXIT, type Io } from '../../../agent/commands/io.js';
import { marketReplay, registerMarketCommands } from '../../../agent/commands/market.js';
import { fromHex } from '../../../agent/identity/bytes.js';
import { keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../../agent/ledger/block.js';
import { openWritableLedger } from '../../../agent/ledger/open.js';
import type { NewRecord } from '../../../agent/ledger/records.js';
import { clearRound, type Trade } from '../../../agent/market/clearing.js';
import { type Side, type SignedOrder, signOrder } from '../../../agent/market/order.js';
import { toOrderRecord, toTradeRecord } from '../../../agent/market/records.js';

/** Test keys: they sign nothing outside the temporary databases of this file. */
const PRODUCER = keyPairFromPrivateKey(fromHex(`0x${'11'.repeat(32)}`));
const KEYS = [0x21, 0x22, 0x23].map((b) => keyPairFromPrivateKey(fromHex(`0x${b.toString(16).repeat(32)}`)));
const CHAIN_ID = 4242;
const T = Date.UTC(2025, 5, 1, 12);

function captureIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { env: {}, stdin: process.stdin, stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

const dir = mkdtempSync(join(tmpdir(), 'mgmc-market-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function signed(who: number, side: Side, qtyWh: number, price: number, round: number, attempt = 1): SignedOrder {
  const key = KEYS[who] as (typeof KEYS)[number];
  return signOrder(
    {
      anonym: key.address,
      interval: T,
      side,
      qtyWh,
      price,
      green: false,
      round,
      expiry: T,
      ...(attempt > 1 ? { attempt } : {}),
    },
    signerFromPrivateKey(key.privateKey, key.address),
    CHAIN_ID,
  );
}

/** Two rounds: 0 and 1 offer, 2 bids; the clearing of each round is stored as trade records. */
const ROUNDS = [
  [signed(0, 'offer', 600, 150_000, 1), signed(1, 'offer', 700, 160_000, 1), signed(2, 'bid', 1000, 155_000, 1)],
  [signed(0, 'offer', 600, 150_000, 2), signed(1, 'offer', 700, 152_000, 2), signed(2, 'bid', 1000, 155_000, 2)],
];
const TRADES = ROUNDS.map((orders, i) => clearRound(orders, { interval: T, round: i + 1 }).trades);

/**
 * The interval bargained again after the DSO's caps: attempt 2 repeats round 1 and 2 with the same anonyms (its
 * orders carry attempt: 2, so other ids) and smaller quantities. Grouped by round alone, each anonym would have two
 * orders per round, and the clearing would void them all.
 */
const SECOND = [
  [
    signed(0, 'offer', 400, 150_000, 1, 2),
    signed(1, 'offer', 500, 160_000, 1, 2),
    signed(2, 'bid', 600, 155_000, 1, 2),
  ],
  [
    signed(0, 'offer', 400, 150_000, 2, 2),
    signed(1, 'offer', 500, 152_000, 2, 2),
    signed(2, 'bid', 600, 155_000, 2, 2),
  ],
];

function writeLedger(
  name: string,
  tweak: (trades: Trade[]) => Trade[] = (t) => t,
  rounds: readonly (readonly SignedOrder[])[] = ROUNDS,
): string {
  const path = join(dir, name);
  const { store, ledger } = openWritableLedger({
    path,
    signer: signerFromPrivateKey(PRODUCER.privateKey, PRODUCER.address),
    clock: new ManualClock(T - 60_000),
    chainId: CHAIN_ID,
    sealEveryRecords: 4,
    sealEverySeconds: 60,
  });
  const records: NewRecord[] = [];
  for (const orders of rounds) {
    const round = (orders[0] as SignedOrder).round;
    for (const o of orders) records.push({ type: 'order', body: toOrderRecord(o) });
    for (const t of tweak([...clearRound(orders, { interval: T, round }).trades])) {
      records.push({ type: 'trade', body: toTradeRecord(t) });
    }
  }
  // A reading in between: replay looks only at orders and trades.
  records.push({ type: 'reading', body: { device: 'm1', point: 'W', t: T, value: 5, unit: 'W' } });
  ledger.append(records);
  ledger.seal();
  store.close();
  return path;
}

describe('mgmc market replay', () => {
  it('finds every recorded clearing equal to the one recomputed from the signed orders', () => {
    expect(TRADES[0]?.length).toBeGreaterThan(0);
    expect(TRADES[1]?.length).toBe(2);
    const db = writeLedger('ok.db');
    const io = captureIo();
    expect(marketReplay(io, { db, interval: T, json: false })).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toContain(`interval ${new Date(T).toISOString()}: 2 round(s)`);
    expect(text).toContain('round 1: OK (3 order(s), ');
    expect(text).toContain('round 2: OK (3 order(s), 2 trade(s))');

    const json = captureIo();
    expect(marketReplay(json, { db, interval: T, json: true })).toBe(EXIT.ok);
    const report = JSON.parse(json.stdout[0] as string);
    expect(report).toMatchObject({ ok: true, chainId: CHAIN_ID, problems: [] });
    expect(report.rounds.map((r: { ok: boolean }) => r.ok)).toEqual([true, true]);
  });

  it('exits 1 naming the round and the trade whose quantity was altered', () => {
    const victim = TRADES[1]?.[0] as Trade;
    const db = writeLedger('tampered.db', (trades) =>
      trades.map((t) => (t.id === victim.id ? { ...t, qtyWh: t.qtyWh + 1 } : t)),
    );
    const io = captureIo();
    expect(marketReplay(io, { db, interval: T, json: false })).toBe(EXIT.failed);
    const text = io.stderr.join('\n');
    expect(text).toContain('round 1: OK');
    expect(text).toMatch(
      new RegExp(
        `round 2: DIFFERS: trade ${victim.id} \\(record \\d+\\): qtyWh is recorded as ${victim.qtyWh + 1}, the clearing gives ${victim.qtyWh}`,
      ),
    );
  });

  it('exits 1 for a missing trade and for an order whose signature does not hold', () => {
    const db = writeLedger('missing.db', (trades) => trades.slice(1));
    const io = captureIo();
    expect(marketReplay(io, { db, interval: T, json: false })).toBe(EXIT.failed);
    expect(io.stderr.join('\n')).toMatch(/round 1: DIFFERS: trade 0x[0-9a-f]{64} .* is missing from the ledger/);

    const forgedPath = join(dir, 'forged.db');
    const { store, ledger } = openWritableLedger({
      path: forgedPath,
      signer: signerFromPrivateKey(PRODUCER.privateKey, PRODUCER.address),
      clock: new ManualClock(T),
      chainId: CHAIN_ID,
      sealEveryRecords: 10,
      sealEverySeconds: 60,
    });
    const order = ROUNDS[0]?.[0] as SignedOrder;
    const other = ROUNDS[0]?.[1] as SignedOrder;
    ledger.append([{ type: 'order', body: toOrderRecord({ ...order, sig: other.sig }) }]);
    ledger.seal();
    store.close();
    const forged = captureIo();
    expect(marketReplay(forged, { db: forgedPath, interval: T, json: false })).toBe(EXIT.failed);
    expect(forged.stderr.join('\n')).toContain(`order record 1: forged: order ${order.id}`);
  });

  it('replays each attempt of a re-traded interval on its own, naming attempt and round', () => {
    const second = SECOND.map((orders, i) => clearRound(orders, { interval: T, round: i + 1 }).trades);
    expect(second[0]?.length).toBeGreaterThan(0);
    expect(second[1]?.length).toBe(2);
    // Trade records carry no attempt: each is found by its offer among the attempt's orders.
    expect(second.flat().some((t) => TRADES.flat().some((u) => u.id === t.id))).toBe(false);
    const db = writeLedger('attempts.db', undefined, [...ROUNDS, ...SECOND]);
    const io = captureIo();
    expect(marketReplay(io, { db, interval: T, json: false })).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toContain(`interval ${new Date(T).toISOString()}: 4 round(s) in 2 attempt(s)`);
    expect(text).toContain('  attempt 1 round 1: OK (3 order(s), ');
    expect(text).toContain('  attempt 1 round 2: OK (3 order(s), 2 trade(s))');
    expect(text).toContain(`  attempt 2 round 1: OK (3 order(s), ${second[0]?.length} trade(s))`);
    expect(text).toContain('  attempt 2 round 2: OK (3 order(s), 2 trade(s))');
    expect(text).not.toMatch(/^ {2}round/m);

    const json = captureIo();
    expect(marketReplay(json, { db, interval: T, json: true })).toBe(EXIT.ok);
    const report = JSON.parse(json.stdout[0] as string);
    expect(report).toMatchObject({ ok: true, problems: [] });
    expect(
      report.rounds.map((r: { attempt: number; round: number; ok: boolean }) => [r.attempt, r.round, r.ok]),
    ).toEqual([
      [1, 1, true],
      [1, 2, true],
      [2, 1, true],
      [2, 2, true],
    ]);

    // A ledger of one attempt prints as before, and its JSON rounds say attempt 1.
    const single = captureIo();
    const one = writeLedger('one-attempt.db');
    expect(marketReplay(single, { db: one, interval: T, json: false })).toBe(EXIT.ok);
    expect(single.stdout.join('\n')).not.toContain('attempt');
    const singleJson = captureIo();
    marketReplay(singleJson, { db: one, interval: T, json: true });
    expect(JSON.parse(singleJson.stdout[0] as string).rounds.map((r: { attempt: number }) => r.attempt)).toEqual([
      1, 1,
    ]);
  });

  it('names the attempt of a re-traded round whose recorded trade differs', () => {
    const victim = clearRound(SECOND[1] as SignedOrder[], { interval: T, round: 2 }).trades[0] as Trade;
    const db = writeLedger(
      'attempts-tampered.db',
      (trades) => trades.map((t) => (t.id === victim.id ? { ...t, price: t.price + 1 } : t)),
      [...ROUNDS, ...SECOND],
    );
    const io = captureIo();
    expect(marketReplay(io, { db, interval: T, json: false })).toBe(EXIT.failed);
    const text = io.stderr.join('\n');
    expect(text).toContain('attempt 1 round 2: OK');
    expect(text).toContain('attempt 2 round 1: OK');
    expect(text).toMatch(
      new RegExp(
        `attempt 2 round 2: DIFFERS: trade ${victim.id} \\(record \\d+\\): price is recorded as ${victim.price + 1}, the clearing gives ${victim.price}`,
      ),
    );
  });

  it('is wired as `market replay --db --interval` with ISO or ms intervals', async () => {
    const db = writeLedger('cli.db');
    for (const interval of [new Date(T).toISOString(), String(T)]) {
      const io = captureIo();
      let code: number | undefined;
      const program = new Command('mgmc').exitOverride();
      registerMarketCommands(program, io, (c) => {
        code = c;
      });
      await program.parseAsync(['market', 'replay', '--db', db, '--interval', interval], { from: 'user' });
      expect(code).toBe(EXIT.ok);
    }
  });
});
