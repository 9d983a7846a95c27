/** Fixtures of the registry tests: keys, registration envelopes, registries over a temporary DSO database. */
import { ManualClock } from '../../../agent/clock.js';
import { openDsoDatabase } from '../../../agent/dso/database.js';
import { buildRegistrationBody } from '../../../agent/dso/registration.js';
import { Registry, type RegistryPolicy } from '../../../agent/dso/registry.js';
import { fromHex } from '../../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { type Envelope, type EnvelopeBody, sealEnvelope } from '../../../agent/link/envelope.js';
import { signer, T0, type TempDir } from './helpers.js';

export const LINK_CHAIN = 1337;

const key = (byte: number): KeyPair =>
  keyPairFromPrivateKey(fromHex(`0x${byte.toString(16).padStart(2, '0').repeat(32)}`));

/** MGMC identity keys, their market (anonym) keys and meter keys. */
export const MGMC = [key(0x61), key(0x62), key(0x63)] as const;
export const ANONYM = [key(0x71), key(0x72), key(0x73), key(0x74)] as const;
export const METER = [key(0x81), key(0x82), key(0x83), key(0x84)] as const;

export interface RegistrationOptions {
  readonly meters?: readonly KeyPair[];
  readonly bus?: string;
  readonly anonym?: KeyPair;
  readonly trade?: { buy: boolean; sell: boolean };
  /** Chain the anonym proof is signed for (default the link's). */
  readonly proofChain?: number;
  readonly id?: string;
  /** Replaces fields of the body after it was built (to forge or break it). */
  readonly patch?: Record<string, unknown>;
}

let seq = 0;

/** A registration envelope sealed by `mgmc`, as the MGMC's link would send it. */
export function registrationEnvelope(mgmc: KeyPair, options: RegistrationOptions = {}): Envelope {
  const body = buildRegistrationBody({
    mgmc: mgmc.address,
    meters: (options.meters ?? [METER[0]]).map((m) => m.address),
    bus: options.bus ?? 'bus-18',
    trade: options.trade ?? { buy: true, sell: true },
    anonym: signer(options.anonym ?? ANONYM[0]),
    chainId: options.proofChain ?? LINK_CHAIN,
  });
  seq += 1;
  return sealEnvelope(signer(mgmc), {
    ...(options.id === undefined ? {} : { id: options.id }),
    kind: 'registration',
    chainId: LINK_CHAIN,
    session: 1,
    seq,
    time: T0,
    body: { ...body, ...(options.patch ?? {}) } as EnvelopeBody,
  }).envelope;
}

/** Opens the DSO database file `name` in `dir` (a new connection each call, as a second process would). */
export function registryOn(
  dir: TempDir,
  policy: RegistryPolicy,
  options: { name?: string; publish?: boolean; clock?: ManualClock } = {},
): { registry: Registry; clock: ManualClock } {
  const db = dir.track(openDsoDatabase(dir.file(options.name ?? 'dso.db')));
  const clock = options.clock ?? new ManualClock(T0);
  const registry = new Registry({
    db,
    chainId: LINK_CHAIN,
    policy,
    clock,
    ...(options.publish === undefined ? {} : { publish: options.publish }),
  });
  return { registry, clock };
}

export const lower = (k: KeyPair): string => k.address.toLowerCase();
