import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { recoverAddress } from '../../../agent/identity/signing.js';
import {
  AnonymError,
  anonymDigest,
  buildRegistration,
  deriveAnonymKey,
  registrationKey,
  signAnonym,
  verifyAnonymSig,
} from '../../../agent/link/anonym.js';

interface ValidVector {
  mgmcPrivateKey: string;
  mgmc: string;
  chainId: number;
  epoch: number;
  anonymPrivateKey: string;
  anonym: string;
  signedBytes: string;
  digest: string;
  anonymSig: string;
}
interface InvalidVector {
  why: string;
  chainId: number;
  anonym: string;
  mgmc: string;
  anonymSig: string;
}

const vectors = JSON.parse(readFileSync(new URL('../../vectors/anonym.json', import.meta.url), 'utf8')) as {
  valid: ValidVector[];
  invalid: InvalidVector[];
};

const KEY = keyPairFromPrivateKey(fromHex(`0x${'51'.repeat(32)}`));
const METER_A = keyPairFromPrivateKey(fromHex(`0x${'61'.repeat(32)}`)).address;
const METER_B = keyPairFromPrivateKey(fromHex(`0x${'62'.repeat(32)}`)).address;

describe('anonym vectors (test/vectors/anonym.json)', () => {
  it.each(vectors.valid.map((v) => [`chain ${v.chainId} epoch ${v.epoch}`, v] as const))(
    'derives the key, the digest and the signature of %s',
    (_name, v) => {
      const mgmc = keyPairFromPrivateKey(fromHex(v.mgmcPrivateKey));
      expect(mgmc.address).toBe(v.mgmc);
      // The derivation rule, recomputed here with node:crypto, is the one the vectors were made with.
      const data = Buffer.alloc(12);
      data.writeBigUInt64BE(BigInt(v.chainId), 0);
      data.writeUInt32BE(v.epoch, 8);
      const hmac = createHmac('sha256', Buffer.from(mgmc.privateKey))
        .update(Buffer.concat([Buffer.from('mgmc/anonym/v1'), data]))
        .digest();
      expect(toHex(hmac)).toBe(v.anonymPrivateKey);
      const anonym = deriveAnonymKey(mgmc.privateKey, v.chainId, v.epoch);
      expect(toHex(anonym.privateKey)).toBe(v.anonymPrivateKey);
      expect(anonym.address).toBe(v.anonym);
      expect(toHex(anonymDigest(v.chainId, v.anonym, v.mgmc))).toBe(v.digest);
      expect(signAnonym(anonym, v.mgmc, v.chainId)).toBe(v.anonymSig);
      expect(recoverAddress(fromHex(v.digest), fromHex(v.anonymSig))).toBe(v.anonym);
      expect(verifyAnonymSig(v, v.chainId)).toBe(true);
    },
  );

  it.each(vectors.invalid.map((v) => [v.why, v] as const))('refuses an anonymSig %s', (_why, v) => {
    expect(verifyAnonymSig(v, v.chainId)).toBe(false);
  });
});

describe('deriveAnonymKey', () => {
  it('is deterministic, and differs per epoch and per chain', () => {
    const a = deriveAnonymKey(KEY.privateKey, 1337, 0);
    expect(deriveAnonymKey(KEY.privateKey, 1337, 0).address).toBe(a.address);
    expect(deriveAnonymKey(KEY.privateKey, 1337, 1).address).not.toBe(a.address);
    expect(deriveAnonymKey(KEY.privateKey, 1338, 0).address).not.toBe(a.address);
    expect(a.address).not.toBe(KEY.address);
  });

  it('refuses a bad key, chain id or epoch with the reason', () => {
    expect(() => deriveAnonymKey(new Uint8Array(31), 1, 0)).toThrow(/32 bytes/);
    expect(() => deriveAnonymKey(KEY.privateKey, -1, 0)).toThrow(AnonymError);
    expect(() => deriveAnonymKey(KEY.privateKey, 1, 2 ** 32)).toThrow(/anonymEpoch/);
    expect(() => deriveAnonymKey(KEY.privateKey, 1, 1.5)).toThrow(/anonymEpoch/);
  });
});

describe('verifyAnonymSig', () => {
  it('never throws on junk', () => {
    for (const input of [
      { anonym: 1, mgmc: 2, anonymSig: 3 },
      { anonym: KEY.address, mgmc: KEY.address, anonymSig: '0x00' },
      { anonym: 'x', mgmc: KEY.address, anonymSig: `0x${'00'.repeat(65)}` },
      { anonym: KEY.address, mgmc: KEY.address, anonymSig: `0x${'ff'.repeat(65)}` },
    ]) {
      expect(verifyAnonymSig(input, 1)).toBe(false);
    }
  });
});

describe('buildRegistration', () => {
  const input = {
    privateKey: KEY.privateKey,
    chainId: 1337,
    meters: [METER_B.toLowerCase(), METER_A, METER_B],
    bus: 'bus-18',
    trade: { buy: true, sell: false },
    anonymEpoch: 0,
  };

  it('binds the derived anonym to the MGMC and lists the meters sorted, distinct and checksummed', () => {
    const body = buildRegistration(input);
    expect(body.mgmc).toBe(KEY.address);
    expect(body.anonym).toBe(deriveAnonymKey(KEY.privateKey, 1337, 0).address);
    expect(verifyAnonymSig(body, 1337)).toBe(true);
    expect(verifyAnonymSig(body, 1338)).toBe(false);
    expect(body.meters).toEqual([METER_A, METER_B].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)));
    expect(body).toMatchObject({ bus: 'bus-18', trade: { buy: true, sell: false } });
  });

  it('gives the same key for the same registration and another for any change', () => {
    const same = registrationKey(buildRegistration({ ...input, meters: [METER_A, METER_B] }));
    expect(registrationKey(buildRegistration(input))).toBe(same);
    expect(registrationKey(buildRegistration({ ...input, meters: [METER_A] }))).not.toBe(same);
    expect(registrationKey(buildRegistration({ ...input, bus: 'bus-19' }))).not.toBe(same);
    expect(registrationKey(buildRegistration({ ...input, anonymEpoch: 1 }))).not.toBe(same);
    expect(registrationKey(buildRegistration({ ...input, trade: { buy: true, sell: true } }))).not.toBe(same);
  });

  it('refuses a missing bus, a bad meter address and bad trade flags', () => {
    expect(() => buildRegistration({ ...input, bus: ' ' })).toThrow(/feeder bus/);
    expect(() => buildRegistration({ ...input, meters: ['0x123'] })).toThrow(/meter 0/);
    expect(() => buildRegistration({ ...input, trade: { buy: 1, sell: true } as never })).toThrow(/trade flags/);
    expect(() => buildRegistration({ ...input, bus: ' bus-18' })).toThrow(/printable ASCII/);
    expect(() => buildRegistration({ ...input, bus: 'b'.repeat(65) })).toThrow(/printable ASCII/);
    expect(() => buildRegistration({ ...input, meters: [KEY.address] })).toThrow(/own key/);
  });
});
