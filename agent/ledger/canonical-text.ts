/**
 * A fast path to the canonical text of values that are already in canonical shape, such as records parsed from a
 * canonical envelope: keys in sorted order, safe integers, well-formed strings, plain objects. For those,
 * JSON.stringify (native) writes exactly the bytes canonical.ts's `canonicalize` writes, because the canonical rules
 * are JSON.stringify's own for strings and integers, and the only thing `canonicalize` adds is the key sort.
 *
 * `canonicalText` checks that shape in one walk (no sort, no string building) and stringifies natively; anything else
 * (keys out of order, integer-like keys JavaScript reorders, floats, undefined, class instances) goes to
 * `canonicalize`, which sorts or throws as usual. The result is always `canonicalize(value)`;
 * test/unit/ledger/canonical-text.test.ts checks it against `canonicalize` on ordinary and awkward values.
 */
import { type CanonicalValue, canonicalize } from './canonical.js';

/** Exactly `canonicalize(value)` (same text, same errors), about twice as fast when `value` is already sorted. */
export function canonicalText(value: CanonicalValue): string {
  return inCanonicalShape(value) ? JSON.stringify(value) : canonicalize(value);
}

/** True when JSON.stringify(value) is the canonical text of `value`. Conservative: false means "take the slow path". */
export function inCanonicalShape(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed();
    case 'number':
      // JSON.stringify and canonicalize both write -0 as 0 and safe integers in plain decimal.
      return Number.isSafeInteger(value);
    case 'boolean':
      return true;
    case 'object': {
      if (value === null) return true;
      if (Array.isArray(value)) {
        // JSON.stringify would call an array's own toJSON (never there after JSON.parse).
        if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
        for (let i = 0; i < value.length; i++) if (!inCanonicalShape(value[i])) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      // Own enumerable keys in JSON.stringify's order (for-in adds nothing here: the prototype is Object.prototype or
      // null); strictly increasing UTF-16 order is the canonical order, so the two writers agree member by member.
      let previous: string | undefined;
      for (const key of Object.keys(value)) {
        if (previous !== undefined && !(previous < key)) return false;
        if (!key.isWellFormed()) return false;
        const item = (value as Record<string, unknown>)[key];
        // undefined members are omitted by both writers, but take the slow path rather than reason about it.
        if (item === undefined || !inCanonicalShape(item)) return false;
        previous = key;
      }
      return true;
    }
    default:
      return false;
  }
}
