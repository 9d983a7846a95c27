/**
 * Adjustment contracts: signed by the DSO, encrypted to one MGMC, opened and checked by it; every refusal names its
 * reason (tampered, for another MGMC, forged, not a validator, expired, malformed).
 */
import { describe, expect, it } from 'vitest';
import {
  type AdjustmentContract,
  AdjustmentError,
  adjustmentBody,
  adjustmentDigest,
  contractProblem,
  encryptAdjustment,
  newAdjustmentId,
  openAdjustment,
  recoverEnvelopeKey,
  type SignedAdjustment,
  signAdjustment,
  signedAdjustmentBytes,
} from '../../../agent/dso/adjustment.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { encryptTo } from '../../../agent/identity/ecies.js';
import { sealEnvelope } from '../../../agent/link/envelope.js';
import { MGMC_A, MGMC_B, signer, T0, V } from './helpers.js';

const CHAIN = 4242;
const DSO = V[0];
const INTERVAL = T0 + 12 * 3_600_000;

function contract(patch: Partial<AdjustmentContract> = {}): AdjustmentContract {
  return {
    v: 1,
    id: newAdjustmentId(),
    dso: DSO.address,
    mgmc: MGMC_A.address,
    interval: INTERVAL,
    durationMs: 900_000,
    issued: INTERVAL - 600_000,
    expiry: INTERVAL + 900_000,
    iteration: 1,
    positionW: -2_000_000,
    caps: { maxExportW: 1_109_166 },
    reason: 'round 1: bus 18: 1.0987 pu, above 1.05 pu; these caps make the interval secure',
    ...patch,
  };
}

const open = (body: unknown, patch: Partial<Parameters<typeof openAdjustment>[1]> = {}) =>
  openAdjustment(body, {
    privateKey: MGMC_A.privateKey,
    chainId: CHAIN,
    validators: [DSO.address],
    now: INTERVAL,
    ...patch,
  });

const sealed = (c: AdjustmentContract = contract(), to = MGMC_A.publicKey) =>
  adjustmentBody(encryptAdjustment(signAdjustment(signer(DSO), CHAIN, c), to));

describe('adjustment contracts', () => {
  it('round-trips: signed, encrypted to the MGMC, decrypted and verified by it', () => {
    const c = contract();
    const signed = signAdjustment(signer(DSO), CHAIN, c);
    const body = adjustmentBody(encryptAdjustment(signed, MGMC_A.publicKey));
    // Nothing of the contract is readable on the wire.
    const wire = JSON.stringify(body);
    expect(wire).not.toContain('1109166');
    expect(wire).not.toContain(c.id);
    const opened = open(body);
    if (!opened.ok) throw new Error(opened.detail);
    expect(opened.signed).toEqual(signed);
    expect(opened.digest).toBe(toHex(adjustmentDigest(CHAIN, c)));
    expect(opened.bytes).toEqual(signedAdjustmentBytes(signed));
  });

  it('refuses an altered ciphertext as undecryptable', () => {
    const body = sealed() as { encrypted: { ct: string } };
    const ct = fromHex(body.encrypted.ct);
    ct[5] = (ct[5] as number) ^ 0x01;
    const opened = open({ encrypted: { ...body.encrypted, ct: toHex(ct) } });
    expect(opened).toMatchObject({ ok: false, reason: 'undecryptable' });
    if (!opened.ok) expect(opened.detail).toMatch(/failed authentication/);
  });

  it('cannot be read by another MGMC', () => {
    const body = sealed();
    const forB = openAdjustment(body, {
      privateKey: MGMC_B.privateKey,
      chainId: CHAIN,
      validators: [DSO.address],
      now: INTERVAL,
    });
    expect(forB).toMatchObject({ ok: false, reason: 'not-for-me' });
    // Even with the recipient field rewritten to B, B's key cannot decrypt it (the key is bound into the AAD).
    const relabelled = { encrypted: { ...(body.encrypted as object), recipient: MGMC_B.address } };
    expect(
      openAdjustment(relabelled, { privateKey: MGMC_B.privateKey, chainId: CHAIN, validators: [DSO.address], now: 0 }),
    ).toMatchObject({ ok: false, reason: 'undecryptable' });
  });

  it('refuses an expired contract, naming when it expired', () => {
    const c = contract();
    const opened = open(sealed(c), { now: c.expiry });
    expect(opened).toMatchObject({ ok: false, reason: 'expired', id: c.id, interval: INTERVAL });
    if (!opened.ok) expect(opened.detail).toContain(new Date(c.expiry).toISOString());
  });

  it('refuses a contract signed by a key that is not a DSO validator', () => {
    const rogue = V[4];
    const c = contract({ dso: rogue.address });
    const body = adjustmentBody(encryptAdjustment(signAdjustment(signer(rogue), CHAIN, c), MGMC_A.publicKey));
    expect(open(body)).toMatchObject({ ok: false, reason: 'unknown-issuer', id: c.id });
  });

  it('refuses a forged contract: anyone can encrypt to the MGMC, nobody else can sign as the DSO', () => {
    // The attacker knows the MGMC's public key and changes the caps of a genuine contract, keeping its signature.
    const genuine = signAdjustment(signer(DSO), CHAIN, contract());
    const forged: SignedAdjustment = { ...genuine, contract: { ...genuine.contract, caps: { maxExportW: 0 } } };
    const body = adjustmentBody(encryptTo(MGMC_A.publicKey, signedAdjustmentBytes(forged), { sender: DSO.address }));
    const opened = open(body);
    expect(opened).toMatchObject({ ok: false, reason: 'bad-signature' });
    if (!opened.ok) expect(opened.detail).toMatch(/not by the DSO it names/);
    // A signature for another chain does not verify either.
    const otherChain = signAdjustment(signer(DSO), CHAIN + 1, contract());
    expect(
      open(adjustmentBody(encryptTo(MGMC_A.publicKey, signedAdjustmentBytes(otherChain), { sender: DSO.address }))),
    ).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('refuses a contract for another MGMC that was encrypted to this one', () => {
    const c = contract({ mgmc: MGMC_B.address });
    const signed = signAdjustment(signer(DSO), CHAIN, c);
    const body = adjustmentBody(encryptTo(MGMC_A.publicKey, signedAdjustmentBytes(signed), { sender: DSO.address }));
    expect(open(body)).toMatchObject({ ok: false, reason: 'wrong-recipient', id: c.id });
  });

  it('refuses malformed bodies and contracts with a reason, and will not sign a bad one', () => {
    expect(open({})).toMatchObject({ ok: false, reason: 'malformed' });
    expect(open({ encrypted: { scheme: 'other' } })).toMatchObject({ ok: false, reason: 'malformed' });
    expect(contractProblem({ ...contract(), caps: {} })).toMatch(/caps must set/);
    expect(contractProblem({ ...contract(), caps: { maxImportW: -1 } })).toMatch(/caps.maxImportW/);
    expect(contractProblem({ ...contract(), extra: 1 })).toMatch(/unknown field extra/);
    expect(contractProblem({ ...contract(), mgmc: MGMC_A.address.toLowerCase() })).toMatch(/EIP-55/);
    expect(() => signAdjustment(signer(DSO), CHAIN, contract({ iteration: 0 }))).toThrow(AdjustmentError);
    expect(() => signAdjustment(signer(V[1]), CHAIN, contract())).toThrow(/signed by/);
    expect(() => encryptAdjustment(signAdjustment(signer(DSO), CHAIN, contract()), MGMC_B.publicKey)).toThrow(
      /not that of the contract's MGMC/,
    );
  });

  it('recovers the public key an MGMC signed a link envelope with', () => {
    const { envelope } = sealEnvelope(signer(MGMC_A), {
      kind: 'position',
      chainId: CHAIN,
      session: 1,
      seq: 1,
      time: T0,
      body: { interval: INTERVAL, netW: -5 },
    });
    expect(toHex(recoverEnvelopeKey(envelope))).toBe(toHex(MGMC_A.publicKey));
    expect(() => recoverEnvelopeKey({ ...envelope, from: MGMC_B.address })).toThrow(AdjustmentError);
  });
});
