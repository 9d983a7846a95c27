/**
 * Cross-references of the field config that a schema cannot express: names unique, a device's bus and profile
 * exist, a unit id is used once per bus, a serial line is owned by one bus or meter, and the settings a bus kind
 * needs are there.
 */
import { type Catalogue, loadCatalogue } from '../../hardware/profile/load.js';
import type { CrossCheck } from './loader.js';
import type { AgentConfig } from './schema.js';
import { closest, quoteList } from './suggest.js';

/** `profile: sunspec` asks the agent to discover the device's SunSpec models at start-up. */
export const SUNSPEC_DISCOVERY = 'sunspec';

export const checkDevices: CrossCheck<AgentConfig> = (config, report) => {
  const busNames = new Map<string, number>();
  const serialOwners = new Map<string, string>();
  config.buses.forEach((bus, i) => {
    const previous = busNames.get(bus.name);
    if (previous !== undefined) {
      report(['buses', i, 'name'], 'a bus name used once', `'${bus.name}' is also buses[${previous}]`);
    } else {
      busNames.set(bus.name, i);
    }
    if (bus.kind === 'rtu') {
      if (bus.path === undefined) report(['buses', i], 'a path for an rtu bus', 'add path: /dev/serial/by-id/...');
      else claimSerial(serialOwners, bus.path, `buses[${i}]`, ['buses', i, 'path'], report);
      if (bus.host !== undefined) report(['buses', i, 'host'], 'no host on an rtu bus', 'did you mean kind: tcp?');
    } else {
      if (bus.host === undefined) report(['buses', i], `a host for a ${bus.kind} bus`, 'add host: 192.168.1.50');
      if (bus.path !== undefined)
        report(['buses', i, 'path'], `no path on a ${bus.kind} bus`, 'did you mean kind: rtu?');
      if (bus.baudRate !== undefined) {
        report(['buses', i, 'baudRate'], `no baudRate on a ${bus.kind} bus`, 'the gateway sets the serial speed');
      }
    }
    if (bus.backoff.maxMs < bus.backoff.baseMs) {
      report(['buses', i, 'backoff', 'maxMs'], `at least backoff.baseMs (${bus.backoff.baseMs})`);
    }
  });

  let catalogue: Catalogue | undefined;
  let catalogueProblem: string | undefined;
  const needsCatalogue = config.devices.some((d) => d.profile !== SUNSPEC_DISCOVERY);
  if (needsCatalogue) {
    try {
      catalogue = loadCatalogue();
    } catch (error) {
      catalogueProblem = error instanceof Error ? error.message : String(error);
    }
  }

  const deviceNames = new Map<string, number>();
  const unitsOnBus = new Map<string, number>();
  config.devices.forEach((device, i) => {
    const previous = deviceNames.get(device.name);
    if (previous !== undefined) {
      report(['devices', i, 'name'], 'a device name used once', `'${device.name}' is also devices[${previous}]`);
    } else {
      deviceNames.set(device.name, i);
    }
    if (!busNames.has(device.bus)) {
      const near = closest(device.bus, [...busNames.keys()]);
      const hint =
        near.length > 0
          ? `did you mean ${quoteList(near)}?`
          : busNames.size > 0
            ? `buses are ${quoteList([...busNames.keys()], 'and')}`
            : 'declare it under buses:';
      report(['devices', i, 'bus'], 'the name of a bus declared under buses', hint);
    } else if (device.enabled) {
      const key = `${device.bus}\u0000${device.unit}`;
      const other = unitsOnBus.get(key);
      if (other !== undefined) {
        report(
          ['devices', i, 'unit'],
          `a unit id not used by another device on bus '${device.bus}'`,
          `unit ${device.unit} is also devices[${other}] (${config.devices[other]?.name}); ` +
            'give each device on a bus its own unit id, here and in the device itself',
        );
      } else {
        unitsOnBus.set(key, i);
      }
    }
    if (device.profile === SUNSPEC_DISCOVERY) return;
    if (device.base !== undefined) {
      report(['devices', i, 'base'], 'base only with profile: sunspec', 'remove it or set profile: sunspec');
    }
    if (catalogue === undefined) {
      report(
        ['devices', i, 'profile'],
        'a profile from the catalogue',
        `the catalogue did not load: ${catalogueProblem}`,
      );
      return;
    }
    if (!catalogue.has(device.profile)) {
      const near = closest(device.profile, catalogue.ids());
      const hint =
        near.length > 0 ? `did you mean ${quoteList(near)}?` : `known profiles: ${catalogue.ids().join(', ')}`;
      report(['devices', i, 'profile'], `a profile id from hardware/profiles or '${SUNSPEC_DISCOVERY}'`, hint);
      return;
    }
    const profile = catalogue.get(device.profile);
    const pointNames = profile.points.map((p) => p.name);
    device.points?.forEach((name, j) => {
      if (pointNames.includes(name)) return;
      const near = closest(name, pointNames);
      report(
        ['devices', i, 'points', j],
        `a point of profile ${profile.id}`,
        near.length > 0 ? `did you mean ${quoteList(near)}?` : `see ${profile.file ?? profile.id} for its points`,
      );
    });
  });

  const meterNames = new Map<string, number>();
  const meterAddresses = new Map<string, number>();
  config.meters.forEach((meter, i) => {
    const previous = meterNames.get(meter.name) ?? (deviceNames.has(meter.name) ? -1 : undefined);
    if (previous !== undefined) {
      const where = previous === -1 ? `a device is also named '${meter.name}'` : `also meters[${previous}]`;
      report(['meters', i, 'name'], 'a name not used by another meter or device', where);
    } else {
      meterNames.set(meter.name, i);
    }
    const address = meter.address.toLowerCase();
    const sameKey = meterAddresses.get(address);
    if (sameKey !== undefined) {
      report(['meters', i, 'address'], 'a meter address used once', `meters[${sameKey}] has the same address`);
    } else {
      meterAddresses.set(address, i);
    }
    claimSerial(serialOwners, meter.path, `meters[${i}]`, ['meters', i, 'path'], report);
  });
};

function claimSerial(
  owners: Map<string, string>,
  path: string,
  owner: string,
  at: readonly (string | number)[],
  report: Parameters<CrossCheck<AgentConfig>>[1],
): void {
  const other = owners.get(path);
  if (other !== undefined) {
    report(at, 'a serial device used by one bus or meter only', `${path} is also used by ${other}`);
  } else {
    owners.set(path, owner);
  }
}
