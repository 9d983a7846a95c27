/**
 * The agent's SQLite database (the only module family that imports better-sqlite3). WAL journal, one writer
 * connection per process, schema migrations numbered by PRAGMA user_version.
 *
 * Durability: synchronous=FULL by default, so a transaction the agent has reported as committed survives a power cut,
 * not only a process crash (docs/durability.md). NORMAL is offered for disks where fsync is very slow and losing the
 * last second of readings on power loss is acceptable.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;
export type Synchronous = 'full' | 'normal';

export interface OpenOptions {
  readonly readonly?: boolean;
  readonly synchronous?: Synchronous;
  /** Create the file (and its directory) when missing; otherwise a missing database is an error. */
  readonly create?: boolean;
}

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

/** Opens the database and brings its schema to the newest version in `migrations` (never downgrades). */
export function openDatabase(
  path: string,
  migrations: readonly Migration[],
  options: OpenOptions = {},
): SqliteDatabase {
  const readonly = options.readonly ?? false;
  if (!readonly && options.create !== false) mkdirSync(dirname(path), { recursive: true });
  let db: SqliteDatabase;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly || options.create === false });
  } catch (err) {
    throw new StoreError(`cannot open database ${path}: ${(err as Error).message}`);
  }
  try {
    if (!readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    }
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, path, migrations, readonly);
    return db;
  } catch (err) {
    db.close();
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot use database ${path}: ${(err as Error).message}`);
  }
}

function migrate(db: SqliteDatabase, path: string, migrations: readonly Migration[], readonly: boolean): void {
  const newest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > newest) {
    throw new StoreError(
      `database ${path} was written by a newer mgmc-agent (schema version ${current}; this version reads up to ${newest}): ` +
        'upgrade mgmc-agent, or point the config at another database file',
    );
  }
  const pending = migrations.filter((m) => m.version > current).sort((a, b) => a.version - b.version);
  if (pending.length === 0) return;
  if (readonly) {
    throw new StoreError(
      `database ${path} has schema version ${current} and needs migrating to ${newest}: open it once with the agent (read-write)`,
    );
  }
  const apply = db.transaction(() => {
    for (const m of pending) {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
  });
  apply.immediate();
}
