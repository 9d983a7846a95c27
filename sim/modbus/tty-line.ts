/**
 * A serial line on a tty path (a socat pty end) through node's tty streams: event-driven reads (no thread-pool
 * thread blocked per open line, as fs.createReadStream would), separate descriptors for reading and writing.
 * The pty must already be raw (openPtyPair's socat sets `raw,echo=0`); this does not touch termios, because libuv's
 * raw mode keeps output post-processing (ONLCR) on and would corrupt binary frames.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { ReadStream, WriteStream } from 'node:tty';

/** One open line. */
export interface TtyLine {
  readonly path: string;
  /** Queues bytes for sending. */
  write(data: Uint8Array): void;
  /** Calls back with every chunk received. */
  onData(listener: (chunk: Buffer) => void): void;
  /** Calls back once when the line fails or the other end disappears (socat exited). */
  onClose(listener: (reason: string) => void): void;
  close(): Promise<void>;
}

/** Opens `path` (a tty) for reading and writing; throws with the path and a hint when it can't. */
export function openTtyLine(path: string): TtyLine {
  let readFd: number | undefined;
  let writeFd: number | undefined;
  try {
    readFd = openSync(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
    writeFd = openSync(path, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (err) {
    if (readFd !== undefined) closeSync(readFd);
    throw new Error(
      `cannot open serial line ${path}: ${err instanceof Error ? err.message : String(err)} ` +
        '(is the socat pty pair still running?)',
    );
  }
  const reader = new ReadStream(readFd);
  const writer = new WriteStream(writeFd);
  const closeListeners: Array<(reason: string) => void> = [];
  let closed = false;
  const lost = (reason: string) => {
    if (closed) return;
    closed = true;
    for (const l of closeListeners) l(reason);
  };
  reader.on('error', (err) => lost(`read failed: ${err.message}`));
  writer.on('error', (err) => lost(`write failed: ${err.message}`));
  reader.on('end', () => lost('the other end closed'));
  return {
    path,
    write(data) {
      if (!closed && writer.writable) writer.write(data);
    },
    onData(listener) {
      reader.on('data', (chunk: Buffer | string) => listener(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    },
    onClose(listener) {
      closeListeners.push(listener);
    },
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        let pending = 2;
        const done = () => {
          pending -= 1;
          if (pending === 0) resolve();
        };
        reader.once('close', done);
        writer.once('close', done);
        reader.destroy();
        writer.destroy();
      }),
  };
}
