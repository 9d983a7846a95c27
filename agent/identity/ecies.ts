/**
 * Encryption to a public key (ECIES): secp256k1 ECDH with an ephemeral key, HKDF-SHA256, AES-256-GCM.
 *
 * The shared secret is the x coordinate of the ECDH point as exactly 32 big-endian bytes. Implementations that turn
 * it into an integer and back lose a leading zero byte and then fail on about 1 message in 256; the test vectors
 * include such a secret. The associated data binds the sender's address, the recipient's key and the ephemeral key,
 * so a ciphertext cannot be re-addressed to another recipient or claimed by another sender without detection.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { concatBytes, fromHex, toHex, utf8 } from './bytes.js';
import { type Address, addressFromPublicKey, parseAddress } from './keys.js';

export const ECIES_SCHEME = 'mgmc/ecies/v1';
const TAG_LENGTH = 16;
const NONCE_LENGTH = 12;

/** What travels on the wire; all byte fields are 0x-hex. */
export interface EciesEnvelope {
  readonly scheme: typeof ECIES_SCHEME;
  /** Address of the party that encrypted (bound into the associated data, so it cannot be swapped). */
  readonly sender: Address;
  /** Address of the recipient's key. */
  readonly recipient: Address;
  /** Ephemeral compressed public key, 33 bytes. */
  readonly epk: string;
  readonly nonce: string;
  /** AES-256-GCM ciphertext followed by its 16-byte tag. */
  readonly ct: string;
}

export interface EncryptOptions {
  readonly sender: Address;
  /** Only for test vectors: a fixed ephemeral private key and nonce. Never set these in production. */
  readonly ephemeralPrivateKey?: Uint8Array;
  readonly nonce?: Uint8Array;
}

/** ECDH shared secret: the x coordinate of priv·pub as 32 bytes, leading zeros kept. */
export function sharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  // getSharedSecret returns a compressed point (prefix ‖ x); its x is already fixed-width.
  return secp256k1.getSharedSecret(privateKey, publicKey, true).subarray(1);
}

/** The AES-256 key for one message: HKDF-SHA256(ikm = shared secret, salt = ephemeral key, info = scheme ‖ recipient key). */
export function deriveMessageKey(
  shared: Uint8Array,
  ephemeralPublicKey: Uint8Array,
  recipientPublicKey: Uint8Array,
): Uint8Array {
  const info = concatBytes(utf8(ECIES_SCHEME), recipientPublicKey);
  return new Uint8Array(hkdfSync('sha256', shared, ephemeralPublicKey, info, 32));
}

export function encryptTo(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  options: EncryptOptions,
): EciesEnvelope {
  const recipientKey = compress(recipientPublicKey, 'recipient public key');
  const sender = parseAddress(options.sender, 'sender address');
  const ephemeralPrivate = options.ephemeralPrivateKey ?? secp256k1.utils.randomSecretKey();
  const epk = secp256k1.getPublicKey(ephemeralPrivate, true);
  const nonce = options.nonce ?? new Uint8Array(randomBytes(NONCE_LENGTH));
  if (nonce.length !== NONCE_LENGTH) throw new Error(`ECIES nonce must be ${NONCE_LENGTH} bytes`);
  const key = deriveMessageKey(sharedSecret(ephemeralPrivate, recipientKey), epk, recipientKey);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(associatedData(sender, recipientKey, epk));
  const ct = concatBytes(cipher.update(plaintext), cipher.final(), cipher.getAuthTag());
  return {
    scheme: ECIES_SCHEME,
    sender,
    recipient: addressFromPublicKey(recipientKey),
    epk: toHex(epk),
    nonce: toHex(nonce),
    ct: toHex(ct),
  };
}

/**
 * Decrypts an envelope addressed to `privateKey`. Throws an Error saying what is wrong: an envelope for another
 * recipient, a malformed field, or a failed authentication (tampered ciphertext, wrong sender, wrong key).
 */
export function decryptWith(privateKey: Uint8Array, envelope: EciesEnvelope): Uint8Array {
  if (envelope?.scheme !== ECIES_SCHEME) {
    throw new Error(`encrypted message uses scheme ${JSON.stringify(envelope?.scheme)}, expected ${ECIES_SCHEME}`);
  }
  const ownKey = secp256k1.getPublicKey(privateKey, true);
  const ownAddress = addressFromPublicKey(ownKey);
  const recipient = parseAddress(envelope.recipient, 'encrypted message recipient');
  if (recipient !== ownAddress) {
    throw new Error(`encrypted message is addressed to ${recipient}, not to this key (${ownAddress})`);
  }
  const sender = parseAddress(envelope.sender, 'encrypted message sender');
  const epk = compress(fromHex(envelope.epk, 'encrypted message epk', 33), 'encrypted message epk');
  const nonce = fromHex(envelope.nonce, 'encrypted message nonce', NONCE_LENGTH);
  const ct = fromHex(envelope.ct, 'encrypted message ct');
  if (ct.length < TAG_LENGTH) throw new Error('encrypted message ct is shorter than its authentication tag');
  const key = deriveMessageKey(sharedSecret(privateKey, epk), epk, ownKey);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  decipher.setAAD(associatedData(sender, ownKey, epk));
  decipher.setAuthTag(ct.subarray(ct.length - TAG_LENGTH));
  try {
    return concatBytes(decipher.update(ct.subarray(0, ct.length - TAG_LENGTH)), decipher.final());
  } catch {
    throw new Error(
      `encrypted message from ${sender} failed authentication: it was altered, or its sender or recipient was changed`,
    );
  }
}

function associatedData(sender: Address, recipientKey: Uint8Array, epk: Uint8Array): Uint8Array {
  return concatBytes(utf8(ECIES_SCHEME), fromHex(sender, 'sender', 20), recipientKey, epk);
}

function compress(publicKey: Uint8Array, what: string): Uint8Array {
  try {
    return secp256k1.Point.fromBytes(publicKey).toBytes(true);
  } catch {
    throw new Error(`${what} is not a valid secp256k1 public key (33 or 65 bytes on the curve)`);
  }
}
