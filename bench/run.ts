/**
 * npm run bench -- NAME [options]: runs one benchmark (or `all`). Each benchmark lives in bench/NAME.ts and exports
 * `run(args)`; it prints figures next to a reference doing the same work, as ratios (bench/report.ts).
 */

import type { BenchReport } from './report.js';
import { printReport } from './report.js';

type Bench = (args: readonly string[]) => Promise<BenchReport>;

const BENCHES: Record<string, () => Promise<Bench>> = {
  grid: async () => (await import('./grid.js')).run,
  ledger: async () => (await import('./ledger.js')).run,
  market: async () => (await import('./market.js')).run,
  'market-day': async () => (await import('./market-day.js')).run,
  optimizer: async () => (await import('./optimizer.js')).run,
  poll: async () => (await import('./poll.js')).run,
  sync: async () => (await import('./sync.js')).run,
  verify: async () => (await import('./verify-blocks.js')).run,
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(
      `usage: npm run bench -- NAME [options]\nbenchmarks: ${Object.keys(BENCHES).join(', ')}, all\n`,
    );
    return name === undefined ? 2 : 0;
  }
  const names = name === 'all' ? Object.keys(BENCHES) : [name];
  for (const n of names) {
    const load = BENCHES[n];
    if (load === undefined) {
      process.stderr.write(`unknown benchmark ${JSON.stringify(n)} (known: ${Object.keys(BENCHES).join(', ')}, all)\n`);
      return 2;
    }
    printReport(await (await load())(args));
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 70;
  },
);
