/**
 * Setpoints the agent owns: written with read-back, and written again before the device forgets them. Devices
 * with a revert timer (SunSpec 123 WMaxLimPct_RvrtTms, 124 InOutWRte_RvrtTms) drop a setpoint that is not renewed,
 * which is what makes a crashed controller safe; the keeper renews at half the timeout. A failed or mismatched
 * write is an event in the ledger and a warning in the log, and is tried again at the next renewal.
 */

import type { ModbusBus } from '../../hardware/modbus/types.js';
import type { SetpointControl, WriteOutcome } from '../../hardware/modbus/writer.js';
import { writeSetpoint } from '../../hardware/modbus/writer.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { Logger } from '../logger.js';
import type { ReadingSink } from './poller.js';

export interface SetpointTarget {
  readonly device: string;
  readonly bus: ModbusBus;
  readonly unit: number;
  readonly control: SetpointControl;
}

export interface SetpointKeeperOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Where write failures are recorded as `event` records (the ledger). */
  readonly sink: ReadingSink;
  /** Revert timeout written to devices that have one, seconds. */
  readonly revertSeconds?: number;
  /** Renewal period for setpoints without a revert timer, ms (some devices forget after a reboot). */
  readonly refreshMs?: number;
}

interface Held {
  readonly target: SetpointTarget;
  value: number;
  timer: TimerHandle | undefined;
  lastOutcome: WriteOutcome | undefined;
  lastError: string | undefined;
}

export class SetpointKeeper {
  private readonly held = new Map<string, Held>();
  private stopped = false;

  constructor(private readonly options: SetpointKeeperOptions) {}

  /** Holds `value` on the target from now on; resolves with the first write's outcome (undefined if it failed). */
  async set(target: SetpointTarget, value: number): Promise<WriteOutcome | undefined> {
    const key = `${target.device}\u0000${target.control.point.key}`;
    const existing = this.held.get(key);
    existing?.timer?.cancel();
    const held: Held = existing ?? { target, value, timer: undefined, lastOutcome: undefined, lastError: undefined };
    held.value = value;
    this.held.set(key, held);
    return this.write(held);
  }

  /** Stops renewing a setpoint; the device falls back after its revert timer. */
  release(device: string, pointKey: string): void {
    const key = `${device}\u0000${pointKey}`;
    this.held.get(key)?.timer?.cancel();
    this.held.delete(key);
  }

  status(): { device: string; point: string; value: number; ok: boolean; lastError: string | undefined }[] {
    return [...this.held.values()].map((h) => ({
      device: h.target.device,
      point: h.target.control.point.key,
      value: h.value,
      ok: h.lastOutcome?.ok === true,
      lastError: h.lastError,
    }));
  }

  stop(): void {
    this.stopped = true;
    for (const held of this.held.values()) held.timer?.cancel();
  }

  private renewalMs(held: Held): number {
    const revert = this.options.revertSeconds ?? 60;
    return held.target.control.revertTimeout === undefined
      ? (this.options.refreshMs ?? 60_000)
      : Math.max(1000, (revert * 1000) / 2);
  }

  private async write(held: Held): Promise<WriteOutcome | undefined> {
    const { target } = held;
    const value = held.value;
    let outcome: WriteOutcome | undefined;
    try {
      outcome = await writeSetpoint(target.bus, target.unit, target.control, value, {
        revertSeconds: this.options.revertSeconds ?? 60,
      });
      held.lastOutcome = outcome;
      held.lastError = outcome.ok ? undefined : outcome.problem;
      if (!outcome.ok) this.record(target, 'setpoint-mismatch', outcome.problem ?? 'read-back differs');
    } catch (error) {
      held.lastOutcome = undefined;
      held.lastError = (error as Error).message;
      this.record(target, 'setpoint-failed', held.lastError);
    }
    if (!this.stopped && this.held.get(`${target.device}\u0000${target.control.point.key}`) === held) {
      held.timer = this.options.clock.setTimeout(() => void this.write(held), this.renewalMs(held));
    }
    return outcome;
  }

  private record(target: SetpointTarget, kind: string, message: string): void {
    const text = `device '${target.device}': setpoint ${target.control.point.key}: ${message}`;
    this.options.logger.warn({ device: target.device, point: target.control.point.key, kind }, text);
    try {
      this.options.sink.append([{ type: 'event', body: { source: target.device, kind, message: text } }]);
    } catch (error) {
      this.options.logger.error({ err: error }, 'could not record a setpoint event in the ledger');
    }
  }
}
