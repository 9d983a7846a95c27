/**
 * mgmc run --config FILE: the agent as a service, in the role its config names (mgmc or dso). Logs are pino JSON on stdout; SIGTERM or SIGINT stops it
 * cleanly (polling stopped, meters closed, last block sealed, database closed) and exits 0; a bad config exits 78
 * so systemd does not restart into the same error.
 */
import { resolve } from 'node:path';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config/index.js';
import { startDso } from '../dso/node.js';
import { loadFeederFile } from '../grid/feeder-file.js';
import { createLogger } from '../logger.js';
import { startMgmc } from '../main.js';
import { EXIT, type Io } from './io.js';

export interface RunOptions {
  readonly config: string;
  /** For tests: resolves to stop instead of waiting for a signal. */
  readonly until?: Promise<unknown>;
}

export async function runAgent(io: Io, options: RunOptions): Promise<number> {
  const config = await loadConfig(resolve(options.config), { env: io.env });
  const logger = createLogger({ level: config.log.level });
  const agent =
    config.role === 'dso'
      ? await startDso(config, {
          clock: systemClock(),
          logger,
          ...(config.dso.grid === undefined
            ? {}
            : {
                grid: {
                  feeder: await loadFeederFile(config.dso.grid.feeder),
                  intervalMs: config.dso.grid.intervalMinutes * 60_000,
                  settleMs: config.dso.grid.settleSeconds * 1000,
                  maxRounds: config.dso.grid.maxRounds,
                },
              }),
        })
      : await startMgmc(config, { clock: systemClock(), logger });
  const stopSignal = new Promise<string>((done) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      done(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    options.until?.then(() => onSignal('SIGTERM'));
  });
  const signal = await stopSignal;
  logger.info({ module: 'main', signal }, 'stopping');
  await agent.stop();
  return EXIT.ok;
}
