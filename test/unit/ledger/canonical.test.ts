import { describe, expect, it } from 'vitest';
import {
  CanonicalError,
  type CanonicalValue,
  canonicalBytes,
  canonicalize,
  parseCanonical,
} from '../../../agent/ledger/canonical.js';

/** Runs `fn` and returns the CanonicalError it throws (fails the test when it throws nothing or something else). */
function canonicalError(fn: () => unknown): CanonicalError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CanonicalError);
    return err as CanonicalError;
  }
  throw new Error('expected a CanonicalError, nothing was thrown');
}

const bad = (value: unknown): CanonicalValue => value as CanonicalValue;

describe('canonicalize: key order', () => {
  it('sorts keys by UTF-16 code units: the sorting example of RFC 8785 §3.2.3', () => {
    // Input and expected member order as in RFC 8785 §3.2.3. The emoji (surrogates D83D DE00) sorts before U+FB33
    // although its code point is larger: UTF-16 code units, not code points, decide.
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const text = canonicalize(input);
    // (JSON.parse would move the integer-like key "1" first, so the order is read from the text itself.)
    const positions = [
      'Carriage Return',
      'One',
      'Control',
      'Latin Small Letter O With Diaeresis',
      'Euro Sign',
      'Emoji: Grinning Face',
      'Hebrew Letter Dalet With Dagesh',
    ].map((name) => text.indexOf(`"${name}"`));
    expect(positions.every((p, i) => p > 0 && (i === 0 || p > (positions[i - 1] as number)))).toBe(true);
    expect(text).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",' +
        '"€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('orders upper case before lower case and shorter prefixes first, independent of insertion order', () => {
    const keys = ['é', '\u20ac', '😀', 'a', 'B', 'aa', 'A', '', '\uffff', 'Z'];
    const expected = ['', 'A', 'B', 'Z', 'a', 'aa', 'é', '\u20ac', '😀', '\uffff'];
    for (const order of [keys, [...keys].reverse()]) {
      const object = Object.fromEntries(order.map((k) => [k, 0]));
      expect(Object.keys(JSON.parse(canonicalize(object)))).toEqual(expected);
    }
  });

  it('sorts nested objects too and keeps array order', () => {
    expect(canonicalize({ z: [{ b: 1, a: 2 }, 3, 'x'], a: { d: null, c: true } })).toBe(
      '{"a":{"c":true,"d":null},"z":[{"a":2,"b":1},3,"x"]}',
    );
  });

  it('does not let integer-like keys jump ahead of other keys (JavaScript enumerates them first)', () => {
    expect(canonicalize({ b: 1, '10': 2, '9': 3, a: 4 })).toBe('{"10":2,"9":3,"a":4,"b":1}');
  });
});

describe('canonicalize: strings', () => {
  const samples = [
    '',
    'plain',
    'quote " and backslash \\ and slash /',
    '\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f',
    '\u007f\u0080\u00ff',
    'line separators \u2028 \u2029',
    'é€😀\ufb33',
    '</script>',
  ];

  it.each(samples)('escapes %j exactly as JSON.stringify does', (s) => {
    expect(canonicalize(s)).toBe(JSON.stringify(s));
    expect(canonicalize({ [s]: s })).toBe(`{${JSON.stringify(s)}:${JSON.stringify(s)}}`);
  });

  it('encodes to UTF-8 bytes (non-ASCII is not \\u-escaped)', () => {
    expect(Buffer.from(canonicalBytes({ k: '€$\u000f\nA' })).toString('hex')).toBe(
      Buffer.from('{"k":"€$\\u000f\\nA"}', 'utf8').toString('hex'),
    );
  });

  it('refuses lone surrogates in values and keys, naming the field', () => {
    expect(canonicalError(() => canonicalize({ a: { b: 'x\ud800y' } })).message).toBe(
      'a.b: string contains a lone surrogate',
    );
    expect(canonicalError(() => canonicalize({ list: ['ok', '\udc00'] })).path).toBe('list[1]');
    expect(canonicalError(() => canonicalize({ a: { '\ud83d': 1 } })).message).toMatch(
      /^a: key contains a lone surrogate/,
    );
    expect(canonicalError(() => canonicalize('\ud800')).message).toBe('string contains a lone surrogate');
  });
});

describe('canonicalize: numbers and other values', () => {
  it('writes safe integers as plain decimals and -0 as 0', () => {
    expect(canonicalize([0, -0, 1, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER])).toBe(
      `[0,0,1,-1,${Number.MAX_SAFE_INTEGER},${Number.MIN_SAFE_INTEGER}]`,
    );
    expect(canonicalize({ a: -0 })).toBe('{"a":0}');
    expect(canonicalize(-0)).toBe('0');
  });

  it.each([
    ['a float', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['an unsafe integer', 2 ** 53],
  ])('refuses %s with the field path', (_name, n) => {
    const err = canonicalError(() => canonicalize({ body: { values: [1, { v: n }] } }));
    expect(err.path).toBe('body.values[1].v');
    expect(err.message).toMatch(/^body\.values\[1\]\.v: .* is not a safe integer/);
    expect(err.message).toContain(String(n));
  });

  it('refuses bigint, undefined in arrays, functions and symbols, naming the path', () => {
    expect(canonicalError(() => canonicalize(bad({ a: { b: 10n } }))).message).toBe('a.b: a bigint cannot be encoded');
    expect(canonicalError(() => canonicalize(bad({ list: [1, undefined] }))).message).toMatch(
      /^list\[1\]: .*undefined/,
    );
    expect(canonicalError(() => canonicalize(bad({ f: () => 1 }))).path).toBe('f');
    expect(canonicalError(() => canonicalize(bad({ s: Symbol('x') }))).path).toBe('s');
    expect(canonicalError(() => canonicalize(bad(undefined))).path).toBe('');
  });

  it('refuses class instances with the class name and the path', () => {
    expect(canonicalError(() => canonicalize(bad({ when: new Date(0) }))).message).toBe(
      'when: a Date object cannot be encoded',
    );
    expect(canonicalError(() => canonicalize(bad({ m: [new Map()] }))).message).toBe(
      'm[0]: a Map object cannot be encoded',
    );
    expect(canonicalError(() => canonicalize(bad({ bytes: new Uint8Array(2) }))).message).toContain(
      'a Uint8Array object cannot be encoded',
    );
    class Reading {
      value = 1;
    }
    expect(canonicalError(() => canonicalize(bad({ r: new Reading() }))).message).toBe(
      'r: a Reading object cannot be encoded',
    );
  });

  it('accepts null-prototype objects like plain ones', () => {
    const o = Object.create(null) as Record<string, CanonicalValue>;
    o.b = 1;
    o.a = 'x';
    expect(canonicalize(o)).toBe('{"a":"x","b":1}');
  });

  it('omits undefined object properties (the object is encoded as if they were absent)', () => {
    expect(canonicalize({ a: undefined, b: 1, c: undefined })).toBe('{"b":1}');
    expect(canonicalize({ a: undefined })).toBe('{}');
    expect(canonicalize({ x: { y: undefined, z: null } })).toBe('{"x":{"z":null}}');
  });

  it('writes literals, empty containers and nesting without whitespace', () => {
    expect(canonicalize([null, true, false, [], {}, [[{}]]])).toBe('[null,true,false,[],{},[[{}]]]');
  });
});

describe('parseCanonical', () => {
  it('accepts canonical input and returns the value', () => {
    const value = { a: 1, b: [true, null, 'x', { c: -5 }], é: '€' };
    const text = canonicalize(value);
    expect(parseCanonical(text)).toEqual(value);
    expect(parseCanonical(canonicalBytes(value))).toEqual(value);
    expect(parseCanonical('0')).toBe(0);
    expect(parseCanonical('"\\u0000"')).toBe('\u0000');
  });

  it.each([
    ['whitespace after a colon', '{"a": 1}'],
    ['whitespace between members', '{"a":1, "b":2}'],
    ['a trailing newline', '{"a":1}\n'],
    ['leading whitespace', ' {"a":1}'],
    ['reordered keys', '{"b":1,"a":2}'],
    ['1.0', '1.0'],
    ['1.0 inside an object', '{"a":1.0}'],
    ['an exponent', '1e2'],
    ['-0', '-0'],
    ['a needless escape', '"\\u0041"'],
    ['an escaped slash', '"\\/"'],
    ['an upper-case \\u escape', '"\\u001F"'],
    ['a duplicate key', '{"a":1,"a":1}'],
  ])('rejects %s', (_name, text) => {
    const err = canonicalError(() => parseCanonical(text, 'test object'));
    expect(err.message).toBe('test object is not in canonical form');
  });

  it('rejects floats inside otherwise canonical text, naming the field', () => {
    expect(canonicalError(() => parseCanonical('{"a":{"b":1.5}}')).message).toMatch(
      /^a\.b: 1\.5 is not a safe integer/,
    );
  });

  it('rejects bytes that are not UTF-8', () => {
    // Today this is a TypeError from TextDecoder, not a CanonicalError naming `what` (see the report).
    expect(() => parseCanonical(new Uint8Array([0x22, 0xff, 0x22]), 'record 5')).toThrow();
  });

  it('rejects text that is not JSON, saying what was expected', () => {
    expect(canonicalError(() => parseCanonical('{"a":', 'block 7')).message).toMatch(/^block 7 is not valid JSON \(/);
  });
});

describe('parseCanonical: byte order mark', () => {
  it('refuses bytes that start with a BOM: a second encoding of the same object must not verify', () => {
    const plain = new TextEncoder().encode('{"a":1}');
    expect(parseCanonical(plain)).toEqual({ a: 1 });
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...plain]);
    expect(() => parseCanonical(withBom)).toThrow(/not valid JSON/);
  });
});
