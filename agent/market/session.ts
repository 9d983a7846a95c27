/**
 * The market of one interval as messages (docs/protocol.md section 12, "Market"): what the MGMCs send, what the
 * sequencer seals, and each MGMC's side of it (MarketParticipant). Pure of MQTT: the link passes opened envelopes
 * in and sends bodies out.
 *
 * Why a sequencer: the clearing is a deterministic function of a round's orders, so every node must clear the same
 * set. Deadlines on each node's own clock would let one late message split them. As a blockchain orders
 * transactions into blocks, the DSO's market sequencer (agent/dso/market-sequencer.ts) closes each phase and
 * publishes a seal holding the phase's signed orders; everyone clears what the seal holds. The sequencer cannot
 * forge or alter an order (each is signed by its anonym and checked by every receiver), and it does not clear
 * anything itself that others take on trust: every MGMC recomputes the clearing and compares it with the seal's
 * hash. What it could do is leave a valid order out; the sender sees that in the seal and the log says so.
 *
 * One attempt of an interval:
 *   open(attempt)      the grid prices, imbalance price, gate closure, round cap, the expected anonyms
 *   per round r:       MGMCs send a move for phase 'offer' (a leader's offer, or none, and how their price moved after
 *                      round r-1); the seal 'offer' holds round r's offers. MGMCs send a move for phase 'bid' (a
 *                      follower's bid, or none); the seal 'bid' holds all of round r's orders and the clearing hash.
 *   final              after the first round nobody's price moved in, or at the round cap: that round's trades stand
 * After the DSO's network check an interval may be bargained again (attempt + 1) within the caps it sent; the last
 * final before the gate closure stands. After delivery: 'deliver' asks for metered deliveries, 'settle' holds them.
 */

import { fromHex, toHex } from '../identity/bytes.js';
import type { Address } from '../identity/keys.js';
import { parseAddress } from '../identity/keys.js';
import { SignatureVerifier, signingDigest, verifyDigest } from '../identity/signing.js';
import type { Signer } from '../ledger/block.js';
import { type CanonicalValue, canonicalBytes } from '../ledger/canonical.js';
import type { RecordBody } from '../ledger/records.js';
import type { Logger } from '../logger.js';
import { Bargainer, DEFAULT_BARGAINING, type MarketSetup, type Move, settleWithGrid } from './bargaining.js';
import { clearingHash, clearRound, type RoundClearing, type Trade } from './clearing.js';
import { type GridPrices, normalizeCurve, type PriceResponseCurve } from './curve.js';
import { checkOrder, type SignedOrder } from './order.js';
import type { ContractRules } from './rules.js';
import { type MeteredDelivery, type Settlement, settleInterval } from './settlement.js';

export const MARKET_MOVE_KIND = 'market-move';
export const MARKET_SEAL_KIND = 'market-seal';
export const MARKET_DELIVERY_KIND = 'market-delivery';
export const DELIVERY_TAG = 'mgmc/delivery/v1';

export type SealPhase = 'open' | 'offer' | 'bid' | 'final' | 'deliver' | 'settle';
export type MovePhase = 'offer' | 'bid';

export interface OpenSeal {
  readonly phase: 'open';
  readonly interval: number;
  readonly attempt: number;
  readonly gateClosure: number;
  readonly grid: GridPrices;
  readonly imbalancePrice: number;
  readonly roundCap: number;
  readonly maxQtyWh?: number;
  /** The anonyms asked to take part (the DSO's authorized set with trading allowed). */
  readonly participants: readonly Address[];
}

export interface RoundSeal {
  readonly phase: 'offer' | 'bid';
  readonly interval: number;
  readonly attempt: number;
  readonly round: number;
  /** 'offer': the round's offers; 'bid': every order of the round. */
  readonly orders: readonly SignedOrder[];
  /** 'bid': clearingHash of clearRound(orders). */
  readonly clearing?: string;
}

export interface FinalSeal {
  readonly phase: 'final';
  readonly interval: number;
  readonly attempt: number;
  /** The round whose trades stand. */
  readonly round: number;
  readonly clearing: string;
  /** True when it ended because nobody's price moved; false at the round cap. */
  readonly stable: boolean;
}

export interface DeliverSeal {
  readonly phase: 'deliver';
  readonly interval: number;
  readonly attempt: number;
}

export interface SettleSeal {
  readonly phase: 'settle';
  readonly interval: number;
  readonly attempt: number;
  readonly imbalancePrice: number;
  readonly deliveries: readonly SignedDelivery[];
}

export type Seal = OpenSeal | RoundSeal | FinalSeal | DeliverSeal | SettleSeal;

/** What an MGMC sends in a phase: at most one order, and after round 1 how its price moved on the last clearing. */
export interface MoveBody {
  readonly interval: number;
  readonly attempt: number;
  readonly round: number;
  readonly phase: MovePhase;
  readonly order?: SignedOrder;
  readonly moved?: Move;
  /** Round 1, phase offer: it does not take part in this attempt (nothing to trade); not expected again. */
  readonly out?: boolean;
}

/** An MGMC's metered delivery of one interval, signed by its anonym (the meter records stay in its own ledger). */
export interface DeliveryFields {
  readonly anonym: Address;
  readonly interval: number;
  /** Net energy sent to the grid at its connection, Wh (< 0 imported). */
  readonly netExportWh: number;
  /** Ledger seqs of the meter-signed records the figure comes from (in the MGMC's ledger). */
  readonly evidence: readonly number[];
}

export interface SignedDelivery extends DeliveryFields {
  readonly id: string;
  readonly sig: string;
}

export class MarketMessageError extends Error {
  override name = 'MarketMessageError';
}

const PHASES: readonly SealPhase[] = ['open', 'offer', 'bid', 'final', 'deliver', 'settle'];
const HASH_RE = /^0x[0-9a-f]{64}$/;

function uint(value: unknown, what: string, min = 0): number {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    throw new MarketMessageError(`${what} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value as number;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MarketMessageError(`${what} must be an object`);
  }
  return value as Record<string, unknown>;
}

function list(value: unknown, what: string, max = 100_000): unknown[] {
  if (!Array.isArray(value) || value.length > max) {
    throw new MarketMessageError(`${what} must be an array of at most ${max} items`);
  }
  return value;
}

function address(value: unknown, what: string): Address {
  try {
    return parseAddress(String(value), what);
  } catch (err) {
    throw new MarketMessageError((err as Error).message);
  }
}

/** Reads a seal body; throws a MarketMessageError naming the bad field. Orders are checked by the receiver. */
export function parseSeal(body: unknown): Seal {
  const b = object(body, 'seal body');
  const phase = b.phase as SealPhase;
  if (!PHASES.includes(phase)) throw new MarketMessageError(`seal phase ${JSON.stringify(b.phase)} is unknown`);
  const interval = uint(b.interval, 'seal interval');
  const attempt = uint(b.attempt, 'seal attempt', 1);
  switch (phase) {
    case 'open': {
      const grid = object(b.grid, 'seal grid');
      const importPrice = uint(grid.importPrice, 'grid.importPrice');
      const exportPrice = uint(grid.exportPrice, 'grid.exportPrice');
      if (exportPrice > importPrice) throw new MarketMessageError('grid.exportPrice is above grid.importPrice');
      return {
        phase,
        interval,
        attempt,
        gateClosure: uint(b.gateClosure, 'gateClosure'),
        grid: { importPrice, exportPrice },
        imbalancePrice: uint(b.imbalancePrice, 'imbalancePrice'),
        roundCap: uint(b.roundCap, 'roundCap', 1),
        ...(b.maxQtyWh === undefined ? {} : { maxQtyWh: uint(b.maxQtyWh, 'maxQtyWh', 1) }),
        participants: list(b.participants, 'participants').map((a, i) => address(a, `participants[${i}]`)),
      };
    }
    case 'offer':
    case 'bid': {
      const clearing = b.clearing;
      if (phase === 'bid' && (typeof clearing !== 'string' || !HASH_RE.test(clearing))) {
        throw new MarketMessageError('a bid seal needs clearing: the 0x-hex SHA-256 of the round clearing');
      }
      return {
        phase,
        interval,
        attempt,
        round: uint(b.round, 'round', 1),
        orders: list(b.orders, 'orders').map((o) => o as SignedOrder),
        ...(phase === 'bid' ? { clearing: clearing as string } : {}),
      };
    }
    case 'final': {
      if (typeof b.clearing !== 'string' || !HASH_RE.test(b.clearing)) {
        throw new MarketMessageError('a final seal needs clearing: the 0x-hex SHA-256 of the standing clearing');
      }
      if (typeof b.stable !== 'boolean') throw new MarketMessageError('a final seal needs stable: true or false');
      return { phase, interval, attempt, round: uint(b.round, 'round', 1), clearing: b.clearing, stable: b.stable };
    }
    case 'deliver':
      return { phase, interval, attempt };
    case 'settle':
      return {
        phase,
        interval,
        attempt,
        imbalancePrice: uint(b.imbalancePrice, 'imbalancePrice'),
        deliveries: list(b.deliveries, 'deliveries').map((d) => d as SignedDelivery),
      };
  }
}

/** Reads a move body; throws a MarketMessageError naming the bad field. The order is checked by the receiver. */
export function parseMove(body: unknown): MoveBody {
  const b = object(body, 'move body');
  const phase = b.phase;
  if (phase !== 'offer' && phase !== 'bid') {
    throw new MarketMessageError(`move phase must be "offer" or "bid", got ${JSON.stringify(phase)}`);
  }
  const moved = b.moved;
  if (moved !== undefined && moved !== 'up' && moved !== 'down' && moved !== 'hold') {
    throw new MarketMessageError(`moved must be "up", "down" or "hold", got ${JSON.stringify(moved)}`);
  }
  if (b.out !== undefined && b.out !== true) throw new MarketMessageError('out must be true when present');
  return {
    interval: uint(b.interval, 'move interval'),
    attempt: uint(b.attempt, 'move attempt', 1),
    round: uint(b.round, 'move round', 1),
    phase,
    ...(b.order === undefined ? {} : { order: object(b.order, 'move order') as unknown as SignedOrder }),
    ...(moved === undefined ? {} : { moved }),
    ...(b.out === true ? { out: true } : {}),
  };
}

/** A body without undefined fields, as envelopes carry it. */
export function sealBody(seal: Seal): Record<string, CanonicalValue> {
  return stripUndefined(seal as unknown as Record<string, unknown>);
}

export function moveBody(move: MoveBody): Record<string, CanonicalValue> {
  return stripUndefined(move as unknown as Record<string, unknown>);
}

function stripUndefined(input: Record<string, unknown>): Record<string, CanonicalValue> {
  return JSON.parse(JSON.stringify(input)) as Record<string, CanonicalValue>;
}

function deliveryContent(d: DeliveryFields): CanonicalValue {
  return { anonym: d.anonym, interval: d.interval, netExportWh: d.netExportWh, evidence: [...d.evidence] };
}

/** The delivery id: the section 2 digest (tag mgmc/delivery/v1) of the canonical fields. */
export function deliveryId(fields: DeliveryFields, chainId: number): string {
  return toHex(signingDigest(DELIVERY_TAG, chainId, canonicalBytes(deliveryContent(fields))));
}

export function signDelivery(fields: DeliveryFields, signer: Signer, chainId: number): SignedDelivery {
  if (signer.address !== fields.anonym) {
    throw new MarketMessageError(`delivery anonym ${fields.anonym} is not the signing key ${signer.address}`);
  }
  if (!Number.isSafeInteger(fields.netExportWh)) {
    throw new MarketMessageError(`netExportWh must be an integer Wh, got ${fields.netExportWh}`);
  }
  const id = deliveryId(fields, chainId);
  const evidence = [...fields.evidence];
  return { ...fields, evidence, id, sig: toHex(signer.signDigest(fromHex(id, 'delivery id', 32))) };
}

/** Undefined when `input` is a delivery signed by its anonym on `chainId`; else what is wrong. */
export function deliveryProblem(input: unknown, chainId: number): string | undefined {
  try {
    const d = object(input, 'delivery');
    const fields: DeliveryFields = {
      anonym: address(d.anonym, 'delivery anonym'),
      interval: uint(d.interval, 'delivery interval'),
      netExportWh: d.netExportWh as number,
      evidence: list(d.evidence, 'delivery evidence', 10_000).map((s, i) => uint(s, `evidence[${i}]`)),
    };
    if (!Number.isSafeInteger(fields.netExportWh)) return 'netExportWh is not an integer Wh';
    const id = deliveryId(fields, chainId);
    if (d.id !== id) return `delivery id ${String(d.id)} is not the digest of its content`;
    if (typeof d.sig !== 'string' || !verifyDigest(fromHex(id, 'id', 32), fromHex(d.sig, 'sig', 65), fields.anonym)) {
      return `delivery ${id} is not signed by ${fields.anonym}`;
    }
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Where an MGMC's interval ended up after the market: the trades that stand and its own part of them. */
export interface IntervalResult {
  readonly interval: number;
  readonly attempt: number;
  readonly round: number;
  readonly stable: boolean;
  /** Every trade of the standing clearing. */
  readonly trades: readonly Trade[];
  /** Its own trades (as seller or buyer). */
  readonly own: readonly Trade[];
  /** Every order of the standing round (what `mgmc market replay` recomputes the clearing from). */
  readonly orders: readonly SignedOrder[];
  /** P2P sold − bought, Wh. */
  readonly p2pNetWh: number;
  /** Its net position once the rest is met with the grid (Wh, + = export), on its curve. */
  readonly positionWh: number;
  readonly grid: GridPrices;
  readonly imbalancePrice: number;
  readonly gateClosure: number;
}

export interface MarketParticipantOptions {
  readonly chainId: number;
  /** The anonym key: signs orders and deliveries. */
  readonly signer: Signer;
  readonly rules?: ContractRules;
  /** The energy it sells is green. */
  readonly green?: boolean;
  /** Its price-response curve for an interval (market units), or undefined to stay out. */
  readonly curve: (interval: number, attempt: number) => Promise<PriceResponseCurve | undefined>;
  /** Publishes one move (kind MARKET_MOVE_KIND) or delivery (MARKET_DELIVERY_KIND) body for an interval. */
  readonly send: (interval: number, kind: string, body: Record<string, CanonicalValue>) => Promise<void>;
  /** Its metered delivery of an interval (its connection meter's signed records), when asked. */
  readonly delivery?: (interval: number) => MeteredDelivery | undefined;
  readonly logger: Logger;
  /** Called with each attempt's standing outcome (the last one before the gate closure stands). */
  readonly onFinal?: (result: IntervalResult) => void;
  /** Called with the settlement of an interval it traded in, and its own records of it. */
  readonly onSettled?: (settlement: Settlement, own: readonly RecordBody[]) => void;
}

interface AttemptState {
  readonly open: OpenSeal;
  readonly bargainer: Bargainer | undefined;
  readonly curve: PriceResponseCurve | undefined;
  /** Rounds cleared: orders and clearing. */
  readonly cleared: Map<number, { orders: readonly SignedOrder[]; clearing: RoundClearing }>;
  /** Set when a seal disagreed with its own computation: it sits the attempt out. */
  disputed?: string;
}

export interface ParticipantStats {
  readonly attempts: number;
  readonly finals: number;
  readonly disputes: number;
  readonly settlements: number;
  readonly sent: number;
}

/**
 * One MGMC's side of the market: answers seals with moves, checks every seal against its own computation, and keeps
 * the standing result of each interval. Seals of one interval are handled one at a time, in arrival order.
 */
export class MarketParticipant {
  private readonly attempts = new Map<number, AttemptState>();
  private readonly results = new Map<number, IntervalResult>();
  private readonly queues = new Map<number, Promise<void>>();
  /** Intervals whose curve is being computed for a new attempt (their old trades must not shape it). */
  private readonly opening = new Set<number>();
  private readonly counts = { attempts: 0, finals: 0, disputes: 0, settlements: 0, sent: 0 };
  private readonly log: Logger;
  /** Every order is checked twice (its phase's seal, then the round's): the cache makes the second free. */
  private readonly signatures = new SignatureVerifier();

  constructor(private readonly o: MarketParticipantOptions) {
    this.log = o.logger.child({ module: 'market' });
  }

  get anonym(): Address {
    return this.o.signer.address;
  }

  /** Takes a seal the link opened and checked to come from a DSO validator. Never throws. */
  onSeal(seal: Seal): Promise<void> {
    const previous = this.queues.get(seal.interval) ?? Promise.resolve();
    const next = previous
      .then(() => this.handle(seal))
      .catch((err: unknown) => {
        this.log.error({ interval: seal.interval, phase: seal.phase, err }, `market seal failed: ${String(err)}`);
      });
    this.queues.set(seal.interval, next);
    void next.finally(() => {
      if (this.queues.get(seal.interval) === next) this.queues.delete(seal.interval);
    });
    return next;
  }

  /** The standing result of an interval (the last final seen), if it traded in it. */
  result(interval: number): IntervalResult | undefined {
    return this.results.get(interval);
  }

  /** True while an attempt of the interval is being bargained that has not reached its final yet. */
  inProgress(interval: number): boolean {
    if (this.opening.has(interval)) return true;
    const state = this.attempts.get(interval);
    if (state === undefined || state.disputed !== undefined || state.bargainer === undefined) return false;
    return this.results.get(interval)?.attempt !== state.open.attempt;
  }

  /** Standing results of intervals starting in [from, to). */
  resultsIn(from: number, to: number): IntervalResult[] {
    return [...this.results.values()].filter((r) => r.interval >= from && r.interval < to);
  }

  /** Forgets intervals that started before `before` (their settlement is done or abandoned). */
  forget(before: number): void {
    for (const key of [...this.results.keys()]) if (key < before) this.results.delete(key);
    for (const key of [...this.attempts.keys()]) if (key < before) this.attempts.delete(key);
  }

  stats(): ParticipantStats {
    return { ...this.counts };
  }

  private async handle(seal: Seal): Promise<void> {
    const state = this.attempts.get(seal.interval);
    if (seal.phase === 'open') {
      if (state !== undefined && state.open.attempt >= seal.attempt) return;
      await this.onOpen(seal);
      return;
    }
    if (seal.phase === 'deliver') return this.onDeliver(seal);
    if (seal.phase === 'settle') return this.onSettle(seal);
    if (state === undefined || state.open.attempt !== seal.attempt || state.disputed !== undefined) return;
    if (state.bargainer === undefined) return;
    if (seal.phase === 'final') this.onFinalSeal(state, seal);
    else if (seal.phase === 'offer') await this.onOffers(state, state.bargainer, seal);
    else await this.onBids(state, state.bargainer, seal);
  }

  private setup(open: OpenSeal): MarketSetup {
    return {
      chainId: this.o.chainId,
      interval: open.interval,
      grid: open.grid,
      gateClosure: open.gateClosure,
      params: { ...DEFAULT_BARGAINING, roundCap: open.roundCap },
      attempt: open.attempt,
      ...(open.maxQtyWh === undefined ? {} : { maxQtyWh: open.maxQtyWh }),
    };
  }

  private async onOpen(open: OpenSeal): Promise<void> {
    this.counts.attempts++;
    const invited = open.participants.some((a) => a.toLowerCase() === this.anonym.toLowerCase());
    let curve: PriceResponseCurve | undefined;
    if (invited) {
      this.opening.add(open.interval);
      try {
        const raw = await this.o.curve(open.interval, open.attempt);
        curve =
          raw === undefined
            ? undefined
            : normalizeCurve(raw, {
                where: `curve for ${new Date(open.interval).toISOString()}`,
                repairToleranceWh: 5,
              });
      } catch (err) {
        this.log.error({ interval: open.interval, err }, `no price-response curve: ${(err as Error).message}`);
      } finally {
        this.opening.delete(open.interval);
      }
    }
    const bargainer =
      curve === undefined
        ? undefined
        : new Bargainer(
            {
              anonym: this.anonym,
              curve,
              ...(this.o.rules === undefined ? {} : { rules: this.o.rules }),
              green: this.o.green === true,
              signer: this.o.signer,
            },
            this.setup(open),
          );
    this.attempts.set(open.interval, { open, bargainer, curve, cleared: new Map() });
    if (!invited) return;
    if (bargainer === undefined) {
      await this.send(open, { interval: open.interval, attempt: open.attempt, round: 1, phase: 'offer', out: true });
      return;
    }
    const order = bargainer.side() === 'offer' ? (bargainer.proposal(1) as SignedOrder | undefined) : undefined;
    await this.send(open, {
      interval: open.interval,
      attempt: open.attempt,
      round: 1,
      phase: 'offer',
      ...(order === undefined ? {} : { order }),
    });
  }

  /** Checks every order of a seal as any receiver would: signed, for this interval, attempt and round. */
  private checkSealed(state: AttemptState, seal: RoundSeal): SignedOrder[] | undefined {
    const out: SignedOrder[] = [];
    for (const raw of seal.orders) {
      const checked = checkOrder(raw, {
        chainId: this.o.chainId,
        now: 0,
        interval: seal.interval,
        gateClosure: Number.MAX_SAFE_INTEGER,
        round: seal.round,
        limits: { band: state.open.grid, roundCap: state.open.roundCap },
        isAuthorized: (a) => state.open.participants.some((p) => p.toLowerCase() === a.toLowerCase()),
        verifier: this.signatures,
      });
      const attempt = checked.ok ? (checked.order.attempt ?? 1) : undefined;
      if (!checked.ok || attempt !== seal.attempt || (seal.phase === 'offer' && checked.order.side !== 'offer')) {
        this.dispute(
          state,
          checked.ok
            ? `the ${seal.phase} seal of round ${seal.round} holds order ${checked.order.id} of another attempt or side`
            : `the ${seal.phase} seal of round ${seal.round} holds a bad order: ${checked.code}: ${checked.detail}`,
        );
        return undefined;
      }
      out.push(checked.order);
    }
    return out;
  }

  private async onOffers(state: AttemptState, bargainer: Bargainer, seal: RoundSeal): Promise<void> {
    const offers = this.checkSealed(state, seal);
    if (offers === undefined) return;
    const order =
      bargainer.side() !== 'offer' ? (bargainer.proposal(seal.round, offers) as SignedOrder | undefined) : undefined;
    await this.send(state.open, {
      interval: seal.interval,
      attempt: seal.attempt,
      round: seal.round,
      phase: 'bid',
      ...(order === undefined ? {} : { order }),
    });
  }

  private async onBids(state: AttemptState, bargainer: Bargainer, seal: RoundSeal): Promise<void> {
    const orders = this.checkSealed(state, seal);
    if (orders === undefined) return;
    const clearing = clearRound(orders, { interval: seal.interval, round: seal.round });
    const hash = clearingHash(clearing);
    if (hash !== seal.clearing) {
      this.dispute(state, `round ${seal.round}: the seal's clearing ${seal.clearing} differs from ours ${hash}`);
      return;
    }
    state.cleared.set(seal.round, { orders, clearing });
    const moved = bargainer.observe(clearing, orders);
    if (seal.round >= state.open.roundCap) return;
    const next = seal.round + 1;
    const order = bargainer.side() === 'offer' ? (bargainer.proposal(next) as SignedOrder | undefined) : undefined;
    await this.send(state.open, {
      interval: seal.interval,
      attempt: seal.attempt,
      round: next,
      phase: 'offer',
      moved,
      ...(order === undefined ? {} : { order }),
    });
  }

  private onFinalSeal(state: AttemptState, seal: FinalSeal): void {
    const standing = state.cleared.get(seal.round);
    if (standing === undefined) {
      this.dispute(state, `the final seal names round ${seal.round}, which it did not see cleared`);
      return;
    }
    const hash = clearingHash(standing.clearing);
    if (hash !== seal.clearing) {
      this.dispute(state, `the final seal's clearing ${seal.clearing} differs from round ${seal.round}'s ${hash}`);
      return;
    }
    const me = this.anonym;
    const trades = standing.clearing.trades;
    const own = trades.filter((t) => t.seller === me || t.buyer === me);
    const curve = state.curve as PriceResponseCurve;
    const [outcome] = settleWithGrid([{ anonym: me, curve }], state.open.grid, trades);
    const result: IntervalResult = {
      interval: seal.interval,
      attempt: seal.attempt,
      round: seal.round,
      stable: seal.stable,
      trades,
      own,
      orders: standing.orders,
      p2pNetWh: outcome?.p2pNetWh ?? 0,
      positionWh: outcome?.positionWh ?? 0,
      grid: state.open.grid,
      imbalancePrice: state.open.imbalancePrice,
      gateClosure: state.open.gateClosure,
    };
    this.results.set(seal.interval, result);
    this.counts.finals++;
    this.log.info(
      {
        interval: seal.interval,
        attempt: seal.attempt,
        rounds: seal.round,
        stable: seal.stable,
        trades: own.length,
        p2pNetWh: result.p2pNetWh,
      },
      `market ${new Date(seal.interval).toISOString()} attempt ${seal.attempt}: ${own.length} trade(s) after ` +
        `${seal.round} round(s)`,
    );
    this.o.onFinal?.(result);
  }

  private async onDeliver(seal: DeliverSeal): Promise<void> {
    const result = this.standingFor(seal);
    if (result === undefined || result.own.length === 0 || this.o.delivery === undefined) return;
    let metered: MeteredDelivery | undefined;
    try {
      metered = this.o.delivery(seal.interval);
    } catch (err) {
      this.log.error({ interval: seal.interval, err }, `metered delivery unavailable: ${(err as Error).message}`);
      return;
    }
    if (metered === undefined) {
      this.log.warn({ interval: seal.interval }, 'no meter-signed records cover the interval yet; no delivery sent');
      return;
    }
    const delivery = signDelivery(
      { anonym: this.anonym, interval: seal.interval, netExportWh: metered.netExportWh, evidence: metered.evidence },
      this.o.signer,
      this.o.chainId,
    );
    this.counts.sent++;
    try {
      await this.o.send(seal.interval, MARKET_DELIVERY_KIND, { interval: seal.interval, delivery: { ...delivery } });
    } catch (err) {
      this.log.warn({ interval: seal.interval }, `delivery not sent: ${(err as Error).message}`);
    }
  }

  /** Its result of the attempt a deliver or settle seal names; undefined (and said) when it holds another one. */
  private standingFor(seal: DeliverSeal | SettleSeal): IntervalResult | undefined {
    const result = this.results.get(seal.interval);
    if (result !== undefined && result.attempt !== seal.attempt) {
      this.counts.disputes++;
      this.log.error(
        { interval: seal.interval, ours: result.attempt, standing: seal.attempt },
        `the DSO settles attempt ${seal.attempt} but our standing result is attempt ${result.attempt}; not settling`,
      );
      return undefined;
    }
    return result;
  }

  private onSettle(seal: SettleSeal): void {
    const result = this.standingFor(seal);
    if (result === undefined || result.own.length === 0) return;
    const deliveries = new Map<string, MeteredDelivery>();
    for (const d of seal.deliveries) {
      const problem = deliveryProblem(d, this.o.chainId);
      if (problem !== undefined || d.interval !== seal.interval) {
        this.log.error({ interval: seal.interval }, `settle seal holds a bad delivery: ${problem ?? 'wrong interval'}`);
        this.counts.disputes++;
        return;
      }
      deliveries.set(d.anonym, { netExportWh: d.netExportWh, evidence: d.evidence });
    }
    let settlement: Settlement;
    try {
      settlement = settleInterval({
        interval: seal.interval,
        trades: result.trades,
        delivery: (anonym) => deliveries.get(anonym),
        imbalancePrice: seal.imbalancePrice,
      });
    } catch (err) {
      this.log.error({ interval: seal.interval }, `cannot settle: ${(err as Error).message}`);
      return;
    }
    const me = this.anonym;
    const own = settlement.records.filter((r) => r.seller === me || r.buyer === me || r.anonym === me);
    this.counts.settlements++;
    this.o.onSettled?.(settlement, own);
  }

  private dispute(state: AttemptState, detail: string): void {
    state.disputed = detail;
    this.counts.disputes++;
    this.log.error(
      { interval: state.open.interval, attempt: state.open.attempt },
      `market seal disputed, sitting this attempt out: ${detail}`,
    );
  }

  private async send(open: OpenSeal, move: MoveBody): Promise<void> {
    this.counts.sent++;
    try {
      await this.o.send(open.interval, MARKET_MOVE_KIND, moveBody(move));
    } catch (err) {
      this.log.warn(
        { interval: open.interval, round: move.round, phase: move.phase },
        `market move not sent: ${(err as Error).message}`,
      );
    }
  }
}
