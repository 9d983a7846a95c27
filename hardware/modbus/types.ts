/**
 * What the rest of the system sees of Modbus: buses that read and write registers, errors that say what went wrong,
 * and per-device health. Only hardware/modbus/client.ts imports modbus-serial; everything else uses these types.
 */
import type { PointDef, ReadFunction } from '../profile/types.js';

/** A profile point placed at an absolute register address on one device. */
export interface PlacedPoint {
  /** Unique within the device, e.g. "W" or "sunspec-103.W" when several profiles are combined. */
  readonly key: string;
  readonly profileId: string;
  readonly point: PointDef;
  /** Absolute protocol address of the point's first register. */
  readonly address: number;
  /** Absolute address of its scale-factor register, when the point has `sf`. */
  readonly sfAddress?: number;
  /** The scale-factor point itself, so its register decodes with its own byte order and sentinel. */
  readonly sfPoint?: PointDef;
}

/** One request of a read plan: `count` registers from `start`, holding the listed points. */
export interface ReadBlock {
  readonly function: ReadFunction;
  readonly start: number;
  readonly count: number;
  readonly points: readonly PlacedPoint[];
}

export type ModbusErrorKind =
  /** No (complete) answer within the request timeout. */
  | 'timeout'
  /** The device answered with a Modbus exception; see `exceptionCode`. */
  | 'exception'
  /** The answer was malformed: bad CRC, wrong unit id, wrong function, wrong length. */
  | 'bad-response'
  /** The connection could not be opened or was lost. */
  | 'connection'
  /** The device is in back-off after repeated failures; no request was sent. */
  | 'backoff'
  /** The bus was closed. */
  | 'closed'
  /** A write was refused before sending (outside the profile's range, read-only point). */
  | 'refused';

export class ModbusError extends Error {
  override name = 'ModbusError';
  constructor(
    readonly kind: ModbusErrorKind,
    message: string,
    readonly details: { readonly bus?: string; readonly unit?: number; readonly exceptionCode?: number } = {},
  ) {
    super(message);
  }
}

/** Modbus exception codes with the words a technician looks up. */
export const EXCEPTION_NAMES: Readonly<Record<number, string>> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

export type HealthState = 'online' | 'degraded' | 'offline' | 'unknown';

export interface DeviceHealth {
  readonly state: HealthState;
  /** ms since epoch of the last successful request, undefined if none yet. */
  readonly lastGood?: number;
  readonly consecutiveFailures: number;
  /** When the device is in back-off: when the next (probe) request may go out. */
  readonly backoffUntil?: number;
  readonly lastError?: string;
}

/** A physical bus (one TCP endpoint or one serial line): requests to it are serialized. */
export interface ModbusBus {
  readonly name: string;
  /** Reads `count` registers; rejects with ModbusError. */
  read(unit: number, fn: ReadFunction, start: number, count: number): Promise<number[]>;
  /** Writes holding registers (FC 16, or FC 6 for one register if the bus is configured so). */
  write(unit: number, start: number, values: readonly number[]): Promise<void>;
  health(unit: number): DeviceHealth;
  close(): Promise<void>;
}
