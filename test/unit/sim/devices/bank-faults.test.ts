import { describe, expect, it } from 'vitest';
import type { HardwareClock } from '../../../../hardware/clock.js';
import { discoverSunSpec } from '../../../../hardware/modbus/discovery.js';
import type { ModbusBus } from '../../../../hardware/modbus/types.js';
import { ModbusError } from '../../../../hardware/modbus/types.js';
import { loadCatalogue } from '../../../../hardware/profile/load.js';
import { FaultyBank, withBankFaults } from '../../../../sim/devices/bank-faults.js';
import { SimDeviceRegisters } from '../../../../sim/devices/register-map.js';
import { ArrayRegisterBank, type RegisterBank } from '../../../../sim/modbus/bank.js';
import { exampleSite, SimSite } from '../../../../sim/physics/site.js';

const T0 = Date.UTC(2030, 0, 1);

/** A clock that moves only when told to; due timers fire during advance(), in time order. */
function manualClock(start = T0): HardwareClock & { advance(ms: number): void } {
  let now = start;
  let timers: Array<{ due: number; callback: () => void; cancelled: boolean }> = [];
  return {
    now: () => now,
    setTimeout(callback, ms) {
      const timer = { due: now + ms, callback, cancelled: false };
      timers.push(timer);
      return {
        cancel: () => {
          timer.cancelled = true;
        },
      };
    },
    setInterval() {
      throw new Error('not used');
    },
    advance(ms) {
      const target = now + ms;
      for (;;) {
        const next = timers.filter((t) => !t.cancelled && t.due <= target).sort((a, b) => a.due - b.due)[0];
        if (next === undefined) break;
        now = next.due;
        next.cancelled = true;
        next.callback();
      }
      timers = timers.filter((t) => !t.cancelled);
      now = target;
    },
  };
}

function plainBank(): ArrayRegisterBank {
  return new ArrayRegisterBank({
    holding: [{ start: 0, values: [10, 11, 12, 13, 14, 15, 16, 17], writable: true }],
    input: [{ start: 0, values: [20, 21, 22] }],
  });
}

/** A ModbusBus over a bank, so discovery runs exactly as against a device. */
function busOver(bank: RegisterBank): ModbusBus {
  return {
    name: 'test',
    async read(unit, fn, start, count) {
      const answer = bank.read(fn, start, count);
      if (Array.isArray(answer)) return answer;
      throw new ModbusError('exception', `exception ${answer.exception}`, { unit, exceptionCode: answer.exception });
    },
    async write() {},
    health: () => ({ state: 'online', consecutiveFailures: 0 }),
    async close() {},
  };
}

describe('stuck', () => {
  it('freezes a range at its value from `from` until `until`, while writes still reach the device', () => {
    const clock = manualClock();
    const inner = plainBank();
    const bank = new FaultyBank(inner, clock, [
      { kind: 'stuck', start: 2, count: 2, from: T0 + 1000, until: T0 + 5000 },
    ]);
    inner.set(3, 2, [100, 101]);
    expect(bank.read(3, 0, 5)).toEqual([10, 11, 100, 101, 14]);
    clock.advance(1000);
    inner.set(3, 2, [200, 201]);
    expect(bank.read(3, 1, 4)).toEqual([11, 100, 101, 14]);
    expect(bank.read(3, 3, 1)).toEqual([101]);
    expect(bank.write(2, [7])).toBeUndefined();
    expect(inner.get(3, 2, 1)).toEqual([7]);
    expect(bank.read(3, 2, 1)).toEqual([100]);
    // Another table is not affected.
    expect(bank.read(4, 0, 3)).toEqual([20, 21, 22]);
    clock.advance(4000);
    expect(bank.read(3, 2, 2)).toEqual([7, 201]);
  });

  it('captures on poll() or the first read when the clock jumps past `from` before its timer fires', () => {
    let now = T0;
    const jumpy: HardwareClock = {
      now: () => now,
      // A simulated clock moved by stepping the physics: its timers run on another time base and have not fired.
      setTimeout: () => ({ cancel() {} }),
      setInterval: () => ({ cancel() {} }),
    };
    const inner = plainBank();
    const bank = new FaultyBank(inner, jumpy, [
      { kind: 'stuck', start: 0, from: T0 + 10_000 },
      { kind: 'stuck', start: 1, from: T0 + 10_000 },
    ]);
    now = T0 + 60_000;
    inner.set(3, 0, [50, 51]);
    bank.poll();
    inner.set(3, 0, [60, 61]);
    expect(bank.read(3, 0, 2)).toEqual([50, 51]);
  });

  it('freezes a simulated point: the physics move on, the register does not', () => {
    const clock = manualClock();
    const site = new SimSite(exampleSite());
    site.step(site.startMs + 10 * 3_600_000);
    const catalogue = loadCatalogue();
    const registers = new SimDeviceRegisters({
      site,
      name: 'pv',
      profiles: ['sunspec-1', 'sunspec-103'].map((id) => catalogue.get(id)),
    });
    const w = registers.point('W');
    const bank = withBankFaults([{ kind: 'stuck', start: w.address, from: T0 }], clock)(registers);
    const frozen = bank.read(3, w.address, 1);
    site.step(site.time + 2 * 3_600_000);
    registers.updateFromSnapshot(site.snapshot());
    expect(registers.read(3, w.address, 1)).not.toEqual(frozen);
    expect(bank.read(3, w.address, 1)).toEqual(frozen);
  });
});

describe('missing-end-marker', () => {
  it('turns the end model into "illegal data address", and discovery stops there', async () => {
    const clock = manualClock();
    const site = new SimSite(exampleSite());
    const catalogue = loadCatalogue();
    const registers = new SimDeviceRegisters({
      site,
      name: 'pv',
      profiles: ['sunspec-1', 'sunspec-103', 'sunspec-123'].map((id) => catalogue.get(id)),
    });
    const end = registers.layout.sunspec?.endAddress as number;
    expect(registers.read(3, end, 2)).toEqual([0xffff, 0]);
    const bank = new FaultyBank(registers, clock, [{ kind: 'missing-end-marker', address: end }]);
    expect(bank.read(3, end, 2)).toEqual({ exception: 2 });
    expect(bank.read(3, end + 1, 1)).toEqual({ exception: 2 });
    expect(bank.read(3, end - 2, 2)).toEqual(registers.read(3, end - 2, 2));

    const intact = await discoverSunSpec(busOver(registers), 1);
    expect(intact).toMatchObject({ base: 40000, endMarker: true, stoppedBy: 'end-marker' });
    const broken = await discoverSunSpec(busOver(bank), 1);
    expect(broken).toMatchObject({ endMarker: false, stoppedBy: 'illegal-address' });
    expect(broken.models.map((m) => m.id)).toEqual([1, 103, 123]);
  });
});

describe('exception-range', () => {
  it('answers the exception for reads and writes touching the range, in its window', () => {
    const clock = manualClock();
    const bank = new FaultyBank(plainBank(), clock);
    bank.add({ kind: 'exception-range', start: 4, end: 5, code: 6, from: T0 + 100 });
    expect(bank.read(3, 0, 8)).toEqual([10, 11, 12, 13, 14, 15, 16, 17]);
    clock.advance(100);
    expect(bank.read(3, 0, 8)).toEqual({ exception: 6 });
    expect(bank.read(3, 5, 1)).toEqual({ exception: 6 });
    expect(bank.read(3, 6, 2)).toEqual([16, 17]);
    expect(bank.write(3, [1, 2])).toEqual({ exception: 6 });
    bank.add({ kind: 'exception-range', fn: 4, start: 0, end: 0, writes: false });
    expect(bank.read(4, 0, 1)).toEqual({ exception: 2 });
    expect(bank.list().map((f) => f.kind)).toEqual(['exception-range', 'exception-range']);
    bank.clear();
    expect(bank.read(3, 0, 8)).toEqual([10, 11, 12, 13, 14, 15, 16, 17]);
  });

  it('rejects faults that cannot be meant', () => {
    const bank = new FaultyBank(plainBank(), manualClock());
    expect(() => bank.add({ kind: 'exception-range', start: 5, end: 4 })).toThrow(/start <= end/);
    expect(() => bank.add({ kind: 'stuck', start: 0, from: 10, until: 5 })).toThrow(/until \(5\) must be after from/);
    expect(() => bank.add({ kind: 'exception-range', start: 0, end: 1, code: 0 })).toThrow(/code must be/);
  });
});
