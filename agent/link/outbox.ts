/**
 * Store and forward to the DSO: the sender loop over the outbox table.
 *
 * - enqueue() seals an envelope and stores it (inside the caller's transaction when there is one); nothing is sent
 *   from memory, so a broker outage of any length, or a restart, loses nothing.
 * - While the link is online the loop publishes pending items in outbox order, at most `maxInFlight` at a time,
 *   and marks each sent when the broker's PUBACK arrives.
 * - A sent item without a receipt after `receiptTimeoutMs` is sent again. After every (re)connect all sent-but-
 *   unacked items are sent again from the oldest, and items created before that connection go out re-signed with
 *   `historical: true`, so the DSO can tell a replay from live data.
 * - An item leaves the outbox only through acknowledge(id), called when the DSO's signed receipt for it arrives.
 * - Kinds can be held (hold/release): their items stay stored and are not sent until released, while other kinds go
 *   on. The DSO link holds blocks until the MGMC is authorized, since the DSO would only reject them as unregistered.
 *
 * Receivers dedup by envelope id: a resend is never a second message.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { parseCanonical } from '../ledger/canonical.js';
import type { Logger } from '../logger.js';
import type { Envelope, EnvelopeBody, EnvelopeSealer, SealedEnvelope } from './envelope.js';
import type { LinkState, StateChange } from './mqtt-client.js';
import type { AckResult, OutboxItem, OutboxStore } from './outbox-store.js';

/** What the outbox needs from the MQTT link (MqttLink implements it). */
export interface OutboxTransport {
  readonly state: LinkState;
  publish(topic: string, payload: Uint8Array, options?: { retain?: boolean }): Promise<void>;
  onState(listener: (change: StateChange) => void): () => void;
}

export interface OutboxOptions {
  readonly store: OutboxStore;
  readonly transport: OutboxTransport;
  readonly sealer: EnvelopeSealer;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Publishes waiting for a PUBACK at once. Default 16. */
  readonly maxInFlight?: number;
  /** A sent item without a receipt after this long is sent again. Default 60 s. */
  readonly receiptTimeoutMs?: number;
  /** How often to look for items without a receipt. Default receiptTimeoutMs / 4. */
  readonly checkEveryMs?: number;
  /** Longest wait before retrying an item the broker refused. Default 5 min. */
  readonly maxBackoffMs?: number;
  /** Kinds held from the start (see hold()). */
  readonly heldKinds?: readonly string[];
}

export interface OutboxStats {
  readonly pending: number;
  readonly sent: number;
  readonly acked: number;
  readonly inFlight: number;
  /** ms since the oldest unacknowledged item was enqueued. */
  readonly oldestPendingAgeMs: number | undefined;
  /** Kinds held back (not sent) right now, and how many unacknowledged items they have. */
  readonly heldKinds: readonly string[];
  readonly held: number;
}

interface Hold {
  /** The last wait; the next refusal waits twice as long. */
  readonly delay: number;
  /** Set while the item waits; undefined once it may be tried again. */
  timer: TimerHandle | undefined;
}

export class Outbox {
  private readonly store: OutboxStore;
  private readonly transport: OutboxTransport;
  private readonly sealer: EnvelopeSealer;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly maxInFlight: number;
  private readonly receiptTimeoutMs: number;
  private readonly checkEveryMs: number;
  private readonly maxBackoffMs: number;
  private readonly inFlight = new Set<string>();
  private readonly holds = new Map<string, Hold>();
  private readonly heldKinds = new Set<string>();
  private toMarkSent: string[] = [];
  private cursor = 0;
  private epoch = 0;
  private running = false;
  private kickQueued = false;
  private unlisten: (() => void) | undefined;
  private checker: TimerHandle | undefined;

  constructor(options: OutboxOptions) {
    this.store = options.store;
    this.transport = options.transport;
    this.sealer = options.sealer;
    this.clock = options.clock;
    this.log = options.logger.child({ module: 'outbox' });
    this.maxInFlight = options.maxInFlight ?? 16;
    this.receiptTimeoutMs = options.receiptTimeoutMs ?? 60_000;
    this.checkEveryMs = options.checkEveryMs ?? Math.max(1, Math.floor(this.receiptTimeoutMs / 4));
    this.maxBackoffMs = options.maxBackoffMs ?? 300_000;
    if (!(this.maxInFlight >= 1)) throw new RangeError(`outbox maxInFlight must be >= 1, got ${this.maxInFlight}`);
    for (const kind of options.heldKinds ?? []) this.heldKinds.add(kind);
  }

  /**
   * Seals `body` as a `kind` envelope to `topic` and stores it. Synchronous: inside the caller's
   * db.transaction(...) it commits or rolls back with the caller's writes; it is sent after the commit.
   */
  enqueue(topic: string, kind: string, body: EnvelopeBody, options: { retain?: boolean } = {}): SealedEnvelope {
    const sealed = this.sealer.seal(kind, body);
    this.store.enqueue({
      id: sealed.envelope.id,
      topic,
      kind,
      payload: sealed.bytes,
      ...(options.retain === undefined ? {} : { retain: options.retain }),
    });
    this.kick();
    return sealed;
  }

  /** Starts sending (now if the link is online, else at its next connect) and the receipt-timeout checks. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.unlisten = this.transport.onState((change) => this.onState(change));
    this.checker = this.clock.setInterval(() => this.resendUnreceipted(), this.checkEveryMs);
    if (this.transport.state === 'online') this.onConnected();
  }

  /** Stops sending; items stay in the store. Publishes already in flight still record their PUBACK. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.unlisten?.();
    this.unlisten = undefined;
    this.checker?.cancel();
    this.checker = undefined;
    for (const hold of this.holds.values()) hold.timer?.cancel();
    this.holds.clear();
    this.flushSent();
  }

  /** The DSO's receipt for `id` arrived (verified by the caller): the item leaves the outbox. Idempotent. */
  acknowledge(id: string): AckResult {
    const result = this.store.markAcked(id);
    this.holds.get(id)?.timer?.cancel();
    this.holds.delete(id);
    if (result === 'unknown') this.log.warn({ id }, `receipt for message ${id}, which is not in the outbox`);
    return result;
  }

  /**
   * Holds items of `kinds`: they are stored (enqueue works as ever) but not sent until release(). Items already
   * handed to the broker finish; items sent but not receipted are not resent while held.
   */
  hold(...kinds: string[]): void {
    for (const kind of kinds) this.heldKinds.add(kind);
  }

  /** Sends held items of `kinds` again, from the oldest, in outbox order. */
  release(...kinds: string[]): void {
    let changed = false;
    for (const kind of kinds) changed = this.heldKinds.delete(kind) || changed;
    if (!changed) return;
    this.cursor = 0; // held items sit behind the cursor: look from the start again
    this.kick();
  }

  isHeld(kind: string): boolean {
    return this.heldKinds.has(kind);
  }

  stats(): OutboxStats {
    const heldKinds = [...this.heldKinds].sort();
    return {
      ...this.store.counts(),
      inFlight: this.inFlight.size,
      oldestPendingAgeMs: this.store.oldestPendingAge(),
      heldKinds,
      held: this.store.depthOfKinds(heldKinds),
    };
  }

  /** Wakes the loop (after enqueue, PUBACK, reconnect); the work runs after the current transaction. */
  kick(): void {
    if (this.kickQueued) return;
    this.kickQueued = true;
    queueMicrotask(() => {
      this.kickQueued = false;
      this.pump();
    });
  }

  private onState(change: StateChange): void {
    if (change.state === 'online') this.onConnected();
    else if (change.previous === 'online') {
      this.log.info({ state: change.state }, 'link offline: outbox keeps every item and resends after reconnect');
    }
  }

  private onConnected(): void {
    this.epoch += 1;
    this.inFlight.clear();
    this.cursor = 0;
    const connectedAt = this.clock.now();
    this.flushSent();
    const replay = this.store.prepareReplay(connectedAt);
    const depth = this.store.depth();
    if (depth > 0) {
      this.log.info(
        { depth, resent: replay.requeued, historical: replay.historical },
        `link online: sending ${depth} queued message(s) from the oldest`,
      );
    }
    this.kick();
  }

  private pump(): void {
    if (!this.running || this.transport.state !== 'online') return;
    this.flushSent(); // record PUBACKs first, so an item just acknowledged is never picked again as pending
    while (this.inFlight.size < this.maxInFlight) {
      const batch = this.store.nextBatch(this.maxInFlight - this.inFlight.size, this.cursor, [...this.heldKinds]);
      if (batch.length === 0) return;
      const ready: OutboxItem[] = [];
      for (const item of batch) {
        this.cursor = Math.max(this.cursor, item.pos);
        if (this.inFlight.has(item.id) || this.holds.get(item.id)?.timer !== undefined) continue;
        ready.push(item);
      }
      for (const item of this.flagHistorical(ready)) this.dispatch(item);
    }
  }

  private dispatch(item: OutboxItem): void {
    const epoch = this.epoch;
    this.inFlight.add(item.id);
    this.transport.publish(item.topic, item.payload, { retain: item.retain }).then(
      () => {
        if (epoch === this.epoch) this.inFlight.delete(item.id);
        this.holds.delete(item.id);
        this.toMarkSent.push(item.id);
        if (this.toMarkSent.length === 1) queueMicrotask(() => this.flushSent());
        this.kick();
      },
      (err: Error & { code?: string; reasonCode?: number }) => {
        if (epoch === this.epoch) this.inFlight.delete(item.id);
        if (err.code === 'offline' || err.code === 'closed') {
          this.log.debug({ id: item.id, topic: item.topic }, 'not sent (link offline); kept for the next connection');
          return;
        }
        this.holdAfterFailure(item, err);
        this.kick();
      },
    );
  }

  /**
   * Items flagged historical go out re-signed with historical: true; the new bytes are stored (one transaction per
   * batch) so each replayed item is signed once.
   */
  private flagHistorical(items: OutboxItem[]): OutboxItem[] {
    const replaced: { id: string; payload: Uint8Array }[] = [];
    const out = items.map((item) => {
      if (!item.historical) return item;
      try {
        const envelope = parseCanonical(item.payload, `outbox item ${item.id}`) as unknown as Envelope;
        // Already flagged, or sealed by an earlier key (sent as it was: still valid, just not flagged).
        if (envelope.historical === true || envelope.from !== this.sealer.address) return item;
        const payload = this.sealer.reseal(envelope).bytes;
        replaced.push({ id: item.id, payload });
        return { ...item, payload };
      } catch (err) {
        this.log.error(
          { id: item.id, topic: item.topic, err: (err as Error).message },
          `cannot flag outbox item ${item.id} as historical (${(err as Error).message}); sending it as stored`,
        );
        return item;
      }
    });
    try {
      this.store.replacePayloads(replaced);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not store re-signed replays; they are re-signed next time');
    }
    return out;
  }

  private holdAfterFailure(item: OutboxItem, err: Error & { reasonCode?: number }): void {
    const previous = this.holds.get(item.id);
    previous?.timer?.cancel();
    const delay = Math.min(this.maxBackoffMs, previous === undefined ? 1000 : previous.delay * 2);
    const hold: Hold = { delay, timer: undefined };
    hold.timer = this.clock.setTimeout(() => {
      hold.timer = undefined;
      this.cursor = Math.min(this.cursor, item.pos - 1);
      this.kick();
    }, delay);
    this.holds.set(item.id, hold);
    this.log.error(
      { id: item.id, kind: item.kind, topic: item.topic, reasonCode: err.reasonCode, retryInMs: delay },
      `message ${item.id} (${item.kind}) to ${item.topic} was not accepted: ${err.message}; ` +
        `retrying in ${Math.round(delay / 1000)} s, later messages go on`,
    );
  }

  private flushSent(): void {
    if (this.toMarkSent.length === 0) return;
    const ids = this.toMarkSent;
    this.toMarkSent = [];
    try {
      this.store.markSent(ids);
    } catch (err) {
      // The items stay pending and are sent again: a duplicate the DSO drops, never a loss.
      this.log.error({ err: (err as Error).message, count: ids.length }, 'could not record PUBACKs in the outbox');
    }
  }

  private resendUnreceipted(): void {
    if (!this.running || this.transport.state !== 'online') return;
    this.flushSent();
    const due = this.store.sentBefore(this.clock.now() - this.receiptTimeoutMs, 1000);
    if (due.length === 0) return;
    const moved = this.store.requeue(due.map((item) => item.id));
    this.cursor = Math.min(this.cursor, (due[0]?.pos ?? 1) - 1);
    this.log.warn(
      { count: moved, oldest: due[0]?.id, receiptTimeoutMs: this.receiptTimeoutMs },
      `${moved} message(s) have no DSO receipt after ${Math.round(this.receiptTimeoutMs / 1000)} s; sending them again`,
    );
    this.kick();
  }
}
