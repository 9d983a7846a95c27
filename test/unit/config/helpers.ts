import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { agentConfigSchema, Secret, Section } from '../../../agent/config/index.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const fixturesDir = join(repoRoot, 'test/fixtures/config');
export const examplePath = join(repoRoot, 'examples/site.yaml');

/** Fixture path as a technician would type it (relative), so the issue lines look like real output. */
export function fixture(name: string): string {
  return relative(process.cwd(), join(fixturesDir, name)) || name;
}

/**
 * The agent's schema plus a section a later feature might add. Building it is all a new section takes, which is
 * what the loader machinery promises.
 */
export const schemaWithBroker = Section(
  {
    ...agentConfigSchema.properties,
    broker: Section(
      {
        url: Type.String({ minLength: 1, description: 'MQTT broker URL.' }),
        password: Secret({ description: 'Password of this node at the broker.' }),
      },
      { description: 'MQTT link (test-only section).' },
    ),
  },
  { description: 'Agent config with a broker section.' },
);
