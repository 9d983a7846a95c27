/**
 * mgmc optimize on the example site (examples/site.yaml): a schedule and a cost breakdown, the exported LP file
 * solved by glpsol to the same objective, and clear errors for bad options.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandError, EXIT, type Io } from '../../../agent/commands/io.js';
import { optimizeCommand } from '../../../agent/commands/optimize.js';
import { glpsolPath, solveWithGlpsol } from '../../../agent/optimizer/glpsol.js';
import type { SiteSchedule } from '../../../agent/optimizer/schedule.js';
import { describeIfTool } from '../../integration/modbus-helpers.js';

function captureIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    env: { MGMC_KEY_PASSPHRASE: 'unused by optimize' },
    stdin: process.stdin,
    stdout,
    stderr,
    out: (text) => stdout.push(text),
    err: (text) => stderr.push(text),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'mgmc-optimize-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const EXAMPLE = 'examples/site.yaml';
const AT = '2026-06-22T06:00:00+02:00';
const base = { config: EXAMPLE, at: AT, json: false, soc: ['battery=60'], plugged: ['wallbox'] };

describe('mgmc optimize', () => {
  it('prints the schedule table, what it rests on and the cost breakdown', async () => {
    const io = captureIo();
    expect(await optimizeCommand(io, base)).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toContain(
      'schedule from 2026-06-22T04:00:00.000Z for 96 intervals of 15 min (times in Europe/Berlin); optimal',
    );
    expect(text).toContain('office: EV at wallbox needs 20.0 kWh by 17:30 local (configured)');
    expect(text).toMatch(/office: load .*no history: default 3000 W/);
    expect(text).toMatch(/\ntime +import +export +pv1 +battery \(SoC %\) +wallbox +boiler +price\n06:00 /);
    expect(text).toMatch(
      /\ncost breakdown \(currency\)\n +import +export +degradation +trades +curtailment +penalties +total\noffice /,
    );
    expect(text).toMatch(/\nsite +\d+\.\d\d/);
  });

  it('--json gives the schedule whose EV gets its energy by departure', async () => {
    const io = captureIo();
    expect(await optimizeCommand(io, { ...base, json: true })).toBe(EXIT.ok);
    const parsed = JSON.parse(io.stdout.join('\n')) as { schedule: SiteSchedule; notes: string[] };
    const office = parsed.schedule.buildings[0]!;
    const ev = office.ders.find((d) => d.name === 'wallbox')!;
    const energyWh = ev.powerW.reduce((s, w) => s + w * 0.25, 0);
    expect(energyWh).toBeCloseTo(20_000, 0);
    expect(ev.shortfallWh).toBeCloseTo(0, 6);
    const boiler = office.ders.find((d) => d.name === 'boiler')!;
    expect(boiler.powerW.reduce((s, w) => s + w * 0.25, 0)).toBeCloseTo(6_000, 0);
    const battery = office.ders.find((d) => d.name === 'battery')!;
    expect(battery.socPct![0]).toBeGreaterThanOrEqual(20);
  });

  it('refuses a --soc for a battery the config does not have, and a time that is not one', async () => {
    await expect(optimizeCommand(captureIo(), { ...base, soc: ['batery=50'] })).rejects.toThrow(
      new CommandError("--soc batery=50: no battery 'batery' in the config (batteries: battery)", EXIT.usage),
    );
    await expect(optimizeCommand(captureIo(), { ...base, at: 'yesterday' })).rejects.toMatchObject({
      exitCode: EXIT.usage,
    });
  });

  it('says what to add when the config has no buildings', async () => {
    const file = join(dir, 'no-buildings.yaml');
    writeFileSync(file, readFileSync(EXAMPLE, 'utf8').replace(/\ntariffs:[\s\S]*$/, '\n'));
    await expect(optimizeCommand(captureIo(), { ...base, config: file, soc: [], plugged: [] })).rejects.toMatchObject({
      exitCode: EXIT.config,
    });
  });
});

describeIfTool(
  'glpsol',
  'glpk-utils',
  glpsolPath() !== undefined,
)('mgmc optimize --export-lp', () => {
  it('writes a model glpsol solves to the cost the schedule reports', async () => {
    const out = join(dir, 'site.lp');
    const io = captureIo();
    expect(await optimizeCommand(io, { ...base, json: true, exportLp: out })).toBe(EXIT.ok);
    const { schedule } = JSON.parse(io.stdout.join('\n')) as { schedule: SiteSchedule };
    const reference = await solveWithGlpsol(readFileSync(out, 'utf8'));
    expect(reference.status).toBe('optimal');
    expect(Math.abs(reference.objective - schedule.cost.total) / Math.abs(schedule.cost.total)).toBeLessThan(1e-6);
  });
});
