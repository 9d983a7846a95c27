/**
 * Interop with a Modbus server we did not write: pymodbus 3.0 (Debian's python3-pymodbus, which imports only with
 * /usr/bin/python3) serving a SunSpec layout built with pymodbus' own payload builder
 * (test/fixtures/pymodbus/sunspec_server.py). Our side discovers the model chain, decodes the common block, and
 * resolves and polls the inverter exactly as the agent does.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import type { NewRecord } from '../../agent/ledger/records.js';
import { silentLogger } from '../../agent/logger.js';
import { Poller } from '../../agent/poll/poller.js';
import { resolveSite } from '../../agent/poll/resolve.js';
import { wallClock } from '../../hardware/clock.js';
import { decodeBlock } from '../../hardware/codec.js';
import { openModbusBus } from '../../hardware/modbus/client.js';
import { discoverSunSpec } from '../../hardware/modbus/discovery.js';
import { planReads } from '../../hardware/modbus/plan.js';
import type { ModbusBus } from '../../hardware/modbus/types.js';
import { loadCatalogue } from '../../hardware/profile/load.js';
import { placeProfile } from '../../hardware/profile/place.js';
import type { DecodedValue } from '../../hardware/profile/types.js';
import { describeIfTool } from './modbus-helpers.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../fixtures/pymodbus/sunspec_server.py', import.meta.url));

function pymodbusAvailable(): boolean {
  const r = spawnSync(
    PYTHON,
    ['-c', 'import pymodbus.server.async_io, pymodbus.datastore, pymodbus.payload, pymodbus.constants'],
    { stdio: 'ignore' },
  );
  return r.error === undefined && r.status === 0;
}

/** Starts the server on a free port; resolves with the port once it prints READY. */
function startServer(child: ChildProcessWithoutNullStreams, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`pymodbus server ${why}; stdout: ${stdout.trim()} stderr: ${stderr.trim()}`));
    };
    const timer = setTimeout(() => fail(`printed no READY line within ${timeoutMs} ms`), timeoutMs);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /^READY (\d+)$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited (code ${code}, signal ${signal})`));
  });
}

const catalogue = loadCatalogue();

const describePymodbus = describeIfTool(`pymodbus under ${PYTHON}`, 'python3-pymodbus', pymodbusAvailable());

describePymodbus('interop with a pymodbus 3.0 SunSpec server', () => {
  let child: ChildProcessWithoutNullStreams | undefined;
  let port: number;
  const buses: ModbusBus[] = [];

  beforeAll(async () => {
    // stdin stays open: the script exits when it closes, so it never outlives this process.
    child = spawn(PYTHON, [SCRIPT, '0', '1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    port = await startServer(child);
  });

  afterAll(async () => {
    for (const bus of buses) await bus.close();
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const force = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(force);
  });

  it('discovers the model chain [1, 103] with its end marker and decodes the common block', async () => {
    const bus = openModbusBus(
      { kind: 'tcp', name: 'pymodbus', host: '127.0.0.1', port, timeoutMs: 2000, retries: 0 },
      { clock: wallClock() },
    );
    buses.push(bus);
    const layout = await discoverSunSpec(bus, 1);
    expect(layout.base).toBe(40000);
    expect(layout.models).toEqual([
      { id: 1, address: 40002, length: 66 },
      { id: 103, address: 40070, length: 50 },
    ]);
    expect(layout.endMarker).toBe(true);
    expect(layout.stoppedBy).toBe('end-marker');

    const common = placeProfile(catalogue.get('sunspec-1'), 40002).filter((p) => p.point.type !== 'pad');
    const values = new Map<string, DecodedValue>();
    for (const block of planReads(common)) {
      const words = await bus.read(1, block.function, block.start, block.count);
      for (const [key, value] of decodeBlock(block, words)) values.set(key, value);
    }
    expect(values.get('ID')).toBe(1);
    expect(values.get('L')).toBe(66);
    expect(values.get('Mn')).toBe('PyModbus Interop');
    expect(values.get('Md')).toBe('SunSpec-103-Sim');
    expect(values.get('Opt')).toBe('opt-a');
    expect(values.get('Vr')).toBe('1.2.3');
    expect(values.get('SN')).toBe('SN-000042');
    expect(values.get('DA')).toBe(7);
  });

  it('resolves and polls the inverter: scale factors, signs, a 32-bit counter, not-implemented points', async () => {
    const clock = systemClock();
    const site = await resolveSite(
      {
        buses: [
          {
            name: 'lan',
            kind: 'tcp',
            host: '127.0.0.1',
            port,
            parity: 'none',
            stopBits: 1,
            timeoutMs: 2000,
            retries: 0,
            maxGap: 8,
            backoff: { baseMs: 1000, maxMs: 60_000 },
          },
        ],
        devices: [
          { name: 'pv', bus: 'lan', unit: 1, profile: 'sunspec', intervalMs: 1000, priority: 5, enabled: true },
        ],
      },
      catalogue,
      clock,
      silentLogger(),
    );
    buses.push(...site.buses.values());
    expect(site.problems).toEqual([]);
    expect(site.targets.map((t) => t.name)).toEqual(['pv']);

    const batches: NewRecord[][] = [];
    const poller = new Poller(site.targets, {
      clock,
      logger: silentLogger(),
      sink: { append: (records) => batches.push([...records]) },
    });
    for (let cycle = 0; cycle < 2; cycle++) {
      const result = await poller.pollOnce();
      expect(result.failures).toBe(0);
    }
    expect(batches).toHaveLength(2);
    expect(poller.status()[0]?.state).toBe('online');

    const readings = new Map(
      (batches[1] ?? []).filter((r) => r.type === 'reading').map((r) => [r.body.point, [r.body.value, r.body.unit]]),
    );
    expect(readings.get('W')).toEqual([4321, 'W']);
    expect(readings.get('A')).toEqual([18750, 'mA']); // 1875 with A_SF -2
    expect(readings.get('AphA')).toEqual([6250, 'mA']);
    expect(readings.get('PhVphA')).toEqual([231400, 'mV']); // 2314 with V_SF -1
    expect(readings.get('PhVphC')).toEqual([230900, 'mV']);
    expect(readings.get('Hz')).toEqual([50020, 'mHz']); // 5002 with Hz_SF -2
    expect(readings.get('WH')).toEqual([1234567, 'Wh']); // acc32 above 16 bits
    expect(readings.get('VAr')).toEqual([-1200, 'var']);
    expect(readings.get('PF')).toEqual([980, 'permille']); // 98 %
    expect(readings.get('DCV')).toEqual([380500, 'mV']);
    expect(readings.get('TmpCab')).toEqual([41200, 'mC']);
    // Not implemented (0xFFFF, 0x8000), or scaled by a not-implemented scale factor: no reading, never a number.
    for (const point of ['AphB', 'AphC', 'PhVphB', 'PPVphAB', 'TmpSnk', 'DCA']) expect(readings.has(point)).toBe(false);
    const latest = poller.latest('pv');
    expect(latest.get('PhVphB')?.value).toBeNull();
    expect(latest.get('DCA')?.value).toBeNull();
    expect(latest.get('Hz')?.value).toBe(50.02);
    expect(latest.get('A')?.value).toBe(18.75);
  });
});
