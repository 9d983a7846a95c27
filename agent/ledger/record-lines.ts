/**
 * A block's records as the DSO stores them: their canonical texts, one per line, in seq order ('\n' never occurs
 * inside canonical JSON, which escapes control characters). Each line is exactly the data of the record's Merkle leaf
 * (docs/protocol.md section 5), so the stored form can be re-served and re-verified against the block's root.
 */
import { hash } from 'node:crypto';

const NEWLINE = 0x0a;
const LEAF_PREFIX = 0x00;
const HASH_SIZE = 32;

/**
 * Joins canonical record texts into the stored lines and computes each record's leaf hash SHA-256(0x00 ‖ line), the
 * same value as merkle.ts's leafHash, without copying any record: the byte before each record (a separator, or one
 * extra byte in front of the first) is set to 0x00 while that record is hashed. Throws when a text holds a newline
 * (it would not be one line; canonical texts never do).
 */
export function recordLines(texts: readonly string[]): { lines: Uint8Array; leaves: Uint8Array[] } {
  for (let i = 0; i < texts.length; i++) {
    if ((texts[i] as string).includes('\n')) throw new Error(`record text ${i} contains a newline`);
  }
  const buffer = Buffer.from(`\n${texts.join('\n')}`, 'utf8');
  // One allocation for every digest; each leaf is a 32-byte view of it.
  const digests = new Uint8Array(HASH_SIZE * texts.length);
  const leaves: Uint8Array[] = new Array(texts.length);
  let start = 1;
  for (let i = 0; i < texts.length; i++) {
    const end = i === texts.length - 1 ? buffer.length : buffer.indexOf(NEWLINE, start);
    buffer[start - 1] = LEAF_PREFIX;
    // 'binary' (latin1) keeps the digest an ordinary heap string: cheaper than a Buffer per leaf (see merkle.ts).
    const digest = hash('sha256', buffer.subarray(start - 1, end), 'binary');
    buffer[start - 1] = NEWLINE;
    const at = i * HASH_SIZE;
    for (let k = 0; k < HASH_SIZE; k++) digests[at + k] = digest.charCodeAt(k);
    leaves[i] = digests.subarray(at, at + HASH_SIZE);
    start = end + 1;
  }
  return { lines: buffer.subarray(1), leaves };
}

/** Splits stored lines back into the canonical bytes of each record (views into `lines`, no copies). */
export function splitRecordLines(lines: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (;;) {
    const end = lines.indexOf(NEWLINE, start);
    if (end === -1) {
      out.push(lines.subarray(start));
      return out;
    }
    out.push(lines.subarray(start, end));
    start = end + 1;
  }
}
