/**
 * Modbus RTU wire facts shared by the client (hardware/) and the simulator (sim/): CRC-16/MODBUS, frame lengths by
 * function code, character and inter-frame times, and a response framer that finds answers in a noisy byte stream.
 */

const CRC_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/**
 * CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF) of `bytes[start, end)`. On the wire the CRC goes low byte first:
 * `01 03 00 00 00 0A` has CRC 0xCDC5, sent as `C5 CD`.
 */
export function crc16Modbus(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ bytes[i]!) & 0xff]!;
  return crc;
}

/** True when the last two bytes of `bytes[start, start+length)` are the CRC (little-endian) of the bytes before. */
export function rtuCrcOk(bytes: Uint8Array, start: number, length: number): boolean {
  if (length < 4 || start + length > bytes.length) return false;
  const crc = crc16Modbus(bytes, start, start + length - 2);
  return bytes[start + length - 2] === (crc & 0xff) && bytes[start + length - 1] === crc >>> 8;
}

/** Appends the CRC (low byte first) to `unit + pdu`: a complete RTU frame. */
export function buildRtuFrame(unit: number, pdu: Uint8Array): Buffer {
  const frame = Buffer.alloc(pdu.length + 3);
  frame[0] = unit;
  frame.set(pdu, 1);
  const crc = crc16Modbus(frame, 0, frame.length - 2);
  frame.writeUInt16LE(crc, frame.length - 2);
  return frame;
}

/**
 * Length of the request frame (unit, PDU, CRC) starting at `bytes[start]`, from its function code: a number when
 * known, `'more'` when more bytes are needed to tell, `'unknown'` for a function code whose length rules we don't know.
 */
export function rtuRequestLength(bytes: Uint8Array, start = 0): number | 'more' | 'unknown' {
  if (bytes.length - start < 2) return 'more';
  const fn = bytes[start + 1]!;
  switch (fn) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 8:
      return 8;
    case 7:
    case 11:
    case 12:
    case 17:
      return 4;
    case 15:
    case 16:
      return bytes.length - start < 7 ? 'more' : 9 + bytes[start + 6]!;
    case 22:
      return 10;
    case 23:
      return bytes.length - start < 11 ? 'more' : 13 + bytes[start + 10]!;
    default:
      return 'unknown';
  }
}

/**
 * Length of the response frame starting at `bytes[start]`: exceptions are 5 bytes; reads carry a byte count;
 * write answers echo address and value/count (8 bytes).
 */
export function rtuResponseLength(bytes: Uint8Array, start = 0): number | 'more' | 'unknown' {
  if (bytes.length - start < 2) return 'more';
  const fn = bytes[start + 1]!;
  if (fn & 0x80) return 5;
  switch (fn) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 23:
      return bytes.length - start < 3 ? 'more' : 5 + bytes[start + 2]!;
    case 5:
    case 6:
    case 15:
    case 16:
      return 8;
    case 22:
      return 10;
    default:
      return 'unknown';
  }
}

/** Time one character occupies on the line: bits per character (11 by the Modbus spec: start, 8 data, parity/stop, stop). */
export function rtuCharTimeMs(baudRate: number, bitsPerChar = 11): number {
  return (bitsPerChar * 1000) / baudRate;
}

/**
 * The silent interval that separates RTU frames: 3.5 characters at the baud rate, fixed at 1.75 ms above 19200 baud
 * (Modbus over Serial Line, 2.5.1.1). 9600 baud: 4.01 ms.
 */
export function rtuInterFrameMs(baudRate: number): number {
  return baudRate > 19200 ? 1.75 : 3.5 * rtuCharTimeMs(baudRate);
}

/** Time `bytes` characters take on the wire; a 125-register read (8 + 255 bytes) at 9600 baud is 301 ms. */
export function rtuWireTimeMs(bytes: number, baudRate: number, bitsPerChar = 11): number {
  return bytes * rtuCharTimeMs(baudRate, bitsPerChar);
}

/**
 * Finds answers to one request in the bytes that arrive on a serial line (or a transparent serial gateway), which may
 * carry noise, the tail of an earlier (late) answer, or answers from other devices. A candidate is a frame whose
 * function code is the request's (or its exception), whose length follows the function code's rules and whose CRC is
 * right; the first such frame from any unit id is handed on (a wrong unit id is then reported by the caller, not
 * hidden as a timeout). Candidates from the requested unit with a wrong CRC are remembered for the error message.
 */
export class RtuResponseFramer {
  private buffer: Buffer = Buffer.alloc(0);
  private fn = -1;
  private unit = -1;
  private waiting = false;
  /** A frame from the requested unit with the right shape but a wrong CRC was seen since the last request. */
  badCrcSeen = false;

  constructor(
    private readonly onFrame: (frame: Buffer) => void,
    private readonly maxBuffer = 1024,
  ) {}

  /** Call with each request frame as it is sent: clears old bytes and sets what to look for. */
  expect(request: Uint8Array): void {
    this.buffer = Buffer.alloc(0);
    this.unit = request[0] ?? -1;
    this.fn = request[1] ?? -1;
    this.waiting = true;
    this.badCrcSeen = false;
  }

  /** Feed received bytes. */
  push(chunk: Uint8Array): void {
    if (!this.waiting) return; // nothing asked: unsolicited bytes are noise
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length > this.maxBuffer) this.buffer = this.buffer.subarray(this.buffer.length - this.maxBuffer);
    const buf = this.buffer;
    for (let i = 0; i + 5 <= buf.length; i++) {
      const fn = buf[i + 1]!;
      if (fn !== this.fn && fn !== (this.fn | 0x80)) continue;
      const length = rtuResponseLength(buf, i);
      if (typeof length !== 'number' || i + length > buf.length) continue;
      if (rtuCrcOk(buf, i, length)) {
        const frame = Buffer.from(buf.subarray(i, i + length));
        this.buffer = Buffer.alloc(0);
        this.waiting = false;
        this.onFrame(frame);
        return;
      }
      if (buf[i] === this.unit) this.badCrcSeen = true;
    }
  }
}
