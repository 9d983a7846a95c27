/** Byte helpers shared by identity and ledger code: 0x-prefixed lower-case hex is the only text form of bytes we emit. */

const HEX_RE = /^0x([0-9a-fA-F]{2})*$/;

/** Encodes bytes as 0x-prefixed lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}

/**
 * Decodes 0x-prefixed hex. Throws a message naming `what` when the text is not even-length hex, or when
 * `length` is given and the byte count differs.
 */
export function fromHex(text: string, what = 'hex value', length?: number): Uint8Array {
  if (typeof text !== 'string' || !HEX_RE.test(text)) {
    throw new Error(`${what}: expected 0x-prefixed hex with an even number of digits, got ${describe(text)}`);
  }
  const bytes = new Uint8Array(Buffer.from(text.slice(2), 'hex'));
  if (length !== undefined && bytes.length !== length) {
    throw new Error(`${what}: expected ${length} bytes, got ${bytes.length}`);
  }
  return bytes;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

function describe(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  return value.length > 24 ? `"${value.slice(0, 24)}…"` : `"${value}"`;
}
