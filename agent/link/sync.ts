/**
 * The MGMC side of the DSO link (docs/protocol.md section 11): registration, block shipping, and what the DSO sends
 * back (authorization, rejections, receipts, headers, the authorized set), on top of the outbox and the DSO light
 * client.
 *
 * - Every sealed block goes, in height order, into the outbox as a `block` envelope to node/{addr}/blocks. The
 *   "shipped through" mark moves in the same transaction as the enqueue, and start() enqueues every sealed block
 *   above it, so a crash between a seal and its enqueue loses nothing and ships nothing twice.
 * - Blocks are held in the outbox until the DSO has authorized this MGMC (the DSO would only reject them as
 *   `unregistered`) and held again after a revocation; registrations are never held.
 * - On start the registration (meters, bus, trade flags, anonym) is compared with the one last sent; a changed one, or
 *   one never answered and no longer queued, is sent through the outbox. An `authorization` naming it in `ref`
 *   (authorized, rejected, revoked; not pending) acknowledges it. The answer is kept, so a restart knows it is
 *   authorized without waiting.
 * - Incoming envelopes are accepted only from the DSO validator set the light client follows, once per id. Receipts
 *   anchor blocks and acknowledge their outbox items; a receipt whose DSO header is ahead of the light client is kept
 *   (bounded) while the missing headers are requested. Bad input is logged with its reason and counted, never thrown.
 * - After anchoring plus the retention, record bodies are pruned (headers, signatures, receipts and leaf hashes stay).
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { DsoGenesis } from '../dso/genesis.js';
import { BLOCK_REJECTION_CODES } from '../dso/verifier.js';
import { toHex } from '../identity/bytes.js';
import { type Address, isAddress, parseAddress } from '../identity/keys.js';
import { SignatureVerifier } from '../identity/signing.js';
import { AnchorStore } from '../ledger/anchor-store.js';
import { decodeHeader } from '../ledger/block.js';
import { type CanonicalValue, parseCanonical } from '../ledger/canonical.js';
import type { Ledger } from '../ledger/ledger.js';
import { DsoLightClient, PRUNED_THROUGH_META } from '../ledger/light-client.js';
import { pruneRecords } from '../ledger/pruning.js';
import type { Logger } from '../logger.js';
import type { LedgerStore } from '../store/ledger-store.js';
import { buildRegistration, type RegistrationBody, registrationKey, type TradeFlags } from './anonym.js';
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  type Envelope,
  type EnvelopeBody,
  type EnvelopeSealer,
  openEnvelope,
  ReplayGuard,
} from './envelope.js';
import type { LinkMessage, MessageHandler } from './mqtt-client.js';
import { Outbox, type OutboxOptions, type OutboxStats, type OutboxTransport } from './outbox.js';
import { OutboxStore } from './outbox-store.js';
import { AUTHORIZATION_META, AUTHORIZED_SET_META, REGISTRATION_META, SyncStore } from './sync-store.js';
import { type LinkTopics, parseTopic } from './topics.js';

/** Default largest block envelope the DSO accepts (link.maxBlockBytes). */
export const DEFAULT_MAX_BLOCK_BYTES = 4 * 1024 * 1024;
/** Headers asked for in one headers-request (the DSO answers at most 256 per message). */
export const MAX_HEADERS_PER_REQUEST = 256;

/** What MgmcSync needs from the MQTT link (MqttLink implements it). */
export interface SyncTransport extends OutboxTransport {
  subscribe(filter: string, handler: MessageHandler): Promise<void>;
}

export interface RegistrationConfig {
  /** Addresses of the MGMC's signing meters. */
  readonly meters: readonly string[];
  /** Its feeder bus, as the DSO's feeder model names it. */
  readonly bus: string;
  readonly trade: TradeFlags;
  /** Generation of the anonym key (config anonymEpoch); a new anonym is epoch + 1. */
  readonly anonymEpoch: number;
}

export type AuthorizationStatus = 'unknown' | 'pending' | 'authorized' | 'rejected' | 'revoked';

export interface AuthorizationState {
  readonly status: AuthorizationStatus;
  /** The anonym the DSO authorized (status authorized). */
  readonly anonym?: string;
  /** Why the DSO rejected or revoked. */
  readonly reason?: string;
  /** The registration envelope the answer named. */
  readonly ref?: string;
  readonly time?: number;
}

export interface MgmcSyncOptions {
  readonly ledger: Ledger;
  /** The ledger's store on the agent database (AGENT_DB_MIGRATIONS). */
  readonly store: LedgerStore;
  readonly outbox: Outbox;
  readonly outboxStore: OutboxStore;
  readonly link: SyncTransport;
  /** The process's one sealer (shared with the link and the outbox). */
  readonly sealer: EnvelopeSealer;
  readonly lightClient: DsoLightClient;
  readonly topics: LinkTopics;
  readonly registration: RegistrationConfig;
  /** The MGMC's private key: the anonym key is derived from it (link/anonym.ts). */
  readonly privateKey: Uint8Array;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Largest incoming envelope. Default 256 KiB. */
  readonly maxEnvelopeBytes?: number;
  /** Largest block envelope the DSO accepts (link.maxBlockBytes); larger blocks are logged as errors. Default 4 MiB. */
  readonly maxBlockBytes?: number;
  /** Prune record bodies of anchored blocks sealed longer ago than this (config ledger.pruneAfterDays). Off when absent. */
  readonly pruneAfterMs?: number;
  /** How often pruning and outbox housekeeping run. Default 10 min. */
  readonly maintenanceEveryMs?: number;
  /** Records pruned at most per housekeeping run (whole blocks), so a backlog never blocks the agent long. Default 50,000. */
  readonly pruneBatchRecords?: number;
  /** Acknowledged outbox items (full block copies) are deleted this long after their receipt. Default 1 day. */
  readonly keepAckedMs?: number;
  /** Receipts kept while their DSO headers are fetched. Default 1024. */
  readonly maxParkedReceipts?: number;
  /** A headers-request without an answer is sent again after this long. Default 30 s. */
  readonly headersRequestTimeoutMs?: number;
}

/** Most receipts one `receipts` envelope may carry (the DSO sends 64). */
export const MAX_RECEIPTS_PER_ENVELOPE = 1024;

export interface SyncStats {
  readonly authorization: AuthorizationState;
  /** The registration last sent: its envelope id, its anonym, and the DSO's answer to it (if any). */
  readonly registration: { readonly id?: string; readonly anonym?: string; readonly answered?: string };
  readonly outbox: OutboxStats;
  /** Messages waiting for the DSO (outbox pending + sent). */
  readonly outboxDepth: number;
  readonly sealedHeight: number;
  readonly shippedHeight: number;
  readonly anchoredHeight: number;
  readonly dsoHeight: number;
  /** Receipts accepted in this run (new anchors), and receipts for blocks already anchored. */
  readonly receipts: number;
  readonly duplicateReceipts: number;
  /** DSO headers accepted in this run. */
  readonly headers: number;
  /** Envelopes dropped because their id was seen before. */
  readonly duplicates: number;
  readonly headerRequests: number;
  readonly parkedReceipts: number;
  /** DSO rejections by code. */
  readonly rejections: Readonly<Record<string, number>>;
  /** Incoming messages refused, by reason. */
  readonly bad: Readonly<Record<string, number>>;
  readonly prunedThroughSeq: number;
  readonly authorizedSet: { readonly serial: number; readonly anonyms: number } | undefined;
}

interface StoredRegistration {
  readonly id: string;
  readonly key: string;
  readonly anonym: string;
  answered?: AuthorizationStatus;
}

interface ParkedReceipt {
  readonly ref: string | undefined;
  readonly receipt: unknown;
  readonly dsoHeight: number;
}

interface AuthorizedSet {
  readonly serial: number;
  readonly anonyms: readonly string[];
}

const ID_RE = /^0x[0-9a-f]{32}$/;
/** The DSO's rejection codes (docs/protocol.md section 11): anything else in a rejection is malformed. */
const REJECTION_CODES: ReadonlySet<string> = new Set(BLOCK_REJECTION_CODES);

/** A body field that is not what the protocol says: the message is refused with this text. */
class BadBody extends Error {}

export class MgmcSync {
  private readonly o: MgmcSyncOptions;
  private readonly log: Logger;
  private readonly sync: SyncStore;
  private readonly self: Address;
  private readonly guard = new ReplayGuard();
  /** Learns each DSO validator's key once: recovering it for every receipt costs several times a verification. */
  private readonly signatures = new SignatureVerifier();
  private readonly parked = new Map<number, ParkedReceipt>();
  private readonly rejections = new Map<string, number>();
  private readonly bad = new Map<string, number>();
  private readonly counts = { receipts: 0, duplicateReceipts: 0, headers: 0, duplicates: 0, headerRequests: 0 };
  private authorization: AuthorizationState;
  private registration: StoredRegistration | undefined;
  private authorizedSet: AuthorizedSet | undefined;
  private headerRequest: { from: number; at: number } | undefined;
  private lastReceiptAt: number | undefined;
  private running = false;
  private readonly cleanups: (() => void)[] = [];
  private maintenance: TimerHandle | undefined;
  private readonly registrationBody: RegistrationBody;

  /** Throws for a configuration error: a registration that cannot be built, a key or chain that does not match. */
  constructor(options: MgmcSyncOptions) {
    this.o = options;
    this.log = options.logger.child({ module: 'sync' });
    this.sync = new SyncStore(options.store);
    this.self = options.sealer.address;
    if (options.ledger.address !== this.self) {
      throw new Error(`the ledger is signed by ${options.ledger.address} but the link seals as ${this.self}`);
    }
    if (options.topics.chainId !== options.sealer.chainId) {
      throw new Error(
        `link topics are for chain ${options.topics.chainId}, envelopes are sealed for ${options.sealer.chainId}`,
      );
    }
    const { registration, privateKey, sealer } = options;
    this.registrationBody = buildRegistration({ ...registration, privateKey, chainId: sealer.chainId });
    if (this.registrationBody.mgmc !== this.self) {
      throw new Error(
        `the private key given for the anonym is ${this.registrationBody.mgmc}'s, but the link seals as ${this.self}`,
      );
    }
    this.registration = this.sync.getJson<StoredRegistration>(REGISTRATION_META);
    this.authorization = this.sync.getJson<AuthorizationState>(AUTHORIZATION_META) ?? { status: 'unknown' };
    this.authorizedSet = this.sync.getJson<AuthorizedSet>(AUTHORIZED_SET_META);
    this.applyGate();
  }

  /**
   * Ships what was sealed while the agent was down, sends the registration when it changed, subscribes to the DSO's
   * topics and starts the outbox. Call before MqttLink.connect(), so messages the broker queued for this session
   * find their handlers.
   */
  start(): void {
    if (this.running) return;
    this.running = true;
    const { ledger, link, topics, outbox, clock } = this.o;
    this.cleanups.push(ledger.onSealed((event) => this.shipThrough(event.block.header.height)));
    this.shipThrough(ledger.sealedHeight);
    this.ensureRegistration();
    const handler = (message: LinkMessage) => this.onMessage(message);
    for (const filter of [
      topics.dsoMessages(this.self),
      topics.dsoReceipts(this.self),
      topics.dsoHeaders(),
      topics.dsoAuthorized(),
    ]) {
      link.subscribe(filter, handler).catch((err: Error) => {
        if (this.running) this.log.error({ filter, err: err.message }, `cannot subscribe to ${filter}: ${err.message}`);
      });
    }
    this.cleanups.push(
      link.onState((change) => {
        if (change.state === 'online') this.onOnline();
      }),
    );
    outbox.start();
    this.maintenance = clock.setInterval(() => this.runMaintenance(), this.o.maintenanceEveryMs ?? 600_000);
    this.log.info(
      {
        address: this.self,
        authorization: this.authorization.status,
        shipped: this.sync.shippedHeight(),
        anchored: this.o.lightClient.anchoredHeight(),
      },
      `DSO link sync started (${this.authorization.status === 'authorized' ? 'authorized' : 'blocks held until the DSO authorizes this MGMC'})`,
    );
  }

  /** Stops listening and sending; everything stays stored. Call after Ledger.stop() so its last block is shipped. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.maintenance?.cancel();
    this.maintenance = undefined;
    this.o.outbox.stop();
  }

  /** Anonyms of the authorized MGMCs from the highest `authorized-set` seen (for the market). */
  authorizedAnonyms(): { readonly serial: number; readonly anonyms: ReadonlySet<string> } | undefined {
    const set = this.authorizedSet;
    return set && { serial: set.serial, anonyms: new Set(set.anonyms.map((a) => a.toLowerCase())) };
  }

  /** The DSO validator set the light client follows: the signers whose messages this MGMC accepts. */
  validators(): readonly Address[] {
    return this.o.lightClient.validators();
  }

  /** The DSO's last answer to this MGMC's registration. */
  authorizationState(): AuthorizationState {
    return this.authorization;
  }

  /** When the last checked receipt (new or duplicate) arrived in this run, ms; undefined before the first. */
  lastReceiptTime(): number | undefined {
    return this.lastReceiptAt;
  }

  stats(): SyncStats {
    const { lightClient, ledger, store, outbox } = this.o;
    const reg = this.registration;
    const queue = outbox.stats();
    return {
      authorization: this.authorization,
      registration: reg ? { id: reg.id, anonym: reg.anonym, ...(reg.answered ? { answered: reg.answered } : {}) } : {},
      outbox: queue,
      outboxDepth: queue.pending + queue.sent,
      sealedHeight: ledger.sealedHeight,
      shippedHeight: this.sync.shippedHeight(),
      anchoredHeight: lightClient.anchoredHeight(),
      dsoHeight: lightClient.dsoHeight(),
      ...this.counts,
      parkedReceipts: this.parked.size,
      rejections: Object.fromEntries(this.rejections),
      bad: Object.fromEntries(this.bad),
      prunedThroughSeq: Number(store.getMeta(PRUNED_THROUGH_META) ?? 0),
      authorizedSet: this.authorizedSet && {
        serial: this.authorizedSet.serial,
        anonyms: this.authorizedSet.anonyms.length,
      },
    };
  }

  /**
   * Pruning (when pruneAfterMs is set) and housekeeping: acknowledged outbox items older than keepAckedMs and the
   * envelope ids of acknowledged, anchored blocks are deleted. Runs every maintenanceEveryMs; never throws.
   */
  runMaintenance(): void {
    const { lightClient, store, outboxStore, clock } = this.o;
    const now = clock.now();
    try {
      if (this.o.pruneAfterMs !== undefined) {
        const range = lightClient.prunableRecords(this.o.pruneAfterMs, now);
        if (range !== undefined) {
          const result = pruneRecords(store, range, { maxRecords: this.o.pruneBatchRecords ?? 50_000 });
          this.log.info(
            { records: result.records, throughSeq: result.throughSeq, throughHeight: result.throughHeight },
            `pruned the bodies of ${result.records} record(s) of anchored blocks through block ${result.throughHeight}`,
          );
        }
      }
      const dropped = outboxStore.pruneAcked(now - (this.o.keepAckedMs ?? 86_400_000));
      this.sync.pruneShipped(lightClient.anchoredHeight());
      if (dropped > 0) this.log.debug({ dropped }, 'deleted acknowledged outbox items');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, `DSO link housekeeping failed: ${(err as Error).message}`);
    }
  }

  // ---- outgoing -------------------------------------------------------------------------------------------------

  /** Enqueues every sealed block above the shipped mark up to `height`, each with the mark in one transaction. */
  private shipThrough(height: number): void {
    const { store, outbox, topics } = this.o;
    const topic = topics.node(this.self, 'blocks');
    for (let next = this.sync.shippedHeight() + 1; next <= height; next++) {
      const row = store.blockAt(next);
      if (row === undefined) {
        this.log.error({ height: next }, `block ${next} is not in the ledger: cannot ship it (run mgmc ledger verify)`);
        return;
      }
      try {
        const body: EnvelopeBody = {
          header: { ...decodeHeader(row.header, `block ${next}`) },
          records: store.recordRange(row.firstSeq, row.count).map((r) => parseCanonical(r.body, `record ${r.seq}`)),
          signature: toHex(row.signature),
        };
        const sealed = store.db.transaction(() => {
          const envelope = outbox.enqueue(topic, 'block', body);
          this.sync.recordShipped(next, envelope.envelope.id);
          return envelope;
        })();
        const limit = this.o.maxBlockBytes ?? DEFAULT_MAX_BLOCK_BYTES;
        if (sealed.bytes.length > limit) {
          this.log.error(
            { height: next, bytes: sealed.bytes.length, limit },
            `block ${next} is ${sealed.bytes.length} bytes, more than the DSO accepts (${limit}): it will be ` +
              'rejected as oversized; lower ledger.sealEveryRecords or raise link.maxBlockBytes on both sides',
          );
        }
      } catch (err) {
        // Stays unshipped: the next seal or start tries again from here, so the order is kept.
        this.log.error(
          { height: next, err: (err as Error).message },
          `cannot ship block ${next}: ${(err as Error).message}`,
        );
        return;
      }
    }
  }

  /** Sends the registration when it differs from the one last sent, or when that one is unanswered and not queued. */
  private ensureRegistration(): void {
    const { registration, outbox, outboxStore, store, topics } = this.o;
    const body = this.registrationBody;
    const key = registrationKey(body);
    const stored = this.registration;
    if (stored !== undefined) {
      const queued = outboxStore.get(stored.id);
      const unacked = queued !== undefined && queued.state !== 'acked';
      if (stored.key === key && (stored.answered !== undefined || unacked)) return;
      // A changed registration replaces an unanswered one that is still queued: the DSO need not see both.
      if (stored.key !== key && unacked) outbox.acknowledge(stored.id);
    }
    const next = store.db.transaction(() => {
      const sealed = outbox.enqueue(topics.node(this.self, 'registration'), 'registration', body);
      const entry: StoredRegistration = { id: sealed.envelope.id, key, anonym: body.anonym };
      this.sync.setJson(REGISTRATION_META, entry);
      return entry;
    })();
    this.registration = next;
    this.log.info(
      { id: next.id, anonym: body.anonym, meters: body.meters.length, bus: body.bus, epoch: registration.anonymEpoch },
      stored === undefined ? 'registering with the DSO' : 'registration changed: registering again with the DSO',
    );
    this.record({ type: 'registration', body: { ...registrationRecord(body), id: next.id } });
  }

  /** Blocks flow only while authorized. */
  private applyGate(): void {
    if (this.authorization.status === 'authorized') this.o.outbox.release('block');
    else this.o.outbox.hold('block');
  }

  private onOnline(): void {
    // An unanswered headers-request may have been lost with the old connection: ask again.
    this.headerRequest = undefined;
    const needed = Math.max(0, ...[...this.parked.values()].map((p) => p.dsoHeight - 1));
    if (needed > 0) this.requestHeaders(needed);
  }

  /** Asks the DSO for the headers after the light client's tip up to `toHeight` (at most 256 at a time). */
  private requestHeaders(toHeight: number): void {
    const { lightClient, link, sealer, topics, clock } = this.o;
    const from = lightClient.dsoHeight() + 1;
    if (toHeight < from) return;
    const to = Math.min(toHeight, from + MAX_HEADERS_PER_REQUEST - 1);
    const outstanding = this.headerRequest;
    if (outstanding?.from === from && clock.now() - outstanding.at < (this.o.headersRequestTimeoutMs ?? 30_000)) return;
    if (link.state !== 'online') return; // asked again on the next connect
    const sealed = sealer.seal('headers-request', { from, to });
    this.headerRequest = { from, at: clock.now() };
    this.counts.headerRequests++;
    this.log.info({ from, to }, `asking the DSO for headers ${from}..${to}`);
    link.publish(topics.node(this.self, 'messages'), sealed.bytes).catch((err: Error) => {
      this.log.warn({ err: err.message, from, to }, `headers-request not sent (${err.message}); asked again later`);
      this.headerRequest = undefined;
    });
  }

  // ---- incoming -------------------------------------------------------------------------------------------------

  private onMessage(message: LinkMessage): void {
    if (!this.running) return;
    const { sealer, lightClient } = this.o;
    const topic = parseTopic(message.topic);
    const self = this.self.toLowerCase();
    let kinds: readonly string[];
    switch (topic.kind) {
      case 'dso-receipts':
        kinds = topic.address === self ? ['receipt', 'receipts'] : [];
        break;
      case 'dso-messages':
        kinds = topic.address === self ? ['authorization', 'rejection', 'dso-headers'] : [];
        break;
      case 'dso-headers':
        kinds = ['dso-header'];
        break;
      case 'dso-authorized':
        kinds = ['authorized-set'];
        break;
      default:
        kinds = [];
    }
    if (kinds.length === 0 || topic.kind === 'unknown' || topic.chainId !== sealer.chainId) {
      this.refuse('wrong-topic', `a message on ${message.topic}, which is not a DSO topic of this MGMC`, message.topic);
      return;
    }
    const opened = openEnvelope(message.payload, {
      chainId: sealer.chainId,
      maxBytes: this.o.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
      verifier: this.signatures,
    });
    if (!opened.ok) {
      this.refuse(opened.reason, opened.detail, message.topic);
      return;
    }
    const envelope = opened.envelope;
    const validators = lightClient.validators();
    if (!validators.some((v) => v.toLowerCase() === envelope.from.toLowerCase())) {
      this.refuse(
        'unknown-sender',
        `envelope ${envelope.id} is signed by ${envelope.from}, who is not a DSO validator (${validators.join(', ')})`,
        message.topic,
      );
      return;
    }
    if (!kinds.includes(envelope.kind)) {
      this.refuse(
        'wrong-kind',
        `a ${envelope.kind} envelope (${envelope.id}) does not belong on ${message.topic}`,
        message.topic,
      );
      return;
    }
    if (!this.guard.check(envelope).fresh) {
      this.counts.duplicates++;
      this.log.debug({ id: envelope.id, kind: envelope.kind }, 'duplicate DSO message dropped');
      return;
    }
    try {
      this.dispatch(envelope);
    } catch (err) {
      if (err instanceof BadBody)
        this.refuse('bad-body', `${envelope.kind} ${envelope.id}: ${err.message}`, message.topic);
      else {
        this.refuse('handler-error', `${envelope.kind} ${envelope.id}: ${(err as Error).message}`, message.topic);
        this.log.error({ err }, 'handling a DSO message failed');
      }
    }
    this.guard.record(envelope);
  }

  private dispatch(envelope: Envelope): void {
    const body = envelope.body as Record<string, unknown>;
    switch (envelope.kind) {
      case 'receipt':
        this.onReceipt(optionalRef(body.ref), body.receipt);
        return;
      case 'receipts': {
        // One envelope per DSO block for all of this MGMC's entries in it: the DSO signs once, not per block.
        const list = body.receipts;
        if (!Array.isArray(list) || list.length === 0 || list.length > MAX_RECEIPTS_PER_ENVELOPE) {
          throw new BadBody(`receipts must be a list of 1-${MAX_RECEIPTS_PER_ENVELOPE} receipts`);
        }
        for (const receipt of list) this.onReceipt(undefined, receipt);
        return;
      }
      case 'dso-header':
        this.onHeader(body.header, body.seals);
        this.retryParked();
        return;
      case 'dso-headers':
        this.onHeaders(body.blocks);
        return;
      case 'authorization':
        this.onAuthorization(envelope, body);
        return;
      case 'rejection':
        this.onRejection(body);
        return;
      case 'authorized-set':
        this.onAuthorizedSet(body);
        return;
    }
  }

  private onReceipt(ref: string | undefined, receipt: unknown): void {
    const result = this.o.lightClient.acceptReceipt(receipt);
    if (result.ok) {
      this.anchored(result.mgmcHeight, ref, result.duplicate);
      return;
    }
    if (result.kind === 'unknown-dso-header') {
      const r = receipt as { mgmcHeight: number; dsoHeader: { height: number } };
      this.park(r.mgmcHeight, { ref, receipt, dsoHeight: r.dsoHeader.height });
      this.requestHeaders(r.dsoHeader.height - 1);
      return;
    }
    const serious = result.kind === 'conflict' || result.kind === 'dso-header-mismatch';
    this.refuse(
      `receipt-${result.kind}`,
      `receipt${ref ? ` for ${ref}` : ''} refused: ${result.detail}`,
      undefined,
      serious,
    );
  }

  /** A block has a checked receipt: its outbox item leaves the outbox. */
  private anchored(height: number, ref: string | undefined, duplicate: boolean): void {
    this.parked.delete(height);
    this.lastReceiptAt = this.o.clock.now();
    if (duplicate) this.counts.duplicateReceipts++;
    else this.counts.receipts++;
    // The block's own envelope (known from shipping) is acknowledged, not blindly `ref`: a receipt for block h must
    // never take block h + 1 out of the outbox. `ref` is the same id whenever the DSO is right.
    const id = this.sync.envelopeFor(height);
    if (id === undefined) {
      this.log.debug({ height, ref }, `receipt for block ${height}, whose outbox item is long gone`);
      return;
    }
    if (ref !== undefined && ref !== id) {
      this.log.warn({ height, ref, envelope: id }, `receipt for block ${height} names message ${ref}, not ${id}`);
    }
    const item = this.o.outboxStore.get(id);
    if (item !== undefined && item.state !== 'acked') this.o.outbox.acknowledge(id);
  }

  private park(height: number, entry: ParkedReceipt): void {
    const max = this.o.maxParkedReceipts ?? 1024;
    this.parked.delete(height);
    while (this.parked.size >= max) {
      // The oldest goes: the outbox resends its block after the receipt timeout, and the DSO answers with the receipt.
      const oldest = this.parked.keys().next().value;
      if (oldest === undefined) break;
      this.parked.delete(oldest);
    }
    this.parked.set(height, entry);
  }

  private retryParked(): void {
    if (this.parked.size === 0) return;
    const tip = this.o.lightClient.dsoHeight();
    const ready = [...this.parked.entries()].filter(([, p]) => p.dsoHeight <= tip + 1).sort(([a], [b]) => a - b);
    for (const [height, p] of ready) {
      this.parked.delete(height);
      this.onReceipt(p.ref, p.receipt);
    }
    const still = Math.max(0, ...[...this.parked.values()].map((p) => p.dsoHeight - 1));
    if (still > 0) this.requestHeaders(still);
  }

  /** One DSO header: accepted in order; one beyond the next makes the client ask for the ones in between. */
  private onHeader(header: unknown, seals: unknown): 'accepted' | 'gap' | 'refused' {
    const { lightClient } = this.o;
    const height = (header as { height?: unknown } | null)?.height;
    if (typeof header !== 'object' || header === null || !Number.isSafeInteger(height)) {
      throw new BadBody('header must be a DSO header object with an integer height');
    }
    if (!Array.isArray(seals) || seals.some((s) => typeof s !== 'string')) {
      throw new BadBody('seals must be an array of 0x-hex signatures');
    }
    if ((height as number) > lightClient.dsoHeight() + 1) {
      this.requestHeaders(height as number);
      return 'gap';
    }
    const result = lightClient.acceptHeader(header, seals as string[]);
    if (result.ok) {
      if (!result.duplicate) this.counts.headers++;
      return 'accepted';
    }
    this.refuse(
      `header-${result.kind}`,
      `DSO header ${height} refused: ${result.detail}`,
      undefined,
      result.kind === 'conflict',
    );
    return 'refused';
  }

  private onHeaders(blocks: unknown): void {
    if (!Array.isArray(blocks) || blocks.length > 4 * MAX_HEADERS_PER_REQUEST) {
      throw new BadBody(`blocks must be an array of at most ${4 * MAX_HEADERS_PER_REQUEST} {header, seals}`);
    }
    const sorted = blocks
      .map((b) => (typeof b === 'object' && b !== null ? (b as { header?: unknown; seals?: unknown }) : {}))
      .sort((a, b) => heightOf(a.header) - heightOf(b.header));
    try {
      for (const block of sorted) if (this.onHeader(block.header, block.seals) !== 'accepted') break;
    } finally {
      this.headerRequest = undefined; // answered: the next gap may be asked for at once
      this.retryParked();
    }
  }

  private onAuthorization(envelope: Envelope, body: Record<string, unknown>): void {
    const mgmc = address(body.mgmc, 'mgmc');
    if (mgmc.toLowerCase() !== this.self.toLowerCase()) {
      throw new BadBody(`the authorization is for ${mgmc}, this MGMC is ${this.self}`);
    }
    const ref = optionalRef(body.ref);
    if (ref === undefined) throw new BadBody('ref (the registration envelope id) is missing');
    const status = body.status;
    if (status !== 'authorized' && status !== 'pending' && status !== 'rejected' && status !== 'revoked') {
      throw new BadBody(`status must be authorized, pending, rejected or revoked, got ${JSON.stringify(status)}`);
    }
    const anonym = body.anonym === undefined ? undefined : address(body.anonym, 'anonym');
    if (status === 'authorized' && anonym === undefined) throw new BadBody('an authorization carries the anonym');
    const reason = typeof body.reason === 'string' ? body.reason.slice(0, 500) : undefined;
    const current = this.registration;
    if (status === 'pending') {
      if (this.authorization.status !== 'authorized')
        this.setAuthorization({ status: 'pending', ref, time: this.o.clock.now() });
      this.log.info(
        { ref },
        `the DSO holds this MGMC's registration for an operator's approval (mgmc dso approve ${this.self})`,
      );
      return;
    }
    // The answer takes the registration it names out of the outbox, whichever one it is.
    const item = this.o.outboxStore.get(ref);
    if (item !== undefined && item.kind === 'registration' && item.state !== 'acked') this.o.outbox.acknowledge(ref);
    const forCurrent = current !== undefined && current.id === ref;
    if (!forCurrent && status !== 'revoked' && current?.answered !== undefined) {
      this.log.info({ ref, status }, `a late ${status} answer to an earlier registration; the newer answer stands`);
      return;
    }
    if (forCurrent && current) {
      current.answered = status;
      this.sync.setJson(REGISTRATION_META, current);
    }
    if (status === 'authorized' && current !== undefined && anonym !== current.anonym && forCurrent) {
      this.log.warn(
        { registered: current.anonym, authorized: anonym },
        'the DSO authorized another anonym than registered',
      );
    }
    this.setAuthorization({
      status,
      ...(anonym === undefined ? {} : { anonym }),
      ...(reason === undefined ? {} : { reason }),
      ref,
      time: this.o.clock.now(),
    });
    if (status === 'authorized') {
      this.log.info({ anonym, ref }, `authorized by the DSO as ${anonym}: sending blocks`);
    } else {
      this.log.error(
        { status, reason, ref },
        `the DSO ${status} this MGMC${reason ? `: ${reason}` : ''}; blocks are kept and not sent until it authorizes again`,
      );
    }
    this.record({
      type: 'dso-message',
      body: {
        id: envelope.id,
        kind: envelope.kind,
        from: envelope.from,
        payload: envelope.body as { [k: string]: CanonicalValue },
      },
    });
  }

  private onRejection(body: Record<string, unknown>): void {
    const code = body.reason;
    if (typeof code !== 'string' || code.length === 0 || code.length > 64)
      throw new BadBody('reason (the code) is missing');
    const ref = optionalRef(body.ref);
    const detail = typeof body.detail === 'string' ? body.detail.slice(0, 1000) : '';
    const height = Number.isSafeInteger(body.height) ? (body.height as number) : undefined;
    const expected = Number.isSafeInteger(body.expected) ? (body.expected as number) : undefined;
    const known = REJECTION_CODES.has(code) ? code : 'other';
    this.rejections.set(known, (this.rejections.get(known) ?? 0) + 1);
    const where = { ref, code, height, expected, detail };
    switch (code) {
      case 'out-of-order':
        this.log.info(
          where,
          `the DSO wants block ${expected ?? '?'} before block ${height ?? '?'}; the outbox resends in order`,
        );
        return;
      case 'unregistered':
        this.log.warn(
          where,
          'the DSO does not know this MGMC as authorized yet; blocks are resent after authorization',
        );
        return;
      case 'revoked':
        if (this.authorization.status !== 'revoked') {
          this.setAuthorization({
            status: 'revoked',
            reason: detail || 'revoked',
            ...(ref ? { ref } : {}),
            time: this.o.clock.now(),
          });
        }
        this.log.error(where, `the DSO says this MGMC is revoked${detail ? `: ${detail}` : ''}; blocks are held`);
        return;
      default:
        this.log.error(
          where,
          `the DSO rejected ${height === undefined ? `message ${ref ?? '?'}` : `block ${height}`} (${code})` +
            `${detail ? `: ${detail}` : ''}; an operator must look at it (mgmc ledger verify)`,
        );
    }
  }

  private onAuthorizedSet(body: Record<string, unknown>): void {
    const serial = body.serial;
    if (!Number.isSafeInteger(serial) || (serial as number) < 0) throw new BadBody('serial must be an integer >= 0');
    if (!Array.isArray(body.anonyms)) throw new BadBody('anonyms must be an array of addresses');
    const anonyms = body.anonyms.map((a, i) => address(a, `anonyms[${i}]`));
    if (this.authorizedSet !== undefined && (serial as number) <= this.authorizedSet.serial) {
      this.log.debug({ serial, kept: this.authorizedSet.serial }, 'authorized set not newer than the one kept');
      return;
    }
    this.authorizedSet = { serial: serial as number, anonyms };
    this.sync.setJson(AUTHORIZED_SET_META, this.authorizedSet);
    this.log.info({ serial, anonyms: anonyms.length }, `authorized set ${serial}: ${anonyms.length} anonym(s)`);
  }

  private setAuthorization(state: AuthorizationState): void {
    this.authorization = state;
    this.sync.setJson(AUTHORIZATION_META, state);
    this.applyGate();
  }

  /** Refuses an incoming message: logged with the reason, counted. */
  private refuse(reason: string, detail: string, topic?: string, serious = false): void {
    this.bad.set(reason, (this.bad.get(reason) ?? 0) + 1);
    (serious ? this.log.error.bind(this.log) : this.log.warn.bind(this.log))(
      { reason, ...(topic === undefined ? {} : { topic }) },
      `refused a DSO message (${reason}): ${detail}`,
    );
  }

  /** Keeps a link event in the ledger for auditors; a failure is logged, never thrown into the link. */
  private record(record: Parameters<Ledger['append']>[0][number]): void {
    try {
      this.o.ledger.append([record]);
    } catch (err) {
      this.log.error(
        { err: (err as Error).message, type: record.type },
        'could not record a DSO link event in the ledger',
      );
    }
  }
}

function optionalRef(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !ID_RE.test(value))
    throw new BadBody('ref must be an envelope id (0x + 32 hex digits)');
  return value;
}

function address(value: unknown, what: string): Address {
  if (!isAddress(value)) throw new BadBody(`${what} must be an address, got ${JSON.stringify(value)?.slice(0, 60)}`);
  return parseAddress(value, what);
}

function heightOf(header: unknown): number {
  const h = (header as { height?: unknown } | null | undefined)?.height;
  return Number.isSafeInteger(h) ? (h as number) : Number.MAX_SAFE_INTEGER;
}

function registrationRecord(body: RegistrationBody): { [key: string]: CanonicalValue } {
  return {
    mgmc: body.mgmc,
    meters: [...body.meters],
    bus: body.bus,
    anonym: body.anonym,
    anonymSig: body.anonymSig,
    trade: { ...body.trade },
  };
}

export interface CreateMgmcSyncOptions extends Omit<MgmcSyncOptions, 'outbox' | 'outboxStore' | 'lightClient'> {
  /** The DSO genesis (agent/dso/genesis.ts loadGenesis): the light client starts from its validators. */
  readonly genesis: DsoGenesis;
  /** Outbox tuning (maxInFlight, receiptTimeoutMs, ...). */
  readonly outboxOptions?: Pick<OutboxOptions, 'maxInFlight' | 'receiptTimeoutMs' | 'checkEveryMs' | 'maxBackoffMs'>;
}

/**
 * Builds the DSO link's MGMC side on an open agent database: the outbox, the light client and MgmcSync. The caller
 * starts it (before link.connect()) and stops it (after ledger.stop()).
 */
export function createMgmcSync(options: CreateMgmcSyncOptions): MgmcSync {
  const { store, clock, logger, genesis, outboxOptions, ...rest } = options;
  const outboxStore = new OutboxStore(store.db, clock);
  const outbox = new Outbox({
    store: outboxStore,
    transport: options.link,
    sealer: options.sealer,
    clock,
    logger,
    heldKinds: ['block'],
    ...outboxOptions,
  });
  const anchors = new AnchorStore(store.db);
  const lightClient = DsoLightClient.open({
    genesis,
    anchors,
    ledger: store,
    logger: logger.child({ module: 'light-client' }),
  });
  return new MgmcSync({ ...rest, store, clock, logger, outbox, outboxStore, lightClient });
}

/** Re-exported for the composition root. */
export { nextLinkSession } from './sync-store.js';
