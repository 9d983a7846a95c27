/**
 * The shipped device-profile catalogue (hardware/profiles/*.yaml), checked as a whole in the spirit of evcc's template
 * tests: every file loads, names itself, lays its registers out without overlaps, references only points it has,
 * bounds every write, and can be planned into Modbus reads that keep each value with its scale factor.
 */
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planReads } from '../../../hardware/modbus/plan.js';
import type { PlacedPoint, ReadBlock } from '../../../hardware/modbus/types.js';
import { catalogueDir, loadCatalogue, loadProfileFile } from '../../../hardware/profile/load.js';
import { placeBarriers, placeProfile } from '../../../hardware/profile/place.js';
import type { PointDef, Profile } from '../../../hardware/profile/types.js';

/** Profiles the product promises; the config, the simulator and the docs refer to these ids. */
const REQUIRED = [
  'sunspec-1',
  'sunspec-101',
  'sunspec-102',
  'sunspec-103',
  'sunspec-120',
  'sunspec-121',
  'sunspec-123',
  'sunspec-124',
  'sunspec-201',
  'sunspec-202',
  'sunspec-203',
  'sunspec-204',
  'eastron-sdm630',
] as const;

/** The fixed-block length L of each SunSpec model we ship, from the SunSpec model definitions. */
const SUNSPEC_LENGTHS: Readonly<Record<number, number>> = {
  1: 66,
  101: 50,
  102: 50,
  103: 50,
  120: 26,
  121: 30,
  123: 24,
  124: 24,
  201: 105,
  202: 105,
  203: 105,
  204: 105,
};

/** SunSpec controls with a revert timer in their model, and the point holding it. */
const REVERT_TIMEOUTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'sunspec-123': {
    Conn: 'Conn_RvrtTms',
    WMaxLimPct: 'WMaxLimPct_RvrtTms',
    OutPFSet: 'OutPFSet_RvrtTms',
    VArWMaxPct: 'VArPct_RvrtTms',
    VArMaxPct: 'VArPct_RvrtTms',
    VArAvalPct: 'VArPct_RvrtTms',
  },
  'sunspec-124': { InWRte: 'InOutWRte_RvrtTms', OutWRte: 'InOutWRte_RvrtTms' },
};

/** SunSpec 123 controls and the point that enables them. */
const ENABLES: Readonly<Record<string, string>> = {
  WMaxLimPct: 'WMaxLim_Ena',
  OutPFSet: 'OutPFSet_Ena',
  VArWMaxPct: 'VArPct_Ena',
  VArMaxPct: 'VArPct_Ena',
  VArAvalPct: 'VArPct_Ena',
};

const MAX_READ = 125;
/** SunSpec models are placed where discovery finds them: after "SunS" at 40000, the first model ID at 40002. */
const SUNSPEC_BASE = 40002;

const dir = catalogueDir();
const files = readdirSync(dir)
  .filter((file) => file.endsWith('.yaml'))
  .sort();
const catalogue = loadCatalogue();
const profiles: readonly Profile[] = catalogue.all();

function end(point: PointDef): number {
  return point.address + point.size;
}

function pointNamed(profile: Profile, name: string): PointDef | undefined {
  return profile.points.find((point) => point.name === name);
}

function baseOf(profile: Profile): number {
  return profile.addressing === 'sunspec-model' ? SUNSPEC_BASE : 0;
}

function place(profile: Profile): readonly PlacedPoint[] {
  return placeProfile(profile, baseOf(profile));
}

function plan(profile: Profile, maxGap: number): ReadBlock[] {
  return planReads(place(profile), { maxGap, barriers: placeBarriers(profile, baseOf(profile)) });
}

/** Checks a read plan; returns the problems found so a failure lists them all. */
function planProblems(profile: Profile, placed: readonly PlacedPoint[], blocks: readonly ReadBlock[]): string[] {
  const problems: string[] = [];
  const offset = baseOf(profile);
  const seen = new Map<string, number>();
  blocks.forEach((block, i) => {
    const last = block.start + block.count;
    if (block.count < 1 || block.count > MAX_READ) problems.push(`read ${i} asks for ${block.count} registers`);
    for (const barrier of profile.barriers) {
      const at = barrier + offset;
      if (block.start <= at - 1 && at < last) problems.push(`read ${i} (${block.start}+${block.count}) spans ${at}`);
    }
    for (const item of block.points) {
      seen.set(item.key, (seen.get(item.key) ?? 0) + 1);
      if (item.point.function !== block.function) problems.push(`${item.key} read with function ${block.function}`);
      if (item.address < block.start || item.address + item.point.size > last) {
        problems.push(
          `${item.key} (${item.address}+${item.point.size}) outside read ${i} (${block.start}+${block.count})`,
        );
      }
      if (item.point.sf !== undefined) {
        if (item.sfAddress === undefined) problems.push(`${item.key} has sf ${item.point.sf} but no sfAddress`);
        else if (item.sfAddress < block.start || item.sfAddress >= last) {
          problems.push(`${item.key}: scale factor ${item.point.sf} at ${item.sfAddress} is not in its read ${i}`);
        }
      }
    }
  });
  for (const item of placed) {
    const count = seen.get(item.key) ?? 0;
    if (count !== 1) problems.push(`${item.key} is in ${count} reads`);
  }
  return problems;
}

describe('the profile catalogue', () => {
  it('has one loadable file per profile', () => {
    expect(files.length).toBeGreaterThan(0);
    expect([...catalogue.ids()].sort()).toEqual(files.map((file) => basename(file, '.yaml')).sort());
  });

  it.each(files)('%s loads without problems and its id is its file name', (file) => {
    const profile = loadProfileFile(join(dir, file));
    expect(profile.id).toBe(basename(file, '.yaml'));
    expect(catalogue.get(profile.id)).toBeDefined();
  });

  it('ships every required profile', () => {
    const missing = REQUIRED.filter((id) => !catalogue.has(id));
    expect(missing).toEqual([]);
  });

  it('has at least one profile of each device class that is polled', () => {
    const classes = new Set(profiles.map((profile) => profile.class));
    for (const wanted of ['meter', 'pv-inverter', 'battery', 'ev-charger'] as const) {
      expect(classes.has(wanted), `no ${wanted} profile`).toBe(true);
    }
  });

  it('has at least two non-SunSpec profiles, among them a meter, a battery and an EV charger', () => {
    const absolute = profiles.filter((profile) => profile.addressing === 'absolute');
    expect(absolute.length).toBeGreaterThanOrEqual(2);
    const classes = new Set(absolute.map((profile) => profile.class));
    expect([...classes].sort()).toEqual(expect.arrayContaining(['battery', 'ev-charger', 'meter']));
  });
});

describe.each(profiles.map((profile) => [profile.id, profile] as const))('profile %s', (_id, profile) => {
  it('names where its map comes from', () => {
    expect(profile.source.trim().length).toBeGreaterThan(10);
    expect(profile.name.trim()).not.toBe('');
  });

  it('has unique point names and no overlapping registers', () => {
    const names = profile.points.map((point) => point.name);
    expect(new Set(names).size).toBe(names.length);
    for (const fn of [3, 4] as const) {
      const points = profile.points.filter((point) => point.function === fn).sort((a, b) => a.address - b.address);
      for (let i = 1; i < points.length; i++) {
        const before = points[i - 1]!;
        const point = points[i]!;
        expect(end(before), `${before.name} overlaps ${point.name}`).toBeLessThanOrEqual(point.address);
      }
    }
  });

  it('gives every scaled point a sunssf scale factor of its own profile', () => {
    for (const point of profile.points.filter((p) => p.sf !== undefined)) {
      const sf = pointNamed(profile, point.sf!);
      expect(sf?.type, `${point.name}.sf = ${point.sf}`).toBe('sunssf');
      expect(sf?.function, `${point.name} and ${point.sf} are read with different functions`).toBe(point.function);
    }
  });

  it('bounds every write and names existing revert-timeout and enable points', () => {
    for (const point of profile.points.filter((p) => p.access === 'rw')) {
      expect(point.range, `${point.name} is writable without a range`).toBeDefined();
      expect(point.range!.min).toBeLessThanOrEqual(point.range!.max);
      if (point.revertTimeout !== undefined) {
        const timer = pointNamed(profile, point.revertTimeout);
        expect(timer, `${point.name}.revertTimeout`).toBeDefined();
        expect(timer!.unit, `${point.revertTimeout} holds seconds`).toBe('s');
      }
      if (point.enable !== undefined) {
        expect(pointNamed(profile, point.enable)?.access, `${point.name}.enable`).toBe('rw');
      }
    }
    for (const point of profile.points.filter((p) => p.access !== 'rw')) {
      expect(point.range, `${point.name} has a range but is read-only`).toBeUndefined();
    }
  });

  it('can be planned into reads of at most 125 registers, each point in the same read as its scale factor', () => {
    const placed = place(profile);
    expect(placed.length).toBe(profile.points.filter((point) => point.type !== 'pad').length);
    for (const maxGap of [0, 8, MAX_READ]) {
      expect(planProblems(profile, placed, plan(profile, maxGap)), `maxGap ${maxGap}`).toEqual([]);
    }
  });
});

const sunspec = profiles.filter((profile) => profile.addressing === 'sunspec-model');

describe.each(sunspec.map((profile) => [profile.id, profile] as const))('SunSpec profile %s', (_id, profile) => {
  const model = profile.sunspec!.model;
  const length = profile.sunspec!.length;

  it('is the model its id names, with the length of the SunSpec definition', () => {
    expect(profile.id).toBe(`sunspec-${model}`);
    expect(length).toBe(SUNSPEC_LENGTHS[model]);
    expect(catalogue.bySunspecModel(model)?.id).toBe(profile.id);
  });

  it('starts with ID and L and ends exactly at L + 2, every register accounted for (pads included)', () => {
    expect(pointNamed(profile, 'ID')).toMatchObject({ address: 0, size: 1 });
    expect(pointNamed(profile, 'L')).toMatchObject({ address: 1, size: 1 });
    const points = [...profile.points].sort((a, b) => a.address - b.address);
    let next = 0;
    for (const point of points) {
      expect(point.address, `gap or overlap before ${point.name}`).toBe(next);
      next = end(point);
    }
    expect(next).toBe(length + 2);
  });

  it('uses holding registers, big-endian, with the SunSpec sentinels', () => {
    for (const point of profile.points) {
      expect(point.function, point.name).toBe(3);
      expect(point.wordOrder, point.name).toBe('big');
      expect(point.byteOrder, point.name).toBe('big');
      if (point.type === 'u16') expect(point.notImplemented, point.name).toContain(0xffff);
      if (point.type === 's16' || point.type === 'sunssf') expect(point.notImplemented, point.name).toContain(-0x8000);
    }
  });

  it('gives its timed controls their revert timeout and enable points', () => {
    for (const [name, timer] of Object.entries(REVERT_TIMEOUTS[profile.id] ?? {})) {
      const point = pointNamed(profile, name);
      expect(point?.access, name).toBe('rw');
      expect(point?.revertTimeout, name).toBe(timer);
      if (profile.id === 'sunspec-123' && ENABLES[name] !== undefined) expect(point?.enable, name).toBe(ENABLES[name]);
    }
  });
});

describe('SunSpec control ranges', () => {
  const range = (id: string, name: string) => pointNamed(catalogue.get(id)!, name)?.range;

  it('bound the power limit, power factor, connection and storage controls', () => {
    expect(range('sunspec-123', 'WMaxLimPct')).toEqual({ min: 0, max: 100 });
    expect(range('sunspec-123', 'OutPFSet')).toEqual({ min: -1, max: 1 });
    expect(range('sunspec-123', 'Conn')).toEqual({ min: 0, max: 1 });
    expect(range('sunspec-124', 'StorCtl_Mod')).toEqual({ min: 0, max: 3 });
    expect(range('sunspec-124', 'InWRte')).toEqual({ min: -100, max: 100 });
    expect(range('sunspec-124', 'OutWRte')).toEqual({ min: -100, max: 100 });
    expect(range('sunspec-124', 'MinRsvPct')).toEqual({ min: 0, max: 100 });
  });
});

describe('non-SunSpec profiles', () => {
  const absolute = profiles.filter((profile) => profile.addressing === 'absolute');

  it.each(absolute.map((profile) => [profile.id, profile] as const))(
    '%s has a writable setpoint or is a meter',
    (_id, p) => {
      if (p.class === 'meter') return;
      expect(p.points.some((point) => point.access === 'rw' && point.unit !== undefined)).toBe(true);
    },
  );

  it('keep the Eastron SDM630 inside its 80-register read limit, on input registers', () => {
    const sdm = catalogue.get('eastron-sdm630')!;
    expect(sdm.points.every((point) => point.function === 4 && point.type === 'f32')).toBe(true);
    expect(sdm.barriers).toContain(80); // 30001-30080 is the largest block the meter answers
    for (const maxGap of [0, 8, MAX_READ]) {
      for (const block of plan(sdm, maxGap)) expect(block.count).toBeLessThanOrEqual(80);
    }
    expect(pointNamed(sdm, 'W')?.address).toBe(52);
    expect(pointNamed(sdm, 'TotWhImp')).toMatchObject({ address: 72, unit: 'Wh', scale: 1000 });
  });
});
