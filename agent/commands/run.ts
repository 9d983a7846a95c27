/**
 * mgmc run --config FILE: the agent as a service, in the role its config names (mgmc or dso). Logs are pino JSON on stdout; SIGTERM or SIGINT stops it
 * cleanly (polling stopped, meters closed, last block sealed, database closed) and exits 0; a bad config exits 78
 * so systemd does not restart into the same error.
 */
import { resolve } from 'node:path';
import { systemClock } from '../clock.js';
import { type AgentConfig, loadConfig } from '../config/index.js';
import { type StartDsoOptions, startDso } from '../dso/node.js';
import { loadFeederFile } from '../grid/feeder-file.js';
import { createLogger } from '../logger.js';
import { startMgmc } from '../main.js';
import { dsoMarketOptions } from '../market/config.js';
import { EXIT, type Io } from './io.js';

export interface RunOptions {
  readonly config: string;
  /** For tests: resolves to stop instead of waiting for a signal. */
  readonly until?: Promise<unknown>;
}

/** The DSO node's grid security (`dso.grid`) and market sequencer (`dso.market`), as startDso takes them. */
export async function dsoRunOptions(config: AgentConfig): Promise<Pick<StartDsoOptions, 'grid' | 'market'>> {
  const { grid, market } = config.dso;
  return {
    ...(grid === undefined
      ? {}
      : {
          grid: {
            feeder: await loadFeederFile(grid.feeder),
            intervalMs: grid.intervalMinutes * 60_000,
            // With a market its sequencer runs the network check after each bargaining attempt; the grid's own settle
            // timer would check (and send caps) on the first positions that arrive, in the middle of the bargaining.
            ...(market === undefined ? { settleMs: grid.settleSeconds * 1000 } : {}),
            maxRounds: grid.maxRounds,
          },
        }),
    ...(market === undefined ? {} : { market: dsoMarketOptions(market) }),
  };
}

export async function runAgent(io: Io, options: RunOptions): Promise<number> {
  const config = await loadConfig(resolve(options.config), { env: io.env });
  const logger = createLogger({ level: config.log.level });
  const agent =
    config.role === 'dso'
      ? await startDso(config, { clock: systemClock(), logger, ...(await dsoRunOptions(config)) })
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
