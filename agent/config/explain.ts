/**
 * Ajv's errors rewritten for a technician at a gateway: where (line:column from the YAML), which key, what was
 * expected in words, and a hint. Ajv's own texts ("must NOT have additional properties") name neither the key nor
 * the fix.
 */
import type { ErrorObject } from 'ajv';
import type { ConfigIssue } from './issues.js';
import { configKindOf } from './schema-kit.js';
import {
  branchesOf,
  isSchemaNode,
  listKeyPaths,
  ownerPointer,
  propertiesOf,
  type SchemaNode,
  schemaAt,
} from './schema-walk.js';
import { closest, normalizeKey, quoteList } from './suggest.js';
import { formatPath, type PathSegment, parsePointer, positionOf, toPointer, type YamlSource } from './yaml-source.js';

export interface Explained {
  readonly issue: ConfigIssue;
  /** JSON Pointer of the value at fault (for a key error, the key's value), so later stages leave it alone. */
  readonly pointer: string;
}

export function explainSchemaErrors(
  source: YamlSource,
  schema: SchemaNode,
  data: unknown,
  errors: readonly ErrorObject[],
): Explained[] {
  // A failed anyOf/oneOf also reports every branch's failure; one line naming the alternatives is clearer.
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => `${e.schemaPath}/`);
  // A value of the wrong type also fails its enum, pattern and range checks; only the type matters then.
  const wrongType = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const out: Explained[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (unions.some((prefix) => error.schemaPath.startsWith(prefix))) continue;
    if (error.keyword !== 'type' && wrongType.has(error.instancePath) && !isAboutChild(error)) continue;
    const explained = explainOne(source, schema, data, error);
    const key = `${explained.issue.path}\u0000${explained.issue.expected}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(explained);
  }
  return out;
}

/** Errors whose instancePath is the parent mapping but which are about one of its keys. */
function isAboutChild(error: ErrorObject): boolean {
  return error.keyword === 'required' || error.keyword === 'additionalProperties';
}

function explainOne(source: YamlSource, root: SchemaNode, data: unknown, error: ErrorObject): Explained {
  const at = parsePointer(error.instancePath, data);
  const owner = schemaAt(root, ownerPointer(error.schemaPath)) ?? {};
  const params = error.params as Record<string, unknown>;
  const issueAt = (
    path: PathSegment[],
    prefer: 'value' | 'key',
    expected: string,
    hint?: string,
    pointAt: PathSegment[] = path,
  ): Explained => {
    const { line, column } = positionOf(source, pointAt, prefer);
    const issue: ConfigIssue = { file: source.file, line, column, path: formatPath(path), expected };
    return { issue: hint === undefined ? issue : { ...issue, hint }, pointer: toPointer(path) };
  };
  const value = error.data;
  const secret = configKindOf(owner) === 'secret';
  // Whatever sits in a secret field may be the secret itself, so it is described, never quoted.
  const mayBeSecret = secret || branchesOf(owner).some((branch) => configKindOf(branch) === 'secret');
  const given = mayBeSecret ? kindOf(value) : describeGiven(value);

  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys(propertiesOf(owner));
      const parent = formatPath(at);
      const expected = at.length === 0 ? 'a known top-level key' : `a known key of ${parent}`;
      return issueAt([...at, key], 'key', expected, unknownKeyHint(root, key, allowed));
    }
    case 'required': {
      const key = String(params.missingProperty);
      const field = propertiesOf(owner)[key];
      const last = at.at(-1);
      const where =
        last === undefined
          ? 'at the top level'
          : typeof last === 'string'
            ? `under '${last}:'`
            : `in ${formatPath(at)}`;
      const description = typeof field?.description === 'string' ? `: ${lowerFirst(field.description)}` : '';
      // The key is not in the file, so point at the mapping that should hold it.
      return issueAt([...at, key], 'key', 'this required key', `add '${key}:' ${where}${description}`, at);
    }
    case 'type':
      return issueAt(at, 'value', describeExpected(owner), typeHint(owner, value, mayBeSecret));
    case 'enum':
    case 'const': {
      const allowed = (error.keyword === 'enum' ? (params.allowedValues as unknown[]) : [params.allowedValue]).map(
        (v) => String(v),
      );
      const near = typeof value === 'string' ? closest(value, allowed) : [];
      const guess = near.length > 0 ? ` did you mean ${quoteList(near.slice(0, 2))}?` : '';
      return issueAt(at, 'value', 'one of the allowed values', `got ${given};${guess} allowed: ${allowed.join(', ')}`);
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
    case 'multipleOf':
      return issueAt(at, 'value', describeExpected(owner), `got ${given}`);
    case 'minLength':
    case 'maxLength': {
      if (secret) return issueAt(at, 'value', secretExpected, 'the reference is empty');
      const length = typeof value === 'string' ? [...value].length : 0;
      const got = length === 0 ? 'got an empty text' : `got ${length} characters`;
      return issueAt(at, 'value', describeExpected(owner), got);
    }
    case 'pattern': {
      if (secret) return issueAt(at, 'value', secretExpected, inlineSecretHint(value));
      return issueAt(at, 'value', `text matching ${String(params.pattern)}`, `got ${given}`);
    }
    case 'anyOf':
    case 'oneOf': {
      const options = branchesOf(owner).map((branch) => describeExpected(branch));
      return issueAt(at, 'value', `one of: ${options.join('; ')}`, `got ${given}`);
    }
    default:
      // Keywords no section uses yet; Ajv's text is better than nothing until one does.
      return issueAt(at, 'value', error.message ?? 'a valid value', `got ${given}`);
  }
}

const secretExpected = 'a secret reference: env:NAME or file:PATH';

function inlineSecretHint(value: unknown): string {
  if (typeof value === 'string' && value.startsWith('env:')) {
    return 'after env: comes a variable name of letters, digits and underscores, e.g. env:MGMC_KEY_PASSPHRASE';
  }
  // The value is not echoed: it is probably the secret itself.
  return 'inline secrets are not allowed; put it in an environment variable (env:NAME) or in a file only the agent can read (file:PATH)';
}

function unknownKeyHint(root: SchemaNode, key: string, allowed: readonly string[]): string {
  const near = closest(key, allowed);
  if (near.length > 0) return `did you mean ${quoteList(near.slice(0, 3))}?`;
  // Right name, wrong place: an indentation slip moves a key out of its section.
  const elsewhere = listKeyPaths(root)
    .filter((entry) => normalizeKey(entry.key) === normalizeKey(key))
    .map((entry) => (entry.parent === '' ? 'at the top level' : `under '${entry.parent}:'`));
  if (elsewhere.length > 0) return `'${key}' belongs ${elsewhere.slice(0, 3).join(' or ')}; check the indentation`;
  if (allowed.length === 0) return 'no keys are allowed here';
  return `allowed here: ${allowed.join(', ')}`;
}

/** What a schema node accepts, in words: "an integer from 1 to 3600", "one of normal, full". */
export function describeExpected(schema: SchemaNode): string {
  const kind = configKindOf(schema);
  if (kind === 'secret') return secretExpected;
  if (kind === 'path') return 'a file path';
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map(String).join(', ')}`;
  if (schema.const !== undefined) return `exactly ${JSON.stringify(schema.const)}`;
  const branches = branchesOf(schema);
  if (branches.length > 0) return branches.map(describeExpected).join(' or ');
  switch (schema.type) {
    case 'integer':
    case 'number':
      return `${schema.type === 'integer' ? 'an integer' : 'a number'}${describeRange(schema)}`;
    case 'string':
      return `a text${describeLength(schema)}`;
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping of keys to values';
    case 'null':
      return 'nothing (an empty value)';
    default:
      return 'a valid value';
  }
}

function describeRange(schema: SchemaNode): string {
  const min = numberOr(schema.minimum);
  const max = numberOr(schema.maximum);
  const parts: string[] = [];
  if (min !== undefined && max !== undefined) parts.push(` from ${min} to ${max}`);
  else if (min !== undefined) parts.push(` of at least ${min}`);
  else if (max !== undefined) parts.push(` of at most ${max}`);
  const exclusiveMin = numberOr(schema.exclusiveMinimum);
  const exclusiveMax = numberOr(schema.exclusiveMaximum);
  if (exclusiveMin !== undefined) parts.push(` above ${exclusiveMin}`);
  if (exclusiveMax !== undefined) parts.push(` below ${exclusiveMax}`);
  const step = numberOr(schema.multipleOf);
  if (step !== undefined) parts.push(` in steps of ${step}`);
  return parts.join(',');
}

function describeLength(schema: SchemaNode): string {
  const min = numberOr(schema.minLength);
  const max = numberOr(schema.maxLength);
  if (min !== undefined && max !== undefined) return ` of ${min} to ${max} characters`;
  if (min === 1) return ' (not empty)';
  if (min !== undefined) return ` of at least ${min} characters`;
  if (max !== undefined) return ` of at most ${max} characters`;
  return '';
}

function numberOr(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function typeHint(schema: SchemaNode, value: unknown, secret: boolean): string {
  if (value === null || value === undefined) return 'got nothing (an empty value)';
  if (secret) return `got ${kindOf(value)}`;
  if (Array.isArray(schema.enum)) return `got ${describeGiven(value)}`;
  const wanted = schema.type;
  if ((wanted === 'integer' || wanted === 'number') && typeof value === 'string' && value.trim() !== '') {
    if (Number.isFinite(Number(value))) return `got the text ${describeGiven(value)}; remove the quotes`;
    return `got the text ${describeGiven(value)}; write the number in digits`;
  }
  if (wanted === 'integer' && typeof value === 'number') return `got ${value}, which is not a whole number`;
  if (wanted === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
    return `got ${kindOf(value)} ${String(value)}; put it in quotes to make it text`;
  }
  if (wanted === 'boolean' && typeof value === 'string') {
    return `got the text ${describeGiven(value)}; write true or false without quotes`;
  }
  return `got ${describeGiven(value)}`;
}

function kindOf(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'a text';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'a mapping';
    default:
      return typeof value;
  }
}

/** A given value as the user would recognise it; long texts shortened so the line stays readable. */
function describeGiven(value: unknown): string {
  if (typeof value === 'string') {
    const short = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    return `'${short}'`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return 'nothing';
  if (isSchemaNode(value)) return 'a mapping';
  return kindOf(value);
}

function lowerFirst(text: string): string {
  const trimmed = text.replace(/\.$/, '');
  return /^[A-Z][a-z]/.test(trimmed) ? trimmed[0]?.toLowerCase() + trimmed.slice(1) : trimmed;
}
