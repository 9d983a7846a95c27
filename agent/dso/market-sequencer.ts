/**
 * The DSO's market sequencer (docs/protocol.md section 12): it orders the MGMCs' market moves into seals, so that
 * every node clears the same orders (agent/market/session.ts says why), and it ties the market to grid security:
 * after each attempt's final it waits for the participants' net positions, runs the network check, and when caps
 * went out it opens the interval again (attempt + 1) for the MGMCs to re-trade within them, up to `maxAttempts`
 * and never past the gate closure.
 *
 * A phase is sealed when every expected anonym has answered it, or `phaseMs` after it opened (whoever is late sits
 * the phase out). Moves are checked on arrival: the sender must be an authorized anonym (the envelope is signed by
 * its key), the order its own, for the phase being collected, within the market limits and not replayed; double
 * orders are both kept so the clearing voids them the same way everywhere. Rejections are counted and logged with the
 * reason. The sequencer clears too, to put the clearing hash in the seal and to know who traded; it takes nobody's
 * money and decides no price.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { Address } from '../identity/keys.js';
import type { Envelope } from '../link/envelope.js';
import type { Logger } from '../logger.js';
import { clearingHash, clearRound, type RoundClearing } from '../market/clearing.js';
import type { GridPrices } from '../market/curve.js';
import { OrderBook, type SignedOrder } from '../market/order.js';
import { deliveryProblem, type MoveBody, parseMove, type Seal, type SignedDelivery } from '../market/session.js';

export interface MarketTiming {
  /** Market interval length, ms. */
  readonly intervalMs: number;
  /** The market of an interval opens this long before it starts, ms. */
  readonly leadMs: number;
  /** The gate closes this long before the interval starts, ms: the last final before it stands. */
  readonly gateMs: number;
  /** Longest wait for a phase's moves, ms. */
  readonly phaseMs: number;
  /** Longest wait for the participants' net positions (and for their acks of caps), ms. */
  readonly positionWaitMs: number;
  /** Deliveries are asked for this long after the interval ended (meter batches must have arrived), ms. */
  readonly deliveryDelayMs: number;
  /** Longest wait for deliveries, ms. */
  readonly deliveryWaitMs: number;
}

export const DEFAULT_MARKET_TIMING: MarketTiming = Object.freeze({
  intervalMs: 900_000,
  leadMs: 900_000,
  gateMs: 300_000,
  phaseMs: 5_000,
  positionWaitMs: 10_000,
  deliveryDelayMs: 300_000,
  deliveryWaitMs: 60_000,
});

/** What grid security offers the market (agent/dso/grid-security.ts through node.ts). */
export interface MarketSecurity {
  /** The MGMC address behind an anonym (the registry's binding). */
  mgmcOf(anonym: Address): Address | undefined;
  /** Envelope time of the newest position `mgmc` reported for `interval` (undefined: none yet). */
  positionTime(interval: number, mgmc: Address): number | undefined;
  /** Runs a network check round on the interval; the number of contracts it sent. */
  check(interval: number): Promise<{ readonly sent: number; readonly secure: boolean | undefined }>;
  /** Contracts of the interval not yet acknowledged. */
  pendingAcks(interval: number): number;
}

export interface MarketSequencerOptions {
  readonly chainId: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Seals and publishes one seal body on the interval's seal topic. */
  readonly publish: (interval: number, seal: Seal) => Promise<void>;
  /** The anonyms that may trade now (authorized, trading allowed). */
  readonly anonyms: () => readonly Address[];
  /** Grid and imbalance prices of an interval (micro-units per kWh). */
  readonly prices: (interval: number) => { readonly grid: GridPrices; readonly imbalancePrice: number };
  readonly roundCap?: number;
  readonly maxAttempts?: number;
  readonly maxQtyWh?: number;
  readonly timing?: Partial<MarketTiming>;
  readonly security?: MarketSecurity;
  /** Told of every interval's outcome once its last attempt ended (progress displays, reports). */
  readonly onInterval?: (summary: IntervalSummary) => void;
}

export type MoveOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: string; readonly detail: string };

/** One attempt of one interval, as the sequencer ran it. */
export interface AttemptSummary {
  readonly attempt: number;
  readonly participants: number;
  readonly rounds: number;
  readonly stable: boolean;
  readonly trades: number;
  readonly tradedWh: number;
  readonly messages: number;
  /** Adjustment contracts the network check sent after it (0: secure or no check). */
  readonly capsSent: number;
  readonly secure: boolean | undefined;
}

export interface IntervalSummary {
  readonly interval: number;
  readonly attempts: readonly AttemptSummary[];
  /** The attempt whose trades stand (undefined when none reached its final before the gate). */
  readonly standing: number | undefined;
  readonly closedBy: 'secure' | 'no-check' | 'attempt-cap' | 'gate' | 'no-participants';
}

export interface SequencerStats {
  readonly intervals: number;
  readonly attempts: number;
  readonly rounds: number;
  readonly moves: number;
  readonly rejected: Readonly<Record<string, number>>;
  readonly settled: number;
}

interface Collecting {
  readonly interval: number;
  readonly attempt: number;
  readonly round: number;
  readonly phase: 'offer' | 'bid';
  readonly expected: Set<string>;
  readonly moves: Map<string, MoveBody>;
  readonly book: OrderBook;
  readonly gateClosure: number;
  readonly limits: { readonly band: GridPrices; readonly roundCap: number; readonly maxQtyWh?: number };
  done: () => void;
}

interface Settling {
  readonly expected: Set<string>;
  readonly deliveries: Map<string, SignedDelivery>;
  done: () => void;
}

/** Ends an attempt that was running when stop() came: nothing more is sealed for it. */
class SequencerStopped extends Error {}

export class MarketSequencer {
  private readonly timing: MarketTiming;
  private readonly log: Logger;
  private readonly roundCap: number;
  private readonly maxAttempts: number;
  private readonly collecting = new Map<number, Collecting>();
  private readonly settling = new Map<number, Settling>();
  /** Standing final per interval: attempt, participants that traded. */
  private readonly standing = new Map<number, { attempt: number; traders: Set<string>; imbalancePrice: number }>();
  private readonly running = new Map<number, Promise<IntervalSummary>>();
  private readonly timers = new Set<TimerHandle>();
  private readonly counts = { intervals: 0, attempts: 0, rounds: 0, moves: 0, settled: 0 };
  private readonly rejected = new Map<string, number>();
  private scheduler: TimerHandle | undefined;
  private lastOpened = Number.NEGATIVE_INFINITY;
  private stopped = false;

  constructor(private readonly o: MarketSequencerOptions) {
    this.timing = { ...DEFAULT_MARKET_TIMING, ...o.timing };
    this.log = o.logger.child({ module: 'market-sequencer' });
    this.roundCap = o.roundCap ?? 30;
    this.maxAttempts = o.maxAttempts ?? 3;
    const t = this.timing;
    if (t.gateMs >= t.leadMs) {
      throw new RangeError(`market gate (${t.gateMs} ms before start) must come after the opening (${t.leadMs} ms)`);
    }
  }

  /** Opens every interval `leadMs` before it starts, and asks for deliveries after each ends. */
  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      const now = this.o.clock.now();
      const { intervalMs, leadMs } = this.timing;
      // Never the same interval twice, even when a timer fires a moment before its time (an accelerated clock).
      const next = Math.max(
        Math.floor((now + leadMs) / intervalMs) * intervalMs + intervalMs,
        this.lastOpened + intervalMs,
      );
      const openAt = next - leadMs;
      this.scheduler = this.o.clock.setTimeout(
        () => {
          this.lastOpened = next;
          void this.runInterval(next);
          const settleAt = next + intervalMs + this.timing.deliveryDelayMs;
          this.later(settleAt - this.o.clock.now(), () => void this.settle(next));
          tick();
        },
        Math.max(0, openAt - now),
      );
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    this.scheduler?.cancel();
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    for (const c of this.collecting.values()) c.done();
    for (const s of this.settling.values()) s.done();
  }

  stats(): SequencerStats {
    return { ...this.counts, rejected: Object.fromEntries(this.rejected) };
  }

  /** Runs the market of one interval (all its attempts); concurrent calls share one run. */
  runInterval(interval: number): Promise<IntervalSummary> {
    const running = this.running.get(interval);
    if (running !== undefined) return running;
    const run = this.run(interval).finally(() => this.running.delete(interval));
    this.running.set(interval, run);
    return run;
  }

  /** Takes a `market-move` envelope the caller opened and verified. Never throws. */
  acceptMove(envelope: Envelope): MoveOutcome {
    let move: MoveBody;
    try {
      move = parseMove(envelope.body);
    } catch (err) {
      return this.reject('malformed', (err as Error).message);
    }
    const from = envelope.from.toLowerCase();
    const c = this.collecting.get(move.interval);
    const where = `move of ${envelope.from} for ${new Date(move.interval).toISOString()} round ${move.round} ${move.phase}`;
    if (c === undefined || c.attempt !== move.attempt || c.round !== move.round || c.phase !== move.phase) {
      return this.reject('late', `${where}: that phase is not being collected (late or early)`);
    }
    if (!c.expected.has(from)) return this.reject('unauthorized', `${where}: not a participant of this attempt`);
    if (c.moves.has(from)) return this.reject('replay', `${where}: a move for this phase was already taken`);
    if (move.order !== undefined) {
      if (String(move.order.anonym).toLowerCase() !== from) {
        return this.reject('forged', `${where}: the order is ${String(move.order.anonym)}'s, not the sender's`);
      }
      if ((move.order.attempt ?? 1) !== move.attempt || move.order.side !== move.phase) {
        return this.reject('wrong-round', `${where}: the order is for another attempt or side`);
      }
      const admitted = c.book.admit(move.order, {
        chainId: this.o.chainId,
        now: this.o.clock.now(),
        interval: c.interval,
        gateClosure: c.gateClosure,
        round: c.round,
        limits: c.limits,
        isAuthorized: (a) => c.expected.has(a.toLowerCase()),
      });
      if (!admitted.ok && admitted.code !== 'double-acceptance') return this.reject(admitted.code, admitted.detail);
    }
    c.moves.set(from, move);
    this.counts.moves++;
    if (move.out === true) c.expected.delete(from);
    if ([...c.expected].every((a) => c.moves.has(a))) c.done();
    return { ok: true };
  }

  /** Takes a `market-delivery` envelope the caller opened and verified. Never throws. */
  acceptDelivery(envelope: Envelope): MoveOutcome {
    const body = envelope.body as { interval?: unknown; delivery?: unknown };
    const s = typeof body.interval === 'number' ? this.settling.get(body.interval) : undefined;
    if (s === undefined) return this.reject('late', `delivery of ${envelope.from}: no settlement is collecting`);
    const problem = deliveryProblem(body.delivery, this.o.chainId);
    if (problem !== undefined) return this.reject('forged', `delivery of ${envelope.from}: ${problem}`);
    const d = body.delivery as SignedDelivery;
    const from = envelope.from.toLowerCase();
    if (d.anonym.toLowerCase() !== from || d.interval !== body.interval) {
      return this.reject('forged', `delivery of ${envelope.from} is ${d.anonym}'s or for another interval`);
    }
    if (!s.expected.has(from)) return this.reject('unauthorized', `delivery of ${envelope.from}: it did not trade`);
    if (s.deliveries.has(from)) return this.reject('replay', `delivery of ${envelope.from} was already taken`);
    s.deliveries.set(from, d);
    if ([...s.expected].every((a) => s.deliveries.has(a))) s.done();
    return { ok: true };
  }

  /**
   * Asks the interval's traders for their metered deliveries and seals what came back; each MGMC then settles from the
   * seal (settlement.ts). Undefined when the interval had no standing trades.
   */
  async settle(interval: number): Promise<{ deliveries: number; expected: number } | undefined> {
    const standing = this.standing.get(interval);
    if (standing === undefined || standing.traders.size === 0 || this.settling.has(interval)) return undefined;
    const deliveries = new Map<string, SignedDelivery>();
    const expected = new Set(standing.traders);
    const wait = new Promise<void>((resolve) => {
      const s: Settling = { expected, deliveries, done: resolve };
      this.settling.set(interval, s);
      this.later(this.timing.deliveryWaitMs, resolve);
    });
    await this.publish(interval, { phase: 'deliver', interval, attempt: standing.attempt });
    await wait;
    this.settling.delete(interval);
    const sorted = [...deliveries.values()].sort((a, b) => (a.anonym.toLowerCase() < b.anonym.toLowerCase() ? -1 : 1));
    await this.publish(interval, {
      phase: 'settle',
      interval,
      attempt: standing.attempt,
      imbalancePrice: standing.imbalancePrice,
      deliveries: sorted,
    });
    this.counts.settled++;
    if (sorted.length < expected.size) {
      this.log.warn(
        { interval, missing: [...expected].filter((a) => !deliveries.has(a)) },
        `settlement of ${new Date(interval).toISOString()}: ${expected.size - sorted.length} trader(s) sent no delivery`,
      );
    }
    return { deliveries: sorted.length, expected: expected.size };
  }

  private async run(interval: number): Promise<IntervalSummary> {
    this.counts.intervals++;
    const gateClosure = interval - this.timing.gateMs;
    const attempts: AttemptSummary[] = [];
    let standing: number | undefined;
    let closedBy: IntervalSummary['closedBy'] = 'attempt-cap';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (this.stopped || this.o.clock.now() >= gateClosure) {
        closedBy = 'gate';
        break;
      }
      const summary = await this.runAttempt(interval, attempt, gateClosure);
      if (summary === undefined) {
        closedBy = attempts.length === 0 && this.o.anonyms().length === 0 ? 'no-participants' : 'gate';
        break;
      }
      if (summary.rounds > 0 && this.o.clock.now() < gateClosure) standing = attempt;
      const security = this.o.security;
      if (security === undefined) {
        attempts.push(summary);
        closedBy = 'no-check';
        break;
      }
      const checked = await this.check(interval, summary, security);
      attempts.push(checked);
      if (checked.capsSent === 0) {
        closedBy = 'secure';
        break;
      }
    }
    const result: IntervalSummary = { interval, attempts, standing, closedBy };
    this.log.info(
      {
        interval,
        attempts: attempts.length,
        standing,
        closedBy,
        rounds: attempts.map((a) => a.rounds),
        trades: attempts.at(-1)?.trades ?? 0,
      },
      `market ${new Date(interval).toISOString()}: ${attempts.length} attempt(s), closed by ${closedBy}`,
    );
    this.o.onInterval?.(result);
    return result;
  }

  /** Waits for every participant's position after the final, runs the check, and waits for the caps' acks. */
  private async check(interval: number, summary: AttemptSummary, security: MarketSecurity): Promise<AttemptSummary> {
    // A position counts when it is newer than the one the MGMC had reported when the final was sealed: the one its
    // trades of this attempt leave, not an earlier attempt's.
    const before = this.positionsAtFinal.get(interval) ?? new Map<Address, number | undefined>();
    await this.waitFor(
      () => [...before].every(([m, t]) => (security.positionTime(interval, m) ?? -1) > (t ?? -1)),
      this.timing.positionWaitMs,
    );
    const outcome = await security.check(interval);
    if (outcome.sent > 0) await this.waitFor(() => security.pendingAcks(interval) === 0, this.timing.positionWaitMs);
    return { ...summary, capsSent: outcome.sent, secure: outcome.secure };
  }

  /** Per interval, each participant's MGMC and the time of its newest position when the last final was sealed. */
  private readonly positionsAtFinal = new Map<number, Map<Address, number | undefined>>();

  private async runAttempt(
    interval: number,
    attempt: number,
    gateClosure: number,
  ): Promise<AttemptSummary | undefined> {
    try {
      return await this.bargain(interval, attempt, gateClosure);
    } catch (err) {
      if (err instanceof SequencerStopped) return undefined;
      throw err;
    }
  }

  private async bargain(interval: number, attempt: number, gateClosure: number): Promise<AttemptSummary | undefined> {
    const participants = [...this.o.anonyms()].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
    if (participants.length === 0) return undefined;
    this.counts.attempts++;
    const { grid, imbalancePrice } = this.o.prices(interval);
    const limits = {
      band: grid,
      roundCap: this.roundCap,
      ...(this.o.maxQtyWh === undefined ? {} : { maxQtyWh: this.o.maxQtyWh }),
    };
    const expected = new Set(participants.map((a) => a.toLowerCase()));
    const book = new OrderBook(interval);
    let messages = 0;
    const collect = async (round: number, phase: 'offer' | 'bid', announce: () => Promise<void>) => {
      const moves = new Map<string, MoveBody>();
      const wait = new Promise<void>((resolve) => {
        this.collecting.set(interval, {
          interval,
          attempt,
          round,
          phase,
          expected,
          moves,
          book,
          gateClosure,
          limits,
          done: resolve,
        });
        this.later(this.timing.phaseMs, resolve);
      });
      await announce();
      await wait;
      this.collecting.delete(interval);
      if (this.stopped) throw new SequencerStopped();
      messages += moves.size;
      return moves;
    };
    // Every admitted order of the round on one side; an anonym's offer and bid of one round are both kept (clearRound
    // voids both: double acceptance).
    const ordersOf = (round: number, side: 'offer' | 'bid'): SignedOrder[] =>
      book
        .ordersOf(round)
        .filter((o) => o.side === side)
        .sort((a, b) => (a.id < b.id ? -1 : 1));
    let moves = await collect(1, 'offer', () =>
      this.publish(interval, {
        phase: 'open',
        interval,
        attempt,
        gateClosure,
        grid,
        imbalancePrice,
        roundCap: this.roundCap,
        ...(this.o.maxQtyWh === undefined ? {} : { maxQtyWh: this.o.maxQtyWh }),
        participants,
      }),
    );
    let round = 1;
    let last: { round: number; clearing: RoundClearing } | undefined;
    let stable = false;
    while (true) {
      if (this.stopped || this.o.clock.now() >= gateClosure) return undefined;
      const offers = ordersOf(round, 'offer');
      await collect(round, 'bid', () =>
        this.publish(interval, { phase: 'offer', interval, attempt, round, orders: offers }),
      );
      const orders = [...offers, ...ordersOf(round, 'bid')].sort((a, b) => (a.id < b.id ? -1 : 1));
      const clearing = clearRound(orders, { interval, round });
      last = { round, clearing };
      this.counts.rounds++;
      if (round >= this.roundCap) {
        await this.publish(interval, {
          phase: 'bid',
          interval,
          attempt,
          round,
          orders,
          clearing: clearingHash(clearing),
        });
        break;
      }
      moves = await collect(round + 1, 'offer', () =>
        this.publish(interval, { phase: 'bid', interval, attempt, round, orders, clearing: clearingHash(clearing) }),
      );
      const changed = [...moves.values()].filter((m) => m.moved !== undefined && m.moved !== 'hold').length;
      if (changed === 0) {
        stable = true;
        break;
      }
      round++;
    }
    if (this.o.clock.now() >= gateClosure) return undefined;
    const final = last as { round: number; clearing: RoundClearing };
    const security = this.o.security;
    if (security !== undefined) {
      const times = new Map<Address, number | undefined>();
      for (const a of participants) {
        if (!expected.has(a.toLowerCase())) continue;
        const mgmc = security.mgmcOf(a);
        if (mgmc !== undefined) times.set(mgmc, security.positionTime(interval, mgmc));
      }
      this.positionsAtFinal.set(interval, times);
    }
    await this.publish(interval, {
      phase: 'final',
      interval,
      attempt,
      round: final.round,
      clearing: clearingHash(final.clearing),
      stable,
    });
    const traders = new Set<string>();
    for (const t of final.clearing.trades) {
      traders.add(t.seller.toLowerCase());
      traders.add(t.buyer.toLowerCase());
    }
    this.standing.set(interval, { attempt, traders, imbalancePrice });
    return {
      attempt,
      participants: expected.size,
      rounds: final.round,
      stable,
      trades: final.clearing.trades.length,
      tradedWh: final.clearing.totals.tradedWh,
      messages,
      capsSent: 0,
      secure: undefined,
    };
  }

  private async publish(interval: number, seal: Seal): Promise<void> {
    if (this.stopped) throw new SequencerStopped();
    try {
      await this.o.publish(interval, seal);
    } catch (err) {
      this.log.warn({ interval, phase: seal.phase }, `market seal not published: ${(err as Error).message}`);
    }
  }

  private waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const started = this.o.clock.now();
      const poll = () => {
        if (this.stopped || condition() || this.o.clock.now() - started >= timeoutMs) resolve();
        else this.later(Math.min(50, timeoutMs), poll);
      };
      poll();
    });
  }

  private later(ms: number, fn: () => void): void {
    const handle = this.o.clock.setTimeout(
      () => {
        this.timers.delete(handle);
        fn();
      },
      Math.max(0, ms),
    );
    this.timers.add(handle);
  }

  private reject(reason: string, detail: string): MoveOutcome {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    this.log.warn({ reason }, `market message rejected: ${detail}`);
    return { ok: false, reason, detail };
  }
}
