/** Fixtures shared by the DSO chain tests: fixed validator keys, genesis objects, temporary databases. */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DSO_CHAIN_MIGRATIONS, DsoChainStore } from '../../../agent/dso/chain-store.js';
import type { DsoGenesis } from '../../../agent/dso/genesis.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import {
  type BlockHeader,
  type SignedBlock,
  type Signer,
  signerFromPrivateKey,
  signHeader,
} from '../../../agent/ledger/block.js';
import { openDatabase } from '../../../agent/store/database.js';

/** Test keys: they seal nothing outside the temporary databases of these tests. */
export const V = [0x41, 0x42, 0x43, 0x44, 0x45, 0x46].map((b) =>
  keyPairFromPrivateKey(fromHex(`0x${b.toString(16).repeat(32)}`)),
) as [KeyPair, KeyPair, KeyPair, KeyPair, KeyPair, KeyPair];
export const MGMC_A = keyPairFromPrivateKey(fromHex(`0x${'51'.repeat(32)}`));
export const MGMC_B = keyPairFromPrivateKey(fromHex(`0x${'52'.repeat(32)}`));

export const DSO_CHAIN = 77;
export const MGMC_CHAIN = 4242;
export const T0 = Date.UTC(2026, 0, 1);

export const signer = (pair: KeyPair): Signer => signerFromPrivateKey(pair.privateKey, pair.address);

export function genesisOf(validators: readonly KeyPair[], chainId = DSO_CHAIN): DsoGenesis {
  return { chainId, name: 'test feeder', time: T0, validators: validators.map((v) => v.address) };
}

/** A deterministic stand-in for an MGMC header hash. */
export function fakeHash(n: number): string {
  return toHex(new Uint8Array(createHash('sha256').update(`mgmc block ${n}`).digest()));
}

/** A real, signed MGMC block header (records are not needed by the anchor). */
export function mgmcBlock(producer: KeyPair, height: number, prev: string, time = T0 + height * 1000): SignedBlock {
  const header: BlockHeader = {
    version: 1,
    chainId: MGMC_CHAIN,
    height,
    prev,
    root: fakeHash(1000 + height),
    time,
    count: 1,
    producer: producer.address,
  };
  return signHeader(header, signer(producer));
}

/** A chain of n signed MGMC blocks. */
export function mgmcChain(producer: KeyPair, n: number): SignedBlock[] {
  const blocks: SignedBlock[] = [];
  let prev = `0x${'00'.repeat(32)}`;
  for (let h = 1; h <= n; h++) {
    const block = mgmcBlock(producer, h, prev);
    blocks.push(block);
    prev = block.hash;
  }
  return blocks;
}

export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), 'mgmc-dso-'));
  private readonly stores: { close(): void }[] = [];

  file(name: string): string {
    return join(this.path, name);
  }

  chainStore(name = 'dso.db'): DsoChainStore {
    const store = new DsoChainStore(openDatabase(this.file(name), DSO_CHAIN_MIGRATIONS));
    this.stores.push(store);
    return store;
  }

  track<T extends { close(): void }>(store: T): T {
    this.stores.push(store);
    return store;
  }

  cleanup(): void {
    for (const s of this.stores.splice(0)) {
      try {
        s.close();
      } catch {
        // already closed by the test
      }
    }
    rmSync(this.path, { recursive: true, force: true });
  }
}
