import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderConfigReference } from '../../../agent/config/index.js';
import { REFERENCE_BEGIN, REFERENCE_END } from '../../../agent/config/reference.js';
import { repoRoot } from './helpers.js';

const docPath = join(repoRoot, 'docs/configuration.md');

/** Biome pads Markdown tables to aligned columns; the content is what must match, not the padding. */
function normalizeTables(markdown: string): string {
  return markdown
    .split('\n')
    .map((line) =>
      line.startsWith('|')
        ? line
            .split(/(?<!\\)\|/)
            .map((cell) => cell.trim().replace(/^-{3,}$/, '---'))
            .join('|')
        : line.trimEnd(),
    )
    .join('\n');
}

describe('docs/configuration.md', () => {
  it('contains the key table generated from the schema', async () => {
    const doc = await readFile(docPath, 'utf8');
    const rendered = renderConfigReference();
    const start = doc.indexOf(REFERENCE_BEGIN);
    const end = doc.indexOf(REFERENCE_END);
    expect(start, 'generated-table markers missing from docs/configuration.md').toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    const committed = doc.slice(start, end + REFERENCE_END.length);
    if (normalizeTables(committed) !== normalizeTables(rendered) && process.env.UPDATE_CONFIG_REFERENCE === '1') {
      // Opt-in regeneration after a schema change: UPDATE_CONFIG_REFERENCE=1 npx vitest run test/unit/config
      await writeFile(docPath, doc.slice(0, start) + rendered + doc.slice(end + REFERENCE_END.length));
      return;
    }
    expect(
      normalizeTables(committed),
      'the schema changed: regenerate with UPDATE_CONFIG_REFERENCE=1 npx vitest run test/unit/config/reference.test.ts',
    ).toBe(normalizeTables(rendered));
  });

  it('lists every key of the schema', () => {
    const rendered = renderConfigReference();
    for (const key of ['role', 'site.name', 'chainId', 'identity.keystore', 'identity.passphrase', 'store.path']) {
      expect(rendered).toContain(`| \`${key}\` |`);
    }
    for (const key of ['store.synchronous', 'ledger.sealEverySeconds', 'ledger.sealEveryRecords', 'log.level']) {
      expect(rendered).toContain(`| \`${key}\` |`);
    }
  });
});
