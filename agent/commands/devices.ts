/**
 * mgmc devices scan — SunSpec discovery on a TCP endpoint or a serial line, for the technician standing at the
 * cabinet; mgmc devices read — one decoded read of one configured device, with units, without touching the ledger.
 */
import { existsSync } from 'node:fs';
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
import { closest, quoteList } from '../config/suggest.js';
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

/**
 * What a unit id turned out to be: a SunSpec device; a device that answers but has no SunSpec marker (it needs its
 * own profile); nothing answering; or something else going wrong (a garbled answer, a lost connection).
 */
export type UnitStatus = 'sunspec' | 'not-sunspec' | 'no-answer' | 'error';

interface ScannedUnit {
  readonly unit: number;
  readonly found: boolean;
  readonly status: UnitStatus;
  readonly base?: number;
  readonly endMarker?: boolean;
  readonly models?: { id: number; address: number; length: number; profile: string | undefined }[];
  readonly points?: ScannedPoint[];
  /** Blocks of points that could not be read; the models were still found. */
  readonly pointProblems?: string[];
  /** Why the unit is not a SunSpec device, in full. */
  readonly problem?: string;
  /** The same in a few words, the same for every unit that failed the same way. */
  readonly reason?: string;
}

/** The part of a bus error after `... failed: `: the bus name and request are noise to someone scanning. */
function cause(error: Error): string {
  const match = /failed: (.*)$/s.exec(error.message);
  return match ? (match[1] as string) : error.message;
}

/** A bus error without its `bus "scan" (endpoint) unit N: ` prefix, which says nothing the scan does not. */
function withoutBus(message: string): string {
  return message.replace(/^bus "[^"]*"(?: \([^)]*\))? unit \d+: /, '');
}

/** Why a unit is not a SunSpec device, in full and in a few words. */
function classify(error: unknown): { status: UnitStatus; problem: string; reason: string } {
  if (error instanceof SunSpecNotFoundError) {
    const where = error.tried.map((t) => `${t.address}: ${t.found}`).join(', ');
    return {
      status: 'not-sunspec',
      problem: withoutBus(error.message),
      reason: `answers, but no SunSpec marker (${where}); read it with its device profile`,
    };
  }
  if (error instanceof ModbusError) {
    const status = error.kind === 'timeout' ? 'no-answer' : 'error';
    // A timeout's hint names the unit id; the rest of the message is the same for every unit that failed alike.
    const reason = error.kind === 'timeout' ? (cause(error).split(':')[0] as string) : cause(error);
    return { status, problem: cause(error), reason };
  }
  const message = (error as Error).message ?? String(error);
  return { status: 'error', problem: `unexpected: ${message}`, reason: `unexpected: ${message}` };
}

/** `unit 3` or `units 5-9` for consecutive units with the same reason. */
function groupAbsent(results: readonly ScannedUnit[]): string[] {
  const lines: string[] = [];
  let run: { from: number; to: number; reason: string } | undefined;
  const flush = () => {
    if (run === undefined) return;
    const which = run.from === run.to ? `unit ${run.from}` : `units ${run.from}-${run.to}`;
    lines.push(`${which}: ${run.reason}`);
    run = undefined;
  };
  for (const r of results) {
    if (r.found) {
      flush();
      continue;
    }
    const reason = r.reason ?? r.status;
    if (run !== undefined && run.reason === reason && run.to === r.unit - 1) run.to = r.unit;
    else {
      flush();
      run = { from: r.unit, to: r.unit, reason };
    }
  }
  flush();
  return lines;
}

/** Reads the points of every model that has a profile; a block that fails is noted and the others still read. */
async function readModelPoints(
  bus: ModbusBus,
  unit: number,
  models: readonly { id: number; address: number }[],
  catalogue: ReturnType<typeof loadCatalogue>,
): Promise<{ points: ScannedPoint[]; problems: string[] }> {
  const points: ScannedPoint[] = [];
  const problems: string[] = [];
  for (const model of models) {
    const profile = catalogue.bySunspecModel(model.id);
    if (profile === undefined) continue;
    const placed = placeProfile(profile, model.address).filter((p) => p.point.type !== 'sunssf');
    for (const block of planReads(placed, { maxGap: 125 })) {
      let words: number[];
      try {
        words = await bus.read(unit, block.function, block.start, block.count);
      } catch (error) {
        if (!(error instanceof ModbusError)) throw error;
        problems.push(`model ${model.id}, registers ${block.start}+${block.count}: ${cause(error)}`);
        continue;
      }
      const decoded = decodeBlock(block, words);
      for (const p of block.points) {
        if (p.point.name === 'ID' || p.point.name === 'L' || p.point.type === 'sunssf') continue;
        points.push({ model: model.id, point: p.key, value: decoded.get(p.key) ?? null, unit: p.point.unit });
      }
    }
  }
  return { points, problems };
}

/**
 * SunSpec discovery on each unit of the range, then (unless --no-points) one read of every point of the models found.
 * Units that are not SunSpec devices are reported with the reason and do not stop the scan; an endpoint that cannot
 * be reached at all ends it at once with the reason (exit 1). Exit 0 when at least one unit answered with SunSpec.
 */
export async function devicesScan(io: Io, options: ScanOptions): Promise<number> {
  if ((options.tcp === undefined) === (options.serial === undefined)) {
    throw new CommandError('give exactly one of --tcp HOST:PORT or --serial DEVICE', EXIT.usage);
  }
  const units = parseUnitRange(options.unit);
  if (options.serial !== undefined && !existsSync(options.serial)) {
    throw new CommandError(
      `--serial ${options.serial}: no such device. USB adapters appear as /dev/ttyUSB0 or /dev/ttyACM0, with ` +
        'stable names under /dev/serial/by-id/',
      EXIT.noInput,
    );
  }
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
  const where = options.tcp ?? `${options.serial} at ${options.baud} baud`;
  const catalogue = loadCatalogue();
  const results: ScannedUnit[] = [];
  let unreachable: string | undefined;
  try {
    for (const unit of units) {
      let layout: Awaited<ReturnType<typeof discoverSunSpec>>;
      try {
        layout = await discoverSunSpec(bus, unit);
      } catch (error) {
        // The connection or port could not even be opened and nothing has answered yet: every other unit would fail
        // the same way. (A connection the device drops, as some gateways do for an unknown unit, is that unit's
        // problem only: the scan goes on.)
        if (
          error instanceof ModbusError &&
          error.kind === 'connection' &&
          cause(error).startsWith('cannot open') &&
          results.every((r) => r.status !== 'sunspec' && r.status !== 'not-sunspec')
        ) {
          unreachable = cause(error);
          break;
        }
        results.push({ unit, found: false, ...classify(error) });
        continue;
      }
      const models = layout.models.map((m) => ({ ...m, profile: catalogue.bySunspecModel(m.id)?.id }));
      const read = options.points ? await readModelPoints(bus, unit, layout.models, catalogue) : undefined;
      results.push({
        unit,
        found: true,
        status: 'sunspec',
        base: layout.base,
        endMarker: layout.endMarker,
        models,
        points: read?.points ?? [],
        ...(read !== undefined && read.problems.length > 0 ? { pointProblems: read.problems } : {}),
      });
    }
  } finally {
    await bus.close();
  }

  if (unreachable !== undefined) {
    if (!options.json) throw new CommandError(unreachable, EXIT.failed);
    io.out(JSON.stringify({ endpoint: where, ok: false, error: unreachable, units: results }, null, 2));
    return EXIT.failed;
  }
  const found = results.filter((r) => r.found);
  if (options.json) {
    io.out(JSON.stringify({ endpoint: where, ok: found.length > 0, units: results }, null, 2));
    return found.length > 0 ? EXIT.ok : EXIT.failed;
  }
  for (const r of found) {
    io.out(`unit ${r.unit}: SunSpec at ${r.base}, ${r.models?.length} models${r.endMarker ? '' : ' (no end marker)'}`);
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
    for (const problem of r.pointProblems ?? []) io.out(`could not read ${problem}`);
    io.out('');
  }
  // A single unit asked for gets the whole story; a range gets one line per run of units that failed alike.
  if (units.length === 1 && results[0] !== undefined && !results[0].found) {
    io.out(`unit ${results[0].unit}: ${results[0].problem}`);
  } else {
    for (const line of groupAbsent(results)) io.out(line);
  }
  const answered = found.length > 0 ? ` (${found.map((r) => r.unit).join(', ')})` : '';
  io.out(
    `${where}: ${found.length} of ${units.length} unit${units.length === 1 ? '' : 's'} answered with SunSpec${answered}`,
  );
  return found.length > 0 ? EXIT.ok : EXIT.failed;
}

export async function devicesRead(io: Io, device: string, options: { config: string; json: boolean }): Promise<number> {
  const config = await loadConfig(resolve(options.config), { env: io.env });
  const wanted = config.devices.find((d) => d.name === device);
  if (wanted === undefined) {
    const names = config.devices.map((d) => d.name);
    if (names.length === 0) {
      throw new CommandError(
        `${options.config} has no devices: add a devices: section (see examples/site.yaml)`,
        EXIT.usage,
      );
    }
    const near = closest(device, names);
    const hint = near.length > 0 ? `did you mean ${quoteList(near)}? ` : '';
    throw new CommandError(
      `no device '${device}' in ${options.config}: ${hint}its devices are ${quoteList(names, 'and')}`,
      EXIT.usage,
    );
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
