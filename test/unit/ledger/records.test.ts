import { describe, expect, it } from 'vitest';
import { CanonicalError } from '../../../agent/ledger/canonical.js';
import {
  decodeRecord,
  encodeRecord,
  type LedgerRecord,
  RECORD_TYPES,
  type RecordBody,
  RecordError,
  type RecordType,
  recordFromObject,
  validateBody,
} from '../../../agent/ledger/records.js';

const METER = '0x52908400098527886E0F7030069857D2E4169EE7';
const MGMC = '0x8617E340B3D01FA5F11F306F4090FD50E238070D';
const DSO = '0xde709f2102306220921060314715629080e2fb77';

/** One valid body per type, with every required field. */
const VALID: Record<RecordType, RecordBody> = {
  reading: { device: 'pv1', point: 'W', t: 1_700_000_000_000, value: -1250, unit: 'W' },
  'meter-batch': { meter: METER, format: 'mgmc-meter/v1', payload: '0x0102ff', sig: `0x${'ab'.repeat(65)}` },
  schedule: { building: 'b1', start: 1_700_000_000_000, stepMs: 900_000, ders: { bat1: [1000, -500] } },
  order: {
    id: 'o-1',
    anonym: 'x7f3',
    interval: 1_700_000_000_000,
    side: 'buy',
    qtyWh: 2500,
    price: 210_000,
    round: 0,
  },
  trade: { id: 't-1', interval: 1_700_000_000_000, seller: 'a', buyer: 'b', qtyWh: 1000, price: 200_000 },
  settlement: { id: 's-1', trade: 't-1', interval: 1_700_000_000_000, deliveredWh: -3, amount: -600, evidence: [5, 9] },
  'dso-message': { id: 'm-1', kind: 'curtail', from: DSO, payload: { limitW: 5000 } },
  registration: { mgmc: MGMC, meters: [METER], bus: 'feeder-1' },
  event: { source: 'poller', kind: 'device-lost', message: 'pv1 stopped answering' },
};

/** Values of the wrong kind for each field kind, with what makes them wrong. */
const WRONG: Record<string, readonly unknown[]> = {
  int: [1.5, '12', null, Number.NaN, 2 ** 53, true],
  uint: [-1, 0.5, '3', null],
  string: ['', 7, null, ['x']],
  hex: ['0xABCD', '0x123', 'abcd', '0xzz', 12],
  address: ['0x1234', `0x${'g'.repeat(40)}`, `${'a'.repeat(40)}`, 5],
  array: [{}, 'a,b', null],
  object: [[], 'x', null, 3],
};

/** Field kinds of the required fields, as documented in agent/ledger/records.ts. */
const KINDS: Record<RecordType, Record<string, keyof typeof WRONG>> = {
  reading: { device: 'string', point: 'string', t: 'uint', value: 'int', unit: 'string' },
  'meter-batch': { meter: 'address', format: 'string', payload: 'hex', sig: 'hex' },
  schedule: { building: 'string', start: 'uint', stepMs: 'uint', ders: 'object' },
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
  settlement: { id: 'string', trade: 'string', interval: 'uint', deliveredWh: 'int', amount: 'int', evidence: 'array' },
  'dso-message': { id: 'string', kind: 'string', from: 'address', payload: 'object' },
  registration: { mgmc: 'address', meters: 'array', bus: 'string' },
  event: { source: 'string', kind: 'string', message: 'string' },
};

function recordError(fn: () => unknown): RecordError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RecordError);
    return err as RecordError;
  }
  throw new Error('expected a RecordError, nothing was thrown');
}

describe('validateBody', () => {
  it('covers every record type', () => {
    expect(Object.keys(VALID).sort()).toEqual([...RECORD_TYPES].sort());
    expect(Object.keys(KINDS).sort()).toEqual([...RECORD_TYPES].sort());
  });

  describe.each(RECORD_TYPES.map((t) => [t] as const))('%s', (type) => {
    const valid = VALID[type];
    const fields = Object.keys(KINDS[type]);

    it('accepts a body with every required field', () => {
      expect(() => validateBody(type, valid)).not.toThrow();
    });

    it('accepts extra fields (later protocol versions add them)', () => {
      expect(() => validateBody(type, { ...valid, addedLater: 'x', nested: { n: 1 } })).not.toThrow();
    });

    it.each(fields)(`rejects a body without ${type}.%s, naming type.field`, (field) => {
      const { [field]: _dropped, ...body } = valid;
      const err = recordError(() => validateBody(type, body, 'record 3 of the batch'));
      expect(err.message).toContain(`record 3 of the batch: ${type}.${field} must be`);
      expect(err.message).toMatch(/got nothing$/);
    });

    it.each(fields)(`rejects a wrong value of ${type}.%s`, (field) => {
      const kind = KINDS[type][field] as string;
      for (const value of WRONG[kind] ?? []) {
        const err = recordError(() => validateBody(type, { ...valid, [field]: value }));
        expect(err.message).toContain(`${type}.${field} must be`);
      }
    });
  });

  it('says what a field must be and what it got', () => {
    expect(recordError(() => validateBody('reading', { ...VALID.reading, value: 1.5 })).message).toBe(
      'record: reading.value must be an integer, got 1.5',
    );
    expect(recordError(() => validateBody('reading', { ...VALID.reading, t: -1 })).message).toBe(
      'record: reading.t must be a non-negative integer, got -1',
    );
    expect(recordError(() => validateBody('meter-batch', { ...VALID['meter-batch'], sig: '0xAB' })).message).toBe(
      'record: meter-batch.sig must be lower-case 0x-hex bytes, got "0xAB"',
    );
  });

  it('accepts an address in any valid case and a negative int', () => {
    expect(() => validateBody('registration', { ...VALID.registration, mgmc: MGMC.toLowerCase() })).not.toThrow();
    expect(() => validateBody('reading', { ...VALID.reading, value: -(2 ** 40) })).not.toThrow();
  });

  it('rejects unknown types, listing the known ones', () => {
    const err = recordError(() => validateBody('readings', VALID.reading));
    expect(err.message).toContain('unknown record type "readings"');
    for (const type of RECORD_TYPES) expect(err.message).toContain(type);
  });

  it.each([null, [], 'x', 5, undefined])('rejects a body that is not an object: %j', (body) => {
    expect(recordError(() => validateBody('event', body)).message).toBe('record: event body must be an object');
  });
});

describe('encodeRecord / decodeRecord', () => {
  it.each(RECORD_TYPES.map((t) => [t] as const))('round-trips a %s record', (type) => {
    const record: LedgerRecord = { seq: 42, time: 1_700_000_000_123, type, body: VALID[type] };
    const bytes = encodeRecord(record);
    expect(decodeRecord(bytes)).toEqual(record);
    expect(decodeRecord(Buffer.from(bytes).toString('utf8'))).toEqual(record);
    expect(encodeRecord(decodeRecord(bytes))).toEqual(bytes);
  });

  it('writes the canonical form: sorted keys, no whitespace', () => {
    const bytes = encodeRecord({
      seq: 1,
      time: 2,
      type: 'event',
      body: { source: 's', kind: 'k', message: 'm' },
    });
    expect(Buffer.from(bytes).toString('utf8')).toBe(
      '{"body":{"kind":"k","message":"m","source":"s"},"seq":1,"time":2,"type":"event"}',
    );
  });

  it('refuses floats anywhere in the body, with the path', () => {
    expect(() =>
      encodeRecord({ seq: 1, time: 2, type: 'event', body: { ...VALID.event, extra: { ratio: 0.5 } } }),
    ).toThrow(CanonicalError);
    expect(() =>
      encodeRecord({ seq: 1, time: 2, type: 'event', body: { ...VALID.event, extra: { ratio: 0.5 } } }),
    ).toThrow(/body\.extra\.ratio: 0\.5 is not a safe integer/);
  });

  it('rejects non-canonical bytes', () => {
    const text = '{"seq":1,"time":2,"type":"event","body":{"source":"s","kind":"k","message":"m"}}';
    expect(() => decodeRecord(text, 'record 1')).toThrow('record 1 is not in canonical form');
    expect(recordFromObject(JSON.parse(text))).toEqual({
      seq: 1,
      time: 2,
      type: 'event',
      body: { source: 's', kind: 'k', message: 'm' },
    });
  });

  it('rejects a decoded record whose body is invalid, naming the seq and the field', () => {
    const bytes = encodeRecord({ seq: 9, time: 2, type: 'reading', body: { ...VALID.reading, unit: '' } });
    expect(recordError(() => decodeRecord(bytes, 'record 9')).message).toBe(
      'record 9 (seq 9): reading.unit must be a non-empty string, got ""',
    );
  });
});

describe('recordFromObject', () => {
  const good = { seq: 1, time: 5, type: 'event', body: VALID.event };

  it('accepts a record object', () => {
    expect(recordFromObject(good)).toEqual(good);
  });

  it('rejects unexpected top-level fields, naming them', () => {
    expect(recordError(() => recordFromObject({ ...good, block: 3, hash: '0x' }, 'line 7')).message).toBe(
      'line 7: unexpected field(s) block, hash',
    );
  });

  it.each([0, -1, 1.5, '1', undefined])('rejects seq %j', (seq) => {
    expect(recordError(() => recordFromObject({ ...good, seq })).message).toBe('record: seq must be an integer >= 1');
  });

  it.each([-1, 1.5, '5', undefined])('rejects time %j', (time) => {
    expect(recordError(() => recordFromObject({ ...good, time })).message).toBe(
      'record: time must be ms since the Unix epoch',
    );
  });

  it('rejects a missing or unknown type', () => {
    expect(recordError(() => recordFromObject({ ...good, type: undefined })).message).toContain('unknown record type');
    expect(recordError(() => recordFromObject({ ...good, type: 'bogus' })).message).toContain(
      'record (seq 1): unknown record type "bogus"',
    );
  });

  it.each([null, [], 'x'])('rejects %j as a record', (value) => {
    expect(recordError(() => recordFromObject(value)).message).toBe('record: a record must be an object');
  });
});
