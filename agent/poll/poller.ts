/**
 * The poller: reads each device on its own interval, decodes the planned register blocks with the profile codec
 * and appends each cycle's readings to the ledger in one transaction. Buses serialize their own requests, so the
 * poller only decides *when* and *in which order* (priority); a device in back-off costs nothing here, and a slow
 * device holds back only the cycle it is in, never the schedule of the others.
 */
import { decodeBlockValues } from '../../hardware/codec.js';
import { type ModbusBus, ModbusError, type ReadBlock } from '../../hardware/modbus/types.js';
import type { DecodedValue } from '../../hardware/profile/types.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { NewRecord } from '../ledger/records.js';
import type { Logger } from '../logger.js';
import { type LedgerUnit, ledgerUnitFor, toLedgerInteger } from './units.js';

/** A device ready to poll: its bus, its read plan and the points it records. */
export interface PollTarget {
  readonly name: string;
  readonly bus: ModbusBus;
  readonly unit: number;
  readonly blocks: readonly ReadBlock[];
  /** Keys of the points recorded in the ledger; the others are read only because they share a block. */
  readonly record: ReadonlySet<string>;
  readonly intervalMs: number;
  /** Lower first when several devices of one bus are due together. */
  readonly priority: number;
}

/** Where readings go: the Ledger fits. One call per cycle, committed as one transaction. */
export interface ReadingSink {
  append(records: readonly NewRecord[]): unknown;
}

export interface PointValue {
  readonly value: DecodedValue;
  /** Engineering unit from the profile. */
  readonly unit: string | undefined;
  /** When this value was read (ms since the epoch); older than the device's last attempt means stale. */
  readonly t: number;
}

export type DeviceState = 'unknown' | 'online' | 'degraded' | 'offline';

export interface DeviceStatus {
  readonly name: string;
  readonly bus: string;
  readonly unit: number;
  readonly state: DeviceState;
  readonly lastGood: number | undefined;
  readonly lastAttempt: number | undefined;
  readonly lastError: string | undefined;
  readonly consecutiveFailures: number;
  readonly cycles: number;
  readonly failedCycles: number;
  /** Cycles skipped because the previous one of this device was still running. */
  readonly overruns: number;
}

export interface CycleResult {
  readonly started: number;
  readonly devices: number;
  readonly readings: number;
  readonly failures: number;
}

/** What the poller does with each point of a block, worked out once: the hot loop only looks it up. */
interface BlockSlots {
  readonly block: ReadBlock;
  /** Per point, in block order: its ledger unit when it is recorded, else undefined. */
  readonly recorded: readonly (LedgerUnit | undefined)[];
  /** The last answer to this block and when it came; `latest()` decodes it on demand. */
  words: number[] | undefined;
  t: number;
}

interface DeviceRuntime {
  readonly target: PollTarget;
  readonly blocks: readonly BlockSlots[];
  nextDue: number;
  inFlight: boolean;
  state: DeviceState;
  lastGood: number | undefined;
  lastAttempt: number | undefined;
  lastError: string | undefined;
  consecutiveFailures: number;
  cycles: number;
  failedCycles: number;
  overruns: number;
}

export interface PollerOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly sink: ReadingSink;
  /** Called after every cycle (status output, metrics). */
  readonly onCycle?: (result: CycleResult) => void;
  /** Called after each device's read with how long it took (ms, all its blocks) and whether every block answered. */
  readonly onRead?: (device: string, ms: number, ok: boolean) => void;
}

export class Poller {
  private readonly devices: DeviceRuntime[];
  private timer: TimerHandle | undefined;
  private running = false;
  private readonly inFlight = new Set<Promise<CycleResult>>();

  constructor(
    targets: readonly PollTarget[],
    private readonly options: PollerOptions,
  ) {
    const names = new Set<string>();
    this.devices = targets.map((target) => {
      if (names.has(target.name)) throw new Error(`poller: device name '${target.name}' is used twice`);
      names.add(target.name);
      const blocks = target.blocks.map((block) => ({
        block,
        recorded: block.points.map((placed) =>
          target.record.has(placed.key) ? ledgerUnitFor(placed.point.unit) : undefined,
        ),
        words: undefined,
        t: 0,
      }));
      return {
        target,
        blocks,
        nextDue: 0,
        inFlight: false,
        state: 'unknown',
        lastGood: undefined,
        lastAttempt: undefined,
        lastError: undefined,
        consecutiveFailures: 0,
        cycles: 0,
        failedCycles: 0,
        overruns: 0,
      };
    });
  }

  /** Starts polling: every device is read at once, then on its interval. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const now = this.options.clock.now();
    for (const device of this.devices) device.nextDue = now;
    this.schedule();
  }

  /** Stops scheduling and waits for the cycles in flight, whose readings are still appended. */
  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    await Promise.allSettled([...this.inFlight]);
  }

  /** Reads the given devices (all by default) once, now, and appends their readings; for the CLI and tests. */
  pollOnce(names?: readonly string[]): Promise<CycleResult> {
    const selected = names === undefined ? this.devices : this.devices.filter((d) => names.includes(d.target.name));
    return this.track(this.runCycle(selected.filter((d) => !d.inFlight)));
  }

  status(): DeviceStatus[] {
    return this.devices.map((d) => ({
      name: d.target.name,
      bus: d.target.bus.name,
      unit: d.target.unit,
      state: d.state,
      lastGood: d.lastGood,
      lastAttempt: d.lastAttempt,
      lastError: d.lastError,
      consecutiveFailures: d.consecutiveFailures,
      cycles: d.cycles,
      failedCycles: d.failedCycles,
      overruns: d.overruns,
    }));
  }

  /** The latest value of every point of a device, each with the time it was actually read. */
  /** Whether this poller reads the device. */
  has(name: string): boolean {
    return this.devices.some((d) => d.target.name === name);
  }

  latest(name: string): ReadonlyMap<string, PointValue> {
    const device = this.devices.find((d) => d.target.name === name);
    if (device === undefined) throw new Error(`poller: no device named '${name}'`);
    const values = new Map<string, PointValue>();
    for (const slots of device.blocks) {
      if (slots.words === undefined) continue;
      // Decoded when asked, not every cycle: status and setpoints look rarely, the poller reads constantly.
      const decoded = decodeBlockValues(slots.block, slots.words);
      slots.block.points.forEach((placed, i) => {
        const value = decoded[i];
        if (value !== undefined) values.set(placed.key, { value, unit: placed.point.unit, t: slots.t });
      });
    }
    return values;
  }

  private schedule(): void {
    if (!this.running) return;
    const clock = this.options.clock;
    const next = Math.min(...this.devices.map((d) => d.nextDue));
    if (!Number.isFinite(next)) return;
    this.timer?.cancel();
    this.timer = clock.setTimeout(() => this.tick(), Math.max(0, next - clock.now()));
  }

  private tick(): void {
    this.timer = undefined;
    if (!this.running) return;
    const now = this.options.clock.now();
    const due: DeviceRuntime[] = [];
    for (const device of this.devices) {
      if (device.nextDue > now) continue;
      const interval = device.target.intervalMs;
      // Catch up by whole intervals rather than firing a burst after a pause (a suspended VM, a slow disk).
      const missed = Math.floor((now - device.nextDue) / interval);
      device.nextDue += (missed + 1) * interval;
      if (device.inFlight) {
        device.overruns++;
        continue;
      }
      due.push(device);
    }
    if (due.length > 0) void this.track(this.runCycle(due));
    this.schedule();
  }

  private track(cycle: Promise<CycleResult>): Promise<CycleResult> {
    this.inFlight.add(cycle);
    void cycle.finally(() => this.inFlight.delete(cycle));
    return cycle;
  }

  private async runCycle(devices: readonly DeviceRuntime[]): Promise<CycleResult> {
    const started = this.options.clock.now();
    // Requests join each bus's queue in this order, which is how priority reaches the wire.
    const ordered = [...devices].sort(
      (a, b) => a.target.priority - b.target.priority || a.target.name.localeCompare(b.target.name),
    );
    for (const device of ordered) device.inFlight = true;
    const outcomes = await Promise.all(ordered.map((device) => this.readDevice(device)));
    const records: NewRecord[] = [];
    let failures = 0;
    for (const outcome of outcomes) {
      records.push(...outcome.records);
      if (outcome.failed) failures++;
    }
    if (records.length > 0) {
      try {
        this.options.sink.append(records);
      } catch (error) {
        // The readings of this cycle are lost, but the agent is not: the next cycle tries again.
        this.options.logger.error(
          { err: error, readings: records.length },
          'could not store this cycle of readings in the ledger; polling continues',
        );
      }
    }
    for (const device of ordered) device.inFlight = false;
    const result: CycleResult = { started, devices: ordered.length, readings: records.length, failures };
    this.options.onCycle?.(result);
    return result;
  }

  private async readDevice(device: DeviceRuntime): Promise<{ records: NewRecord[]; failed: boolean }> {
    const { target } = device;
    const clock = this.options.clock;
    const records: NewRecord[] = [];
    let failedBlocks = 0;
    let answeredBlocks = 0;
    let lastError: string | undefined;
    const began = clock.now();
    device.lastAttempt = began;
    const deviceName = target.name;
    for (const slots of device.blocks) {
      const { block, recorded } = slots;
      let words: number[];
      try {
        words = await target.bus.read(target.unit, block.function, block.start, block.count);
      } catch (error) {
        failedBlocks++;
        lastError = error instanceof Error ? error.message : String(error);
        // In back-off every further block would be refused the same way; an exception is per block.
        if (error instanceof ModbusError && error.kind !== 'exception') break;
        continue;
      }
      answeredBlocks++;
      const t = clock.now();
      let decoded: DecodedValue[];
      try {
        decoded = decodeBlockValues(block, words);
      } catch (error) {
        failedBlocks++;
        lastError = `device '${target.name}': could not decode registers ${block.start}+${block.count}: ${
          (error as Error).message
        }`;
        continue;
      }
      slots.words = words;
      slots.t = t;
      const points = block.points;
      for (let i = 0; i < points.length; i++) {
        const unit = recorded[i];
        if (unit === undefined) continue;
        const value = decoded[i];
        if (typeof value !== 'number') continue;
        const integer = toLedgerInteger(value, unit);
        if (integer === undefined) continue;
        records.push({
          type: 'reading',
          time: t,
          body: {
            device: deviceName,
            point: (points[i] as ReadBlock['points'][number]).key,
            t,
            value: integer,
            unit: unit.unit,
          },
        });
      }
    }
    device.cycles++;
    const failed = failedBlocks > 0;
    this.options.onRead?.(deviceName, clock.now() - began, !failed);
    const previous = device.state;
    if (!failed) {
      device.lastGood = clock.now();
      device.consecutiveFailures = 0;
      device.lastError = undefined;
      device.state = 'online';
    } else {
      device.failedCycles++;
      device.consecutiveFailures++;
      device.lastError = lastError;
      const health = target.bus.health(target.unit);
      // Some blocks answered: the device is there but not well. None did and the bus backs off: it is gone.
      device.state = answeredBlocks === 0 && health.state === 'offline' ? 'offline' : 'degraded';
    }
    if (device.state !== previous) {
      const body = {
        source: target.name,
        kind: `device-${device.state}`,
        message:
          device.state === 'online'
            ? `device '${target.name}' (bus ${target.bus.name}, unit ${target.unit}) answers`
            : `device '${target.name}' (bus ${target.bus.name}, unit ${target.unit}) is ${device.state}: ${lastError}`,
      };
      const log = device.state === 'online' ? 'info' : 'warn';
      this.options.logger[log]({ device: target.name, bus: target.bus.name, state: device.state }, body.message);
      // A first successful read is not news; every later change is, for the auditor.
      if (!(previous === 'unknown' && device.state === 'online')) records.push({ type: 'event', body });
    }
    return { records, failed };
  }
}
