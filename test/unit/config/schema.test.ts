import { readFile } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  agentConfigSchema,
  configJsonSchema,
  createConfigLoader,
  FilePath,
  formatIssue,
  Secret,
  Section,
} from '../../../agent/config/index.js';
import { listKeyPaths, type SchemaNode } from '../../../agent/config/schema-walk.js';
import { closest, editDistance } from '../../../agent/config/suggest.js';
import { examplePath, fixture, fixturesDir } from './helpers.js';

function symbolsIn(value: unknown, found: symbol[] = []): symbol[] {
  if (typeof value !== 'object' || value === null) return found;
  found.push(...Object.getOwnPropertySymbols(value));
  for (const child of Object.values(value)) symbolsIn(child, found);
  return found;
}

describe('configJsonSchema()', () => {
  const schema = configJsonSchema();

  it('is plain JSON Schema with a dialect, a title and descriptions', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.title).toBe('mgmc-agent configuration');
    expect(typeof schema.description).toBe('string');
    expect(symbolsIn(schema)).toEqual([]);
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });

  it('compiles with a fresh strict Ajv and accepts the example but not the broken fixture', async () => {
    const validate = new Ajv({ strict: true, allErrors: true }).compile(schema);
    const example = parse(await readFile(examplePath, 'utf8'));
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(parse(await readFile(fixture('minimal.yaml'), 'utf8')))).toBe(true);
    expect(validate(parse(await readFile(fixture('multi-error.yaml'), 'utf8')))).toBe(false);
  });

  it('does not change when called twice (no shared mutable state)', () => {
    const first = configJsonSchema();
    (first as { title: string }).title = 'changed';
    expect(configJsonSchema().title).toBe('mgmc-agent configuration');
  });
});

describe('agentConfigSchema', () => {
  it('describes every key and forbids unknown keys in every section', () => {
    for (const entry of listKeyPaths(agentConfigSchema as unknown as SchemaNode)) {
      expect(typeof entry.schema.description, entry.path).toBe('string');
      if (entry.schema.type === 'object') expect(entry.schema.additionalProperties, entry.path).toBe(false);
    }
    expect(agentConfigSchema.additionalProperties).toBe(false);
  });

  it('keeps defaulted keys out of required so editors do not demand them', () => {
    expect(agentConfigSchema.required).toEqual(['role', 'site', 'identity']);
    expect(agentConfigSchema.properties.store.required).toBeUndefined();
    expect(agentConfigSchema.properties.store.default).toEqual({});
    expect(agentConfigSchema.properties.identity.required).toEqual(['keystore', 'passphrase']);
  });
});

describe('sections added later', () => {
  // Lists, free-keyed maps and unions are what devices, buses and tariffs will need.
  const deviceSchema = Section(
    {
      name: Type.String({ minLength: 1, description: 'Device name.' }),
      certificate: FilePath({ description: 'Client certificate.' }),
      token: Type.Optional(Secret({ description: 'API token.' })),
    },
    { description: 'A device.' },
  );
  const schema = Section(
    {
      devices: Type.Array(deviceSchema, { description: 'Devices.' }),
      feeders: Type.Record(Type.String(), Section({ key: Secret({ description: 'Key.' }) }, { description: 'F.' }), {
        description: 'Feeders by name.',
      }),
    },
    { description: 'Test schema.' },
  );
  const loader = createConfigLoader(schema);

  it('resolves paths and secrets inside lists and maps, and points at list items', async () => {
    const ok = await loader.check(fixture('sections.yaml'), { env: { TOKEN_A: 'a', FEEDER_KEY: 'k' } });
    expect(ok.issues.map(formatIssue)).toEqual([]);
    expect(ok.config?.devices[0]?.certificate).toBe(`${fixturesDir}/certs/a.pem`);
    expect(ok.config?.devices[0]?.token?.reveal()).toBe('a');
    expect(ok.config?.devices[1]?.certificate).toBe('/etc/ssl/b.pem');
    expect(ok.config?.feeders.north?.key.reveal()).toBe('k');

    const bad = await loader.check(fixture('sections.yaml'), { env: { FEEDER_KEY: 'k' } });
    expect(bad.issues).toEqual([expect.objectContaining({ line: 4, column: 12, path: 'devices[0].token' })]);
  });

  it('names list items by index, and points a missing key at its list item', async () => {
    const result = await loader.check(fixture('sections-bad.yaml'), { env: {} });
    expect(result.issues.map((issue) => `${issue.line}:${issue.column} ${issue.path}`)).toEqual([
      '4:5 devices[1].certificate',
      '4:11 devices[1].name',
      '5:5 devices[1].certficate',
      '8:10 feeders.north.key',
    ]);
  });
});

describe('near-miss suggestions', () => {
  it('measures edits, counting a swap of neighbours as one', () => {
    expect(editDistance('sealEveryRecord', 'sealEveryRecords')).toBe(1);
    expect(editDistance('lveel', 'level')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('ignores case, underscores and dashes, and returns only the nearest names', () => {
    expect(closest('seal_every_records', ['sealEverySeconds', 'sealEveryRecords'])).toEqual(['sealEveryRecords']);
    expect(closest('ChainID', ['role', 'chainId'])).toEqual(['chainId']);
    expect(closest('zzzz', ['role', 'site'])).toEqual([]);
  });
});
