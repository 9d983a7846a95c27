#!/usr/bin/env node
/**
 * mgmc — the command line of mgmc-agent. Each subcommand has --help; read commands take --json. Exit codes are in
 * docs/cli.md (0 ok, 1 check failed, 2 usage, 65 bad data, 66 missing file, 70 internal, 73 won't overwrite, 78 bad
 * config).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { configCheck, configSchema } from './commands/config.js';
import { type DemoOptions, demo } from './commands/demo.js';
import { devicesRead, devicesScan, type ScanOptions } from './commands/devices.js';
import { type DsoChangeOptions, type DsoOptions, dsoApprove, dsoList, dsoReject, dsoRevoke } from './commands/dso.js';
import { registerGridCommands } from './commands/grid.js';
import { CommandError, EXIT, type Io, processIo } from './commands/io.js';
import { keygen, keyShow, keystoreToCommandError } from './commands/key.js';
import {
  ledgerCheckProof,
  ledgerExport,
  ledgerFill,
  ledgerProve,
  ledgerShow,
  ledgerVerify,
} from './commands/ledger.js';
import { registerMarketCommands } from './commands/market.js';
import { type OptimizeOptions, optimizeCommand } from './commands/optimize.js';
import { runAgent } from './commands/run.js';
import { type SimOptions, simCommand } from './commands/sim.js';
import { type StatusOptions, statusCommand } from './commands/status.js';
import { KeystoreError } from './identity/keystore.js';

function int(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

export function buildProgram(io: Io, done: (code: number) => void): Command {
  const run =
    <A extends unknown[]>(fn: (...args: A) => Promise<number> | number) =>
    async (...args: A): Promise<void> => {
      done(await fn(...args));
    };
  const program = new Command('mgmc')
    .description('microgrid master controller agent: devices, signed ledger, optimizer, market, DSO link')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();

  program
    .command('keygen')
    .description(
      `create a secp256k1 key in a Web3 Secret Storage v3 keystore (passphrase from MGMC_KEY_PASSPHRASE or asked)`,
    )
    .requiredOption('--out <file>', 'keystore file to create (mode 0600; never overwritten without --force)')
    .addOption(new Option('--kdf <kdf>', 'key derivation').choices(['scrypt', 'pbkdf2']).default('scrypt'))
    .option('--force', 'replace an existing keystore file (its key is lost)', false)
    .option('--json', 'print the result as JSON', false)
    .action(run((o: { out: string; kdf: 'scrypt' | 'pbkdf2'; force: boolean; json: boolean }) => keygen(io, o)));

  const key = program.command('key').description('inspect keystore files');
  key
    .command('show <file>')
    .description("print a keystore's address")
    .option('--verify', 'decrypt the key (needs the passphrase) and derive the address from it', false)
    .option('--json', 'print as JSON', false)
    .action(run((file: string, o: { json: boolean; verify: boolean }) => keyShow(io, file, o)));

  const config = program.command('config').description('check configuration files');
  config
    .command('check <file>')
    .description('check a config file and report every problem with file:line:column (exit 78 when bad)')
    .option('--json', 'print as JSON', false)
    .action(run((file: string, o: { json: boolean }) => configCheck(io, file, o)));
  config
    .command('schema')
    .description('print the config JSON Schema (for editors)')
    .action(run(() => configSchema(io)));

  const ledger = program.command('ledger').description("the MGMC's signed, hash-chained ledger");
  ledger
    .command('verify')
    .description('verify every block, link, signature, Merkle root and record; exit 1 naming the first bad block')
    .option('--db <file>', 'ledger database')
    .option('--file <export>', 'a JSONL export (verified without the database)')
    .option('--json', 'print as JSON', false)
    .action(run((o: { db?: string; file?: string; json: boolean }) => ledgerVerify(io, o)));
  ledger
    .command('show')
    .description('print the chain summary and recent blocks, one block (--height) or one record (--record)')
    .requiredOption('--db <file>', 'ledger database')
    .option('--height <n>', 'show one block', int('--height', 1))
    .option('--record <seq>', 'show one record', int('--record', 1))
    .option('--tail <n>', 'how many recent blocks to list', int('--tail', 0), 10)
    .option('--json', 'print as JSON', false)
    .action(
      run((o: { db: string; json: boolean; height?: number; record?: number; tail: number }) => ledgerShow(io, o)),
    );
  ledger
    .command('export')
    .description('export the whole chain for auditors and the DSO')
    .requiredOption('--db <file>', 'ledger database')
    .addOption(new Option('--format <format>', 'export format').choices(['jsonl']).default('jsonl'))
    .option('--out <file>', 'write here instead of stdout')
    .action(run((o: { db: string; format: string; out?: string }) => ledgerExport(io, o)));
  ledger
    .command('fill')
    .description(
      'append N synthetic device readings, sealed and signed as the poller would (trials, demos, benchmarks)',
    )
    .option('--db <file>', 'ledger database (created when missing)')
    .option('--key <file>', 'keystore of the producing MGMC (passphrase from MGMC_KEY_PASSPHRASE or asked)')
    .option('--config <file>', 'take the database, key, chain id and sealing settings from a site config instead')
    .requiredOption('--readings <n>', 'number of readings', int('--readings', 1))
    .option('--chain-id <n>', 'chain id', int('--chain-id', 0), 1337)
    .option('--seal-every-records <n>', 'records per block', int('--seal-every-records', 1), 1000)
    .option('--batch <n>', 'records per transaction (one poll cycle)', int('--batch', 1), 500)
    .addOption(new Option('--synchronous <mode>', 'SQLite durability').choices(['full', 'normal']).default('full'))
    .option('--json', 'print as JSON', false)
    .action(
      run(
        (o: {
          db?: string;
          key?: string;
          config?: string;
          readings: number;
          chainId: number;
          sealEveryRecords: number;
          batch: number;
          synchronous: 'full' | 'normal';
          json: boolean;
        }) => ledgerFill(io, o),
      ),
    );
  ledger
    .command('prove')
    .description('print an inclusion proof of one record that a third party can check against the signed header')
    .requiredOption('--db <file>', 'ledger database')
    .requiredOption('--record <seq>', 'record seq', int('--record', 1))
    .option('--out <file>', 'write the proof to a file')
    .action(run((o: { db: string; record: number; out?: string }) => ledgerProve(io, o)));
  ledger
    .command('check-proof <file>')
    .description('check a record proof made by `mgmc ledger prove`')
    .option('--producer <address>', 'require this producer')
    .option('--json', 'print as JSON', false)
    .action(run((file: string, o: { producer?: string; json: boolean }) => ledgerCheckProof(io, file, o)));

  program
    .command('run')
    .description('run the agent with a site config (logs as JSON on stdout; SIGTERM stops it cleanly)')
    .requiredOption('--config <file>', 'site config (see examples/)')
    .action(run((o: { config: string }) => runAgent(io, o)));

  program
    .command('status')
    .description(
      'ask the running agent how it is: devices, ledger, outbox, broker, schedule (exit 1 if it does not answer)',
    )
    .option('--config <file>', "the agent's config: metrics.host and metrics.port say where to ask")
    .option('--url <url>', 'where to ask instead (default http://127.0.0.1:9464)')
    .option('--json', 'print the JSON the agent serves on /status', false)
    .action(run((o: StatusOptions) => statusCommand(io, o)));

  const devices = program.command('devices').description('field devices: SunSpec scan and one-off reads');
  devices
    .command('scan')
    .description('look for SunSpec devices and list their models and points (no config needed)')
    .option('--tcp <host:port>', 'Modbus TCP endpoint (port 502 when left out)')
    .option('--serial <device>', 'serial device of an RS-485 line (Modbus RTU)')
    .option('--baud <n>', 'serial speed', int('--baud', 300), 9600)
    .option('--unit <a-b>', 'unit id or range of unit ids to try', '1')
    .option('--timeout <ms>', 'answer timeout per request', int('--timeout', 10), 1000)
    .option('--no-points', 'list the models only, without reading their points')
    .option('--json', 'print as JSON', false)
    .action(run((o: ScanOptions) => devicesScan(io, o)));
  devices
    .command('read <device>')
    .description('read one configured device once and print its decoded points with units (the ledger is not touched)')
    .requiredOption('--config <file>', 'site config')
    .option('--json', 'print as JSON', false)
    .action(run((device: string, o: { config: string; json: boolean }) => devicesRead(io, device, o)));

  const dso = program
    .command('dso')
    .description("the DSO operator's MGMC registry (works on the DSO database while the DSO runs)");
  dso
    .command('approve <address>')
    .description('authorize an MGMC: its newest registration (waiting, rejected or revoked) takes effect')
    .requiredOption('--config <file>', 'the DSO config (role: dso)')
    .option('--by <name>', 'who decided, for the record (default: your login name)')
    .option('--json', 'print as JSON', false)
    .action(run((address: string, o: DsoChangeOptions) => dsoApprove(io, address, o)));
  dso
    .command('reject <address>')
    .description("reject an MGMC's registration that waits for approval")
    .requiredOption('--config <file>', 'the DSO config (role: dso)')
    .option('--reason <text>', 'why (the MGMC operator sees it)')
    .option('--by <name>', 'who decided, for the record (default: your login name)')
    .option('--json', 'print as JSON', false)
    .action(run((address: string, o: DsoChangeOptions) => dsoReject(io, address, o)));
  dso
    .command('revoke <address>')
    .description('revoke an MGMC: out of the authorized set, its blocks refused, until approved again')
    .requiredOption('--config <file>', 'the DSO config (role: dso)')
    .option('--reason <text>', 'why (the MGMC operator sees it)')
    .option('--by <name>', 'who decided, for the record (default: your login name)')
    .option('--json', 'print as JSON', false)
    .action(run((address: string, o: DsoChangeOptions) => dsoRevoke(io, address, o)));
  dso
    .command('list')
    .description('list the MGMCs that registered, their status, anonym, bus and meters, and the authorized set')
    .requiredOption('--config <file>', 'the DSO config (role: dso)')
    .option('--json', 'print as JSON', false)
    .action(run((o: DsoOptions) => dsoList(io, o)));

  program
    .command('sim')
    .description('start a simulated site (Modbus TCP servers, RTU on ptys, signing meters) and print its endpoints')
    .option('--site <file>', 'site file (see sim/README.md); the embedded default site when left out')
    .option('--speed <n>', 'simulated seconds per wall-clock second', Number)
    .option('--host <address>', 'address the TCP servers listen on (default 127.0.0.1)')
    .option('--write-config <file>', 'also write the agent config sections for this site to a file')
    .option('--duration <s>', 'stop after this many seconds instead of waiting for Ctrl-C', int('--duration', 1))
    .option('--json', 'print the endpoints as JSON', false)
    .action(run((o: SimOptions) => simCommand(io, o)));

  program
    .command('demo')
    .description(
      'the whole system for one accelerated day: a broker, the DSO and MGMCs on the IEEE 33-bus feeder with simulated devices; writes an HTML report',
    )
    .option('--dir <dir>', 'working directory for configs, keys and databases (wiped first)', 'data/demo')
    .option('--duration <hours>', 'simulated hours after a warm-up hour', int('--duration', 1), 24)
    .option('--from <hour>', 'local hour of the simulated day to start at (0-23)', int('--from', 0), 0)
    .option('--mgmcs <n>', 'number of microgrids (1-6)', int('--mgmcs', 1), 3)
    .option('--seed <n>', 'seed of the simulated weather, loads and cars', int('--seed', 0), 20260622)
    .option('--speed <n>', 'simulated seconds per wall-clock second', Number, 900)
    .option('--report <file>', 'the HTML report', 'out/demo-report.html')
    .option('--log <file>', "append the agents' warnings and errors (pino JSON) to this file")
    .option('--json', 'print the report data as JSON instead of the tables', false)
    .action(run((o: DemoOptions) => demo(io, o)));

  const collect = (value: string, previous: string[]) => [...previous, value];
  program
    .command('optimize')
    .description('plan the buildings for the present state and forecast: schedule and cost breakdown')
    .requiredOption('--config <file>', 'agent config file with tariffs, buildings and optimizer sections')
    .option('--at <time>', 'plan as of this time (ISO 8601); now when left out')
    .option(
      '--soc <device=pct>',
      'state of charge of a battery, % (repeatable); 50 % assumed when unknown',
      collect,
      [],
    )
    .option('--plugged <device>', 'an EV charger with a car plugged in (repeatable)', collect, [])
    .option('--json', 'the schedule as JSON', false)
    .option('--export-lp <file>', 'also write the model as a CPLEX LP file (glpsol --lp FILE, HiGHS, CPLEX, Gurobi)')
    .action(run((o: OptimizeOptions) => optimizeCommand(io, o)));

  registerGridCommands(program, io, done);
  registerMarketCommands(program, io, done);
  return program;
}

export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv as string[]);
    return code;
  } catch (caught) {
    let err = caught;
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
        return EXIT.ok;
      return EXIT.usage;
    }
    if (err instanceof KeystoreError) err = keystoreToCommandError(err);
    if (err instanceof CommandError) {
      io.err(`mgmc: ${err.message}`);
      return err.exitCode;
    }
    const exitCode = (err as { exitCode?: unknown }).exitCode;
    if (typeof exitCode === 'number') {
      io.err(`mgmc: ${(err as Error).message}`);
      return exitCode;
    }
    io.err(`mgmc: internal error: ${(err as Error).stack ?? String(err)}`);
    return EXIT.software;
  }
}

/** True when this file is the program being run (directly or through the npm bin symlink), not imported. */
function isEntryPoint(): boolean {
  const invoked = process.argv[1];
  if (invoked === undefined) return false;
  try {
    return realpathSync(invoked) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `mgmc ledger export --db x | head`: the reader leaving early is not an error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
