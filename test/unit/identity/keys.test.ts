import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from '../../../agent/identity/bytes.js';
import {
  addressFromPrivateKey,
  addressFromPublicKey,
  generateKeyPair,
  isAddress,
  keccak256,
  keyPairFromPrivateKey,
  parseAddress,
  toChecksumAddress,
} from '../../../agent/identity/keys.js';

/** The test cases listed in EIP-55 itself (https://eips.ethereum.org/EIPS/eip-55, "Test Cases"). */
const EIP55_ALL_CAPS = ['0x52908400098527886E0F7030069857D2E4169EE7', '0x8617E340B3D01FA5F11F306F4090FD50E238070D'];
const EIP55_ALL_LOWER = ['0xde709f2102306220921060314715629080e2fb77', '0x27b1fdb04752bbc536007a920d24acb045561c26'];
const EIP55_NORMAL = [
  '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
  '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
  '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB',
  '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb',
];
const EIP55_ALL = [...EIP55_ALL_CAPS, ...EIP55_ALL_LOWER, ...EIP55_NORMAL];

/**
 * Published private key → address pairs. These keys are public test keys: never use them for anything real.
 * - web3.js 1.x docs, docs/web3-eth-accounts.rst (github.com/web3/web3.js): `create`, `privateKeyToAccount` and the
 *   `sign`/`recover`/`encrypt` examples (the last gives 0x4c08… → 0x2c7536E3…).
 * - web3.js 4.x docs, https://docs.web3js.org/api/web3-eth-accounts/function/recover (0xbe63… → 0xEB014f8c…).
 * - Hardhat/Anvil default accounts ("test test … junk" mnemonic): keys for #0 and #1 from
 *   https://hardhat.org/hardhat-network/ (`npx hardhat node` output), #2 to #4 from the same `hardhat node` output as
 *   republished in gist.github.com/Shih-Yu/cf5cc2662991f714f1c8bf4b9b6782c4 and docs.rs/newton-testing-utils (anvil.rs);
 *   checksummed addresses from https://getfoundry.sh/anvil ("Available Accounts").
 * - Private key 1 → 0x7E5F4552…: the well-known address of the scalar 1 (e.g. ethers' Wallet self-tests, ape's tests).
 */
const KNOWN_KEYS: readonly { source: string; privateKey: string; address: string }[] = [
  {
    source: 'web3.js 1.x docs (accounts.sign / recover / encrypt)',
    privateKey: '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318',
    address: '0x2c7536E3605D9C16a7a3D7b1898e529396a65c23',
  },
  {
    source: 'web3.js 1.x docs (accounts.privateKeyToAccount)',
    privateKey: '0x348ce564d427a3311b6536bbcff9390d69395b06ed6c486954e971d960fe8709',
    address: '0xb8CE9ab6943e0eCED004cDe8e3bBed6568B2Fa01',
  },
  {
    source: 'web3.js 1.x docs (accounts.create with entropy)',
    privateKey: '0xd7325de5c2c1cf0009fac77d3d04a9c004b038883446b065871bc3e831dcd098',
    address: '0xF2CD2AA0c7926743B1D4310b2BC984a0a453c3d4',
  },
  {
    source: 'web3.js 1.x docs (accounts.create with randomHex)',
    privateKey: '0xcc505ee6067fba3f6fc2050643379e190e087aeffe5d958ab9f2f3ed3800fa4e',
    address: '0xe78150FaCD36E8EB00291e251424a0515AA1FF05',
  },
  {
    source: 'web3.js 4.x docs (accounts.recover)',
    privateKey: '0xbe6383dad004f233317e46ddb46ad31b16064d14447a95cc1d8c8d4bc61c3728',
    address: '0xEB014f8c8B418Db6b45774c326A0E64C78914dC0',
  },
  {
    source: 'Hardhat/Anvil account #0',
    privateKey: '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
    address: '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266',
  },
  {
    source: 'Hardhat/Anvil account #1',
    privateKey: '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
    address: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  },
  {
    source: 'Hardhat/Anvil account #2',
    privateKey: '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
    address: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC',
  },
  {
    source: 'Hardhat/Anvil account #3',
    privateKey: '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
    address: '0x90F79bf6EB2c4f870365E785982E1f101E93b906',
  },
  {
    source: 'Hardhat/Anvil account #4',
    privateKey: '0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a',
    address: '0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65',
  },
  {
    source: 'private key 1',
    privateKey: '0x0000000000000000000000000000000000000000000000000000000000000001',
    address: '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf',
  },
];

const N = secp256k1.Point.Fn.ORDER;

function scalarBytes(k: bigint): Uint8Array {
  return fromHex(`0x${k.toString(16).padStart(64, '0')}`);
}

/** Flips the case of the hex letter at body index `i` (0..39) of a 0x-address. */
function flipCase(address: string, i: number): string {
  const c = address[i + 2] as string;
  const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
  return `${address.slice(0, i + 2)}${flipped}${address.slice(i + 3)}`;
}

describe('keccak256', () => {
  it('is Keccak-256 (Ethereum), not NIST SHA3-256', () => {
    // keccak256 of the empty string: go-ethereum's types.EmptyCodeHash / crypto.Keccak256Hash(nil).
    expect(toHex(keccak256(new Uint8Array(0)))).toBe(
      '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
    );
  });
});

describe('toChecksumAddress (EIP-55)', () => {
  it.each(EIP55_ALL)('reproduces the EIP-55 test case %s from its lower-case form', (address) => {
    expect(toChecksumAddress(address.toLowerCase())).toBe(address);
  });

  it.each(EIP55_ALL)('reproduces the EIP-55 test case %s from its upper-case form', (address) => {
    expect(toChecksumAddress(`0x${address.slice(2).toUpperCase()}`)).toBe(address);
  });

  it('matches an independent implementation of the EIP-55 rule over random addresses', () => {
    for (let i = 0; i < 200; i++) {
      const lower = toHex(keccak_256(utf8(`eip55 ${i}`)).subarray(0, 20)).slice(2);
      const hash = toHex(keccak_256(utf8(lower))).slice(2);
      let expected = '0x';
      for (let j = 0; j < 40; j++) {
        const c = lower[j] as string;
        expected += Number.parseInt(hash[j] as string, 16) >= 8 ? c.toUpperCase() : c;
      }
      expect(toChecksumAddress(`0x${lower}`)).toBe(expected);
    }
  });

  it('rejects text that is not 20 bytes of hex', () => {
    expect(() => toChecksumAddress('0x1234')).toThrow(/expected 20 bytes/);
    expect(() => toChecksumAddress('5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed')).toThrow(/0x-prefixed hex/);
  });
});

describe('parseAddress and isAddress', () => {
  it.each(EIP55_ALL)('accepts the EIP-55 test case %s as written', (address) => {
    expect(parseAddress(address)).toBe(address);
    expect(isAddress(address)).toBe(true);
  });

  it.each(EIP55_NORMAL)('accepts all-lower and all-upper forms of %s and returns the checksummed form', (address) => {
    const body = address.slice(2);
    expect(parseAddress(`0x${body.toLowerCase()}`)).toBe(address);
    expect(parseAddress(`0x${body.toUpperCase()}`)).toBe(address);
  });

  it('rejects a mixed-case address with a wrong checksum and suggests the right one', () => {
    // EIP-55 test case with its first letter's case changed ("aA" → "aa").
    const typo = '0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
    expect(() => parseAddress(typo, 'dso address')).toThrow(
      'dso address: 0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed has a wrong EIP-55 checksum ' +
        '(did you mean 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed? check for a typo)',
    );
    expect(isAddress(typo)).toBe(false);
  });

  it.each(EIP55_NORMAL)('detects every single-letter case change in %s', (address) => {
    for (let i = 0; i < 40; i++) {
      if (!/[a-fA-F]/.test(address[i + 2] as string)) continue;
      const typo = flipCase(address, i);
      const body = typo.slice(2);
      // Flipping the only upper-case (or only lower-case) letter leaves an all-one-case address, which is accepted.
      if (body === body.toLowerCase() || body === body.toUpperCase()) continue;
      expect(() => parseAddress(typo)).toThrow(`did you mean ${address}?`);
    }
  });

  it('rejects a mixed-case typo in the digits too (a changed digit changes the whole checksum)', () => {
    // One digit of an EIP-55 test case changed (6053 → 6054); its case pattern no longer fits the new address.
    const typo = '0x5aAeb6054F3E94C9b9A09f33669435E7Ef1BeAed';
    expect(() => parseAddress(typo)).toThrow(/wrong EIP-55 checksum/);
  });

  it.each([
    ['no 0x prefix', '5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'],
    ['upper-case 0X prefix', '0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'],
    ['39 hex digits', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe'],
    ['41 hex digits', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed0'],
    ['a non-hex letter', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg'],
    ['surrounding space', ' 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'],
    ['the empty string', ''],
  ])('rejects %s with a message naming the expected form', (_label, text) => {
    expect(() => parseAddress(text, 'meter address')).toThrow(
      /^meter address: expected 0x followed by 40 hex digits, got "/,
    );
    expect(isAddress(text)).toBe(false);
  });

  it('rejects values that are not strings without throwing a TypeError', () => {
    for (const value of [undefined, null, 42, {}, ['0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed']]) {
      expect(() => parseAddress(value as unknown as string)).toThrow(/expected 0x followed by 40 hex digits/);
      expect(isAddress(value)).toBe(false);
    }
  });
});

describe('private key → address', () => {
  it.each(KNOWN_KEYS)('$source: $privateKey → $address', ({ privateKey, address }) => {
    const priv = fromHex(privateKey);
    expect(addressFromPrivateKey(priv)).toBe(address);
    const kp = keyPairFromPrivateKey(priv);
    expect(kp.address).toBe(address);
    expect(kp.privateKey).toEqual(priv);
  });

  it('derives the same address from the compressed and the uncompressed public key', () => {
    for (const { privateKey, address } of KNOWN_KEYS) {
      const kp = keyPairFromPrivateKey(fromHex(privateKey));
      expect(kp.publicKey).toHaveLength(33);
      expect([0x02, 0x03]).toContain(kp.publicKey[0]);
      const uncompressed = secp256k1.getPublicKey(kp.privateKey, false);
      expect(addressFromPublicKey(kp.publicKey)).toBe(address);
      expect(addressFromPublicKey(uncompressed)).toBe(address);
      // Independently: keccak256 of the 64-byte X ‖ Y, last 20 bytes.
      expect(toHex(keccak_256(uncompressed.subarray(1)).subarray(12))).toBe(address.toLowerCase());
    }
  });

  it('accepts the extreme valid scalars 1 and n - 1', () => {
    expect(() => keyPairFromPrivateKey(scalarBytes(1n))).not.toThrow();
    const top = keyPairFromPrivateKey(scalarBytes(N - 1n));
    // (n - 1)·G = -G: same x as the key 1, other y, so another address.
    expect(top.address).not.toBe('0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf');
    expect(toHex(top.publicKey.subarray(1))).toBe(toHex(keyPairFromPrivateKey(scalarBytes(1n)).publicKey.subarray(1)));
  });

  it.each([
    ['zero', new Uint8Array(32)],
    ['n (the group order)', scalarBytes(N)],
    ['n + 1', scalarBytes(N + 1n)],
    ['2^256 - 1', new Uint8Array(32).fill(0xff)],
    ['31 bytes', new Uint8Array(31).fill(1)],
    ['33 bytes', new Uint8Array(33).fill(1)],
    ['a 1-byte key', new Uint8Array([1])],
    ['an empty key', new Uint8Array(0)],
  ])('rejects %s as a private key', (_label, key) => {
    const message = 'private key is not a valid secp256k1 scalar (must be 32 bytes, 0 < k < n)';
    expect(() => keyPairFromPrivateKey(key)).toThrow(message);
    expect(() => addressFromPrivateKey(key)).toThrow(message);
  });
});

describe('public key → address', () => {
  it('rejects public keys that are not on the curve or have the wrong length', () => {
    const { publicKey } = generateKeyPair();
    const badPrefix = Uint8Array.from(publicKey);
    badPrefix[0] = 0x05;
    expect(() => addressFromPublicKey(badPrefix)).toThrow();
    expect(() => addressFromPublicKey(publicKey.subarray(0, 32))).toThrow();
    expect(() => addressFromPublicKey(new Uint8Array(0))).toThrow();
    // x = 5 is not the x coordinate of any secp256k1 point (5³ + 7 = 132 is not a square mod p).
    const offCurve = new Uint8Array(33);
    offCurve[0] = 0x02;
    offCurve[32] = 5;
    expect(() => addressFromPublicKey(offCurve)).toThrow();
  });

  // Any 65 bytes hashed blindly would "have" an address: a 65-byte key must be an uncompressed curve point too.
  it('rejects a 65-byte public key that is not an uncompressed curve point', () => {
    const junk = new Uint8Array(65).fill(1);
    expect(() => addressFromPublicKey(junk)).toThrow();
  });
});

describe('generateKeyPair', () => {
  it('makes distinct, valid key pairs whose parts agree', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const kp = generateKeyPair();
      expect(kp.privateKey).toHaveLength(32);
      expect(secp256k1.utils.isValidSecretKey(kp.privateKey)).toBe(true);
      expect(toHex(kp.publicKey)).toBe(toHex(secp256k1.getPublicKey(kp.privateKey, true)));
      expect(kp.address).toBe(addressFromPrivateKey(kp.privateKey));
      expect(parseAddress(kp.address)).toBe(kp.address);
      seen.add(kp.address);
    }
    expect(seen.size).toBe(20);
  });
});
