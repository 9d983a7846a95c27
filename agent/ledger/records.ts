/**
 * Ledger record types. A record is {seq, time, type, body}: `seq` numbers every record of one chain from 1 without
 * gaps, `time` is when the agent stored it (ms since the Unix epoch, UTC), `body` depends on `type`. The canonical
 * bytes of the whole record are the Merkle leaf, so every field, including its position, is covered by the block
 * signature. Bodies carry integer units only (docs/protocol.md, "Units").
 *
 * Each type lists its required fields; bodies may carry more fields (later protocol versions add them), which are
 * hashed and signed like the rest.
 */
import { type CanonicalValue, canonicalBytes, parseCanonical } from './canonical.js';

export const RECORD_TYPES = [
  'reading',
  'meter-batch',
  'schedule',
  'order',
  'trade',
  'settlement',
  'dso-message',
  'registration',
  'event',
] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export type RecordBody = { readonly [key: string]: CanonicalValue | undefined };

export interface LedgerRecord {
  readonly seq: number;
  readonly time: number;
  readonly type: RecordType;
  readonly body: RecordBody;
}

/** A record before the ledger has numbered it. */
export interface NewRecord {
  readonly type: RecordType;
  readonly body: RecordBody;
  /** Defaults to the ledger's clock. */
  readonly time?: number;
}

export class RecordError extends Error {
  override name = 'RecordError';
}

type FieldKind = 'int' | 'uint' | 'string' | 'hex' | 'address' | 'bool' | 'array' | 'object';
type FieldSpec = Readonly<Record<string, FieldKind>>;

/** Required fields per type. Integer fields are in the unit their name or `unit` field gives. */
const REQUIRED: Readonly<Record<RecordType, FieldSpec>> = {
  // One measured value of one device point: value in `unit` (W, Wh, var, varh, VA, mV, mA, mHz, ...).
  reading: { device: 'string', point: 'string', t: 'uint', value: 'int', unit: 'string' },
  // A batch signed in the meter's own firmware, kept verbatim: `payload` is exactly the bytes the meter signed.
  'meter-batch': { meter: 'address', format: 'string', payload: 'hex', sig: 'hex' },
  // A building's DER schedule (the MGMC's contract with its DERs); `steps` per DER in W.
  schedule: { building: 'string', start: 'uint', stepMs: 'uint', ders: 'object' },
  // A market order: quantity in Wh, price in micro-units of currency per kWh.
  order: {
    id: 'string',
    anonym: 'string',
    interval: 'uint',
    side: 'string',
    qtyWh: 'uint',
    price: 'uint',
    round: 'uint',
  },
  trade: { id: 'string', interval: 'uint', seller: 'string', buyer: 'string', qtyWh: 'uint', price: 'uint' },
  // A settlement: amounts in micro-units of currency; `evidence` lists the record seqs of the meter readings behind it.
  settlement: { id: 'string', trade: 'string', interval: 'uint', deliveredWh: 'int', amount: 'int', evidence: 'array' },
  // A message to or from the DSO, kept as received (signature included).
  'dso-message': { id: 'string', kind: 'string', from: 'address', payload: 'object' },
  registration: { mgmc: 'address', meters: 'array', bus: 'string' },
  // Something an operator or auditor must see: a failed setpoint write, a device that went away, a restart.
  event: { source: 'string', kind: 'string', message: 'string' },
};

const HEX_RE = /^0x([0-9a-f]{2})*$/;
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;

/** Checks a record's type and body; throws RecordError naming the record and the field. */
export function validateBody(type: string, body: unknown, where = 'record'): asserts body is RecordBody {
  const spec = REQUIRED[type as RecordType];
  if (spec === undefined) {
    throw new RecordError(`${where}: unknown record type ${JSON.stringify(type)} (known: ${RECORD_TYPES.join(', ')})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RecordError(`${where}: ${type} body must be an object`);
  }
  const fields = body as Record<string, unknown>;
  for (const field in spec) {
    const kind = spec[field] as FieldKind;
    const value = fields[field];
    if (!matches(kind, value)) {
      throw new RecordError(
        `${where}: ${type}.${field} must be ${describeKind(kind)}, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`,
      );
    }
  }
}

/** Canonical bytes of a record: the Merkle leaf data. */
export function encodeRecord(record: LedgerRecord): Uint8Array {
  return canonicalBytes({ seq: record.seq, time: record.time, type: record.type, body: record.body });
}

/** Parses and checks canonical record bytes (as stored or exported). */
export function decodeRecord(bytes: Uint8Array | string, where = 'record'): LedgerRecord {
  const value = parseCanonical(bytes, where) as Record<string, unknown>;
  return recordFromObject(value, where);
}

/** Checks a record given as a parsed object (for example one line of an export). */
export function recordFromObject(value: unknown, where = 'record'): LedgerRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecordError(`${where}: a record must be an object`);
  }
  const { seq, time, type, body, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw new RecordError(`${where}: unexpected field(s) ${extra.join(', ')}`);
  if (!matches('uint', seq) || (seq as number) < 1) throw new RecordError(`${where}: seq must be an integer >= 1`);
  if (!matches('uint', time)) throw new RecordError(`${where}: time must be ms since the Unix epoch`);
  validateBody(type as string, body, `${where} (seq ${seq})`);
  return { seq: seq as number, time: time as number, type: type as RecordType, body };
}

function matches(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case 'int':
      return Number.isSafeInteger(value);
    case 'uint':
      return Number.isSafeInteger(value) && (value as number) >= 0;
    case 'string':
      return typeof value === 'string' && value.length > 0;
    case 'hex':
      return typeof value === 'string' && HEX_RE.test(value);
    case 'address':
      return typeof value === 'string' && ADDRESS_RE.test(value);
    case 'bool':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

function describeKind(kind: FieldKind): string {
  switch (kind) {
    case 'int':
      return 'an integer';
    case 'uint':
      return 'a non-negative integer';
    case 'string':
      return 'a non-empty string';
    case 'hex':
      return 'lower-case 0x-hex bytes';
    case 'address':
      return 'an address (0x + 40 hex digits)';
    case 'bool':
      return 'true or false';
    case 'array':
      return 'an array';
    case 'object':
      return 'an object';
  }
}
