/**
 * The MGMC side of grid security (docs/protocol.md section 11, "Grid security"): it reports the MGMC's net position
 * per market interval to the DSO, and takes the DSO's trading-adjustment contracts in.
 *
 * - publishPosition(interval, netW) sends a signed `position` on node/{addr}/positions. The latest position of every
 *   interval that has not ended is sent again after each reconnect, so the DSO always checks what the MGMC intends
 *   now (the DSO keeps the newest position per MGMC and interval).
 * - An `adjustment` on dso/adjustments/{addr} is accepted only from a DSO validator (the link envelope's signer, as
 *   for every DSO message), once per envelope id; its body is decrypted with the MGMC's key and the contract's own
 *   DSO signature checked (dso/adjustment.ts openAdjustment). A contract id seen before is refused as `replayed`, one
 *   of an earlier DSO round than the one in force for its interval as `superseded`. Accepted contracts are stored
 *   (link/adjustment-store.ts), recorded in the ledger and handed to onCaps listeners.
 * - Every adjustment that could be decrypted far enough to name its contract is answered with a signed
 *   `adjustment-ack` on node/{addr}/acks: `applied`, or `rejected` with the reason. An ack lost on the way is healed by
 *   the DSO sending the contract again, which is answered `rejected`/`replayed`: for the DSO, either says "received".
 */
import type { Clock, TimerHandle } from '../clock.js';
import {
  ADJUSTMENT_ACK_KIND,
  ADJUSTMENT_KIND,
  type AdjustmentCaps,
  type AdjustmentRejection,
  MAX_POWER_W,
  openAdjustment,
  POSITION_KIND,
} from '../dso/adjustment.js';
import type { Address } from '../identity/keys.js';
import type { CanonicalValue } from '../ledger/canonical.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../logger.js';
import type { NetPositionCaps } from '../optimizer/model.js';
import type { SqliteDatabase } from '../store/database.js';
import { AdjustmentStore, type StoredAdjustment } from './adjustment-store.js';
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  type Envelope,
  type EnvelopeBody,
  type EnvelopeSealer,
  openEnvelope,
  ReplayGuard,
} from './envelope.js';
import type { LinkMessage, LinkState, MessageHandler, StateChange } from './mqtt-client.js';
import { type LinkTopics, parseTopic } from './topics.js';

/** What MgmcAdjustments needs from the MQTT link (MqttLink implements it). */
export interface AdjustmentTransport {
  readonly state: LinkState;
  subscribe(filter: string, handler: MessageHandler): Promise<void>;
  publish(topic: string, payload: Uint8Array): Promise<void>;
  onState(listener: (change: StateChange) => void): () => void;
}

export interface MgmcAdjustmentsOptions {
  readonly link: AdjustmentTransport;
  /** The process's one sealer (shared with the link, the outbox and MgmcSync). */
  readonly sealer: EnvelopeSealer;
  readonly topics: LinkTopics;
  /** The agent database (AGENT_DB_MIGRATIONS). */
  readonly db: SqliteDatabase;
  /** The MGMC's private key: adjustments are encrypted to it. */
  readonly privateKey: Uint8Array;
  /** The DSO validators the light client follows (MgmcSync.validators()). */
  readonly validators: () => readonly Address[];
  readonly clock: Clock;
  readonly logger: Logger;
  /** Accepted contracts are recorded here as `dso-message` records, for auditors. */
  readonly ledger?: Pick<Ledger, 'append'>;
  /** Stored contracts are deleted this long after they expire. Default 7 days. */
  readonly keepMs?: number;
  /** How often old contracts and positions are dropped. Default 1 h. */
  readonly maintenanceEveryMs?: number;
  readonly maxEnvelopeBytes?: number;
}

/** New caps in force for one interval (an accepted contract). */
export interface CapsEvent {
  /** Start of the interval, ms. */
  readonly interval: number;
  readonly durationMs: number;
  readonly caps: AdjustmentCaps;
  /** The DSO's round for this interval. */
  readonly iteration: number;
  /** The contract id. */
  readonly id: string;
  readonly expiry: number;
}

export interface AdjustmentStats {
  readonly accepted: number;
  /** Refused contracts, by reason. */
  readonly rejected: Readonly<Record<string, number>>;
  /** Refused envelopes (before any decryption), by reason. */
  readonly bad: Readonly<Record<string, number>>;
  readonly duplicates: number;
  readonly positionsSent: number;
  readonly acksSent: number;
  readonly ackFailures: number;
}

const MAX_DETAIL = 300;

export class MgmcAdjustments {
  private readonly o: MgmcAdjustmentsOptions;
  private readonly log: Logger;
  private readonly store: AdjustmentStore;
  private readonly self: Address;
  private readonly guard = new ReplayGuard();
  private readonly listeners = new Set<(event: CapsEvent) => void>();
  /** Latest position per interval start (with the interval end), sent again after a reconnect. */
  private readonly positions = new Map<number, { netW: number; end: number }>();
  private readonly rejected = new Map<string, number>();
  private readonly bad = new Map<string, number>();
  private readonly counts = { accepted: 0, duplicates: 0, positionsSent: 0, acksSent: 0, ackFailures: 0 };
  private readonly cleanups: (() => void)[] = [];
  private maintenance: TimerHandle | undefined;
  private running = false;

  constructor(options: MgmcAdjustmentsOptions) {
    this.o = options;
    this.log = options.logger.child({ module: 'adjustments' });
    this.store = new AdjustmentStore(options.db);
    this.self = options.sealer.address;
    if (options.topics.chainId !== options.sealer.chainId) {
      throw new Error(
        `link topics are for chain ${options.topics.chainId}, envelopes are sealed for ${options.sealer.chainId}`,
      );
    }
  }

  /** Subscribes to this MGMC's adjustment topic. Call before MqttLink.connect(), like MgmcSync.start(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const { link, topics, clock } = this.o;
    const filter = topics.dsoAdjustments(this.self);
    link
      .subscribe(filter, (message) => this.onMessage(message))
      .catch((err: Error) => {
        if (this.running) this.log.error({ filter, err: err.message }, `cannot subscribe to ${filter}: ${err.message}`);
      });
    this.cleanups.push(
      link.onState((change) => {
        if (change.state === 'online') this.resendPositions();
      }),
    );
    this.maintenance = clock.setInterval(() => this.runMaintenance(), this.o.maintenanceEveryMs ?? 3_600_000);
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.maintenance?.cancel();
    this.maintenance = undefined;
  }

  /**
   * Calls `listener` with the caps of every contract accepted from now on (the optimizer re-plans, the market
   * re-trades). Returns the function that removes it.
   */
  onCaps(listener: (event: CapsEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The caps in force for the interval starting at `interval`, if the DSO capped it. */
  capsFor(interval: number): (AdjustmentCaps & { readonly id: string; readonly iteration: number }) | undefined {
    const row = this.store.inForce(interval);
    return row === undefined ? undefined : { ...capsOf(row), id: row.id, iteration: row.iteration };
  }

  /**
   * The caps in force over an optimizer horizon, per step: a step overlapped by capped intervals gets the tightest of
   * their caps (a cap on any part of a step bounds the step's mean). The shape SiteModel.caps takes.
   */
  capsForHorizon(start: number, stepMs: number, steps: number): NetPositionCaps {
    const maxImportW: (number | undefined)[] = new Array(steps).fill(undefined);
    const maxExportW: (number | undefined)[] = new Array(steps).fill(undefined);
    for (const row of this.store.inForceBetween(start, start + stepMs * steps)) {
      const first = Math.max(0, Math.floor((row.interval - start) / stepMs));
      const last = Math.min(steps - 1, Math.ceil((row.interval + row.durationMs - start) / stepMs) - 1);
      for (let t = first; t <= last; t++) {
        if (row.maxImportW !== undefined) maxImportW[t] = Math.min(maxImportW[t] ?? Infinity, row.maxImportW);
        if (row.maxExportW !== undefined) maxExportW[t] = Math.min(maxExportW[t] ?? Infinity, row.maxExportW);
      }
    }
    return { maxImportW, maxExportW };
  }

  /**
   * Reports the net position (W, + import) the MGMC plans for the interval starting at `interval` (ms). Resolves
   * with the envelope id once the broker has it; rejects while offline (it is sent again after the next connect).
   */
  async publishPosition(interval: number, netW: number, durationMs = 900_000): Promise<string> {
    if (!Number.isSafeInteger(interval) || interval < 0) {
      throw new RangeError(`position interval ${interval} is not ms since the epoch (an integer >= 0)`);
    }
    if (!Number.isSafeInteger(netW) || Math.abs(netW) > MAX_POWER_W) {
      throw new RangeError(`net position ${netW} W is not an integer W within ±${MAX_POWER_W}`);
    }
    this.positions.set(interval, { netW, end: interval + durationMs });
    return this.sendPosition(interval, netW);
  }

  stats(): AdjustmentStats {
    return {
      ...this.counts,
      rejected: Object.fromEntries(this.rejected),
      bad: Object.fromEntries(this.bad),
    };
  }

  /** Drops contracts expired longer than keepMs ago and positions of intervals that ended. Never throws. */
  runMaintenance(): void {
    const now = this.o.clock.now();
    try {
      const dropped = this.store.prune(now - (this.o.keepMs ?? 7 * 86_400_000));
      if (dropped > 0) this.log.debug({ dropped }, 'deleted expired adjustment contracts');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, `adjustment housekeeping failed: ${(err as Error).message}`);
    }
    for (const [interval, p] of this.positions) if (p.end <= now) this.positions.delete(interval);
  }

  private async sendPosition(interval: number, netW: number): Promise<string> {
    const { link, sealer, topics } = this.o;
    const sealed = sealer.seal(POSITION_KIND, { interval, netW });
    await link.publish(topics.node(this.self, 'positions'), sealed.bytes);
    this.counts.positionsSent++;
    this.log.debug({ interval, netW, id: sealed.envelope.id }, 'net position sent to the DSO');
    return sealed.envelope.id;
  }

  private resendPositions(): void {
    const now = this.o.clock.now();
    for (const [interval, p] of this.positions) {
      if (p.end <= now) {
        this.positions.delete(interval);
        continue;
      }
      this.sendPosition(interval, p.netW).catch((err: Error) =>
        this.log.debug({ interval, err: err.message }, 'position not sent; sent again after the next connect'),
      );
    }
  }

  private onMessage(message: LinkMessage): void {
    if (!this.running) return;
    const { sealer } = this.o;
    const topic = parseTopic(message.topic);
    if (
      topic.kind !== 'dso-adjustments' ||
      topic.chainId !== sealer.chainId ||
      topic.address !== this.self.toLowerCase()
    ) {
      this.refuse('wrong-topic', `a message on ${message.topic}, which is not this MGMC's adjustment topic`);
      return;
    }
    const opened = openEnvelope(message.payload, {
      chainId: sealer.chainId,
      maxBytes: this.o.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
    });
    if (!opened.ok) {
      this.refuse(opened.reason, opened.detail);
      return;
    }
    const envelope = opened.envelope;
    const validators = this.o.validators();
    if (!validators.some((v) => v.toLowerCase() === envelope.from.toLowerCase())) {
      this.refuse(
        'unknown-sender',
        `envelope ${envelope.id} is signed by ${envelope.from}, who is not a DSO validator (${validators.join(', ')})`,
      );
      return;
    }
    if (envelope.kind !== ADJUSTMENT_KIND) {
      this.refuse('wrong-kind', `a ${envelope.kind} envelope (${envelope.id}) does not belong on ${message.topic}`);
      return;
    }
    if (!this.guard.check(envelope).fresh) {
      this.counts.duplicates++;
      return;
    }
    try {
      this.receive(envelope, validators);
    } catch (err) {
      this.log.error({ err, id: envelope.id }, `handling adjustment ${envelope.id} failed: ${(err as Error).message}`);
    }
    this.guard.record(envelope);
  }

  /** Decrypts, checks, stores and acknowledges one adjustment envelope already checked as the DSO's. */
  private receive(envelope: Envelope, validators: readonly Address[]): void {
    const { clock, privateKey, sealer } = this.o;
    const now = clock.now();
    const opened = openAdjustment(envelope.body, { privateKey, chainId: sealer.chainId, validators, now });
    if (!opened.ok) {
      this.reject(opened.reason, opened.detail, opened.id, opened.interval);
      return;
    }
    const { contract, sig } = opened.signed;
    const inForce = this.store.inForce(contract.interval);
    const outcome = this.store.db.transaction((): AdjustmentRejection | StoredAdjustment => {
      if (this.store.has(contract.id)) return 'replayed';
      const current = this.store.inForce(contract.interval);
      if (
        current !== undefined &&
        (current.iteration > contract.iteration ||
          (current.iteration === contract.iteration && current.issued > contract.issued))
      ) {
        return 'superseded';
      }
      const row: StoredAdjustment = {
        id: contract.id,
        interval: contract.interval,
        durationMs: contract.durationMs,
        iteration: contract.iteration,
        issued: contract.issued,
        expiry: contract.expiry,
        maxImportW: contract.caps.maxImportW,
        maxExportW: contract.caps.maxExportW,
        dso: contract.dso,
        signed: opened.bytes,
        received: now,
      };
      this.store.insert(row);
      return row;
    })();
    const when = new Date(contract.interval).toISOString();
    if (typeof outcome === 'string') {
      const detail =
        outcome === 'replayed'
          ? `contract ${contract.id} was received before; a contract is applied once`
          : `contract ${contract.id} is of DSO round ${contract.iteration}, but round ${inForce?.iteration} is in force for ${when}`;
      this.reject(outcome, detail, contract.id, contract.interval);
      return;
    }
    this.counts.accepted++;
    this.log.info(
      { id: contract.id, interval: contract.interval, iteration: contract.iteration, caps: contract.caps },
      `DSO caps for ${when}: ${describeCaps(contract.caps)} (round ${contract.iteration}: ${contract.reason})`,
    );
    this.o.ledger?.append([
      {
        type: 'dso-message',
        body: {
          id: envelope.id,
          kind: ADJUSTMENT_KIND,
          from: envelope.from,
          payload: { contract: contract as unknown as CanonicalValue, sig },
        },
      },
    ]);
    this.ack({ ref: contract.id, interval: contract.interval, status: 'applied', digest: opened.digest });
    const event: CapsEvent = {
      interval: contract.interval,
      durationMs: contract.durationMs,
      caps: capsOf(outcome),
      iteration: contract.iteration,
      id: contract.id,
      expiry: contract.expiry,
    };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err, id: contract.id }, `a caps listener failed: ${(err as Error).message}`);
      }
    }
  }

  private reject(
    reason: AdjustmentRejection,
    detail: string,
    id: string | undefined,
    interval: number | undefined,
  ): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    const serious = reason !== 'replayed' && reason !== 'expired' && reason !== 'superseded';
    (serious ? this.log.error.bind(this.log) : this.log.warn.bind(this.log))(
      { reason, id, interval },
      `refused a DSO adjustment (${reason}): ${detail}`,
    );
    // Without the contract id there is nothing the DSO could match an ack to.
    if (id === undefined) return;
    this.ack({
      ref: id,
      ...(interval === undefined ? {} : { interval }),
      status: 'rejected',
      reason,
      detail: detail.slice(0, MAX_DETAIL),
    });
  }

  private ack(body: EnvelopeBody): void {
    const { link, sealer, topics } = this.o;
    const sealed = sealer.seal(ADJUSTMENT_ACK_KIND, body);
    link.publish(topics.node(this.self, 'acks'), sealed.bytes).then(
      () => {
        this.counts.acksSent++;
      },
      (err: Error) => {
        this.counts.ackFailures++;
        // The DSO sends an unacknowledged contract again; that replay is acknowledged then.
        this.log.debug({ ref: body.ref, err: err.message }, 'adjustment ack not sent; the DSO will send again');
      },
    );
  }

  private refuse(reason: string, detail: string): void {
    this.bad.set(reason, (this.bad.get(reason) ?? 0) + 1);
    this.log.warn({ reason }, `refused a message on the adjustment topic (${reason}): ${detail}`);
  }
}

function capsOf(row: StoredAdjustment): AdjustmentCaps {
  return {
    ...(row.maxImportW === undefined ? {} : { maxImportW: row.maxImportW }),
    ...(row.maxExportW === undefined ? {} : { maxExportW: row.maxExportW }),
  };
}

/** "import at most 1864 kW, export at most 0 kW" for logs. */
export function describeCaps(caps: AdjustmentCaps): string {
  const parts: string[] = [];
  if (caps.maxImportW !== undefined) parts.push(`import at most ${(caps.maxImportW / 1000).toFixed(1)} kW`);
  if (caps.maxExportW !== undefined) parts.push(`export at most ${(caps.maxExportW / 1000).toFixed(1)} kW`);
  return parts.join(', ') || 'no cap';
}
