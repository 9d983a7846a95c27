/**
 * Cross-checks of tariffs, buildings and the optimizer that a schema cannot express: names unique, a building's
 * tariff exists, every DER names a polled device that no other DER claims, SoC limits and reserve agree, a
 * shiftable load has its energy and window, a curtailable one its baseline, the time zone exists.
 */
import type { CrossCheck } from './loader.js';
import type { AgentConfig } from './schema.js';
import { closest, quoteList } from './suggest.js';

function nameHint(name: string, known: readonly string[], what: string, declare: string): string {
  const near = closest(name, [...known]);
  if (near.length > 0) return `did you mean ${quoteList(near)}?`;
  return known.length > 0 ? `${what} are ${quoteList([...known], 'and')}` : declare;
}

export const checkEnergy: CrossCheck<AgentConfig> = (config, report) => {
  const tariffs = new Map<string, number>();
  config.tariffs.forEach((t, i) => {
    const previous = tariffs.get(t.name);
    if (previous !== undefined) report(['tariffs', i, 'name'], 'a tariff name used once', `also tariffs[${previous}]`);
    else tariffs.set(t.name, i);
  });
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: config.optimizer.timeZone });
  } catch {
    report(
      ['optimizer', 'timeZone'],
      'an IANA time zone such as Europe/Berlin',
      `'${config.optimizer.timeZone}' is unknown`,
    );
  }
  if (config.role === 'dso' && config.buildings.length > 0) {
    report(['buildings'], 'no buildings for role dso', 'buildings are planned by an MGMC; remove them');
  }

  const devices = config.devices.map((d) => d.name);
  const claimed = new Map<string, string>();
  const claim = (device: string, at: (string | number)[], owner: string) => {
    if (!devices.includes(device)) {
      report(
        at,
        'the name of a device declared under devices',
        nameHint(device, devices, 'devices', 'declare it under devices:'),
      );
      return;
    }
    const other = claimed.get(device);
    if (other !== undefined) report(at, 'a device used by one DER only', `'${device}' is also ${other}`);
    else claimed.set(device, owner);
  };
  const buildingNames = new Map<string, number>();
  config.buildings.forEach((b, i) => {
    const at = (...rest: (string | number)[]) => ['buildings', i, ...rest];
    const previous = buildingNames.get(b.name);
    if (previous !== undefined) report(at('name'), 'a building name used once', `also buildings[${previous}]`);
    else buildingNames.set(b.name, i);
    if (!tariffs.has(b.tariff)) {
      report(
        at('tariff'),
        'the name of a tariff declared under tariffs',
        nameHint(b.tariff, [...tariffs.keys()], 'tariffs', 'declare it under tariffs:'),
      );
    }
    if (b.load.meter !== undefined && !devices.includes(b.load.meter)) {
      report(
        at('load', 'meter'),
        'the name of a device declared under devices',
        nameHint(b.load.meter, devices, 'devices', 'declare it under devices:'),
      );
    }
    b.pv.forEach((p, j) => {
      claim(p.device, at('pv', j, 'device'), `buildings[${i}].pv[${j}]`);
    });
    b.batteries.forEach((k, j) => {
      claim(k.device, at('batteries', j, 'device'), `buildings[${i}].batteries[${j}]`);
      if (k.socMinPct >= k.socMaxPct) {
        report(at('batteries', j, 'socMaxPct'), `above socMinPct (${k.socMinPct})`, 'the BMS window would be empty');
      }
      if (k.reservePct < k.socMinPct || k.reservePct > k.socMaxPct) {
        report(
          at('batteries', j, 'reservePct'),
          `between socMinPct (${k.socMinPct}) and socMaxPct (${k.socMaxPct})`,
          'the reserve is a state of charge the BMS allows',
        );
      }
    });
    b.evChargers.forEach((e, j) => {
      claim(e.device, at('evChargers', j, 'device'), `buildings[${i}].evChargers[${j}]`);
    });
    const flexNames = new Set<string>();
    b.flexibleLoads.forEach((f, j) => {
      if (flexNames.has(f.name)) report(at('flexibleLoads', j, 'name'), 'a load name used once in the building');
      flexNames.add(f.name);
      if (f.device !== undefined)
        claim(f.device, at('flexibleLoads', j, 'device'), `buildings[${i}].flexibleLoads[${j}]`);
      if (f.kind === 'shiftable') {
        if (f.energyWh === undefined)
          report(at('flexibleLoads', j), 'energyWh for a shiftable load', 'the energy to run each day, Wh');
        if (f.window === undefined)
          report(
            at('flexibleLoads', j),
            'a window for a shiftable load',
            'e.g. window: { from: "10:00", to: "16:00" }',
          );
        else if (f.window.from === f.window.to)
          report(at('flexibleLoads', j, 'window', 'to'), 'a time other than window.from');
        if (f.baselineW !== undefined)
          report(
            at('flexibleLoads', j, 'baselineW'),
            'no baselineW on a shiftable load',
            'did you mean kind: curtailable?',
          );
      } else {
        if (f.baselineW === undefined)
          report(at('flexibleLoads', j), 'baselineW for a curtailable load', 'its usual power, W');
        if (f.window !== undefined || f.energyWh !== undefined) {
          report(
            at('flexibleLoads', j, f.window !== undefined ? 'window' : 'energyWh'),
            'no window or energyWh on a curtailable load',
            'did you mean kind: shiftable?',
          );
        }
      }
    });
  });
};
