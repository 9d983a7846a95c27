import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Migration, openDatabase, type SqliteDatabase, StoreError } from '../../../agent/store/database.js';
import { LEDGER_MIGRATIONS, LedgerStore } from '../../../agent/store/ledger-store.js';

const V1: Migration = {
  version: 1,
  description: 'a table',
  sql: 'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL) STRICT;',
};
const V2: Migration = {
  version: 2,
  description: 'a row that must be inserted exactly once',
  sql: "INSERT INTO items (name) VALUES ('from v2');",
};
const V3: Migration = {
  version: 3,
  description: 'another row',
  sql: "INSERT INTO items (name) VALUES ('from v3');",
};

let dir: string;
let path: string;
const opened: SqliteDatabase[] = [];

function open(migrations: readonly Migration[], options?: Parameters<typeof openDatabase>[2]): SqliteDatabase {
  const db = openDatabase(path, migrations, options);
  opened.push(db);
  return db;
}

const userVersion = (db: SqliteDatabase): number => db.pragma('user_version', { simple: true }) as number;
const names = (db: SqliteDatabase): string[] =>
  (db.prepare('SELECT name FROM items ORDER BY id').all() as { name: string }[]).map((r) => r.name);

function storeError(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error('expected a StoreError, nothing was thrown');
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mgmc-db-'));
  path = join(dir, 'agent.db');
});

afterEach(() => {
  for (const db of opened.splice(0)) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('openDatabase: migrations', () => {
  it('applies every migration once, in version order, and records it in user_version', () => {
    const db = open([V2, V1]);
    expect(userVersion(db)).toBe(2);
    expect(names(db)).toEqual(['from v2']);
    db.close();

    const again = open([V1, V2]);
    expect(userVersion(again)).toBe(2);
    expect(names(again)).toEqual(['from v2']);
    again.close();

    const later = open([V1, V2, V3]);
    expect(userVersion(later)).toBe(3);
    expect(names(later)).toEqual(['from v2', 'from v3']);
  });

  it('applies nothing when a migration fails: the version and the schema stay as they were', () => {
    const broken: Migration = { version: 2, description: 'broken', sql: 'INSERT INTO nowhere VALUES (1);' };
    const err = storeError(() => open([V1, broken]));
    expect(err.message).toContain(`cannot use database ${path}`);
    expect(err.message).toContain('nowhere');
    const db = open([]);
    expect(userVersion(db)).toBe(0);
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'items'").pluck().get()).toBe(0);
  });

  it('refuses a database written by a newer version, saying to upgrade', () => {
    const db = open([V1, V2, V3]);
    db.close();
    const err = storeError(() => open([V1, V2]));
    expect(err.message).toBe(
      `database ${path} was written by a newer mgmc-agent (schema version 3; this version reads up to 2): ` +
        'upgrade mgmc-agent, or point the config at another database file',
    );
    expect(storeError(() => open([V1, V2], { readonly: true })).message).toContain('upgrade mgmc-agent');
  });

  it('refuses a newer ledger schema too', () => {
    const db = open(LEDGER_MIGRATIONS);
    db.pragma('user_version = 99');
    db.close();
    expect(storeError(() => open(LEDGER_MIGRATIONS)).message).toMatch(
      /was written by a newer mgmc-agent \(schema version 99; this version reads up to 1\): upgrade mgmc-agent/,
    );
  });

  it('opens read-only without migrating, and says so when a migration is due', () => {
    open([V1]).close();
    const err = storeError(() => open([V1, V2], { readonly: true }));
    expect(err.message).toBe(
      `database ${path} has schema version 1 and needs migrating to 2: open it once with the agent (read-write)`,
    );
    const ro = open([V1], { readonly: true });
    expect(() => ro.prepare("INSERT INTO items (name) VALUES ('x')").run()).toThrow(/readonly/);
  });
});

describe('openDatabase: files', () => {
  it('fails clearly when a read-only database does not exist, and creates nothing', () => {
    const err = storeError(() => open(LEDGER_MIGRATIONS, { readonly: true }));
    expect(err.message).toMatch(new RegExp(`^cannot open database ${path}: `));
    expect(existsSync(path)).toBe(false);
  });

  it('fails when create is false and the file is missing', () => {
    expect(storeError(() => open(LEDGER_MIGRATIONS, { create: false })).message).toMatch(/^cannot open database /);
    expect(existsSync(path)).toBe(false);
  });

  it('creates the file and its directory by default', () => {
    path = join(dir, 'nested', 'deeper', 'agent.db');
    open(LEDGER_MIGRATIONS);
    expect(existsSync(path)).toBe(true);
  });

  it('runs in WAL mode with the synchronous level asked for and foreign keys on', () => {
    const db = open(LEDGER_MIGRATIONS);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    db.close();
    const normal = open(LEDGER_MIGRATIONS, { synchronous: 'normal' });
    expect(normal.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    normal.close();
    // WAL is a property of the file: a read-only connection sees it too.
    const ro = open(LEDGER_MIGRATIONS, { readonly: true });
    expect(ro.pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('gives the ledger store its tables', () => {
    const store = new LedgerStore(open(LEDGER_MIGRATIONS));
    expect(store.counts()).toEqual({ records: 0, blocks: 0, sealedRecords: 0 });
    store.setMeta({ chainId: '7' });
    expect(store.getMeta('chainId')).toBe('7');
    expect(store.getMeta('missing')).toBeUndefined();
  });
});
