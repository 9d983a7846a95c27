/** Shared pieces of the Modbus integration tests: a fake clock, tool gates and a SunSpec-shaped bank. */
import { spawnSync } from 'node:child_process';
import { describe } from 'vitest';
import type { HardwareClock } from '../../hardware/clock.js';
import { ArrayRegisterBank, type RegisterRange } from '../../sim/modbus/bank.js';

/** A clock that moves only when told to (back-off decisions); timers are never needed by the bus. */
export function fakeClock(start = Date.UTC(2030, 0, 1)): HardwareClock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    advance(ms) {
      now += ms;
    },
    setTimeout: () => ({ cancel() {} }),
    setInterval: () => ({ cancel() {} }),
  };
}

/**
 * `describe` when the tool is installed; otherwise a loud skip on a developer machine and a failure in CI, where the
 * tool must be there.
 */
export function describeIfTool(tool: string, debianPackage: string, available: boolean): typeof describe {
  if (available) return describe;
  const message = `${tool} is not installed (apt-get install ${debianPackage})`;
  if (process.env.CI) throw new Error(`${message}: required in CI`);
  console.warn(`SKIPPING tests that need ${tool}: ${message}`);
  return describe.skip as typeof describe;
}

/** True when `cmd args` runs (exit status 0 or 1, as tools print help with either). */
export function toolRuns(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && (r.status === 0 || r.status === 1);
}

/** "SunS" followed by the given models ([id, registers]) and optionally the end marker, at `base`. */
export function sunspecBank(base: number, models: Array<[number, number]>, endMarker: boolean): ArrayRegisterBank {
  const values: number[] = [0x5375, 0x6e53];
  for (const [id, length] of models) {
    values.push(id, length);
    for (let i = 0; i < length; i++) values.push((id * 100 + i) & 0xffff);
  }
  if (endMarker) values.push(0xffff, 0);
  const holding: RegisterRange[] = [{ start: base, values }];
  return new ArrayRegisterBank({ holding });
}

/** Registers 0..n-1 holding value = address * 3 + 1 (mod 65536): every read checks itself. */
export function patternRange(start: number, count: number, writable = false): RegisterRange {
  return { start, values: Array.from({ length: count }, (_, i) => pattern(start + i)), writable };
}

/** The value patternRange puts at `address`. */
export function pattern(address: number): number {
  return (address * 3 + 1) & 0xffff;
}
