/**
 * The DSO node's database: one SQLite file holding the DSO chain (chain-store.ts, migration 1) and the MGMC registry
 * (registry-store.ts, migrations from 2). Several processes of one DSO may open it at once (a verifier-only process,
 * `mgmc dso approve`): WAL journal, busy timeout, and every writer keeps its transactions short.
 */
import { type OpenOptions, openDatabase, type SqliteDatabase } from '../store/database.js';
import { DSO_CHAIN_MIGRATIONS } from './chain-store.js';
import { REGISTRY_MIGRATIONS } from './registry-store.js';

/** Every migration of the DSO database, in version order. */
export const DSO_MIGRATIONS = [...DSO_CHAIN_MIGRATIONS, ...REGISTRY_MIGRATIONS];

/** Opens (by default creating) the DSO database at `path` and brings it to the newest schema. */
export function openDsoDatabase(path: string, options: OpenOptions = {}): SqliteDatabase {
  return openDatabase(path, DSO_MIGRATIONS, options);
}
