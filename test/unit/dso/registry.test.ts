/**
 * The DSO registry: policies, the anonym proof, conflicts between MGMCs, revocation and the authorized set, and two
 * processes on one database (a registry that publishes and one that does not, as `mgmc dso approve` does).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDsoDatabase } from '../../../agent/dso/database.js';
import { type OutgoingMessage, type Registry, RegistryError } from '../../../agent/dso/registry.js';
import type { RegistryLookup } from '../../../agent/dso/verifier.js';
import { buildRegistration } from '../../../agent/link/anonym.js';
import { sealEnvelope } from '../../../agent/link/envelope.js';
import { LinkTopics } from '../../../agent/link/topics.js';
import { signer, T0, TempDir } from './helpers.js';
import { ANONYM, LINK_CHAIN, lower, METER, MGMC, registrationEnvelope, registryOn } from './registry-helpers.js';

const topics = new LinkTopics(LINK_CHAIN);
const ALLOW = { mode: 'allow-list' as const, allow: [MGMC[0].address] };
const MANUAL = { mode: 'manual' as const, allow: [] };

let dir: TempDir;
beforeEach(() => {
  dir = new TempDir();
});
afterEach(() => dir.cleanup());

const answers = (messages: readonly OutgoingMessage[]) => messages.filter((m) => m.kind === 'authorization');
const sets = (messages: readonly OutgoingMessage[]) => messages.filter((m) => m.kind === 'authorized-set');

function only(messages: readonly OutgoingMessage[]): Record<string, unknown> {
  const list = answers(messages);
  expect(list).toHaveLength(1);
  return list[0]?.body as Record<string, unknown>;
}

describe('DSO database', () => {
  it('continues the chain migrations: schema version 2, chain and registry tables side by side', () => {
    const db = dir.track(openDsoDatabase(dir.file('dso.db')));
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    expect(tables).toEqual(
      expect.arrayContaining(['accepted_mgmc_blocks', 'dso_blocks', 'dso_mgmcs', 'dso_registrations', 'meta']),
    );
  });
});

describe('allow-list policy', () => {
  it('authorizes a listed MGMC at once: answer with its anonym, then the new authorized set (retained)', () => {
    const { registry } = registryOn(dir, ALLOW);
    const envelope = registrationEnvelope(MGMC[0], { meters: [METER[1], METER[0]] });
    const out = registry.handleRegistration(envelope);
    expect(out).toEqual([
      {
        topic: topics.dsoMessages(MGMC[0].address),
        kind: 'authorization',
        body: { mgmc: MGMC[0].address, ref: envelope.id, status: 'authorized', anonym: ANONYM[0].address },
      },
      {
        topic: topics.dsoAuthorized(),
        kind: 'authorized-set',
        body: { anonyms: [ANONYM[0].address], serial: 1 },
        retain: true,
      },
    ]);
    expect(out[0]?.topic).toBe(`mgmc/v1/${LINK_CHAIN}/dso/messages/${lower(MGMC[0])}`);
    const entry = registry.lookup(MGMC[0].address.toUpperCase().replace('0X', '0x'));
    expect(entry?.status).toBe('authorized');
    expect(entry?.meters).toEqual(new Set([lower(METER[0]), lower(METER[1])]));
    expect(entry?.anonym).toBe(ANONYM[0].address);
    expect(entry?.bus).toBe('bus-18');
    expect(entry?.ref).toBe(envelope.id);
    expect(registry.authorizedSet()).toEqual({ serial: 1, anonyms: [ANONYM[0].address] });
  });

  it('rejects an unlisted MGMC with a reason that says how the operator admits it', () => {
    const { registry } = registryOn(dir, ALLOW);
    const envelope = registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[1]] });
    const out = registry.handleRegistration(envelope);
    const body = only(out);
    expect(body).toMatchObject({ mgmc: MGMC[1].address, ref: envelope.id, status: 'rejected' });
    expect(body.anonym).toBeUndefined();
    expect(body.reason).toContain('dso.policy.allow');
    expect(body.reason).toContain(`mgmc dso approve ${MGMC[1].address}`);
    expect(sets(out)).toEqual([]);
    expect(registry.lookup(MGMC[1].address)?.status).toBe('rejected');
    // The operator can still admit it by hand.
    const change = registry.approve(MGMC[1].address, 'operator alice');
    expect(change).toMatchObject({ changed: true, status: 'authorized', ref: envelope.id });
    expect(only(change.messages)).toMatchObject({ status: 'authorized', anonym: ANONYM[1].address });
    expect(sets(change.messages)[0]?.body).toEqual({ anonyms: [ANONYM[1].address], serial: 1 });
  });

  it('re-authorizes a listed MGMC whose meters changed, with the new meters in force', () => {
    const { registry } = registryOn(dir, ALLOW);
    registry.handleRegistration(registrationEnvelope(MGMC[0], { meters: [METER[0]] }));
    const again = registrationEnvelope(MGMC[0], { meters: [METER[0], METER[2]] });
    const out = registry.handleRegistration(again);
    expect(only(out)).toMatchObject({ status: 'authorized', ref: again.id });
    expect(sets(out)).toEqual([]); // same anonym: the set did not change
    expect(registry.lookup(MGMC[0].address)?.meters).toEqual(new Set([lower(METER[0]), lower(METER[2])]));
    expect(registry.history(MGMC[0].address).map((r) => r.status)).toEqual(['superseded', 'authorized']);
  });
});

describe('manual policy', () => {
  it('keeps an unknown MGMC pending until the operator approves it', () => {
    const { registry } = registryOn(dir, MANUAL);
    const envelope = registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[1]] });
    const out = registry.handleRegistration(envelope);
    expect(only(out)).toMatchObject({ status: 'pending', ref: envelope.id });
    expect(String(only(out).reason)).toContain(`mgmc dso approve ${MGMC[1].address}`);
    expect(sets(out)).toEqual([]);
    expect(registry.lookup(MGMC[1].address)?.status).toBe('pending');
    expect(registry.authorizedSet()).toEqual({ serial: 0, anonyms: [] });

    const change = registry.approve(MGMC[1].address.toLowerCase(), 'operator alice');
    expect(change.detail).toContain('authorized');
    expect(only(change.messages)).toEqual({
      mgmc: MGMC[1].address,
      ref: envelope.id,
      status: 'authorized',
      anonym: ANONYM[1].address,
    });
    expect(sets(change.messages)[0]?.body).toEqual({ anonyms: [ANONYM[1].address], serial: 1 });
    expect(registry.lookup(MGMC[1].address)).toMatchObject({ status: 'authorized', decidedBy: 'operator alice' });
    expect(registry.approve(MGMC[1].address, 'operator bob')).toMatchObject({ changed: false, messages: [] });
  });

  it('still authorizes an allow-listed MGMC at once', () => {
    const { registry } = registryOn(dir, { mode: 'manual', allow: [MGMC[0].address.toLowerCase()] });
    expect(only(registry.handleRegistration(registrationEnvelope(MGMC[0])))).toMatchObject({ status: 'authorized' });
  });

  it('keeps the old authorization in force while changed meters wait for approval', () => {
    const { registry } = registryOn(dir, MANUAL);
    const first = registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[1]] });
    registry.handleRegistration(first);
    registry.approve(MGMC[1].address, 'operator');
    const changed = registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[1], METER[2]] });
    const out = registry.handleRegistration(changed);
    expect(only(out)).toMatchObject({ status: 'pending', ref: changed.id });
    expect(String(only(out).reason)).toContain('earlier registration stays in force');
    const entry = registry.lookup(MGMC[1].address);
    expect(entry).toMatchObject({ status: 'authorized', ref: first.id });
    expect(entry?.meters).toEqual(new Set([lower(METER[1])]));
    expect(entry?.pending).toMatchObject({ ref: changed.id, meters: [METER[1].address, METER[2].address].sort() });

    const approved = registry.approve(MGMC[1].address, 'operator');
    expect(only(approved.messages)).toMatchObject({ status: 'authorized', ref: changed.id });
    expect(sets(approved.messages)).toEqual([]);
    expect(registry.lookup(MGMC[1].address)?.meters.has(lower(METER[2]))).toBe(true);
    expect(registry.lookup(MGMC[1].address)?.pending).toBeUndefined();
  });

  it('re-authorizes at once when only the anonym changed, with a new set serial', () => {
    const { registry } = registryOn(dir, MANUAL);
    registry.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1] }));
    registry.approve(MGMC[1].address, 'operator');
    const out = registry.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[2] }));
    expect(only(out)).toMatchObject({ status: 'authorized', anonym: ANONYM[2].address });
    expect(sets(out)[0]?.body).toEqual({ anonyms: [ANONYM[2].address], serial: 2 });
  });

  it('rejects a waiting registration on the operator`s word; an authorized MGMC cannot be "rejected"', () => {
    const { registry } = registryOn(dir, MANUAL);
    const envelope = registrationEnvelope(MGMC[1], { anonym: ANONYM[1] });
    registry.handleRegistration(envelope);
    const change = registry.reject(MGMC[1].address, 'unknown site', 'operator');
    expect(only(change.messages)).toEqual({
      mgmc: MGMC[1].address,
      ref: envelope.id,
      status: 'rejected',
      reason: 'unknown site',
    });
    expect(registry.lookup(MGMC[1].address)?.status).toBe('rejected');
    expect(() => registry.reject(MGMC[1].address, 'again', 'operator')).toThrow(/no registration waiting/);
    registry.approve(MGMC[1].address, 'operator');
    expect(() => registry.reject(MGMC[1].address, 'x', 'operator')).toThrow(/mgmc dso revoke/);
    expect(() => registry.approve(MGMC[2].address, 'operator')).toThrow(RegistryError);
    expect(() => registry.approve('0x1234', 'operator')).toThrow(/40 hex digits/);
  });
});

describe('registration checks', () => {
  it('accepts a good anonym proof and refuses one by another key, for another chain, or for another MGMC', () => {
    const { registry } = registryOn(dir, ALLOW);
    const forged = registrationEnvelope(MGMC[0], { patch: { anonym: ANONYM[3].address } });
    expect(String(only(registry.handleRegistration(forged)).reason)).toMatch(/anonymSig is not a signature by/);
    const otherChain = registrationEnvelope(MGMC[0], { proofChain: LINK_CHAIN + 1 });
    expect(only(registry.handleRegistration(otherChain)).status).toBe('rejected');
    // MGMC 1's proof replayed by MGMC 0: the proof binds the anonym to MGMC 1 only.
    const stolen = registrationEnvelope(MGMC[1], { anonym: ANONYM[1] });
    const replay = registrationEnvelope(MGMC[0], {
      patch: { anonym: ANONYM[1].address, anonymSig: stolen.body.anonymSig },
    });
    expect(only(registry.handleRegistration(replay)).status).toBe('rejected');
    // None of them was stored.
    expect(registry.lookup(MGMC[0].address)).toBeUndefined();
    expect(registry.list()).toEqual([]);
    expect(only(registry.handleRegistration(registrationEnvelope(MGMC[0]))).status).toBe('authorized');
  });

  it("accepts the MGMC side's own registration (agent/link/anonym.ts: derived anonym, meters in any order)", () => {
    const { registry } = registryOn(dir, ALLOW);
    const body = buildRegistration({
      privateKey: MGMC[0].privateKey,
      chainId: LINK_CHAIN,
      meters: [METER[2].address.toLowerCase(), METER[0].address, METER[2].address],
      bus: 'bus 7',
      trade: { buy: false, sell: true },
      anonymEpoch: 2,
    });
    const { envelope } = sealEnvelope(signer(MGMC[0]), {
      kind: 'registration',
      chainId: LINK_CHAIN,
      session: 1,
      seq: 1,
      time: T0,
      body,
    });
    expect(only(registry.handleRegistration(envelope))).toMatchObject({ status: 'authorized', anonym: body.anonym });
    expect(registry.lookup(MGMC[0].address)).toMatchObject({
      trade: { buy: false, sell: true },
      bus: 'bus 7',
      meters: new Set([lower(METER[0]), lower(METER[2])]),
    });
  });

  it.each([
    ['mgmc is not the sender', { mgmc: MGMC[1].address }, /not the envelope's sender/],
    ['meters unsorted', { meters: [METER[1].address, METER[0].address].sort().reverse() }, /sorted/],
    ['meters repeated', { meters: [METER[0].address, METER[0].address] }, /sorted by lower-case hex and distinct/],
    ['meter lower-case', { meters: [METER[0].address.toLowerCase()] }, /EIP-55/],
    ['meter is the MGMC', { meters: [MGMC[0].address] }, /own key/],
    ['anonym is the MGMC', { anonym: MGMC[0].address }, /separate market key/],
    ['empty bus', { bus: '' }, /bus/],
    ['trade flags', { trade: { buy: true } }, /trade/],
    ['unknown field', { extra: 1 }, /unknown field extra/],
    ['missing field', { bus: undefined }, /lacks field bus/],
    ['bad signature text', { anonymSig: '0x12' }, /anonymSig must be/],
  ])('refuses a registration with %s, naming the field', (_name, patch, reason) => {
    const { registry } = registryOn(dir, ALLOW);
    const envelope = registrationEnvelope(MGMC[0], { patch });
    const body = only(registry.handleRegistration(envelope));
    expect(body).toMatchObject({ mgmc: MGMC[0].address, ref: envelope.id, status: 'rejected' });
    expect(body.reason).toMatch(reason);
  });

  it('rejects an anonym that another MGMC registered, without naming that MGMC', () => {
    const { registry } = registryOn(dir, { mode: 'manual', allow: [MGMC[0].address, MGMC[1].address] });
    registry.handleRegistration(registrationEnvelope(MGMC[0], { anonym: ANONYM[0], meters: [METER[0]] }));
    const out = registry.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[0], meters: [METER[1]] }));
    const body = only(out);
    expect(body.status).toBe('rejected');
    expect(body.reason).toMatch(/anonym .* is registered by another MGMC/);
    expect(String(body.reason)).not.toContain(MGMC[0].address);
    expect(registry.authorizedSet().anonyms).toEqual([ANONYM[0].address]);
    expect(() => registry.approve(MGMC[1].address, 'operator')).toThrow(/registered by another MGMC/);
  });

  it('rejects a meter that another MGMC has registered', () => {
    const { registry } = registryOn(dir, { mode: 'allow-list', allow: [MGMC[0].address, MGMC[1].address] });
    registry.handleRegistration(registrationEnvelope(MGMC[0], { meters: [METER[0], METER[1]] }));
    const out = registry.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[1]] }));
    expect(only(out).reason).toMatch(new RegExp(`meter ${METER[1].address} is registered by another MGMC`));
    expect(registry.lookup(MGMC[1].address)?.status).toBe('rejected');
  });

  it('lets no unapproved registration squat on a meter: approval checks again', () => {
    const { registry } = registryOn(dir, { mode: 'manual', allow: [MGMC[1].address] });
    registry.handleRegistration(registrationEnvelope(MGMC[0], { anonym: ANONYM[0], meters: [METER[1]] }));
    expect(registry.lookup(MGMC[0].address)?.status).toBe('pending');
    const out = registry.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[1]] }));
    expect(only(out).status).toBe('authorized');
    expect(() => registry.approve(MGMC[0].address, 'operator')).toThrow(
      new RegExp(`cannot approve ${MGMC[0].address}: meter ${METER[1].address} is registered by another MGMC`),
    );
  });

  it('answers a repeated envelope with the current status and stores it once', () => {
    const { registry } = registryOn(dir, MANUAL);
    const envelope = registrationEnvelope(MGMC[1], { anonym: ANONYM[1] });
    expect(only(registry.handleRegistration(envelope)).status).toBe('pending');
    expect(only(registry.handleRegistration(envelope)).status).toBe('pending');
    registry.approve(MGMC[1].address, 'operator');
    const again = registry.handleRegistration(envelope);
    expect(again).toEqual([
      {
        topic: topics.dsoMessages(MGMC[1].address),
        kind: 'authorization',
        body: { mgmc: MGMC[1].address, ref: envelope.id, status: 'authorized', anonym: ANONYM[1].address },
      },
    ]);
    expect(registry.history(MGMC[1].address)).toHaveLength(1);
    expect(registry.authorizedSet().serial).toBe(1);
    // The same id with other content is refused and changes nothing.
    const reused = registrationEnvelope(MGMC[1], { anonym: ANONYM[1], bus: 'bus-2', id: envelope.id });
    expect(only(registry.handleRegistration(reused)).reason).toMatch(/already used for another registration/);
    expect(registry.lookup(MGMC[1].address)?.bus).toBe('bus-18');
  });

  it('answers an outdated registration as rejected (superseded) so the MGMC stops sending it', () => {
    const { registry } = registryOn(dir, MANUAL);
    const old = registrationEnvelope(MGMC[1], { anonym: ANONYM[1] });
    registry.handleRegistration(old);
    registry.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1], bus: 'bus-3' }));
    const body = only(registry.handleRegistration(old));
    expect(body).toMatchObject({ status: 'rejected', ref: old.id });
    expect(body.reason).toMatch(/superseded/);
  });
});

describe('revocation', () => {
  function authorizedPair(registry: Registry): void {
    registry.handleRegistration(registrationEnvelope(MGMC[0], { anonym: ANONYM[0], meters: [METER[0]] }));
    registry.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1], meters: [METER[1]] }));
  }

  it('removes the MGMC from the authorized set with a new serial and tells it why', () => {
    const { registry } = registryOn(dir, { mode: 'allow-list', allow: [MGMC[0].address, MGMC[1].address] });
    authorizedPair(registry);
    const sorted = [ANONYM[0].address, ANONYM[1].address].sort((a, b) =>
      a.toLowerCase().localeCompare(b.toLowerCase()),
    );
    expect(registry.authorizedSet()).toEqual({ serial: 2, anonyms: sorted });
    const ref = registry.lookup(MGMC[0].address)?.ref;
    const change = registry.revoke(MGMC[0].address, 'meter tampering', 'operator alice');
    expect(change.messages).toEqual([
      {
        topic: topics.dsoMessages(MGMC[0].address),
        kind: 'authorization',
        body: { mgmc: MGMC[0].address, ref, status: 'revoked', reason: 'meter tampering' },
      },
      {
        topic: topics.dsoAuthorized(),
        kind: 'authorized-set',
        body: { anonyms: [ANONYM[1].address], serial: 3 },
        retain: true,
      },
    ]);
    expect(registry.lookup(MGMC[0].address)).toMatchObject({ status: 'revoked', reason: 'meter tampering' });
    expect(registry.revoke(MGMC[0].address, 'again', 'operator')).toMatchObject({ changed: false, messages: [] });
    expect(() => registry.revoke(MGMC[1].address, '  ', 'operator')).toThrow(/give a reason/);
  });

  it('stays in force against new registrations, even from an allow-listed MGMC, until approved again', () => {
    const { registry } = registryOn(dir, ALLOW);
    registry.handleRegistration(registrationEnvelope(MGMC[0]));
    registry.revoke(MGMC[0].address, 'contract ended', 'operator');
    const retry = registrationEnvelope(MGMC[0], { anonym: ANONYM[2] });
    const body = only(registry.handleRegistration(retry));
    expect(body.status).toBe('revoked');
    expect(body.reason).toMatch(/revoked \(contract ended\).*mgmc dso approve/);
    expect(registry.authorizedSet()).toEqual({ serial: 2, anonyms: [] });

    const change = registry.approve(MGMC[0].address, 'operator');
    expect(only(change.messages)).toMatchObject({ status: 'authorized', ref: retry.id, anonym: ANONYM[2].address });
    expect(sets(change.messages)[0]?.body).toEqual({ anonyms: [ANONYM[2].address], serial: 3 });
  });

  it('can block an address before it ever registers', () => {
    const { registry } = registryOn(dir, ALLOW);
    expect(registry.revoke(MGMC[0].address, 'stolen gateway', 'operator').changed).toBe(true);
    expect(registry.lookup(MGMC[0].address)).toMatchObject({ status: 'revoked', ref: undefined });
    expect(only(registry.handleRegistration(registrationEnvelope(MGMC[0]))).status).toBe('revoked');
  });
});

describe('lookup', () => {
  it('is what the block verifier reads: status and lower-case meters, by lower-case address', () => {
    const { registry } = registryOn(dir, ALLOW);
    const lookup: RegistryLookup = registry;
    expect(lookup.lookup(lower(MGMC[0]))).toBeUndefined();
    registry.handleRegistration(registrationEnvelope(MGMC[0], { meters: [METER[3]] }));
    const entry = lookup.lookup(lower(MGMC[0]));
    expect(entry?.status).toBe('authorized');
    expect(entry?.meters.has(lower(METER[3]))).toBe(true);
    expect(entry?.meters.has(METER[3].address)).toBe(METER[3].address === lower(METER[3]));
  });
});

describe('two processes on one database', () => {
  it('an approval made by another process reaches the running DSO through refresh()', () => {
    const dso = registryOn(dir, MANUAL).registry;
    const cli = registryOn(dir, MANUAL, { publish: false }).registry;
    const envelope = registrationEnvelope(MGMC[1], { anonym: ANONYM[1] });
    dso.handleRegistration(envelope);
    expect(dso.refresh()).toEqual([]);

    const change = cli.approve(MGMC[1].address, 'operator alice');
    expect(change).toMatchObject({ changed: true, status: 'authorized', messages: [] });
    expect(dso.lookup(MGMC[1].address)?.status).toBe('pending'); // not yet seen

    const out = dso.refresh();
    expect(out).toEqual([
      {
        topic: topics.dsoMessages(MGMC[1].address),
        kind: 'authorization',
        body: { mgmc: MGMC[1].address, ref: envelope.id, status: 'authorized', anonym: ANONYM[1].address },
      },
      {
        topic: topics.dsoAuthorized(),
        kind: 'authorized-set',
        body: { anonyms: [ANONYM[1].address], serial: 1 },
        retain: true,
      },
    ]);
    expect(dso.lookup(MGMC[1].address)?.status).toBe('authorized');
    expect(dso.authorizedSet()).toEqual({ serial: 1, anonyms: [ANONYM[1].address] });
    expect(dso.refresh()).toEqual([]);

    cli.revoke(MGMC[1].address, 'audit', 'operator alice');
    const revoked = dso.refresh();
    expect(answers(revoked).map((m) => m.body.status)).toEqual(['revoked']);
    expect(sets(revoked)[0]?.body).toEqual({ anonyms: [], serial: 2 });
    expect(dso.lookup(MGMC[1].address)?.status).toBe('revoked');
  });

  it('a DSO that starts after the change publishes it on its first refresh()', () => {
    const first = registryOn(dir, MANUAL).registry;
    first.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1] }));
    registryOn(dir, MANUAL, { publish: false }).registry.approve(MGMC[1].address, 'operator');
    const restarted = registryOn(dir, MANUAL).registry;
    expect(restarted.lookup(MGMC[1].address)?.status).toBe('authorized');
    expect(restarted.refresh().map((m) => m.kind)).toEqual(['authorization', 'authorized-set']);
    expect(restarted.refresh()).toEqual([]);
    // The other publisher finds nothing left to send, but its cache follows.
    expect(first.refresh()).toEqual([]);
    expect(first.lookup(MGMC[1].address)?.status).toBe('authorized');
  });

  it('a registration handled by one publisher also hands out what waited for another', () => {
    const a = registryOn(dir, MANUAL).registry;
    const cli = registryOn(dir, MANUAL, { publish: false }).registry;
    a.handleRegistration(registrationEnvelope(MGMC[1], { anonym: ANONYM[1] }));
    cli.approve(MGMC[1].address, 'operator');
    const out = a.handleRegistration(registrationEnvelope(MGMC[2], { anonym: ANONYM[2], meters: [METER[2]] }));
    expect(out.map((m) => [m.kind, m.body.mgmc ?? m.body.serial, m.body.status])).toEqual([
      ['authorization', MGMC[1].address, 'authorized'],
      ['authorization', MGMC[2].address, 'pending'],
      ['authorized-set', 1, undefined],
    ]);
    expect(a.refresh()).toEqual([]);
    expect(a.lookup(MGMC[1].address)?.status).toBe('authorized');
  });
});
