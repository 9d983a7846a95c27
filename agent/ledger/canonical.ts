/**
 * Canonical encoding of every signed or hashed object (docs/protocol.md, "Canonical encoding").
 *
 * It is the I-JSON subset of RFC 8785 (JSON Canonicalization Scheme) that our data needs: objects with keys sorted by
 * UTF-16 code units, no insignificant whitespace, strings escaped as ECMAScript JSON.stringify does, and numbers that
 * are safe integers only. Floats are refused so that a value never depends on how a platform prints a double; bytes
 * travel as 0x-hex strings. Any RFC 8785 implementation produces the same bytes for our objects.
 */
import { utf8 } from '../identity/bytes.js';

export type CanonicalValue =
  | null
  | boolean
  | number
  | string
  | readonly CanonicalValue[]
  | { readonly [key: string]: CanonicalValue | undefined };

export class CanonicalError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(path === '' ? message : `${path}: ${message}`);
    this.name = 'CanonicalError';
  }
}

/** Canonical text of `value`. Throws CanonicalError naming the field path of the first value it cannot encode. */
export function canonicalize(value: CanonicalValue): string {
  return encode(value, '');
}

export function canonicalBytes(value: CanonicalValue): Uint8Array {
  return utf8(canonicalize(value));
}

/**
 * Parses canonical bytes and refuses anything that is not in canonical form (other key order, whitespace, floats,
 * escapes written differently): two encodings of one object must never both verify.
 */
export function parseCanonical(bytes: Uint8Array | string, what = 'canonical object'): CanonicalValue {
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CanonicalError(`${what} is not valid UTF-8`, '');
  }
  let value: CanonicalValue;
  try {
    value = JSON.parse(text) as CanonicalValue;
  } catch (err) {
    throw new CanonicalError(`${what} is not valid JSON (${(err as Error).message})`, '');
  }
  if (encode(value, '') !== text) throw new CanonicalError(`${what} is not in canonical form`, '');
  return value;
}

function encode(value: CanonicalValue | undefined, path: string): string {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw new CanonicalError('string contains a lone surrogate', path);
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw new CanonicalError(
          `${value} is not a safe integer; signed data carries integer units only (W, Wh, micro-units, ms)`,
          path,
        );
      }
      return Object.is(value, -0) ? '0' : String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          out += encode(value[i], `${path}[${i}]`);
        }
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalError(`a ${proto?.constructor?.name ?? 'non-plain'} object cannot be encoded`, path);
      }
      const record = value as { readonly [key: string]: CanonicalValue | undefined };
      // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 prescribes.
      const keys = Object.keys(record).sort();
      let out = '{';
      let first = true;
      for (const key of keys) {
        const item = record[key];
        if (item === undefined) continue;
        if (!first) out += ',';
        first = false;
        if (!key.isWellFormed()) throw new CanonicalError('key contains a lone surrogate', path);
        out += `${JSON.stringify(key)}:${encode(item, path === '' ? key : `${path}.${key}`)}`;
      }
      return `${out}}`;
    }
    default:
      throw new CanonicalError(`a ${typeof value} cannot be encoded`, path);
  }
}
