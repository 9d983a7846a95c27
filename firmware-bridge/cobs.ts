/**
 * Consistent Overhead Byte Stuffing (Cheshire and Baker, IEEE/ACM Transactions on Networking 7(2), 1999).
 *
 * COBS rewrites a byte string so that it contains no 0x00, at a cost of one byte per started run of 254 bytes (at most
 * ceil(n / 254) bytes, and 1 byte for an empty input), which leaves 0x00 free to delimit frames on the wire. A receiver
 * that lost synchronisation (noise, a reset mid-frame, a cable plugged in mid-stream) is back in step at the next 0x00.
 *
 * Encoding: the output is a sequence of blocks; each starts with a code byte c (1..255) followed by c − 1 non-zero data
 * bytes. A block with c < 255 stands for its data followed by one 0x00; c = 255 stands for 254 data bytes and no zero.
 * The zero implied by the last block is not part of the message (the encoder appended it conceptually).
 */

/** Largest number of bytes COBS can produce from `n` input bytes (the delimiter not included). */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.max(1, Math.ceil(n / 254));
}

/**
 * COBS-encodes `data`. The result contains no 0x00 and does not include the frame delimiter.
 * Vectors: [] → 01; 00 → 01 01; 11 22 00 33 → 03 11 22 02 33; 11 00 00 → 02 11 01 01.
 */
export function cobsEncode(data: Uint8Array): Uint8Array {
  // The algorithm of the Wikipedia reference implementation: a run of 254 non-zero bytes that ends the input is
  // not followed by an empty 0x01 block, so the output is the shortest encoding (the decoder accepts both).
  const out = new Uint8Array(cobsMaxEncodedLength(data.length));
  let codeAt = 0;
  let code = 1;
  let o = 1;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i] as number;
    if (byte !== 0) {
      out[o++] = byte;
      code++;
    }
    if (byte === 0 || code === 0xff) {
      out[codeAt] = code;
      code = 1;
      codeAt = o;
      if (byte === 0 || i < data.length - 1) o++;
    }
  }
  if (codeAt < o) out[codeAt] = code;
  return out.slice(0, o);
}

/** Why COBS input could not be decoded. */
export class CobsError extends Error {
  constructor(
    message: string,
    /** 'zero' when the input holds a 0x00 (a delimiter inside a frame), 'truncated' when a block runs past the end. */
    readonly kind: 'zero' | 'truncated' | 'empty',
  ) {
    super(message);
    this.name = 'CobsError';
  }
}

/**
 * Decodes one COBS-encoded frame (without its 0x00 delimiter). Throws a CobsError when the input is empty, contains
 * 0x00, or a block's code byte announces more bytes than remain (the frame was cut short).
 * Vectors: 01 → []; 03 11 22 02 33 → 11 22 00 33.
 */
export function cobsDecode(encoded: Uint8Array): Uint8Array {
  if (encoded.length === 0) throw new CobsError('COBS frame is empty (no code byte)', 'empty');
  const out = new Uint8Array(encoded.length);
  let o = 0;
  let i = 0;
  while (i < encoded.length) {
    const code = encoded[i] as number;
    if (code === 0) throw new CobsError(`COBS frame holds a 0x00 at offset ${i} (a delimiter inside a frame)`, 'zero');
    const end = i + code;
    if (end > encoded.length) {
      throw new CobsError(
        `COBS block at offset ${i} announces ${code - 1} data bytes but only ${encoded.length - i - 1} remain (frame cut short)`,
        'truncated',
      );
    }
    for (let j = i + 1; j < end; j++) {
      const byte = encoded[j] as number;
      if (byte === 0)
        throw new CobsError(`COBS frame holds a 0x00 at offset ${j} (a delimiter inside a frame)`, 'zero');
      out[o++] = byte;
    }
    i = end;
    if (code !== 0xff && i < encoded.length) out[o++] = 0;
  }
  return out.slice(0, o);
}
