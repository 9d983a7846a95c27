import { createCipheriv, createDecipheriv, createECDH, ECDH, hkdfSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import {
  decryptWith,
  deriveMessageKey,
  ECIES_SCHEME,
  type EciesEnvelope,
  encryptTo,
  sharedSecret,
} from '../../../agent/identity/ecies.js';
import { addressFromPrivateKey, type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';

interface EciesVector {
  name: string;
  recipientPrivateKey: string;
  recipientPublicKey: string;
  recipientAddress: string;
  senderPrivateKey: string;
  senderAddress: string;
  ephemeralPrivateKey: string;
  epk: string;
  nonce: string;
  plaintextUtf8: string;
  sharedSecret: string;
  messageKey: string;
  aad: string;
  ct: string;
  envelope: EciesEnvelope;
}

const vectorFile = JSON.parse(await readFile(new URL('../../vectors/ecies.json', import.meta.url), 'utf8')) as {
  vectors: EciesVector[];
};

// --- independent reference: node:crypto only (plus keccak for the address), nothing from agent/identity ---

const SCHEME = Buffer.from('mgmc/ecies/v1', 'utf8');
const hex = (text: string): Buffer => Buffer.from(text.replace(/^0x/, ''), 'hex');
const h = (bytes: Uint8Array): string => `0x${Buffer.from(bytes).toString('hex')}`;

function refCompress(publicKey: Uint8Array): Buffer {
  return ECDH.convertKey(publicKey, 'secp256k1', undefined, undefined, 'compressed') as Buffer;
}

/** Lower-case address: keccak256 of the 64-byte X ‖ Y, last 20 bytes. */
function refAddress(publicKey: Uint8Array): string {
  const uncompressed = ECDH.convertKey(publicKey, 'secp256k1', undefined, undefined, 'uncompressed') as Buffer;
  return h(keccak_256(uncompressed.subarray(1)).subarray(12));
}

function refSharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
  const ecdh = createECDH('secp256k1');
  ecdh.setPrivateKey(privateKey);
  return ecdh.computeSecret(publicKey);
}

function refKey(shared: Uint8Array, epk: Uint8Array, recipientCompressed: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, epk, Buffer.concat([SCHEME, recipientCompressed]), 32));
}

function refAad(sender: string, recipientCompressed: Uint8Array, epk: Uint8Array): Buffer {
  return Buffer.concat([SCHEME, hex(sender), recipientCompressed, epk]);
}

function refEncrypt(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  sender: string,
  ephemeralPrivateKey: Uint8Array = randomBytes(32),
  nonce: Uint8Array = randomBytes(12),
): EciesEnvelope {
  const ecdh = createECDH('secp256k1');
  ecdh.setPrivateKey(ephemeralPrivateKey);
  const epk = ecdh.getPublicKey(null, 'compressed');
  const recipient = refCompress(recipientPublicKey);
  const key = refKey(ecdh.computeSecret(recipient), epk, recipient);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(refAad(sender, recipient, epk));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return {
    scheme: 'mgmc/ecies/v1',
    sender: sender.toLowerCase(),
    recipient: refAddress(recipient),
    epk: h(epk),
    nonce: h(nonce),
    ct: h(ct),
  };
}

function refDecrypt(privateKey: Uint8Array, envelope: EciesEnvelope): Buffer {
  const ecdh = createECDH('secp256k1');
  ecdh.setPrivateKey(privateKey);
  const own = ecdh.getPublicKey(null, 'compressed');
  const epk = hex(envelope.epk);
  const ct = hex(envelope.ct);
  const key = refKey(ecdh.computeSecret(epk), epk, own);
  const decipher = createDecipheriv('aes-256-gcm', key, hex(envelope.nonce));
  decipher.setAAD(refAad(envelope.sender, own, epk));
  decipher.setAuthTag(ct.subarray(ct.length - 16));
  return Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()]);
}

// --- helpers ---

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

function det(label: string, i: number): Uint8Array {
  return keccak_256(enc(`mgmc ecies test ${label} ${i}`));
}

function flipHexByte(text: string, index: number, mask = 0x01): string {
  const bytes = fromHex(text);
  bytes[index] = (bytes[index] as number) ^ mask;
  return toHex(bytes);
}

/** Asserts that `fn` throws an Error (not some other value) whose message contains `message` or matches it. */
function expectError(fn: () => unknown, message: string | RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected an Error to be thrown').toBeInstanceOf(Error);
  const text = (thrown as Error).message;
  if (typeof message === 'string') expect(text).toContain(message);
  else expect(text).toMatch(message);
}

const AUTH_FAILED =
  /^encrypted message from 0x[0-9a-fA-F]{40} failed authentication: it was altered, or its sender or recipient was changed$/;

describe('fixed vectors (test/vectors/ecies.json)', () => {
  it('include a shared secret that starts with a 0x00 byte', () => {
    expect(vectorFile.vectors.some((v) => v.sharedSecret.startsWith('0x00'))).toBe(true);
  });

  it.each(vectorFile.vectors)('keys of vector "$name" are what they claim', (v) => {
    const recipient = keyPairFromPrivateKey(fromHex(v.recipientPrivateKey));
    expect(toHex(recipient.publicKey)).toBe(v.recipientPublicKey);
    expect(recipient.address).toBe(v.recipientAddress);
    expect(refAddress(recipient.publicKey)).toBe(v.recipientAddress.toLowerCase());
    expect(addressFromPrivateKey(fromHex(v.senderPrivateKey))).toBe(v.senderAddress);
    const ecdh = createECDH('secp256k1');
    ecdh.setPrivateKey(hex(v.ephemeralPrivateKey));
    expect(h(ecdh.getPublicKey(null, 'compressed'))).toBe(v.epk);
    expect(toHex(secp256k1.getPublicKey(fromHex(v.ephemeralPrivateKey), true))).toBe(v.epk);
  });

  it.each(vectorFile.vectors)('shared secret and message key of vector "$name"', (v) => {
    const shared = sharedSecret(fromHex(v.ephemeralPrivateKey), fromHex(v.recipientPublicKey));
    expect(shared).toHaveLength(32);
    expect(toHex(shared)).toBe(v.sharedSecret);
    // ECDH is symmetric: the recipient gets the same secret from the ephemeral public key.
    expect(toHex(sharedSecret(fromHex(v.recipientPrivateKey), fromHex(v.epk)))).toBe(v.sharedSecret);
    // node:crypto's computeSecret returns the fixed-width x coordinate too.
    const ref = refSharedSecret(hex(v.ephemeralPrivateKey), hex(v.recipientPublicKey));
    expect(ref).toHaveLength(32);
    expect(h(ref)).toBe(v.sharedSecret);

    const key = deriveMessageKey(shared, fromHex(v.epk), fromHex(v.recipientPublicKey));
    expect(toHex(key)).toBe(v.messageKey);
    expect(h(refKey(ref, hex(v.epk), hex(v.recipientPublicKey)))).toBe(v.messageKey);
    expect(h(refAad(v.senderAddress, hex(v.recipientPublicKey), hex(v.epk)))).toBe(v.aad);
  });

  it('keeps the leading zero byte of the shared secret', () => {
    const v = vectorFile.vectors.find((x) => x.sharedSecret.startsWith('0x00')) as EciesVector;
    const shared = sharedSecret(fromHex(v.ephemeralPrivateKey), fromHex(v.recipientPublicKey));
    expect(shared).toHaveLength(32);
    expect(shared[0]).toBe(0);
    // An implementation that round-trips the secret through an integer would use these 31 bytes instead: it derives
    // another key, and cannot open the message.
    const stripped = shared.subarray(1);
    const wrongKey = refKey(stripped, hex(v.epk), hex(v.recipientPublicKey));
    expect(h(wrongKey)).not.toBe(v.messageKey);
    const ct = hex(v.ct);
    const decipher = createDecipheriv('aes-256-gcm', wrongKey, hex(v.nonce));
    decipher.setAAD(hex(v.aad));
    decipher.setAuthTag(ct.subarray(ct.length - 16));
    decipher.update(ct.subarray(0, ct.length - 16));
    expect(() => decipher.final()).toThrow();
  });

  it.each(vectorFile.vectors)('encryptTo and the node:crypto reference both produce vector "$name"', (v) => {
    const plaintext = enc(v.plaintextUtf8);
    const envelope = encryptTo(fromHex(v.recipientPublicKey), plaintext, {
      sender: v.senderAddress,
      ephemeralPrivateKey: fromHex(v.ephemeralPrivateKey),
      nonce: fromHex(v.nonce),
    });
    expect(envelope).toEqual(v.envelope);
    expect(envelope.ct).toBe(v.ct);
    const ref = refEncrypt(
      hex(v.recipientPublicKey),
      plaintext,
      v.senderAddress,
      hex(v.ephemeralPrivateKey),
      hex(v.nonce),
    );
    expect(ref.ct).toBe(v.ct);
    expect(ref.epk).toBe(v.epk);
  });

  it.each(vectorFile.vectors)('decryptWith and the node:crypto reference both open vector "$name"', (v) => {
    expect(dec(decryptWith(fromHex(v.recipientPrivateKey), v.envelope))).toBe(v.plaintextUtf8);
    expect(dec(refDecrypt(hex(v.recipientPrivateKey), v.envelope))).toBe(v.plaintextUtf8);
  });
});

describe('interoperability with an independent node:crypto implementation', () => {
  const sizes = [0, 1, 15, 16, 17, 31, 100, 1000, 4096];

  it('node:crypto decrypts what encryptTo produced (random ephemeral keys and nonces)', () => {
    for (let i = 0; i < 30; i++) {
      const recipient = keyPairFromPrivateKey(det('recipient', i));
      const sender = addressFromPrivateKey(det('sender', i));
      const plaintext = randomBytes(sizes[i % sizes.length] as number);
      const envelope = encryptTo(recipient.publicKey, plaintext, { sender });
      expect(envelope.scheme).toBe(ECIES_SCHEME);
      expect(envelope.sender).toBe(sender);
      expect(envelope.recipient).toBe(recipient.address);
      expect(fromHex(envelope.epk)).toHaveLength(33);
      expect(fromHex(envelope.nonce)).toHaveLength(12);
      expect(fromHex(envelope.ct)).toHaveLength(plaintext.length + 16);
      expect(h(refDecrypt(recipient.privateKey, envelope))).toBe(h(plaintext));
      expect(h(decryptWith(recipient.privateKey, envelope))).toBe(h(plaintext));
    }
  });

  it('decryptWith opens what node:crypto produced, for compressed and uncompressed recipient keys', () => {
    for (let i = 0; i < 30; i++) {
      const recipient = keyPairFromPrivateKey(det('recipient 2', i));
      const sender = addressFromPrivateKey(det('sender 2', i));
      const plaintext = randomBytes(sizes[i % sizes.length] as number);
      const key = i % 2 === 0 ? recipient.publicKey : secp256k1.getPublicKey(recipient.privateKey, false);
      const envelope = refEncrypt(key, plaintext, sender);
      expect(h(decryptWith(recipient.privateKey, envelope))).toBe(h(plaintext));
      // And after a trip through JSON, as it travels on the wire.
      const wire = JSON.parse(JSON.stringify(envelope)) as EciesEnvelope;
      expect(h(decryptWith(recipient.privateKey, wire))).toBe(h(plaintext));
    }
  });

  it('finds leading-zero shared secrets among random keys as well (about 1 in 256) and handles them', () => {
    const recipient = keyPairFromPrivateKey(det('zero search recipient', 0));
    const sender = addressFromPrivateKey(det('zero search sender', 0));
    let found = 0;
    for (let i = 0; i < 2000 && found < 3; i++) {
      const eph = det('zero search ephemeral', i);
      if ((refSharedSecret(eph, recipient.publicKey)[0] as number) !== 0) continue;
      found++;
      expect(toHex(sharedSecret(eph, recipient.publicKey))).toBe(h(refSharedSecret(eph, recipient.publicKey)));
      const nonce = det('zero search nonce', i).subarray(0, 12);
      const plaintext = enc(`leading zero ${i}`);
      const ours = encryptTo(recipient.publicKey, plaintext, { sender, ephemeralPrivateKey: eph, nonce });
      const ref = refEncrypt(recipient.publicKey, plaintext, sender, eph, nonce);
      expect(ours.ct).toBe(ref.ct);
      expect(dec(decryptWith(recipient.privateKey, ref))).toBe(`leading zero ${i}`);
    }
    expect(found).toBeGreaterThan(0);
  });

  it('gives the same envelope for a compressed or an uncompressed recipient key', () => {
    const recipient = keyPairFromPrivateKey(det('form', 0));
    const options = {
      sender: addressFromPrivateKey(det('form sender', 0)),
      ephemeralPrivateKey: det('form eph', 0),
      nonce: det('form nonce', 0).subarray(0, 12),
    };
    const uncompressed = secp256k1.getPublicKey(recipient.privateKey, false);
    expect(encryptTo(uncompressed, enc('x'), options)).toEqual(encryptTo(recipient.publicKey, enc('x'), options));
  });

  it('uses a fresh ephemeral key and nonce for every message', () => {
    const recipient = keyPairFromPrivateKey(det('fresh', 0));
    const sender = addressFromPrivateKey(det('fresh sender', 0));
    const a = encryptTo(recipient.publicKey, enc('same text'), { sender });
    const b = encryptTo(recipient.publicKey, enc('same text'), { sender });
    expect(a.epk).not.toBe(b.epk);
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.ct).not.toBe(b.ct);
  });
});

describe('decryptWith refuses altered or misdirected envelopes with a clear Error', () => {
  const v = vectorFile.vectors[0] as EciesVector;
  const recipientKey = fromHex(v.recipientPrivateKey);
  const base = v.envelope;
  const other: KeyPair = keyPairFromPrivateKey(det('other', 0));
  const third: KeyPair = keyPairFromPrivateKey(det('third', 0));

  it('opens the untouched envelope (control)', () => {
    expect(dec(decryptWith(recipientKey, base))).toBe(v.plaintextUtf8);
  });

  it('accepts a lower-case recipient or sender address (same addresses, no checksum)', () => {
    const lower = { ...base, recipient: base.recipient.toLowerCase(), sender: base.sender.toLowerCase() };
    expect(dec(decryptWith(recipientKey, lower))).toBe(v.plaintextUtf8);
  });

  it('wrong recipient key: says whom the message is for', () => {
    expectError(
      () => decryptWith(other.privateKey, base),
      `encrypted message is addressed to ${v.recipientAddress}, not to this key (${other.address})`,
    );
  });

  it('envelope addressed to someone else', () => {
    expectError(
      () => decryptWith(recipientKey, { ...base, recipient: other.address }),
      `encrypted message is addressed to ${other.address}, not to this key (${v.recipientAddress})`,
    );
  });

  it('changed recipient: an envelope re-addressed to another key does not open with that key', () => {
    expectError(() => decryptWith(other.privateKey, { ...base, recipient: other.address }), AUTH_FAILED);
  });

  it('changed sender address', () => {
    expectError(
      () => decryptWith(recipientKey, { ...base, sender: other.address }),
      `encrypted message from ${other.address} failed authentication: it was altered, or its sender or recipient was changed`,
    );
    expectError(() => decryptWith(recipientKey, { ...base, sender: third.address }), AUTH_FAILED);
  });

  it('sender address with a wrong EIP-55 checksum, or not an address at all', () => {
    const body = base.sender.slice(2);
    const i = body.search(/[a-f]/);
    const typo = `0x${body.slice(0, i)}${(body[i] as string).toUpperCase()}${body.slice(i + 1)}`;
    expectError(
      () => decryptWith(recipientKey, { ...base, sender: typo }),
      /^encrypted message sender: .* wrong EIP-55 checksum/,
    );
    expectError(
      () => decryptWith(recipientKey, { ...base, sender: '0x1234' }),
      'encrypted message sender: expected 0x followed by 40 hex digits',
    );
    expectError(
      () => decryptWith(recipientKey, { ...base, recipient: 'dso' }),
      'encrypted message recipient: expected 0x followed by 40 hex digits',
    );
  });

  it('flipped ciphertext byte', () => {
    const ctLength = fromHex(base.ct).length;
    for (const index of [0, Math.floor((ctLength - 16) / 2), ctLength - 17]) {
      expectError(() => decryptWith(recipientKey, { ...base, ct: flipHexByte(base.ct, index) }), AUTH_FAILED);
    }
  });

  it('flipped authentication tag byte', () => {
    const ctLength = fromHex(base.ct).length;
    for (const index of [ctLength - 16, ctLength - 1]) {
      expectError(() => decryptWith(recipientKey, { ...base, ct: flipHexByte(base.ct, index, 0x80) }), AUTH_FAILED);
    }
  });

  it('flipped nonce byte', () => {
    for (const index of [0, 11]) {
      expectError(() => decryptWith(recipientKey, { ...base, nonce: flipHexByte(base.nonce, index) }), AUTH_FAILED);
    }
  });

  it('flipped epk prefix (the negated point: same ECDH secret, but the key and AAD bind the exact epk)', () => {
    const negated = flipHexByte(base.epk, 0); // 0x02 <-> 0x03
    expect(toHex(sharedSecret(recipientKey, fromHex(negated)))).toBe(v.sharedSecret);
    expectError(() => decryptWith(recipientKey, { ...base, epk: negated }), AUTH_FAILED);
  });

  it('flipped epk byte in x: either not a curve point or a failed authentication', () => {
    let offCurve = 0;
    for (let index = 1; index < 33; index++) {
      const epk = flipHexByte(base.epk, index);
      expectError(
        () => decryptWith(recipientKey, { ...base, epk }),
        /^encrypted message epk is not a valid secp256k1 public key \(33 or 65 bytes on the curve\)$|failed authentication/,
      );
      try {
        secp256k1.Point.fromBytes(fromHex(epk));
      } catch {
        offCurve++;
      }
    }
    // About half of all x values are not on the curve, so both branches are exercised.
    expect(offCurve).toBeGreaterThan(0);
    expect(offCurve).toBeLessThan(32);
  });

  it('epk of the wrong length (the uncompressed form is not accepted on the wire)', () => {
    const uncompressed = toHex(secp256k1.Point.fromBytes(fromHex(base.epk)).toBytes(false));
    expectError(
      () => decryptWith(recipientKey, { ...base, epk: uncompressed }),
      'encrypted message epk: expected 33 bytes, got 65',
    );
  });

  it('truncated or extended ciphertext', () => {
    expectError(() => decryptWith(recipientKey, { ...base, ct: base.ct.slice(0, -2) }), AUTH_FAILED);
    expectError(() => decryptWith(recipientKey, { ...base, ct: `${base.ct}00` }), AUTH_FAILED);
    // The tag alone, without the ciphertext in front of it.
    expectError(() => decryptWith(recipientKey, { ...base, ct: `0x${base.ct.slice(-32)}` }), AUTH_FAILED);
    for (const ct of ['0x', `0x${base.ct.slice(-30)}`]) {
      expectError(
        () => decryptWith(recipientKey, { ...base, ct }),
        'encrypted message ct is shorter than its authentication tag',
      );
    }
  });

  it('malformed nonce or ct', () => {
    expectError(
      () => decryptWith(recipientKey, { ...base, nonce: base.nonce.slice(0, -2) }),
      'encrypted message nonce: expected 12 bytes, got 11',
    );
    expectError(
      () => decryptWith(recipientKey, { ...base, ct: `${base.ct}0` }),
      'encrypted message ct: expected 0x-prefixed hex with an even number of digits',
    );
  });

  it('wrong or missing scheme', () => {
    expectError(
      () => decryptWith(recipientKey, { ...base, scheme: 'mgmc/ecies/v2' as typeof ECIES_SCHEME }),
      'encrypted message uses scheme "mgmc/ecies/v2", expected mgmc/ecies/v1',
    );
    const { scheme: _scheme, ...noScheme } = base;
    expectError(
      () => decryptWith(recipientKey, noScheme as EciesEnvelope),
      'encrypted message uses scheme undefined, expected mgmc/ecies/v1',
    );
    expectError(
      () => decryptWith(recipientKey, null as unknown as EciesEnvelope),
      'encrypted message uses scheme undefined, expected mgmc/ecies/v1',
    );
  });
});

describe('encryptTo refuses bad input with a clear Error', () => {
  const recipient = keyPairFromPrivateKey(det('enc input', 0));
  const sender = addressFromPrivateKey(det('enc input sender', 0));

  it('a recipient key that is not a curve point', () => {
    const bad = Uint8Array.from(recipient.publicKey);
    bad[0] = 0x05;
    for (const key of [bad, recipient.publicKey.subarray(0, 32), new Uint8Array(65)]) {
      expectError(
        () => encryptTo(key, enc('x'), { sender }),
        'recipient public key is not a valid secp256k1 public key (33 or 65 bytes on the curve)',
      );
    }
  });

  it('a sender that is not an address, or has a bad checksum', () => {
    expectError(() => encryptTo(recipient.publicKey, enc('x'), { sender: 'dso' }), /^sender address: expected 0x/);
    const typo = sender.replace(/[a-f]/, (c) => c.toUpperCase());
    expectError(
      () => encryptTo(recipient.publicKey, enc('x'), { sender: typo }),
      /^sender address: .* wrong EIP-55 checksum/,
    );
  });

  it('a nonce that is not 12 bytes', () => {
    expectError(
      () => encryptTo(recipient.publicKey, enc('x'), { sender, nonce: new Uint8Array(16) }),
      'ECIES nonce must be 12 bytes',
    );
  });
});
