/**
 * The MGMC's side of the P2P market (role mgmc): whether it trades, whether what it sells is green, the connection
 * meter whose signed readings settle its trades, and the contract rules its owner allows (agent/market/rules.ts).
 * The DSO's side (timing, prices) is `dso.market` in link-schema.ts. What must agree with other sections (a link, the
 * optimizer that plans what is traded, the meter's name, floor below ceiling) is checked by energy-check.ts.
 */
import { Type } from '@sinclair/typebox';
import { Section } from './schema-kit.js';

/** A price per kWh in the config's currency; stored as integer micro-units, so at most 6 decimals count. */
export const MarketPrice = (description: string, extra: { default?: number } = {}) =>
  Type.Number({ minimum: 0, maximum: 100, description, ...extra });

const Anonyms = (description: string) =>
  Type.Optional(
    Type.Array(Type.String({ pattern: '^0x[0-9a-fA-F]{40}$', description: 'An anonym (market pseudonym) address.' }), {
      maxItems: 256,
      description,
    }),
  );

export const marketRulesSchema = Section(
  {
    floorPrice: Type.Optional(MarketPrice('Never sell below this price, currency per kWh (e.g. 0.10).')),
    ceilingPrice: Type.Optional(MarketPrice('Never buy above this price, currency per kWh (e.g. 0.28).')),
    maxQtyWh: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1_000_000_000,
        description: 'Most energy traded in one interval, per side, Wh; the market maximum when left out.',
      }),
    ),
    greenOnly: Type.Boolean({ default: false, description: 'Buy green energy only.' }),
    allow: Anonyms('When set, the only counterparties (anonyms) traded with; anyone when left out.'),
    deny: Anonyms('Counterparties (anonyms) never traded with.'),
    roundCap: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000,
        description: "Last bargaining round it moves its price in (it holds after that); the market's cap if lower.",
      }),
    ),
  },
  { description: 'What the market agent may agree to: enforced on its own orders and on every clearing received.' },
);

export const marketSchema = Section(
  {
    enabled: Type.Boolean({
      default: false,
      description:
        'Trade the planned surplus and shortfall with other MGMCs (needs link, buildings and the optimizer).',
    }),
    green: Type.Boolean({ default: false, description: 'The energy this microgrid sells is green (renewable).' }),
    intervalMinutes: Type.Integer({
      minimum: 1,
      maximum: 1440,
      default: 15,
      description: "The market interval, minutes: the DSO's dso.market.intervalMinutes (15 or 60).",
    }),
    meter: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'The connection meter (meters[].name) whose signed readings settle trades; the first meter if unset.',
      }),
    ),
    rules: marketRulesSchema,
  },
  { description: 'role mgmc: the P2P energy market with the other microgrids of the feeder.' },
);

export const marketSections = {
  market: marketSchema,
};
