/**
 * The reading batch a meter signs: format `mgmc-meter/v1`. The payload bytes below are exactly what the meter signs
 * and exactly what the ledger keeps (a `meter-batch` record: {meter, format, payload, sig}, docs/protocol.md §4), so
 * anyone can check every number back to the meter's key.
 *
 * Layout (big-endian; docs/firmware-protocol.md §5):
 *
 *   off  size  field
 *     0     4  magic "MGMB" (4D 47 4D 42)
 *     4     1  payload version = 1
 *     5     1  flags (BatchFlag; reserved bits 0)
 *     6    20  meter address (last 20 bytes of keccak-256 of the meter's uncompressed public key)
 *    26     4  batch counter u32, 1, 2, 3, … per meter (0 is reserved), never reused
 *    30     8  start time u64, ms since the Unix epoch (UTC): time of sample 0
 *    38     4  sample interval u32, ms (sample i was taken at start + i × interval)
 *    42     1  channel count C, 1..16
 *    43     2  sample count N, 1..65535
 *    45     C  channel ids (Channel), no repeats
 *  45+C   N×W  samples: for each sample, one value per channel in channel-list order, each as wide as its channel
 *
 * Digest and signature: digest = keccak256(0x19 ‖ "mgmc" ‖ 0x00 ‖ "mgmc/meter-batch/v1" ‖ 0x00 ‖ u64be(0) ‖ payload),
 * signature = r ‖ s ‖ v over that digest with the meter's secp256k1 key (RFC 6979, low s, v = 27 + recovery id).
 * The same digest as agent/ledger/meter-batch.ts's meterBatchDigest (test/unit/firmware-bridge/vectors.test.ts
 * cross-checks them); firmware-bridge may not import agent/, so it is computed here from the same rule.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';

/** Format id of the ledger's meter-batch records holding these payloads. */
export const METER_BATCH_FORMAT = 'mgmc-meter/v1';
/** Signature type tag (docs/protocol.md §2); meters sign on chain id 0. */
export const METER_BATCH_TAG = 'mgmc/meter-batch/v1';
/** The 4 magic bytes "MGMB" that start every payload. */
export const BATCH_MAGIC = Uint8Array.of(0x4d, 0x47, 0x4d, 0x42);
/** Payload version byte (offset 4). */
export const BATCH_VERSION = 1;
/** Bytes before the channel list. */
export const BATCH_HEADER_LENGTH = 45;
/** Most channels one batch may carry. */
export const MAX_CHANNELS = 16;

/** Batch flag bits (payload byte 5). */
export const BatchFlag = {
  /** The meter's clock had not been set (TIME_SYNC with SET) since it powered up: times may be off. */
  CLOCK_UNSYNCED: 1 << 0,
  /** Power was lost during the batch: samples after the loss repeat the last value taken before it. */
  POWER_LOSS: 1 << 1,
  /** The meter's tamper switch (cover, magnetic field) tripped during the batch. */
  TAMPER: 1 << 2,
} as const;
const KNOWN_FLAGS = BatchFlag.CLOCK_UNSYNCED | BatchFlag.POWER_LOSS | BatchFlag.TAMPER;

/** Channel names of format mgmc-meter/v1 (see CHANNELS for ids, units and widths). */
export type ChannelName =
  | 'importWh'
  | 'exportWh'
  | 'powerW'
  | 'voltageMv'
  | 'currentMa'
  | 'frequencyMhz'
  | 'reactivePowerVar';

/** Wire type of a channel's values: u32/s32 4 bytes, u64 8 bytes, big-endian. */
export type ValueType = 'u32' | 's32' | 'u64';

/** One channel of format mgmc-meter/v1. */
export interface ChannelDef {
  readonly id: number;
  readonly name: ChannelName;
  readonly unit: string;
  readonly type: ValueType;
  readonly description: string;
}

/** Channel ids of format mgmc-meter/v1. Ids 8..255 are reserved: a v1 decoder refuses them. */
export const CHANNELS: readonly ChannelDef[] = [
  { id: 1, name: 'importWh', unit: 'Wh', type: 'u64', description: 'imported active energy, total register' },
  { id: 2, name: 'exportWh', unit: 'Wh', type: 'u64', description: 'exported active energy, total register' },
  { id: 3, name: 'powerW', unit: 'W', type: 's32', description: 'active power, positive = import' },
  { id: 4, name: 'voltageMv', unit: 'mV', type: 'u32', description: 'RMS voltage (L1-N)' },
  { id: 5, name: 'currentMa', unit: 'mA', type: 's32', description: 'RMS current (L1), signed as active power' },
  { id: 6, name: 'frequencyMhz', unit: 'mHz', type: 'u32', description: 'grid frequency' },
  { id: 7, name: 'reactivePowerVar', unit: 'var', type: 's32', description: 'reactive power, positive = inductive' },
];
const BY_ID = new Map(CHANNELS.map((c) => [c.id, c]));
const BY_NAME = new Map(CHANNELS.map((c) => [c.name, c]));
const WIDTH: Record<ValueType, number> = { u32: 4, s32: 4, u64: 8 };
const RANGE: Record<ValueType, [number, number]> = {
  u32: [0, 0xffffffff],
  s32: [-0x80000000, 0x7fffffff],
  u64: [0, Number.MAX_SAFE_INTEGER],
};

/** The definition of a channel by name or wire id; throws for one mgmc-meter/v1 does not define. */
export function channelDef(channel: ChannelName | number): ChannelDef {
  const def = typeof channel === 'number' ? BY_ID.get(channel) : BY_NAME.get(channel);
  if (def === undefined)
    throw new BatchError(`channel ${JSON.stringify(channel)} is not defined in ${METER_BATCH_FORMAT}`);
  return def;
}

/** A decoded batch. Values are integers in the channel's unit; samples[i][c] belongs to channels[c]. */
export interface ReadingBatch {
  /** The meter's address, EIP-55. */
  readonly meter: string;
  readonly counter: number;
  /** BatchFlag bits. */
  readonly flags: number;
  readonly startMs: number;
  readonly intervalMs: number;
  readonly channels: readonly ChannelName[];
  readonly samples: readonly (readonly number[])[];
}

/** A payload that cannot be encoded or decoded, with the reason. */
export class BatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BatchError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses (firmware-bridge may not import agent/identity, so the few lines it needs live here)

/** EIP-55 checksummed text of a 20-byte address. Vector: 7e5f45…5bdf → 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf. */
export function addressFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 20) throw new BatchError(`an address is 20 bytes, got ${bytes.length}`);
  const lower = Buffer.from(bytes).toString('hex');
  const hash = keccak_256(new TextEncoder().encode(lower));
  let out = '0x';
  for (let i = 0; i < 40; i++) {
    const nibble = ((hash[i >> 1] as number) >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    const c = lower[i] as string;
    out += nibble >= 8 ? c.toUpperCase() : c;
  }
  return out;
}

/**
 * The 20 bytes of an address written as 0x + 40 hex digits. Mixed case must carry a valid EIP-55 checksum (it exists
 * to catch typos); all-lower and all-upper are accepted.
 */
export function addressToBytes(address: string, what = 'address'): Uint8Array {
  if (typeof address !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new BatchError(`${what}: expected 0x followed by 40 hex digits, got ${JSON.stringify(address)}`);
  }
  const bytes = new Uint8Array(Buffer.from(address.slice(2), 'hex'));
  const body = address.slice(2);
  if (body !== body.toLowerCase() && body !== body.toUpperCase() && addressFromBytes(bytes) !== address) {
    throw new BatchError(`${what}: ${address} has a wrong EIP-55 checksum (did you mean ${addressFromBytes(bytes)}?)`);
  }
  return bytes;
}

/** The address of a secp256k1 public key (33-byte compressed or 65-byte uncompressed). */
export function addressFromPublicKey(publicKey: Uint8Array): string {
  const uncompressed = secp256k1.Point.fromBytes(publicKey).toBytes(false);
  return addressFromBytes(keccak_256(uncompressed.subarray(1)).subarray(12));
}

/** The address of a meter's 32-byte private key. Vector: key 0x…01 → 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf. */
export function meterAddressFromPrivateKey(privateKey: Uint8Array): string {
  if (!secp256k1.utils.isValidSecretKey(privateKey)) {
    throw new BatchError('meter private key is not a valid secp256k1 scalar (32 bytes, 0 < k < n)');
  }
  return addressFromPublicKey(secp256k1.getPublicKey(privateKey, false));
}

// ---------------------------------------------------------------------------------------------------------------
// Payload

/** Bytes of a payload with `channels` channels and `samples` samples. */
export function batchPayloadLength(channels: readonly ChannelName[], samples: number): number {
  let width = 0;
  for (const c of channels) width += WIDTH[channelDef(c).type];
  return BATCH_HEADER_LENGTH + channels.length + samples * width;
}

/**
 * Encodes a batch to the payload bytes the meter signs. Throws a BatchError naming the field for anything out of
 * range: counter 1..2^32−1, intervalMs 1..2^32−1, 1..16 distinct channels, 1..65535 samples each with one integer per
 * channel within the channel's type. test/vectors/firmware.json has an example.
 */
export function encodeReadingBatch(batch: ReadingBatch): Uint8Array {
  const { channels, samples } = batch;
  checkInt(batch.counter, 1, 0xffffffff, 'batch counter');
  checkInt(batch.flags, 0, 0xff, 'flags');
  if ((batch.flags & ~KNOWN_FLAGS) !== 0) throw new BatchError(`flags 0x${batch.flags.toString(16)} set reserved bits`);
  checkInt(batch.startMs, 0, Number.MAX_SAFE_INTEGER, 'start time');
  checkInt(batch.intervalMs, 1, 0xffffffff, 'sample interval');
  if (channels.length < 1 || channels.length > MAX_CHANNELS) {
    throw new BatchError(`a batch has 1 to ${MAX_CHANNELS} channels, got ${channels.length}`);
  }
  const defs = channels.map((c) => channelDef(c));
  if (new Set(channels).size !== channels.length)
    throw new BatchError(`channel list repeats a channel: ${channels.join(', ')}`);
  if (samples.length < 1 || samples.length > 0xffff) {
    throw new BatchError(`a batch has 1 to 65535 samples, got ${samples.length}`);
  }
  const out = new Uint8Array(batchPayloadLength(channels, samples.length));
  const view = new DataView(out.buffer);
  out.set(BATCH_MAGIC, 0);
  out[4] = BATCH_VERSION;
  out[5] = batch.flags;
  out.set(addressToBytes(batch.meter, 'meter address'), 6);
  view.setUint32(26, batch.counter);
  view.setBigUint64(30, BigInt(batch.startMs));
  view.setUint32(38, batch.intervalMs);
  out[42] = channels.length;
  view.setUint16(43, samples.length);
  defs.forEach((d, i) => {
    out[BATCH_HEADER_LENGTH + i] = d.id;
  });
  let at = BATCH_HEADER_LENGTH + channels.length;
  samples.forEach((sample, i) => {
    if (sample.length !== channels.length) {
      throw new BatchError(`sample ${i} has ${sample.length} values for ${channels.length} channels`);
    }
    defs.forEach((d, c) => {
      const value = sample[c] as number;
      const [min, max] = RANGE[d.type];
      checkInt(value, min, max, `sample ${i} ${d.name} (${d.type})`);
      if (d.type === 'u64') view.setBigUint64(at, BigInt(value));
      else if (d.type === 'u32') view.setUint32(at, value);
      else view.setInt32(at, value);
      at += WIDTH[d.type];
    });
  });
  return out;
}

/** Decodes and checks a payload (strict: magic, version, reserved flag bits, known distinct channels, exact length). */
export function decodeReadingBatch(payload: Uint8Array): ReadingBatch {
  if (payload.length < BATCH_HEADER_LENGTH + 1) {
    throw new BatchError(
      `batch payload of ${payload.length} bytes is shorter than its ${BATCH_HEADER_LENGTH}-byte header`,
    );
  }
  for (let i = 0; i < 4; i++) {
    if (payload[i] !== BATCH_MAGIC[i]) {
      throw new BatchError(`batch payload does not start with the magic "MGMB" (got ${hex(payload.subarray(0, 4))})`);
    }
  }
  if (payload[4] !== BATCH_VERSION) {
    throw new BatchError(`batch payload version ${payload[4]} is not supported (this side reads ${BATCH_VERSION})`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const flags = payload[5] as number;
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new BatchError(`batch flags 0x${flags.toString(16)} set reserved bits`);
  const meter = addressFromBytes(payload.subarray(6, 26));
  const counter = view.getUint32(26);
  if (counter === 0) throw new BatchError('batch counter 0 is reserved');
  const startBig = view.getBigUint64(30);
  if (startBig > BigInt(Number.MAX_SAFE_INTEGER))
    throw new BatchError(`batch start time ${startBig} is above 2^53 − 1`);
  const intervalMs = view.getUint32(38);
  if (intervalMs === 0) throw new BatchError('batch sample interval is 0');
  const channelCount = payload[42] as number;
  if (channelCount < 1 || channelCount > MAX_CHANNELS) {
    throw new BatchError(`batch has ${channelCount} channels, expected 1 to ${MAX_CHANNELS}`);
  }
  const sampleCount = view.getUint16(43);
  if (sampleCount === 0) throw new BatchError('batch has no samples');
  if (payload.length < BATCH_HEADER_LENGTH + channelCount) {
    throw new BatchError(`batch payload of ${payload.length} bytes ends inside its channel list`);
  }
  const defs: ChannelDef[] = [];
  for (let i = 0; i < channelCount; i++) {
    const id = payload[BATCH_HEADER_LENGTH + i] as number;
    const def = BY_ID.get(id);
    if (def === undefined) throw new BatchError(`batch channel id ${id} is not defined in ${METER_BATCH_FORMAT}`);
    if (defs.includes(def)) throw new BatchError(`batch channel list repeats channel id ${id}`);
    defs.push(def);
  }
  const channels = defs.map((d) => d.name);
  const expected = batchPayloadLength(channels, sampleCount);
  if (payload.length !== expected) {
    throw new BatchError(
      `batch payload is ${payload.length} bytes; ${channelCount} channels × ${sampleCount} samples need exactly ${expected}`,
    );
  }
  let at = BATCH_HEADER_LENGTH + channelCount;
  const samples: number[][] = [];
  for (let i = 0; i < sampleCount; i++) {
    const sample: number[] = [];
    for (const d of defs) {
      if (d.type === 'u64') {
        const big = view.getBigUint64(at);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new BatchError(`sample ${i} ${d.name} = ${big} is above 2^53 − 1`);
        }
        sample.push(Number(big));
      } else sample.push(d.type === 'u32' ? view.getUint32(at) : view.getInt32(at));
      at += WIDTH[d.type];
    }
    samples.push(sample);
  }
  return { meter, counter, flags, startMs: Number(startBig), intervalMs, channels, samples };
}

/** One timestamped sample of a batch with its values by channel name. */
export interface BatchReading {
  /** ms since the epoch: start + i × interval. */
  readonly t: number;
  readonly values: Partial<Record<ChannelName, number>>;
}

/** The samples of a batch with their times and channel names, for code that stores or plots them. */
export function batchReadings(batch: ReadingBatch): BatchReading[] {
  return batch.samples.map((sample, i) => {
    const values: Partial<Record<ChannelName, number>> = {};
    batch.channels.forEach((name, c) => {
      values[name] = sample[c] as number;
    });
    return { t: batch.startMs + i * batch.intervalMs, values };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Digest, signature, recovery

/**
 * The exact bytes hashed for a payload: 0x19 ‖ "mgmc" ‖ 0x00 ‖ "mgmc/meter-batch/v1" ‖ 0x00 ‖ u64be(0) ‖ payload
 * (that is 19 6D 67 6D 63 00 6D 67 6D 63 2F 6D 65 74 65 72 2D 62 61 74 63 68 2F 76 31 00 00 00 00 00 00 00 00 00,
 * 34 bytes, then the payload).
 */
export function meterBatchPreimage(payload: Uint8Array): Uint8Array {
  const tag = new TextEncoder().encode(METER_BATCH_TAG);
  const out = new Uint8Array(1 + 4 + 1 + tag.length + 1 + 8 + payload.length);
  out[0] = 0x19;
  out.set(new TextEncoder().encode('mgmc'), 1);
  out.set(tag, 6);
  // out[5], out[6 + tag.length] and the 8 chain-id bytes stay 0
  out.set(payload, 6 + tag.length + 1 + 8);
  return out;
}

/** keccak-256 of meterBatchPreimage(payload): the 32 bytes the meter signs. Equals agent/ledger's meterBatchDigest. */
export function meterBatchDigest(payload: Uint8Array): Uint8Array {
  return keccak_256(meterBatchPreimage(payload));
}

/**
 * Signs a payload with the meter's private key: r ‖ s ‖ v (65 bytes), deterministic (RFC 6979), low s, v = 27 or 28.
 * The digest is signed as is (noble's prehash disabled: it would otherwise sign sha256(digest)).
 */
export function signReadingBatch(payload: Uint8Array, privateKey: Uint8Array): Uint8Array {
  if (!secp256k1.utils.isValidSecretKey(privateKey)) {
    throw new BatchError('meter private key is not a valid secp256k1 scalar (32 bytes, 0 < k < n)');
  }
  const rec = secp256k1.sign(meterBatchDigest(payload), privateKey, {
    prehash: false,
    format: 'recovered',
    lowS: true,
  });
  const out = new Uint8Array(65);
  out.set(rec.subarray(1, 65), 0);
  out[64] = 27 + (rec[0] as number);
  return out;
}

const N = secp256k1.Point.Fn.ORDER;

/**
 * The address that signed `payload` (EIP-55). Throws a BatchError for a malformed signature: not 65 bytes, v not 27
 * or 28, r or s zero or ≥ n, or s > n/2 (the malleable high-s twin, which we never produce or accept).
 */
export function recoverMeterAddress(payload: Uint8Array, signature: Uint8Array): string {
  if (signature.length !== 65) throw new BatchError(`signature must be 65 bytes (r ‖ s ‖ v), got ${signature.length}`);
  const v = signature[64] as number;
  if (v !== 27 && v !== 28) throw new BatchError(`signature v must be 27 or 28, got ${v}`);
  const r = BigInt(hex(signature.subarray(0, 32)));
  const s = BigInt(hex(signature.subarray(32, 64)));
  if (r <= 0n || r >= N) throw new BatchError('signature r is out of range');
  if (s <= 0n || s > N >> 1n) throw new BatchError('signature s is zero or not low-s');
  const rec = new Uint8Array(65);
  rec[0] = v - 27;
  rec.set(signature.subarray(0, 64), 1);
  let publicKey: Uint8Array;
  try {
    publicKey = secp256k1.recoverPublicKey(rec, meterBatchDigest(payload), { prehash: false });
  } catch (err) {
    throw new BatchError(`signature does not recover to a public key: ${(err as Error).message}`);
  }
  return addressFromPublicKey(publicKey);
}

/** What checking a signed batch found. */
export type BatchCheck =
  | { readonly ok: true; readonly batch: ReadingBatch }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly kind: 'bad-payload' | 'bad-signature';
      readonly batch?: ReadingBatch;
    };

/**
 * Decodes a payload and checks that its signature recovers to the meter address the payload names. Never throws; the
 * reason is a sentence for people.
 */
export function verifyReadingBatch(payload: Uint8Array, signature: Uint8Array): BatchCheck {
  let batch: ReadingBatch;
  try {
    batch = decodeReadingBatch(payload);
  } catch (err) {
    return { ok: false, kind: 'bad-payload', reason: (err as Error).message };
  }
  let signer: string;
  try {
    signer = recoverMeterAddress(payload, signature);
  } catch (err) {
    return { ok: false, kind: 'bad-signature', reason: `batch ${batch.counter}: ${(err as Error).message}`, batch };
  }
  if (signer !== batch.meter) {
    return {
      ok: false,
      kind: 'bad-signature',
      reason: `batch ${batch.counter} names meter ${batch.meter} but was signed by ${signer}`,
      batch,
    };
  }
  return { ok: true, batch };
}

/** The ledger record body for a signed batch: {meter, format: 'mgmc-meter/v1', payload: 0x…, sig: 0x…}. */
export function meterBatchRecordBody(
  payload: Uint8Array,
  signature: Uint8Array,
): { meter: string; format: string; payload: string; sig: string } {
  const batch = decodeReadingBatch(payload);
  return { meter: batch.meter, format: METER_BATCH_FORMAT, payload: hex(payload), sig: hex(signature) };
}

function checkInt(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BatchError(`${what} must be an integer ${min}..${max}, got ${value}`);
  }
}

function hex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}
