/**
 * From config to pollable devices: opens one bus per `buses` entry, finds each device's register map (a catalogue
 * profile, or SunSpec discovery on the device), places the points at absolute addresses and plans the reads.
 * A device that cannot be resolved (no answer during discovery, an unknown model) is reported and left out; the
 * others are polled regardless.
 */
import { openModbusBus } from '../../hardware/modbus/client.js';
import { discoverSunSpec } from '../../hardware/modbus/discovery.js';
import { planReads } from '../../hardware/modbus/plan.js';
import type { ModbusBus, PlacedPoint } from '../../hardware/modbus/types.js';
import type { Catalogue } from '../../hardware/profile/load.js';
import { placeProfile } from '../../hardware/profile/place.js';
import type { Profile } from '../../hardware/profile/types.js';
import type { Clock } from '../clock.js';
import { SUNSPEC_DISCOVERY } from '../config/devices-check.js';
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../logger.js';
import type { PollTarget } from './poller.js';

type BusConfig = AgentConfig['buses'][number];
type DeviceConfig = AgentConfig['devices'][number];

/** Opens every configured bus; connections are made lazily on the first request. */
export function openBuses(buses: readonly BusConfig[], clock: Clock, logger: Logger): Map<string, ModbusBus> {
  const opened = new Map<string, ModbusBus>();
  for (const bus of buses) {
    const common = {
      name: bus.name,
      timeoutMs: bus.timeoutMs,
      retries: bus.retries,
      backoff: { baseMs: bus.backoff.baseMs, maxMs: bus.backoff.maxMs, factor: 2 },
    };
    const busLogger = logger.child({ module: 'modbus', bus: bus.name });
    const deps = { clock, logger: busLogger };
    if (bus.kind === 'rtu') {
      opened.set(
        bus.name,
        openModbusBus(
          {
            ...common,
            kind: 'rtu',
            path: bus.path ?? '',
            baudRate: bus.baudRate ?? 9600,
            parity: bus.parity,
            stopBits: bus.stopBits,
          },
          deps,
        ),
      );
    } else {
      opened.set(
        bus.name,
        openModbusBus({ ...common, kind: bus.kind, host: bus.host ?? '', port: bus.port ?? 502 }, deps),
      );
    }
  }
  return opened;
}

/** Points whose names say what they are in the SunSpec model chain, not a measurement. */
const STRUCTURAL = new Set(['ID', 'L']);

/**
 * The register map of one device as placed points. For SunSpec devices the model chain is always walked on the
 * device (`base` only says where it starts), because the models present differ between firmware versions.
 */
export async function placeDevice(
  device: DeviceConfig,
  bus: ModbusBus,
  catalogue: Catalogue,
  logger: Logger,
): Promise<{ points: PlacedPoint[]; profiles: Profile[]; skippedModels: number[] }> {
  if (device.profile !== SUNSPEC_DISCOVERY) {
    const profile = catalogue.get(device.profile);
    return { points: placeProfile(profile, 0), profiles: [profile], skippedModels: [] };
  }
  const found = await discoverSunSpec(bus, device.unit, device.base === undefined ? {} : { bases: [device.base] });
  const profiles: Profile[] = [];
  const placedLists: PlacedPoint[][] = [];
  const skippedModels: number[] = [];
  for (const model of found.models) {
    const profile = catalogue.bySunspecModel(model.id);
    if (profile === undefined) {
      skippedModels.push(model.id);
      continue;
    }
    if (profile.sunspec !== undefined && profile.sunspec.length !== model.length) {
      logger.warn(
        { device: device.name, model: model.id, length: model.length, expected: profile.sunspec.length },
        `device '${device.name}': SunSpec model ${model.id} has length ${model.length}, profile ${profile.id} ` +
          `expects ${profile.sunspec.length}; reading the points both agree on`,
      );
    }
    profiles.push(profile);
    placedLists.push(placeProfile(profile, model.address));
  }
  // The same point name in two models (W in 103 and in 201) is qualified with the profile id in both.
  const counts = new Map<string, number>();
  for (const list of placedLists) for (const p of list) counts.set(p.point.name, (counts.get(p.point.name) ?? 0) + 1);
  const points = placedLists.flatMap((list) =>
    list.map((p) => ((counts.get(p.point.name) ?? 0) > 1 ? { ...p, key: `${p.profileId}.${p.point.name}` } : p)),
  );
  return { points, profiles, skippedModels };
}

/** Which placed points a device records: the configured names, or every numeric point with a unit. */
export function recordedKeys(device: DeviceConfig, points: readonly PlacedPoint[]): Set<string> {
  if (device.points !== undefined) {
    const wanted = new Set(device.points);
    return new Set(points.filter((p) => wanted.has(p.key) || wanted.has(p.point.name)).map((p) => p.key));
  }
  return new Set(
    points
      .filter(
        (p) =>
          p.point.unit !== undefined &&
          p.point.type !== 'string' &&
          p.point.type !== 'sunssf' &&
          p.point.type !== 'pad' &&
          !STRUCTURAL.has(p.point.name),
      )
      .map((p) => p.key),
  );
}

export interface ResolvedSite {
  readonly buses: Map<string, ModbusBus>;
  readonly targets: PollTarget[];
  /** Every placed point of each resolved device, controls included (setpoints are written to points not polled). */
  readonly placed: Map<string, PlacedPoint[]>;
  /** Devices left out, each with the reason a technician can act on. */
  readonly problems: { device: string; message: string }[];
}

/** Opens buses and resolves every enabled device of the config into a PollTarget. */
export async function resolveSite(
  config: Pick<AgentConfig, 'buses' | 'devices'>,
  catalogue: Catalogue,
  clock: Clock,
  logger: Logger,
  /** Buses already open (a retry of devices that could not be resolved before); new ones are added to it. */
  openBusesByName?: Map<string, ModbusBus>,
): Promise<ResolvedSite> {
  const buses = openBusesByName ?? new Map<string, ModbusBus>();
  const missing = config.buses.filter((b) => !buses.has(b.name));
  for (const [name, bus] of openBuses(missing, clock, logger)) buses.set(name, bus);
  const targets: PollTarget[] = [];
  const placed = new Map<string, PlacedPoint[]>();
  const problems: { device: string; message: string }[] = [];
  const busConfig = new Map(config.buses.map((b) => [b.name, b]));
  const maxGapOf = (bus: string) => busConfig.get(bus)?.maxGap ?? 8;
  await Promise.all(
    config.devices
      .filter((d) => d.enabled)
      .map(async (device) => {
        const bus = buses.get(device.bus);
        if (bus === undefined) {
          problems.push({ device: device.name, message: `device '${device.name}': no bus named '${device.bus}'` });
          return;
        }
        try {
          const { points, skippedModels } = await placeDevice(device, bus, catalogue, logger);
          if (skippedModels.length > 0) {
            logger.info(
              { device: device.name, models: skippedModels },
              `device '${device.name}': SunSpec models ${skippedModels.join(', ')} have no profile; not read`,
            );
          }
          placed.set(device.name, points);
          const record = recordedKeys(device, points);
          // Only blocks that hold something recorded are read; scale factors travel with their points.
          const wanted = points.filter((p) => record.has(p.key));
          const blocks = planReads(wanted, { maxGap: maxGapOf(device.bus) });
          targets.push({
            name: device.name,
            bus,
            unit: device.unit,
            blocks,
            record,
            intervalMs: device.intervalMs,
            priority: device.priority,
          });
        } catch (error) {
          problems.push({
            device: device.name,
            message: `device '${device.name}' (bus ${device.bus}, unit ${device.unit}) is left out: ${
              (error as Error).message
            }`,
          });
        }
      }),
  );
  // Config order, not the order discovery happened to finish in.
  const order = new Map(config.devices.map((d, i) => [d.name, i]));
  targets.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
  return { buses, targets, placed, problems };
}
