/**
 * The MGMC's market over MQTT: seals from the DSO's sequencer in (market/{interval}/seal), moves and deliveries out
 * (market/{interval}/moves, .../deliveries), sealed with the anonym key so the other microgrids never see the MGMC's
 * address. A seal counts only when it is signed by a DSO validator on our chain and names the interval of its topic;
 * a duplicate (QoS 1 redelivery) is dropped before the participant sees it, so no move is made twice.
 */
import type { Clock } from '../clock.js';
import type { Address, KeyPair } from '../identity/keys.js';
import { SignatureVerifier } from '../identity/signing.js';
import { signerFromPrivateKey } from '../ledger/block.js';
import type { Logger } from '../logger.js';
import {
  MARKET_DELIVERY_KIND,
  MARKET_SEAL_KIND,
  MarketParticipant,
  type MarketParticipantOptions,
  parseSeal,
} from '../market/session.js';
import { DEFAULT_MAX_ENVELOPE_BYTES, EnvelopeSealer, openEnvelope, ReplayGuard } from './envelope.js';
import type { LinkMessage, MqttLink } from './mqtt-client.js';
import { type LinkTopics, parseTopic } from './topics.js';

export interface MgmcMarketOptions extends Omit<MarketParticipantOptions, 'signer' | 'send' | 'chainId' | 'logger'> {
  readonly link: Pick<MqttLink, 'publish' | 'subscribe' | 'unsubscribe'>;
  readonly topics: LinkTopics;
  readonly chainId: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The anonym key (link/anonym.ts deriveAnonymKey). */
  readonly anonymKey: KeyPair;
  /** This process run's link session (the anonym numbers its envelopes in it). */
  readonly session: number;
  /** The DSO's validators: only they may seal the market. */
  readonly validators: () => readonly Address[];
}

export interface MarketLinkStats {
  readonly seals: number;
  readonly dropped: Readonly<Record<string, number>>;
}

export class MgmcMarket {
  readonly participant: MarketParticipant;
  private readonly sealer: EnvelopeSealer;
  private readonly guard = new ReplayGuard();
  private readonly signatures = new SignatureVerifier();
  private readonly log: Logger;
  private readonly dropped = new Map<string, number>();
  private seals = 0;
  private readonly handler = (message: LinkMessage) => this.onMessage(message);

  constructor(private readonly o: MgmcMarketOptions) {
    this.log = o.logger.child({ module: 'market-link' });
    const signer = signerFromPrivateKey(o.anonymKey.privateKey, o.anonymKey.address);
    this.sealer = new EnvelopeSealer({ signer, chainId: o.chainId, session: o.session, clock: o.clock });
    this.participant = new MarketParticipant({
      ...o,
      signer,
      send: async (interval, kind, body) => {
        const channel = kind === MARKET_DELIVERY_KIND ? 'deliveries' : 'moves';
        await o.link.publish(o.topics.market(interval, channel), this.sealer.seal(kind, body).bytes);
      },
    });
  }

  get anonym(): Address {
    return this.o.anonymKey.address;
  }

  /** Subscribes to the seals; call before the link connects so nothing sealed meanwhile is missed. */
  start(): Promise<void> {
    return this.o.link.subscribe(this.o.topics.marketFilter('seal'), this.handler);
  }

  async stop(): Promise<void> {
    await this.o.link.unsubscribe(this.o.topics.marketFilter('seal'), this.handler).catch(() => undefined);
  }

  stats(): MarketLinkStats {
    return { seals: this.seals, dropped: Object.fromEntries(this.dropped) };
  }

  private drop(reason: string, detail: string): undefined {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    this.log.warn({ reason }, `market seal dropped: ${detail}`);
    return undefined;
  }

  private onMessage(message: LinkMessage): undefined {
    const parsed = parseTopic(message.topic);
    if (parsed.kind !== 'market') return this.drop('bad-topic', `${message.topic} is not a market topic`);
    const opened = openEnvelope(message.payload, {
      chainId: this.o.chainId,
      maxBytes: DEFAULT_MAX_ENVELOPE_BYTES,
      verifier: this.signatures,
    });
    if (!opened.ok) return this.drop(opened.reason, `${message.topic}: ${opened.detail}`);
    const envelope = opened.envelope;
    const from = envelope.from.toLowerCase();
    if (envelope.kind !== MARKET_SEAL_KIND)
      return this.drop('kind', `${message.topic}: a ${envelope.kind}, not a seal`);
    if (!this.o.validators().some((v) => v.toLowerCase() === from)) {
      return this.drop('not-dso', `${message.topic}: sealed by ${envelope.from}, not a DSO validator`);
    }
    if (!this.guard.check(envelope).fresh) return;
    this.guard.record(envelope);
    let seal: ReturnType<typeof parseSeal>;
    try {
      seal = parseSeal(envelope.body);
    } catch (err) {
      return this.drop('malformed', `${message.topic}: ${(err as Error).message}`);
    }
    if (seal.interval !== parsed.interval) {
      return this.drop('wrong-interval', `${message.topic}: the seal is for interval ${seal.interval}`);
    }
    this.seals++;
    void this.participant.onSeal(seal);
    return undefined;
  }
}
