/**
 * Building blocks for config sections. A new section is a `Section({...})` of these and plain TypeBox types, added to
 * agentConfigSchema; the loader, error messages, JSON Schema export and docs table all follow from the schema.
 */
import { type SchemaOptions, type TObject, type TProperties, type TSchema, Type } from '@sinclair/typebox';
import { SECRET_REFERENCE_PATTERN, type SecretValue } from './secret.js';

/**
 * Marks schema nodes the loader post-processes. A symbol key, so Ajv (strict mode) never sees an unknown keyword and
 * the exported JSON Schema drops it without a special case.
 */
export const ConfigKind: unique symbol = Symbol.for('mgmc-agent.config.kind');
export type ConfigKindName = 'secret' | 'path';

export interface FieldOptions extends SchemaOptions {
  /** Required on every field: it becomes the editor tooltip and the docs table. */
  description: string;
}

/**
 * A secret given as `env:NAME` or `file:PATH`; loads as a SecretValue. Inline values are rejected so that the secret
 * never sits in a file that gets copied into tickets.
 */
export function Secret(options: FieldOptions): TSchema & { static: SecretValue } {
  return Type.Unsafe<SecretValue>({
    examples: ['env:MGMC_KEY_PASSPHRASE', 'file:./keys/passphrase'],
    ...options,
    type: 'string',
    pattern: SECRET_REFERENCE_PATTERN,
    [ConfigKind]: 'secret',
  });
}

/** A file path; loads as an absolute path, relative ones resolved against the config file's directory. */
export function FilePath(options: FieldOptions): TSchema & { static: string } {
  return Type.Unsafe<string>({ ...options, type: 'string', minLength: 1, [ConfigKind]: 'path' });
}

/** A plain `enum` of strings (not TypeBox's anyOf of consts), so errors can list the allowed values in one line. */
export function StringEnum<const T extends readonly [string, ...string[]]>(
  values: T,
  options: FieldOptions,
): TSchema & { static: T[number] } {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] });
}

/**
 * A mapping that rejects unknown keys. Fields with a `default` are left out of `required`, so editors do not demand
 * them, yet stay non-optional in the static type, because the loader always fills them in. A section whose fields
 * all have defaults defaults to `{}`, so it can be left out of the file entirely.
 */
export function Section<T extends TProperties>(
  properties: T,
  options: SchemaOptions & { description: string },
): TObject<T> {
  const object = Type.Object(properties, { ...options, additionalProperties: false });
  const required = ((object.required ?? []) as string[]).filter((key) => !hasDefault(properties[key]));
  // Spread keeps TypeBox's symbol keys, which the static type and the loader's markers rely on.
  const section: Record<string | symbol, unknown> = { ...object };
  if (required.length > 0) section.required = required;
  else delete section.required;
  if (required.length === 0 && section.default === undefined) section.default = {};
  return section as unknown as TObject<T>;
}

function hasDefault(schema: TSchema | undefined): boolean {
  return schema !== undefined && Object.hasOwn(schema, 'default');
}

export function configKindOf(schema: unknown): ConfigKindName | undefined {
  if (typeof schema !== 'object' || schema === null) return undefined;
  return (schema as { [ConfigKind]?: ConfigKindName })[ConfigKind];
}
