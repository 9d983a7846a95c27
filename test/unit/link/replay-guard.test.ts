import { describe, expect, it } from 'vitest';
import { ReplayGuard } from '../../../agent/link/envelope.js';

const A = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
const B = '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359';
let n = 0;
const env = (from: string, session: number, seq: number, id = `0x${(++n).toString(16).padStart(32, '0')}`) => ({
  from,
  session,
  seq,
  id,
});

describe('ReplayGuard', () => {
  it('admits a sender in order and drops a redelivered id (QoS 1 may deliver twice)', () => {
    const guard = new ReplayGuard();
    const first = env(A, 1, 1);
    expect(guard.admit(first)).toEqual({ fresh: true, order: 'first' });
    expect(guard.admit(env(A, 1, 2))).toEqual({ fresh: true, order: 'next' });
    expect(guard.admit(first)).toEqual({ fresh: false, order: 'duplicate' });
    expect(guard.admit({ ...first, from: A.toLowerCase() })).toEqual({ fresh: false, order: 'duplicate' });
    expect(guard.position(A)).toEqual({ session: 1, seq: 2 });
  });

  it('tells a gap (missing seqs in the session) from a restart (new session)', () => {
    const guard = new ReplayGuard();
    guard.admit(env(A, 4, 1));
    expect(guard.admit(env(A, 4, 5))).toEqual({ fresh: true, order: 'gap', missing: 3 });
    expect(guard.admit(env(A, 5, 1))).toEqual({ fresh: true, order: 'restart', previousSession: 4 });
    expect(guard.position(A)).toEqual({ session: 5, seq: 1 });
  });

  it('calls an unseen id below the watermark late (an outbox replay, or an id it forgot), and still admits it', () => {
    const guard = new ReplayGuard();
    guard.admit(env(A, 2, 10));
    expect(guard.admit(env(A, 2, 4))).toEqual({ fresh: true, order: 'late' });
    expect(guard.admit(env(A, 1, 99))).toEqual({ fresh: true, order: 'late' });
    expect(guard.position(A)).toEqual({ session: 2, seq: 10 });
  });

  it('keeps senders apart', () => {
    const guard = new ReplayGuard();
    const shared = '0x000000000000000000000000000000aa';
    guard.admit(env(A, 1, 1, shared));
    expect(guard.admit(env(B, 1, 1, shared))).toEqual({ fresh: true, order: 'first' });
  });

  it('treats seq 0 (a last will) as outside the sequence, deduped by id', () => {
    const guard = new ReplayGuard();
    const will = env(A, 3, 0);
    expect(guard.admit(will)).toEqual({ fresh: true, order: 'unsequenced' });
    expect(guard.admit(will)).toEqual({ fresh: false, order: 'duplicate' });
    expect(guard.position(A)).toBeUndefined();
    expect(guard.admit(env(A, 3, 1))).toEqual({ fresh: true, order: 'first' });
    expect(guard.admit(env(A, 3, 0))).toEqual({ fresh: true, order: 'unsequenced' });
    expect(guard.position(A)).toEqual({ session: 3, seq: 1 });
  });

  it('check() does not record; record() does, so a failed handler can see the message again', () => {
    const guard = new ReplayGuard();
    const e = env(A, 1, 1);
    expect(guard.check(e).fresh).toBe(true);
    expect(guard.check(e).fresh).toBe(true);
    guard.record(e);
    expect(guard.check(e)).toEqual({ fresh: false, order: 'duplicate' });
  });

  it('bounds memory: forgets the oldest ids of a sender and the least recently heard sender', () => {
    const guard = new ReplayGuard({ idsPerSender: 3, maxSenders: 2 });
    const ids = [1, 2, 3, 4].map((seq) => env(A, 1, seq));
    for (const e of ids) guard.admit(e);
    expect(guard.check(ids[0]!)).toEqual({ fresh: true, order: 'late' }); // forgotten: below the watermark
    expect(guard.check(ids[3]!)).toEqual({ fresh: false, order: 'duplicate' });
    const C = '0x0000000000000000000000000000000000000001';
    guard.admit(env(B, 1, 1));
    guard.admit(env(A, 1, 5)); // A heard again: B is now the least recent
    guard.admit(env(C, 1, 1));
    expect(guard.position(B)).toBeUndefined();
    expect(guard.position(A)).toEqual({ session: 1, seq: 5 });
    expect(() => new ReplayGuard({ idsPerSender: 0 })).toThrow(RangeError);
  });
});
