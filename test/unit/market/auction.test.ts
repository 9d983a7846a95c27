import { describe, expect, it } from 'vitest';
import { fromHex } from '../../../agent/identity/bytes.js';
import { keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../../agent/ledger/block.js';
import {
  AuctionError,
  type AuctionEvent,
  type AuctionTerms,
  runAuction,
  signAuctionBid,
} from '../../../agent/market/auction.js';

const HOUR = 3_600_000;
const START = Date.UTC(2025, 5, 1, 9);

const bid = (bidder: string, amount: number, time: number, id = `${bidder}@${time}`): AuctionEvent => ({
  kind: 'bid',
  id,
  auction: 'painting',
  bidder,
  amount,
  time,
});

describe('the papers’ example', () => {
  // Participant 1 sells a painting; 2, 3 and 4 bid 30, 20 and 25 (Ether in the paper); the highest bidder wins and
  // the contract transfers 30 from participant 2 to participant 1.
  const terms: AuctionTerms = {
    id: 'painting',
    seller: '1',
    item: 'a painting',
    reservePrice: 0,
    deadline: START + HOUR,
    bidders: ['2', '3', '4'],
  };

  it('participant 2 wins and 30 is transferred to participant 1', () => {
    const outcome = runAuction(terms, [bid('2', 30, START + 1), bid('3', 20, START + 2), bid('4', 25, START + 3)]);
    expect(outcome.status).toBe('sold');
    expect(outcome.winner).toBe('2');
    expect(outcome.price).toBe(30);
    expect(outcome.transfer).toEqual({ from: '2', to: '1', amount: 30 });
    expect(outcome.rejected).toEqual([]);
    // "open until all bids have been received": it closed when participant 4, the last, bid.
    expect(outcome.closedAt).toBeLessThan(terms.deadline);
  });

  it('the same with bids signed by the participants’ keys, in any order', () => {
    const keys = [1, 2, 3, 4].map((i) => keyPairFromPrivateKey(fromHex(`0x${String(i).repeat(64)}`)));
    const [k1, k2, k3, k4] = keys as [(typeof keys)[0], (typeof keys)[0], (typeof keys)[0], (typeof keys)[0]];
    const signed: AuctionTerms = { ...terms, seller: k1.address, bidders: [k2.address, k3.address, k4.address] };
    const sign = (k: typeof k1, amount: number, time: number) =>
      signAuctionBid(
        { kind: 'bid', id: `${k.address}@${time}`, auction: 'painting', bidder: k.address, amount, time },
        signerFromPrivateKey(k.privateKey, k.address),
        4711,
      );
    const events = [sign(k4, 25, START + 3), sign(k2, 30, START + 1), sign(k3, 20, START + 2)];
    const outcome = runAuction(signed, events, { requireSignaturesOn: 4711 });
    expect(outcome.transfer).toEqual({ from: k2.address, to: k1.address, amount: 30 });

    // A bid claiming to be participant 3's but signed by 4 is forged; an unsigned one is refused too.
    const forged = { ...sign(k4, 99, START + 2), bidder: k3.address };
    const { sig: _sig, ...unsigned } = sign(k3, 98, START + 2);
    const outcome2 = runAuction(signed, [forged, unsigned, sign(k2, 30, START + 1)], { requireSignaturesOn: 4711 });
    expect(outcome2.rejected.map((r) => r.code).sort()).toEqual(['forged', 'unsigned']);
    expect(outcome2.winner).toBe(k2.address);
    // Signed for another chain: forged.
    expect(runAuction(signed, events, { requireSignaturesOn: 1 }).status).toBe('unsold');
  });
});

describe('the survey’s example', () => {
  it('Jeff’s 450 beats Jane’s 370 and Jason’s 320 above the 250 reserve; 450 goes to John', () => {
    const terms: AuctionTerms = {
      id: 'tablet',
      seller: 'John',
      item: 'a tablet',
      reservePrice: 250,
      deadline: START + 6 * HOUR,
    };
    const events: AuctionEvent[] = [
      { ...bid('Jane', 370, START + HOUR), auction: 'tablet' },
      { ...bid('Jeff', 450, START + 2 * HOUR), auction: 'tablet' },
      { ...bid('Jason', 320, START + 3 * HOUR), auction: 'tablet' },
    ];
    expect(runAuction(terms, events).transfer).toEqual({ from: 'Jeff', to: 'John', amount: 450 });
  });
});

describe('the rules', () => {
  const terms: AuctionTerms = { id: 'painting', seller: '1', item: 'x', reservePrice: 10, deadline: START + HOUR };

  it('refuses bids at or after the deadline', () => {
    const outcome = runAuction(terms, [bid('2', 50, START + HOUR), bid('3', 20, START + HOUR - 1)]);
    expect(outcome.winner).toBe('3');
    expect(outcome.rejected.map((r) => r.code)).toEqual(['late']);
    expect(outcome.rejected[0]?.detail).toMatch(/bidding closed at/);
  });

  it('refuses bids below the reserve; without a valid bid nothing is sold or paid', () => {
    const outcome = runAuction(terms, [bid('2', 9, START)]);
    expect(outcome.status).toBe('unsold');
    expect(outcome.transfer).toBeUndefined();
    expect(outcome.rejected.map((r) => r.code)).toEqual(['below-reserve']);
  });

  it('breaks a tie in favour of the earliest bid, whatever order the events come in', () => {
    const events = [bid('3', 40, START + 5), bid('2', 40, START + 9), bid('4', 40, START + 5, '0-first-id')];
    for (const order of [events, [...events].reverse()]) {
      expect(runAuction(terms, order).winner).toBe('4');
    }
  });

  it('a bid is binding: withdrawals and second bids are refused', () => {
    const events: AuctionEvent[] = [
      bid('2', 40, START + 1),
      { kind: 'withdraw', id: 'w', auction: 'painting', bidder: '2', time: START + 2 },
      bid('2', 60, START + 3),
      bid('3', 50, START + 4),
    ];
    const outcome = runAuction(terms, events);
    expect(outcome.rejected.map((r) => r.code)).toEqual(['withdrawal-refused', 'duplicate-bid']);
    expect(outcome.transfer).toEqual({ from: '3', to: '1', amount: 50 });
  });

  it('refuses the seller’s own bid, strangers when bidders are listed, and bids for another auction', () => {
    const listed = { ...terms, bidders: ['2'] };
    const outcome = runAuction(listed, [
      bid('1', 100, START),
      bid('5', 100, START),
      { ...bid('2', 100, START), auction: 'other' },
    ]);
    expect(outcome.rejected.map((r) => r.code).sort()).toEqual(['not-a-bidder', 'seller-bid', 'wrong-auction']);
    expect(outcome.status).toBe('unsold');
  });

  it('checks its terms', () => {
    expect(() => runAuction({ ...terms, reservePrice: -1 }, [])).toThrow(AuctionError);
    expect(() => runAuction({ ...terms, bidders: ['1'] }, [])).toThrow(/seller cannot be one of the bidders/);
  });
});
