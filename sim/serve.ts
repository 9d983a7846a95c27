/**
 * A running simulated site (`mgmc sim`): the physics stepped on a timer, each served device's registers behind a
 * real Modbus server (TCP on a port, RTU on one end of a socat pty pair), signing meters on ptys of their own, and
 * the scripted faults. agentConfig() prints the `buses:`, `devices:` and `meters:` an agent needs to poll exactly
 * these endpoints.
 *
 * Time: the injected clock is the wall clock (a manual clock in tests). The site runs on a simulated clock derived
 * from it: simulated time = start + elapsed wall time x speed, never behind the physics' last step (stepPhysics may
 * move the site ahead). Fault windows, revert timers and the signing meters' batches all run on simulated time, so
 * a site file's `from: 3600` means an hour into the simulated day at any speed.
 */

import { stringify } from 'yaml';
import {
  type HardwareClock,
  type HardwareLogger,
  silentLogger,
  type TimerHandle,
  wallClock,
} from '../hardware/clock.js';
import { registerCount } from '../hardware/codec.js';
import { type Catalogue, loadCatalogue } from '../hardware/profile/load.js';
import { type BankFault, FaultyBank } from './devices/bank-faults.js';
import { SimDeviceRegisters } from './devices/register-map.js';
import { FirmwarePeer, type MeterSample } from './firmware-peer.js';
import type { RegisterBank } from './modbus/bank.js';
import { type Fault, FaultPlan } from './modbus/faults.js';
import { type ModbusRtuServerHandle, startModbusRtuServer } from './modbus/rtu-server.js';
import { type ModbusTcpServerHandle, startModbusTcpServer } from './modbus/tcp-server.js';
import type { MeterSnapshot } from './physics/meter.js';
import { SimSite } from './physics/site.js';
import { openPtyPair, type PtyPair } from './pty.js';
import {
  loadSiteFile,
  type SimFaultSpec,
  type SimServedDevice,
  type SimSiteConfig,
  type SiteFileOptions,
  WIRE_FAULT_KINDS,
} from './site-file.js';

export interface SimulatedSiteOptions {
  /** The wall clock the site runs against. Default the system clock; tests pass a manual one. */
  readonly clock?: HardwareClock;
  /** Simulated seconds per wall-clock second; overrides the file's `speed`. */
  readonly speed?: number;
  /** Address every TCP server listens on; overrides the file's `host`. */
  readonly host?: string;
  readonly logger?: HardwareLogger;
  /** Wall-clock ms between physics steps. Default 1000 / speed, within 50..1000. */
  readonly tickMs?: number;
  /** Profiles to serve from. Default the shipped catalogue. */
  readonly catalogue?: Catalogue;
  /** How a site file given by path is read (env for `env:` keys). */
  readonly siteFile?: SiteFileOptions;
}

/** One unit on an endpoint. */
export interface SimEndpointUnit {
  readonly unit: number;
  readonly device: string;
  readonly profiles: readonly string[];
}

/** Where the agent reaches one server of the site. */
export type SimEndpoint =
  | {
      readonly server: string;
      readonly kind: 'tcp';
      readonly host: string;
      readonly port: number;
      readonly units: readonly SimEndpointUnit[];
    }
  | {
      readonly server: string;
      readonly kind: 'rtu';
      /** The agent's end of the pty pair. */
      readonly path: string;
      readonly baudRate: number;
      readonly units: readonly SimEndpointUnit[];
    };

/** A signing meter, as the agent's `meters:` section names it. */
export interface SimSigningMeter {
  readonly name: string;
  /** The site meter it measures. */
  readonly meter: string;
  /** The agent's end of its pty pair. */
  readonly path: string;
  readonly baudRate: number;
  /** The meter's address (EIP-55). */
  readonly address: string;
  readonly peer: FirmwarePeer;
}

/** A served device with its registers and its bank-level faults. */
export interface ServedSimDevice {
  readonly spec: SimServedDevice;
  readonly registers: SimDeviceRegisters;
  /** The bank the server serves: the registers behind their faults; add() scripts more. */
  readonly faults: FaultyBank;
}

/** A running simulated site. */
export interface SimulatedSite {
  readonly config: SimSiteConfig;
  readonly site: SimSite;
  readonly endpoints: readonly SimEndpoint[];
  readonly signingMeters: readonly SimSigningMeter[];
  readonly devices: ReadonlyMap<string, ServedSimDevice>;
  /** Wire-level fault plans by server name. */
  readonly serverFaults: ReadonlyMap<string, FaultPlan>;
  /** The simulated clock the site, its faults and its signing meters run on. */
  readonly clock: HardwareClock;
  /** YAML `buses:`, `devices:` and `meters:` sections for an agent config that polls these endpoints. */
  agentConfig(): string;
  /** Steps the physics to simulated time t (ms, not before the last step) and refreshes every register. */
  stepPhysics(t: number): void;
  /** Stops the timer, the signing meters and the servers, and removes the ptys. */
  close(): Promise<void>;
}

/** Starts a site from a site file path or a checked config (e.g. defaultSimSite()). */
export async function startSimulatedSite(
  file: string | SimSiteConfig,
  options: SimulatedSiteOptions = {},
): Promise<SimulatedSite> {
  const catalogue = options.catalogue ?? loadCatalogue();
  const config = typeof file === 'string' ? loadSiteFile(file, { catalogue, ...(options.siteFile ?? {}) }) : file;
  const logger = options.logger ?? silentLogger;
  const wall = options.clock ?? wallClock();
  const speed = options.speed ?? config.speed;
  if (!(Number.isFinite(speed) && speed > 0)) throw new RangeError(`speed must be a number > 0, got ${speed}`);
  const site = new SimSite(config.description);
  const clock = simulatedClock(wall, speed, site.startMs, () => site.time);

  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const closer of closers.splice(0).reverse()) {
      try {
        await closer();
      } catch (error) {
        logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'sim: close failed');
      }
    }
  };

  try {
    const devices = new Map<string, ServedSimDevice>();
    for (const spec of config.devices) {
      const registers = new SimDeviceRegisters({
        site,
        name: spec.name,
        profiles: spec.profiles.map((id) => catalogue.get(id)),
        base: spec.base,
        unit: spec.unit,
        identity: spec.identity,
        description: config.description,
        now: () => clock.now(),
      });
      const faults = new FaultyBank(registers, clock);
      closers.push(async () => faults.clear());
      devices.set(spec.name, { spec, registers, faults });
    }

    const serverFaults = new Map<string, FaultPlan>();
    for (const server of config.servers) serverFaults.set(server.name, new FaultPlan([], clock));
    for (const fault of config.faults) addFault(fault, devices, serverFaults);

    const endpoints: SimEndpoint[] = [];
    for (const server of config.servers) {
      const mine = config.devices.filter((d) => d.server === server.name);
      const units = new Map<number, RegisterBank>(
        mine.map((d) => [d.unit, (devices.get(d.name) as ServedSimDevice).faults]),
      );
      const listed = mine.map((d) => ({ unit: d.unit, device: d.name, profiles: d.profiles }));
      const faults = serverFaults.get(server.name) as FaultPlan;
      if (server.kind === 'tcp') {
        const handle: ModbusTcpServerHandle = await startModbusTcpServer({
          host: options.host ?? server.host,
          port: server.port,
          units,
          faults,
          clock,
          logger,
        });
        closers.push(() => handle.close());
        endpoints.push({ server: server.name, kind: 'tcp', host: handle.host, port: handle.port, units: listed });
      } else {
        const pair = await openPtyPair({ names: [`${server.name}-sim`, server.name] });
        closers.push(() => pair.close());
        const handle: ModbusRtuServerHandle = await startModbusRtuServer({
          path: pair.a,
          baudRate: server.baudRate,
          units,
          faults,
          clock,
          logger,
        });
        closers.push(() => handle.close());
        endpoints.push({ server: server.name, kind: 'rtu', path: pair.b, baudRate: server.baudRate, units: listed });
      }
    }

    const recorders: Array<(snapshot: ReturnType<SimSite['snapshot']>) => void> = [];
    const signingMeters: SimSigningMeter[] = [];
    for (const spec of config.signingMeters) {
      const history = new SampleHistory((spec.batchSeconds * 2 + 60) * 1000);
      recorders.push((snapshot) => {
        const meter = snapshot.devices[spec.meter];
        if (meter?.kind === 'meter') history.add(snapshot.t, meterSample(meter));
      });
      const pair: PtyPair = await openPtyPair({ names: [`${spec.name}-sim`, spec.name] });
      closers.push(() => pair.close());
      const peer = new FirmwarePeer({
        privateKey: spec.privateKey,
        path: pair.a,
        baudRate: spec.baudRate,
        clock,
        // The agent may set the meter's clock (TIME_SYNC) to its own time; the samples are kept in simulated time.
        readings: (t) => history.at(t - (peer.meterNow() - clock.now())),
        batchIntervalMs: spec.batchSeconds * 1000,
        sampleIntervalMs: spec.sampleSeconds * 1000,
        // Retransmissions are about the serial line, not the simulated day: once a wall-clock second.
        retransmitMs: Math.max(1000, 1000 * speed),
        serial: spec.name,
      });
      signingMeters.push({
        name: spec.name,
        meter: spec.meter,
        path: pair.b,
        baudRate: spec.baudRate,
        address: spec.address,
        peer,
      });
    }

    const refresh = () => {
      const snapshot = site.snapshot();
      for (const device of devices.values()) {
        device.registers.updateFromSnapshot(snapshot);
        device.faults.poll();
      }
      for (const record of recorders) record(snapshot);
    };
    refresh();
    for (const meter of signingMeters) {
      await meter.peer.start();
      closers.push(() => meter.peer.stop());
    }

    const tickMs = options.tickMs ?? Math.min(1000, Math.max(50, 1000 / speed));
    const tick: TimerHandle = wall.setInterval(() => {
      try {
        site.step(Math.max(site.time, Math.floor(clock.now())));
        refresh();
      } catch (error) {
        // One bad step must not stop the site; the next tick tries again from where the physics are.
        logger.error({ error: error instanceof Error ? error.message : String(error) }, 'sim: physics step failed');
      }
    }, tickMs);
    closers.push(async () => tick.cancel());

    let closed = false;
    return {
      config,
      site,
      endpoints,
      signingMeters,
      devices,
      serverFaults,
      clock,
      agentConfig: () => agentConfigText(config, endpoints, signingMeters),
      stepPhysics(t: number) {
        site.step(t);
        refresh();
      },
      async close() {
        if (closed) return;
        closed = true;
        await close();
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The simulated clock: start + elapsed wall time x speed, never behind `floor` (the physics' last step). */
function simulatedClock(wall: HardwareClock, speed: number, startMs: number, floor: () => number): HardwareClock {
  const wallStart = wall.now();
  return {
    now: () => Math.max(floor(), startMs + (wall.now() - wallStart) * speed),
    setTimeout: (callback, ms) => wall.setTimeout(callback, ms / speed),
    setInterval: (callback, ms) => wall.setInterval(callback, ms / speed),
  };
}

function addFault(
  fault: SimFaultSpec,
  devices: ReadonlyMap<string, ServedSimDevice>,
  serverFaults: ReadonlyMap<string, FaultPlan>,
): void {
  const device = devices.get(fault.device);
  if (device === undefined) throw new RangeError(`fault for ${fault.device}: no served device of that name`);
  const when = {
    ...(fault.from === undefined ? {} : { from: fault.from }),
    ...(fault.until === undefined ? {} : { until: fault.until }),
  };
  if ((WIRE_FAULT_KINDS as readonly string[]).includes(fault.kind)) {
    const plan = serverFaults.get(device.spec.server) as FaultPlan;
    const common = {
      ...when,
      unit: device.spec.unit,
      ...(fault.times === undefined ? {} : { times: fault.times }),
      ...(fault.fn === undefined ? {} : { fn: fault.fn }),
    };
    const specific: Record<string, unknown> = { kind: fault.kind };
    if (fault.delayMs !== undefined) specific.delayMs = fault.delayMs;
    if (fault.code !== undefined) specific.code = fault.code;
    if (fault.start !== undefined) specific.start = fault.start;
    if (fault.end !== undefined) specific.end = fault.end;
    if (fault.answerAs !== undefined) specific.answerAs = fault.answerAs;
    plan.add({ ...common, ...specific } as Fault);
    return;
  }
  const table = fault.fn === 4 ? 4 : fault.fn === 3 ? 3 : undefined;
  let bankFault: BankFault;
  if (fault.kind === 'stuck') {
    if (fault.point !== undefined) {
      const p = device.registers.point(fault.point);
      bankFault = { ...when, kind: 'stuck', fn: p.point.function, start: p.address, count: registerCount(p.point) };
    } else {
      bankFault = { ...when, kind: 'stuck', fn: table ?? 3, start: fault.start ?? 0, count: fault.count ?? 1 };
    }
  } else if (fault.kind === 'missing-end-marker') {
    const chain = device.registers.layout.sunspec;
    if (chain === undefined) throw new RangeError(`fault for ${fault.device}: it has no SunSpec chain`);
    bankFault = { ...when, kind: 'missing-end-marker', address: chain.endAddress };
  } else {
    bankFault = {
      ...when,
      kind: 'exception-range',
      start: fault.start ?? 0,
      end: fault.end ?? 0xffff,
      ...(fault.code === undefined ? {} : { code: fault.code }),
      ...(table === undefined ? {} : { fn: table }),
      ...(fault.writes === undefined ? {} : { writes: fault.writes }),
    };
  }
  device.faults.add(bankFault);
}

/** What a signing meter measures: integers in the channel units of docs/firmware-protocol.md. */
function meterSample(m: MeterSnapshot): MeterSample {
  const sign = m.phasePowerW[0] < 0 ? -1 : 1;
  return {
    importWh: Math.round(m.importEnergyWh),
    exportWh: Math.round(m.exportEnergyWh),
    powerW: Math.round(m.activePowerW),
    voltageMv: Math.round(m.phaseVoltageV[0] * 1000),
    currentMa: Math.round(m.phaseCurrentA[0] * 1000) * sign,
    frequencyMhz: Math.round(m.frequencyHz * 1000),
    reactivePowerVar: Math.round(m.reactivePowerVar),
  };
}

/**
 * Recent samples of one meter, so a batch's samples are what the meter measured at each sample time rather than
 * all the value at the moment the batch closed.
 */
class SampleHistory {
  private readonly samples: Array<{ t: number; sample: MeterSample }> = [];

  constructor(private readonly keepMs: number) {}

  add(t: number, sample: MeterSample): void {
    const last = this.samples.at(-1);
    if (last !== undefined && last.t === t) last.sample = sample;
    else this.samples.push({ t, sample });
    while (this.samples.length > 1 && (this.samples[0] as { t: number }).t < t - this.keepMs) this.samples.shift();
  }

  /** The newest sample at or before t (the oldest kept when t is earlier). */
  at(t: number): MeterSample {
    let found = this.samples[0];
    for (const s of this.samples) {
      if (s.t > t) break;
      found = s;
    }
    return found?.sample ?? {};
  }
}

/** An address the agent can connect to: a server bound to every interface is reached on loopback. */
function reachable(host: string): string {
  return host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
}

function agentConfigText(
  config: SimSiteConfig,
  endpoints: readonly SimEndpoint[],
  signingMeters: readonly SimSigningMeter[],
): string {
  const buses = endpoints.map((e) =>
    e.kind === 'tcp'
      ? { name: e.server, kind: 'tcp', host: reachable(e.host), port: e.port }
      : { name: e.server, kind: 'rtu', path: e.path, baudRate: e.baudRate },
  );
  const devices = config.devices.map((d) => {
    const sunspec = d.profiles.some((id) => id.startsWith('sunspec-'));
    return sunspec
      ? { name: d.name, bus: d.server, unit: d.unit, profile: 'sunspec', base: d.base }
      : { name: d.name, bus: d.server, unit: d.unit, profile: d.profiles[0] };
  });
  const meters = signingMeters.map((m) => ({ name: m.name, path: m.path, baudRate: m.baudRate, address: m.address }));
  const site = config.description.name ?? 'site';
  const header = [
    `# Field devices of the simulated site "${site}" (${config.file}), as served by mgmc sim.`,
    '# Paste into an agent config; the ports and pty paths change every time the simulator starts.',
  ];
  return `${header.join('\n')}\n${stringify({ buses, devices, meters })}`;
}
