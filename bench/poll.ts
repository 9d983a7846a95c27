/**
 * npm run bench -- poll [--cycles N] [--rtu-cycles N] [--quick] [--no-rtu]
 *
 * 1. Modbus TCP: a 30-device site (10 SunSpec inverters 1+103+120+123, 5 storage 1+103+124, 10 SunSpec meters
 *    1+203, 5 SDM630 meters on input registers) behind three simulated gateways of 10 unit ids each, configured with
 *    the real config shapes, resolved by resolveSite (SunSpec discovery included) and polled by the Poller. Against
 *    it, in the same run and interleaved round by round, a minimal reference client on raw node:net sockets reads
 *    exactly the planned blocks (MBAP FC3/FC4, one request at a time per gateway, gateways in parallel, like the
 *    agent). Our bus alone (openModbusBus reads of the same blocks, no decoding) is measured too, to tell the cost of
 *    the transport from the cost of the poller.
 * 2. Modbus RTU over real ptys and the baud relay (agent <-> pty pair <-> relay <-> pty pair <-> our RTU server) at
 *    9600 and 115200 baud: a SunSpec inverter and two SDM630 meters on one line, cycle time against the wire-time
 *    limit of the planned reads.
 *
 * The simulator (TCP servers, RTU server, relay, socat) runs in a child process, so the CPU measured here is the
 * agent's alone; the child's CPU is reported beside it.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../agent/clock.js';
import type { AgentConfig } from '../agent/config/schema.js';
import { silentLogger } from '../agent/logger.js';
import { Poller, type PollTarget } from '../agent/poll/poller.js';
import { type ResolvedSite, resolveSite } from '../agent/poll/resolve.js';
import { encodeRaw, type RawValue } from '../hardware/codec.js';
import { buildRtuFrame, rtuCrcOk, rtuInterFrameMs, rtuResponseLength, rtuWireTimeMs } from '../hardware/modbus/rtu.js';
import type { ModbusBus } from '../hardware/modbus/types.js';
import { loadCatalogue } from '../hardware/profile/load.js';
import { placeProfile } from '../hardware/profile/place.js';
import type { PointDef, Profile } from '../hardware/profile/types.js';
import { type BaudRelayHandle, startBaudRelay } from '../sim/baud-relay.js';
import { ArrayRegisterBank } from '../sim/modbus/bank.js';
import { type ModbusRtuServerHandle, startModbusRtuServer } from '../sim/modbus/rtu-server.js';
import { type ModbusTcpServerHandle, startModbusTcpServer } from '../sim/modbus/tcp-server.js';
import { openTtyLine, type TtyLine } from '../sim/modbus/tty-line.js';
import { openPtyPair, type PtyPair, socatAvailable } from '../sim/pty.js';
import type { BenchReport, BenchRow } from './report.js';

// ---------------------------------------------------------------------------------------------------------------
// The simulated devices (built in the child process)

type DeviceKind = 'inverter' | 'inverter-basic' | 'storage' | 'meter' | 'sdm630';

const SUNSPEC_CHAINS: Record<Exclude<DeviceKind, 'sdm630'>, readonly string[]> = {
  inverter: ['sunspec-1', 'sunspec-103', 'sunspec-120', 'sunspec-123'],
  'inverter-basic': ['sunspec-1', 'sunspec-103'],
  storage: ['sunspec-1', 'sunspec-103', 'sunspec-124'],
  meter: ['sunspec-1', 'sunspec-203'],
};

/** Three gateways of ten unit ids each: the 30-device TCP site. */
const TCP_SITE: readonly (readonly DeviceKind[])[] = [
  Array<DeviceKind>(10).fill('inverter'),
  [...Array<DeviceKind>(5).fill('storage'), ...Array<DeviceKind>(5).fill('sdm630')],
  Array<DeviceKind>(10).fill('meter'),
];

/** One RS-485 line: a SunSpec inverter (unit 1) and two SDM630 meters (units 2, 3). */
const RTU_LINE: readonly DeviceKind[] = ['inverter-basic', 'sdm630', 'sdm630'];

/** A plausible, implemented raw value for every point: no sentinel, so every point yields a reading. */
function rawFor(point: PointDef, i: number): RawValue | null {
  switch (point.type) {
    case 'pad':
      return null;
    case 'string':
      return 'SIM';
    case 'sunssf':
      return -(i % 2);
    case 'f32':
    case 'f64':
      return 100 + (i % 50) * 1.5;
    default:
      return 100 + ((i * 37) % 900);
  }
}

function sunspecBank(profiles: readonly Profile[]): ArrayRegisterBank {
  const words: number[] = [0x5375, 0x6e53];
  for (const profile of profiles) {
    const length = profile.sunspec?.length ?? 0;
    const regs = new Array<number>(length + 2).fill(0);
    regs[0] = profile.sunspec?.model ?? 0;
    regs[1] = length;
    placeProfile(profile, 0).forEach((placed, i) => {
      if (placed.point.name === 'ID' || placed.point.name === 'L') return;
      encodeRaw(placed.point, rawFor(placed.point, i)).forEach((w, k) => {
        regs[placed.address + k] = w;
      });
    });
    words.push(...regs);
  }
  words.push(0xffff, 0);
  return new ArrayRegisterBank({ holding: [{ start: 40000, values: words }] });
}

function sdm630Bank(profile: Profile): ArrayRegisterBank {
  const regs = new Array<number>(400).fill(0);
  placeProfile(profile, 0).forEach((placed, i) => {
    encodeRaw(placed.point, rawFor(placed.point, i)).forEach((w, k) => {
      regs[placed.address + k] = w;
    });
  });
  return new ArrayRegisterBank({ input: [{ start: 0, values: regs }] });
}

function bankOf(kind: DeviceKind, catalogue: ReturnType<typeof loadCatalogue>): ArrayRegisterBank {
  if (kind === 'sdm630') return sdm630Bank(catalogue.get('eastron-sdm630'));
  return sunspecBank(SUNSPEC_CHAINS[kind].map((id) => catalogue.get(id)));
}

function unitsOf(kinds: readonly DeviceKind[], catalogue: ReturnType<typeof loadCatalogue>) {
  return new Map(kinds.map((kind, i) => [i + 1, bankOf(kind, catalogue)] as const));
}

// ---------------------------------------------------------------------------------------------------------------
// The simulator child process and its protocol

type SimRequest =
  | { readonly op: 'tcp'; readonly servers: readonly (readonly DeviceKind[])[] }
  | { readonly op: 'rtu'; readonly baudRate: number; readonly devices: readonly DeviceKind[] }
  | { readonly op: 'rtu-close' }
  | { readonly op: 'usage' }
  | { readonly op: 'exit' };

interface SimReply {
  readonly id: number;
  readonly error?: string;
  readonly ports?: number[];
  /** The agent's end of the RTU line. */
  readonly path?: string;
  /** The child's CPU so far, µs. */
  readonly cpuMicros?: number;
  /** Requests received by all TCP servers so far. */
  readonly tcpRequests?: number;
  /** Bytes relayed on the RTU line so far (both directions). */
  readonly rtuBytes?: number;
}

const SIMULATOR_FLAG = '--poll-bench-simulator';

function runSimulatorChild(): void {
  const catalogue = loadCatalogue();
  const tcpServers: ModbusTcpServerHandle[] = [];
  let rtu: { pairs: PtyPair[]; relay?: BaudRelayHandle; server?: ModbusRtuServerHandle } | undefined;

  const closeRtu = async () => {
    const line = rtu;
    rtu = undefined;
    if (line === undefined) return;
    await line.server?.close();
    await line.relay?.close();
    for (const pair of line.pairs) await pair.close();
  };
  const closeAll = async () => {
    await closeRtu();
    for (const server of tcpServers.splice(0)) await server.close();
  };

  const handle = async (request: SimRequest): Promise<Omit<SimReply, 'id'>> => {
    switch (request.op) {
      case 'tcp': {
        const ports: number[] = [];
        for (const kinds of request.servers) {
          const server = await startModbusTcpServer({ units: unitsOf(kinds, catalogue) });
          tcpServers.push(server);
          ports.push(server.port);
        }
        return { ports };
      }
      case 'rtu': {
        await closeRtu();
        const line: NonNullable<typeof rtu> = { pairs: [] };
        rtu = line;
        const agentSide = await openPtyPair();
        line.pairs.push(agentSide);
        const deviceSide = await openPtyPair();
        line.pairs.push(deviceSide);
        line.relay = startBaudRelay({ from: agentSide.a, to: deviceSide.a, baudRate: request.baudRate });
        line.server = await startModbusRtuServer({
          path: deviceSide.b,
          baudRate: request.baudRate,
          units: unitsOf(request.devices, catalogue),
        });
        return { path: agentSide.b };
      }
      case 'rtu-close':
        await closeRtu();
        return {};
      case 'usage': {
        const cpu = process.cpuUsage();
        const relayed = rtu?.relay?.stats();
        return {
          cpuMicros: cpu.user + cpu.system,
          tcpRequests: tcpServers.reduce((sum, s) => sum + s.stats().requests, 0),
          rtuBytes: relayed === undefined ? 0 : relayed.forward + relayed.backward,
        };
      }
      case 'exit':
        await closeAll();
        return {};
    }
  };

  process.on('message', (message: { id: number; request: SimRequest }) => {
    handle(message.request).then(
      (reply) => {
        process.send?.({ id: message.id, ...reply } satisfies SimReply, () => {
          if (message.request.op === 'exit') process.disconnect();
        });
      },
      (error: unknown) => process.send?.({ id: message.id, error: (error as Error).stack ?? String(error) }),
    );
  });
  // The bench died: leave no socat behind.
  process.on('disconnect', () => {
    void closeAll().finally(() => process.exit(0));
  });
}

/** The parent's handle on the simulator child. */
class Simulator {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(r: SimReply): void; reject(e: Error): void }>();
  private exited: Error | undefined;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (reply: SimReply) => {
      const w = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (reply.error !== undefined) w?.reject(new Error(`simulator: ${reply.error}`));
      else w?.resolve(reply);
    });
    child.on('exit', (code, signal) => {
      this.exited = new Error(`the simulator process exited (code ${code}, signal ${signal})`);
      for (const w of this.waiting.values()) w.reject(this.exited);
      this.waiting.clear();
    });
  }

  static start(): Simulator {
    const child = fork(fileURLToPath(import.meta.url), [SIMULATOR_FLAG], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Simulator(child);
  }

  call(request: SimRequest): Promise<SimReply> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ id, request });
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    try {
      await this.call({ op: 'exit' });
    } catch {
      // already gone
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The reference: a minimal Modbus TCP client on raw node:net

/** One connection, one request at a time: MBAP header + FC3/FC4 PDU out, register words back. */
class RawModbusTcp {
  private buffer: Buffer = Buffer.alloc(0);
  private transaction = 0;
  private pending: { resolve(words: number[]): void; reject(e: Error): void; tid: number } | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.pending?.reject(err));
    socket.on('close', () => this.pending?.reject(new Error('reference client: connection closed')));
  }

  static connect(host: string, port: number): Promise<RawModbusTcp> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host, port }, () => {
        socket.off('error', reject);
        resolve(new RawModbusTcp(socket));
      });
      socket.once('error', reject);
    });
  }

  read(unit: number, fn: 3 | 4, start: number, count: number): Promise<number[]> {
    this.transaction = (this.transaction + 1) & 0xffff;
    const tid = this.transaction;
    const frame = Buffer.alloc(12);
    frame.writeUInt16BE(tid, 0);
    frame.writeUInt16BE(0, 2);
    frame.writeUInt16BE(6, 4);
    frame[6] = unit;
    frame[7] = fn;
    frame.writeUInt16BE(start, 8);
    frame.writeUInt16BE(count, 10);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, tid };
      this.socket.write(frame);
    });
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length < 7) return;
    const length = this.buffer.readUInt16BE(4);
    if (this.buffer.length < 6 + length) return;
    const frame = this.buffer.subarray(0, 6 + length);
    this.buffer = this.buffer.subarray(6 + length);
    const pending = this.pending;
    this.pending = undefined;
    if (pending === undefined) return;
    if (frame.readUInt16BE(0) !== pending.tid) {
      pending.reject(new Error('reference client: wrong transaction id'));
      return;
    }
    if ((frame[7] ?? 0) & 0x80) {
      pending.reject(new Error(`reference client: exception ${frame[8]}`));
      return;
    }
    const bytes = frame[8] ?? 0;
    const words = new Array<number>(bytes / 2);
    for (let i = 0; i < words.length; i++) words[i] = frame.readUInt16BE(9 + 2 * i);
    pending.resolve(words);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The RTU reference: request frames out on the tty, answers found by length and CRC, nothing else. */
class RawModbusRtu {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: { resolve(words: number[]): void; reject(e: Error): void; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly line: TtyLine) {
    line.onData((chunk) => this.onData(chunk));
  }

  read(unit: number, fn: 3 | 4, start: number, count: number): Promise<number[]> {
    const pdu = Buffer.alloc(5);
    pdu[0] = fn;
    pdu.writeUInt16BE(start, 1);
    pdu.writeUInt16BE(count, 3);
    this.buffer = Buffer.alloc(0);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        reject(new Error(`reference RTU client: no answer from unit ${unit}`));
      }, 5000);
      this.pending = { resolve, reject, timer };
      this.line.write(buildRtuFrame(unit, pdu));
    });
  }

  private onData(chunk: Buffer): void {
    const pending = this.pending;
    if (pending === undefined) return;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const length = rtuResponseLength(this.buffer, 0);
    if (typeof length !== 'number' || this.buffer.length < length) return;
    this.pending = undefined;
    clearTimeout(pending.timer);
    const frame = this.buffer.subarray(0, length);
    if (!rtuCrcOk(frame, 0, length) || (frame[1] ?? 0) & 0x80) {
      pending.reject(new Error('reference RTU client: bad CRC or exception'));
      return;
    }
    const words = new Array<number>((frame[2] ?? 0) / 2);
    for (let i = 0; i < words.length; i++) words[i] = frame.readUInt16BE(3 + 2 * i);
    pending.resolve(words);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Measurement helpers

function option(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(args[i + 1]);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

interface Series {
  readonly times: number[];
  cpuMicros: number;
  simCpuMicros: number;
  requests: number;
  rtuBytes: number;
  cycles: number;
}

const newSeries = (): Series => ({ times: [], cpuMicros: 0, simCpuMicros: 0, requests: 0, rtuBytes: 0, cycles: 0 });

function summary(series: Series) {
  const sorted = [...series.times].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    cpuMs: series.cpuMicros / 1000 / series.cycles,
    simCpuMs: series.simCpuMicros / 1000 / series.cycles,
    requestsSent: series.requests / series.cycles,
    rtuBytes: series.rtuBytes / series.cycles,
  };
}

/** Runs `cycles` cycles of `cycle`, adding wall times, our CPU and the simulator's CPU and requests to `series`. */
async function measure(sim: Simulator, series: Series, cycles: number, cycle: () => Promise<void>): Promise<void> {
  const before = await sim.call({ op: 'usage' });
  const cpu = process.cpuUsage();
  for (let i = 0; i < cycles; i++) {
    const start = performance.now();
    await cycle();
    series.times.push(performance.now() - start);
  }
  const used = process.cpuUsage(cpu);
  const after = await sim.call({ op: 'usage' });
  series.cpuMicros += used.user + used.system;
  series.simCpuMicros += (after.cpuMicros ?? 0) - (before.cpuMicros ?? 0);
  series.requests += (after.tcpRequests ?? 0) - (before.tcpRequests ?? 0);
  series.rtuBytes += (after.rtuBytes ?? 0) - (before.rtuBytes ?? 0);
  series.cycles += cycles;
}

type BusConfig = AgentConfig['buses'][number];
type DeviceConfig = AgentConfig['devices'][number];

const BUS_DEFAULTS = {
  parity: 'none' as const,
  stopBits: 1,
  retries: 1,
  maxGap: 8,
  backoff: { baseMs: 1000, maxMs: 60_000 },
};

function deviceConfig(name: string, bus: string, unit: number, kind: DeviceKind): DeviceConfig {
  return {
    name,
    bus,
    unit,
    profile: kind === 'sdm630' ? 'eastron-sdm630' : 'sunspec',
    intervalMs: 1000,
    priority: 5,
    enabled: true,
  };
}

async function resolveOrThrow(
  config: Pick<AgentConfig, 'buses' | 'devices'>,
  catalogue: ReturnType<typeof loadCatalogue>,
): Promise<ResolvedSite> {
  const site = await resolveSite(config, catalogue, systemClock(), silentLogger());
  if (site.problems.length > 0) {
    for (const bus of site.buses.values()) await bus.close();
    throw new Error(`the bench site did not resolve: ${site.problems.map((p) => p.message).join('; ')}`);
  }
  return site;
}

function pollerOf(targets: readonly PollTarget[], counter: { readings: number }): Poller {
  return new Poller(targets, {
    clock: systemClock(),
    logger: silentLogger(),
    sink: {
      append: (records) => {
        counter.readings += records.length;
      },
    },
  });
}

async function pollCycle(poller: Poller): Promise<void> {
  const result = await poller.pollOnce();
  if (result.failures > 0) {
    const failed = poller.status().filter((s) => s.lastError !== undefined);
    throw new Error(`a poll cycle failed: ${failed.map((s) => `${s.name}: ${s.lastError}`).join('; ')}`);
  }
}

const pointsOf = (targets: readonly PollTarget[]) =>
  targets.reduce((sum, t) => sum + t.blocks.reduce((n, b) => n + b.points.length, 0), 0);
const requestsOf = (targets: readonly PollTarget[]) => targets.reduce((sum, t) => sum + t.blocks.length, 0);

// ---------------------------------------------------------------------------------------------------------------
// Part 1: Modbus TCP

async function tcpPart(sim: Simulator, cycles: number, warmup: number) {
  const catalogue = loadCatalogue();
  const { ports = [] } = await sim.call({ op: 'tcp', servers: TCP_SITE });
  const host = '127.0.0.1';
  const buses: BusConfig[] = ports.map((port, i) => ({
    ...BUS_DEFAULTS,
    name: `gw${i + 1}`,
    kind: 'tcp',
    host,
    port,
    timeoutMs: 1000,
  }));
  const devices: DeviceConfig[] = TCP_SITE.flatMap((kinds, s) =>
    kinds.map((kind, u) => deviceConfig(`gw${s + 1}-${kind}-${u + 1}`, `gw${s + 1}`, u + 1, kind)),
  );
  const site = await resolveOrThrow({ buses, devices }, catalogue);
  const references: RawModbusTcp[] = [];
  try {
    const counter = { readings: 0 };
    const poller = pollerOf(site.targets, counter);
    // The planned blocks per gateway, in the order the poller queues them.
    const byBus = new Map<
      string,
      { bus: ModbusBus; port: number; reads: PollTarget['blocks'][number][]; units: number[] }
    >();
    buses.forEach((b) => {
      const bus = site.buses.get(b.name);
      if (bus !== undefined) byBus.set(b.name, { bus, port: b.port ?? 502, reads: [], units: [] });
    });
    for (const target of site.targets) {
      const entry = byBus.get(target.bus.name);
      for (const block of target.blocks) {
        entry?.reads.push(block);
        entry?.units.push(target.unit);
      }
    }
    const gateways = [...byBus.values()];
    for (const g of gateways) references.push(await RawModbusTcp.connect(host, g.port));

    const ours = () => pollCycle(poller);
    const busOnly = () =>
      Promise.all(
        gateways.map(async (g) => {
          for (let i = 0; i < g.reads.length; i++) {
            const block = g.reads[i] as PollTarget['blocks'][number];
            await g.bus.read(g.units[i] as number, block.function, block.start, block.count);
          }
        }),
      ).then(() => undefined);
    const reference = () =>
      Promise.all(
        gateways.map(async (g, gi) => {
          const client = references[gi] as RawModbusTcp;
          for (let i = 0; i < g.reads.length; i++) {
            const block = g.reads[i] as PollTarget['blocks'][number];
            const words = await client.read(g.units[i] as number, block.function, block.start, block.count);
            if (words.length !== block.count) throw new Error('reference client: short answer');
          }
        }),
      ).then(() => undefined);

    const methods = [
      { name: 'ours', run: ours, series: newSeries() },
      { name: 'bus', run: busOnly, series: newSeries() },
      { name: 'reference', run: reference, series: newSeries() },
    ];
    for (const m of methods) for (let i = 0; i < warmup; i++) await m.run();
    counter.readings = 0;
    // Interleaved in rounds, the order rotating, so drift on a noisy machine hits all three alike.
    const rounds = Math.max(1, Math.min(10, cycles));
    const perRound = Math.ceil(cycles / rounds);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < methods.length; k++) {
        const m = methods[(r + k) % methods.length] as (typeof methods)[number];
        await measure(sim, m.series, perRound, m.run);
      }
    }
    const [o, b, ref] = methods.map((m) => summary(m.series)) as [
      ReturnType<typeof summary>,
      ReturnType<typeof summary>,
      ReturnType<typeof summary>,
    ];
    const oursSeries = methods[0]?.series as Series;
    return {
      devices: site.targets.length,
      gateways: gateways.length,
      pointsInMaps: registerMapPoints(catalogue),
      pointsRead: pointsOf(site.targets),
      readingsPerCycle: counter.readings / oursSeries.cycles,
      requests: requestsOf(site.targets),
      cycles: oursSeries.cycles,
      ours: o,
      bus: b,
      reference: ref,
    };
  } finally {
    for (const r of references) r.close();
    for (const bus of site.buses.values()) await bus.close();
  }
}

/** Every point in the register maps of the TCP site (strings, enums, scale factors included). */
function registerMapPoints(catalogue: ReturnType<typeof loadCatalogue>): number {
  let total = 0;
  for (const kinds of TCP_SITE) {
    for (const kind of kinds) {
      const ids = kind === 'sdm630' ? ['eastron-sdm630'] : SUNSPEC_CHAINS[kind];
      for (const id of ids) total += placeProfile(catalogue.get(id), 0).length;
    }
  }
  return total;
}

// ---------------------------------------------------------------------------------------------------------------
// Part 2: Modbus RTU through the baud relay

async function rtuPart(sim: Simulator, baudRate: number, cycles: number) {
  const catalogue = loadCatalogue();
  const { path } = await sim.call({ op: 'rtu', baudRate, devices: RTU_LINE });
  if (path === undefined) throw new Error('simulator: no RTU line path');
  const bus: BusConfig = {
    ...BUS_DEFAULTS,
    name: 'rs485',
    kind: 'rtu',
    path,
    baudRate,
    timeoutMs: baudRate < 19200 ? 3000 : 1000,
  };
  const devices = RTU_LINE.map((kind, i) => deviceConfig(`${kind}-${i + 1}`, 'rs485', i + 1, kind));
  const site = await resolveOrThrow({ buses: [bus], devices }, catalogue);
  let line: TtyLine | undefined;
  try {
    const poller = pollerOf(site.targets, { readings: 0 });
    await pollCycle(poller); // opens the port; not measured
    const ours = newSeries();
    await measure(sim, ours, cycles, () => pollCycle(poller));
    // The serial port is ours alone (serialport locks it): the reference gets the line after the agent let go.
    for (const b of site.buses.values()) await b.close();
    const gapMs = rtuInterFrameMs(baudRate);
    line = openTtyLine(path);
    const client = new RawModbusRtu(line);
    const reads = site.targets.flatMap((t) => t.blocks.map((block) => ({ unit: t.unit, block })));
    const referenceCycle = async () => {
      for (const { unit, block } of reads) {
        const words = await client.read(unit, block.function, block.start, block.count);
        if (words.length !== block.count) throw new Error('reference RTU client: short answer');
        // The same 3.5-character silence before the next request that our bus keeps.
        await new Promise((resolve) => setTimeout(resolve, gapMs));
      }
    };
    await referenceCycle();
    const reference = newSeries();
    await measure(sim, reference, cycles, referenceCycle);
    const blocks = reads.map((r) => r.block);
    const plannedBytes = blocks.reduce((sum, b) => sum + 8 + 5 + 2 * b.count, 0);
    // The line's physics: every request and answer character at `baudRate`, and the 3.5-character silence the
    // master keeps before each request. (A real device also waits 3.5 characters before it answers; our simulator
    // finds frames by length, so the tight bound here has one gap per exchange.)
    const limitMs = blocks.reduce((sum, b) => sum + rtuWireTimeMs(8 + 5 + 2 * b.count, baudRate) + gapMs, 0);
    return {
      baudRate,
      devices: site.targets.length,
      points: pointsOf(site.targets),
      requests: blocks.length,
      plannedBytes,
      limitMs,
      cycles,
      ours: summary(ours),
      reference: summary(reference),
    };
  } finally {
    await line?.close();
    for (const b of site.buses.values()) await b.close();
    await sim.call({ op: 'rtu-close' });
  }
}

// ---------------------------------------------------------------------------------------------------------------

export async function run(args: readonly string[]): Promise<BenchReport> {
  const quick = args.includes('--quick');
  const cycles = option(args, '--cycles', quick ? 20 : 100);
  const rtuCycles = option(args, '--rtu-cycles', quick ? 2 : 5);
  const warmup = quick ? 3 : 10;
  const withRtu = !args.includes('--no-rtu');
  const notes: string[] = [];
  const rows: BenchRow[] = [];
  const context: Record<string, string | number> = {
    node: process.version,
    cpus: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
  };

  const sim = Simulator.start();
  try {
    const tcp = await tcpPart(sim, cycles, warmup);
    Object.assign(context, {
      tcpDevices: tcp.devices,
      gateways: tcp.gateways,
      pointsInRegisterMaps: tcp.pointsInMaps,
      pointsRead: tcp.pointsRead,
      tcpCycles: tcp.cycles,
    });
    const raw = 'raw node:net MBAP client';
    rows.push(
      { metric: 'TCP readings stored per cycle', unit: 'count', ours: tcp.readingsPerCycle },
      {
        metric: 'TCP requests per cycle (planned)',
        unit: 'count',
        ours: tcp.requests,
        referenceName: 'one request per point',
        reference: tcp.pointsRead,
        higherIsBetter: false,
      },
      {
        metric: 'TCP cycle time, median',
        unit: 'ms',
        ours: tcp.ours.median,
        referenceName: raw,
        reference: tcp.reference.median,
        higherIsBetter: false,
      },
      {
        metric: 'TCP cycle time, p95',
        unit: 'ms',
        ours: tcp.ours.p95,
        referenceName: raw,
        reference: tcp.reference.p95,
        higherIsBetter: false,
      },
      {
        metric: 'TCP cycle time, median, our bus alone (no poller)',
        unit: 'ms',
        ours: tcp.bus.median,
        referenceName: raw,
        reference: tcp.reference.median,
        higherIsBetter: false,
      },
      {
        metric: 'TCP agent CPU per cycle',
        unit: 'ms',
        ours: tcp.ours.cpuMs,
        referenceName: raw,
        reference: tcp.reference.cpuMs,
        higherIsBetter: false,
      },
      {
        metric: 'TCP agent CPU per cycle, our bus alone',
        unit: 'ms',
        ours: tcp.bus.cpuMs,
        referenceName: raw,
        reference: tcp.reference.cpuMs,
        higherIsBetter: false,
      },
      {
        metric: 'TCP simulator CPU per cycle (child process)',
        unit: 'ms',
        ours: tcp.ours.simCpuMs,
        referenceName: raw,
        reference: tcp.reference.simCpuMs,
        higherIsBetter: false,
      },
      {
        metric: 'TCP points read per second (one cycle after another)',
        unit: '/s',
        ours: tcp.pointsRead / (tcp.ours.median / 1000),
      },
    );
    const ratio = tcp.ours.median / tcp.reference.median;
    notes.push(
      `TCP target: cycle time within 1.5x of the reference client: ${ratio <= 1.5 ? 'MET' : 'NOT MET'} ` +
        `(median ${ratio.toFixed(2)}x; our bus alone ${(tcp.bus.median / tcp.reference.median).toFixed(2)}x)`,
      `TCP: ${tcp.devices} devices on ${tcp.gateways} simulated gateways; ${tcp.pointsRead} points read in ` +
        `${tcp.requests} requests per cycle (${(tcp.pointsRead / tcp.requests).toFixed(1)} points per request); ` +
        `${tcp.pointsInMaps} points in the devices' register maps (strings, enums, scale factors and unit-less ` +
        'points are not recorded and not read unless they share a block)',
      'TCP readings stored per cycle: the sink counts records; the ledger (bench ledger) is not part of this bench',
    );
    for (const [name, s] of [
      ['poller', tcp.ours],
      ['our bus', tcp.bus],
      ['reference', tcp.reference],
    ] as const) {
      if (s.requestsSent !== tcp.requests) {
        notes.push(`WARNING: ${name} sent ${s.requestsSent} requests per cycle, the plan has ${tcp.requests}`);
      }
    }

    if (!withRtu) notes.push('RTU part skipped (--no-rtu)');
    else if (!socatAvailable()) {
      notes.push('RTU part SKIPPED: socat is not installed (apt-get install socat); it needs real pty pairs');
    } else {
      for (const baud of [9600, 115_200]) {
        const line = await rtuPart(sim, baud, baud < 19200 ? rtuCycles : rtuCycles * 4);
        context[`rtu${baud}Cycles`] = line.cycles;
        context.rtuDevices = line.devices;
        context.rtuPointsRead = line.points;
        context.rtuRequests = line.requests;
        const rawRtu = 'raw tty RTU client';
        rows.push(
          {
            metric: `RTU ${baud} baud cycle time, median`,
            unit: 'ms',
            ours: line.ours.median,
            referenceName: 'wire-time limit',
            reference: line.limitMs,
            higherIsBetter: false,
          },
          {
            metric: `RTU ${baud} baud cycle time, median`,
            unit: 'ms',
            ours: line.ours.median,
            referenceName: rawRtu,
            reference: line.reference.median,
            higherIsBetter: false,
          },
          {
            metric: `RTU ${baud} baud wire efficiency (limit/measured)`,
            unit: 'ratio',
            ours: line.limitMs / line.ours.median,
            referenceName: rawRtu,
            reference: line.limitMs / line.reference.median,
            higherIsBetter: true,
          },
          {
            metric: `RTU ${baud} baud bytes on the wire per cycle`,
            unit: 'bytes',
            ours: line.ours.rtuBytes,
            referenceName: 'planned requests + answers',
            reference: line.plannedBytes,
            higherIsBetter: false,
          },
          {
            metric: `RTU ${baud} baud agent CPU per cycle`,
            unit: 'ms',
            ours: line.ours.cpuMs,
            referenceName: rawRtu,
            reference: line.reference.cpuMs,
            higherIsBetter: false,
          },
        );
        if (baud === 9600) {
          const efficiency = line.limitMs / line.ours.median;
          notes.push(
            `RTU target: at least 0.9 of the wire limit at 9600 baud: ${efficiency >= 0.9 ? 'MET' : 'NOT MET'} ` +
              `(${efficiency.toFixed(3)})`,
          );
        }
      }
      notes.push(
        `RTU: ${context.rtuDevices} devices on one line (SunSpec 1+103 inverter, 2 SDM630), ${context.rtuPointsRead} ` +
          `points in ${context.rtuRequests} requests; agent <-> pty <-> baud relay (11-bit characters, half duplex) <-> ` +
          'pty <-> our RTU server; limit = request + answer characters + one 3.5-character gap per request',
      );
    }
  } finally {
    await sim.stop();
  }
  return { name: 'poll', context, rows, notes };
}

if (process.argv[2] === SIMULATOR_FLAG) runSimulatorChild();
