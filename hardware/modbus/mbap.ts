/**
 * Modbus TCP framing (MBAP header + PDU), pure: request encoding, an incremental response framer for a TCP byte
 * stream, and PDU decoding into registers or a Modbus exception. The TCP bus (client.ts) uses it on a node:net socket;
 * tests check it against byte vectors from the Modbus Messaging on TCP/IP Implementation Guide v1.0b.
 *
 * Why our own and not modbus-serial's TcpPort: that port re-frames every answer as an RTU frame, computes a CRC over
 * it, and hands it to the RTU parser, which checks the CRC again; on a 30-device site that detour cost more than the
 * whole exchange of a minimal client (bench poll).
 */

/** Bytes before the PDU: transaction id, protocol id (0), length, unit id. */
export const MBAP_HEADER_LENGTH = 7;
/** Largest PDU in Modbus (253 bytes), so the largest MBAP length field is 254 (unit id + PDU). */
export const MAX_PDU_LENGTH = 253;

/** One request PDU. Reads are functions 3 and 4; writes are 6 (one register) and 16 (several). */
export type MbapRequest =
  | { readonly fn: 3; readonly start: number; readonly count: number }
  | { readonly fn: 4; readonly start: number; readonly count: number }
  | { readonly fn: 6; readonly start: number; readonly value: number }
  | { readonly fn: 16; readonly start: number; readonly values: readonly number[] };

/**
 * The complete request frame for `request` with transaction id `tid` (0-65535) to `unit`.
 * Example: tid 1, unit 1, read holding 40000+2 → `00 01 00 00 00 06 01 03 9C 40 00 02`.
 */
export function encodeMbapRequest(tid: number, unit: number, request: MbapRequest): Buffer {
  const pduLength = request.fn === 16 ? 6 + 2 * request.values.length : 5;
  const frame = Buffer.allocUnsafe(MBAP_HEADER_LENGTH + pduLength);
  frame.writeUInt16BE(tid & 0xffff, 0);
  frame.writeUInt16BE(0, 2);
  frame.writeUInt16BE(pduLength + 1, 4);
  frame[6] = unit;
  frame[7] = request.fn;
  frame.writeUInt16BE(request.start, 8);
  if (request.fn === 3 || request.fn === 4) frame.writeUInt16BE(request.count, 10);
  else if (request.fn === 6) frame.writeUInt16BE(request.value, 10);
  else {
    frame.writeUInt16BE(request.values.length, 10);
    frame[12] = 2 * request.values.length;
    for (let i = 0; i < request.values.length; i++) frame.writeUInt16BE(request.values[i] as number, 13 + 2 * i);
  }
  return frame;
}

/** One complete frame found in the stream. `pdu` is a view into the received bytes. */
export interface MbapFrame {
  readonly tid: number;
  readonly unit: number;
  readonly pdu: Buffer;
}

/**
 * Cuts a TCP byte stream into MBAP frames. TCP may split a frame over several chunks or put several frames in one;
 * the framer keeps the remainder. A header that cannot be Modbus (protocol id not 0, length outside 2..254) means the
 * stream is out of step or not Modbus at all: `push` throws, and the caller must drop the connection, because no
 * later byte can be trusted to start a frame.
 */
export class MbapFramer {
  private buffer: Buffer | undefined;

  /** Adds received bytes and returns the frames completed by them, in order. */
  push(chunk: Buffer): MbapFrame[] {
    let data = this.buffer === undefined ? chunk : Buffer.concat([this.buffer, chunk]);
    this.buffer = undefined;
    const frames: MbapFrame[] = [];
    let offset = 0;
    while (data.length - offset >= MBAP_HEADER_LENGTH) {
      const protocol = data.readUInt16BE(offset + 2);
      const length = data.readUInt16BE(offset + 4);
      if (protocol !== 0) {
        throw new MbapStreamError(`protocol id ${protocol} instead of 0: the peer does not speak Modbus TCP`);
      }
      if (length < 2 || length > MAX_PDU_LENGTH + 1) {
        throw new MbapStreamError(`MBAP length ${length} is outside 2..254: the stream is out of step`);
      }
      const end = offset + 6 + length;
      if (end > data.length) break;
      frames.push({
        tid: data.readUInt16BE(offset),
        unit: data[offset + 6] as number,
        pdu: data.subarray(offset + MBAP_HEADER_LENGTH, end),
      });
      offset = end;
    }
    if (offset < data.length) {
      // Copy: the rest may be a view into a large socket buffer that would otherwise stay alive.
      data = data.subarray(offset);
      this.buffer = Buffer.from(data);
    }
    return frames;
  }

  /** Forgets a partial frame (after a reconnect). */
  reset(): void {
    this.buffer = undefined;
  }
}

export class MbapStreamError extends Error {
  override name = 'MbapStreamError';
}

/** What an answer PDU means for the request it answers. */
export type MbapAnswer =
  | { readonly ok: true; readonly registers?: number[] }
  | { readonly ok: false; readonly exception: number }
  | { readonly ok: false; readonly malformed: string };

/**
 * Checks an answer PDU against its request: a read gives its registers, a write its confirmation, an exception its
 * code; anything else (other function, wrong byte count, wrong echo) is `malformed` with the reason.
 */
export function decodeMbapAnswer(request: MbapRequest, pdu: Buffer): MbapAnswer {
  const fn = pdu[0];
  if (fn === undefined) return { ok: false, malformed: 'empty PDU' };
  if (fn === (request.fn | 0x80)) {
    const code = pdu[1];
    return code === undefined ? { ok: false, malformed: 'exception without a code' } : { ok: false, exception: code };
  }
  if (fn !== request.fn) return { ok: false, malformed: `answer is function ${fn}, the request was ${request.fn}` };
  if (request.fn === 3 || request.fn === 4) {
    const bytes = pdu[1];
    if (bytes !== 2 * request.count || pdu.length !== 2 + bytes) {
      return {
        ok: false,
        malformed: `expected ${request.count} registers (${2 * request.count} bytes), got byte count ${bytes} in a ${pdu.length}-byte PDU`,
      };
    }
    const registers = new Array<number>(request.count);
    for (let i = 0; i < request.count; i++) registers[i] = (pdu[2 + 2 * i]! << 8) | pdu[3 + 2 * i]!;
    return { ok: true, registers };
  }
  if (pdu.length !== 5) return { ok: false, malformed: `write answer has ${pdu.length} bytes, expected 5` };
  const address = pdu.readUInt16BE(1);
  const second = pdu.readUInt16BE(3);
  if (request.fn === 6) {
    return address === request.start && second === request.value
      ? { ok: true }
      : { ok: false, malformed: `the echo says ${address}=${second}, not what was written` };
  }
  return address === request.start && second === request.values.length
    ? { ok: true }
    : { ok: false, malformed: `the device acknowledged ${address}+${second} instead` };
}
