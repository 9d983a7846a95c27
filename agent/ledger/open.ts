/** Opening a ledger database for the commands and the runtime: the store, the schema and, to write, the signer. */
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { openDatabase, type Synchronous } from '../store/database.js';
import { LEDGER_MIGRATIONS, LedgerStore } from '../store/ledger-store.js';
import type { Signer } from './block.js';
import { Ledger } from './ledger.js';

export function openLedgerStore(
  path: string,
  options: { readonly?: boolean; synchronous?: Synchronous; create?: boolean } = {},
): LedgerStore {
  return new LedgerStore(openDatabase(path, LEDGER_MIGRATIONS, options));
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
