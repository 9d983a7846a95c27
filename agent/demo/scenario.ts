/**
 * The demo's microgrids and the files it writes for them: a simulated site file per MGMC (its devices served over
 * loopback Modbus TCP), the MGMC's own config, and the DSO's config. The files are real configs a technician can read
 * and run with `mgmc run --config` — the demo only loads them the way the agent does.
 *
 * The sites are sized like small microgrids (hundreds of kW) and placed on the IEEE 33-bus feeder where they strain
 * it: PV at the end of the main feeder (bus 18) lifts the voltage at noon; a factory charging a large battery on the
 * night tariff (bus 25) loads its lateral at night. The DSO's network check catches both and caps the positions.
 */

export interface DemoMicrogrid {
  readonly name: string;
  readonly bus: string;
  readonly description: string;
  readonly load: { readonly profile: 'office' | 'commercial' | 'residential'; readonly peakW: number };
  readonly pv?: { readonly dcWp: number; readonly acW: number };
  readonly battery?: { readonly capacityWh: number; readonly maxW: number };
  readonly ev: boolean;
  /** A night tariff (22:00-06:00) below the day price: what makes a big battery charge at night. */
  readonly nightTariff: boolean;
}

/** In the order the demo takes them; `--mgmcs N` takes the first N. */
export const DEMO_MICROGRIDS: readonly DemoMicrogrid[] = [
  {
    name: 'offices',
    bus: '18',
    description: 'offices at the end of the main feeder: 2.2 MWp PV, 200 kWh battery, 300 kW peak load',
    load: { profile: 'office', peakW: 300_000 },
    pv: { dcWp: 2_200_000, acW: 2_000_000 },
    battery: { capacityWh: 200_000, maxW: 100_000 },
    ev: true,
    nightTariff: false,
  },
  {
    name: 'campus',
    bus: '14',
    description: 'a campus: 330 kWp PV, 1 MWh battery, 250 kW peak load',
    load: { profile: 'commercial', peakW: 250_000 },
    pv: { dcWp: 330_000, acW: 300_000 },
    battery: { capacityWh: 1_000_000, maxW: 500_000 },
    ev: true,
    nightTariff: false,
  },
  {
    name: 'factory',
    bus: '25',
    description: 'a factory on a lateral: no PV, 2 MWh battery on a night tariff, 600 kW peak load',
    load: { profile: 'commercial', peakW: 600_000 },
    battery: { capacityWh: 2_000_000, maxW: 1_000_000 },
    ev: false,
    nightTariff: true,
  },
  {
    name: 'homes',
    bus: '30',
    description: 'a housing block: 66 kWp PV, 100 kWh battery, 80 kW peak load',
    load: { profile: 'residential', peakW: 80_000 },
    pv: { dcWp: 66_000, acW: 60_000 },
    battery: { capacityWh: 100_000, maxW: 50_000 },
    ev: true,
    nightTariff: false,
  },
  {
    name: 'depot',
    bus: '22',
    description: 'a bus depot: 130 kWp PV, 100 kW peak load',
    load: { profile: 'commercial', peakW: 100_000 },
    pv: { dcWp: 130_000, acW: 120_000 },
    ev: true,
    nightTariff: true,
  },
  {
    name: 'school',
    bus: '6',
    description: 'a school near the substation: 110 kWp PV, 60 kW peak load',
    load: { profile: 'office', peakW: 60_000 },
    pv: { dcWp: 110_000, acW: 100_000 },
    ev: false,
    nightTariff: false,
  },
];

export const DEMO_CHAIN_ID = 1337;
export const DEMO_TIME_ZONE = 'Europe/Berlin';
export const DEMO_LOCATION = { latitudeDeg: 48.14, longitudeDeg: 11.58 };
/** Grid prices of the DSO's market band and of every site's tariff by day, currency/kWh. */
export const DEMO_PRICES = { import: 0.3, night: 0.22, export: 0.08, imbalance: 0.35 };
/** Length of a market (and grid-check) interval. */
export const DEMO_MARKET_MINUTES = 60;
export const PASSPHRASE_VAR = 'MGMC_DEMO_PASSPHRASE';

/**
 * The simulated site of one microgrid (sim/README.md): every device on one loopback Modbus TCP server, and the
 * signing connection meter on a pseudo-terminal (socat).
 */
export function simSiteYaml(m: DemoMicrogrid, start: string, seed: number): string {
  const lines = [
    `# The simulated devices of '${m.name}' (${m.description}).`,
    `name: ${m.name}`,
    `seed: ${seed}`,
    `location: { latitudeDeg: ${DEMO_LOCATION.latitudeDeg}, longitudeDeg: ${DEMO_LOCATION.longitudeDeg} }`,
    `start: ${start}`,
    'cloudiness: 0.15',
    'servers:',
    '  - { name: lan, kind: tcp, port: 0 }',
    'devices:',
    `  - { kind: building-load, name: load, params: { profile: ${m.load.profile}, peakW: ${m.load.peakW} } }`,
  ];
  if (m.pv !== undefined) {
    lines.push(
      `  - { kind: pv-inverter, name: pv, params: { dcCapacityWp: ${m.pv.dcWp}, acRatingW: ${m.pv.acW} }, server: lan }`,
    );
  }
  if (m.battery !== undefined) {
    const b = m.battery;
    lines.push(
      `  - { kind: battery, name: battery, server: lan,`,
      `      params: { capacityWh: ${b.capacityWh}, maxChargeW: ${b.maxW}, maxDischargeW: ${b.maxW}, socStartPct: 50 } }`,
    );
  }
  if (m.ev) lines.push('  - { kind: ev-charger, name: ev, server: lan, profiles: [alfen-eve] }');
  lines.push('  - { kind: meter, name: grid-meter, server: lan }');
  // The connection meter signs its readings (a pty of its own): what the market settles on and the DSO trusts.
  lines.push('signingMeters:', '  - { name: grid-signer, meter: grid-meter, batchSeconds: 900, sampleSeconds: 60 }');
  return `${lines.join('\n')}\n`;
}

export interface MgmcYamlOptions {
  readonly brokerUrl: string;
  /** The `buses:` and `devices:` sections the simulated site printed (sim agentConfig()). */
  readonly fieldSections: string;
  /** Relative to the MGMC's directory. */
  readonly genesis: string;
}

/** The MGMC's config, as a technician would write it for this site (sealing and timeouts sized for the speed-up). */
export function mgmcYaml(m: DemoMicrogrid, o: MgmcYamlOptions): string {
  // Simulated minutes: the demo runs a day in about two minutes, so polling every 5 simulated minutes is every
  // third of a second of wall time.
  const field = o.fieldSections.replace(/^(\s+)profile: (.*)$/gm, '$1profile: $2\n$1intervalMs: 300000');
  const peak = m.load.peakW + (m.battery?.maxW ?? 0) + (m.ev ? 11_000 : 0);
  const night = m.nightTariff
    ? `\n      periods:\n        - { from: "22:00", to: "06:00", price: ${DEMO_PRICES.night} }`
    : '';
  const building = [
    `  - name: ${m.name}`,
    '    tariff: grid',
    `    importLimitW: ${Math.ceil(peak * 1.2)}`,
    `    exportLimitW: ${Math.ceil((m.pv?.acW ?? 0) + (m.battery?.maxW ?? 0))}`,
    `    load: { meter: grid-meter, defaultW: ${Math.round(m.load.peakW * 0.4)} }`,
  ];
  if (m.pv !== undefined) {
    building.push(`    pv: [{ device: pv, peakWp: ${m.pv.dcWp}, acRatingW: ${m.pv.acW} }]`);
  }
  if (m.battery !== undefined) {
    const b = m.battery;
    building.push(
      '    batteries:',
      `      - { device: battery, capacityWh: ${b.capacityWh}, maxChargeW: ${b.maxW}, maxDischargeW: ${b.maxW},`,
      '          socMinPct: 10, socMaxPct: 95, reservePct: 15, degradationCostPerKWh: 0.02 }',
    );
  }
  if (m.ev) building.push('    evChargers: [{ device: ev, maxPowerW: 11000 }]');
  return `# '${m.name}' on bus ${m.bus} of the IEEE 33-bus feeder: ${m.description}.
# Written by \`mgmc demo\`; run it alone with: mgmc run --config <this file> (with the demo's broker and DSO up).
role: mgmc
site: { name: ${m.name} }
chainId: ${DEMO_CHAIN_ID}
identity: { keystore: ./key.json, passphrase: env:${PASSPHRASE_VAR} }
store: { path: ./mgmc.db, synchronous: normal }
# A block every 15 simulated minutes.
ledger: { sealEverySeconds: 900, sealEveryRecords: 5000 }
log: { level: warn }
link: { url: "${o.brokerUrl}", protocolVersion: 4, receiptTimeoutMs: 3600000 }
dso: { genesis: ${o.genesis}, feederBus: "${m.bus}", trade: { buy: true, sell: true } }
${field.trimEnd()}
tariffs:
  - name: grid
    import:
      price: ${DEMO_PRICES.import}${night}
    export: { price: ${DEMO_PRICES.export} }
buildings:
${building.join('\n')}
optimizer:
  stepMinutes: 15
  horizonHours: 24
  timeZone: ${DEMO_TIME_ZONE}
  location: { latitudeDeg: ${DEMO_LOCATION.latitudeDeg}, longitudeDeg: ${DEMO_LOCATION.longitudeDeg} }
  revertSeconds: 1800
market:
  enabled: true
  green: ${m.pv !== undefined}
  intervalMinutes: ${DEMO_MARKET_MINUTES}
  rules: { floorPrice: 0.10, ceilingPrice: 0.28 }
`;
}

export interface DsoYamlOptions {
  readonly brokerUrl: string;
  readonly allow: readonly string[];
}

/** The DSO's config: the registration allow-list holds the demo's MGMCs, so they are authorized at once. */
export function dsoYaml(o: DsoYamlOptions): string {
  return `# The DSO node of the demo. Written by \`mgmc demo\`.
role: dso
site: { name: demo DSO }
chainId: ${DEMO_CHAIN_ID}
identity: { keystore: ./key.json, passphrase: env:${PASSPHRASE_VAR} }
store: { path: ./dso.db, synchronous: normal }
log: { level: warn }
link: { url: "${o.brokerUrl}", protocolVersion: 4 }
dso:
  genesis: ./genesis.json
  policy: { mode: allow-list, allow: [${o.allow.map((a) => `"${a}"`).join(', ')}] }
  sealEverySeconds: 900
`;
}
