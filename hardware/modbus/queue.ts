/**
 * A first-in-first-out queue that runs one async task at a time: one per physical bus, so requests never overlap on
 * the wire (RS-485 is half-duplex and many Modbus TCP devices serve one request, or one client, at a time).
 */

interface Entry {
  readonly run: () => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
}

/** Runs tasks strictly one after another, in the order they were pushed. */
export class SerialQueue {
  private readonly entries: Entry[] = [];
  private running = false;
  private closedWith: Error | undefined;

  /** Number of tasks waiting (not counting the one running). */
  get waiting(): number {
    return this.entries.length;
  }

  /** True while a task runs. */
  get busy(): boolean {
    return this.running;
  }

  /** Queues `task`; the promise settles with its result when its turn has come and it has finished. */
  push<T>(task: () => Promise<T>): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<T>((resolve, reject) => {
      this.entries.push({ run: task, resolve: resolve as (value: unknown) => void, reject });
      if (!this.running) void this.drain();
    });
  }

  /** Rejects every waiting task (and all later pushes) with `reason`; the running task finishes on its own. */
  close(reason: Error): void {
    this.closedWith = reason;
    for (const entry of this.entries.splice(0)) entry.reject(reason);
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let entry = this.entries.shift(); entry; entry = this.entries.shift()) {
        try {
          entry.resolve(await entry.run());
        } catch (err) {
          entry.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
