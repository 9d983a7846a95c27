/**
 * A real mosquitto for integration tests: a free loopback port, a generated config in a temp directory (persistence
 * on, no queue limit), optional password file (mosquitto_passwd), ACL file and TLS with a test CA made by openssl at
 * test time. stop() (SIGTERM, mosquitto saves its persistence), kill() (SIGKILL, a crash) and start() again on the
 * same port.
 *
 * Without mosquitto the tests that need it are skipped with a loud warning, except in CI (process.env.CI set), where
 * a missing mosquitto is an error: install the Debian packages `mosquitto` and `mosquitto-clients`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

const CANDIDATES = [
  '/usr/sbin/mosquitto',
  '/usr/local/sbin/mosquitto',
  '/usr/bin/mosquitto',
  '/opt/homebrew/sbin/mosquitto',
];

/** Path of the mosquitto binary, or undefined. */
export function findMosquitto(): string | undefined {
  for (const path of CANDIDATES) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  try {
    return execFileSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when mosquitto can run here. Missing: throws in CI (tests must fail), otherwise warns loudly and returns false
 * so the caller can skip.
 */
export function requireMosquitto(): boolean {
  if (findMosquitto() !== undefined) return true;
  const message =
    'mosquitto is not installed: the MQTT delivery tests need a real broker. Install it with ' +
    '`apt-get install mosquitto mosquitto-clients` (Debian/Ubuntu) or `brew install mosquitto`.';
  if (process.env.CI) throw new Error(`${message} (CI is set, so this is an error, not a skip)`);
  process.stderr.write(`\n*** SKIPPING mosquitto tests: ${message}\n\n`);
  return false;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with openssl. */
export function generateTestPki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const p = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=mgmc test CA',
  );
  const issue = (name: string, cn: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), `${ext}\n`);
    openssl('req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`);
    openssl(
      'x509',
      '-req',
      '-in',
      p(`${name}.csr`),
      '-CA',
      p('ca.crt'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-out',
      p(`${name}.crt`),
      '-days',
      '2',
      '-extfile',
      p(`${name}.ext`),
    );
  };
  issue('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  issue('client', 'mgmc test client', 'extendedKeyUsage=clientAuth');
  return {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
  };
}

export interface MosquittoOptions {
  /** username -> password; written with mosquitto_passwd. Anonymous clients are refused when users are given. */
  readonly users?: Readonly<Record<string, string>>;
  /** Content of the ACL file (mosquitto.conf(5) acl_file syntax). */
  readonly acl?: string;
  /** Serve TLS with a generated test CA; `requireClientCert` asks clients for a certificate from that CA. */
  readonly tls?: boolean | { readonly requireClientCert?: boolean };
  /** More mosquitto.conf lines. */
  readonly extraConfig?: readonly string[];
}

export interface MosquittoBroker {
  /** mqtt://127.0.0.1:port or mqtts://127.0.0.1:port */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly pki: TestPki | undefined;
  readonly running: boolean;
  /** Starts mosquitto again on the same port with the same config and persistence. */
  start(): Promise<void>;
  /** SIGTERM and wait: mosquitto saves its persistence file and exits. */
  stop(): Promise<void>;
  /** SIGKILL and wait: a crash; whatever was not saved is lost. */
  kill(): Promise<void>;
  /** mosquitto's own log so far. */
  log(): string;
  /** Stops mosquitto and deletes the temp directory. */
  dispose(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoBroker> {
  const binary = findMosquitto();
  if (binary === undefined) throw new Error('mosquitto is not installed (see requireMosquitto)');
  const dir = mkdtempSync(join(tmpdir(), 'mgmc-mosquitto-'));
  const port = await freePort();
  const tlsWanted = options.tls !== undefined && options.tls !== false;
  const requireClientCert = typeof options.tls === 'object' && options.tls.requireClientCert === true;
  const pki = tlsWanted ? generateTestPki(join(dir, 'pki')) : undefined;
  mkdirSync(join(dir, 'data'));
  const lines = [
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${options.users === undefined ? 'true' : 'false'}`,
    'persistence true',
    `persistence_location ${join(dir, 'data')}/`,
    // The default (1000) silently drops QoS 1 messages for a lagging subscriber (NOTES.md, MQTT). Not 0 (unlimited):
    // mosquitto 2.0.11 then disconnects a client right after answering an ACL-denied QoS 1 PUBLISH with PUBACK 0x87
    // (its quota check compares the client's queue with max_queued_messages, and anything >= 0 is "exceeded").
    'max_queued_messages 1000000',
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    'log_type all',
    'connection_messages true',
    // As root mosquitto would drop to user "mosquitto", who cannot write this temp directory.
    `user ${userInfo().username}`,
  ];
  if (options.users !== undefined) {
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, '', { mode: 0o600 });
    for (const [user, password] of Object.entries(options.users)) {
      execFileSync('mosquitto_passwd', ['-b', passwd, user, password], { stdio: ['ignore', 'pipe', 'pipe'] });
    }
    lines.push(`password_file ${passwd}`);
  }
  if (options.acl !== undefined) {
    const acl = join(dir, 'acl');
    writeFileSync(acl, options.acl, { mode: 0o600 });
    lines.push(`acl_file ${acl}`);
  }
  if (pki !== undefined) {
    lines.push(`cafile ${pki.ca}`, `certfile ${pki.serverCert}`, `keyfile ${pki.serverKey}`);
    lines.push(`require_certificate ${requireClientCert ? 'true' : 'false'}`);
  }
  lines.push(...(options.extraConfig ?? []));
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(config, `${lines.join('\n')}\n`);

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';
  const readLog = (): string => {
    try {
      return readFileSync(join(dir, 'mosquitto.log'), 'utf8');
    } catch {
      return '';
    }
  };

  const start = async (): Promise<void> => {
    if (child !== undefined) throw new Error('mosquitto is already running');
    const proc = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolve) =>
      proc.once('exit', (code, signal) => {
        exitInfo = `exited with ${signal ?? `code ${code}`}`;
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exitInfo !== undefined) {
        throw new Error(`mosquitto ${exitInfo} while starting on port ${port}\nstderr: ${stderr}\nlog:\n${readLog()}`);
      }
      if (await canConnect(port)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`mosquitto did not listen on port ${port} within 15 s\nlog:\n${readLog()}`);
      }
      await sleep(25);
    }
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (proc === undefined) return;
    proc.kill(sig);
    await exited;
  };

  await start();
  return {
    url: `${pki === undefined ? 'mqtt' : 'mqtts'}://127.0.0.1:${port}`,
    port,
    dir,
    pki,
    get running() {
      return child !== undefined;
    },
    start,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    log: readLog,
    async dispose() {
      await signal('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
