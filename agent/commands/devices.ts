/**
 * mgmc devices scan — SunSpec discovery on a TCP endpoint or a serial line, for the technician standing at the
 * cabinet; mgmc devices read — one decoded read of one configured device, with units, without touching the ledger.
 */
import { resolve } from 'node:path';
import { decodeBlock } from '../../hardware/codec.js';
import { openModbusBus } from '../../hardware/modbus/client.js';
import { discoverSunSpec, SunSpecNotFoundError } from '../../hardware/modbus/discovery.js';
import { planReads } from '../../hardware/modbus/plan.js';
import { type ModbusBus, ModbusError } from '../../hardware/modbus/types.js';
import { loadCatalogue } from '../../hardware/profile/load.js';
import { placeProfile } from '../../hardware/profile/place.js';
import type { DecodedValue } from '../../hardware/profile/types.js';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config/index.js';
import { silentLogger } from '../logger.js';
import { Poller } from '../poll/poller.js';
import { resolveSite } from '../poll/resolve.js';
import { CommandError, EXIT, type Io, table } from './io.js';

export interface ScanOptions {
  readonly tcp?: string;
  readonly serial?: string;
  readonly baud: number;
  readonly unit: string;
  readonly timeout: number;
  readonly points: boolean;
  readonly json: boolean;
}

/** `5` or `1-10`; unit ids are 0..255 (247 on RS-485). */
export function parseUnitRange(text: string): number[] {
  const match = /^(\d{1,3})(?:-(\d{1,3}))?$/.exec(text.trim());
  if (!match) throw new CommandError(`--unit must be N or A-B (e.g. 1-10), got '${text}'`, EXIT.usage);
  const from = Number(match[1]);
  const to = match[2] === undefined ? from : Number(match[2]);
  if (from > 255 || to > 255 || to < from) {
    throw new CommandError(`--unit ${text}: unit ids go from 0 to 255, low to high`, EXIT.usage);
  }
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function parseHostPort(text: string): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : 502;
  const host = match ? (match[1] as string) : text;
  if (port < 1 || port > 65535) throw new CommandError(`--tcp ${text}: the port must be 1..65535`, EXIT.usage);
  return { host: host.replace(/^\[(.*)\]$/, '$1'), port };
}

interface ScannedPoint {
  readonly model: number;
  readonly point: string;
  readonly value: DecodedValue;
  readonly unit: string | undefined;
}

interface ScannedUnit {
  readonly unit: number;
  readonly found: boolean;
  readonly base?: number;
  readonly endMarker?: boolean;
  readonly models?: { id: number; address: number; length: number; profile: string | undefined }[];
  readonly points?: ScannedPoint[];
  readonly problem?: string;
}

export async function devicesScan(io: Io, options: ScanOptions): Promise<number> {
  if ((options.tcp === undefined) === (options.serial === undefined)) {
    throw new CommandError('give exactly one of --tcp HOST:PORT or --serial DEVICE', EXIT.usage);
  }
  const units = parseUnitRange(options.unit);
  const clock = systemClock();
  // Scanning wants an answer or a quick no per unit: no retries, and no back-off carried between units.
  const common = { timeoutMs: options.timeout, retries: 0, backoff: { baseMs: 100, maxMs: 100 } };
  const bus: ModbusBus =
    options.tcp !== undefined
      ? openModbusBus({ ...common, name: 'scan', kind: 'tcp', ...parseHostPort(options.tcp) }, { clock })
      : openModbusBus(
          { ...common, name: 'scan', kind: 'rtu', path: options.serial as string, baudRate: options.baud },
          { clock },
        );
  const catalogue = loadCatalogue();
  const results: ScannedUnit[] = [];
  try {
    for (const unit of units) {
      try {
        const layout = await discoverSunSpec(bus, unit);
        const models = layout.models.map((m) => ({ ...m, profile: catalogue.bySunspecModel(m.id)?.id }));
        const points: ScannedPoint[] = [];
        if (options.points) {
          for (const model of layout.models) {
            const profile = catalogue.bySunspecModel(model.id);
            if (profile === undefined) continue;
            const placed = placeProfile(profile, model.address).filter((p) => p.point.type !== 'sunssf');
            for (const block of planReads(placed, { maxGap: 125 })) {
              const words = await bus.read(unit, block.function, block.start, block.count);
              const decoded = decodeBlock(block, words);
              for (const p of block.points) {
                if (p.point.name === 'ID' || p.point.name === 'L' || p.point.type === 'sunssf') continue;
                points.push({ model: model.id, point: p.key, value: decoded.get(p.key) ?? null, unit: p.point.unit });
              }
            }
          }
        }
        results.push({ unit, found: true, base: layout.base, endMarker: layout.endMarker, models, points });
      } catch (error) {
        const problem =
          error instanceof SunSpecNotFoundError || error instanceof ModbusError
            ? error.message
            : `unexpected: ${(error as Error).message}`;
        results.push({ unit, found: false, problem });
      }
    }
  } finally {
    await bus.close();
  }
  const where = options.tcp ?? `${options.serial} at ${options.baud} baud`;
  if (options.json) {
    io.out(JSON.stringify({ endpoint: where, units: results }, null, 2));
  } else {
    for (const r of results) {
      if (!r.found) {
        if (units.length === 1) io.out(`unit ${r.unit}: no SunSpec device (${r.problem})`);
        continue;
      }
      io.out(
        `unit ${r.unit}: SunSpec at ${r.base}, ${r.models?.length} models${r.endMarker ? '' : ' (no end marker)'}`,
      );
      io.out(
        table(
          ['model', 'address', 'length', 'profile'],
          (r.models ?? []).map((m) => [m.id, m.address, m.length, m.profile ?? '(no profile: not read)']),
        ),
      );
      if (r.points !== undefined && r.points.length > 0) {
        io.out('');
        io.out(
          table(
            ['model', 'point', 'value', 'unit'],
            r.points.map((p) => [p.model, p.point, p.value === null ? '-' : String(p.value), p.unit ?? '']),
          ),
        );
      }
      io.out('');
    }
    const found = results.filter((r) => r.found).length;
    io.out(`${where}: ${found} of ${units.length} unit${units.length === 1 ? '' : 's'} answered with SunSpec`);
  }
  return results.some((r) => r.found) ? EXIT.ok : EXIT.failed;
}

export async function devicesRead(io: Io, device: string, options: { config: string; json: boolean }): Promise<number> {
  const config = await loadConfig(resolve(options.config), { env: io.env });
  const wanted = config.devices.find((d) => d.name === device);
  if (wanted === undefined) {
    const names = config.devices.map((d) => d.name).join(', ') || '(none)';
    throw new CommandError(`no device '${device}' in ${options.config}; devices: ${names}`, EXIT.usage);
  }
  const clock = systemClock();
  const site = await resolveSite(
    { buses: config.buses.filter((b) => b.name === wanted.bus), devices: [{ ...wanted, enabled: true }] },
    loadCatalogue(),
    clock,
    silentLogger(),
  );
  try {
    const problem = site.problems[0];
    if (problem !== undefined) throw new CommandError(problem.message, EXIT.failed);
    // A read for the technician, not a measurement: nothing goes to the ledger.
    const poller = new Poller(site.targets, { clock, logger: silentLogger(), sink: { append: () => undefined } });
    await poller.pollOnce();
    const status = poller.status()[0];
    const values = [...poller.latest(device)].filter(([, v]) => v.value !== null);
    if (options.json) {
      io.out(JSON.stringify({ device, status, values: Object.fromEntries(values) }, null, 2));
    } else {
      io.out(`${device} (bus ${wanted.bus}, unit ${wanted.unit}, profile ${wanted.profile}): ${status?.state}`);
      if (status?.lastError !== undefined) io.out(`last error: ${status.lastError}`);
      io.out(
        table(
          ['point', 'value', 'unit'],
          values.map(([key, v]) => [key, String(v.value), v.unit ?? '']),
        ),
      );
    }
    return status?.state === 'online' ? EXIT.ok : EXIT.failed;
  } finally {
    await Promise.all([...site.buses.values()].map((b) => b.close()));
  }
}
