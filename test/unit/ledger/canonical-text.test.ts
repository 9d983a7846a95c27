import { describe, expect, it } from 'vitest';
import { type CanonicalValue, canonicalize } from '../../../agent/ledger/canonical.js';
import { canonicalText, inCanonicalShape } from '../../../agent/ledger/canonical-text.js';
import { seededRandom } from '../../../agent/ledger/synthetic.js';

/** canonicalize's result or its error message, to compare both outcomes. */
function outcome(f: () => string): { text: string } | { error: string } {
  try {
    return { text: f() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const same = (value: unknown) =>
  expect(outcome(() => canonicalText(value as CanonicalValue))).toEqual(
    outcome(() => canonicalize(value as CanonicalValue)),
  );

describe('canonicalText', () => {
  it('takes the native path for sorted, integer-only values and writes canonical text', () => {
    const record = JSON.parse(
      '{"body":{"device":"pv1","point":"W","t":1767225600000,"unit":"W","value":-1200},"seq":7,"time":1767225600000,"type":"reading"}',
    ) as CanonicalValue;
    expect(inCanonicalShape(record)).toBe(true);
    same(record);
    const nested = JSON.parse('{"a":[1,{"b":null,"c":[true,false,"x\\u0000\\n\\"é😀"]}],"z":{}}') as CanonicalValue;
    expect(inCanonicalShape(nested)).toBe(true);
    same(nested);
  });

  it('falls back, with the same text or the same error, for everything the native writer would get wrong', () => {
    const awkward: unknown[] = [
      { b: 1, a: 2 }, // unsorted: canonicalize sorts
      { '10': 1, '9': 2 }, // integer-like keys: JavaScript enumerates 9 before 10, canonical order is "10" < "9"
      { a: 1.5 }, // float: refused
      { a: 2 ** 53 }, // unsafe integer: refused
      { a: -0 }, // written 0 by both
      { a: undefined, b: 1 }, // undefined members are omitted
      [1, undefined], // undefined array items are refused
      { a: '\ud800' }, // lone surrogate: refused
      { '\udc00': 1 }, // lone surrogate in a key: refused
      new Date(0), // not a plain object: refused
      { a: new Map() },
      Object.assign(Object.create(null), { b: 1, a: 2 }) as object,
      { a: () => 1 },
      { toJSON: () => 'x' },
      Object.assign([1, 2], { toJSON: () => 'x' }),
      { a: 1n },
      { aa: 1, a: 2, B: 3, é: 4, Z: 5 },
    ];
    for (const value of awkward) same(value);
  });

  it('agrees with canonicalize on random JSON values', () => {
    const random = seededRandom(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
    const keys = ['a', 'b', 'B', 'aa', '1', '10', '2', 'é', 'z', 'seq', 'body', '_', ''];
    const value = (depth: number): unknown => {
      const r = random();
      if (depth > 3 || r < 0.3) {
        return pick<unknown>([0, -1, 42, 2 ** 53 - 1, -(2 ** 53 - 1), 1.25, 'text', '', 'q"\\\n', true, false, null]);
      }
      if (r < 0.6) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      const out: Record<string, unknown> = {};
      for (let i = Math.floor(random() * 5); i > 0; i--) out[pick(keys)] = value(depth + 1);
      return out;
    };
    for (let i = 0; i < 2000; i++) {
      const v = value(0);
      same(v);
      // The same value in sorted order (as parsed from canonical text) takes the native path when it can.
      const parsed = outcome(() => canonicalize(v as CanonicalValue));
      if ('text' in parsed) same(JSON.parse(parsed.text));
    }
  });
});
