import { describe, expect, it } from 'vitest';
import { toHex } from '../../../agent/identity/bytes.js';
import { canonicalize } from '../../../agent/ledger/canonical.js';
import { leafHash } from '../../../agent/ledger/merkle.js';
import { recordLines, splitRecordLines } from '../../../agent/ledger/record-lines.js';

const texts = [
  canonicalize({ body: { device: 'pv1', point: 'W', t: 1, unit: 'W', value: 5 }, seq: 1, time: 2, type: 'reading' }),
  canonicalize({ body: { kind: 'x', message: 'line\nbreak é 😀', source: 's' }, seq: 2, time: 2, type: 'event' }),
  '{}',
  canonicalize({ body: { a: '' }, seq: 4, time: 0, type: 'event' }),
];

describe('recordLines', () => {
  it('joins the texts as UTF-8 lines and hashes each line as its Merkle leaf', () => {
    const { lines, leaves } = recordLines(texts);
    expect(Buffer.from(lines).toString('utf8')).toBe(texts.join('\n'));
    const split = splitRecordLines(lines);
    expect(split.map((l) => Buffer.from(l).toString('utf8'))).toEqual(texts);
    expect(leaves.map(toHex)).toEqual(split.map((l) => toHex(leafHash(l))));
    // The separators are restored after hashing in place.
    expect(lines.filter((b) => b === 0).length).toBe(0);
  });

  it('handles one record and refuses a text that is not one line', () => {
    const { lines, leaves } = recordLines(['{"a":1}']);
    expect(Buffer.from(lines).toString()).toBe('{"a":1}');
    expect(toHex(leaves[0] as Uint8Array)).toBe(toHex(leafHash(lines)));
    expect(() => recordLines(['{"a":1}', '{"a":\n1}'])).toThrow(/newline/);
  });
});
