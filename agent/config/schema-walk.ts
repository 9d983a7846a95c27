/** Reading the plain JSON Schema structure behind TypeBox types, shared by error messages, the resolver and docs. */

export type SchemaNode = Record<string, unknown>;

export function isSchemaNode(value: unknown): value is SchemaNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The node a JSON Pointer into the schema (Ajv's `schemaPath`, e.g. `#/properties/log/properties/level`) names. */
export function schemaAt(root: unknown, pointer: string): SchemaNode | undefined {
  let node: unknown = root;
  const body = pointer.replace(/^#\/?/, '');
  if (body === '') return isSchemaNode(node) ? node : undefined;
  for (const raw of body.split('/')) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(node)) node = node[Number(key)];
    else if (isSchemaNode(node)) node = node[key];
    else return undefined;
  }
  return isSchemaNode(node) ? node : undefined;
}

/** Pointer to the schema node that owns a keyword: `#/properties/a/maximum` → `#/properties/a`. */
export function ownerPointer(schemaPath: string): string {
  return schemaPath.slice(0, schemaPath.lastIndexOf('/'));
}

export function propertiesOf(schema: SchemaNode): Record<string, SchemaNode> {
  const properties = schema.properties;
  return isSchemaNode(properties) ? (properties as Record<string, SchemaNode>) : {};
}

export function requiredOf(schema: SchemaNode): readonly string[] {
  return Array.isArray(schema.required) ? (schema.required as string[]) : [];
}

/** Schema of the entries of a map whose keys are free (`Type.Record`), if any. */
export function entrySchemaOf(schema: SchemaNode): SchemaNode | undefined {
  if (isSchemaNode(schema.patternProperties)) {
    const first = Object.values(schema.patternProperties)[0];
    if (isSchemaNode(first)) return first;
  }
  return isSchemaNode(schema.additionalProperties) ? schema.additionalProperties : undefined;
}

export function itemSchemaOf(schema: SchemaNode): SchemaNode | undefined {
  return isSchemaNode(schema.items) ? schema.items : undefined;
}

export function branchesOf(schema: SchemaNode): SchemaNode[] {
  const branches = schema.anyOf ?? schema.oneOf;
  return Array.isArray(branches) ? branches.filter(isSchemaNode) : [];
}

export interface KeyPath {
  /** Display path with `[]` for list items and `<name>` for free map keys, e.g. `devices[].modbus.unitId`. */
  readonly path: string;
  readonly key: string;
  readonly parent: string;
  readonly schema: SchemaNode;
  readonly required: boolean;
}

/** Every key the schema knows, parents before children, in declaration order. */
export function listKeyPaths(root: SchemaNode): KeyPath[] {
  const out: KeyPath[] = [];
  const visit = (schema: SchemaNode, prefix: string): void => {
    const required = requiredOf(schema);
    for (const [key, child] of Object.entries(propertiesOf(schema))) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      out.push({ path, key, parent: prefix, schema: child, required: required.includes(key) });
      descend(child, path);
    }
  };
  const descend = (schema: SchemaNode, path: string): void => {
    visit(schema, path);
    const entry = entrySchemaOf(schema);
    if (entry !== undefined) descend(entry, `${path}.<name>`);
    const item = itemSchemaOf(schema);
    if (item !== undefined) descend(item, `${path}[]`);
    for (const branch of branchesOf(schema)) visit(branch, path);
  };
  visit(root, '');
  return out;
}
