/**
 * Reads a config file (never writes it), checks it against a schema and reports every problem at once. The steps:
 * YAML with positions → schema check with defaults → secrets and paths resolved → issues sorted by line.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Static, TSchema } from '@sinclair/typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import { isMap, isScalar, isSeq } from 'yaml';
import { checkDevices } from './devices-check.js';
import { checkEnergy } from './energy-check.js';
import { explainSchemaErrors } from './explain.js';
import { ConfigError, type ConfigIssue, sortIssues } from './issues.js';
import { checkLink } from './link-check.js';
import { resolveMarkedValues } from './resolve.js';
import { type AgentConfig, agentConfigSchema } from './schema.js';
import type { SchemaNode } from './schema-walk.js';
import { describeFsError } from './secret.js';
import { formatPath, type PathSegment, parseYaml, positionOf, type YamlSource } from './yaml-source.js';

export interface LoadOptions {
  /** Where `env:NAME` secrets are looked up; process.env unless given (tests pass their own). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface CheckResult<T> {
  readonly ok: boolean;
  readonly issues: ConfigIssue[];
  /** Present when ok. */
  readonly config?: T;
}

/**
 * Checks that need the whole config (cross-references, uniqueness). `report` takes the key path of the offending
 * value; the loader turns it into file:line:column like the schema's own problems. `written` tells whether a key is
 * in the file itself (the config has defaults filled in), e.g. to flag a key the node's role does not read.
 */
export type CrossCheck<T> = (
  config: T,
  report: (path: readonly PathSegment[], expected: string, hint?: string) => void,
  written?: (path: readonly PathSegment[]) => boolean,
) => void;

export interface ConfigLoader<T> {
  check(path: string, options?: LoadOptions): Promise<CheckResult<T>>;
  /** Throws ConfigError (exitCode 78) listing every problem. */
  load(path: string, options?: LoadOptions): Promise<T>;
}

/**
 * A loader for any schema built with the schema kit; the agent uses agentConfigSchema, tests of the machinery use
 * small schemas of their own. The Ajv validator is compiled on first use and kept by this loader only.
 */
export function createConfigLoader<S extends TSchema>(
  schema: S,
  crossChecks: readonly CrossCheck<Static<S>>[] = [],
): ConfigLoader<Static<S>> {
  let validate: ValidateFunction | undefined;
  const compiled = (): ValidateFunction => {
    // verbose: errors carry the offending value, which the hints quote ("got 'fulll'").
    validate ??= new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true }).compile(schema);
    return validate;
  };

  const check = async (path: string, options: LoadOptions = {}): Promise<CheckResult<Static<S>>> => {
    const env = options.env ?? process.env;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const issue: ConfigIssue = {
        file: path,
        line: 0,
        column: 0,
        path: '(file)',
        expected: 'a readable config file',
        hint: `cannot read ${resolve(path)}: ${describeFsError(error)}${configFileAdvice(error)}`,
      };
      return { ok: false, issues: [issue] };
    }

    const { source, issues: yamlIssues } = parseYaml(path, text);
    // After a syntax error the tree is a guess; schema errors on it would send the technician after ghosts.
    if (yamlIssues.length > 0) return { ok: false, issues: sortIssues(yamlIssues) };

    const rootIssue = checkRoot(source);
    if (rootIssue !== undefined) return { ok: false, issues: [rootIssue] };

    let data: unknown;
    try {
      data = source.document.toJS({ maxAliasCount: 100 });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const issue: ConfigIssue = {
        file: path,
        line: 1,
        column: 1,
        path: '(yaml)',
        expected: 'valid YAML',
        hint: message,
      };
      return { ok: false, issues: [issue] };
    }

    const validator = compiled();
    validator(data);
    const explained = explainSchemaErrors(source, schema as unknown as SchemaNode, data, validator.errors ?? []);
    const resolveIssues = await resolveMarkedValues(schema as unknown as SchemaNode, data, {
      source,
      baseDir: dirname(resolve(path)),
      env,
      rejected: new Set(explained.map((entry) => entry.pointer)),
    });
    const schemaIssues = explained.map((entry) => entry.issue);
    if (schemaIssues.length > 0) return { ok: false, issues: sortIssues([...schemaIssues, ...resolveIssues]) };
    // Only on a config that passed the schema: cross-checks may then rely on every type being right. A secret that
    // did not resolve is still a well-formed reference (no cross-check reads a secret's value), so its problem is
    // reported together with theirs: one run shows everything left to fix.
    const crossIssues: ConfigIssue[] = [...resolveIssues];
    for (const crossCheck of crossChecks) {
      crossCheck(
        data as Static<S>,
        (at, expected, hint) => {
          const { line, column } = positionOf(source, at, 'value');
          const issue: ConfigIssue = { file: path, line, column, path: formatPath(at), expected };
          crossIssues.push(hint === undefined ? issue : { ...issue, hint });
        },
        (at) => source.document.hasIn(at),
      );
    }
    if (crossIssues.length > 0) return { ok: false, issues: sortIssues(crossIssues) };
    return { ok: true, issues: [], config: data as Static<S> };
  };

  const load = async (path: string, options: LoadOptions = {}): Promise<Static<S>> => {
    const result = await check(path, options);
    if (!result.ok || result.config === undefined) throw new ConfigError(path, result.issues);
    return result.config;
  };

  return { check, load };
}

function configFileAdvice(error: unknown): string {
  switch ((error as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOENT':
      return '; check the path, or start a new file from examples/site.yaml';
    case 'EACCES':
    case 'EPERM':
      return "; make it readable by the agent's user";
    default:
      return '';
  }
}

const AGENT_CROSS_CHECKS: readonly CrossCheck<AgentConfig>[] = [checkDevices, checkLink, checkEnergy];

function checkRoot(source: YamlSource): ConfigIssue | undefined {
  const root = source.document.contents;
  const base = { file: source.file, path: '(root)', expected: 'a mapping of settings (key: value lines)' };
  // A file of only comments, or only `~`, has no settings at all.
  if (root === null || (isScalar(root) && root.value === null)) {
    return { ...base, line: 1, column: 1, hint: 'the file is empty; start from examples/site.yaml' };
  }
  if (isMap(root)) return undefined;
  const { line, column } = positionOf(source, [], 'value');
  return { ...base, line, column, hint: isSeq(root) ? 'got a list' : 'got a single value' };
}

/** Loads the agent's config; throws ConfigError (exitCode 78) listing every problem in the file. */
export async function loadConfig(path: string, options: LoadOptions = {}): Promise<AgentConfig> {
  return createConfigLoader(agentConfigSchema, AGENT_CROSS_CHECKS).load(path, options);
}

/** Checks the agent's config without throwing, for `mgmc config check` and editors' save hooks. */
export async function checkConfigFile(
  path: string,
  options: LoadOptions = {},
): Promise<{ ok: boolean; issues: ConfigIssue[]; config?: AgentConfig }> {
  return createConfigLoader(agentConfigSchema, AGENT_CROSS_CHECKS).check(path, options);
}
