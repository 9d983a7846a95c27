/**
 * mgmc sim [--site FILE]: a simulated site on this machine — devices with physics behind real Modbus TCP servers,
 * RTU lines on pty pairs and signing meters — for trying the agent without hardware. Prints the endpoints and the
 * `buses:`/`devices:`/`meters:` sections an agent config needs, then runs until Ctrl-C (or --duration).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite, SiteFileError } from '../../sim/site-file.js';
import { CommandError, EXIT, type Io, table } from './io.js';

export interface SimOptions {
  readonly site?: string;
  readonly speed?: number;
  readonly host?: string;
  readonly writeConfig?: string;
  readonly duration?: number;
  readonly json: boolean;
}

export async function simCommand(io: Io, options: SimOptions): Promise<number> {
  let sim: Awaited<ReturnType<typeof startSimulatedSite>>;
  try {
    sim = await startSimulatedSite(options.site === undefined ? defaultSimSite() : resolve(options.site), {
      ...(options.speed === undefined ? {} : { speed: options.speed }),
      ...(options.host === undefined ? {} : { host: options.host }),
      siteFile: { env: io.env },
    });
  } catch (error) {
    if (error instanceof SiteFileError) throw new CommandError(error.message, EXIT.config);
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
    io.out(`simulated site '${sim.config.description.name ?? 'sim'}' running`);
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
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (options.duration !== undefined) setTimeout(stop, options.duration * 1000).unref();
  });
  await sim.close();
  return EXIT.ok;
}
