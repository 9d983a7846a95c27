/**
 * Tables of the DSO's MGMC registry (stage 1), in the DSO database after the chain tables (agent/dso/database.ts):
 *
 * - dso_registrations: every well-formed registration the DSO received, one row per envelope id, with the answer the
 *   DSO gives to it (`status`). `n` is the arrival order. `announce` = 1 marks a row whose answer changed and has not
 *   been handed to a publisher yet (the CLI changes the database; the running DSO publishes: see Registry.refresh).
 * - dso_mgmcs: one row per MGMC, its current standing. `active` is the registration in force (status authorized) or
 *   last in force (revoked); its meters, bus and anonym are what the block verifier trusts. `rev` is the value of the
 *   change counter when the row last changed, so a process reloads only what changed since it last looked.
 * - meta (from the chain migrations): `registry.rev` (change counter, +1 per write transaction), `registry.serial`
 *   and `registry.set` (the authorized set: serial and sorted anonyms), `registry.set_announce` ('1' while a new set
 *   waits for a publisher).
 *
 * Two processes may write this database (the DSO and `mgmc dso approve`): every change is one short IMMEDIATE
 * transaction that reads what it decides on inside the transaction. Like chain-store.ts this module only stores and
 * fetches; the decisions are agent/dso/registry.ts's.
 */
import type { Address } from '../identity/keys.js';
import type { Migration, SqliteDatabase } from '../store/database.js';

export const REGISTRY_MIGRATIONS: readonly Migration[] = [
  {
    // Version 1 is DSO_CHAIN_MIGRATIONS (chain-store.ts): the DSO database numbers its migrations across both.
    version: 2,
    description: 'DSO registry: MGMC registrations and standings, authorized-set serial',
    sql: `
      CREATE TABLE dso_registrations (
        n          INTEGER PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        mgmc       TEXT NOT NULL,
        meters     TEXT NOT NULL,
        bus        TEXT NOT NULL,
        buy        INTEGER NOT NULL CHECK (buy IN (0, 1)),
        sell       INTEGER NOT NULL CHECK (sell IN (0, 1)),
        anonym     TEXT NOT NULL,
        anonym_sig TEXT NOT NULL,
        received   INTEGER NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'authorized', 'rejected', 'revoked', 'superseded')),
        reason     TEXT,
        decided    INTEGER,
        decided_by TEXT,
        announce   INTEGER NOT NULL DEFAULT 0 CHECK (announce IN (0, 1))
      ) STRICT;
      CREATE INDEX dso_registrations_mgmc ON dso_registrations (mgmc, n);
      CREATE INDEX dso_registrations_anonym ON dso_registrations (anonym);
      CREATE INDEX dso_registrations_announce ON dso_registrations (n) WHERE announce = 1;
      CREATE TABLE dso_mgmcs (
        mgmc       TEXT PRIMARY KEY,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'authorized', 'rejected', 'revoked')),
        active     INTEGER REFERENCES dso_registrations (n),
        reason     TEXT,
        first_seen INTEGER NOT NULL,
        updated    INTEGER NOT NULL,
        decided_by TEXT,
        rev        INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX dso_mgmcs_rev ON dso_mgmcs (rev);
      INSERT INTO meta (key, value) VALUES ('registry.rev', '0'), ('registry.serial', '0'), ('registry.set', '[]'),
        ('registry.set_announce', '0');
    `,
  },
];

export type RegistrationStatus = 'pending' | 'authorized' | 'rejected' | 'revoked' | 'superseded';
export type MgmcStatus = 'pending' | 'authorized' | 'rejected' | 'revoked';

export interface RegistrationRow {
  /** Arrival order. */
  readonly n: number;
  /** The registration envelope's id. */
  readonly id: string;
  readonly mgmc: Address;
  /** EIP-55, sorted by lower-case hex. */
  readonly meters: readonly Address[];
  readonly bus: string;
  readonly buy: boolean;
  readonly sell: boolean;
  readonly anonym: Address;
  readonly anonymSig: string;
  readonly received: number;
  readonly status: RegistrationStatus;
  readonly reason: string | undefined;
  readonly decided: number | undefined;
  readonly decidedBy: string | undefined;
}

export type NewRegistration = Omit<RegistrationRow, 'n'>;

export interface MgmcRow {
  readonly mgmc: Address;
  readonly status: MgmcStatus;
  /** `n` of the registration in force (authorized) or last in force (revoked). */
  readonly active: number | undefined;
  readonly reason: string | undefined;
  readonly firstSeen: number;
  readonly updated: number;
  readonly decidedBy: string | undefined;
}

export interface StoredMgmc extends MgmcRow {
  readonly rev: number;
}

/** A registration whose answer a publisher has to send (claimed by claimAnnouncements). */
export interface Announcement {
  readonly id: string;
  readonly mgmc: Address;
  readonly status: RegistrationStatus;
  readonly anonym: Address;
  readonly reason: string | undefined;
}

interface RawRegistration {
  n: number;
  id: string;
  mgmc: string;
  meters: string;
  bus: string;
  buy: number;
  sell: number;
  anonym: string;
  anonym_sig: string;
  received: number;
  status: RegistrationStatus;
  reason: string | null;
  decided: number | null;
  decided_by: string | null;
}

interface RawMgmc {
  mgmc: string;
  status: MgmcStatus;
  active: number | null;
  reason: string | null;
  first_seen: number;
  updated: number;
  decided_by: string | null;
  rev: number;
}

const toRegistration = (r: RawRegistration): RegistrationRow => ({
  n: r.n,
  id: r.id,
  mgmc: r.mgmc,
  meters: JSON.parse(r.meters) as Address[],
  bus: r.bus,
  buy: r.buy === 1,
  sell: r.sell === 1,
  anonym: r.anonym,
  anonymSig: r.anonym_sig,
  received: r.received,
  status: r.status,
  reason: r.reason ?? undefined,
  decided: r.decided ?? undefined,
  decidedBy: r.decided_by ?? undefined,
});

const toMgmc = (r: RawMgmc): StoredMgmc => ({
  mgmc: r.mgmc,
  status: r.status,
  active: r.active ?? undefined,
  reason: r.reason ?? undefined,
  firstSeen: r.first_seen,
  updated: r.updated,
  decidedBy: r.decided_by ?? undefined,
  rev: r.rev,
});

/** SQL of the registry; see the module comment for the tables. */
export class RegistryStore {
  private readonly stmts;

  constructor(readonly db: SqliteDatabase) {
    this.stmts = {
      meta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      byId: db.prepare('SELECT * FROM dso_registrations WHERE id = ?'),
      byN: db.prepare('SELECT * FROM dso_registrations WHERE n = ?'),
      newest: db.prepare('SELECT * FROM dso_registrations WHERE mgmc = ? ORDER BY n DESC LIMIT 1'),
      ofMgmc: db.prepare('SELECT * FROM dso_registrations WHERE mgmc = ? ORDER BY n'),
      insert: db.prepare(
        `INSERT INTO dso_registrations
           (id, mgmc, meters, bus, buy, sell, anonym, anonym_sig, received, status, reason, decided, decided_by, announce)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      setStatus: db.prepare(
        `UPDATE dso_registrations SET status = ?, reason = ?, decided = ?, decided_by = ?, announce = ?
         WHERE n = ?`,
      ),
      clearAnnounce: db.prepare('UPDATE dso_registrations SET announce = 0 WHERE n = ?'),
      claim: db.prepare(
        `UPDATE dso_registrations SET announce = 0 WHERE announce = 1
         RETURNING n, id, mgmc, status, anonym, reason`,
      ),
      anonymUsers: db.prepare(
        `SELECT DISTINCT mgmc FROM dso_registrations
         WHERE anonym = ? AND mgmc <> ? AND status <> 'rejected' AND status <> 'superseded'`,
      ),
      meterClaims: db.prepare(
        `SELECT DISTINCT r.mgmc AS mgmc, m.value AS meter
         FROM dso_registrations r, json_each(r.meters) m
         WHERE r.mgmc <> ? AND r.status = 'authorized' AND lower(m.value) IN (SELECT value FROM json_each(?))`,
      ),
      authorizedAnonyms: db
        .prepare(
          `SELECT r.anonym FROM dso_mgmcs m JOIN dso_registrations r ON r.n = m.active
           WHERE m.status = 'authorized'`,
        )
        .pluck(),
      mgmc: db.prepare('SELECT * FROM dso_mgmcs WHERE mgmc = ?'),
      mgmcs: db.prepare('SELECT * FROM dso_mgmcs ORDER BY first_seen, mgmc'),
      changed: db.prepare('SELECT * FROM dso_mgmcs WHERE rev > ? ORDER BY rev'),
      upsertMgmc: db.prepare(
        `INSERT INTO dso_mgmcs (mgmc, status, active, reason, first_seen, updated, decided_by, rev)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (mgmc) DO UPDATE SET status = excluded.status, active = excluded.active,
           reason = excluded.reason, updated = excluded.updated, decided_by = excluded.decided_by, rev = excluded.rev`,
      ),
    };
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction (the write lock is taken first, so what `fn` reads cannot change under
   * it when another process writes the same database).
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /** Runs `fn` in a read transaction: one consistent snapshot of the tables. */
  snapshot<T>(fn: () => T): T {
    return this.db.transaction(fn).deferred();
  }

  /** The change counter: grows with every write transaction of the registry, in any process. */
  rev(): number {
    return Number(this.stmts.meta.get('registry.rev') ?? 0);
  }

  /** Bumps the change counter; call once per write transaction, inside it. Returns the new value. */
  bumpRev(): number {
    const rev = this.rev() + 1;
    this.stmts.setMeta.run('registry.rev', String(rev));
    return rev;
  }

  registration(id: string): RegistrationRow | undefined {
    const r = this.stmts.byId.get(id) as RawRegistration | undefined;
    return r && toRegistration(r);
  }

  registrationAt(n: number): RegistrationRow | undefined {
    const r = this.stmts.byN.get(n) as RawRegistration | undefined;
    return r && toRegistration(r);
  }

  /** The MGMC's most recent registration. */
  newestRegistration(mgmc: Address): RegistrationRow | undefined {
    const r = this.stmts.newest.get(mgmc) as RawRegistration | undefined;
    return r && toRegistration(r);
  }

  registrationsOf(mgmc: Address): RegistrationRow[] {
    return (this.stmts.ofMgmc.all(mgmc) as RawRegistration[]).map(toRegistration);
  }

  /** Stores a registration; `announce` marks its answer for the next publisher. Returns its `n`. */
  insertRegistration(row: NewRegistration, announce: boolean): number {
    const result = this.stmts.insert.run(
      row.id,
      row.mgmc,
      JSON.stringify(row.meters),
      row.bus,
      row.buy ? 1 : 0,
      row.sell ? 1 : 0,
      row.anonym,
      row.anonymSig,
      row.received,
      row.status,
      row.reason ?? null,
      row.decided ?? null,
      row.decidedBy ?? null,
      announce ? 1 : 0,
    );
    return Number(result.lastInsertRowid);
  }

  setRegistrationStatus(
    n: number,
    change: {
      readonly status: RegistrationStatus;
      readonly reason?: string | undefined;
      readonly decided: number;
      readonly decidedBy?: string | undefined;
    },
    announce: boolean,
  ): void {
    this.stmts.setStatus.run(
      change.status,
      change.reason ?? null,
      change.decided,
      change.decidedBy ?? null,
      announce ? 1 : 0,
      n,
    );
  }

  /** The answer to registration `n` was sent by whoever called this: no publisher needs to send it again. */
  clearAnnouncement(n: number): void {
    this.stmts.clearAnnounce.run(n);
  }

  /**
   * Takes every registration answer waiting for a publisher, oldest first; each is handed out exactly once, even with
   * several processes claiming.
   */
  claimAnnouncements(): Announcement[] {
    const rows = this.stmts.claim.all() as {
      n: number;
      id: string;
      mgmc: string;
      status: RegistrationStatus;
      anonym: string;
      reason: string | null;
    }[];
    return rows
      .sort((a, b) => a.n - b.n)
      .map((r) => ({ id: r.id, mgmc: r.mgmc, status: r.status, anonym: r.anonym, reason: r.reason ?? undefined }));
  }

  /** MGMCs other than `mgmc` that registered `anonym` (rejected and superseded registrations do not count). */
  anonymUsers(anonym: Address, mgmc: Address): Address[] {
    return (this.stmts.anonymUsers.all(anonym, mgmc) as { mgmc: string }[]).map((r) => r.mgmc);
  }

  /** Meters of `meters` that another MGMC's authorized registration lists, with that MGMC. */
  meterClaims(meters: readonly Address[], mgmc: Address): { meter: Address; mgmc: Address }[] {
    if (meters.length === 0) return [];
    const wanted = JSON.stringify(meters.map((m) => m.toLowerCase()));
    return this.stmts.meterClaims.all(mgmc, wanted) as { meter: Address; mgmc: Address }[];
  }

  /** Anonyms of all MGMCs in standing 'authorized' (unsorted). */
  authorizedAnonyms(): Address[] {
    return this.stmts.authorizedAnonyms.all() as Address[];
  }

  mgmc(mgmc: Address): StoredMgmc | undefined {
    const r = this.stmts.mgmc.get(mgmc) as RawMgmc | undefined;
    return r && toMgmc(r);
  }

  mgmcs(): StoredMgmc[] {
    return (this.stmts.mgmcs.all() as RawMgmc[]).map(toMgmc);
  }

  /** MGMC rows changed after counter value `rev`. */
  mgmcsChangedSince(rev: number): StoredMgmc[] {
    return (this.stmts.changed.all(rev) as RawMgmc[]).map(toMgmc);
  }

  /** Writes the MGMC's standing, stamped with change counter `rev`. `firstSeen` is kept from the first write. */
  putMgmc(row: MgmcRow, rev: number): void {
    this.stmts.upsertMgmc.run(
      row.mgmc,
      row.status,
      row.active ?? null,
      row.reason ?? null,
      row.firstSeen,
      row.updated,
      row.decidedBy ?? null,
      rev,
    );
  }

  /** The authorized set as last published or waiting to be: serial and sorted anonyms. */
  authorizedSet(): { serial: number; anonyms: Address[] } {
    return {
      serial: Number(this.stmts.meta.get('registry.serial') ?? 0),
      anonyms: JSON.parse((this.stmts.meta.get('registry.set') as string | undefined) ?? '[]') as Address[],
    };
  }

  /** Stores a new authorized set under `serial`; `announce` marks it for the next publisher. */
  putAuthorizedSet(serial: number, anonyms: readonly Address[], announce: boolean): void {
    this.stmts.setMeta.run('registry.serial', String(serial));
    this.stmts.setMeta.run('registry.set', JSON.stringify(anonyms));
    this.stmts.setMeta.run('registry.set_announce', announce ? '1' : '0');
  }

  /** True (once) when a new authorized set waits for a publisher; the flag is cleared. Call inside transaction(). */
  claimSetAnnouncement(): boolean {
    if (this.stmts.meta.get('registry.set_announce') !== '1') return false;
    this.stmts.setMeta.run('registry.set_announce', '0');
    return true;
  }
}
