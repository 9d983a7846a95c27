/**
 * The MGMC agent's one SQLite database and its whole schema: the ledger (records, blocks), the link outbox, the DSO
 * light client (DSO headers, anchors), the sync state of the DSO link and the DSO's adjustment contracts, as ONE
 * numbered migration list.
 *
 * Why one list: openDatabase() applies the migrations whose version is above the file's user_version. A file
 * migrated by a list with a hole (say versions 1 and 3) records version 3, and a later open with the full list would
 * then skip version 2 for ever. A file opened by a shorter *prefix* of the list is fine (it is an older schema), but a
 * file written by the full list and opened by a shorter one is refused as "written by a newer mgmc-agent". So every
 * opener of the agent database (ledger/open.ts, the read-only CLI commands, the runtime, tests) passes
 * AGENT_DB_MIGRATIONS, or calls openAgentDatabase().
 *
 * The SQL lives here, under store/, so both ledger/ and link/ can depend on it without depending on each other.
 * OutboxStore (link/) and AnchorStore (ledger/) re-export their slices for older imports.
 */
import { type Migration, type OpenOptions, openDatabase, type SqliteDatabase } from './database.js';
import { LEDGER_MIGRATIONS } from './ledger-store.js';

export const OUTBOX_SCHEMA_VERSION = 2;

/** Version 2: the link outbox (store and forward to the DSO); the rows are read by link/outbox-store.ts. */
export const OUTBOX_MIGRATIONS: readonly Migration[] = [
  {
    version: OUTBOX_SCHEMA_VERSION,
    description: 'link outbox (store and forward to the DSO)',
    sql: `
      CREATE TABLE outbox (
        pos        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,
        topic      TEXT NOT NULL,
        kind       TEXT NOT NULL,
        payload    BLOB NOT NULL,
        retain     INTEGER NOT NULL DEFAULT 0 CHECK (retain IN (0, 1)),
        created    INTEGER NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'acked')),
        sent_at    INTEGER,
        acked_at   INTEGER,
        historical INTEGER NOT NULL DEFAULT 0 CHECK (historical IN (0, 1))
      ) STRICT;
      CREATE INDEX outbox_open ON outbox (state, pos) WHERE state <> 'acked';
    `,
  },
];

/** Version 3: the DSO light client's headers and the anchors (receipts) of own blocks (ledger/anchor-store.ts). */
export const ANCHOR_MIGRATIONS: readonly Migration[] = [
  {
    version: 3,
    description: 'DSO light client: DSO headers and anchors (receipts) of own blocks',
    sql: `
      CREATE TABLE dso_headers (
        height INTEGER PRIMARY KEY,
        hash   BLOB NOT NULL UNIQUE,
        kind   TEXT NOT NULL CHECK (kind IN ('anchor', 'validator-set')),
        header BLOB NOT NULL,
        seals  BLOB NOT NULL
      ) STRICT;
      CREATE INDEX dso_headers_kind ON dso_headers (kind, height);
      CREATE TABLE anchors (
        mgmc_height INTEGER PRIMARY KEY,
        dso_height  INTEGER NOT NULL REFERENCES dso_headers (height),
        receipt     BLOB NOT NULL
      ) STRICT;
      CREATE INDEX anchors_dso_height ON anchors (dso_height);
    `,
  },
];

/**
 * Version 4: the DSO link's sync state.
 * - records.leaf: the RFC 9162 leaf hash of a record whose body was pruned after anchoring (NULL while the body is
 *   kept), so `mgmc ledger verify` still checks every Merkle root;
 * - shipped_blocks: which outbox envelope carries which own block, so a DSO receipt acknowledges the right item even
 *   when it does not name the envelope.
 */
export const SYNC_MIGRATIONS: readonly Migration[] = [
  {
    version: 4,
    description: 'DSO link sync: leaf hashes of pruned records, envelopes of shipped blocks',
    sql: `
      ALTER TABLE records ADD COLUMN leaf BLOB;
      CREATE TABLE shipped_blocks (
        height      INTEGER PRIMARY KEY,
        envelope_id TEXT NOT NULL UNIQUE
      ) STRICT;
    `,
  },
];

/**
 * Version 5: the DSO's trading-adjustment contracts this MGMC accepted (link/adjustment-store.ts): the caps in force
 * per market interval, and the ids seen until they expire, so a replayed contract is refused.
 */
export const ADJUSTMENT_MIGRATIONS: readonly Migration[] = [
  {
    version: 5,
    description: 'DSO adjustment contracts: caps on the net position per market interval',
    sql: `
      CREATE TABLE dso_adjustments (
        id             TEXT PRIMARY KEY,
        interval_start INTEGER NOT NULL,
        duration_ms    INTEGER NOT NULL,
        iteration      INTEGER NOT NULL,
        issued         INTEGER NOT NULL,
        expiry         INTEGER NOT NULL,
        max_import_w   INTEGER,
        max_export_w   INTEGER,
        dso            TEXT NOT NULL,
        signed         BLOB NOT NULL,
        received       INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX dso_adjustments_interval ON dso_adjustments (interval_start, iteration, issued);
      CREATE INDEX dso_adjustments_expiry ON dso_adjustments (expiry);
    `,
  },
];

/** Every migration of the agent database, in version order. Pass this list (never a part of it) to openDatabase. */
export const AGENT_DB_MIGRATIONS: readonly Migration[] = [
  ...LEDGER_MIGRATIONS,
  ...OUTBOX_MIGRATIONS,
  ...ANCHOR_MIGRATIONS,
  ...SYNC_MIGRATIONS,
  ...ADJUSTMENT_MIGRATIONS,
].sort((a, b) => a.version - b.version);

/** The schema version a database opened with AGENT_DB_MIGRATIONS has. */
export const AGENT_DB_VERSION = AGENT_DB_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** Opens (and, unless read-only, migrates) the agent database with the whole schema. */
export function openAgentDatabase(path: string, options: OpenOptions = {}): SqliteDatabase {
  return openDatabase(path, AGENT_DB_MIGRATIONS, options);
}
