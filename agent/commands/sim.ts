/**
 * mgmc sim [--site FILE]: a simulated site on this machine — devices with physics behind real Modbus TCP servers,
 * RTU lines on pty pairs and signing meters — for trying the agent without hardware. Prints the endpoints and the
 * `buses:`/`devices:`/`meters:` sections an agent config needs, then runs until Ctrl-C or SIGTERM (or --duration),
 * and exits 0 after closing its servers and ptys.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { socatAvailable } from '../../sim/pty.js';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite, loadSiteFile, type SimSiteConfig, SiteFileError } from '../../sim/site-file.js';
import { CommandError, EXIT, type Io, table } from './io.js';

export interface SimOptions {
  readonly site?: string;
  readonly speed?: number;
  readonly host?: string;
  readonly writeConfig?: string;
  readonly duration?: number;
  readonly json: boolean;
}

/** The site to run: the embedded default, or a site file checked with every problem at once (exit 78). */
function siteConfig(io: Io, site: string | undefined): SimSiteConfig {
  if (site === undefined) return defaultSimSite();
  const path = resolve(site);
  if (!existsSync(path)) throw new CommandError(`site file ${site} does not exist (see sim/README.md)`, EXIT.noInput);
  try {
    return loadSiteFile(path, { env: io.env });
  } catch (error) {
    if (error instanceof SiteFileError) throw new CommandError(error.message, EXIT.config);
    throw error;
  }
}

/** RTU lines and signing meters are pty pairs made by socat: say so before starting anything. */
function checkSocat(config: SimSiteConfig, site: string | undefined): void {
  const needs = [
    ...config.servers.filter((s) => s.kind === 'rtu').map((s) => `RTU line '${s.name}'`),
    ...config.signingMeters.map((m) => `signing meter '${m.name}'`),
  ];
  if (needs.length === 0 || socatAvailable()) return;
  const which = site === undefined ? 'the default site' : site;
  throw new CommandError(
    `${which} needs socat for its ${needs.join(' and ')} (pty pairs): install it (apt-get install socat), or run ` +
      'a site file with TCP servers only',
    EXIT.failed,
  );
}

/** A failure to listen, as the technician can act on it; undefined for anything else. */
function listenProblem(error: unknown, config: SimSiteConfig, host: string | undefined): string | undefined {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.syscall !== 'listen' && e.code !== 'EADDRINUSE') return undefined;
  const server = config.servers.find((s) => s.kind === 'tcp' && s.port === e.port);
  const where = `${e.address ?? host ?? '127.0.0.1'}:${e.port ?? '?'}`;
  const which = server === undefined ? '' : ` (server '${server.name}' in ${config.file})`;
  if (e.code === 'EADDRINUSE') {
    return `cannot listen on ${where}${which}: the port is in use; stop what uses it, or give port: 0 for a free port`;
  }
  if (e.code === 'EACCES') {
    return `cannot listen on ${where}${which}: permission denied (ports below 1024 need root); use a port above 1024`;
  }
  if (e.code === 'EADDRNOTAVAIL') {
    return `cannot listen on ${where}${which}: no interface of this machine has that address; check --host`;
  }
  return `cannot listen on ${where}${which}: ${e.message}`;
}

export async function simCommand(io: Io, options: SimOptions): Promise<number> {
  if (options.speed !== undefined && !(Number.isFinite(options.speed) && options.speed > 0)) {
    throw new CommandError('--speed must be a number > 0 (simulated seconds per wall-clock second)', EXIT.usage);
  }
  const config = siteConfig(io, options.site);
  checkSocat(config, options.site);
  let sim: SimulatedSite;
  try {
    sim = await startSimulatedSite(config, {
      ...(options.speed === undefined ? {} : { speed: options.speed }),
      ...(options.host === undefined ? {} : { host: options.host }),
    });
  } catch (error) {
    const problem = listenProblem(error, config, options.host);
    if (problem !== undefined) throw new CommandError(problem, EXIT.failed);
    throw error;
  }
  const agentConfig = sim.agentConfig();
  if (options.writeConfig !== undefined) writeFileSync(options.writeConfig, agentConfig);
  if (options.json) {
    io.out(
      JSON.stringify({
        endpoints: sim.endpoints,
        signingMeters: sim.signingMeters.map(({ peer: _peer, ...m }) => m),
        agentConfig,
      }),
    );
  } else {
    const name = config.description.name ?? (options.site === undefined ? 'default' : basename(options.site));
    io.out(`simulated site '${name}' running (${config.file}, ${options.speed ?? config.speed}x real time)`);
    const rows = sim.endpoints.flatMap((e) =>
      e.units.map((u) => [
        e.server,
        e.kind === 'tcp' ? `tcp ${e.host}:${e.port}` : `rtu ${e.path} @${e.baudRate}`,
        u.unit,
        u.device,
        u.profiles.join(' '),
      ]),
    );
    io.out(table(['server', 'endpoint', 'unit', 'device', 'profiles'], rows));
    for (const m of sim.signingMeters) io.out(`signing meter ${m.name} (${m.address}) on ${m.path} @${m.baudRate}`);
    io.out(`\nfor the agent config (${options.writeConfig ? `also written to ${options.writeConfig}` : 'paste'}):\n`);
    io.out(agentConfig);
    io.out(
      options.duration === undefined
        ? 'Ctrl-C stops the simulator.'
        : `stopping after ${options.duration} s (--duration).`,
    );
  }
  const reason = await new Promise<string>((done) => {
    const stop = (why: string) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done(why);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (options.duration !== undefined) setTimeout(() => stop('--duration'), options.duration * 1000).unref();
  });
  await sim.close();
  if (!options.json) io.out(`simulator stopped (${reason}); its ports and ptys are closed`);
  return EXIT.ok;
}
