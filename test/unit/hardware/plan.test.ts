import { describe, expect, it } from 'vitest';
import { registerCount } from '../../../hardware/codec.js';
import { PlanError, planReads, planStats } from '../../../hardware/modbus/plan.js';
import type { PlacedPoint, ReadBlock } from '../../../hardware/modbus/types.js';
import type { PointDef, PointType, ReadFunction } from '../../../hardware/profile/types.js';

interface Spec {
  readonly type?: PointType;
  readonly size?: number;
  readonly fn?: ReadFunction;
  /** Absolute address of the scale factor, and its read function if not the point's. */
  readonly sf?: number;
  readonly sfFn?: ReadFunction;
}

function def(name: string, type: PointType, size: number, fn: ReadFunction, sf?: string): PointDef {
  return {
    name,
    address: 0,
    type,
    size,
    function: fn,
    wordOrder: 'big',
    byteOrder: 'big',
    scale: 1,
    notImplemented: [],
    access: 'r',
    ...(sf === undefined ? {} : { sf }),
  };
}

function at(key: string, address: number, spec: Spec = {}): PlacedPoint {
  const type = spec.type ?? 'u16';
  const fn = spec.fn ?? 3;
  const size = spec.size ?? registerCount({ type, size: 1 });
  const sfName = spec.sf === undefined ? undefined : `SF${spec.sf}`;
  return {
    key,
    profileId: 'test',
    point: def(key, type, size, fn, sfName),
    address,
    ...(spec.sf === undefined
      ? {}
      : { sfAddress: spec.sf, sfPoint: def(sfName as string, 'sunssf', 1, spec.sfFn ?? fn) }),
  };
}

const ranges = (blocks: readonly ReadBlock[]): string[] =>
  blocks.map((b) => `fc${b.function} ${b.start}+${b.count}: ${b.points.map((p) => p.key).join(',')}`);

/** The rules every plan must keep, whatever the input. */
function checkInvariants(
  points: readonly PlacedPoint[],
  blocks: readonly ReadBlock[],
  maxRegisters = 125,
  barriers: number[] = [],
): void {
  const seen = new Map<string, number>();
  for (const block of blocks) {
    expect(block.count).toBeLessThanOrEqual(maxRegisters);
    for (const b of barriers) expect(block.start < b && b < block.start + block.count, `barrier ${b}`).toBe(false);
    for (const p of block.points) {
      seen.set(p.key, (seen.get(p.key) ?? 0) + 1);
      expect(p.point.function).toBe(block.function);
      expect(p.address).toBeGreaterThanOrEqual(block.start);
      expect(p.address + registerCount(p.point)).toBeLessThanOrEqual(block.start + block.count);
      if (p.sfAddress !== undefined) {
        expect(p.sfAddress, `sf of ${p.key}`).toBeGreaterThanOrEqual(block.start);
        expect(p.sfAddress, `sf of ${p.key}`).toBeLessThan(block.start + block.count);
      }
    }
  }
  expect(seen.size).toBe(points.length);
  for (const count of seen.values()) expect(count).toBe(1);
}

describe('planReads: gaps', () => {
  const points = [at('a', 0), at('b', 1), at('c', 5), at('d', 6, { type: 'u32' })];

  it('reads contiguous points together and stops at a gap by default', () => {
    expect(ranges(planReads(points))).toEqual(['fc3 0+2: a,b', 'fc3 5+3: c,d']);
  });

  it('reads through a gap of up to maxGap registers', () => {
    expect(ranges(planReads(points, { maxGap: 2 }))).toEqual(['fc3 0+2: a,b', 'fc3 5+3: c,d']);
    expect(ranges(planReads(points, { maxGap: 3 }))).toEqual(['fc3 0+8: a,b,c,d']);
  });

  it('counts the registers read only to bridge gaps', () => {
    expect(planStats(planReads(points, { maxGap: 3 }))).toEqual({
      requests: 1,
      registersRead: 8,
      registersUsed: 5,
      registersWasted: 3,
    });
    expect(planStats([])).toEqual({ requests: 0, registersRead: 0, registersUsed: 0, registersWasted: 0 });
  });
});

describe('planReads: request size', () => {
  it('splits 200 contiguous registers into reads of at most 125', () => {
    const points = Array.from({ length: 200 }, (_, i) => at(`p${i}`, 1000 + i));
    const blocks = planReads(points);
    expect(blocks.map((b) => [b.start, b.count])).toEqual([
      [1000, 125],
      [1125, 75],
    ]);
    expect(planReads(points, { maxRegisters: 100 }).map((b) => b.count)).toEqual([100, 100]);
    checkInvariants(points, blocks);
  });

  it('never splits a multi-register point across two reads', () => {
    const points = [...Array.from({ length: 124 }, (_, i) => at(`p${i}`, i)), at('wide', 124, { type: 'u32' })];
    const blocks = planReads(points);
    expect(blocks.map((b) => [b.start, b.count])).toEqual([
      [0, 124],
      [124, 2],
    ]);
  });

  it('refuses a point larger than one read', () => {
    const text = at('Serial', 10, { type: 'string', size: 60 });
    expect(planReads([text], { maxRegisters: 60 })).toHaveLength(1);
    expect(() => planReads([text], { maxRegisters: 50 })).toThrow(PlanError);
    expect(() => planReads([text], { maxRegisters: 50 })).toThrow(
      'point Serial (test, registers 10..69) is 60 registers, more than one read of 50',
    );
  });

  it('refuses impossible limits', () => {
    expect(() => planReads([], { maxRegisters: 126 })).toThrow(/1..125/);
    expect(() => planReads([], { maxRegisters: 0 })).toThrow(PlanError);
    expect(() => planReads([], { maxGap: -1 })).toThrow(/maxGap/);
  });
});

describe('planReads: barriers', () => {
  const points = Array.from({ length: 10 }, (_, i) => at(`p${i}`, i));

  it('never reads across a barrier', () => {
    expect(planReads(points, { barriers: [5] }).map((b) => [b.start, b.count])).toEqual([
      [0, 5],
      [5, 5],
    ]);
    checkInvariants(points, planReads(points, { barriers: [5, 7] }), 125, [5, 7]);
  });

  it('lets a read start or end at a barrier', () => {
    expect(planReads(points, { barriers: [0, 10] })).toHaveLength(1);
  });

  it('refuses a point that straddles a barrier', () => {
    expect(() => planReads([at('E', 99, { type: 'u32' })], { barriers: [100] })).toThrow(
      'point E (test, registers 99..100) straddles the read barrier at 100',
    );
  });

  it('refuses a point and its scale factor on both sides of a barrier', () => {
    expect(() => planReads([at('W', 98, { sf: 101 })], { barriers: [100] })).toThrow(
      /W \(test, register 98\) and the scale factor SF101 at 101 lie on both sides of the read barrier at 100/,
    );
  });
});

describe('planReads: scale factors', () => {
  it('reads a point with its scale factor even across a gap maxGap would not bridge', () => {
    expect(ranges(planReads([at('W', 10, { sf: 50 })]))).toEqual(['fc3 10+41: W']);
  });

  it('takes the scale factor when it comes before the points', () => {
    expect(ranges(planReads([at('A', 101, { sf: 100 }), at('B', 102, { sf: 100 })]))).toEqual(['fc3 100+3: A,B']);
  });

  it('reads every point sharing one scale factor in one request (SunSpec A_SF of A, AphA, AphB, AphC)', () => {
    // Only A and AphC are wanted; the registers between them and A_SF come along.
    const blocks = planReads([at('A', 40004, { sf: 40008 }), at('AphC', 40007, { sf: 40008 })]);
    expect(ranges(blocks)).toEqual(['fc3 40004+5: A,AphC']);
    expect(planStats(blocks)).toMatchObject({ registersUsed: 3, registersWasted: 2 });
  });

  it('keeps a point with its scale factor where packing by address alone would split them', () => {
    // 0..9 plain, 10..129 scaled by the register at 130: a greedy split at 125 would cut 125..130 off.
    const points = [
      ...Array.from({ length: 10 }, (_, i) => at(`p${i}`, i)),
      ...Array.from({ length: 120 }, (_, i) => at(`s${i}`, 10 + i, { sf: 130 })),
    ];
    const blocks = planReads(points);
    expect(blocks.map((b) => [b.start, b.count])).toEqual([
      [0, 10],
      [10, 121],
    ]);
    checkInvariants(points, blocks);
  });

  it('refuses a point more than one read away from its scale factor, naming both', () => {
    expect(() => planReads([at('W', 0, { sf: 200 })])).toThrow(
      'W (test, register 0) and its scale factor SF200 at 200 need a read of 201 registers (0..200), more than 125',
    );
  });

  it('refuses points sharing a scale factor that cannot all fit one read', () => {
    const points = [at('X', 0, { sf: 100 }), at('Y', 200, { sf: 100 })];
    expect(() => planReads(points)).toThrow(
      /X \(test, register 0\) and Y \(test, register 200\) and their scale factor SF100 at 100 need a read of 201/,
    );
  });

  it('refuses a scale factor read with another function code', () => {
    expect(() => planReads([at('W', 0, { fn: 4, sf: 1, sfFn: 3 })])).toThrow(
      /read with function 4, its scale factor SF1 with 3/,
    );
  });
});

describe('planReads: function codes, keys, determinism', () => {
  it('plans holding and input registers separately, holding first', () => {
    const points = [at('in0', 0, { fn: 4 }), at('hold0', 0), at('in1', 1, { fn: 4 }), at('hold1', 1)];
    expect(ranges(planReads(points))).toEqual(['fc3 0+2: hold0,hold1', 'fc4 0+2: in0,in1']);
  });

  it('refuses two points with one key', () => {
    expect(() => planReads([at('W', 0), at('W', 5)])).toThrow(/two points have the key W/);
  });

  it('reads overlapping points (two views of one register) in one request', () => {
    const points = [at('raw', 10), at('low', 10, { type: 'u32' })];
    expect(ranges(planReads(points))).toEqual(['fc3 10+2: low,raw']);
  });

  it('gives the same plan for any order of the same points', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const points: PlacedPoint[] = [];
    for (let i = 0; i < 300; i++) {
      const fn: ReadFunction = random() < 0.3 ? 4 : 3;
      const address = Math.floor(random() * 2000) * 3;
      const type: PointType = random() < 0.5 ? 'u16' : 'u32';
      const scaled = random() < 0.3 && type === 'u16';
      points.push(at(`k${i}`, address, scaled ? { fn, type, sf: address + 2 } : { fn, type }));
    }
    const options = { maxGap: 4, maxRegisters: 60, barriers: [300, 3000] };
    const reference = planReads(points, options);
    checkInvariants(points, reference, 60, options.barriers);
    for (let round = 0; round < 5; round++) {
      const shuffled = [...points].sort(() => random() - 0.5);
      expect(planReads(shuffled, options)).toEqual(reference);
    }
  });
});
