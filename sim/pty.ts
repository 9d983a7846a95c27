/**
 * Pseudo-terminal pairs from socat: two linked serial-device paths, so a simulated RS-485 device and the agent can
 * talk over a real tty as they would over a USB adapter. socat is a Debian package (`apt-get install socat`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PtyPair {
  /** Path of one end (a symlink to /dev/pts/N), e.g. the device side. */
  readonly a: string;
  /** Path of the other end, e.g. the agent side. */
  readonly b: string;
  close(): Promise<void>;
}

/** True when socat is on PATH; tests that need ptys skip loudly when it is not (it is installed in CI). */
export function socatAvailable(): boolean {
  const r = spawnSync('socat', ['-V'], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Starts `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B` and resolves when both links exist.
 * `dir` defaults to a fresh temporary directory that close() removes.
 */
export async function openPtyPair(options: { dir?: string; names?: [string, string]; timeoutMs?: number } = {}) {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'mgmc-pty-'));
  const [nameA, nameB] = options.names ?? ['a', 'b'];
  const a = join(dir, nameA);
  const b = join(dir, nameB);
  const child = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const spawnError = new Promise<never>((_, reject) => {
    child.on('error', (err) =>
      reject(new Error(`could not start socat (${err.message}); install it with: apt-get install socat`)),
    );
  });
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  const ready = (async () => {
    while (!(existsSync(a) && existsSync(b))) {
      if (exited) throw new Error(`socat exited before creating ${a} and ${b}: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`socat did not create ${a} and ${b} within the timeout`);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    await Promise.race([ready, spawnError]);
  } catch (err) {
    child.kill('SIGKILL');
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pair: PtyPair = {
    a,
    b,
    close: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          if (ownDir) rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (exited) return done();
        child.once('exit', done);
        child.kill('SIGTERM');
      }),
  };
  return pair;
}
