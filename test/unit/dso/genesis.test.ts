import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GenesisError, genesisHash, loadGenesis, parseGenesis } from '../../../agent/dso/genesis.js';
import { DSO_CHAIN, genesisOf, T0, TempDir, V } from './helpers.js';

let dir: TempDir;
beforeEach(() => {
  dir = new TempDir();
});
afterEach(() => dir.cleanup());

function write(name: string, text: string): string {
  const path = dir.file(name);
  writeFileSync(path, text);
  return path;
}

function genesisError(fn: () => unknown): GenesisError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GenesisError);
    return err as GenesisError;
  }
  throw new Error('expected a GenesisError');
}

const valid = {
  chainId: DSO_CHAIN,
  name: 'feeder north',
  time: T0,
  validators: [V[2].address, V[0].address.toLowerCase(), V[1].address],
};

describe('DSO genesis', () => {
  it('loads a file, checksums and sorts the validators', () => {
    const path = write('genesis.json', JSON.stringify(valid, null, 2));
    const genesis = loadGenesis(path);
    expect(genesis.chainId).toBe(DSO_CHAIN);
    expect(genesis.name).toBe('feeder north');
    expect(genesis.time).toBe(T0);
    const expected = [V[0].address, V[1].address, V[2].address].sort((a, b) =>
      a.toLowerCase() < b.toLowerCase() ? -1 : 1,
    );
    expect(genesis.validators).toEqual(expected);
  });

  it('has one hash for one set, whatever order or case the file lists it in', () => {
    const a = parseGenesis(valid);
    const b = parseGenesis({ ...valid, validators: [...valid.validators].reverse().map((v) => v.toLowerCase()) });
    expect(genesisHash(a)).toBe(genesisHash(b));
    expect(genesisHash(a)).toMatch(/^0x[0-9a-f]{64}$/);
    expect(genesisHash(parseGenesis({ ...valid, name: 'feeder south' }))).not.toBe(genesisHash(a));
    expect(genesisHash(parseGenesis({ ...valid, chainId: DSO_CHAIN + 1 }))).not.toBe(genesisHash(a));
    expect(genesisHash(parseGenesis({ ...valid, validators: [V[0].address] }))).not.toBe(genesisHash(a));
    expect(genesisHash(genesisOf([V[0]]))).toBe(
      genesisHash(parseGenesis({ ...valid, validators: [V[0].address], name: 'test feeder', time: T0 })),
    );
  });

  it('names the file when it is missing', () => {
    const err = genesisError(() => loadGenesis(dir.file('nope.json')));
    expect(err.message).toContain('nope.json');
    expect(err.message).toContain('no such file');
  });

  it('points at the line and column of a JSON syntax error', () => {
    const path = write('bad.json', '{\n  "chainId": 7,\n  "name": "x",,\n}');
    const err = genesisError(() => loadGenesis(path));
    expect(err.message).toMatch(/bad\.json:3:\d+: the DSO genesis file is not valid JSON/);
  });

  it('names the field of every kind of bad value', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ ...valid, chainId: -1 }, 'chainId', /non-negative integer/],
      [{ ...valid, chainId: 1.5 }, 'chainId', /non-negative integer/],
      [{ ...valid, time: '2026' }, 'time', /ms since the Unix epoch/],
      [{ ...valid, name: '' }, 'name', /non-empty string/],
      [{ ...valid, validators: [] }, 'validators', /non-empty array/],
      [{ ...valid, validators: [V[0].address, '0x1234'] }, 'validators[1]', /40 hex digits/],
      [{ ...valid, validators: [V[0].address, V[0].address.toLowerCase()] }, 'validators[1]', /listed twice/],
      [{ ...valid, extra: 1 }, 'extra', /unknown field/],
    ];
    for (const [input, field, message] of cases) {
      const path = write('g.json', JSON.stringify(input));
      const err = genesisError(() => loadGenesis(path));
      expect(err.field, field).toBe(field);
      expect(err.message, field).toContain(`g.json: ${field}: `);
      expect(err.message, field).toMatch(message);
    }
    const { name: _, ...noName } = valid;
    expect(genesisError(() => parseGenesis(noName)).message).toBe('genesis: name: missing');
    expect(genesisError(() => parseGenesis([])).message).toMatch(/must be a JSON object/);
  });

  it('refuses a mixed-case address with a wrong checksum', () => {
    const address = V[0].address;
    const at = [...address].findIndex((c, i) => i > 1 && /[a-fA-F]/.test(c));
    const c = address[at] as string;
    const wrong = `${address.slice(0, at)}${c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()}${address.slice(at + 1)}`;
    const err = genesisError(() => parseGenesis({ ...valid, validators: [wrong] }));
    expect(err.field).toBe('validators[0]');
  });
});
