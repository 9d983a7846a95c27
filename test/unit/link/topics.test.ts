import { describe, expect, it } from 'vitest';
import {
  assertPublishTopic,
  LinkTopics,
  NODE_CHANNELS,
  parseTopic,
  TopicError,
  topicMatches,
  validateFilter,
} from '../../../agent/link/topics.js';

const ADDRESS = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'; // EIP-55's own example
const LOWER = ADDRESS.toLowerCase();
const t = new LinkTopics(7);

describe('LinkTopics: building topics', () => {
  it('puts every topic under mgmc/v1/{chainId} with the address lower-cased', () => {
    expect(t.node(ADDRESS, 'blocks')).toBe(`mgmc/v1/7/node/${LOWER}/blocks`);
    expect(t.node(LOWER, 'availability')).toBe(`mgmc/v1/7/node/${LOWER}/availability`);
    expect(t.dsoHeaders()).toBe('mgmc/v1/7/dso/headers');
    expect(t.dsoReceipts(ADDRESS)).toBe(`mgmc/v1/7/dso/receipts/${LOWER}`);
    expect(t.dsoMessages(ADDRESS)).toBe(`mgmc/v1/7/dso/messages/${LOWER}`);
    expect(t.dsoAuthorized()).toBe('mgmc/v1/7/dso/authorized');
    expect(t.market(1735689600000, 'orders', 'round-3')).toBe('mgmc/v1/7/market/1735689600000/orders/round-3');
  });

  it('builds filters and shared subscriptions for DSO verifiers', () => {
    expect(t.nodeFilter('blocks')).toBe('mgmc/v1/7/node/+/blocks');
    expect(t.nodeFilter('#', ADDRESS)).toBe(`mgmc/v1/7/node/${LOWER}/#`);
    expect(t.dsoFilter()).toBe('mgmc/v1/7/dso/#');
    expect(t.shared('verifiers', t.nodeFilter('blocks'))).toBe('$share/verifiers/mgmc/v1/7/node/+/blocks');
  });

  it('refuses wildcards, slashes, empty and upper-case levels, naming the level', () => {
    for (const bad of ['+', '#', 'a/b', '', 'Orders', 'a b', '$sys']) {
      expect(() => t.market(1, bad), bad).toThrow(TopicError);
    }
    expect(() => t.market(1, 'Orders')).toThrow(/"Orders" is not allowed.*lower case/);
    expect(() => t.shared('Group', 'a/b')).toThrow(TopicError);
    expect(() => t.shared('g', '$share/h/a')).toThrow(/already a shared/);
    expect(() => t.market(-1)).toThrow(/interval -1/);
    expect(() => t.market(1.5)).toThrow(TopicError);
  });

  it('refuses a malformed address or a wrong EIP-55 checksum', () => {
    expect(() => t.node('0x1234', 'blocks')).toThrow(TopicError);
    expect(() => t.node('+', 'blocks')).toThrow(TopicError);
    const typo = `${ADDRESS.slice(0, -1)}D`; // mixed case with a wrong checksum
    expect(() => t.dsoReceipts(typo)).toThrow(/checksum/);
  });

  it('refuses an unknown node channel and a bad chain id', () => {
    expect(() => t.node(ADDRESS, 'secrets' as never)).toThrow(/not one of birth/);
    expect(() => new LinkTopics(-1)).toThrow(TopicError);
    expect(() => new LinkTopics(1.5)).toThrow(TopicError);
  });
});

describe('parseTopic', () => {
  it('round-trips every topic a builder makes', () => {
    for (const channel of NODE_CHANNELS) {
      expect(parseTopic(t.node(ADDRESS, channel))).toEqual({ kind: 'node', chainId: 7, address: LOWER, channel });
    }
    expect(parseTopic(t.dsoHeaders())).toEqual({ kind: 'dso-headers', chainId: 7 });
    expect(parseTopic(t.dsoAuthorized())).toEqual({ kind: 'dso-authorized', chainId: 7 });
    expect(parseTopic(t.dsoReceipts(ADDRESS))).toEqual({ kind: 'dso-receipts', chainId: 7, address: LOWER });
    expect(parseTopic(t.dsoMessages(ADDRESS))).toEqual({ kind: 'dso-messages', chainId: 7, address: LOWER });
    expect(parseTopic(t.market(900000, 'bids'))).toEqual({
      kind: 'market',
      chainId: 7,
      interval: 900000,
      rest: ['bids'],
    });
    expect(parseTopic(new LinkTopics(0).dsoHeaders())).toEqual({ kind: 'dso-headers', chainId: 0 });
  });

  it('tells what is wrong with a topic outside the namespace, and never throws', () => {
    const reasons: Record<string, RegExp> = {
      '': /empty/,
      'other/v1/7/dso/headers': /not under mgmc\/v1/,
      'mgmc/v2/7/dso/headers': /not under mgmc\/v1/,
      'mgmc/v1/07/dso/headers': /chain id/,
      'mgmc/v1/x/dso/headers': /chain id/,
      [`mgmc/v1/7/node/${ADDRESS}/blocks`]: /lower-case address/,
      [`mgmc/v1/7/node/${LOWER}/secrets`]: /not one of/,
      [`mgmc/v1/7/node/${LOWER}/blocks/extra`]: /not one of/,
      'mgmc/v1/7/node/+/blocks': /lower-case address/,
      'mgmc/v1/7/dso/receipts': /lower-case address/,
      'mgmc/v1/7/dso/headers/x': /not a DSO topic/,
      'mgmc/v1/7/market/soon/bids': /interval/,
      'mgmc/v1/7/market/1//bids': /invalid level/,
      'mgmc/v1/7/weather': /not node, dso or market/,
    };
    for (const [topic, reason] of Object.entries(reasons)) {
      const parsed = parseTopic(topic);
      expect(parsed.kind, topic).toBe('unknown');
      if (parsed.kind === 'unknown') expect(parsed.reason, topic).toMatch(reason);
    }
    expect(parseTopic(undefined as unknown as string).kind).toBe('unknown');
  });
});

describe('assertPublishTopic and filters', () => {
  it('refuses to publish to a wildcard, a $ topic or an empty level', () => {
    expect(() => assertPublishTopic(t.dsoHeaders())).not.toThrow();
    expect(() => assertPublishTopic(t.nodeFilter('blocks'))).toThrow(/wildcard/);
    expect(() => assertPublishTopic('mgmc/v1/7/#')).toThrow(/wildcard/);
    expect(() => assertPublishTopic('$SYS/broker')).toThrow(/\$/);
    expect(() => assertPublishTopic('mgmc//x')).toThrow(/empty level/);
    expect(() => assertPublishTopic('mgmc/x/')).toThrow(/empty level/);
    expect(() => assertPublishTopic('')).toThrow(/empty topic/);
  });

  it('validates filters, including shared subscriptions', () => {
    expect(() => validateFilter('a/+/c/#')).not.toThrow();
    expect(() => validateFilter('$share/g/a/+')).not.toThrow();
    expect(() => validateFilter('a/#/c')).toThrow(/last/);
    expect(() => validateFilter('a/b#')).toThrow(/whole level/);
    expect(() => validateFilter('a/b+/c')).toThrow(/whole level/);
    expect(() => validateFilter('$share/g')).toThrow(TopicError);
    expect(() => validateFilter('$share//a')).toThrow(TopicError);
    expect(() => validateFilter('')).toThrow(TopicError);
  });

  it('matches topics against filters as a broker does', () => {
    const topic = t.node(ADDRESS, 'blocks');
    expect(topicMatches(t.nodeFilter('blocks'), topic)).toBe(true);
    expect(topicMatches(t.nodeFilter('#', ADDRESS), topic)).toBe(true);
    expect(topicMatches(t.shared('v', t.nodeFilter('blocks')), topic)).toBe(true);
    expect(topicMatches(t.nodeFilter('birth'), topic)).toBe(false);
    expect(topicMatches('mgmc/v1/7/node/+', topic)).toBe(false);
    expect(topicMatches('mgmc/#', 'mgmc')).toBe(true);
    expect(topicMatches('#', '$SYS/x')).toBe(false);
    expect(topicMatches('a/b/c', 'a/b')).toBe(false);
  });
});
