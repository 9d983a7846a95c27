/**
 * The field-device commands of the compiled CLI, run as a newcomer runs them (`node dist/agent/cli.js ...`, after
 * `npm run build`): `mgmc sim` as a child process that prints its endpoints and runs until SIGTERM; `mgmc devices scan`
 * against it over TCP and over an RTU line on a socat pty; `mgmc devices read` through a config made from what the
 * simulator printed; and the five-minute walk-through of docs/cli.md, from the simulator to a ledger that verifies.
 *
 * Everything waits for output lines rather than sleeping, with generous deadlines: a loaded 2-core machine runs these
 * next to the rest of the suite.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { socatAvailable } from '../../sim/pty.js';
import { describeIfTool } from './modbus-helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'agent', 'cli.js');
const PASSPHRASE = 'a long passphrase for the walk-through';
/** Per command: node's start-up alone can take seconds on a busy machine. */
const COMMAND_MS = 90_000;
const TEST_MS = 240_000;

const describeWithSocat = describeIfTool('socat', 'socat', socatAvailable());

// ---------------------------------------------------------------------------------------------------------------
// Running the CLI

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function environment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MGMC_KEY_PASSPHRASE: PASSPHRASE };
  // The test runner's own Node options are not part of a newcomer's shell.
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs one command to its end, stdin not a terminal. */
function mgmc(args: readonly string[], cwd = ROOT): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: environment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(
        new Error(
          `mgmc ${args.join(' ')} did not finish within ${COMMAND_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, COMMAND_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** A readable failure message: the command and what it printed. */
const said = (args: readonly string[], run: Run): string =>
  `mgmc ${args.join(' ')} exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;

async function ok(args: readonly string[], cwd?: string): Promise<Run> {
  const run = await mgmc(args, cwd);
  expect(run.code, said(args, run)).toBe(0);
  return run;
}

/** A long-running command (the simulator, the agent) whose output can be waited for. */
class Background {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly args: readonly string[],
    cwd = ROOT,
  ) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: environment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      this.stdout += s;
      for (const l of this.listeners) l();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
    });
    this.exit = new Promise((done) => {
      this.child.on('exit', (code, signal) => {
        for (const l of this.listeners) l();
        done({ code, signal });
      });
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private describe(): string {
    return `mgmc ${this.args.join(' ')}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`;
  }

  /** Resolves with the first match of `pattern` in stdout; rejects if the process ends first or the time runs out. */
  waitFor(pattern: RegExp, timeoutMs = COMMAND_MS): Promise<RegExpMatchArray> {
    return new Promise((done, fail) => {
      const check = () => {
        const match = pattern.exec(this.stdout);
        if (match) return finish(() => done(match));
        if (!this.running) finish(() => fail(new Error(`ended before printing ${pattern}: ${this.describe()}`)));
      };
      const timer = setTimeout(
        () => finish(() => fail(new Error(`no ${pattern} within ${timeoutMs} ms: ${this.describe()}`))),
        timeoutMs,
      );
      const finish = (then: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        then();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Sends the signal and waits for the process to end (SIGKILL after `killAfterMs`). */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    killAfterMs = COMMAND_MS,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    try {
      return await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }
}

const started: Background[] = [];
function background(args: readonly string[], cwd?: string): Background {
  const b = new Background(args, cwd);
  started.push(b);
  return b;
}

/** Stops what this file started and a failed test left running: SIGTERM first, so a simulator removes its socat
 * ptys (a SIGKILL would leave them behind), SIGKILL if it does not stop. */
async function stopLeftovers(): Promise<void> {
  for (const b of started) if (b.running) await b.stop('SIGTERM', 15_000);
}

// ---------------------------------------------------------------------------------------------------------------
// What the simulator prints

interface EndpointRow {
  readonly server: string;
  readonly kind: 'tcp' | 'rtu';
  /** host:port or the pty path the agent side opens. */
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  readonly baudRate?: number;
  readonly unit: number;
  readonly device: string;
  readonly profiles: readonly string[];
}

const READY = /^Ctrl-C stops the simulator\.$/m;

/** The endpoint table of `mgmc sim`: `server  tcp HOST:PORT | rtu PATH @BAUD  unit  device  profiles`. */
function parseEndpoints(stdout: string): EndpointRow[] {
  const rows: EndpointRow[] = [];
  const row = /^(\S+)\s+(?:tcp (\S+):(\d+)|rtu (\S+) @(\d+))\s+(\d+)\s+(\S+)\s+(\S.*)$/gm;
  for (const m of stdout.matchAll(row)) {
    const common = { server: m[1] as string, unit: Number(m[6]), device: m[7] as string };
    const profiles = (m[8] as string).trim().split(/\s+/);
    rows.push(
      m[2] !== undefined
        ? { ...common, kind: 'tcp', host: m[2], port: Number(m[3]), profiles }
        : { ...common, kind: 'rtu', path: m[4] as string, baudRate: Number(m[5]), profiles },
    );
  }
  return rows;
}

/** A port nobody listens on (bound, then released). */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** True when something accepts a TCP connection on host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host, port });
    socket.setTimeout(5000);
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
    socket.once('timeout', () => {
      socket.destroy();
      done(false);
    });
  });
}

/** The value column of a `point value unit` row of a scan or read table, as a number. */
function tableValue(stdout: string, prefix: string, point: string, unit: string): number {
  const row = new RegExp(`^${prefix}${point}\\s+(-?[\\d.]+(?:e[+-]?\\d+)?)\\s+${unit}\\s*$`, 'm').exec(stdout);
  if (row === null) throw new Error(`no row for ${point} in ${unit}:\n${stdout}`);
  return Number(row[1]);
}

/** The agent config a newcomer writes: the fixed sections, then what the simulator printed for buses and devices. */
function agentConfig(fieldSections: string, extra = ''): string {
  return `role: mgmc
site: { name: cli walk-through }
identity: { keystore: ./keys/mgmc.json, passphrase: env:MGMC_KEY_PASSPHRASE }
store: { path: ./data/mgmc.db }
ledger: { sealEverySeconds: 1, sealEveryRecords: 1000 }
log: { level: info }
${extra}${fieldSections}`;
}

// ---------------------------------------------------------------------------------------------------------------

let dir: string;

beforeAll(() => {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: run \`npm run build\` first (\`npm test\` builds before testing)`);
  }
  // Testing an old build would pass or fail for the wrong reasons: the sources these commands run must be built.
  const stale: string[] = [];
  for (const folder of ['agent', 'sim', 'hardware', 'firmware-bridge']) {
    for (const file of readdirSync(join(ROOT, folder), { recursive: true }) as string[]) {
      if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
      const source = join(ROOT, folder, file);
      const built = join(ROOT, 'dist', folder, file.replace(/\.ts$/, '.js'));
      // A source with no compiled counterpart is imported by nothing built yet: only changed files count.
      if (existsSync(built) && statSync(built).mtimeMs < statSync(source).mtimeMs) stale.push(relative(ROOT, source));
    }
  }
  if (stale.length > 0) {
    throw new Error(
      `dist/ is older than ${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ', ...' : ''}: run \`npm run build\``,
    );
  }
  dir = mkdtempSync(join(tmpdir(), 'mgmc-cli-devices-'));
});

afterAll(async () => {
  await stopLeftovers();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// A site with Modbus TCP only, so these run without socat. 11:00 on a June morning: the PV produces.
const TCP_SITE = `name: cli-tcp
seed: 7
start: 2024-06-17T11:00:00+02:00
servers:
  - { name: lan, kind: tcp, port: 0 }
devices:
  - { kind: pv-inverter, name: pv, server: lan, unit: 1 }
  - { kind: battery, name: battery, server: lan, unit: 2 }
  - { kind: ev-charger, name: ev, server: lan, unit: 3 }
  - { kind: building-load, name: office }
  - { kind: meter, name: grid, server: lan, unit: 4, profiles: [sunspec-1, sunspec-203] }
`;

describe('mgmc sim and mgmc devices over Modbus TCP', () => {
  let sim: Background;
  let host: string;
  let port: number;
  let site: string;
  let config: string;

  beforeAll(async () => {
    site = join(dir, 'tcp-site.yaml');
    writeFileSync(site, TCP_SITE);
    sim = background(['sim', '--site', site, '--write-config', join(dir, 'tcp-devices.yaml')]);
    await sim.waitFor(READY);
    const lan = parseEndpoints(sim.stdout).filter((r) => r.kind === 'tcp');
    host = lan[0]?.host as string;
    port = lan[0]?.port as number;
    config = join(dir, 'tcp-mgmc.yaml');
    writeFileSync(config, agentConfig(readFileSync(join(dir, 'tcp-devices.yaml'), 'utf8')));
  }, TEST_MS);

  it('sim prints every served unit with its endpoint and profiles, and the agent config sections', () => {
    expect(sim.stdout).toMatch(/^simulated site 'cli-tcp' running \(.*tcp-site\.yaml, 1x real time\)$/m);
    const rows = parseEndpoints(sim.stdout);
    expect(rows.map((r) => [r.server, r.kind, r.unit, r.device])).toEqual([
      ['lan', 'tcp', 1, 'pv'],
      ['lan', 'tcp', 2, 'battery'],
      ['lan', 'tcp', 3, 'ev'],
      ['lan', 'tcp', 4, 'grid'],
    ]);
    expect(rows[0]?.profiles).toEqual(['sunspec-1', 'sunspec-103', 'sunspec-120', 'sunspec-123']);
    expect(rows[2]?.profiles).toEqual(['alfen-eve']);
    expect(new Set(rows.map((r) => `${r.host}:${r.port}`)).size).toBe(1);
    expect(host).toBe('127.0.0.1');
    expect(port).toBeGreaterThan(0);
    // The same sections on stdout and in the --write-config file, pointing at the port just printed.
    const written = readFileSync(join(dir, 'tcp-devices.yaml'), 'utf8');
    expect(sim.stdout).toContain(written.trim());
    expect(written).toContain(`port: ${port}`);
    expect(written).toMatch(/- name: pv\n\s+bus: lan\n\s+unit: 1\n\s+profile: sunspec/);
  });

  it('scan of one unit lists its SunSpec models and decoded points with units', async () => {
    const args = ['devices', 'scan', '--tcp', `${host}:${port}`];
    const run = await ok(args);
    const out = run.stdout;
    expect(out).toMatch(/^unit 1: SunSpec at 40000, 4 models$/m);
    for (const [model, profile] of [
      [1, 'sunspec-1'],
      [103, 'sunspec-103'],
      [120, 'sunspec-120'],
      [123, 'sunspec-123'],
    ]) {
      expect(out).toMatch(new RegExp(`^${model}\\s+\\d+\\s+\\d+\\s+${profile}$`, 'm'));
    }
    expect(out).toMatch(/^1\s+Mn\s+mgmc-sim\s*$/m);
    expect(out).toMatch(/^1\s+SN\s+SIM-pv\s*$/m);
    expect(tableValue(out, '103\\s+', 'W', 'W')).toBeGreaterThan(100);
    expect(tableValue(out, '103\\s+', 'PhVphA', 'V')).toBeGreaterThan(200);
    expect(tableValue(out, '103\\s+', 'Hz', 'Hz')).toBeCloseTo(50, 0);
    // The lifetime counter starts at the inverter's installed history, never at 0 ("not implemented").
    expect(tableValue(out, '103\\s+', 'WH', 'Wh')).toBeGreaterThan(1_000_000);
    expect(tableValue(out, '120\\s+', 'WRtg', 'W')).toBe(9000);
    // Temperatures are not simulated: "not implemented" shows as '-', never as a number.
    expect(out).toMatch(/^103\s+TmpCab\s+-\s+C$/m);
    expect(out).toMatch(new RegExp(`^${host}:${port}: 1 of 1 unit answered with SunSpec \\(1\\)$`, 'm'));
    expect(run.stderr).toBe('');
  });

  it('scan --json of a range reports each unit: SunSpec, answering without SunSpec, or absent', async () => {
    const args = ['devices', 'scan', '--tcp', `${host}:${port}`, '--unit', '1-5', '--timeout', '2000', '--json'];
    const run = await ok(args);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ endpoint: `${host}:${port}`, ok: true });
    expect(report.units.map((u: { unit: number; status: string }) => [u.unit, u.status])).toEqual([
      [1, 'sunspec'],
      [2, 'sunspec'],
      [3, 'not-sunspec'],
      [4, 'sunspec'],
      [5, 'no-answer'],
    ]);
    const [pv, battery, ev, meter, absent] = report.units;
    expect(pv.models.map((m: { id: number }) => m.id)).toEqual([1, 103, 120, 123]);
    expect(battery.models.map((m: { profile: string }) => m.profile)).toEqual([
      'sunspec-1',
      'sunspec-103',
      'sunspec-120',
      'sunspec-124',
    ]);
    const point = (unit: { points: { point: string; value: unknown; unit?: string }[] }, name: string) =>
      unit.points.find((p) => p.point === name);
    expect(point(battery, 'ChaState')).toMatchObject({ model: 124, unit: '%' });
    expect(point(meter, 'TotWhImp')).toMatchObject({ model: 203, unit: 'Wh' });
    expect(point(meter, 'TotWhImp')?.value as number).toBeGreaterThan(1_000_000);
    expect(point(meter, 'W')?.unit).toBe('W');
    // The charger answers, but with its own map: it needs its profile, not SunSpec.
    expect(ev).toMatchObject({ found: false, reason: expect.stringContaining('answers, but no SunSpec marker') });
    expect(ev.problem).toContain('exception 2');
    expect(absent).toMatchObject({ found: false, reason: 'no answer within 2000 ms' });
    expect(absent.problem).toContain('check that unit id 5 is right');
  });

  it('scan of a range in text names the absent units without failing the others', async () => {
    const args = ['devices', 'scan', '--tcp', `${host}:${port}`, '--unit', '3-6', '--timeout', '2000', '--no-points'];
    const run = await ok(args);
    expect(run.stdout).toMatch(/^unit 4: SunSpec at 40000, 2 models$/m);
    expect(run.stdout).toMatch(/^203\s+40070\s+105\s+sunspec-203$/m);
    expect(run.stdout).toMatch(
      /^unit 3: answers, but no SunSpec marker \(40000: exception 2, 0: exception 2, 50000: exception 2\); read it with its device profile$/m,
    );
    expect(run.stdout).toMatch(/^units 5-6: no answer within 2000 ms$/m);
    expect(run.stdout).toMatch(/: 1 of 4 units answered with SunSpec \(4\)$/m);
    // --no-points: models only.
    expect(run.stdout).not.toMatch(/TotWhImp/);
  });

  it('scan of a unit with no SunSpec device exits 1 and says why', async () => {
    const args = ['devices', 'scan', '--tcp', `${host}:${port}`, '--unit', '3'];
    const run = await mgmc(args);
    expect(run.code, said(args, run)).toBe(1);
    expect(run.stdout).toMatch(/^unit 3: not a SunSpec device: no "SunS" marker/m);
    expect(run.stdout).toContain('Configure a device-specific profile');
    expect(run.stdout).toMatch(/: 0 of 1 unit answered with SunSpec$/m);
  });

  it('scan of a port where nothing listens exits 1 at once with the reason, in text and in JSON', async () => {
    const closed = await freePort();
    const args = ['devices', 'scan', '--tcp', `127.0.0.1:${closed}`, '--unit', '1-10'];
    const run = await mgmc(args);
    expect(run.code, said(args, run)).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`mgmc: cannot open 127.0.0.1:${closed}: connect ECONNREFUSED`);
    expect(run.stderr).toContain('check the address and port');
    // One line, not one per unit of the range.
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    const json = await mgmc([...args, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      endpoint: `127.0.0.1:${closed}`,
      ok: false,
      error: expect.stringContaining('ECONNREFUSED'),
      units: [],
    });
  });

  it('scan exits 2 for a usage mistake and 66 for a serial device that does not exist', async () => {
    const neither = await mgmc(['devices', 'scan']);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('give exactly one of --tcp HOST:PORT or --serial DEVICE');
    const both = await mgmc(['devices', 'scan', '--tcp', `${host}:${port}`, '--serial', '/dev/ttyUSB0']);
    expect(both.code).toBe(2);
    const range = await mgmc(['devices', 'scan', '--tcp', `${host}:${port}`, '--unit', '9-3']);
    expect(range.code).toBe(2);
    expect(range.stderr).toContain('unit ids go from 0 to 255, low to high');
    const missing = join(dir, 'ttyNOPE');
    const serial = await mgmc(['devices', 'scan', '--serial', missing]);
    expect(serial.code).toBe(66);
    expect(serial.stderr).toContain(`--serial ${missing}: no such device`);
    expect(serial.stderr).toContain('/dev/serial/by-id/');
  });

  it('read prints one device once with units, from a config made of what the simulator printed', async () => {
    const args = ['devices', 'read', '--config', config, 'pv'];
    const run = await ok(args);
    expect(run.stdout).toMatch(/^pv \(bus lan, unit 1, profile sunspec\): online$/m);
    expect(tableValue(run.stdout, '', 'W', 'W')).toBeGreaterThan(100);
    expect(tableValue(run.stdout, '', 'WH', 'Wh')).toBeGreaterThan(1_000_000);
    const volts = tableValue(run.stdout, '', 'PhVphA', 'V');
    expect(volts).toBeGreaterThan(200);
    expect(volts).toBeLessThan(260);
    expect(tableValue(run.stdout, '', 'WRtg', 'W')).toBe(9000);
  });

  it('read --json gives values with units, for a SunSpec meter and a charger with its own profile', async () => {
    const meter = JSON.parse((await ok(['devices', 'read', '--config', config, 'grid', '--json'])).stdout);
    expect(meter).toMatchObject({ device: 'grid', status: { state: 'online', bus: 'lan', unit: 4 } });
    expect(meter.values.W).toMatchObject({ unit: 'W' });
    expect(meter.values.Hz.unit).toBe('Hz');
    expect(meter.values.Hz.value).toBeGreaterThan(49.5);
    expect(meter.values.Hz.value).toBeLessThan(50.5);
    expect(meter.values.TotWhImp.unit).toBe('Wh');
    expect(meter.values.TotWhImp.value).toBeGreaterThan(1_000_000);
    expect(meter.values.TotWhExp.value).toBeGreaterThan(1_000_000);
    // Points the simulator does not implement are left out, never reported as 0.
    expect(meter.values.TotVArhImpQ1).toBeUndefined();

    const ev = JSON.parse((await ok(['devices', 'read', 'ev', '--config', config, '--json'])).stdout);
    expect(ev).toMatchObject({ device: 'ev', status: { state: 'online' } });
    expect(ev.values.PhVphA.unit).toBe('V');
    expect(ev.values.TotWhDel.unit).toBe('Wh');
    expect(ev.values.TotWhDel.value).toBeGreaterThan(100_000);
  });

  it('read of an unknown device exits 2 naming the known ones', async () => {
    const run = await mgmc(['devices', 'read', '--config', config, 'pvv']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain("no device 'pvv' in");
    expect(run.stderr).toContain("did you mean 'pv'?");
    expect(run.stderr).toContain("its devices are 'pv', 'battery', 'ev' and 'grid'");
  });

  it('the simulator is still running after all that, and SIGTERM stops it cleanly and closes its port', async () => {
    expect(sim.running).toBe(true);
    expect(await accepts(host, port)).toBe(true);
    const exit = await sim.stop('SIGTERM');
    expect(exit, sim.stderr).toEqual({ code: 0, signal: null });
    expect(sim.stdout).toMatch(/^simulator stopped \(SIGTERM\); its ports and ptys are closed$/m);
    expect(sim.stderr).toBe('');
    expect(await accepts(host, port)).toBe(false);
  });
});

describe('mgmc sim: problems at start-up', () => {
  it('exits 66 for a site file that does not exist and 78 for one with mistakes, listing them', async () => {
    const missing = await mgmc(['sim', '--site', join(dir, 'no-such-site.yaml')]);
    expect(missing.code).toBe(66);
    expect(missing.stderr).toContain('no-such-site.yaml does not exist');
    const bad = join(dir, 'bad-site.yaml');
    writeFileSync(bad, 'sede: 1\ndevices:\n  - { kind: pv-inverter, name: pv, params: { acRatingWW: 5 } }\n');
    const run = await mgmc(['sim', '--site', bad]);
    expect(run.code).toBe(78);
    expect(run.stderr).toContain(`${bad}:1:1  sede  a known top-level key  did you mean 'seed'?`);
    expect(run.stderr).toMatch(/bad-site\.yaml:3:\d+\s+devices\[0\]\.params\.acRatingWW/);
  });

  it('exits 1 naming the port when a TCP server cannot listen', async () => {
    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    const taken = (blocker.address() as { port: number }).port;
    try {
      const file = join(dir, 'taken.yaml');
      writeFileSync(
        file,
        `servers:\n  - { name: lan, kind: tcp, port: ${taken} }\ndevices:\n  - { kind: pv-inverter, name: pv, server: lan }\n`,
      );
      const run = await mgmc(['sim', '--site', file]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`cannot listen on 127.0.0.1:${taken} (server 'lan' in ${file}): the port is in use`);
    } finally {
      blocker.close();
    }
  });
});

// An RTU line on a socat pty pair: a SunSpec inverter at unit 1 and an SDM630 meter (not SunSpec) at unit 2.
const RTU_SITE = `name: cli-rtu
seed: 11
start: 2024-06-17T11:00:00+02:00
servers:
  - { name: rs485, kind: rtu, baudRate: 19200 }
devices:
  - { kind: pv-inverter, name: pv, server: rs485, unit: 1 }
  - { kind: building-load, name: office }
  - { kind: meter, name: grid, server: rs485, unit: 2 }
`;

describeWithSocat('mgmc devices over Modbus RTU on a pty', () => {
  let sim: Background;
  let line: EndpointRow;
  let config: string;

  beforeAll(async () => {
    const site = join(dir, 'rtu-site.yaml');
    writeFileSync(site, RTU_SITE);
    sim = background(['sim', '--site', site, '--json']);
    // --json: one line with the endpoints and the agent config, then the simulator runs.
    const printed = JSON.parse((await sim.waitFor(/^\{.*\}$/m))[0]);
    const rtu = printed.endpoints.find((e: { kind: string }) => e.kind === 'rtu');
    line = {
      server: rtu.server,
      kind: 'rtu',
      path: rtu.path,
      baudRate: rtu.baudRate,
      unit: 0,
      device: '',
      profiles: [],
    };
    config = join(dir, 'rtu-mgmc.yaml');
    writeFileSync(config, agentConfig(printed.agentConfig));
  }, TEST_MS);

  afterAll(async () => {
    if (sim === undefined) return;
    expect(await sim.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('the simulator gives the agent the other end of the pty pair, at the configured speed', () => {
    expect(line.path).toMatch(/rs485$/);
    expect(existsSync(line.path as string)).toBe(true);
    expect(line.baudRate).toBe(19200);
  });

  it('scan --serial finds the SunSpec inverter, the meter that is not SunSpec, and no one at unit 3', async () => {
    const args = [
      'devices',
      'scan',
      '--serial',
      line.path as string,
      '--baud',
      '19200',
      '--unit',
      '1-3',
      '--timeout',
      '2000',
    ];
    const run = await ok(args);
    expect(run.stdout).toMatch(/^unit 1: SunSpec at 40000, 4 models$/m);
    expect(run.stdout).toMatch(/^123\s+\d+\s+24\s+sunspec-123$/m);
    expect(tableValue(run.stdout, '103\\s+', 'W', 'W')).toBeGreaterThan(100);
    expect(tableValue(run.stdout, '103\\s+', 'WH', 'Wh')).toBeGreaterThan(1_000_000);
    expect(run.stdout).toMatch(/^unit 2: answers, but no SunSpec marker/m);
    expect(run.stdout).toMatch(/^unit 3: no answer within 2000 ms$/m);
    expect(run.stdout).toMatch(
      new RegExp(`^${line.path} at 19200 baud: 1 of 3 units answered with SunSpec \\(1\\)$`, 'm'),
    );
  });

  it('scan --serial --json of one unit', async () => {
    const args = ['devices', 'scan', '--serial', line.path as string, '--baud', '19200', '--no-points', '--json'];
    const report = JSON.parse((await ok(args)).stdout);
    expect(report).toMatchObject({ endpoint: `${line.path} at 19200 baud`, ok: true });
    expect(report.units).toHaveLength(1);
    expect(report.units[0]).toMatchObject({ unit: 1, status: 'sunspec', base: 40000, endMarker: true, points: [] });
  });

  it('read of the SDM630 over the pty decodes its float registers with units', async () => {
    const read = JSON.parse((await ok(['devices', 'read', '--config', config, 'grid', '--json'])).stdout);
    expect(read).toMatchObject({ device: 'grid', status: { state: 'online', bus: 'rs485', unit: 2 } });
    expect(read.values.PhVphA.unit).toBe('V');
    expect(read.values.PhVphA.value).toBeGreaterThan(200);
    expect(read.values.W.unit).toBe('W');
    expect(read.values.TotWhImp.unit).toBe('Wh');
    expect(read.values.TotWhImp.value).toBeGreaterThan(1_000_000);
  });
});

describeWithSocat('the five-minute walk-through of docs/cli.md', () => {
  it(
    'sim, scan, keygen, config check, devices read, run, ledger verify: readings and meter batches in a chain that verifies',
    async () => {
      const home = join(dir, 'walk-through');
      mkdirSync(join(home, 'data'), { recursive: true });
      // `mgmc keygen` does not create the keystore's directory (see the report); a newcomer makes it first.
      mkdirSync(join(home, 'keys'));
      const fieldFile = join(home, 'site-devices.yaml');

      // The embedded default site; sped up so the signing meter closes a batch every wall-clock second.
      const sim = background(['sim', '--speed', '60', '--write-config', fieldFile]);
      await sim.waitFor(READY);
      const rows = parseEndpoints(sim.stdout);
      expect(rows.map((r) => r.device)).toEqual(['pv', 'battery', 'ev', 'pv-meter', 'grid-meter']);
      expect(sim.stdout).toMatch(/^signing meter grid-signer \(0x[0-9a-fA-F]{40}\) on \S+ @115200$/m);
      const lan = rows.find((r) => r.kind === 'tcp') as EndpointRow;

      const scan = await ok(['devices', 'scan', '--tcp', `127.0.0.1:${lan.port}`, '--unit', '1-4']);
      expect(scan.stdout).toMatch(/: 3 of 4 units answered with SunSpec \(1, 2, 4\)$/m);
      expect(scan.stdout).toMatch(/^unit 3: answers, but no SunSpec marker/m);

      await ok(['keygen', '--out', 'keys/mgmc.json'], home);
      writeFileSync(join(home, 'mgmc.yaml'), agentConfig(readFileSync(fieldFile, 'utf8')));
      expect((await ok(['config', 'check', 'mgmc.yaml'], home)).stdout).toContain('mgmc.yaml: ok');

      const pv = await ok(['devices', 'read', 'pv', '--config', 'mgmc.yaml'], home);
      expect(pv.stdout).toMatch(/^pv \(bus lan, unit 1, profile sunspec\): online$/m);

      const agent = background(['run', '--config', 'mgmc.yaml'], home);
      for (const device of ['pv', 'battery', 'ev', 'pv-meter', 'grid-meter']) {
        await agent.waitFor(new RegExp(`"msg":"device '${device}' \\(bus [a-z0-9]+, unit \\d+\\) answers"`));
      }
      await agent.waitFor(/"msg":"meter 'grid-signer' says hello"/);
      // Run until a meter batch is in a sealed block; `ledger export` reads the database beside the running agent.
      const deadline = Date.now() + COMMAND_MS;
      for (;;) {
        const exported = await mgmc(['ledger', 'export', '--db', 'data/mgmc.db'], home);
        if (exported.code === 0 && exported.stdout.includes('"type":"meter-batch"')) break;
        if (Date.now() > deadline) throw new Error(`no meter batch in the ledger: ${agent.stdout}\n${agent.stderr}`);
        if (!agent.running) throw new Error(`the agent stopped: ${agent.stdout}\n${agent.stderr}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const stopped = await agent.stop('SIGTERM');
      expect(stopped, agent.stderr).toEqual({ code: 0, signal: null });
      expect(agent.stdout).toMatch(/"msg":"stopped"/);
      expect(agent.stderr).toBe('');

      const verify = await ok(['ledger', 'verify', '--db', 'data/mgmc.db'], home);
      expect(verify.stdout).toMatch(/data\/mgmc\.db: ok — \d+ block\(s\), \d+ record\(s\) verified/);
      const report = JSON.parse((await ok(['ledger', 'verify', '--db', 'data/mgmc.db', '--json'], home)).stdout);
      expect(report).toMatchObject({ ok: true, unsealed: 0 });
      expect(report.records).toBeGreaterThan(10);

      // What is in it: decoded readings of every device with units, and the meter's own signed batches.
      const lines = (await ok(['ledger', 'export', '--db', 'data/mgmc.db'], home)).stdout.trim().split('\n');
      // docs/protocol.md §7: a header line, then blocks and records, each record as {kind: 'record', record}.
      const records = lines
        .map((l) => JSON.parse(l))
        .filter((l) => l.kind === 'record')
        .map((l) => l.record);
      const readings = records.filter((r) => r.type === 'reading').map((r) => r.body);
      const seen = new Set(readings.map((b: { device: string }) => b.device));
      for (const device of ['pv', 'battery', 'ev', 'pv-meter', 'grid-meter']) expect(seen, device).toContain(device);
      const reading = (device: string, point: string) =>
        readings.find((b: { device: string; point: string }) => b.device === device && b.point === point);
      expect(reading('pv', 'W')).toMatchObject({ unit: 'W' });
      // Signed data holds integers: volts are stored as millivolts (DESIGN.md section 4).
      const volts = reading('grid-meter', 'PhVphA');
      expect(volts).toMatchObject({ unit: 'mV' });
      expect(Number.isInteger(volts.value)).toBe(true);
      expect(volts.value).toBeGreaterThan(200_000);
      expect(volts.value).toBeLessThan(260_000);
      expect(reading('grid-meter', 'TotWhImp')?.unit).toBe('Wh');
      expect(reading('grid-meter', 'TotWhImp')?.value).toBeGreaterThan(1_000_000);
      expect(records.some((r) => r.type === 'meter-batch')).toBe(true);

      expect(sim.running).toBe(true);
      expect(await sim.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    },
    TEST_MS,
  );
});
