/**
 * mgmc status: the technician's summary of a served /status (an MGMC and a DSO node), --json, where --config says to
 * ask, and the message when no agent answers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CommandError, EXIT, type Io } from '../../../agent/commands/io.js';
import { ago, duration, statusCommand, urlFromConfig } from '../../../agent/commands/status.js';
import type { DsoStatusReport, MgmcStatusReport } from '../../../agent/health.js';

function captureIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    env: {},
    stdin: process.stdin,
    stdout,
    stderr,
    out: (text) => stdout.push(text),
    err: (text) => stderr.push(text),
  };
}

const NOW = Date.UTC(2026, 5, 22, 12, 7, 30);

const MGMC: MgmcStatusReport = {
  role: 'mgmc',
  site: 'Dorfstrasse 5',
  address: '0x00000000000000000000000000000000000000A1',
  chainId: 1337,
  time: NOW,
  startedAt: NOW - (3 * 3600 + 20 * 60) * 1000,
  health: { status: 'ok' },
  link: { url: 'mqtts://broker.dso.example:8883', state: 'online', connected: true, connections: 2 },
  devices: [
    {
      name: 'pv',
      bus: 'lan',
      unit: 1,
      state: 'online',
      lastGood: NOW - 400,
      lastAttempt: NOW - 400,
      lastError: null,
      consecutiveFailures: 0,
      reads: 1200,
      errors: 0,
    },
    {
      name: 'ev',
      bus: 'lan',
      unit: 3,
      state: 'offline',
      lastGood: NOW - 5 * 60_000,
      lastAttempt: NOW - 1000,
      lastError: "device 'ev': no answer within 1000 ms",
      consecutiveFailures: 30,
      reads: 1200,
      errors: 30,
    },
  ],
  unresolved: [{ device: 'heat-pump', message: 'no SunSpec marker at 40000, 0 or 50000' }],
  meters: [
    { name: 'grid-signer', connected: true, firmware: '1.2.0', batches: 14, lastBatch: NOW - 12_000, lastError: null },
  ],
  ledger: { height: 812, anchoredHeight: 809, lastSeq: 40_210, unsealed: 12 },
  sync: {
    authorization: 'authorized',
    outboxDepth: 3,
    oldestUnacknowledgedMs: 14_000,
    shippedHeight: 812,
    dsoHeight: 400,
    receipts: 809,
    lastReceiptAt: NOW - 4000,
  },
  optimizer: {
    runs: 13,
    failures: 1,
    lastRunAt: NOW - 7 * 60_000,
    lastSolveMs: 35.4,
    schedule: {
      status: 'optimal',
      stepMs: 15 * 60_000,
      steps: [
        { start: Date.UTC(2026, 5, 22, 12, 0), netW: -2300, ders: { 'home/battery': 1200, 'home/pv': 3500 } },
        { start: Date.UTC(2026, 5, 22, 12, 15), netW: -1800, ders: { 'home/battery': 0, 'home/pv': 3400 } },
      ],
    },
  },
  market: { attempts: 4, finals: 4, disputes: 0, settlements: 3, deliveriesSent: 3, seals: 40 },
};

const DSO: DsoStatusReport = {
  role: 'dso',
  site: 'Feeder 7',
  address: '0x00000000000000000000000000000000000000D5',
  chainId: 1337,
  time: NOW,
  startedAt: NOW - 2 * 86_400_000,
  health: { status: 'ok' },
  link: { url: 'mqtts://broker.dso.example:8883', state: 'online', connected: true, connections: 1 },
  dso: {
    anchor: true,
    chainHeight: 5000,
    pendingEntries: 2,
    blocks: { accepted: 9000, duplicate: 12, parked: 1, rejected: { 'bad-signature': 2 } },
    receiptsSent: 9012,
    headersSent: 5000,
    registrations: 3,
    dropped: { malformed: 1 },
    publishFailures: 0,
  },
  mgmcs: [
    { address: '0x00000000000000000000000000000000000000A1', status: 'authorized', bus: '18', anonym: '0xAA' },
    { address: '0x00000000000000000000000000000000000000B2', status: 'pending', bus: '25', anonym: null },
  ],
};

/** Serves `body` on /status (any status code) on a free loopback port. */
async function serveStatus(body: unknown, statusCode = 200): Promise<string> {
  const server = createServer((request, response) => {
    if (request.url !== '/status') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(statusCode, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

const dir = mkdtempSync(join(tmpdir(), 'mgmc-status-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mgmc status', () => {
  it("prints an MGMC's devices, ledger, outbox, broker, schedule and market for a technician", async () => {
    const url = await serveStatus(MGMC);
    const io = captureIo();
    expect(await statusCommand(io, { url, json: false })).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toContain('MGMC "Dorfstrasse 5"  0x00000000000000000000000000000000000000A1  chain 1337');
    expect(text).toContain('health: ok  up 3 h 20 min  (as of 2026-06-22 12:07:30Z)');
    expect(text).toContain('broker: mqtts://broker.dso.example:8883 connected, 2 connection(s) in this run');
    const lines = text.split('\n');
    expect(lines).toContain('DEVICE  BUS  UNIT  STATE    LAST GOOD READ  READS  ERRORS  LAST ERROR');
    expect(lines).toContain('pv      lan  1     online   400 ms ago      1200   0');
    expect(lines).toContain(
      "ev      lan  3     offline  5 min ago       1200   30      device 'ev': no answer within 1000 ms",
    );
    expect(text).toContain('not polled: heat-pump: no SunSpec marker at 40000, 0 or 50000 (retried in the background)');
    expect(lines).toContain('METER        LINE  FIRMWARE  BATCHES  LAST BATCH  LAST ERROR');
    expect(lines).toContain('grid-signer  open  1.2.0     14       12 s ago');
    expect(text).toContain('ledger: height 812, anchored by the DSO through 809, last record 40210, 12 unsealed');
    expect(text).toContain(
      'outbox: 3 message(s) waiting for the DSO, oldest 14 s; last receipt 4 s ago; DSO authorization: authorized',
    );
    expect(text).toContain('optimizer: 13 plan(s), 1 failed; last 7 min ago, solved in 35 ms');
    expect(text).toContain('schedule (optimal, 15 min steps, UTC, W):');
    expect(lines).toContain('FROM   NET    HOME/BATTERY  HOME/PV');
    expect(lines).toContain('12:00  -2300  1200          3500');
    expect(lines).toContain('12:15  -1800  0             3400');
    expect(text).toContain(
      'market: 4 attempt(s), 4 cleared, 0 dispute(s), 3 settled, 3 deliveries sent, 40 seal(s) checked',
    );
  });

  it("prints a DSO node's chain, blocks and registered MGMCs", async () => {
    const url = await serveStatus(DSO);
    const io = captureIo();
    expect(await statusCommand(io, { url, json: false })).toBe(EXIT.ok);
    const text = io.stdout.join('\n');
    expect(text).toContain('DSO node "Feeder 7"');
    expect(text).toContain('up 2 d');
    expect(text).toContain('DSO chain: height 5000, 2 MGMC block(s) waiting for the next DSO block');
    expect(text).toContain('MGMC blocks: 9000 accepted, 12 duplicate, 1 parked, 2 rejected (bad-signature 2)');
    expect(text).toContain('dropped: malformed 1');
    expect(text.split('\n')).toContain('0x00000000000000000000000000000000000000B2  pending     25');
  });

  it('--json prints what the agent served', async () => {
    const url = await serveStatus(MGMC);
    const io = captureIo();
    expect(await statusCommand(io, { url, json: true })).toBe(EXIT.ok);
    expect(JSON.parse(io.stdout.join(''))).toEqual(MGMC);
  });

  it('exits 1 and says why while the agent starts or stops', async () => {
    const starting = captureIo();
    const url = await serveStatus({ status: 'unavailable', reason: 'starting' }, 503);
    expect(await statusCommand(starting, { url, json: false })).toBe(EXIT.failed);
    expect(starting.stderr).toEqual([`mgmc: the agent at ${url} is starting; ask again in a few seconds`]);

    const stopping = captureIo();
    const url2 = await serveStatus({ ...MGMC, health: { status: 'unavailable', reason: 'stopping' } });
    expect(await statusCommand(stopping, { url: url2, json: false })).toBe(EXIT.failed);
    expect(stopping.stdout.join('\n')).toContain('health: unavailable (stopping)');
  });

  it('says plainly that no agent answers, and how to look, when nothing listens', async () => {
    // A port that was free a moment ago: nothing listens there now.
    const url = await serveStatus(MGMC);
    await new Promise((resolve) => servers.pop()?.close(resolve));
    const io = captureIo();
    expect(await statusCommand(io, { url, json: false })).toBe(EXIT.failed);
    expect(io.stdout).toEqual([]);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(
      new RegExp(
        `^mgmc: no agent answers at ${url}: is it running\\? \`systemctl status mgmc-agent\` \\(ECONNREFUSED\\)$`,
      ),
    );
  });

  it('refuses something that is not an agent', async () => {
    const url = await serveStatus({ hello: 'world' });
    const error = await statusCommand(captureIo(), { url, json: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).exitCode).toBe(EXIT.dataError);
    expect((error as Error).message).toContain("is not an mgmc agent's status");
  });

  it('takes --config or --url, not both, and only an http URL', async () => {
    await expect(statusCommand(captureIo(), { url: 'http://x', config: 'y', json: false })).rejects.toMatchObject({
      exitCode: EXIT.usage,
    });
    await expect(statusCommand(captureIo(), { url: 'localhost:9464', json: false })).rejects.toMatchObject({
      exitCode: EXIT.usage,
    });
  });
});

describe('where --config says to ask', () => {
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  // The service's passphrase is not in a technician's shell: only the metrics section is read.
  const head = 'role: mgmc\nsite: { name: x }\nidentity: { keystore: ./k.json, passphrase: env:NOT_SET_HERE }\n';

  it('uses metrics.host and metrics.port, with the agent defaults when left out', async () => {
    expect(await urlFromConfig(write('default.yaml', head))).toBe('http://127.0.0.1:9464');
    expect(await urlFromConfig(write('port.yaml', `${head}metrics: { port: 9500 }\n`))).toBe('http://127.0.0.1:9500');
    expect(await urlFromConfig(write('any.yaml', `${head}metrics: { host: 0.0.0.0, port: 9501 }\n`))).toBe(
      'http://127.0.0.1:9501',
    );
    expect(await urlFromConfig(write('v6.yaml', `${head}metrics: { host: "::1" }\n`))).toBe('http://[::1]:9464');
  });

  it('says what to do when the config cannot tell', async () => {
    await expect(urlFromConfig(write('off.yaml', `${head}metrics: { enabled: false }\n`))).rejects.toThrow(
      /metrics\.enabled is false, so the agent serves no status: set it to true and restart the agent/,
    );
    await expect(urlFromConfig(write('zero.yaml', `${head}metrics: { port: 0 }\n`))).rejects.toThrow(
      /metrics\.port is 0, so the agent picked a free port at start: .* give that URL with --url/,
    );
    await expect(urlFromConfig(join(dir, 'missing.yaml'))).rejects.toMatchObject({ exitCode: EXIT.noInput });
    await expect(urlFromConfig(write('bad.yaml', 'metrics: [\n'))).rejects.toMatchObject({ exitCode: EXIT.config });
  });
});

describe('ages and durations', () => {
  it('reads like a person would say them', () => {
    expect(duration(850)).toBe('850 ms');
    expect(duration(12_400)).toBe('12 s');
    expect(duration(5 * 60_000 + 59_000)).toBe('5 min');
    expect(duration(3 * 3_600_000)).toBe('3 h');
    expect(duration(3 * 3_600_000 + 20 * 60_000)).toBe('3 h 20 min');
    expect(duration(50 * 3_600_000)).toBe('2 d 2 h');
    expect(ago(NOW, null)).toBe('never');
    expect(ago(NOW, NOW - 4000)).toBe('4 s ago');
  });
});
