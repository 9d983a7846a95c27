/** What every command shares: exit codes, passphrases, output in text or --json. */
import { createInterface } from 'node:readline';

/** Exit codes (docs/cli.md). 78 is EX_CONFIG from sysexits.h: systemd units do not restart on it. */
export const EXIT = {
  ok: 0,
  /** A check ran and failed: a chain that does not verify, a proof that does not hold, a config with problems. */
  failed: 1,
  usage: 2,
  /** Input that cannot be used: a corrupted keystore or export, a wrong passphrase. */
  dataError: 65,
  /** A file that does not exist. */
  noInput: 66,
  /** A bug or an unexpected environment problem. */
  software: 70,
  /** Refusing to overwrite a file. */
  cantCreate: 73,
  config: 78,
} as const;

/** An error that ends a command with a message for the person at the terminal and a documented exit code. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

export interface Io {
  readonly env: NodeJS.ProcessEnv;
  readonly stdin: NodeJS.ReadStream;
  out(text: string): void;
  err(text: string): void;
}

export function processIo(): Io {
  return {
    env: process.env,
    stdin: process.stdin,
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

export const PASSPHRASE_ENV = 'MGMC_KEY_PASSPHRASE';

/**
 * The keystore passphrase: from MGMC_KEY_PASSPHRASE, else asked on the terminal (twice when creating a key).
 * Without either, say how to provide one rather than hang waiting for input that will never come.
 */
export async function getPassphrase(io: Io, purpose: 'unlock' | 'create'): Promise<string> {
  const fromEnv = io.env[PASSPHRASE_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!io.stdin.isTTY) {
    throw new CommandError(
      `no passphrase: set ${PASSPHRASE_ENV} in the environment (stdin is not a terminal, so it cannot be asked for)`,
      EXIT.usage,
    );
  }
  const first = await askHidden(io, purpose === 'create' ? 'New keystore passphrase: ' : 'Keystore passphrase: ');
  if (purpose === 'create') {
    if (first.length < 8) throw new CommandError('the passphrase must have at least 8 characters', EXIT.usage);
    const again = await askHidden(io, 'Repeat the passphrase: ');
    if (again !== first) throw new CommandError('the two passphrases differ: nothing was written', EXIT.usage);
  }
  return first;
}

async function askHidden(io: Io, prompt: string): Promise<string> {
  const rl = createInterface({ input: io.stdin, output: process.stderr, terminal: true });
  // Echo nothing of what is typed: readline writes through _writeToOutput, which we silence after the prompt.
  const internal = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write(prompt);
  internal._writeToOutput = () => {};
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/** Plain rows as an aligned text table. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (c ?? '').padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
