/**
 * Config problems as a technician sees them: one line each, compiler style, so that editors and terminals can jump
 * to the spot and every problem in the file is fixed in one pass instead of one restart per typo.
 */

/** `EX_CONFIG` from sysexits.h; systemd units list it in `RestartPreventExitStatus` so a bad file does not loop. */
export const EX_CONFIG = 78;

export interface ConfigIssue {
  /** The config file as the user named it (not resolved), like a compiler does. */
  readonly file: string;
  /** 1-based; 0 when the problem concerns the whole file (not found, unreadable). */
  readonly line: number;
  /** 1-based; 0 together with `line`. */
  readonly column: number;
  /** Key path such as `ledger.sealEveryRecords` or `devices[2].name`; `(root)` or `(yaml)` when there is no key. */
  readonly path: string;
  /** What the agent expected there, in words. */
  readonly expected: string;
  /** What to do about it: a near-miss name, the allowed values, what was given. */
  readonly hint?: string;
}

/** `file:line:column  key.path  what was expected  hint` (two spaces between fields). */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  const fields = [where, issue.path, issue.expected];
  if (issue.hint !== undefined && issue.hint !== '') fields.push(issue.hint);
  return fields.join('  ');
}

export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

/** File order, so the report reads top to bottom like the file does. */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => a.line - b.line || a.column - b.column || a.path.localeCompare(b.path));
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly exitCode = EX_CONFIG;
  readonly issues: ConfigIssue[];

  constructor(file: string, issues: ConfigIssue[]) {
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    super(`config ${file}: ${count}\n${formatIssues(issues)}`);
    this.issues = issues;
  }
}
