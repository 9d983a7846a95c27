import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../../agent/identity/bytes.js';
import {
  addressFromPrivateKey,
  addressFromPublicKey as agentAddressFromPublicKey,
} from '../../../agent/identity/keys.js';
import { signDigest } from '../../../agent/identity/signing.js';
import { meterBatchDigest as agentMeterBatchDigest, checkMeterBatch } from '../../../agent/ledger/meter-batch.js';
import {
  addressFromBytes,
  addressToBytes,
  BatchFlag,
  batchPayloadLength,
  batchReadings,
  CHANNELS,
  channelDef,
  decodeReadingBatch,
  encodeReadingBatch,
  METER_BATCH_FORMAT,
  meterAddressFromPrivateKey,
  meterBatchDigest,
  meterBatchPreimage,
  meterBatchRecordBody,
  type ReadingBatch,
  recoverMeterAddress,
  signReadingBatch,
  verifyReadingBatch,
} from '../../../firmware-bridge/batch.js';

const key = (n: number) => {
  const k = new Uint8Array(32);
  k[31] = n;
  return k;
};
const KEY1 = key(1);
const KEY2 = key(2);
const METER1 = '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf';
const N = secp256k1.Point.Fn.ORDER;

const BATCH: ReadingBatch = {
  meter: METER1,
  counter: 42,
  flags: 0,
  startMs: 1_717_200_000_000,
  intervalMs: 60_000,
  channels: ['importWh', 'exportWh', 'powerW', 'voltageMv', 'currentMa', 'frequencyMhz', 'reactivePowerVar'],
  samples: [
    [12_345_678, 5_000_000_000, -1500, 230_125, -6_520, 50_012, 120],
    [12_345_678, 5_000_000_025, 1500, 229_980, 6_510, 49_998, -80],
  ],
};

describe('reading batch payload (mgmc-meter/v1)', () => {
  it('round-trips a batch with every channel type, negative s32 values and u64 values above 2^32', () => {
    const payload = encodeReadingBatch(BATCH);
    expect(payload.length).toBe(batchPayloadLength(BATCH.channels, 2));
    expect(payload.length).toBe(45 + 7 + 2 * (8 + 8 + 4 + 4 + 4 + 4 + 4));
    expect(decodeReadingBatch(payload)).toEqual(BATCH);
  });

  it('puts every field at the documented offset', () => {
    const p = encodeReadingBatch({
      ...BATCH,
      flags: BatchFlag.CLOCK_UNSYNCED | BatchFlag.TAMPER,
      channels: ['powerW'],
      samples: [[-2]],
    });
    const view = Buffer.from(p);
    expect(view.subarray(0, 4).toString('ascii')).toBe('MGMB');
    expect(p[4]).toBe(1);
    expect(p[5]).toBe(0b101);
    expect(toHex(p.subarray(6, 26))).toBe(METER1.toLowerCase());
    expect(view.readUInt32BE(26)).toBe(42);
    expect(view.readBigUInt64BE(30)).toBe(1_717_200_000_000n);
    expect(view.readUInt32BE(38)).toBe(60_000);
    expect(p[42]).toBe(1);
    expect(view.readUInt16BE(43)).toBe(1);
    expect(p[45]).toBe(3);
    expect(view.readInt32BE(46)).toBe(-2);
    expect(p.length).toBe(50);
  });

  it('refuses to encode what it could not decode, naming the field', () => {
    expect(() => encodeReadingBatch({ ...BATCH, counter: 0 })).toThrow(
      /batch counter must be an integer 1..4294967295, got 0/,
    );
    expect(() => encodeReadingBatch({ ...BATCH, flags: 0x80 })).toThrow(/reserved bits/);
    expect(() => encodeReadingBatch({ ...BATCH, intervalMs: 0 })).toThrow(/sample interval/);
    expect(() => encodeReadingBatch({ ...BATCH, channels: [], samples: [[]] })).toThrow(/1 to 16 channels, got 0/);
    expect(() => encodeReadingBatch({ ...BATCH, channels: ['powerW', 'powerW'], samples: [[1, 2]] })).toThrow(
      /repeats/,
    );
    expect(() => encodeReadingBatch({ ...BATCH, samples: [] })).toThrow(/1 to 65535 samples, got 0/);
    expect(() => encodeReadingBatch({ ...BATCH, samples: [[1, 2]] })).toThrow(/sample 0 has 2 values for 7 channels/);
    expect(() => encodeReadingBatch({ ...BATCH, channels: ['powerW'], samples: [[2 ** 31]] })).toThrow(
      /sample 0 powerW \(s32\) must be an integer -2147483648..2147483647/,
    );
    expect(() => encodeReadingBatch({ ...BATCH, channels: ['voltageMv'], samples: [[230.5]] })).toThrow(/voltageMv/);
    expect(() => encodeReadingBatch({ ...BATCH, channels: ['bogus' as 'powerW'], samples: [[1]] })).toThrow(
      /channel "bogus" is not defined in mgmc-meter\/v1/,
    );
    expect(() => encodeReadingBatch({ ...BATCH, meter: '0x7e5f4552091a69125d5dfcb7b8c2659029395BDF' })).toThrow(
      /wrong EIP-55 checksum/,
    );
  });

  it('refuses malformed payloads with a reason', () => {
    const good = encodeReadingBatch({ ...BATCH, channels: ['powerW'], samples: [[1]] });
    const with_ = (offset: number, value: number) => {
      const p = good.slice();
      p[offset] = value;
      return p;
    };
    expect(() => decodeReadingBatch(good.subarray(0, 40))).toThrow(/shorter than its 45-byte header/);
    expect(() => decodeReadingBatch(with_(0, 0x6d))).toThrow(/magic "MGMB"/);
    expect(() => decodeReadingBatch(with_(4, 2))).toThrow(/version 2 is not supported/);
    expect(() => decodeReadingBatch(with_(5, 0x10))).toThrow(/flags 0x10 set reserved bits/);
    expect(() => decodeReadingBatch(with_(29, 0))).toThrow(/counter 0 is reserved/);
    expect(() => decodeReadingBatch(with_(45, 8))).toThrow(/channel id 8 is not defined/);
    expect(() => decodeReadingBatch(with_(42, 0))).toThrow(/0 channels/);
    expect(() => decodeReadingBatch(with_(44, 2))).toThrow(/1 channels × 2 samples need exactly 54/);
    expect(() => decodeReadingBatch(Uint8Array.of(...good, 0))).toThrow(/is 51 bytes/);
    const twoChannels = encodeReadingBatch({ ...BATCH, channels: ['powerW', 'currentMa'], samples: [[1, 2]] });
    twoChannels[46] = 3;
    expect(() => decodeReadingBatch(twoChannels)).toThrow(/repeats channel id 3/);
    const huge = encodeReadingBatch({ ...BATCH, channels: ['importWh'], samples: [[1]] });
    huge[46] = 0xff;
    expect(() => decodeReadingBatch(huge)).toThrow(/importWh = \d+ is above 2\^53 − 1/);
  });

  it('gives readings with times and channel names', () => {
    const readings = batchReadings(BATCH);
    expect(readings[1]).toEqual({
      t: 1_717_200_060_000,
      values: {
        importWh: 12_345_678,
        exportWh: 5_000_000_025,
        powerW: 1500,
        voltageMv: 229_980,
        currentMa: 6_510,
        frequencyMhz: 49_998,
        reactivePowerVar: -80,
      },
    });
    expect(CHANNELS.map((c) => c.id)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(channelDef(4)).toMatchObject({ name: 'voltageMv', unit: 'mV', type: 'u32' });
    expect(() => channelDef(9)).toThrow(/not defined/);
  });
});

describe('meter batch digest and signatures', () => {
  const payload = encodeReadingBatch(BATCH);

  it('digests exactly as agent/ledger/meter-batch.ts does', () => {
    expect(toHex(meterBatchDigest(payload))).toBe(toHex(agentMeterBatchDigest(payload)));
    expect(toHex(meterBatchDigest(new Uint8Array(0)))).toBe(toHex(agentMeterBatchDigest(new Uint8Array(0))));
  });

  it('hashes the documented preimage: 0x19 "mgmc" 00 "mgmc/meter-batch/v1" 00 u64be(0) payload', () => {
    const prefix = Buffer.concat([
      Buffer.from([0x19]),
      Buffer.from('mgmc'),
      Buffer.from([0]),
      Buffer.from('mgmc/meter-batch/v1'),
      Buffer.from([0]),
      Buffer.alloc(8),
    ]);
    expect(prefix.length).toBe(34);
    expect(Buffer.from(meterBatchPreimage(payload)).equals(Buffer.concat([prefix, payload]))).toBe(true);
    expect(toHex(meterBatchDigest(payload))).toBe(toHex(keccak_256(Buffer.concat([prefix, payload]))));
  });

  it('signs like agent/identity/signing.ts signDigest: deterministic, low s, v 27/28', () => {
    const sig = signReadingBatch(payload, KEY1);
    expect(toHex(sig)).toBe(toHex(signDigest(meterBatchDigest(payload), KEY1)));
    expect(toHex(signReadingBatch(payload, KEY1))).toBe(toHex(sig));
    expect([27, 28]).toContain(sig[64]);
    expect(BigInt(toHex(sig.subarray(32, 64)))).toBeLessThanOrEqual(N >> 1n);
  });

  it('recovers the signing address, equal to agent/identity addresses', () => {
    expect(meterAddressFromPrivateKey(KEY1)).toBe(METER1);
    expect(meterAddressFromPrivateKey(KEY1)).toBe(addressFromPrivateKey(KEY1));
    expect(recoverMeterAddress(payload, signReadingBatch(payload, KEY1))).toBe(METER1);
    expect(recoverMeterAddress(payload, signReadingBatch(payload, KEY2))).toBe(addressFromPrivateKey(KEY2));
    for (const n of [3, 7, 250]) {
      const pub = secp256k1.getPublicKey(key(n), true);
      expect(meterAddressFromPrivateKey(key(n))).toBe(agentAddressFromPublicKey(pub));
    }
  });

  it('verifies a good batch and names the signer of a forged one', () => {
    const ok = verifyReadingBatch(payload, signReadingBatch(payload, KEY1));
    expect(ok.ok).toBe(true);
    const forged = verifyReadingBatch(payload, signReadingBatch(payload, KEY2));
    expect(forged).toMatchObject({
      ok: false,
      kind: 'bad-signature',
      reason: `batch 42 names meter ${METER1} but was signed by ${addressFromPrivateKey(KEY2)}`,
    });
    const tampered = payload.slice();
    tampered[payload.length - 1] = (tampered[payload.length - 1] as number) ^ 1;
    const t = verifyReadingBatch(tampered, signReadingBatch(payload, KEY1));
    expect(t.ok).toBe(false);
    expect(verifyReadingBatch(Uint8Array.of(1, 2, 3), new Uint8Array(65))).toMatchObject({
      ok: false,
      kind: 'bad-payload',
    });
  });

  it('refuses malformed signatures: length, v, r/s range, high s', () => {
    const sig = signReadingBatch(payload, KEY1);
    expect(() => recoverMeterAddress(payload, sig.subarray(0, 64))).toThrow(/65 bytes/);
    const badV = sig.slice();
    badV[64] = 1;
    expect(() => recoverMeterAddress(payload, badV)).toThrow(/v must be 27 or 28, got 1/);
    const zeroR = sig.slice();
    zeroR.fill(0, 0, 32);
    expect(() => recoverMeterAddress(payload, zeroR)).toThrow(/r is out of range/);
    // the malleable twin: s' = n − s with the other recovery id recovers the same key, and is refused
    const s = BigInt(toHex(sig.subarray(32, 64)));
    const high = sig.slice();
    high.set(Buffer.from((N - s).toString(16).padStart(64, '0'), 'hex'), 32);
    high[64] = sig[64] === 27 ? 28 : 27;
    expect(() => recoverMeterAddress(payload, high)).toThrow(/not low-s/);
    expect(verifyReadingBatch(payload, high)).toMatchObject({ ok: false, kind: 'bad-signature' });
    expect(() => signReadingBatch(payload, new Uint8Array(32))).toThrow(/not a valid secp256k1 scalar/);
  });

  it('builds a ledger record body that agent/ledger checkMeterBatch accepts', () => {
    const body = meterBatchRecordBody(payload, signReadingBatch(payload, KEY1));
    expect(body).toEqual({
      meter: METER1,
      format: METER_BATCH_FORMAT,
      payload: toHex(payload),
      sig: toHex(signReadingBatch(payload, KEY1)),
    });
    expect(checkMeterBatch(body)).toBeUndefined();
    const forged = meterBatchRecordBody(payload, signReadingBatch(payload, KEY2));
    expect(checkMeterBatch(forged)).toMatch(/was signed by/);
  });
});

describe('addresses', () => {
  it('writes EIP-55 and parses all-lower, all-upper and checksummed text', () => {
    const bytes = addressToBytes(METER1);
    expect(addressFromBytes(bytes)).toBe(METER1);
    expect(addressToBytes(METER1.toLowerCase())).toEqual(bytes);
    expect(addressToBytes(`0x${METER1.slice(2).toUpperCase()}`)).toEqual(bytes);
    expect(() => addressToBytes('7e5f4552091a69125d5dfcb7b8c2659029395bdf')).toThrow(/expected 0x followed by 40 hex/);
    expect(() => addressFromBytes(new Uint8Array(19))).toThrow(/20 bytes, got 19/);
  });
});
