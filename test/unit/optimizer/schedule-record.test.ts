/**
 * The schedule record is the MGMC's signed contract with its DERs: integers only, one record per building, and the
 * same canonical bytes as the published vector (test/vectors/schedule-record.json).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../../agent/ledger/canonical.js';
import { validateBody } from '../../../agent/ledger/records.js';
import type { SiteSchedule } from '../../../agent/optimizer/schedule.js';
import { scheduleRecords } from '../../../agent/optimizer/schedule-record.js';

const vector = JSON.parse(readFileSync(new URL('../../vectors/schedule-record.json', import.meta.url), 'utf8')) as {
  schedule: SiteSchedule;
  records: { type: string; canonicalBody: string }[];
};

function clone(): SiteSchedule {
  return JSON.parse(JSON.stringify(vector.schedule)) as SiteSchedule;
}

describe('scheduleRecords', () => {
  it('produces the published canonical bodies, one valid schedule record per building', () => {
    const records = scheduleRecords(vector.schedule);
    expect(records.map((r) => r.type)).toEqual(vector.records.map((r) => r.type));
    records.forEach((r, i) => {
      validateBody(r.type, r.body);
      expect(canonicalize(r.body)).toBe(vector.records[i]?.canonicalBody);
    });
  });

  it('rounds powers to whole W (no negative zero) and costs to micro-units', () => {
    const [office] = scheduleRecords(vector.schedule);
    const body = office?.body as Record<string, unknown>;
    expect(body.building).toBe('office');
    expect(body.start).toBe(vector.schedule.horizon.start);
    expect(body.stepMs).toBe(900_000);
    expect(body.status).toBe('optimal');
    // battery powerW [-2999.6, 0.4, -0.3, 1500.5]
    expect((body.ders as Record<string, number[]>).battery).toEqual([-3000, 0, 0, 1501]);
    expect(Object.is((body.ders as Record<string, number[]>).battery?.[2], -0)).toBe(false);
    expect((body.kinds as Record<string, string>).battery).toBe('battery');
    expect((body.costMicro as Record<string, number>).total).toBe(1_234_568);
    for (const v of Object.values(body.ders as Record<string, number[]>).flat())
      expect(Number.isSafeInteger(v)).toBe(true);
  });

  it('refuses a non-finite power, a series of the wrong length and a DER named twice, naming building and DER', () => {
    const nan = clone();
    (nan.buildings[0]!.ders[0]!.powerW as number[])[1] = Number.NaN;
    expect(() => scheduleRecords(nan)).toThrow(/building 'office', DER 'pv'\[1\]: NaN is not a finite power/);
    const short = clone();
    (short.buildings[0]!.netW as number[]).pop();
    expect(() => scheduleRecords(short)).toThrow(/building 'office', netW: 3 values for a horizon of 4 intervals/);
    const twice = clone();
    const ders = twice.buildings[0]?.ders as SiteSchedule['buildings'][number]['ders'][number][];
    ders.push({ ...(ders[0] as (typeof ders)[number]) });
    expect(() => scheduleRecords(twice)).toThrow(/building 'office'.*DER name 'pv' appears twice/);
  });
});
