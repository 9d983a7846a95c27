/**
 * The DSO's grid-security loop (stage 2 of DESIGN.md section 2, docs/protocol.md section 11 "Grid security"):
 * MGMCs report their net position per market interval; the DSO checks the feeder with them (network-check.ts) and
 * sends each MGMC it must curtail a signed, encrypted adjustment contract (adjustment.ts); the MGMCs re-trade within
 * their caps and report again; the DSO checks again, up to `maxRounds` rounds per interval, after which the last caps
 * stand.
 *
 * - A position counts only from an MGMC the registry has authorized, at the bus the registry has for it, for an
 *   interval that has not ended; the newest one (by envelope time) per MGMC and interval is kept. The MGMC's public
 *   key, to encrypt to, is recovered from the position's own signature.
 * - checkInterval(interval) runs one round; with `settleMs` set a round also runs on its own that long after the last
 *   position of the interval arrived. Rounds run one at a time (one solver).
 * - A contract carries every cap in force for its MGMC and interval (this round's merged with earlier rounds', the
 *   tighter of each), so the newest contract is all an MGMC needs. Unacknowledged contracts are sent again every
 *   `resendMs` until they expire; an ack of any status says the MGMC has it.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { Feeder } from '../grid/feeder.js';
import type { BusPowers } from '../grid/powerflow.js';
import type { Address } from '../identity/keys.js';
import type { Signer } from '../ledger/block.js';
import type { Envelope, EnvelopeBody } from '../link/envelope.js';
import type { LinkTopics } from '../link/topics.js';
import type { Logger } from '../logger.js';
import type { Solver } from '../optimizer/solver.js';
import {
  ADJUSTMENT_ACK_KIND,
  ADJUSTMENT_KIND,
  type AdjustmentCaps,
  type AdjustmentContract,
  adjustmentBody,
  encryptAdjustment,
  MAX_POWER_W,
  MAX_REASON_LENGTH,
  newAdjustmentId,
  POSITION_KIND,
  recoverEnvelopeKey,
  signAdjustment,
} from './adjustment.js';
import { checkNetwork, type NetworkCheck, type NetworkCheckOptions, type ReportedPosition } from './network-check.js';
import type { Registry } from './registry.js';

export interface GridSecuritySettings {
  /** Length of a market interval, ms; positions must start on a multiple of it. Default 15 min. */
  readonly intervalMs?: number;
  /** Network-check rounds per interval; after the last one its caps stand. Default 5. */
  readonly maxRounds?: number;
  /** Run a round this long after the last position of an interval arrived; only checkInterval() when unset. */
  readonly settleMs?: number;
  /** Unacknowledged contracts are sent again this often, ms. Default 15 s. */
  readonly resendMs?: number;
  /** The load that is not the MGMCs' in an interval (a forecast); the feeder's base loads when it gives none. */
  readonly base?: (interval: number) => BusPowers | undefined;
  /** Tuning of the network check (iterations, margins, loading limit). */
  readonly check?: Omit<NetworkCheckOptions, 'base' | 'interval'>;
  /** Told of every round that ran a check, with the positions it checked (reports, dashboards). */
  readonly onRound?: (round: IntervalRound, positions: readonly ReportedPosition[]) => void;
}

export interface GridSecurityOptions extends GridSecuritySettings {
  readonly feeder: Feeder;
  readonly solver: Solver;
  readonly registry: Pick<Registry, 'lookup'>;
  /** The DSO's key: signs the contracts. */
  readonly signer: Signer;
  readonly chainId: number;
  readonly topics: LinkTopics;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Seals and publishes one envelope; rejects when the broker did not take it. */
  readonly publish: (topic: string, kind: string, body: EnvelopeBody) => Promise<void>;
}

export type MessageOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: string; readonly detail: string };

/** One contract sent. */
export interface SentAdjustment {
  readonly id: string;
  readonly mgmc: Address;
  readonly interval: number;
  readonly iteration: number;
  readonly caps: AdjustmentCaps;
  readonly expiry: number;
}

export interface IntervalRound {
  readonly interval: number;
  /** The round number (1, 2, ...); the last round's number when skipped for the round limit. */
  readonly round: number;
  /** Undefined when the round was skipped. */
  readonly check?: NetworkCheck;
  readonly sent: readonly SentAdjustment[];
  /** Why no check ran: no positions, the round limit. */
  readonly skipped?: string;
}

export interface GridSecurityStats {
  readonly positions: number;
  readonly rounds: number;
  readonly contractsSent: number;
  readonly resent: number;
  readonly acked: number;
  /** Contracts MGMCs refused, by reason. */
  readonly refusedByMgmc: Readonly<Record<string, number>>;
  readonly pendingAcks: number;
  /** Intervals whose last round ended not secure. */
  readonly notSecure: number;
}

interface Position {
  readonly mgmc: Address;
  readonly bus: string;
  readonly netW: number;
  readonly time: number;
}

interface Pending {
  readonly sent: SentAdjustment;
  readonly topic: string;
  readonly body: EnvelopeBody;
}

interface IntervalState {
  readonly positions: Map<string, Position>;
  rounds: number;
  /** Caps in force per MGMC (lower-case address) from earlier rounds. */
  readonly caps: Map<string, AdjustmentCaps>;
  timer?: TimerHandle;
  secure?: boolean;
  limitLogged?: boolean;
}

const ID_RE = /^0x[0-9a-f]{32}$/;
const MAX_KEYS = 10_000;

export class GridSecurity {
  private readonly o: GridSecurityOptions;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly intervals = new Map<number, IntervalState>();
  /** Public keys recovered from positions, by lower-case address. */
  private readonly keys = new Map<string, Uint8Array>();
  private readonly pending = new Map<string, Pending>();
  private readonly refused = new Map<string, number>();
  private readonly counts = { positions: 0, rounds: 0, contractsSent: 0, resent: 0, acked: 0 };
  private queue: Promise<unknown> = Promise.resolve();
  private readonly housekeeping: TimerHandle;
  private stopped = false;

  constructor(options: GridSecurityOptions) {
    this.o = options;
    this.log = options.logger.child({ module: 'grid-security' });
    this.intervalMs = options.intervalMs ?? 900_000;
    if (!Number.isSafeInteger(this.intervalMs) || this.intervalMs < 1000) {
      throw new RangeError(`market interval ${this.intervalMs} ms must be an integer of at least 1000 ms`);
    }
    this.housekeeping = options.clock.setInterval(() => this.maintain(), options.resendMs ?? 15_000);
  }

  /** Takes a `position` envelope the caller opened and verified (signature, chain, topic sender). Never throws. */
  acceptPosition(envelope: Envelope): MessageOutcome {
    if (envelope.kind !== POSITION_KIND) return refuse('unexpected-kind', `kind ${envelope.kind} is not a position`);
    const { interval, netW } = envelope.body as { interval?: unknown; netW?: unknown };
    if (!Number.isSafeInteger(interval) || (interval as number) < 0 || (interval as number) % this.intervalMs !== 0) {
      return refuse(
        'bad-field',
        `position interval ${JSON.stringify(interval)} is not the start of a ${this.intervalMs / 60_000}-minute market interval (ms)`,
      );
    }
    if (!Number.isSafeInteger(netW) || Math.abs(netW as number) > MAX_POWER_W) {
      return refuse('bad-field', `position netW ${JSON.stringify(netW)} is not an integer W within ±${MAX_POWER_W}`);
    }
    const start = interval as number;
    const now = this.o.clock.now();
    if (start + this.intervalMs <= now) {
      return refuse('stale', `position for ${new Date(start).toISOString()}, an interval that has ended`);
    }
    const entry = this.o.registry.lookup(envelope.from);
    if (entry === undefined || entry.status !== 'authorized') {
      return refuse('unregistered', `${envelope.from} is not an authorized MGMC (${entry?.status ?? 'unknown'})`);
    }
    const bus = entry.bus;
    if (bus === undefined || !this.o.feeder.busIndex.has(bus)) {
      return refuse(
        'unknown-bus',
        `${envelope.from} registered bus ${bus ?? '(none)'}, which feeder ${this.o.feeder.name} does not have: ` +
          'its position cannot be checked (fix the feeder model or the MGMC registration)',
      );
    }
    const key = envelope.from.toLowerCase();
    if (!this.keys.has(key)) {
      try {
        if (this.keys.size >= MAX_KEYS) this.keys.delete(this.keys.keys().next().value as string);
        this.keys.set(key, recoverEnvelopeKey(envelope));
      } catch (err) {
        return refuse('bad-signature', (err as Error).message);
      }
    }
    const state = this.state(start);
    const previous = state.positions.get(key);
    if (previous !== undefined && previous.time > envelope.time) {
      return refuse('outdated', `a newer position of ${envelope.from} for this interval is already in`);
    }
    state.positions.set(key, { mgmc: envelope.from, bus, netW: netW as number, time: envelope.time });
    this.counts.positions++;
    if (this.o.settleMs !== undefined && !this.stopped) {
      state.timer?.cancel();
      state.timer = this.o.clock.setTimeout(() => {
        state.timer = undefined;
        this.checkInterval(start).catch((err: Error) =>
          this.log.error({ interval: start, err }, `network check failed: ${err.message}`),
        );
      }, this.o.settleMs);
    }
    return { ok: true };

    function refuse(reason: string, detail: string): MessageOutcome {
      return { ok: false, reason, detail };
    }
  }

  /** Takes an `adjustment-ack` envelope the caller opened and verified. Never throws. */
  acceptAck(envelope: Envelope): MessageOutcome {
    if (envelope.kind !== ADJUSTMENT_ACK_KIND) {
      return { ok: false, reason: 'unexpected-kind', detail: `kind ${envelope.kind} is not an adjustment-ack` };
    }
    const body = envelope.body as { ref?: unknown; status?: unknown; reason?: unknown; detail?: unknown };
    if (typeof body.ref !== 'string' || !ID_RE.test(body.ref)) {
      return { ok: false, reason: 'bad-field', detail: 'adjustment-ack ref must be a contract id' };
    }
    if (body.status !== 'applied' && body.status !== 'rejected') {
      return { ok: false, reason: 'bad-field', detail: 'adjustment-ack status must be applied or rejected' };
    }
    const pending = this.pending.get(body.ref);
    if (pending === undefined) {
      this.log.debug({ ref: body.ref, from: envelope.from }, 'ack for a contract no longer waiting (acked, expired)');
      return { ok: true };
    }
    if (pending.sent.mgmc.toLowerCase() !== envelope.from.toLowerCase()) {
      return { ok: false, reason: 'wrong-sender', detail: `${envelope.from} acked a contract of ${pending.sent.mgmc}` };
    }
    this.pending.delete(body.ref);
    this.counts.acked++;
    if (body.status === 'rejected') {
      const reason = typeof body.reason === 'string' ? body.reason.slice(0, 32) : 'unknown';
      this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
      // A replay answer means the MGMC had the contract already (an earlier ack was lost): delivered.
      if (reason !== 'replayed') {
        this.log.warn(
          { ref: body.ref, mgmc: envelope.from, reason },
          `MGMC ${envelope.from} refused adjustment ${body.ref} (${reason}): ${String(body.detail ?? '').slice(0, 300)}`,
        );
      }
    }
    return { ok: true };
  }

  /** The positions in for an interval. */
  positions(interval: number): ReportedPosition[] {
    return [...(this.intervals.get(interval)?.positions.values() ?? [])].map((p) => ({
      mgmc: p.mgmc,
      bus: p.bus,
      netW: p.netW,
    }));
  }

  /** Envelope time of the newest position `mgmc` reported for `interval` (the market waits for fresh ones). */
  positionTime(interval: number, mgmc: string): number | undefined {
    return this.intervals.get(interval)?.positions.get(mgmc.toLowerCase())?.time;
  }

  /** Contracts for `interval` not yet acknowledged. */
  pendingAcks(interval: number): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.sent.interval === interval) n++;
    return n;
  }

  /** Caps in force per MGMC for an interval (what the newest contract to each carries). */
  capsInForce(interval: number): ReadonlyMap<string, AdjustmentCaps> {
    return new Map(this.intervals.get(interval)?.caps ?? []);
  }

  /**
   * Runs one network-check round for the interval with the positions in now and sends the contracts it decides.
   * Rounds run one at a time, in call order.
   */
  checkInterval(interval: number): Promise<IntervalRound> {
    const run = () => this.round(interval);
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  stats(): GridSecurityStats {
    let notSecure = 0;
    for (const state of this.intervals.values()) if (state.secure === false) notSecure++;
    return {
      ...this.counts,
      refusedByMgmc: Object.fromEntries(this.refused),
      pendingAcks: this.pending.size,
      notSecure,
    };
  }

  stop(): void {
    this.stopped = true;
    this.housekeeping.cancel();
    for (const state of this.intervals.values()) state.timer?.cancel();
  }

  private state(interval: number): IntervalState {
    let state = this.intervals.get(interval);
    if (state === undefined) {
      state = { positions: new Map(), rounds: 0, caps: new Map() };
      this.intervals.set(interval, state);
    }
    return state;
  }

  private async round(interval: number): Promise<IntervalRound> {
    const { feeder, solver, clock, signer, chainId, topics } = this.o;
    const state = this.intervals.get(interval);
    const positions = this.positions(interval);
    if (state === undefined || positions.length === 0) {
      return { interval, round: state?.rounds ?? 0, sent: [], skipped: 'no positions reported for this interval' };
    }
    const maxRounds = this.o.maxRounds ?? 5;
    if (state.rounds >= maxRounds) {
      if (!state.limitLogged) {
        state.limitLogged = true;
        this.log.warn(
          { interval, rounds: state.rounds },
          `interval ${new Date(interval).toISOString()}: ${maxRounds} rounds done, the last caps stand`,
        );
      }
      return {
        interval,
        round: state.rounds,
        sent: [],
        skipped: `round limit ${maxRounds} reached; the last caps stand`,
      };
    }
    state.rounds++;
    this.counts.rounds++;
    const round = state.rounds;
    const base = this.o.base?.(interval);
    const check = await checkNetwork(feeder, positions, solver, {
      ...this.o.check,
      interval,
      ...(base === undefined ? {} : { base }),
    });
    state.secure = check.secure;
    const when = new Date(interval).toISOString();
    const sent: SentAdjustment[] = [];
    const now = clock.now();
    const expiry = interval + this.intervalMs;
    const reason = summarize(round, check);
    for (const cap of check.caps) {
      const key = cap.mgmc.toLowerCase();
      const publicKey = this.keys.get(key);
      if (publicKey === undefined) {
        this.log.error({ mgmc: cap.mgmc }, `no public key for ${cap.mgmc}: its adjustment cannot be encrypted`);
        continue;
      }
      const merged = tighter(state.caps.get(key), cap);
      state.caps.set(key, merged);
      const contract: AdjustmentContract = {
        v: 1,
        id: newAdjustmentId(),
        dso: signer.address,
        mgmc: cap.mgmc,
        interval,
        durationMs: this.intervalMs,
        issued: now,
        expiry,
        iteration: round,
        positionW: cap.positionW,
        caps: merged,
        reason,
      };
      const body = adjustmentBody(encryptAdjustment(signAdjustment(signer, chainId, contract), publicKey));
      const item: SentAdjustment = {
        id: contract.id,
        mgmc: cap.mgmc,
        interval,
        iteration: round,
        caps: merged,
        expiry,
      };
      const pending: Pending = { sent: item, topic: topics.dsoAdjustments(cap.mgmc), body };
      this.pending.set(contract.id, pending);
      this.send(pending, false);
      sent.push(item);
    }
    const level = check.status === 'not-secure' ? 'warn' : 'info';
    this.log[level](
      {
        interval,
        round,
        status: check.status,
        positions: positions.length,
        violations: check.before.violations.length,
        remaining: check.after.violations.length,
        capped: sent.length,
        iterations: check.iterations,
        curtailedW: check.curtailedW,
      },
      `interval ${when} round ${round}: ${check.status}` +
        (sent.length > 0 ? `, ${sent.length} adjustment contract(s) sent` : '') +
        (check.reason === undefined ? '' : ` (${check.reason})`),
    );
    const result: IntervalRound = { interval, round, check, sent };
    this.o.onRound?.(result, positions);
    return result;
  }

  private send(pending: Pending, again: boolean): void {
    if (again) this.counts.resent++;
    else this.counts.contractsSent++;
    this.o.publish(pending.topic, ADJUSTMENT_KIND, pending.body).catch((err: Error) => {
      this.log.debug({ id: pending.sent.id, err: err.message }, 'adjustment not sent now; sent again later');
    });
  }

  /** Resends what is unacknowledged and forgets intervals that ended an hour ago. */
  private maintain(): void {
    const now = this.o.clock.now();
    for (const [id, pending] of this.pending) {
      if (pending.sent.expiry <= now) this.pending.delete(id);
      else this.send(pending, true);
    }
    for (const [interval, state] of this.intervals) {
      if (interval + this.intervalMs + 3_600_000 < now) {
        state.timer?.cancel();
        this.intervals.delete(interval);
      }
    }
  }
}

/** The tighter of earlier caps and this round's, direction by direction. */
function tighter(earlier: AdjustmentCaps | undefined, now: AdjustmentCaps): AdjustmentCaps {
  const min = (a: number | undefined, b: number | undefined) =>
    a === undefined ? b : b === undefined ? a : Math.min(a, b);
  const maxImportW = min(earlier?.maxImportW, now.maxImportW);
  const maxExportW = min(earlier?.maxExportW, now.maxExportW);
  return {
    ...(maxImportW === undefined ? {} : { maxImportW }),
    ...(maxExportW === undefined ? {} : { maxExportW }),
  };
}

/** The contract's reason: the round, the worst violations found, and the outcome. */
function summarize(round: number, check: NetworkCheck): string {
  const found = check.before.violations;
  const shown = found
    .slice(0, 3)
    .map((v) => v.message)
    .join('; ');
  const more = found.length > 3 ? ` and ${found.length - 3} more` : '';
  const outcome = check.secure
    ? 'these caps make the interval secure'
    : 'the interval is not secure even with these caps';
  const text = `round ${round}: ${shown}${more}; ${outcome}`;
  return text.length > MAX_REASON_LENGTH ? `${text.slice(0, MAX_REASON_LENGTH - 1)}…` : text;
}
