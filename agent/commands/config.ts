/** mgmc config check, mgmc config schema. */
import { resolve } from 'node:path';
import { checkConfigFile, configJsonSchema, formatIssue } from '../config/index.js';
import { EXIT, type Io } from './io.js';

export async function configCheck(io: Io, file: string, options: { json: boolean }): Promise<number> {
  const path = resolve(file);
  const result = await checkConfigFile(path, { env: io.env });
  if (options.json) {
    io.out(JSON.stringify({ ok: result.ok, file: path, issues: result.issues }));
  } else if (result.ok) {
    io.out(`${path}: ok`);
  } else {
    for (const issue of result.issues) io.err(formatIssue(issue));
    io.err(`${result.issues.length} problem${result.issues.length === 1 ? '' : 's'} in ${path}; nothing was changed`);
  }
  return result.ok ? EXIT.ok : EXIT.config;
}

export function configSchema(io: Io): number {
  io.out(JSON.stringify(configJsonSchema(), null, 2));
  return EXIT.ok;
}
