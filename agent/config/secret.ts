/**
 * Secrets never live in the config file itself: the file is copied around, pasted into tickets and printed by
 * `--json`. The file holds a reference (`env:NAME` or `file:PATH`); the loaded value is wrapped so that every way of
 * printing it (string, JSON, util.inspect, console.log, pino) shows the reference and only `reveal()` gives the value.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { inspect } from 'node:util';

export class SecretValue {
  /** The reference as written in the config, e.g. `env:MGMC_KEY_PASSPHRASE`; safe to print. */
  readonly reference: string;
  // A private field, not a property: Object.keys, spreading and structuredClone cannot reach it.
  readonly #value: string;

  constructor(reference: string, value: string) {
    this.reference = reference;
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return `[secret ${this.reference}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** What the schema accepts; inline values fail it, so they are rejected before anything is read. */
export const SECRET_REFERENCE_PATTERN = '^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$';

export type SecretResult = { ok: true; value: SecretValue } | { ok: false; expected: string; hint: string };

/**
 * Resolves a reference that already matched SECRET_REFERENCE_PATTERN. `baseDir` is the config file's directory, so
 * `file:./keys/pass` works whatever the working directory of the service is.
 */
export async function resolveSecret(
  reference: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<SecretResult> {
  if (reference.startsWith('env:')) {
    const name = reference.slice('env:'.length);
    const value = env[name];
    if (value === undefined) {
      return {
        ok: false,
        expected: `environment variable ${name} to be set`,
        hint:
          `it is not set for the agent: for the service, put ${name}=... in secrets.env beside this config ` +
          `(EnvironmentFile=, docs/deploy.md); in a shell, export ${name} first`,
      };
    }
    if (value === '') {
      return { ok: false, expected: `environment variable ${name} to hold the secret`, hint: 'it is set but empty' };
    }
    return { ok: true, value: new SecretValue(reference, value) };
  }
  const written = reference.slice('file:'.length);
  const path = isAbsolute(written) ? written : resolve(baseDir, written);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return {
      ok: false,
      expected: 'a readable secret file',
      hint: `cannot read ${path}: ${describeFsError(error)}${secretFileAdvice(error)}`,
    };
  }
  // Editors and `echo` add a final newline that is not part of the secret.
  const value = text.replace(/\r?\n$/, '');
  if (value === '') {
    return { ok: false, expected: 'a secret file with content', hint: `${path} is empty; put the secret in it` };
  }
  return { ok: true, value: new SecretValue(reference, value) };
}

/** What a technician does about a secret file that cannot be read. */
function secretFileAdvice(error: unknown): string {
  switch ((error as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOENT':
      return "; create it with the secret on one line (mode 0600, owned by the agent's user), or correct the path";
    case 'EACCES':
    case 'EPERM':
      return '; give it to that user (chown) with mode 0600, or use LoadCredential= (docs/deploy.md)';
    default:
      return '';
  }
}

export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied for the user the agent runs as';
    case 'EISDIR':
      return 'it is a directory, not a file';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
