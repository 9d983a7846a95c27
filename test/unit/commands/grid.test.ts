import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { gridPowerflow, gridReconfigure, registerGridCommands } from '../../../agent/commands/grid.js';
import { CommandError, EXIT, type Io } from '../../../agent/commands/io.js';
import { loadFeederFile } from '../../../agent/grid/feeder-file.js';

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

const dir = mkdtempSync(join(tmpdir(), 'mgmc-grid-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mgmc grid powerflow', () => {
  it('prints voltages, loadings, losses and violations of the built-in IEEE 33 feeder', async () => {
    const io = captureIo();
    expect(await gridPowerflow(io, { feeder: 'ieee33', json: false })).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toContain('feeder ieee33: 33 buses, 37 lines (open switches s33, s34, s35, s36, s37), 12.66 kV');
    expect(text).toMatch(/power flow: converged in \d+ sweeps/);
    expect(text).toMatch(/\n18 +0\.9131 +-?\d+\.\d{3} +90\.0 +40\.0 +LOW\n/);
    expect(text).toMatch(/\ns1 +1 +2 +closed +3917\.7 +2435\.1 +\d+\.\d +300 +\d+\.\d +/);
    expect(text).toMatch(/\ns33 +21 +8 +open +- +- +- +100 +- +-\n/);
    expect(text).toContain('losses 202.68 kW / 135.14 kvar');
    expect(text).toContain('voltage: min 0.9131 pu at bus 18, max 1.0000 pu at bus 1; most loaded line s1 at');
    expect(text).toContain('violations: 21 (voltage band 0.95-1.05 pu, lines up to 100 % of ampacity)');
    expect(text).toContain('  undervoltage  bus 18: 0.9131 pu, below 0.95 pu');
    expect(io.stderr).toEqual([]);
  });

  it('prints one JSON object with --json, without the solver state', async () => {
    const io = captureIo();
    expect(await gridPowerflow(io, { feeder: 'ieee33', json: true })).toBe(EXIT.ok);
    expect(io.stdout).toHaveLength(1);
    const json = JSON.parse(io.stdout[0] as string);
    expect(json.status).toBe('converged');
    expect(json.lossKw).toBeCloseTo(202.677, 3);
    expect(json.minVoltage.bus).toBe('18');
    expect(json.violations).toHaveLength(21);
    expect(json.openSwitches).toEqual(['s33', 's34', 's35', 's36', 's37']);
    expect(json.buses).toHaveLength(33);
    expect(json.state).toBeUndefined();
  });

  it('applies a loads file, and exits 1 naming the bus when the power flow diverges', async () => {
    const loads = join(dir, 'absurd.yaml');
    writeFileSync(loads, 'scale: 10\n');
    const io = captureIo();
    expect(await gridPowerflow(io, { feeder: 'ieee33', loads, json: false })).toBe(EXIT.failed);
    expect(io.stderr.join('\n')).toMatch(
      /^mgmc: the power flow diverged at sweep \d+: the voltage at bus \d+ collapsed/,
    );
    const json = captureIo();
    expect(await gridPowerflow(json, { feeder: 'ieee33', loads, json: true })).toBe(EXIT.failed);
    expect(JSON.parse(json.stdout[0] as string)).toMatchObject({ converged: false, status: 'diverged', ok: false });
  });

  it('ends with exit 78 and file:line:col for a bad feeder file, 66 for a missing one', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'name: bad\nbaseKv: 10\nbaseMva: 1\nbuses:\n  - { name: 1 }\n  - { name: 2 }\nlines:\n' +
        '  - { from: 1, to: 2, rOhm: -1, xOhm: 0.1, ampacityA: 10 }\n',
    );
    const error = await gridPowerflow(captureIo(), { feeder: bad, json: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).exitCode).toBe(EXIT.config);
    expect((error as CommandError).message).toBe(
      `${bad}: 1 problem\n${bad}:8:29  lines[0].rOhm  a resistance of at least 0 ohm  line 1-2 has -1`,
    );
    const missing = await gridPowerflow(captureIo(), { feeder: join(dir, 'nope.yaml'), json: false }).catch(
      (e: unknown) => e,
    );
    expect((missing as CommandError).exitCode).toBe(EXIT.noInput);
    expect((missing as CommandError).message).toMatch(/nope\.yaml does not exist .*built-in feeder: ieee33/);
  });
});

describe('mgmc grid reconfigure', () => {
  it('reports the open switches, losses and minimum voltage before and after', async () => {
    const io = captureIo();
    expect(await gridReconfigure(io, { feeder: 'ieee33', penalty: 0, json: false })).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/open switches +s33, s34, s35, s36, s37 +s7, s9, s14, s32, s37/);
    expect(text).toMatch(/losses \(kW\) +202\.68 +139\.55 \(-31\.1 %\)/);
    expect(text).toMatch(/min voltage +0\.9131 pu at bus 18 +0\.9378 pu at bus 32/);
    expect(text).toContain('exchanges made:\n  close s35, open s8: losses 153.49 kW');
  });

  it('writes the reconfigured feeder with --out, and never overwrites', async () => {
    const out = join(dir, 'reconfigured.yaml');
    const io = captureIo();
    expect(await gridReconfigure(io, { feeder: 'ieee33', penalty: 0, out, json: true })).toBe(EXIT.ok);
    const json = JSON.parse(io.stdout[0] as string);
    expect(json.after.openSwitches).toEqual(['s7', 's9', 's14', 's32', 's37']);
    expect(json.before.lossKw).toBeCloseTo(202.677, 3);
    const written = await loadFeederFile(out);
    expect(written.lines.filter((l) => l.status === 'open').map((l) => l.name)).toEqual(json.after.openSwitches);
    const before = readFileSync(out, 'utf8');
    const again = await gridReconfigure(captureIo(), { feeder: 'ieee33', out, json: false }).catch((e: unknown) => e);
    expect((again as CommandError).exitCode).toBe(EXIT.cantCreate);
    expect(readFileSync(out, 'utf8')).toBe(before);
  });
});

describe('registerGridCommands', () => {
  async function run(argv: string[]): Promise<{ code: number | undefined; io: ReturnType<typeof captureIo> }> {
    const io = captureIo();
    let code: number | undefined;
    const program = new Command('mgmc').exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
    registerGridCommands(program, io, (c) => {
      code = c;
    });
    await program.parseAsync(['node', 'mgmc', ...argv]);
    return { code, io };
  }

  it('wires the options to the handlers', async () => {
    const ok = await run(['grid', 'powerflow', '--feeder', 'ieee33', '--json']);
    expect(ok.code).toBe(EXIT.ok);
    expect(JSON.parse(ok.io.stdout[0] as string).iterations).toBeGreaterThan(2);
    const capped = await run(['grid', 'powerflow', '--feeder', 'ieee33', '--max-iterations', '2']);
    expect(capped.code).toBe(EXIT.failed);
    expect(capped.io.stderr.join('')).toMatch(/did not converge in 2 sweeps/);
    const out = join(dir, 'wired.yaml');
    const reconfigured = await run(['grid', 'reconfigure', '--feeder', 'ieee33', '--penalty', '0', '--out', out]);
    expect(reconfigured.code).toBe(EXIT.ok);
    expect(existsSync(out)).toBe(true);
  });

  it('refuses bad option values', async () => {
    await expect(run(['grid', 'powerflow', '--feeder', 'ieee33', '--max-iterations', '0'])).rejects.toThrow(
      /--max-iterations must be an integer >= 1/,
    );
    await expect(run(['grid', 'reconfigure', '--feeder', 'ieee33', '--penalty', 'x'])).rejects.toThrow(
      /--penalty must be a number >= 0/,
    );
  });
});
