/**
 * One MGMC's link side for integration tests, wired as agent/main.ts wires it: a ledger, the MQTT link, MgmcSync
 * (registration, block shipping) and MgmcAdjustments. Tests extend it with what they exercise and call connect() last.
 */
import { join } from 'node:path';
import type { Clock } from '../../agent/clock.js';
import type { KeyPair } from '../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../agent/ledger/block.js';
import type { Ledger } from '../../agent/ledger/ledger.js';
import { openWritableLedger } from '../../agent/ledger/open.js';
import { MgmcAdjustments } from '../../agent/link/adjustments.js';
import { EnvelopeSealer } from '../../agent/link/envelope.js';
import { MqttLink } from '../../agent/link/mqtt-client.js';
import { createMgmcSync, type MgmcSync, nextLinkSession } from '../../agent/link/sync.js';
import { LinkTopics } from '../../agent/link/topics.js';
import type { Logger } from '../../agent/logger.js';
import type { LedgerStore } from '../../agent/store/ledger-store.js';
import type { TestGenesis } from './dso-node.js';

export interface LinkedMgmcOptions {
  readonly name: string;
  readonly key: KeyPair;
  /** Its feeder bus, as registered. */
  readonly bus: string;
  /** Where its database goes ({name}.db). */
  readonly dir: string;
  readonly url: string;
  readonly genesis: TestGenesis;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Signing meters it registers. */
  readonly meters?: readonly string[];
  readonly sealEveryRecords?: number;
}

export class LinkedMgmc {
  readonly name: string;
  readonly key: KeyPair;
  readonly bus: string;
  readonly store: LedgerStore;
  readonly ledger: Ledger;
  readonly link: MqttLink;
  readonly sync: MgmcSync;
  readonly adjustments: MgmcAdjustments;
  readonly topics: LinkTopics;
  /** This run's link session. */
  readonly session: number;

  constructor(o: LinkedMgmcOptions) {
    this.name = o.name;
    this.key = o.key;
    this.bus = o.bus;
    const { chainId } = o.genesis;
    const { clock, logger } = o;
    const signer = signerFromPrivateKey(o.key.privateKey, o.key.address);
    const opened = openWritableLedger({
      path: join(o.dir, `${o.name}.db`),
      signer,
      clock,
      chainId,
      sealEveryRecords: o.sealEveryRecords ?? 100,
      sealEverySeconds: 1,
      synchronous: 'normal',
      logger,
    });
    this.store = opened.store;
    this.ledger = opened.ledger;
    this.ledger.start();
    this.session = nextLinkSession(this.store);
    const sealer = new EnvelopeSealer({ signer, chainId, session: this.session, clock });
    this.topics = new LinkTopics(chainId);
    this.link = new MqttLink({ url: o.url, sealer, topics: this.topics, clock, logger });
    this.sync = createMgmcSync({
      store: this.store,
      ledger: this.ledger,
      link: this.link,
      sealer,
      topics: this.topics,
      genesis: o.genesis,
      registration: { meters: [...(o.meters ?? [])], bus: o.bus, trade: { buy: true, sell: true }, anonymEpoch: 0 },
      privateKey: o.key.privateKey,
      clock,
      logger,
    });
    this.adjustments = new MgmcAdjustments({
      link: this.link,
      sealer,
      topics: this.topics,
      db: this.store.db,
      privateKey: o.key.privateKey,
      validators: () => this.sync.validators(),
      clock,
      logger,
      ledger: this.ledger,
    });
  }

  /** Starts sync and adjustments, then connects (handlers first, so nothing waiting on the broker is missed). */
  connect(): void {
    this.sync.start();
    this.adjustments.start();
    this.link.connect();
  }

  async stop(): Promise<void> {
    this.adjustments.stop();
    this.ledger.stop();
    this.sync.stop();
    await this.link.close();
    this.store.close();
  }
}
