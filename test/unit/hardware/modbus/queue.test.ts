import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../../../hardware/modbus/queue.js';

describe('SerialQueue', () => {
  it('runs one task at a time, in order, and survives failures', async () => {
    const q = new SerialQueue();
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const task = (i: number) => async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setImmediate(r));
      order.push(i);
      running--;
      if (i === 2) throw new Error('task 2 failed');
      return i * 10;
    };
    const results = await Promise.allSettled([0, 1, 2, 3, 4].map((i) => q.push(task(i))));
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(1);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      0,
      10,
      'task 2 failed',
      30,
      40,
    ]);
  });

  it('close() rejects waiting and later tasks, the running one finishes', async () => {
    const q = new SerialQueue();
    let release!: () => void;
    const first = q.push(() => new Promise<string>((r) => (release = () => r('done'))));
    const second = q.push(async () => 'never');
    await new Promise((r) => setImmediate(r));
    q.close(new Error('closed'));
    release();
    await expect(first).resolves.toBe('done');
    await expect(second).rejects.toThrow('closed');
    await expect(q.push(async () => 1)).rejects.toThrow('closed');
  });
});
