/**
 * A pty ignores the baud rate, so RTU timing measured over a bare socat pair is meaningless. The baud relay sits
 * between two pty pairs (agent <-> relay <-> device) and delivers every byte no earlier than a real line at
 * `baudRate` would: each character occupies `bitsPerChar / baudRate` seconds, and on a half-duplex line (RS-485, the
 * default) both directions share one timeline. Timers only ever fire late, so bytes are late, never early: measured
 * times are a true upper bound on throughput and a true lower bound on latency.
 */
import { rtuCharTimeMs } from '../hardware/modbus/rtu.js';
import { openTtyLine, type TtyLine } from './modbus/tty-line.js';

/** The two pty ends to join and the line to imitate. */
export interface BaudRelayOptions {
  /** One pty end (e.g. the relay end of the agent's pair). */
  readonly from: string;
  /** The other (e.g. the relay end of the device's pair). */
  readonly to: string;
  readonly baudRate: number;
  /** Bits per character on the wire: 11 for Modbus RTU (start, 8 data, parity or 2nd stop, stop). Default 11. */
  readonly bitsPerChar?: number;
  /** 'half' (default): one shared line, as RS-485 two-wire; 'full': each direction has its own. */
  readonly duplex?: 'half' | 'full';
}

/** A running relay. */
export interface BaudRelayHandle {
  /** Bytes relayed so far, per direction. */
  stats(): { readonly forward: number; readonly backward: number };
  close(): Promise<void>;
}

interface Pending {
  readonly to: TtyLine;
  readonly byte: number;
  /** performance.now() at which the byte's last bit has arrived. */
  readonly due: number;
}

/** Opens both ends and starts relaying. */
export function startBaudRelay(options: BaudRelayOptions): BaudRelayHandle {
  if (!(options.baudRate > 0)) throw new RangeError(`baud relay: baudRate must be > 0, got ${options.baudRate}`);
  const charMs = rtuCharTimeMs(options.baudRate, options.bitsPerChar ?? 11);
  const half = (options.duplex ?? 'half') === 'half';
  const a = openTtyLine(options.from);
  let b: TtyLine;
  try {
    b = openTtyLine(options.to);
  } catch (err) {
    void a.close();
    throw err;
  }
  const queue: Pending[] = [];
  const lineFree = new Map<TtyLine, number>(); // per destination; one shared key when half duplex
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const counts = { forward: 0, backward: 0 };

  const flush = () => {
    timer = undefined;
    if (closed) return;
    const now = performance.now();
    let n = 0;
    while (n < queue.length && queue[n]!.due <= now) n++;
    let i = 0;
    while (i < n) {
      const to = queue[i]!.to;
      let j = i;
      while (j < n && queue[j]!.to === to) j++;
      to.write(Uint8Array.from(queue.slice(i, j), (p) => p.byte));
      i = j;
    }
    queue.splice(0, n);
    schedule();
  };

  const schedule = () => {
    if (timer || closed || queue.length === 0) return;
    timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  };

  const relay = (to: TtyLine, chunk: Buffer) => {
    const key = half ? a : to;
    const now = performance.now();
    let free = Math.max(now, lineFree.get(key) ?? 0);
    for (const byte of chunk) {
      free += charMs;
      queue.push({ to, byte, due: free });
    }
    lineFree.set(key, free);
    // Both directions share `queue`; with full duplex it may be out of due order, so keep it sorted.
    if (!half) queue.sort((x, y) => x.due - y.due);
    schedule();
  };

  a.onData((chunk) => {
    counts.forward += chunk.length;
    relay(b, chunk);
  });
  b.onData((chunk) => {
    counts.backward += chunk.length;
    relay(a, chunk);
  });

  return {
    stats: () => ({ ...counts }),
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      await Promise.all([a.close(), b.close()]);
    },
  };
}
