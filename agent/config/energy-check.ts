/**
 * Cross-checks of tariffs, buildings and the optimizer that a schema cannot express: names unique, a building's
 * tariff exists, every DER names a polled device that no other DER claims, SoC limits and reserve agree, a
 * shiftable load has its energy and window, a curtailable one its baseline, the time zone exists. Also the MGMC's
 * `market`, which trades what the optimizer plans: what it needs (a link, buildings, the optimizer, a signing meter),
 * its meter's name, floor against ceiling, and the anonyms its rules allow or deny.
 */
import { parseAddress } from '../identity/keys.js';
import type { CrossCheck } from './loader.js';
import type { AgentConfig } from './schema.js';
import { closest, quoteList } from './suggest.js';

function nameHint(name: string, known: readonly string[], what: string, declare: string): string {
  const near = closest(name, [...known]);
  if (near.length > 0) return `did you mean ${quoteList(near)}?`;
  return known.length > 0 ? `${what} are ${quoteList([...known], 'and')}` : declare;
}

export const checkEnergy: CrossCheck<AgentConfig> = (config, report, written = () => true) => {
  checkMarket(config, report, written);
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

type Report = Parameters<CrossCheck<AgentConfig>>[1];

function checkMarket(config: AgentConfig, report: Report, written: (path: readonly (string | number)[]) => boolean) {
  const market = config.market;
  if (config.role === 'dso') {
    if (written(['market'])) {
      report(['market'], 'no market section for role dso', "the DSO's market settings are dso.market; remove it");
    }
    return;
  }
  const meters = config.meters.map((m) => m.name);
  if (market.meter !== undefined && !meters.includes(market.meter)) {
    const isDevice = config.devices.some((d) => d.name === market.meter);
    report(
      ['market', 'meter'],
      'the name of a signing meter declared under meters',
      isDevice
        ? `'${market.meter}' is a Modbus device; trades settle on a meter that signs its readings (meters:)`
        : nameHint(market.meter, meters, 'meters', 'declare it under meters:'),
    );
  }
  if (market.enabled) {
    if (config.link === undefined) {
      report(
        ['market', 'enabled'],
        'a link section when market.enabled',
        'the market runs over the MQTT link to the DSO: add link: { url: ... }, or set enabled: false',
      );
    }
    if (config.buildings.length === 0) {
      report(
        ['market', 'enabled'],
        'buildings when market.enabled',
        'the market trades what the optimizer plans for the buildings: add buildings:, or set enabled: false',
      );
    } else if (!config.optimizer.enabled) {
      report(
        ['market', 'enabled'],
        'optimizer.enabled when market.enabled',
        'the market trades what the optimizer plans: set optimizer.enabled: true, or market.enabled: false',
      );
    }
    if (meters.length === 0) {
      report(
        ['market', 'enabled'],
        'a signing meter under meters when market.enabled',
        "trades settle on the connection meter's signed readings: declare it under meters:",
      );
    }
  }

  const rules = market.rules;
  if (rules.floorPrice !== undefined && rules.ceilingPrice !== undefined && rules.floorPrice > rules.ceilingPrice) {
    report(
      ['market', 'rules', 'floorPrice'],
      `at most ceilingPrice (${rules.ceilingPrice})`,
      'floorPrice is the least it sells for, ceilingPrice the most it buys for: were the two swapped?',
    );
  }
  if (rules.allow !== undefined && rules.allow.length === 0) {
    report(
      ['market', 'rules', 'allow'],
      'at least one anonym in allow',
      'an empty allow list trades with no one; leave allow out to trade with anyone',
    );
  }
  const allowed = new Map<string, number>();
  for (const key of ['allow', 'deny'] as const) {
    const seen = new Map<string, number>();
    rules[key]?.forEach((text, i) => {
      const at = ['market', 'rules', key, i];
      try {
        parseAddress(text);
      } catch (err) {
        report(at, 'an anonym address with a valid EIP-55 checksum', (err as Error).message.replace(/^address: /, ''));
        return;
      }
      const lower = text.toLowerCase();
      const previous = seen.get(lower);
      if (previous !== undefined) {
        report(at, 'each anonym once', `also market.rules.${key}[${previous}]`);
        return;
      }
      seen.set(lower, i);
      if (key === 'allow') allowed.set(lower, i);
      else if (allowed.has(lower)) {
        report(at, 'an anonym not also allowed', `market.rules.allow[${allowed.get(lower)}] allows it; keep one`);
      }
    });
  }
}
