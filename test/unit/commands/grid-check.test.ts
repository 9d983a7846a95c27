/** mgmc grid check: the DSO's network check on a positions file, as text and JSON, and bad positions files. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { gridCheck, registerGridCommands } from '../../../agent/commands/grid.js';
import { CommandError, EXIT, type Io } from '../../../agent/commands/io.js';

function captureIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    env: {},
    stdin: process.stdin,
    stdout,
    stderr,
    out: (text) => stdout.push(text),
    err: (text) => stderr.push(text),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'mgmc-grid-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const EXAMPLE = 'examples/grid-positions.yaml';

describe('mgmc grid check', () => {
  it('prints the violations of each interval and the caps the DSO would send', async () => {
    const io = captureIo();
    expect(await gridCheck(io, { feeder: 'ieee33', positions: EXAMPLE, json: false })).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toContain('interval 2026-06-01T12:00:00Z: 3 position(s), import 300.0 kW, export 2500.0 kW');
    expect(text).toMatch(/ {4}overvoltage {3}bus 18: 1\.\d{4} pu, above 1\.05 pu/);
    expect(text).toMatch(
      /the caps below make it secure \(\d+ LP iteration\(s\), \d+ power flows, LP [\d.]+ ms; curtailment [\d.]+ kW\)/,
    );
    expect(text).toMatch(/\n {2}mg-end +18 +-2000\.0 +- +\d{3,4}\.\d +\d{3}\.\d\n/);
    expect(text).toContain('2 other position(s) keep their trades (no cap)');
    expect(text).toMatch(/\n {2}mg-factory +25 +2000\.0 +18\d\d\.\d +- +1\d\d\.\d\n/);
    expect(text).toContain('interval 2026-06-01T03:00:00Z: 1 position(s), import 200.0 kW, export 0.0 kW');
    expect(text).toContain('secure as reported: the DSO sends no caps');
    expect(text).toContain('all 3 interval(s) secure with the caps above');
  });

  it('prints JSON with --json', async () => {
    const io = captureIo();
    expect(await gridCheck(io, { feeder: 'ieee33', positions: EXAMPLE, json: true })).toBe(EXIT.ok);
    const json = JSON.parse(io.stdout[0] as string);
    expect(json.secure).toBe(true);
    expect(json.intervals.map((i: { status: string }) => i.status)).toEqual(['secured', 'secured', 'secure']);
    expect(json.intervals[0].start).toBe(Date.parse('2026-06-01T12:00:00Z'));
    expect(json.intervals[0].caps).toEqual([
      expect.objectContaining({ mgmc: 'mg-end', bus: '18', positionW: -2_000_000, maxExportW: expect.any(Number) }),
    ]);
    expect(json.intervals[1].violationsBefore.map((v: { kind: string }) => v.kind)).toContain('overload');
    expect(json.intervals[1].violationsAfter).toEqual([]);
  });

  it('exits 1 when an interval cannot be made secure, saying why', async () => {
    const file = join(dir, 'full-load.yaml');
    writeFileSync(file, 'intervals:\n  - interval: peak\n    netW: { "17": 100000 }\n');
    const io = captureIo();
    expect(await gridCheck(io, { feeder: 'ieee33', positions: file, json: false })).toBe(EXIT.failed);
    const text = io.stdout.join('\n');
    expect(text).toContain('NOT SECURE');
    expect(text).toContain('even with every MGMC at 0 W');
    expect(text).toMatch(/\n {2}bus 17 +17 +100\.0 +0\.0 +- +100\.0\n/);
    expect(text).toContain('not secure: peak');
  });

  it('refuses a bad positions file with file:line:col for every problem', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'scale: 0.5',
        'mgmcs: { mg-a: 99 }',
        'intervals:',
        '  - interval: 1',
        '    netW: { mg-a: 5, mg-b: 10, "18": 2.5 }',
        '  - interval: 1',
        '    netW: {}',
        '    extra: true',
        '',
      ].join('\n'),
    );
    const io = captureIo();
    const run = gridCheck(io, { feeder: 'ieee33', positions: file, json: false });
    await expect(run).rejects.toThrow(CommandError);
    const error = (await run.catch((e: unknown) => e)) as CommandError;
    expect(error.exitCode).toBe(EXIT.config);
    expect(error.message).toMatch(/bad\.yaml:8:5 {2}intervals\[1\]\.extra/);
    expect(error.message).toMatch(/bad\.yaml:5:38 {2}intervals\[0\]\.netW\["18"\] {2}an integer {2}got 2\.5/);
    const second = gridCheck(captureIo(), {
      feeder: 'ieee33',
      positions: (() => {
        const f = join(dir, 'names.yaml');
        writeFileSync(
          f,
          'mgmcs: { mg-a: 99 }\nintervals:\n  - interval: 1\n    netW: { mg-b: 10 }\n  - interval: 1\n    netW: {}\n',
        );
        return f;
      })(),
      json: false,
    });
    const named = await second.catch((e: CommandError) => e);
    expect((named as CommandError).message).toMatch(
      /names\.yaml:1:16 {2}mgmcs\.mg-a {2}a bus of the feeder {2}MGMC mg-a: no bus 99/,
    );
    expect((named as CommandError).message).toMatch(/names\.yaml:4:13 {2}intervals\[0\]\.netW\.mg-b {2}an MGMC/);
    expect((named as CommandError).message).toMatch(
      /names\.yaml:5:15 {2}intervals\[1\]\.interval {2}each interval once/,
    );
    await expect(
      gridCheck(captureIo(), { feeder: 'ieee33', positions: join(dir, 'none.yaml'), json: false }),
    ).rejects.toMatchObject({
      exitCode: EXIT.noInput,
    });
  });

  it('is wired into the CLI', async () => {
    const io = captureIo();
    const codes: number[] = [];
    const program = new Command().exitOverride();
    registerGridCommands(program, io, (code) => codes.push(code));
    await program.parseAsync(['grid', 'check', '--feeder', 'ieee33', '--positions', EXAMPLE, '--json'], {
      from: 'user',
    });
    expect(codes).toEqual([EXIT.ok]);
    expect(JSON.parse(io.stdout[0] as string).intervals).toHaveLength(3);
  });
});
