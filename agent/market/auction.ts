/**
 * The papers' auction contract template: one seller, the highest bid wins, a reserve price, a deadline, and the
 * payment transferred from the winner to the seller (docs/market.md, "Auction").
 *
 * The papers' rules, and how each is read here:
 * - "the auction will remain open until all bids have been received, or until the bid-collection time runs out": it
 *   closes at the deadline, or earlier at the moment every listed bidder has bid (when the terms list the bidders).
 *   A bid at or after the close is `late`.
 * - "the highest bidder wins" and "funds are transferred from the winner" to the seller: first price; the winner pays
 *   its own bid. Equal highest bids: the earliest wins (then the smaller bid id, so the outcome never depends on the
 *   order events are read in).
 * - The starting price is the reserve: a bid below it is refused and an auction without a valid bid does not sell.
 * - "Once the smart contract is executed, it cannot be stopped": a bid is binding. A withdrawal is refused, and so is
 *   a second bid by the same bidder (each participant submits one bid, signed with its key).
 *
 * runAuction is a pure function of the terms and the events: every node that has the same signed bids computes the
 * same winner and the same transfer.
 */
import { fromHex, toHex } from '../identity/bytes.js';
import { parseAddress } from '../identity/keys.js';
import { signingDigest, verifyDigest } from '../identity/signing.js';
import type { Signer } from '../ledger/block.js';
import { canonicalBytes } from '../ledger/canonical.js';

export const AUCTION_BID_TAG = 'mgmc/auction-bid/v1';

export interface AuctionTerms {
  readonly id: string;
  /** Who sells (an address when bids are signed, any name otherwise). */
  readonly seller: string;
  /** What is sold, for people. */
  readonly item: string;
  /** The lowest acceptable bid (integer money units, e.g. micro-units of currency). */
  readonly reservePrice: number;
  /** Bids are accepted before this time (ms since the epoch). */
  readonly deadline: number;
  /** When set, only these may bid, and the auction closes as soon as all of them have. */
  readonly bidders?: readonly string[];
}

export interface AuctionBid {
  readonly kind: 'bid';
  /** Names the bid (ties between equal bids at the same time go to the smaller id). */
  readonly id: string;
  readonly auction: string;
  readonly bidder: string;
  readonly amount: number;
  /** When it was submitted (ms). */
  readonly time: number;
  /** 0x-hex signature of the bidder's key (signAuctionBid), when the auction requires signatures. */
  readonly sig?: string;
}

export interface AuctionWithdrawal {
  readonly kind: 'withdraw';
  readonly id: string;
  readonly auction: string;
  readonly bidder: string;
  readonly time: number;
}

export type AuctionEvent = AuctionBid | AuctionWithdrawal;

export type AuctionRejectionCode =
  | 'malformed'
  | 'wrong-auction'
  | 'unsigned'
  | 'forged'
  | 'seller-bid'
  | 'not-a-bidder'
  | 'late'
  | 'below-reserve'
  | 'duplicate-bid'
  | 'withdrawal-refused';

export interface AuctionRejection {
  readonly event: AuctionEvent;
  readonly code: AuctionRejectionCode;
  readonly detail: string;
}

export interface AuctionOutcome {
  readonly auction: string;
  readonly status: 'sold' | 'unsold';
  /** When bidding closed: the deadline, or the moment the last listed bidder bid. */
  readonly closedAt: number;
  readonly winner?: string;
  readonly price?: number;
  /** The payment the contract executes: from the winner to the seller. */
  readonly transfer?: { readonly from: string; readonly to: string; readonly amount: number };
  /** Valid bids, in the order they were taken. */
  readonly accepted: readonly AuctionBid[];
  readonly rejected: readonly AuctionRejection[];
}

export interface AuctionOptions {
  /** Require every bid to be signed by its bidder (an address) on this chain. */
  readonly requireSignaturesOn?: number;
}

export class AuctionError extends Error {
  override name = 'AuctionError';
}

/** The digest a bidder signs: docs/protocol.md section 2, tag mgmc/auction-bid/v1, over {amount, auction, bidder, id, time}. */
export function auctionBidDigest(bid: Omit<AuctionBid, 'sig' | 'kind'>, chainId: number): Uint8Array {
  return signingDigest(
    AUCTION_BID_TAG,
    chainId,
    canonicalBytes({ amount: bid.amount, auction: bid.auction, bidder: bid.bidder, id: bid.id, time: bid.time }),
  );
}

/** Signs a bid with the bidder's key (its address must be the bidder). */
export function signAuctionBid(bid: Omit<AuctionBid, 'sig'>, signer: Signer, chainId: number): AuctionBid {
  if (signer.address !== bid.bidder)
    throw new AuctionError(`bid of ${bid.bidder} cannot be signed by ${signer.address}`);
  return { ...bid, sig: toHex(signer.signDigest(auctionBidDigest(bid, chainId))) };
}

/** Checks the terms; throws an AuctionError saying what is wrong. */
export function checkTerms(terms: AuctionTerms): void {
  if (typeof terms.id !== 'string' || terms.id === '') throw new AuctionError('auction id must be a non-empty string');
  if (typeof terms.seller !== 'string' || terms.seller === '') throw new AuctionError('auction seller must be named');
  if (!Number.isSafeInteger(terms.reservePrice) || terms.reservePrice < 0) {
    throw new AuctionError(`reserve price ${terms.reservePrice} must be an integer >= 0`);
  }
  if (!Number.isSafeInteger(terms.deadline) || terms.deadline < 0) {
    throw new AuctionError(`deadline ${terms.deadline} must be ms since the epoch`);
  }
  if (terms.bidders?.includes(terms.seller)) throw new AuctionError('the seller cannot be one of the bidders');
}

/**
 * Runs the auction over `events` (any order: they are taken by time, then id) and returns the winner, the price and
 * the transfer, with every refused event and why.
 */
export function runAuction(
  terms: AuctionTerms,
  events: readonly AuctionEvent[],
  options: AuctionOptions = {},
): AuctionOutcome {
  checkTerms(terms);
  const sorted = [...events].sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const accepted: AuctionBid[] = [];
  const rejected: AuctionRejection[] = [];
  const reject = (event: AuctionEvent, code: AuctionRejectionCode, detail: string) =>
    rejected.push({ event, code, detail: `${event.kind} ${event.id} by ${event.bidder}: ${detail}` });
  const listed = terms.bidders ? new Set(terms.bidders) : undefined;
  const bidOf = new Map<string, AuctionBid>();
  let closedAt = terms.deadline;
  for (const event of sorted) {
    if (event.auction !== terms.id) {
      reject(event, 'wrong-auction', `for auction ${event.auction}, not ${terms.id}`);
      continue;
    }
    if (!Number.isSafeInteger(event.time) || typeof event.bidder !== 'string' || typeof event.id !== 'string') {
      reject(event, 'malformed', 'id, bidder and time (integer ms) are required');
      continue;
    }
    if (event.time >= closedAt) {
      reject(event, 'late', `at ${event.time}, bidding closed at ${closedAt}`);
      continue;
    }
    if (event.kind === 'withdraw') {
      reject(event, 'withdrawal-refused', 'a submitted bid is binding: the contract runs to completion once triggered');
      continue;
    }
    if (event.kind !== 'bid' || !Number.isSafeInteger(event.amount) || event.amount < 0) {
      reject(event, 'malformed', 'a bid needs an integer amount >= 0');
      continue;
    }
    if (options.requireSignaturesOn !== undefined) {
      const problem = signatureProblem(event, options.requireSignaturesOn);
      if (problem !== undefined) {
        reject(event, problem.code, problem.detail);
        continue;
      }
    }
    if (event.bidder === terms.seller) {
      reject(event, 'seller-bid', 'the seller cannot bid on its own item');
      continue;
    }
    if (listed !== undefined && !listed.has(event.bidder)) {
      reject(event, 'not-a-bidder', 'not one of the auction’s bidders');
      continue;
    }
    if (event.amount < terms.reservePrice) {
      reject(event, 'below-reserve', `${event.amount} is below the reserve price ${terms.reservePrice}`);
      continue;
    }
    if (bidOf.has(event.bidder)) {
      reject(event, 'duplicate-bid', `already bid ${bidOf.get(event.bidder)?.amount}; a bid is binding and final`);
      continue;
    }
    bidOf.set(event.bidder, event);
    accepted.push(event);
    if (listed !== undefined && bidOf.size === listed.size) closedAt = event.time + 1;
  }
  let best: AuctionBid | undefined;
  for (const bid of accepted) if (best === undefined || bid.amount > best.amount) best = bid;
  if (best === undefined) return { auction: terms.id, status: 'unsold', closedAt, accepted, rejected };
  return {
    auction: terms.id,
    status: 'sold',
    closedAt,
    winner: best.bidder,
    price: best.amount,
    transfer: { from: best.bidder, to: terms.seller, amount: best.amount },
    accepted,
    rejected,
  };
}

function signatureProblem(
  bid: AuctionBid,
  chainId: number,
): { code: AuctionRejectionCode; detail: string } | undefined {
  if (bid.sig === undefined) return { code: 'unsigned', detail: 'the bid carries no signature' };
  let bidder: string;
  try {
    bidder = parseAddress(bid.bidder, 'bidder');
  } catch (err) {
    return { code: 'malformed', detail: (err as Error).message };
  }
  try {
    if (verifyDigest(auctionBidDigest(bid, chainId), fromHex(bid.sig, 'sig', 65), bidder)) return undefined;
  } catch {
    // a malformed signature is as good as a forged one
  }
  return { code: 'forged', detail: 'the signature is not the bidder’s over this bid' };
}
