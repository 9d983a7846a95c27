/**
 * Modbus PDUs (function code + data) for the functions the simulator serves: 3 and 4 (read), 6 (write single),
 * 16 (write multiple), and exception responses; RTU and MBAP framing around them. The CRC lives in
 * hardware/modbus/rtu.ts so the client and the simulator share one implementation.
 */
import { buildRtuFrame, crc16Modbus, rtuCrcOk } from '../../hardware/modbus/rtu.js';
import type { RegisterBank } from './bank.js';

export { buildRtuFrame, crc16Modbus, rtuCrcOk };

/** A request the simulator understands. */
export type ModbusRequest =
  | { readonly fn: 3 | 4; readonly start: number; readonly count: number }
  | { readonly fn: 6; readonly address: number; readonly value: number }
  | { readonly fn: 16; readonly start: number; readonly values: readonly number[] };

/** A parsed request, or the exception a device answers to it (1 unknown function, 3 malformed or bad count). */
export type ParsedRequest =
  | { readonly ok: true; readonly request: ModbusRequest }
  | { readonly ok: false; readonly fn: number; readonly exception: number };

/** A parsed response. */
export type ModbusResponse =
  | { readonly fn: 3 | 4; readonly values: number[] }
  | { readonly fn: 6; readonly address: number; readonly value: number }
  | { readonly fn: 16; readonly start: number; readonly count: number }
  | { readonly fn: number; readonly exception: number };

/** Largest register counts per request (Modbus Application Protocol 1.1b3, 6.3 and 6.12). */
export const MAX_READ_REGISTERS = 125;
export const MAX_WRITE_REGISTERS = 123;

/** The registers a request touches: [start, start + count). */
export function requestRange(request: ModbusRequest): { start: number; count: number } {
  switch (request.fn) {
    case 6:
      return { start: request.address, count: 1 };
    case 16:
      return { start: request.start, count: request.values.length };
    default:
      return { start: request.start, count: request.count };
  }
}

/** Parses a request PDU the way a device does: unknown functions answer 1, wrong counts or lengths answer 3. */
export function parseRequestPdu(pdu: Uint8Array): ParsedRequest {
  const fn = pdu[0] ?? 0;
  const view = Buffer.from(pdu.buffer, pdu.byteOffset, pdu.byteLength);
  switch (fn) {
    case 3:
    case 4: {
      if (pdu.length !== 5) return { ok: false, fn, exception: 3 };
      const start = view.readUInt16BE(1);
      const count = view.readUInt16BE(3);
      if (count < 1 || count > MAX_READ_REGISTERS) return { ok: false, fn, exception: 3 };
      if (start + count > 0x10000) return { ok: false, fn, exception: 2 };
      return { ok: true, request: { fn, start, count } };
    }
    case 6: {
      if (pdu.length !== 5) return { ok: false, fn, exception: 3 };
      return { ok: true, request: { fn, address: view.readUInt16BE(1), value: view.readUInt16BE(3) } };
    }
    case 16: {
      if (pdu.length < 6) return { ok: false, fn, exception: 3 };
      const start = view.readUInt16BE(1);
      const count = view.readUInt16BE(3);
      const bytes = pdu[5]!;
      if (count < 1 || count > MAX_WRITE_REGISTERS || bytes !== count * 2 || pdu.length !== 6 + bytes) {
        return { ok: false, fn, exception: 3 };
      }
      if (start + count > 0x10000) return { ok: false, fn, exception: 2 };
      const values: number[] = [];
      for (let i = 0; i < count; i++) values.push(view.readUInt16BE(6 + 2 * i));
      return { ok: true, request: { fn, start, values } };
    }
    default:
      return { ok: false, fn: fn & 0x7f, exception: 1 };
  }
}

/** Builds the request PDU (what a client sends). */
export function buildRequestPdu(request: ModbusRequest): Buffer {
  if (request.fn === 6) {
    const pdu = Buffer.alloc(5);
    pdu[0] = 6;
    pdu.writeUInt16BE(request.address, 1);
    pdu.writeUInt16BE(request.value, 3);
    return pdu;
  }
  if (request.fn === 16) {
    const n = request.values.length;
    const pdu = Buffer.alloc(6 + 2 * n);
    pdu[0] = 16;
    pdu.writeUInt16BE(request.start, 1);
    pdu.writeUInt16BE(n, 3);
    pdu[5] = 2 * n;
    request.values.forEach((v, i) => {
      pdu.writeUInt16BE(v, 6 + 2 * i);
    });
    return pdu;
  }
  const pdu = Buffer.alloc(5);
  pdu[0] = request.fn;
  pdu.writeUInt16BE(request.start, 1);
  pdu.writeUInt16BE(request.count, 3);
  return pdu;
}

/** An exception response: function code with the high bit set, then the code. */
export function buildExceptionPdu(fn: number, code: number): Buffer {
  return Buffer.from([(fn | 0x80) & 0xff, code & 0xff]);
}

/** The normal response to `request`: the registers read, or the echo of a write. */
export function buildResponsePdu(request: ModbusRequest, values?: readonly number[]): Buffer {
  switch (request.fn) {
    case 3:
    case 4: {
      const regs = values ?? [];
      const pdu = Buffer.alloc(2 + 2 * regs.length);
      pdu[0] = request.fn;
      pdu[1] = 2 * regs.length;
      regs.forEach((v, i) => {
        pdu.writeUInt16BE(v & 0xffff, 2 + 2 * i);
      });
      return pdu;
    }
    case 6:
      return buildRequestPdu(request);
    case 16: {
      const pdu = Buffer.alloc(5);
      pdu[0] = 16;
      pdu.writeUInt16BE(request.start, 1);
      pdu.writeUInt16BE(request.values.length, 3);
      return pdu;
    }
  }
}

/** Parses a response PDU; throws on a malformed one. */
export function parseResponsePdu(pdu: Uint8Array): ModbusResponse {
  const fn = pdu[0];
  if (fn === undefined) throw new Error('empty PDU');
  const view = Buffer.from(pdu.buffer, pdu.byteOffset, pdu.byteLength);
  if (fn & 0x80) {
    if (pdu.length !== 2) throw new Error(`exception response must be 2 bytes, got ${pdu.length}`);
    return { fn: fn & 0x7f, exception: pdu[1]! };
  }
  if (fn === 3 || fn === 4) {
    const bytes = pdu[1] ?? -1;
    if (bytes < 0 || bytes % 2 !== 0 || pdu.length !== 2 + bytes) {
      throw new Error(`read response byte count ${bytes} does not match its length ${pdu.length}`);
    }
    const values: number[] = [];
    for (let i = 0; i < bytes / 2; i++) values.push(view.readUInt16BE(2 + 2 * i));
    return { fn, values };
  }
  if (fn === 6 || fn === 16) {
    if (pdu.length !== 5) throw new Error(`function ${fn} response must be 5 bytes, got ${pdu.length}`);
    return fn === 6
      ? { fn, address: view.readUInt16BE(1), value: view.readUInt16BE(3) }
      : { fn, start: view.readUInt16BE(1), count: view.readUInt16BE(3) };
  }
  throw new Error(`unsupported function code ${fn}`);
}

/** Executes a request against a bank and returns the response PDU (normal or exception). */
export function answerRequest(bank: RegisterBank, request: ModbusRequest): Buffer {
  switch (request.fn) {
    case 3:
    case 4: {
      const out = bank.read(request.fn, request.start, request.count);
      return Array.isArray(out) ? buildResponsePdu(request, out) : buildExceptionPdu(request.fn, out.exception);
    }
    case 6: {
      const refused = bank.write(request.address, [request.value]);
      return refused ? buildExceptionPdu(6, refused.exception) : buildResponsePdu(request);
    }
    case 16: {
      const refused = bank.write(request.start, [...request.values]);
      return refused ? buildExceptionPdu(16, refused.exception) : buildResponsePdu(request);
    }
  }
}

/** Parses a request PDU and answers it from `bank`. */
export function answerPdu(bank: RegisterBank, pdu: Uint8Array): Buffer {
  const parsed = parseRequestPdu(pdu);
  return parsed.ok ? answerRequest(bank, parsed.request) : buildExceptionPdu(parsed.fn, parsed.exception);
}

/** An MBAP (Modbus TCP) frame: transaction id, protocol 0, length, unit, PDU. */
export function buildMbapFrame(transactionId: number, unit: number, pdu: Uint8Array): Buffer {
  const frame = Buffer.alloc(7 + pdu.length);
  frame.writeUInt16BE(transactionId & 0xffff, 0);
  frame.writeUInt16BE(0, 2);
  frame.writeUInt16BE(pdu.length + 1, 4);
  frame[6] = unit;
  frame.set(pdu, 7);
  return frame;
}
