/**
 * The one MQTT topic namespace of the DSO link (docs/protocol.md, "MQTT link"):
 *
 *   mgmc/v1/{chainId}/node/{address}/birth          MGMC session birth, one per (re)connect
 *   mgmc/v1/{chainId}/node/{address}/availability   'online' / 'offline' (retained; 'offline' is also the last will)
 *   mgmc/v1/{chainId}/node/{address}/blocks         signed block headers (+ records) for the DSO
 *   mgmc/v1/{chainId}/node/{address}/registration   the MGMC's signed registration
 *   mgmc/v1/{chainId}/node/{address}/messages       other MGMC -> DSO messages
 *   mgmc/v1/{chainId}/node/{address}/positions      the MGMC's net position per market interval (grid security)
 *   mgmc/v1/{chainId}/node/{address}/acks           the MGMC's acknowledgements of adjustment contracts
 *   mgmc/v1/{chainId}/dso/headers                   DSO chain headers (light clients follow these)
 *   mgmc/v1/{chainId}/dso/receipts/{address}        DSO receipts for one MGMC's blocks
 *   mgmc/v1/{chainId}/dso/messages/{address}        DSO -> one MGMC (authorization, rejections, headers)
 *   mgmc/v1/{chainId}/dso/adjustments/{address}     DSO -> one MGMC: encrypted adjustment contracts
 *   mgmc/v1/{chainId}/dso/authorized                the authorized MGMC set (retained)
 *   mgmc/v1/{chainId}/market/{interval}/seal         DSO sequencer -> all: the market's seals (session.ts)
 *   mgmc/v1/{chainId}/market/{interval}/moves        anonym -> sequencer: orders and price moves
 *   mgmc/v1/{chainId}/market/{interval}/deliveries   anonym -> sequencer: signed metered deliveries
 *
 * Every level is lower case; addresses are written lower-case in topics (the envelope inside carries the EIP-55
 * form). Builders refuse wildcards and malformed levels, so the agent can never publish to a filter. A DSO runs
 * several verifiers as one MQTT 5 shared subscription: `$share/{group}/mgmc/v1/{chainId}/node/+/blocks`.
 */
import { parseAddress } from '../identity/keys.js';

export const TOPIC_ROOT = 'mgmc/v1';

export const NODE_CHANNELS = [
  'birth',
  'availability',
  'blocks',
  'registration',
  'messages',
  'positions',
  'acks',
] as const;
export type NodeChannel = (typeof NODE_CHANNELS)[number];

export const MARKET_CHANNELS = ['seal', 'moves', 'deliveries'] as const;
export type MarketChannel = (typeof MARKET_CHANNELS)[number];

export type ParsedTopic =
  | { readonly kind: 'node'; readonly chainId: number; readonly address: string; readonly channel: NodeChannel }
  | { readonly kind: 'dso-headers'; readonly chainId: number }
  | { readonly kind: 'dso-receipts'; readonly chainId: number; readonly address: string }
  | { readonly kind: 'dso-messages'; readonly chainId: number; readonly address: string }
  | { readonly kind: 'dso-adjustments'; readonly chainId: number; readonly address: string }
  | { readonly kind: 'dso-authorized'; readonly chainId: number }
  | { readonly kind: 'market'; readonly chainId: number; readonly interval: number; readonly rest: readonly string[] }
  | { readonly kind: 'unknown'; readonly topic: string; readonly reason: string };

export class TopicError extends Error {
  override name = 'TopicError';
}

const SEGMENT_RE = /^[a-z0-9_.-]{1,64}$/;
const ADDRESS_SEGMENT_RE = /^0x[0-9a-f]{40}$/;
const INTEGER_SEGMENT_RE = /^(0|[1-9][0-9]{0,15})$/;

/** Builds the topics of one chain. Every builder validates its inputs and throws a TopicError saying which is wrong. */
export class LinkTopics {
  readonly prefix: string;

  constructor(readonly chainId: number) {
    if (!Number.isSafeInteger(chainId) || chainId < 0) {
      throw new TopicError(`chain id ${chainId} is not a non-negative integer (config chainId)`);
    }
    this.prefix = `${TOPIC_ROOT}/${chainId}`;
  }

  node(address: string, channel: NodeChannel): string {
    return `${this.prefix}/node/${addressSegment(address)}/${nodeChannel(channel)}`;
  }

  dsoHeaders(): string {
    return `${this.prefix}/dso/headers`;
  }

  dsoReceipts(address: string): string {
    return `${this.prefix}/dso/receipts/${addressSegment(address)}`;
  }

  dsoMessages(address: string): string {
    return `${this.prefix}/dso/messages/${addressSegment(address)}`;
  }

  dsoAuthorized(): string {
    return `${this.prefix}/dso/authorized`;
  }

  /** Encrypted adjustment contracts for one MGMC (a topic of its own, so nothing else on it has to be decrypted). */
  dsoAdjustments(address: string): string {
    return `${this.prefix}/dso/adjustments/${addressSegment(address)}`;
  }

  /** Reserved for the market: `market/{interval}/{...rest}` with interval in ms since the epoch. */
  market(interval: number, ...rest: string[]): string {
    return [`${this.prefix}/market/${integerSegment(interval, 'market interval')}`, ...rest.map(segment)].join('/');
  }

  /** Subscription filter over one market channel of every interval: `market/+/{channel}`. */
  marketFilter(channel: MarketChannel): string {
    if (!MARKET_CHANNELS.includes(channel)) {
      throw new TopicError(`market channel ${JSON.stringify(channel)} is not one of ${MARKET_CHANNELS.join(', ')}`);
    }
    return `${this.prefix}/market/+/${channel}`;
  }

  /** Subscription filter over every MGMC's `channel` (or all channels with '#'); one MGMC when `address` is given. */
  nodeFilter(channel: NodeChannel | '#', address?: string): string {
    const who = address === undefined ? '+' : addressSegment(address);
    return `${this.prefix}/node/${who}/${channel === '#' ? '#' : nodeChannel(channel)}`;
  }

  /** Filter over everything the DSO publishes to one MGMC and to all (headers, authorized, its receipts, messages). */
  dsoFilter(): string {
    return `${this.prefix}/dso/#`;
  }

  /** MQTT 5 shared subscription `$share/{group}/{filter}`: the broker hands each message to one group member. */
  shared(group: string, filter: string): string {
    validateFilter(filter);
    if (filter.startsWith('$share/')) throw new TopicError(`${filter} is already a shared subscription`);
    return `$share/${segment(group)}/${filter}`;
  }
}

/** Tells what a received topic is; anything outside the namespace is `unknown` with the reason. Never throws. */
export function parseTopic(topic: string): ParsedTopic {
  const unknown = (reason: string): ParsedTopic => ({ kind: 'unknown', topic, reason });
  if (typeof topic !== 'string' || topic.length === 0) return unknown('empty topic');
  const levels = topic.split('/');
  if (levels[0] !== 'mgmc' || levels[1] !== 'v1') return unknown(`not under ${TOPIC_ROOT}/`);
  const chainText = levels[2] ?? '';
  if (!INTEGER_SEGMENT_RE.test(chainText) || !Number.isSafeInteger(Number(chainText))) {
    return unknown(`chain id level ${JSON.stringify(chainText)} is not a decimal integer`);
  }
  const chainId = Number(chainText);
  const area = levels[3];
  const rest = levels.slice(4);
  const address = (text: string | undefined): string | undefined =>
    text !== undefined && ADDRESS_SEGMENT_RE.test(text) ? text : undefined;
  if (area === 'node') {
    const who = address(rest[0]);
    if (who === undefined) return unknown(`node level ${JSON.stringify(rest[0] ?? '')} is not a lower-case address`);
    const channel = rest[1] as NodeChannel;
    if (rest.length !== 2 || !NODE_CHANNELS.includes(channel)) {
      return unknown(
        `node channel ${JSON.stringify(rest.slice(1).join('/'))} is not one of ${NODE_CHANNELS.join(', ')}`,
      );
    }
    return { kind: 'node', chainId, address: who, channel };
  }
  if (area === 'dso') {
    const [what, who, ...extra] = rest;
    if (what === 'headers' && rest.length === 1) return { kind: 'dso-headers', chainId };
    if (what === 'authorized' && rest.length === 1) return { kind: 'dso-authorized', chainId };
    if ((what === 'receipts' || what === 'messages' || what === 'adjustments') && extra.length === 0) {
      const addr = address(who);
      if (addr === undefined)
        return unknown(`dso/${what} level ${JSON.stringify(who ?? '')} is not a lower-case address`);
      const kind = what === 'receipts' ? 'dso-receipts' : what === 'messages' ? 'dso-messages' : 'dso-adjustments';
      return { kind, chainId, address: addr };
    }
    return unknown(
      `dso/${rest.join('/')} is not a DSO topic (headers, authorized, receipts/{address}, messages/{address}, ` +
        'adjustments/{address})',
    );
  }
  if (area === 'market') {
    const [intervalText, ...tail] = rest;
    if (intervalText === undefined || !INTEGER_SEGMENT_RE.test(intervalText)) {
      return unknown(`market interval level ${JSON.stringify(intervalText ?? '')} is not a decimal integer`);
    }
    if (tail.some((s) => !SEGMENT_RE.test(s))) return unknown('market topic has an empty or invalid level');
    return { kind: 'market', chainId, interval: Number(intervalText), rest: tail };
  }
  return unknown(`area ${JSON.stringify(area ?? '')} is not node, dso or market`);
}

/** Throws a TopicError unless `topic` is a concrete topic one may publish to (no wildcards, no $-topics, no empty level). */
export function assertPublishTopic(topic: string): void {
  if (typeof topic !== 'string' || topic.length === 0) throw new TopicError('cannot publish to an empty topic');
  if (topic.includes('+') || topic.includes('#')) {
    throw new TopicError(`cannot publish to ${topic}: it contains a wildcard (+ or #); publish to one concrete topic`);
  }
  if (topic.startsWith('$'))
    throw new TopicError(`cannot publish to ${topic}: topics starting with $ are the broker's`);
  if (topic.includes('\u0000')) throw new TopicError(`cannot publish to ${JSON.stringify(topic)}: it contains NUL`);
  if (topic.split('/').some((level) => level === '')) {
    throw new TopicError(`cannot publish to ${topic}: it has an empty level (leading, trailing or double /)`);
  }
}

/** Throws a TopicError unless `filter` is a valid MQTT subscription filter (optionally `$share/{group}/...`). */
export function validateFilter(filter: string): void {
  if (typeof filter !== 'string' || filter.length === 0) throw new TopicError('empty subscription filter');
  const { inner } = splitShared(filter);
  if (inner.length === 0) throw new TopicError(`subscription filter ${filter} has no topic after $share/{group}/`);
  const levels = inner.split('/');
  levels.forEach((level, i) => {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      throw new TopicError(`subscription filter ${filter}: # must be a whole level and the last one`);
    }
    if (level.includes('+') && level !== '+') {
      throw new TopicError(`subscription filter ${filter}: + must be a whole level`);
    }
  });
}

/** True when `topic` matches the subscription `filter` (MQTT rules; a `$share/{group}/` prefix is ignored). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = splitShared(filter).inner.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

function splitShared(filter: string): { group?: string; inner: string } {
  if (!filter.startsWith('$share/')) return { inner: filter };
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) throw new TopicError(`shared subscription ${filter} must be $share/{group}/{filter}`);
  return { group: rest.slice(0, slash), inner: rest.slice(slash + 1) };
}

function segment(text: string): string {
  if (typeof text !== 'string' || !SEGMENT_RE.test(text)) {
    throw new TopicError(
      `topic level ${JSON.stringify(text)} is not allowed: use 1-64 of a-z 0-9 _ . - (lower case; no /, + or #)`,
    );
  }
  return text;
}

function addressSegment(address: string): string {
  try {
    return parseAddress(address, 'topic address').toLowerCase();
  } catch (err) {
    throw new TopicError((err as Error).message);
  }
}

function integerSegment(value: number, what: string): string {
  if (!Number.isSafeInteger(value) || value < 0) throw new TopicError(`${what} ${value} is not a non-negative integer`);
  return String(value);
}

function nodeChannel(channel: NodeChannel): NodeChannel {
  if (!NODE_CHANNELS.includes(channel)) {
    throw new TopicError(`node channel ${JSON.stringify(channel)} is not one of ${NODE_CHANNELS.join(', ')}`);
  }
  return channel;
}
