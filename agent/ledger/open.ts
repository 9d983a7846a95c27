/**
 * Opening the agent database for the commands and the runtime: the store, the schema and, to write, the signer.
 * Always with the whole schema (AGENT_DB_MIGRATIONS): the ledger shares its file with the outbox and the DSO light
 * client, and opening it with a part of the list would be refused or mis-detected (store/agent-db.ts).
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { AGENT_DB_MIGRATIONS } from '../store/agent-db.js';
import { openDatabase, type Synchronous } from '../store/database.js';
import { LedgerStore } from '../store/ledger-store.js';
import type { Signer } from './block.js';
import { Ledger } from './ledger.js';

export function openLedgerStore(
  path: string,
  options: { readonly?: boolean; synchronous?: Synchronous; create?: boolean } = {},
): LedgerStore {
  return new LedgerStore(openDatabase(path, AGENT_DB_MIGRATIONS, options));
}

export interface WritableLedgerOptions {
  readonly path: string;
  readonly signer: Signer;
  readonly clock: Clock;
  readonly chainId: number;
  readonly sealEveryRecords: number;
  readonly sealEverySeconds: number;
  readonly synchronous?: Synchronous;
  readonly logger?: Logger;
}

export function openWritableLedger(options: WritableLedgerOptions): { store: LedgerStore; ledger: Ledger } {
  const store = openLedgerStore(options.path, { synchronous: options.synchronous ?? 'full', create: true });
  try {
    const ledger = Ledger.open({ ...options, store });
    return { store, ledger };
  } catch (err) {
    store.close();
    throw err;
  }
}
