/**
 * The DSO's MGMC registry (stage 1 of DESIGN.md section 2): registrations in, authorizations and the authorized set
 * out, and the standing of every MGMC for the block verifier.
 *
 * Policy (config dso.policy):
 * - `allow-list`: an MGMC whose address is in `allow` is authorized at once; any other is rejected with a reason
 *   that says how the operator admits it.
 * - `manual`: an MGMC in `allow` is still authorized at once; any other waits (`pending`) until an operator runs
 *   `mgmc dso approve ADDRESS` (or `reject`).
 *
 * Before the policy, two rules that no policy overrides: a revoked MGMC stays revoked, whatever it sends, until an
 * operator approves it again; and a registration whose anonym another MGMC registered, or that lists a meter of
 * another MGMC's authorization, is rejected (a meter belongs to one MGMC: otherwise an MGMC could pass off another's
 * metered energy as its own). Only authorized meters count, so an unapproved registration cannot squat on meters;
 * approval checks again.
 *
 * Re-registration of an authorized MGMC (a new envelope): when its meters and bus are unchanged (a new anonym or
 * trade flags only), it is re-authorized at once under either policy. When they changed, under `allow-list` an
 * allowed MGMC is re-authorized; under `manual` the new registration waits for the operator and the old
 * authorization stays in force meanwhile (the verifier keeps trusting the old meters), so a changed meter list never
 * takes effect without a person looking at it, and the MGMC is never cut off while it waits.
 *
 * Messages are returned as data ({topic, kind, body, retain}); the caller seals and publishes them. Several processes
 * share the database (the DSO, a verifier-only DSO process, `mgmc dso approve`): each change is one short
 * transaction; the answers a change produces are flagged in the database and handed to exactly one publishing
 * process, either at once (the change was made by a Registry with `publish: true`) or by its next refresh().
 */
import type { Clock } from '../clock.js';
import { type Address, parseAddress } from '../identity/keys.js';
import type { Envelope, EnvelopeBody } from '../link/envelope.js';
import { LinkTopics } from '../link/topics.js';
import type { Logger } from '../logger.js';
import type { SqliteDatabase } from '../store/database.js';
import { parseRegistrationBody, type Registration, sortAddresses, type TradeFlags } from './registration.js';
import {
  type MgmcRow,
  type MgmcStatus,
  type RegistrationRow,
  type RegistrationStatus,
  RegistryStore,
  type StoredMgmc,
} from './registry-store.js';

export type { MgmcStatus, RegistrationStatus } from './registry-store.js';

export type PolicyMode = 'allow-list' | 'manual';

export interface RegistryPolicy {
  readonly mode: PolicyMode;
  /** Addresses authorized at once (any case; mixed case must carry a valid EIP-55 checksum). */
  readonly allow: readonly string[];
}

/** A message for the caller to seal and publish. */
export interface OutgoingMessage {
  readonly topic: string;
  readonly kind: 'authorization' | 'authorized-set';
  readonly body: EnvelopeBody;
  /** Publish retained (the authorized set). */
  readonly retain?: boolean;
}

export interface AuthorizedSet {
  readonly serial: number;
  /** Anonyms of all authorized MGMCs, EIP-55, sorted by lower-case hex. */
  readonly anonyms: readonly Address[];
}

/** A registration waiting for the operator while the MGMC's earlier one stays in force. */
export interface PendingUpdate {
  readonly ref: string;
  readonly meters: readonly Address[];
  readonly bus: string;
  readonly anonym: Address;
  readonly trade: TradeFlags;
  readonly received: number;
}

/** One MGMC's standing and the registration it stands on. */
export interface RegistryEntry {
  readonly mgmc: Address;
  readonly status: MgmcStatus;
  /** Lower-case addresses of the meters whose batches the verifier accepts from this MGMC. */
  readonly meters: ReadonlySet<string>;
  /** The same meters, EIP-55, sorted. */
  readonly meterList: readonly Address[];
  readonly anonym: Address | undefined;
  readonly bus: string | undefined;
  readonly trade: TradeFlags | undefined;
  /**
   * Envelope id of the registration these fields come from: the one in force when authorized (or last in force,
   * revoked), else the newest. Undefined for an MGMC revoked before it ever registered.
   */
  readonly ref: string | undefined;
  readonly reason: string | undefined;
  readonly firstSeen: number;
  readonly updated: number;
  /** `policy ...`, `registry` (a rule), or the operator named to approve/reject/revoke. */
  readonly decidedBy: string | undefined;
  /** Set while a changed registration of an authorized MGMC waits for the operator (manual policy). */
  readonly pending: PendingUpdate | undefined;
}

/** What an operator action did, for the CLI and the log. */
export interface RegistryChange {
  readonly mgmc: Address;
  /** False when nothing had to change (already authorized, already revoked). */
  readonly changed: boolean;
  readonly status: MgmcStatus;
  /** The registration acted on. */
  readonly ref: string | undefined;
  /** One line for a person. */
  readonly detail: string;
  /** Empty unless this Registry publishes (`publish: true`). */
  readonly messages: OutgoingMessage[];
}

export interface RegistryOptions {
  /** The DSO database (agent/dso/database.ts openDsoDatabase). */
  readonly db: SqliteDatabase;
  /** The link's chain id (config chainId): topics and the anonym proof. */
  readonly chainId: number;
  readonly policy: RegistryPolicy;
  readonly clock: Clock;
  readonly logger?: Logger;
  /**
   * True (default) when the caller publishes what this Registry returns. False for a process that does not (the
   * CLI, a verifier that is not connected to publish): its changes then wait in the database for a publishing
   * process's refresh().
   */
  readonly publish?: boolean;
}

/** An operator action that cannot be done; the message says why and what to do. */
export class RegistryError extends Error {
  override name = 'RegistryError';
}

interface WriteTx {
  /** The change counter value that stamps this transaction's changes (bumped on first call). */
  rev(): number;
  /** An answer that is not stored (a refused or repeated registration). */
  send(message: OutgoingMessage): void;
}

/** The part of a registration a transaction decides on. */
type Terms = Pick<Registration, 'mgmc' | 'meters' | 'bus' | 'anonym'>;

export class Registry {
  readonly chainId: number;
  private readonly store: RegistryStore;
  private readonly topics: LinkTopics;
  private readonly mode: PolicyMode;
  private readonly allow: ReadonlySet<string>;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly publish: boolean;
  private readonly entries = new Map<string, RegistryEntry>();
  private set: AuthorizedSet = { serial: 0, anonyms: [] };
  /** Change counter value the cache reflects; -1 before the first load. */
  private seenRev = -1;
  /** Answers flagged before this process started (or by a crashed publisher) are claimed by the first refresh(). */
  private claimedOnce = false;

  constructor(options: RegistryOptions) {
    this.chainId = options.chainId;
    this.store = new RegistryStore(options.db);
    this.topics = new LinkTopics(options.chainId);
    this.mode = options.policy.mode;
    this.allow = new Set(
      options.policy.allow.map((a, i) => {
        try {
          return parseAddress(a, `dso.policy.allow[${i}]`).toLowerCase();
        } catch (err) {
          throw new RegistryError((err as Error).message);
        }
      }),
    );
    this.clock = options.clock;
    this.logger = options.logger?.child({ module: 'dso-registry' });
    this.publish = options.publish ?? true;
    this.reload();
  }

  /**
   * Handles a `registration` envelope that the caller already opened and verified (signature, chain, topic sender).
   * Checks the body (docs/protocol.md section 11), applies the rules and the policy, stores the outcome and returns
   * the messages to publish: the answer on dso/messages/{mgmc}, and the authorized set when it changed (plus any
   * answers still waiting from other processes). A registration envelope seen before (same id) is answered again
   * with its current status and changes nothing. Never throws on bad input.
   */
  handleRegistration(envelope: Envelope): OutgoingMessage[] {
    const parsed =
      envelope.kind !== 'registration'
        ? { ok: false as const, reason: `expected a registration envelope, got kind ${envelope.kind}` }
        : envelope.chainId !== this.chainId
          ? { ok: false as const, reason: `registration is for chain ${envelope.chainId}, this DSO is ${this.chainId}` }
          : parseRegistrationBody(envelope.body, envelope.from, envelope.chainId);
    if (!parsed.ok) {
      this.logger?.warn({ mgmc: envelope.from, ref: envelope.id, reason: parsed.reason }, 'registration refused');
      return [this.answer(envelope.from, envelope.id, 'rejected', undefined, parsed.reason)];
    }
    const reg = parsed.registration;
    return this.write((tx) => {
      const existing = this.store.registration(envelope.id);
      if (existing === undefined) {
        this.decide(envelope.id, reg, tx.rev());
        return;
      }
      if (!sameRegistration(existing, reg)) {
        const reason = `envelope id ${envelope.id} was already used for another registration: send a new envelope`;
        this.logger?.warn({ mgmc: reg.mgmc, ref: envelope.id }, 'registration id reused with other content');
        tx.send(this.answer(reg.mgmc, envelope.id, 'rejected', undefined, reason));
        return;
      }
      // A resend (outbox replay, QoS 1 duplicate): answer with what stands now; nobody needs to send it again.
      this.store.clearAnnouncement(existing.n);
      tx.send(this.answer(existing.mgmc, existing.id, existing.status, existing.anonym, existing.reason));
    }).messages;
  }

  /**
   * Authorizes the MGMC's newest registration (pending, rejected, or revoked: approving a revoked MGMC re-admits
   * it). Throws a RegistryError when it never registered or when its anonym or a meter now belongs to another MGMC.
   */
  approve(address: string, by: string): RegistryChange {
    const mgmc = this.address(address);
    return this.operatorWrite(mgmc, (rev) => {
      const m = this.store.mgmc(mgmc);
      const newest = this.store.newestRegistration(mgmc);
      const now = this.clock.now();
      if (newest === undefined) {
        if (m?.status !== 'revoked') {
          throw new RegistryError(`${mgmc} has not registered with this DSO: there is nothing to approve yet`);
        }
        // Revoked before it ever registered: lift the block; its registration will meet the policy like any other.
        this.store.putMgmc({ ...m, status: 'rejected', reason: `revocation lifted by ${by}`, updated: now }, rev);
        return { changed: true, status: 'rejected', ref: undefined, detail: `${mgmc}: revocation lifted` };
      }
      if (m?.status === 'authorized' && newest.status === 'authorized') {
        return { changed: false, status: 'authorized', ref: newest.id, detail: `${mgmc} is already authorized` };
      }
      const conflict = this.conflictOf(newest);
      if (conflict !== undefined) throw new RegistryError(`cannot approve ${mgmc}: ${conflict}`);
      this.authorize(m, newest, by, now, rev);
      return {
        changed: true,
        status: 'authorized',
        ref: newest.id,
        detail: `${mgmc} authorized (registration ${newest.id}, anonym ${newest.anonym})`,
      };
    });
  }

  /**
   * Rejects the MGMC's registration that waits for a decision. An authorized MGMC keeps its standing (its earlier
   * registration stays in force); use revoke() to remove it.
   */
  reject(address: string, reason: string, by: string): RegistryChange {
    const mgmc = this.address(address);
    const why = checkReason(reason);
    return this.operatorWrite(mgmc, (rev) => {
      const m = this.store.mgmc(mgmc);
      const newest = this.store.newestRegistration(mgmc);
      if (m === undefined || newest === undefined || newest.status !== 'pending') {
        throw new RegistryError(
          m?.status === 'authorized'
            ? `${mgmc} is authorized and no registration of it waits for a decision: use \`mgmc dso revoke\` to remove it`
            : `${mgmc} has no registration waiting for a decision`,
        );
      }
      const now = this.clock.now();
      this.store.setRegistrationStatus(
        newest.n,
        { status: 'rejected', reason: why, decided: now, decidedBy: by },
        true,
      );
      const keeps = m.status === 'authorized';
      this.store.putMgmc(
        keeps
          ? { ...m, updated: now }
          : { ...m, status: 'rejected', reason: why, updated: now, decidedBy: by, active: undefined },
        rev,
      );
      return {
        changed: true,
        status: keeps ? 'authorized' : 'rejected',
        ref: newest.id,
        detail: keeps
          ? `${mgmc}: registration ${newest.id} rejected; the earlier authorization stays in force`
          : `${mgmc} rejected`,
      };
    });
  }

  /**
   * Revokes an MGMC: its authorization and any waiting registration are answered `revoked`, its anonym leaves the
   * authorized set (new serial), its blocks are refused, and it stays revoked until approved again. An address that
   * never registered can be revoked ahead.
   */
  revoke(address: string, reason: string, by: string): RegistryChange {
    const mgmc = this.address(address);
    const why = checkReason(reason);
    return this.operatorWrite(mgmc, (rev) => {
      const m = this.store.mgmc(mgmc);
      if (m?.status === 'revoked') {
        return { changed: false, status: 'revoked', ref: undefined, detail: `${mgmc} is already revoked` };
      }
      const now = this.clock.now();
      let ref: string | undefined;
      for (const row of this.store.registrationsOf(mgmc)) {
        if (row.status !== 'authorized' && row.status !== 'pending') continue;
        this.store.setRegistrationStatus(row.n, { status: 'revoked', reason: why, decided: now, decidedBy: by }, true);
        if (row.status === 'authorized' || ref === undefined) ref = row.id;
      }
      this.store.putMgmc(
        {
          mgmc,
          status: 'revoked',
          active: m?.active,
          reason: why,
          firstSeen: m?.firstSeen ?? now,
          updated: now,
          decidedBy: by,
        },
        rev,
      );
      return { changed: true, status: 'revoked', ref, detail: `${mgmc} revoked` };
    });
  }

  /**
   * The MGMC's standing, from memory (the block verifier's hot path). Reflects this process's changes at once and
   * other processes' after refresh().
   */
  lookup(address: string): RegistryEntry | undefined {
    return this.entries.get(address.toLowerCase());
  }

  /** The authorized set as of the last change this process saw. */
  authorizedSet(): AuthorizedSet {
    return this.set;
  }

  /** The retained authorized-set message as it stands, for the caller to publish again after a (re)connect. */
  authorizedSetMessage(): OutgoingMessage {
    return this.setMessage(this.set);
  }

  /** Every MGMC the DSO knows, read from the database (not the cache), in order of first registration. */
  list(): RegistryEntry[] {
    return this.store.snapshot(() => this.store.mgmcs().map((m) => this.entryOf(m)));
  }

  /** Every registration the MGMC sent, oldest first, with the answer each got (for `mgmc dso list --json`). */
  history(address: string): RegistrationRow[] {
    return this.store.registrationsOf(this.address(address));
  }

  /**
   * Picks up changes other processes made (e.g. `mgmc dso approve`): costs one indexed read when nothing changed.
   * Returns the messages those changes produce (authorization, revocation, new authorized set) when this Registry
   * publishes; each is handed to one publishing process only. Call it periodically (every few seconds).
   */
  refresh(): OutgoingMessage[] {
    const rev = this.store.rev();
    if (rev === this.seenRev && this.claimedOnce) return [];
    if (!this.publish) {
      this.reload();
      return [];
    }
    const messages = this.store.transaction(() => this.collect());
    this.claimedOnce = true;
    this.reload();
    if (messages.length > 0) this.logger?.info({ messages: messages.length }, 'registry changes picked up');
    return messages;
  }

  // ---- decisions -------------------------------------------------------------------------------------------------

  /** Stores a new, well-formed registration with its outcome (inside a write transaction). */
  private decide(id: string, reg: Registration, rev: number): void {
    const now = this.clock.now();
    const m = this.store.mgmc(reg.mgmc);
    const insert = (status: RegistrationStatus, reason: string | undefined, decidedBy: string | undefined): number =>
      this.store.insertRegistration(
        {
          id,
          mgmc: reg.mgmc,
          meters: reg.meters,
          bus: reg.bus,
          buy: reg.trade.buy,
          sell: reg.trade.sell,
          anonym: reg.anonym,
          anonymSig: reg.anonymSig,
          received: now,
          status,
          reason,
          decided: status === 'pending' ? undefined : now,
          decidedBy,
        },
        true,
      );
    const standing = (fallback: MgmcRow): MgmcRow =>
      m === undefined
        ? fallback
        : m.status === 'authorized' || m.status === 'revoked'
          ? { ...m, updated: now }
          : fallback;
    const log = (status: RegistrationStatus, reason?: string) =>
      this.logger?.info({ mgmc: reg.mgmc, ref: id, status, reason }, `registration ${status}`);

    // The newest registration is the one the MGMC stands by: an older one still waiting is outdated.
    for (const row of this.store.registrationsOf(reg.mgmc)) {
      if (row.status !== 'pending') continue;
      this.store.setRegistrationStatus(
        row.n,
        { status: 'superseded', reason: `superseded by registration ${id}`, decided: now },
        false,
      );
    }
    if (m?.status === 'revoked') {
      const reason =
        `this MGMC was revoked${m.reason === undefined ? '' : ` (${m.reason})`}; ` +
        `the DSO operator can re-admit it with \`mgmc dso approve ${reg.mgmc}\``;
      insert('revoked', reason, 'registry');
      this.store.putMgmc({ ...m, updated: now }, rev);
      log('revoked', reason);
      return;
    }
    const conflict = this.conflictOf(reg);
    if (conflict !== undefined) {
      insert('rejected', conflict, 'registry');
      this.store.putMgmc(standing(this.fresh(reg.mgmc, m, 'rejected', conflict, 'registry', now)), rev);
      log('rejected', conflict);
      return;
    }
    const active =
      m?.status === 'authorized' && m.active !== undefined ? this.store.registrationAt(m.active) : undefined;
    const allowed = this.allow.has(reg.mgmc.toLowerCase());
    if (allowed || (active !== undefined && sameTerms(active, reg))) {
      const by = allowed ? 'policy: in dso.policy.allow' : 'policy: same meters and bus as before';
      const n = insert('pending', undefined, undefined);
      this.authorize(m, this.store.registrationAt(n) as RegistrationRow, by, now, rev);
      log('authorized');
      return;
    }
    if (this.mode === 'allow-list') {
      const reason =
        `${reg.mgmc} is not in the DSO's allow-list: the DSO operator can add it to dso.policy.allow ` +
        `or run \`mgmc dso approve ${reg.mgmc}\``;
      insert('rejected', reason, `policy ${this.mode}`);
      this.store.putMgmc(standing(this.fresh(reg.mgmc, m, 'rejected', reason, `policy ${this.mode}`, now)), rev);
      log('rejected', reason);
      return;
    }
    const reason =
      active === undefined
        ? `waiting for the DSO operator to approve (\`mgmc dso approve ${reg.mgmc}\`)`
        : `meters or bus changed: waiting for the DSO operator to approve (\`mgmc dso approve ${reg.mgmc}\`); ` +
          'the earlier registration stays in force meanwhile';
    insert('pending', reason, undefined);
    this.store.putMgmc(standing(this.fresh(reg.mgmc, m, 'pending', undefined, undefined, now)), rev);
    log('pending');
  }

  /** Makes `row` the MGMC's registration in force; earlier authorized or waiting ones are superseded. */
  private authorize(m: StoredMgmc | undefined, row: RegistrationRow, by: string, now: number, rev: number): void {
    for (const other of this.store.registrationsOf(row.mgmc)) {
      if (other.n === row.n || (other.status !== 'authorized' && other.status !== 'pending')) continue;
      this.store.setRegistrationStatus(
        other.n,
        { status: 'superseded', reason: `superseded by registration ${row.id}`, decided: now, decidedBy: by },
        false,
      );
    }
    this.store.setRegistrationStatus(row.n, { status: 'authorized', decided: now, decidedBy: by }, true);
    this.store.putMgmc(
      {
        mgmc: row.mgmc,
        status: 'authorized',
        active: row.n,
        reason: undefined,
        firstSeen: m?.firstSeen ?? now,
        updated: now,
        decidedBy: by,
      },
      rev,
    );
  }

  /** Why `terms` cannot stand beside other MGMCs' registrations, or undefined. Names no other MGMC to the sender. */
  private conflictOf(terms: Terms): string | undefined {
    const users = this.store.anonymUsers(terms.anonym, terms.mgmc);
    if (users.length > 0) {
      this.logger?.warn({ mgmc: terms.mgmc, anonym: terms.anonym, others: users }, 'anonym registered by another MGMC');
      return `anonym ${terms.anonym} is registered by another MGMC: generate a new market key`;
    }
    const claims = this.store.meterClaims(terms.meters, terms.mgmc);
    const first = claims[0];
    if (first !== undefined) {
      this.logger?.warn({ mgmc: terms.mgmc, claims }, 'meter registered by another MGMC');
      return (
        `meter ${first.meter} is registered by another MGMC; a meter belongs to one MGMC: ` +
        'remove it from this MGMC, or ask the DSO operator to revoke the other registration'
      );
    }
    return undefined;
  }

  private fresh(
    mgmc: Address,
    m: StoredMgmc | undefined,
    status: MgmcStatus,
    reason: string | undefined,
    decidedBy: string | undefined,
    now: number,
  ): MgmcRow {
    return {
      mgmc,
      status,
      active: undefined,
      reason,
      firstSeen: m?.firstSeen ?? now,
      updated: now,
      decidedBy,
    };
  }

  // ---- transactions, messages, cache -----------------------------------------------------------------------------

  /**
   * One write transaction: `fn` changes rows (tx.rev() stamps the change) and may send answers of its own
   * (tx.send); then the authorized set is recomputed and, when this Registry publishes, every waiting answer is
   * claimed. The cache follows afterwards.
   */
  private write<T>(fn: (tx: WriteTx) => T): { result: T; messages: OutgoingMessage[] } {
    const done = this.store.transaction(() => {
      let rev: number | undefined;
      const direct: OutgoingMessage[] = [];
      const result = fn({ rev: () => (rev ??= this.store.bumpRev()), send: (m) => direct.push(m) });
      if (rev !== undefined) this.updateSet();
      return { result, messages: this.publish ? [...direct, ...this.collect()] : direct };
    });
    if (this.publish) this.claimedOnce = true;
    this.reload();
    return done;
  }

  private operatorWrite(mgmc: Address, fn: (rev: number) => Omit<RegistryChange, 'mgmc' | 'messages'>): RegistryChange {
    // An operator action always stamps the MGMC, so every process's cache reloads it.
    const { result, messages } = this.write((tx) => fn(tx.rev()));
    this.logger?.info({ mgmc, status: result.status, changed: result.changed, ref: result.ref }, result.detail);
    return { mgmc, ...result, messages };
  }

  /** Recomputes the authorized set inside a write; a different set gets the next serial and waits for a publisher. */
  private updateSet(): void {
    const anonyms = sortAddresses(this.store.authorizedAnonyms());
    const current = this.store.authorizedSet();
    if (JSON.stringify(anonyms) === JSON.stringify(current.anonyms)) return;
    this.store.putAuthorizedSet(current.serial + 1, anonyms, true);
  }

  /** Claims the waiting answers and set (inside a transaction) and turns them into messages. */
  private collect(): OutgoingMessage[] {
    const messages = this.store
      .claimAnnouncements()
      .map((a) => this.answer(a.mgmc, a.id, a.status, a.anonym, a.reason));
    if (this.store.claimSetAnnouncement()) messages.push(this.setMessage(this.store.authorizedSet()));
    return messages;
  }

  /** The `authorization` answer to registration `ref` (docs/protocol.md section 11). */
  private answer(
    mgmc: Address,
    ref: string,
    status: RegistrationStatus,
    anonym: Address | undefined,
    reason: string | undefined,
  ): OutgoingMessage {
    // `superseded` is not a protocol status: to the sender, an outdated registration is a rejected one.
    const wire = status === 'superseded' ? 'rejected' : status;
    const why = status === 'superseded' ? `${reason ?? 'superseded'}: a newer registration replaced it` : reason;
    const body: Record<string, string> = { mgmc, ref, status: wire };
    if (wire === 'authorized' && anonym !== undefined) body.anonym = anonym;
    if (wire !== 'authorized' && why !== undefined) body.reason = why;
    return { topic: this.topics.dsoMessages(mgmc), kind: 'authorization', body };
  }

  private setMessage(set: AuthorizedSet): OutgoingMessage {
    return {
      topic: this.topics.dsoAuthorized(),
      kind: 'authorized-set',
      body: { anonyms: [...set.anonyms], serial: set.serial },
      retain: true,
    };
  }

  /** Brings the cache up to the database: the MGMCs changed since the last look, and the authorized set. */
  private reload(): void {
    this.store.snapshot(() => {
      const rev = this.store.rev();
      if (rev === this.seenRev) return;
      for (const m of this.store.mgmcsChangedSince(this.seenRev)) {
        this.entries.set(m.mgmc.toLowerCase(), this.entryOf(m));
      }
      const set = this.store.authorizedSet();
      this.set = { serial: set.serial, anonyms: Object.freeze(set.anonyms) };
      this.seenRev = rev;
    });
  }

  private entryOf(m: StoredMgmc): RegistryEntry {
    const active = m.active === undefined ? undefined : this.store.registrationAt(m.active);
    const newest = this.store.newestRegistration(m.mgmc);
    const source = active ?? newest;
    const waiting =
      m.status === 'authorized' && newest !== undefined && newest.status === 'pending' && newest.n !== active?.n
        ? newest
        : undefined;
    const meterList = Object.freeze([...(source?.meters ?? [])]);
    return Object.freeze({
      mgmc: m.mgmc,
      status: m.status,
      meters: new Set(meterList.map((a) => a.toLowerCase())) as ReadonlySet<string>,
      meterList,
      anonym: source?.anonym,
      bus: source?.bus,
      trade: source === undefined ? undefined : { buy: source.buy, sell: source.sell },
      ref: source?.id,
      reason: m.reason,
      firstSeen: m.firstSeen,
      updated: m.updated,
      decidedBy: m.decidedBy,
      pending:
        waiting === undefined
          ? undefined
          : {
              ref: waiting.id,
              meters: waiting.meters,
              bus: waiting.bus,
              anonym: waiting.anonym,
              trade: { buy: waiting.buy, sell: waiting.sell },
              received: waiting.received,
            },
    });
  }

  private address(text: string): Address {
    try {
      return parseAddress(text, 'MGMC address');
    } catch (err) {
      throw new RegistryError((err as Error).message);
    }
  }
}

function sameTerms(row: RegistrationRow, reg: Terms): boolean {
  return row.bus === reg.bus && row.meters.join(',') === reg.meters.join(',');
}

function sameRegistration(row: RegistrationRow, reg: Registration): boolean {
  return (
    row.mgmc === reg.mgmc &&
    sameTerms(row, reg) &&
    row.anonym === reg.anonym &&
    row.anonymSig === reg.anonymSig &&
    row.buy === reg.trade.buy &&
    row.sell === reg.trade.sell
  );
}

function checkReason(reason: string): string {
  const text = reason.trim();
  if (text.length === 0) throw new RegistryError('give a reason: the MGMC operator sees it');
  if (text.length > 500) throw new RegistryError('keep the reason under 500 characters');
  return text;
}
