import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeBlock, encodeValue } from '../../../hardware/codec.js';
import { planReads } from '../../../hardware/modbus/plan.js';
import {
  catalogueDir,
  catalogueOf,
  findCatalogueDir,
  loadCatalogue,
  loadProfileFile,
  loadProfileText,
  ProfileError,
  type ProfileIssue,
  placeBarriers,
  placeProfile,
  UnknownProfileError,
} from '../../../hardware/profile/index.js';

const fixtures = fileURLToPath(new URL('../../fixtures/profiles/', import.meta.url));
const valid = join(fixtures, 'valid');
const broken = join(fixtures, 'broken');
/** How messages name a fixture: relative to the working directory, as a technician typed it. */
const shown = (dir: string, name: string): string => relative(process.cwd(), join(dir, name));

function issuesOf(load: () => unknown): readonly ProfileIssue[] {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ProfileError);
    return (error as ProfileError).issues;
  }
  throw new Error('expected a ProfileError');
}

function messageOf(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected an error');
}

const temporary: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mgmc-profiles-'));
  temporary.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of temporary.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('loading valid profiles', () => {
  const catalogue = loadCatalogue(valid);

  it('finds profiles by id and by SunSpec model', () => {
    expect(catalogue.ids()).toEqual(['test-inverter', 'test-meter']);
    expect(catalogue.has('test-meter')).toBe(true);
    expect(catalogue.has('nope')).toBe(false);
    expect(catalogue.bySunspecModel(64901)?.id).toBe('test-inverter');
    expect(catalogue.bySunspecModel(103)).toBeUndefined();
    expect(catalogue.all().map((p) => p.id)).toEqual(['test-inverter', 'test-meter']);
  });

  it('names the nearest ids for an unknown one', () => {
    expect(() => catalogue.get('test-metre')).toThrow(UnknownProfileError);
    expect(() => catalogue.get('test-metre')).toThrow(
      'no device profile "test-metre" in the catalogue; did you mean "test-meter"?',
    );
    expect(() => catalogue.get('schneider-pm5560')).toThrow('known profiles: test-inverter, test-meter');
  });

  it('applies defaults and derives sizes (absolute profile: no sentinels)', () => {
    const meter = catalogue.get('test-meter');
    expect(meter.file).toBe(join(valid, 'test-meter.yaml'));
    expect(meter.transport).toBe('rtu');
    expect(meter.barriers).toEqual([100]);
    const byName = new Map(meter.points.map((p) => [p.name, p]));
    expect(byName.get('Voltage')).toEqual({
      name: 'Voltage',
      address: 0,
      type: 'f32',
      size: 2,
      function: 4,
      wordOrder: 'little',
      byteOrder: 'big',
      scale: 1,
      unit: 'V',
      notImplemented: [],
      access: 'r',
    });
    expect(byName.get('Energy')).toMatchObject({ function: 3, wordOrder: 'big', scale: 0.1, size: 2 });
    expect(byName.get('Serial')).toMatchObject({ size: 5, byteOrder: 'little' });
  });

  it('keeps 64-bit sentinels exact and stores signed sentinels as the value they decode to', () => {
    const byName = new Map(catalogue.get('test-meter').points.map((p) => [p.name, p]));
    expect(byName.get('Counter')?.notImplemented).toEqual([0xffffffffffffffffn]);
    expect(byName.get('Status')?.notImplemented).toEqual([-32768]);
    expect(byName.get('Frequency')?.notImplemented).toEqual([0xffff]);
  });

  it('fills the SunSpec sentinels in SunSpec profiles', () => {
    const byName = new Map(catalogue.get('test-inverter').points.map((p) => [p.name, p]));
    expect(byName.get('A')?.notImplemented).toEqual([0xffff]);
    expect(byName.get('W')?.notImplemented).toEqual([-0x8000]);
    expect(byName.get('A_SF')?.notImplemented).toEqual([-0x8000]);
    expect(byName.get('Evt1')?.notImplemented).toEqual([0xffffffff]);
    expect(byName.get('WH')?.notImplemented).toEqual([0]);
    expect(byName.get('Mn')?.notImplemented).toEqual([0]);
    expect(byName.get('WMaxLimPct')).toMatchObject({
      access: 'rw',
      range: { min: 0, max: 100 },
      revertTimeout: 'WMaxLimPct_RvrtTms',
      enable: 'WMaxLim_Ena',
    });
  });

  it('keeps integers beyond 2^53 exact in any YAML notation', () => {
    const text = [
      'id: big',
      'name: Big',
      'class: meter',
      'source: test',
      'addressing: absolute',
      'points:',
      '  - { name: C, address: 0, type: u64, notImplemented: [18446744073709551615, 0x8000000000000001] }',
      '  - { name: D, address: 4, type: s64, notImplemented: [-9223372036854775807] }',
    ].join('\n');
    const profile = loadProfileText(text, 'big.yaml');
    expect(profile.points[0]?.notImplemented).toEqual([0xffffffffffffffffn, 0x8000000000000001n]);
    expect(profile.points[1]?.notImplemented).toEqual([-9223372036854775807n]);
  });
});

describe('placing profiles', () => {
  const catalogue = loadCatalogue(valid);
  const inverter = catalogue.get('test-inverter');

  it('places SunSpec offsets after the model base and carries the scale factor along', () => {
    const placed = placeProfile(inverter, 40002);
    const a = placed.find((p) => p.key === 'A');
    expect(a).toMatchObject({ profileId: 'test-inverter', address: 40004, sfAddress: 40008 });
    expect(a?.sfPoint?.name).toBe('A_SF');
    expect(placed.some((p) => p.point.type === 'pad')).toBe(false);
    expect(placed).toHaveLength(inverter.points.length - 1);
    expect(placeProfile(inverter, 0, { keyPrefix: 'inv' })[2]?.key).toBe('inv.A');
  });

  it('keeps absolute addresses and refuses a base for them', () => {
    const meter = catalogue.get('test-meter');
    expect(placeProfile(meter, 0).find((p) => p.key === 'Frequency')?.address).toBe(100);
    expect(() => placeProfile(meter, 40000)).toThrow('profile test-meter has absolute addresses; place it with base 0');
    expect(placeBarriers(meter, 0)).toEqual([100]);
    expect(() => placeProfile(inverter, 65530)).toThrow(/runs past register 65535/);
  });

  it('reads back what a device holds: place, plan, encode, decode', () => {
    const placed = placeProfile(inverter, 40002);
    const byKey = new Map(placed.map((p) => [p.key, p]));
    const bank = new Map<number, number>();
    const put = (key: string, value: number | string | null, sf?: number): void => {
      const p = byKey.get(key);
      if (p === undefined) throw new Error(key);
      for (const [i, word] of encodeValue(p.point, value, sf).entries()) bank.set(p.address + i, word);
    };
    put('A_SF', -2);
    put('A', 12.34, -2);
    put('AphA', null, -2);
    put('W_SF', 1);
    put('W', -1500, 1);
    put('Mn', 'Acme');
    put('WH', 0);
    put('WMaxLimPct_SF', 0);
    put('WMaxLimPct', 55, 0);
    const wanted = placed.filter((p) => ['A', 'AphA', 'W', 'Mn', 'WH', 'WMaxLimPct'].includes(p.key));
    const values = new Map<string, unknown>();
    for (const block of planReads(wanted)) {
      const words = Array.from({ length: block.count }, (_, i) => bank.get(block.start + i) ?? 0);
      for (const [key, value] of decodeBlock(block, words)) values.set(key, value);
    }
    expect(Object.fromEntries(values)).toEqual({
      A: 12.34,
      AphA: null,
      W: -1500,
      Mn: 'Acme',
      WH: null,
      WMaxLimPct: 55,
    });
  });
});

describe('reporting problems', () => {
  it('reports every problem of a file at once, with file:line:col, key path and hint', () => {
    const file = shown(broken, 'typos.yaml');
    const issues = issuesOf(() => loadProfileFile(join(broken, 'typos.yaml')));
    const message = messageOf(() => loadProfileFile(join(broken, 'typos.yaml')));
    expect(message.split('\n')[0]).toBe(`device profile ${file}: 8 problems`);
    expect(message).toContain(
      `${file}:8:42  points[0].sf  "A_SFF" is not a sunssf point of this profile; did you mean "A_SF"?`,
    );
    expect(message).toContain(`${file}:3:1  clas  unknown key "clas" in a profile; did you mean "class"?`);
    expect(message).toContain(
      `${file}:8:16  points[0].adress  unknown key "adress" in points[0]; did you mean "address"?`,
    );
    expect(message).toContain(`${file}:8:5  points[0].address  missing address`);
    expect(message).toContain(`${file}:1:1  class  missing class: one of meter, pv-inverter`);
    expect(message).toContain(`${file}:10:34  points[2].type  expected one of u16,`);
    expect(message).toContain('got "uint16"; the SunSpec type uint16 is "u16" here');
    expect(message).toContain(
      `${file}:11:39  points[3].acess  unknown key "acess" in points[3]; did you mean "access"?`,
    );
    expect(message).toContain(
      `${file}:15:5  points[4].wordOrdr  unknown key "wordOrdr" in points[4]; did you mean "wordOrder"?`,
    );
    // In file order, so the list reads top to bottom like the file.
    const lines = issues.map((issue) => issue.line);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('checks cross-references: duplicates, overlaps, sf, sizes, ranges, controls, model length', () => {
    const file = shown(broken, 'semantics.yaml');
    const message = messageOf(() => loadProfileFile(join(broken, 'semantics.yaml')));
    const expected = [
      `${file}:1:5  id  id "semantic" differs from the file name semantics.yaml; make them equal`,
      `${file}:9:25  points[1].address  register 3 (B) overlap points[0] (A) at registers 2..3`,
      `${file}:10:13  points[2].name  duplicate point name "A": points[0] has it too`,
      `${file}:10:43  points[2].sf  "B" is not a sunssf point of this profile (it is a u16 point)`,
      `${file}:11:5  points[3].size  missing size: a register count`,
      `${file}:12:45  points[4].size  a u32 is 2 registers, not 3; remove size`,
      `${file}:13:5  points[5].range  missing range: the write range { min, max } in the point unit`,
      `${file}:13:68  points[5].revertTimeout  "Tmo" is not a point of this profile`,
      `${file}:13:81  points[5].enable  "B" is read-only; the point that enables a control must have access: rw`,
      `${file}:14:60  points[6].range  min 10 is greater than max 5`,
      `${file}:15:27  points[7].address  the point ends at register 10, past the end of model 64903 (ID 0, L 1, last register 9)`,
      `${file}:15:52  points[7].function  SunSpec models are holding registers; use function 3`,
    ];
    for (const line of expected) expect(message).toContain(line);
    expect(message.split('\n')[0]).toBe(`device profile ${file}: ${expected.length} problems`);
  });

  it('checks absolute profiles: address space, ranges that do not fit the type, sentinels, range without rw', () => {
    const file = shown(broken, 'absolute.yaml');
    const message = messageOf(() => loadProfileFile(join(broken, 'absolute.yaml')));
    expect(message).toContain(`${file}:6:1  sunspec  sunspec is only for addressing: sunspec-model`);
    expect(message).toContain(`${file}:8:25  points[0].address  the point ends at register 65536, past 65535`);
    expect(message).toContain(`${file}:9:58  points[1].range  range 0..70000 does not fit a u16 (raw 0..65535)`);
    expect(message).toContain(
      `${file}:10:56  points[2].notImplemented[0]  expected a raw s16 value -32768..32767, got 98304`,
    );
    expect(message).toContain(
      `${file}:10:65  points[2].notImplemented[1]  expected a raw s16 value -32768..32767, got "none"`,
    );
    expect(message).toContain(`${file}:11:39  points[3].range  range limits writes; add access: rw or remove range`);
  });

  it('reports YAML syntax errors and duplicate keys with their line', () => {
    expect(messageOf(() => loadProfileFile(join(broken, 'syntax.yaml')))).toMatch(
      new RegExp(`${shown(broken, 'syntax.yaml')}:6:3  \\(yaml\\)  invalid YAML: .*end with a }`),
    );
    expect(messageOf(() => loadProfileFile(join(broken, 'duplicate-key.yaml')))).toContain(
      `${shown(broken, 'duplicate-key.yaml')}:4:1  (yaml)  this key appears twice in the same mapping; keep one of them`,
    );
  });

  it('says what is wrong with an empty file, a list, or a missing file', () => {
    expect(messageOf(() => loadProfileText('', 'empty.yaml'))).toContain('empty.yaml:1:1  (root)  expected a mapping');
    expect(messageOf(() => loadProfileText('- a\n', 'list.yaml'))).toContain('got a list');
    expect(messageOf(() => loadProfileFile(join(fixtures, 'nope.yaml')))).toContain(
      `${shown(fixtures, 'nope.yaml')}  (file)  cannot read the profile: no such file or directory`,
    );
  });

  it('collects the problems of every file of a catalogue into one error', () => {
    const issues = issuesOf(() => loadCatalogue(broken));
    const files = new Set(issues.map((issue) => issue.file));
    expect([...files].sort()).toEqual(
      ['absolute', 'duplicate-key', 'semantics', 'syntax', 'typos'].map((name) => shown(broken, `${name}.yaml`)),
    );
    expect(messageOf(() => loadCatalogue(broken)).split('\n')[0]).toBe(
      `device profiles (5 files): ${issues.length} problems`,
    );
  });

  it('refuses an id or a SunSpec model defined twice, and .yml files', () => {
    const extra = tempDir();
    copyFileSync(join(valid, 'test-meter.yaml'), join(extra, 'test-meter.yaml'));
    writeFileSync(join(extra, 'other.yml'), 'id: other\n');
    const message = messageOf(() => loadCatalogue(valid, [extra]));
    expect(message).toContain(
      `id "test-meter" is also the id of ${shown(valid, 'test-meter.yaml')}; rename one of them`,
    );
    expect(message).toContain('other.yml  (file)  profile files end in .yaml; rename this one');
    const inverter = loadProfileFile(join(valid, 'test-inverter.yaml'));
    expect(() => catalogueOf([inverter, { ...inverter, id: 'copy', file: '/x/copy.yaml' }])).toThrow(
      /SunSpec model 64901 is also described by/,
    );
  });

  it('names a catalogue directory that does not exist', () => {
    expect(messageOf(() => loadCatalogue(join(fixtures, 'missing')))).toContain(
      'cannot read the profile directory: no such file or directory',
    );
  });
});

describe('finding the shipped catalogue', () => {
  it('is hardware/profiles of this checkout when running from source', () => {
    expect(catalogueDir()).toBe(resolve(fileURLToPath(new URL('../../../hardware/profiles', import.meta.url))));
  });

  it('walks up from the compiled dist/hardware/profile to the nearest hardware/profiles', () => {
    const root = tempDir();
    mkdirSync(join(root, 'hardware', 'profiles'), { recursive: true });
    mkdirSync(join(root, 'dist', 'hardware', 'profile'), { recursive: true });
    expect(findCatalogueDir(join(root, 'dist', 'hardware', 'profile'))).toBe(join(root, 'hardware', 'profiles'));
    mkdirSync(join(root, 'dist', 'hardware', 'profiles'));
    expect(findCatalogueDir(join(root, 'dist', 'hardware', 'profile'))).toBe(
      join(root, 'dist', 'hardware', 'profiles'),
    );
  });

  it('says where it looked when there is none', () => {
    const root = tempDir();
    expect(() => findCatalogueDir(root)).toThrow(/no hardware\/profiles directory at or above/);
  });
});
