import { describe, expect, it } from 'vitest';
import { toChecksumAddress } from '../../../agent/identity/keys.js';
import { type BargainingParticipant, DEFAULT_BARGAINING, runBargaining } from '../../../agent/market/bargaining.js';
import { clearRound } from '../../../agent/market/clearing.js';
import { normalizeCurve } from '../../../agent/market/curve.js';
import { buildOrder, type OrderFields } from '../../../agent/market/order.js';
import {
  type ContractRules,
  checkCounterOrder,
  checkOwnOrder,
  checkTrades,
  counterpartyAllowed,
  parseRules,
  RulesError,
  ruleFields,
  rulePrice,
} from '../../../agent/market/rules.js';

const T = Date.UTC(2025, 5, 1, 12);
const anon = (i: number) => toChecksumAddress(`0x${i.toString(16).padStart(40, '0')}`);
const GRID = { importPrice: 300_000, exportPrice: 80_000 };

function fields(over: Partial<OrderFields> = {}): OrderFields {
  return {
    anonym: anon(1),
    interval: T,
    side: 'offer',
    qtyWh: 1_000,
    price: 150_000,
    green: false,
    round: 1,
    expiry: T,
    ...over,
  };
}

describe('parseRules', () => {
  it('reads rules from config data, checksumming and sorting anonyms', () => {
    const rules = parseRules({
      floorPrice: 120_000,
      ceilingPrice: 250_000,
      maxQtyWh: 50_000,
      greenOnly: true,
      deny: [anon(3).toLowerCase(), anon(2).toLowerCase()],
      roundCap: 10,
    });
    expect(rules).toEqual({
      floorPrice: 120_000,
      ceilingPrice: 250_000,
      maxQtyWh: 50_000,
      greenOnly: true,
      deny: [anon(2), anon(3)],
      roundCap: 10,
    });
    expect(parseRules(undefined)).toEqual({});
  });

  it('reports every problem at once, where it is', () => {
    let error: unknown;
    try {
      parseRules(
        { floorPrice: -1, greenOnly: 'yes', allow: [anon(2)], deny: [anon(2)], colour: 'green' },
        'site.yaml: market.rules',
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RulesError);
    const message = (error as Error).message;
    expect(message).toMatch(/^site\.yaml: market\.rules:/);
    expect(message).toMatch(/unknown rule colour/);
    expect(message).toMatch(/floorPrice must be an integer >= 0/);
    expect(message).toMatch(/greenOnly must be true or false/);
    expect(message).toMatch(/both allowed and denied/);
  });
});

describe('before sending', () => {
  const rules: ContractRules = {
    floorPrice: 120_000,
    ceilingPrice: 250_000,
    maxQtyWh: 5_000,
    greenOnly: true,
    deny: [anon(9)],
    roundCap: 5,
  };

  it('flags every broken rule of an own order', () => {
    const codes = (f: OrderFields) => checkOwnOrder(f, rules).map((b) => b.code);
    expect(codes(fields({ price: 119_999, qtyWh: 5_001, round: 6, ...ruleFields(rules, 'offer', true) }))).toEqual([
      'below-floor',
      'over-max-qty',
      'round-cap',
    ]);
    expect(codes(fields({ side: 'bid', price: 250_001, green: false }))).toEqual([
      'above-ceiling',
      'not-green',
      'rule-fields',
    ]);
    expect(codes(fields({ side: 'bid', price: 200_000, ...ruleFields(rules, 'bid', false) }))).toEqual([]);
  });

  it('puts the rules into the order fields: green-only, exclusions, allow-list', () => {
    expect(ruleFields(rules, 'bid', false)).toEqual({ green: true, exclude: [anon(9)] });
    expect(ruleFields(rules, 'offer', true)).toEqual({ green: true, exclude: [anon(9)] });
    expect(ruleFields({ allow: [anon(4)] }, 'offer', false)).toEqual({ green: false, only: [anon(4)] });
  });

  it('holds an offer at the floor and a bid at the ceiling', () => {
    expect(rulePrice(rules, 'offer', 100_000)).toBe(120_000);
    expect(rulePrice(rules, 'bid', 280_000)).toBe(250_000);
    expect(rulePrice(rules, 'bid', 100_000)).toBe(100_000);
  });
});

describe('on receipt', () => {
  it('says why it may not trade with a received order', () => {
    const buyer: ContractRules = { greenOnly: true, ceilingPrice: 200_000, deny: [anon(5)] };
    const offer = (over: Partial<OrderFields>) => fields({ anonym: anon(4), green: true, ...over });
    expect(checkCounterOrder(buyer, 'bid', offer({}))).toBeUndefined();
    expect(checkCounterOrder(buyer, 'bid', offer({ green: false }))?.code).toBe('not-green');
    expect(checkCounterOrder(buyer, 'bid', offer({ price: 200_001 }))?.code).toBe('above-ceiling');
    expect(checkCounterOrder(buyer, 'bid', offer({ anonym: anon(5) }))?.code).toBe('counterparty-denied');
    expect(checkCounterOrder({ floorPrice: 100_000 }, 'offer', fields({ side: 'bid', price: 99_999 }))?.code).toBe(
      'below-floor',
    );
    expect(counterpartyAllowed({ allow: [anon(4)] }, anon(4).toLowerCase())).toBe(true);
    expect(counterpartyAllowed({ allow: [anon(4)] }, anon(5))).toBe(false);
  });

  it('refuses a clearing that would break its rules', () => {
    const me = anon(1);
    const trade = { id: '0xt', seller: me, buyer: anon(2), qtyWh: 3_000, price: 90_000, green: false };
    const breaks = checkTrades([trade, { ...trade, id: '0xu', seller: anon(3), buyer: me, price: 260_000 }], me, {
      floorPrice: 100_000,
      ceilingPrice: 250_000,
      greenOnly: true,
      deny: [anon(3)],
      maxQtyWh: 2_000,
    });
    expect(breaks.map((b) => b.code).sort()).toEqual([
      'above-ceiling',
      'below-floor',
      'counterparty-denied',
      'not-green',
      'over-max-qty',
    ]);
    expect(checkTrades([trade], anon(7), { floorPrice: 1_000_000 })).toEqual([]);
  });

  it('the clearing everyone computes respects the exclusions an order carries', () => {
    const denyRules: ContractRules = { deny: [anon(2)] };
    const offer = buildOrder({ ...fields(), ...ruleFields(denyRules, 'offer', false) }, 1);
    const denied = buildOrder(fields({ anonym: anon(2), side: 'bid', price: 200_000 }), 1);
    const other = buildOrder(fields({ anonym: anon(3), side: 'bid', price: 200_000, qtyWh: 400 }), 1);
    const c = clearRound([offer, denied, other], { interval: T, round: 1 });
    expect(c.trades.map((t) => t.buyer)).toEqual([anon(3)]);
    expect(checkTrades(c.trades, anon(1), denyRules)).toEqual([]);
  });
});

describe('rules in the bargaining, both ways', () => {
  // A seller with a floor, a green-only buyer, a buyer denying the cheap seller.
  const linear = (lowWh: number, highWh: number): BargainingParticipant['curve'] =>
    normalizeCurve({
      interval: T,
      points: [
        { price: GRID.exportPrice, netWh: lowWh },
        { price: GRID.importPrice, netWh: highWh },
      ],
    });
  const participants: BargainingParticipant[] = [
    { anonym: anon(1), curve: linear(0, 20_000), green: false, rules: { floorPrice: 220_000 } },
    { anonym: anon(2), curve: linear(5_000, 15_000), green: true },
    { anonym: anon(3), curve: linear(2_000, 8_000), green: false },
    { anonym: anon(4), curve: linear(-12_000, -2_000), rules: { greenOnly: true } },
    { anonym: anon(5), curve: linear(-15_000, -5_000), rules: { deny: [anon(3)], ceilingPrice: 240_000 } },
    { anonym: anon(6), curve: linear(-10_000, 0) },
  ];
  const result = runBargaining(
    participants,
    { chainId: 1, interval: T, grid: GRID, gateClosure: T, params: DEFAULT_BARGAINING },
    { keepHistory: true },
  );

  it('no order ever sent breaks its sender’s rules', () => {
    for (const { orders } of result.history ?? []) {
      for (const o of orders) {
        const p = participants.find((x) => x.anonym === o.anonym) as BargainingParticipant;
        expect(checkOwnOrder(o, p.rules ?? {})).toEqual([]);
      }
    }
  });

  it('no trade of any round breaks either side’s rules', () => {
    expect(result.final.trades.length).toBeGreaterThan(0);
    for (const { clearing } of result.history ?? []) {
      for (const p of participants) expect(checkTrades(clearing.trades, p.anonym, p.rules ?? {})).toEqual([]);
    }
  });
});
