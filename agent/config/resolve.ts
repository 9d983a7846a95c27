/**
 * After the schema check: turns secret references into SecretValue and relative paths into absolute ones, wherever
 * the schema marks them, so sections added later get the same treatment without code of their own.
 */
import { isAbsolute, resolve } from 'node:path';
import type { ConfigIssue } from './issues.js';
import { configKindOf } from './schema-kit.js';
import {
  branchesOf,
  entrySchemaOf,
  isSchemaNode,
  itemSchemaOf,
  propertiesOf,
  requiredOf,
  type SchemaNode,
} from './schema-walk.js';
import { resolveSecret } from './secret.js';
import { formatPath, type PathSegment, positionOf, toPointer, type YamlSource } from './yaml-source.js';

export interface ResolveContext {
  readonly source: YamlSource;
  /** Directory of the config file: the base of relative paths and `file:` secrets. */
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** JSON Pointers of values the schema already rejected; they are left alone rather than reported twice. */
  readonly rejected: ReadonlySet<string>;
}

/** Rewrites `data` in place and returns the problems found (missing env vars, unreadable secret files). */
export async function resolveMarkedValues(
  schema: SchemaNode,
  data: unknown,
  context: ResolveContext,
): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  // The root is a mapping, never a marked value, so it is never replaced.
  await visit(schema, data, [], context, issues, () => {});
  return issues;
}

async function visit(
  schema: SchemaNode,
  value: unknown,
  path: PathSegment[],
  context: ResolveContext,
  issues: ConfigIssue[],
  replace: (value: unknown) => void,
): Promise<void> {
  if (context.rejected.has(toPointer(path))) return;
  const kind = configKindOf(schema);
  if (kind !== undefined) {
    if (typeof value !== 'string') return;
    if (kind === 'path') {
      replace(isAbsolute(value) ? value : resolve(context.baseDir, value));
      return;
    }
    const result = await resolveSecret(value, context.baseDir, context.env);
    if (result.ok) {
      replace(result.value);
    } else {
      const { line, column } = positionOf(context.source, path, 'value');
      issues.push({
        file: context.source.file,
        line,
        column,
        path: formatPath(path),
        expected: result.expected,
        hint: result.hint,
      });
    }
    return;
  }

  const branches = branchesOf(schema);
  if (branches.length > 0) {
    const branch = branches.find((candidate) => roughlyMatches(candidate, value));
    if (branch !== undefined) await visit(branch, value, path, context, issues, replace);
    return;
  }

  if (Array.isArray(value)) {
    const items = itemSchemaOf(schema);
    if (items === undefined) return;
    for (let index = 0; index < value.length; index++) {
      await visit(items, value[index], [...path, index], context, issues, (next) => {
        value[index] = next;
      });
    }
    return;
  }

  if (isSchemaNode(value)) {
    const properties = propertiesOf(schema);
    const entries = entrySchemaOf(schema);
    for (const key of Object.keys(value)) {
      const child = properties[key] ?? entries;
      if (child === undefined) continue;
      await visit(child, value[key], [...path, key], context, issues, (next) => {
        value[key] = next;
      });
    }
  }
}

/**
 * Picks the union branch a value belongs to without a full validation: the schema check already passed (or its
 * failure is reported), so type, const and required keys are enough to tell branches apart.
 */
function roughlyMatches(schema: SchemaNode, value: unknown): boolean {
  if (schema.const !== undefined) return schema.const === value;
  const type = schema.type;
  if (type === 'object') {
    if (!isSchemaNode(value)) return false;
    const properties = propertiesOf(schema);
    const constsMatch = Object.entries(properties).every(
      ([key, child]) => child.const === undefined || child.const === value[key],
    );
    return constsMatch && requiredOf(schema).every((key) => key in value);
  }
  if (type === 'array') return Array.isArray(value);
  if (type === 'integer') return Number.isInteger(value);
  if (type === 'null') return value === null;
  if (typeof type === 'string') return typeof value === type;
  return true;
}
