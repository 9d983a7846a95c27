/**
 * The agent's config file. Each section is a `Section(...)` fragment; later features add theirs to
 * agentConfigSchema and get validation, positions, hints, the editor schema and the docs table for free.
 */
import { type Static, Type } from '@sinclair/typebox';
import { devicesSections } from './devices-schema.js';
import { energySections } from './energy-schema.js';
import { linkSections } from './link-schema.js';
import { marketSections } from './market-schema.js';
import { metricsSections } from './metrics-schema.js';
import { FilePath, Secret, Section, StringEnum } from './schema-kit.js';

export const siteSchema = Section(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 64,
      description: 'Name of the microgrid site, shown in status output and sent to the DSO.',
    }),
  },
  { description: 'The site this controller runs.' },
);

export const identitySchema = Section(
  {
    keystore: FilePath({
      description: "Web3 Secret Storage v3 keystore file (geth/ethers format, mode 0600) holding this node's key.",
    }),
    passphrase: Secret({
      description: 'Passphrase of the keystore, as env:NAME (environment variable) or file:PATH (file content).',
    }),
  },
  { description: "This node's signing key." },
);

export const storeSchema = Section(
  {
    path: FilePath({
      default: './data/mgmc.db',
      description: 'SQLite database file for the ledger, outbox and device data; its directory must exist.',
    }),
    synchronous: StringEnum(['normal', 'full'], {
      default: 'full',
      description:
        'SQLite synchronous mode: full survives power loss without losing the last commits; normal is faster.',
    }),
  },
  { description: 'Local database.' },
);

export const ledgerSchema = Section(
  {
    sealEverySeconds: Type.Integer({
      minimum: 1,
      maximum: 3600,
      default: 10,
      description: 'Seal a block at the latest this many seconds after its first record.',
    }),
    sealEveryRecords: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 1000,
      description: 'Seal a block as soon as it holds this many records.',
    }),
    pruneAfterDays: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 36_500,
        description:
          'role mgmc: drop record bodies of blocks anchored by the DSO this many days ago (headers, signatures and ' +
          'receipts stay); never pruned when left out.',
      }),
    ),
  },
  { description: 'Hash-chained ledger: a block is sealed by time or by size, whichever comes first.' },
);

export const logSchema = Section(
  {
    level: StringEnum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'], {
      default: 'info',
      description: 'Lowest level written to the log (pino JSON on stdout).',
    }),
  },
  { description: 'Logging.' },
);

export const agentConfigSchema = Section(
  {
    role: StringEnum(['mgmc', 'dso'], {
      description: 'What this node is: mgmc (microgrid master controller) or dso (distribution system operator node).',
    }),
    site: siteSchema,
    chainId: Type.Integer({
      minimum: 1,
      default: 1337,
      description: 'Chain id in the domain of every signature; nodes that talk to each other must use the same one.',
    }),
    identity: identitySchema,
    store: storeSchema,
    ledger: ledgerSchema,
    log: logSchema,
    ...linkSections,
    ...devicesSections,
    ...energySections,
    ...marketSections,
    ...metricsSections,
  },
  { title: 'mgmc-agent configuration', description: 'Configuration file of the microgrid master controller agent.' },
);

/** The config as loaded: defaults filled in, secrets as SecretValue, paths absolute. */
export type AgentConfig = Static<typeof agentConfigSchema>;
