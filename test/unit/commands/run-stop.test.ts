/**
 * The hard deadline of `mgmc run`'s stop: on time it exits 0; a part that hangs or fails is named in the log and the
 * process is ended with 70 instead of hanging. The clock is a ManualClock: no real time passes.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { EXIT } from '../../../agent/commands/io.js';
import { STOP_DEADLINE_MS, stopWithin } from '../../../agent/commands/run.js';
import { createLogger } from '../../../agent/logger.js';

function setup() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ destination: { write: (line: string) => lines.push(JSON.parse(line)) } }).child({
    module: 'run',
  });
  const exits: number[] = [];
  const clock = new ManualClock(0);
  return {
    lines,
    exits,
    clock,
    options: { clock, log, deadlineMs: STOP_DEADLINE_MS, exit: (c: number) => exits.push(c) },
  };
}

/** Lets the promise callbacks queued so far run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('stopWithin()', () => {
  it('returns 0 and ends nothing when every part stops in time', async () => {
    const { exits, lines, options } = setup();
    const parts: string[] = [];
    const code = await stopWithin(async (step) => {
      for (const part of ['polling', 'sealing the last block', 'closing the database']) {
        step(part);
        parts.push(part);
      }
    }, options);
    expect(code).toBe(EXIT.ok);
    expect(parts).toHaveLength(3);
    expect(exits).toEqual([]);
    expect(lines).toEqual([]);
  });

  it('past the deadline names the part that hangs and the ones that finished, and exits 70', async () => {
    const { exits, lines, clock, options } = setup();
    const result = stopWithin((step) => {
      step('polling');
      step('broker (publishing offline)');
      return new Promise<void>(() => {});
    }, options);
    await settle();
    clock.advance(STOP_DEADLINE_MS - 1);
    await settle();
    expect(exits).toEqual([]);
    clock.advance(1);
    expect(await result).toBe(EXIT.software);
    expect(exits).toEqual([EXIT.software]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 50,
      module: 'run',
      deadlineMs: 4500,
      step: 'broker (publishing offline)',
      finished: ['stopping', 'polling'],
      msg:
        'the stop did not finish within 4500 ms: still at broker (publishing offline); exiting anyway ' +
        '(records already stored are sealed at the next start)',
    });
  });

  it('a part that fails is named with its error, and the process still ends', async () => {
    const { exits, lines, options } = setup();
    const code = await stopWithin(async (step) => {
      step('closing the database');
      throw new Error('database is locked');
    }, options);
    expect(code).toBe(EXIT.software);
    expect(exits).toEqual([EXIT.software]);
    expect(lines[0]).toMatchObject({
      level: 50,
      step: 'closing the database',
      msg: 'stopping failed at closing the database: database is locked',
    });
  });
});
