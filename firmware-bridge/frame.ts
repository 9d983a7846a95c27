/**
 * Frames on the serial line: frame = COBS(body ‖ crc16be(body)) ‖ 0x00.
 *
 * `body` is one message (messages.ts); the CRC is CRC-16/CCITT-FALSE (crc16.ts) over the body, appended high byte
 * first. Senders write one extra 0x00 before each frame (an empty frame, ignored by receivers) so that garbage or a
 * frame cut short before it is closed off on its own and costs only itself. `FrameDecoder` takes the byte stream in
 * chunks of any size and never throws on bad input: it counts and reports each bad frame and carries on at the next
 * 0x00.
 */
import { CobsError, cobsDecode, cobsEncode, cobsMaxEncodedLength } from './cobs.js';
import { crc16 } from './crc16.js';

/** Default largest body (message) a frame may carry, CRC not included. */
export const DEFAULT_MAX_BODY_BYTES = 1024;
/** The frame delimiter. */
export const FRAME_DELIMITER = 0x00;

/**
 * Encodes one frame: COBS(body ‖ crc16be(body)) ‖ 0x00, without the leading 0x00 a sender writes before it (see
 * `encodeFrameForWire`). Throws when the body is empty or longer than `maxBodyBytes`.
 * Vector: body 01 02 03 → crc 0xADAD → 06 01 02 03 AD AD 00.
 */
export function encodeFrame(body: Uint8Array, maxBodyBytes = DEFAULT_MAX_BODY_BYTES): Uint8Array {
  if (body.length === 0) throw new Error('a frame body must not be empty');
  if (body.length > maxBodyBytes) {
    throw new Error(`frame body of ${body.length} bytes exceeds the limit of ${maxBodyBytes} bytes`);
  }
  const withCrc = new Uint8Array(body.length + 2);
  withCrc.set(body, 0);
  const crc = crc16(body);
  withCrc[body.length] = crc >> 8;
  withCrc[body.length + 1] = crc & 0xff;
  const encoded = cobsEncode(withCrc);
  const out = new Uint8Array(encoded.length + 1);
  out.set(encoded, 0);
  out[encoded.length] = FRAME_DELIMITER;
  return out;
}

/** What a sender writes: 0x00 ‖ encodeFrame(body). The leading delimiter resynchronises the receiver. */
export function encodeFrameForWire(body: Uint8Array, maxBodyBytes = DEFAULT_MAX_BODY_BYTES): Uint8Array {
  const frame = encodeFrame(body, maxBodyBytes);
  const out = new Uint8Array(frame.length + 1);
  out.set(frame, 1);
  return out;
}

/**
 * Decodes one complete frame (with or without its trailing 0x00) to its body. Throws a FrameError on a bad CRC, a
 * frame too short to hold a CRC and one body byte, malformed COBS or an oversized body.
 */
export function decodeFrame(frame: Uint8Array, maxBodyBytes = DEFAULT_MAX_BODY_BYTES): Uint8Array {
  const end = frame.length > 0 && frame[frame.length - 1] === FRAME_DELIMITER ? frame.length - 1 : frame.length;
  const result = checkFrame(frame.subarray(0, end), maxBodyBytes);
  if (result instanceof FrameError) throw result;
  return result;
}

/** Why a frame was dropped. */
export type FrameErrorKind =
  /** The CRC over the body does not match the two CRC bytes. */
  | 'crc'
  /** More bytes than the largest allowed frame arrived before a delimiter; they were dropped up to the next 0x00. */
  | 'oversized'
  /** The frame ended before its COBS blocks did, or holds fewer than 3 bytes (one body byte and the CRC). */
  | 'truncated';

/** A frame that could not be decoded. */
export class FrameError extends Error {
  constructor(
    readonly kind: FrameErrorKind,
    message: string,
    /** Encoded length of the bad frame in bytes (for 'oversized': bytes dropped). */
    readonly length: number,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Counts kept by a FrameDecoder since it was made. */
export interface FrameStats {
  /** Frames decoded with a good CRC. */
  frames: number;
  /** Frames dropped for a bad CRC. */
  crc: number;
  /** Frames dropped for being longer than the limit. */
  oversized: number;
  /** Frames dropped for being cut short (COBS ran past the delimiter, or too short to hold a CRC). */
  truncated: number;
  /** All bytes received, delimiters included. */
  bytes: number;
  /** Bytes that belonged to frames that were dropped. */
  discardedBytes: number;
}

/** Options of a FrameDecoder. */
export interface FrameDecoderOptions {
  /** Largest body accepted (CRC not included); default 1024. */
  readonly maxBodyBytes?: number;
  /** Called for each good frame's body, in order (also returned by push()). */
  readonly onFrame?: (body: Uint8Array) => void;
  /** Called for each dropped frame. */
  readonly onError?: (error: FrameError) => void;
}

/**
 * Streaming frame decoder. push() takes any chunk of received bytes and returns the bodies of the frames it
 * completed; bad frames are counted in `stats`, reported to `onError` and skipped. It never throws on bad input, and its
 * memory is bounded by the largest allowed frame.
 */
export class FrameDecoder {
  readonly stats: FrameStats = { frames: 0, crc: 0, oversized: 0, truncated: 0, bytes: 0, discardedBytes: 0 };
  private readonly maxBodyBytes: number;
  private readonly maxEncoded: number;
  private readonly buffer: Uint8Array;
  private length = 0;
  /** True while dropping the rest of an oversized frame up to its delimiter. */
  private discarding = false;
  private discarded = 0;

  constructor(private readonly options: FrameDecoderOptions = {}) {
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!Number.isInteger(this.maxBodyBytes) || this.maxBodyBytes < 1) {
      throw new Error(`maxBodyBytes must be a positive integer, got ${this.maxBodyBytes}`);
    }
    this.maxEncoded = cobsMaxEncodedLength(this.maxBodyBytes + 2);
    this.buffer = new Uint8Array(this.maxEncoded);
  }

  /** Feeds received bytes; returns the bodies of the frames completed by them (possibly none). */
  push(chunk: Uint8Array): Uint8Array[] {
    const bodies: Uint8Array[] = [];
    this.stats.bytes += chunk.length;
    let start = 0;
    while (start < chunk.length) {
      const zero = chunk.indexOf(FRAME_DELIMITER, start);
      const end = zero === -1 ? chunk.length : zero;
      this.append(chunk.subarray(start, end));
      if (zero === -1) break;
      this.finish(bodies);
      start = zero + 1;
    }
    return bodies;
  }

  /** The stream ended: a partial frame still buffered is counted as truncated. */
  end(): void {
    if (this.discarding) {
      this.discarding = false;
      this.discarded = 0;
      return;
    }
    if (this.length > 0) {
      const length = this.length;
      this.length = 0;
      this.report(
        new FrameError('truncated', `stream ended inside a frame (${length} bytes without a delimiter)`, length),
      );
    }
  }

  /** Bytes of an incomplete frame currently buffered. */
  get pending(): number {
    return this.length;
  }

  private append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.discarding) {
      this.discarded += bytes.length;
      return;
    }
    if (this.length + bytes.length > this.maxEncoded) {
      this.discarding = true;
      this.discarded = this.length + bytes.length;
      this.length = 0;
      return;
    }
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  private finish(bodies: Uint8Array[]): void {
    if (this.discarding) {
      const dropped = this.discarded;
      this.discarding = false;
      this.discarded = 0;
      this.report(
        new FrameError(
          'oversized',
          `frame longer than ${this.maxEncoded} encoded bytes (body limit ${this.maxBodyBytes}): ${dropped} bytes dropped`,
          dropped,
        ),
      );
      return;
    }
    const length = this.length;
    this.length = 0;
    if (length === 0) return; // an empty frame: the resynchronising 0x00 senders write before each frame
    const result = checkFrame(this.buffer.subarray(0, length), this.maxBodyBytes);
    if (result instanceof FrameError) {
      this.report(result);
      return;
    }
    this.stats.frames++;
    bodies.push(result);
    this.options.onFrame?.(result);
  }

  private report(error: FrameError): void {
    this.stats[error.kind]++;
    this.stats.discardedBytes += error.length;
    this.options.onError?.(error);
  }
}

function checkFrame(encoded: Uint8Array, maxBodyBytes: number): Uint8Array | FrameError {
  let decoded: Uint8Array;
  try {
    decoded = cobsDecode(encoded);
  } catch (err) {
    const reason = err instanceof CobsError ? err.message : String(err);
    return new FrameError('truncated', `frame of ${encoded.length} bytes is not valid COBS: ${reason}`, encoded.length);
  }
  if (decoded.length < 3) {
    return new FrameError(
      'truncated',
      `frame of ${decoded.length} decoded bytes is too short for a body and its 2-byte CRC`,
      encoded.length,
    );
  }
  const bodyLength = decoded.length - 2;
  if (bodyLength > maxBodyBytes) {
    return new FrameError(
      'oversized',
      `frame body of ${bodyLength} bytes exceeds the limit of ${maxBodyBytes} bytes`,
      encoded.length,
    );
  }
  const body = decoded.slice(0, bodyLength);
  const expected = ((decoded[bodyLength] as number) << 8) | (decoded[bodyLength + 1] as number);
  const actual = crc16(body);
  if (expected !== actual) {
    return new FrameError(
      'crc',
      `frame CRC mismatch: frame says 0x${hex4(expected)}, body of ${bodyLength} bytes gives 0x${hex4(actual)}`,
      encoded.length,
    );
  }
  return body;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}
