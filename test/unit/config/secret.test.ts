import { format, inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig, SecretValue } from '../../../agent/config/index.js';
import { fixture } from './helpers.js';

const value = 'S3cr3t-passphrase-value';

describe('SecretValue', () => {
  const secret = new SecretValue('env:MGMC_KEY_PASSPHRASE', value);

  it('gives the value only through reveal()', () => {
    expect(secret.reveal()).toBe(value);
  });

  it('prints as its reference in every way of printing', () => {
    const label = '[secret env:MGMC_KEY_PASSPHRASE]';
    expect(String(secret)).toBe(label);
    expect(`${secret}`).toBe(label);
    expect(JSON.stringify(secret)).toBe(JSON.stringify(label));
    expect(inspect(secret)).toBe(label);
    expect(format('%s %o %O %j', secret, secret, secret, secret)).toBe(`${label} ${label} ${label} "${label}"`);
  });

  it('does not expose the value as a property', () => {
    expect(Object.keys(secret)).toEqual(['reference']);
    expect(JSON.stringify({ ...secret })).not.toContain(value);
    expect(JSON.stringify(Object.getOwnPropertyDescriptors(secret))).not.toContain(value);
  });
});

describe('a loaded config', () => {
  it('never shows a secret in JSON or inspect output', async () => {
    const config = await loadConfig(fixture('minimal.yaml'), { env: {} });
    const revealed = config.identity.passphrase.reveal();
    expect(revealed).toBe('correct horse battery staple');
    const json = JSON.stringify(config);
    expect(json).not.toContain(revealed);
    expect(JSON.parse(json).identity.passphrase).toBe('[secret file:keys/passphrase.txt]');
    expect(inspect(config, { depth: Number.POSITIVE_INFINITY, showHidden: true })).not.toContain(revealed);
    expect(format('%o', config)).not.toContain(revealed);
  });
});
