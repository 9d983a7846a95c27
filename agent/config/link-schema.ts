/**
 * The DSO side of the config: `link` (the MQTT connection, both roles) and `dso` (the DSO chain both roles follow,
 * what an MGMC registers with, and how a DSO node admits MGMCs and seals its chain). Which keys a role reads, and
 * what a role requires, is checked by link-check.ts after the schema, with the same file:line reporting.
 */
import { type TSchema, Type } from '@sinclair/typebox';
import { MarketPrice } from './market-schema.js';
import { FilePath, Secret, Section, StringEnum } from './schema-kit.js';

export const MIB = 1024 * 1024;

export const linkTlsSchema = Section(
  {
    ca: Type.Optional(
      FilePath({
        description: "PEM file of the CA that signed the broker's certificate; the system CAs when left out.",
      }),
    ),
    cert: Type.Optional(
      FilePath({ description: 'PEM client certificate of this node (with tls.key), if the broker asks for one.' }),
    ),
    key: Type.Optional(FilePath({ description: 'PEM private key of the client certificate (mode 0600).' })),
  },
  { description: 'TLS files for an mqtts:// link.' },
);

export const linkSchema = Section(
  {
    url: Type.String({
      pattern: '^mqtts?://',
      maxLength: 256,
      examples: ['mqtts://broker.dso.example:8883'],
      description: 'MQTT broker: mqtts://host:port (TLS, production) or mqtt://host:port (no TLS: tests, loopback).',
    }),
    tls: linkTlsSchema,
    username: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, description: "This node's user name at the broker." }),
    ),
    password: Type.Optional(
      Secret({
        description: "This node's broker password, as env:NAME or file:PATH (never written in this file).",
      }),
    ),
    clientId: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._:-]{1,128}$',
        description: 'MQTT client id; derived from the node address and role when left out.',
      }),
    ),
    protocolVersion: Type.Union([Type.Literal(4), Type.Literal(5)], {
      default: 5,
      description:
        'MQTT protocol: 5, or 4 (3.1.1) for brokers without MQTT 5 such as the embedded one of `mgmc demo` (no ' +
        'session expiry, user properties or response topics then; a DSO node subscribes without shared ' +
        'subscriptions and must run as a single process).',
    }),
    keepaliveSeconds: Type.Integer({
      minimum: 5,
      maximum: 65_535,
      default: 30,
      description: 'MQTT keepalive: the broker declares the node gone (and publishes its last will) after 1.5x this.',
    }),
    maxBlockBytes: Type.Integer({
      minimum: 64 * 1024,
      maximum: 256 * MIB,
      default: 4 * MIB,
      description: 'Largest block envelope sent or accepted, in bytes; keep it under the broker message_size_limit.',
    }),
    receiptTimeoutMs: Type.Integer({
      minimum: 1000,
      maximum: 86_400_000,
      default: 60_000,
      description: 'A block without a DSO receipt after this long is sent again (same envelope id).',
    }),
  },
  { description: 'MQTT link to the DSO (both roles). Left out: an MGMC runs offline and keeps its ledger locally.' },
);

export const dsoPolicySchema = Section(
  {
    mode: StringEnum(['allow-list', 'manual'], {
      default: 'manual',
      description:
        'allow-list: MGMCs in allow are authorized at once, others rejected. manual: others wait for `mgmc dso approve`.',
    }),
    allow: Type.Array(Type.String({ pattern: '^0x[0-9a-fA-F]{40}$', description: 'An MGMC address.' }), {
      default: [],
      description: 'MGMC addresses authorized as soon as they register (both modes).',
    }),
  },
  { description: 'role dso: how registering MGMCs are admitted.' },
);

export const dsoTradeSchema = Section(
  {
    buy: Type.Boolean({ default: true, description: 'role mgmc: this microgrid may buy energy from others.' }),
    sell: Type.Boolean({ default: true, description: 'role mgmc: this microgrid may sell energy to others.' }),
  },
  { description: 'role mgmc: what this microgrid registers it can trade.' },
);

const Minutes = (description: string, def: number, minimum = 1) =>
  Type.Integer({ minimum, maximum: 1440, default: def, description });
const Seconds = (description: string, def: number) =>
  Type.Number({ minimum: 0.1, maximum: 3600, default: def, description });

/**
 * Present means on: Section gives a section whose keys all have defaults a `{}` default, which the loader would fill
 * in, turning the market on in every DSO config. This one has none, so leaving it out leaves the market off.
 */
function withoutDefault<T extends TSchema>(schema: T): T {
  const copy: Record<string | symbol, unknown> = { ...(schema as Record<string | symbol, unknown>) };
  delete copy.default;
  return copy as unknown as T;
}

export const dsoMarketSchema = withoutDefault(
  Section(
    {
      intervalMinutes: Minutes('Market interval, minutes; the same as dso.grid.intervalMinutes when both are set.', 15),
      leadMinutes: Minutes('The market of an interval opens this long before the interval starts, minutes.', 15),
      gateMinutes: Minutes(
        'The gate closes this long before the interval starts, minutes (less than leadMinutes): the last final before it stands.',
        5,
        0,
      ),
      phaseSeconds: Seconds("Longest wait for the MGMCs' moves of one bargaining phase (two phases per round), s.", 5),
      positionWaitSeconds: Seconds(
        "Longest wait after a final for the MGMCs' net positions, and after the network check for their acks of caps, s.",
        10,
      ),
      deliveryDelayMinutes: Minutes(
        "Deliveries are asked for this long after the interval ends (the meters' signed batches must be in), minutes.",
        5,
        0,
      ),
      deliveryWaitSeconds: Seconds('Longest wait for the metered deliveries before the settlement is sealed, s.', 60),
      roundCap: Type.Integer({
        minimum: 1,
        maximum: 1000,
        default: 30,
        description: "Bargaining rounds per attempt; at the cap the last round's trades stand.",
      }),
      maxAttempts: Type.Integer({
        minimum: 1,
        maximum: 20,
        default: 3,
        description:
          'Bargaining attempts per interval: after the network check sent caps the interval is traded again.',
      }),
      maxQtyWh: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 1_000_000_000,
          description: 'Largest order of the market, Wh; no limit when left out.',
        }),
      ),
      importPrice: MarketPrice('Grid import price, currency per kWh: the top of the band P2P prices lie in.', {
        default: 0.3,
      }),
      exportPrice: MarketPrice('Grid feed-in price, currency per kWh (at most importPrice): the bottom of the band.', {
        default: 0.08,
      }),
      imbalancePrice: MarketPrice('Price of energy delivered off the traded quantity, currency per kWh.', {
        default: 0.35,
      }),
    },
    {
      description:
        "role dso: the market sequencer: seals the MGMCs' bargaining phases, runs the network check after each " +
        'attempt and settles on metered deliveries.',
    },
  ),
);

export const dsoSchema = Section(
  {
    genesis: Type.Optional(
      FilePath({
        description:
          'DSO chain genesis file (JSON, from the DSO). Required for role dso, and for role mgmc with a link.',
      }),
    ),
    feederBus: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: "role mgmc: the feeder bus this microgrid connects to, as named in the DSO's feeder model.",
      }),
    ),
    trade: dsoTradeSchema,
    anonymEpoch: Type.Integer({
      minimum: 0,
      maximum: 2 ** 31 - 1,
      default: 0,
      description: 'role mgmc: raise it to register a new market pseudonym (anonym); the old one is dropped.',
    }),
    policy: dsoPolicySchema,
    sealEverySeconds: Type.Integer({
      minimum: 1,
      maximum: 3600,
      default: 10,
      description: 'role dso: seal a DSO block at the latest this many seconds after its first entry.',
    }),
    sealEveryEntries: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 256,
      description: 'role dso: seal a DSO block as soon as it commits to this many MGMC blocks.',
    }),
    anchor: Type.Boolean({
      default: true,
      description: 'role dso: true seals the DSO chain; false runs a verifier only, sharing the database and the load.',
    }),
    shareGroup: Type.String({
      pattern: '^[a-z0-9_.-]{1,64}$',
      default: 'dso-verifiers',
      description: 'role dso: MQTT 5 shared-subscription group of the verifier processes of one DSO.',
    }),
    grid: Type.Optional(
      Section(
        {
          feeder: FilePath({
            description:
              'role dso: the feeder file (docs/feeder-format.md; examples/feeder-ieee33.yaml is the IEEE 33-bus feeder).',
          }),
          intervalMinutes: Type.Integer({
            minimum: 1,
            maximum: 1440,
            default: 15,
            description: 'Market interval the MGMCs report positions for, minutes.',
          }),
          settleSeconds: Type.Number({
            minimum: 0.1,
            maximum: 3600,
            default: 5,
            description:
              'Check an interval this long after the last position for it arrived; not used with dso.market (the ' +
              'market sequencer runs the check after each bargaining attempt).',
          }),
          maxRounds: Type.Integer({
            minimum: 1,
            maximum: 50,
            default: 5,
            description: 'Network-check rounds per interval; after the last one its caps stand.',
          }),
        },
        {
          description:
            'role dso: the network security check: power flow on the MGMCs positions, encrypted adjustment contracts.',
        },
      ),
    ),
    market: Type.Optional(dsoMarketSchema),
  },
  { description: 'The DSO: its chain, the MGMC registration (role mgmc) and the DSO node itself (role dso).' },
);

/** Keys of `dso` that only one role reads; writing one in the other role's file is a mistake worth reporting. */
export const DSO_KEYS_OF_ROLE = {
  mgmc: ['feederBus', 'trade', 'anonymEpoch'],
  dso: ['policy', 'sealEverySeconds', 'sealEveryEntries', 'anchor', 'shareGroup', 'grid', 'market'],
} as const;

export const linkSections = {
  link: Type.Optional(linkSchema),
  dso: dsoSchema,
};
