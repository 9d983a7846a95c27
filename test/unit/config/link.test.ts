/** The link and dso sections: defaults, what each role requires, keys of the other role, URL and TLS mistakes. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkConfigFile, formatIssue, loadConfig, SecretValue } from '../../../agent/config/index.js';
import { repoRoot } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mgmc-linkcheck-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VALIDATOR = '0x7e53597bb84f9fA36349cA45eC75b6Ac129887B4';
writeFileSync(
  join(dir, 'genesis.json'),
  JSON.stringify({ chainId: 1337, name: 'test', time: 0, validators: [VALIDATOR] }),
);
writeFileSync(join(dir, 'link-password'), 'broker secret\n');

const ENV = { P: 'x', LINK_PASSWORD: 'from env' };

const head = (role: 'mgmc' | 'dso') => `role: ${role}
site: { name: x }
identity: { keystore: ./k.json, passphrase: env:P }
`;

let n = 0;
function write(text: string): string {
  n += 1;
  const file = join(dir, `c${n}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** The problems of a config, without the file name: `:line:column  path  expected  hint`. */
async function issues(text: string): Promise<string[]> {
  const file = write(text);
  const result = await checkConfigFile(file, { env: ENV });
  return result.issues.map((issue) => formatIssue(issue).slice(file.length));
}

describe('link and dso sections', () => {
  it('an MGMC without a link runs offline: no link, dso defaults filled in', async () => {
    const config = await loadConfig(write(head('mgmc')), { env: ENV });
    expect(config.link).toBeUndefined();
    expect(config.dso).toMatchObject({
      trade: { buy: true, sell: true },
      anonymEpoch: 0,
      policy: { mode: 'manual', allow: [] },
      sealEverySeconds: 10,
      sealEveryEntries: 256,
      anchor: true,
      shareGroup: 'dso-verifiers',
    });
    expect(config.dso.genesis).toBeUndefined();
    expect(config.ledger.pruneAfterDays).toBeUndefined();
  });

  it('an MGMC with a link: defaults, absolute paths, the password as a secret', async () => {
    const config = await loadConfig(
      write(`${head('mgmc')}ledger: { pruneAfterDays: 30 }
link:
  url: mqtts://broker.example:8883
  tls: { ca: ./ca.pem, cert: ./c.pem, key: ./k.pem }
  username: site-1
  password: file:./link-password
dso:
  genesis: ./genesis.json
  feederBus: bus-18
  trade: { sell: false }
  anonymEpoch: 3
`),
      { env: ENV },
    );
    expect(config.ledger.pruneAfterDays).toBe(30);
    const link = config.link;
    expect(link).toMatchObject({
      url: 'mqtts://broker.example:8883',
      username: 'site-1',
      keepaliveSeconds: 30,
      maxBlockBytes: 4 * 1024 * 1024,
      receiptTimeoutMs: 60_000,
      tls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') },
    });
    expect(link?.password).toBeInstanceOf(SecretValue);
    expect(link?.password?.reveal()).toBe('broker secret');
    expect(JSON.stringify(link)).not.toContain('broker secret');
    expect(config.dso).toMatchObject({
      genesis: join(dir, 'genesis.json'),
      feederBus: 'bus-18',
      trade: { buy: true, sell: false },
      anonymEpoch: 3,
    });
  });

  it('a DSO node: policy, sealing and sharing settings', async () => {
    const config = await loadConfig(
      write(`${head('dso')}link: { url: "mqtt://127.0.0.1:1883" }
dso:
  genesis: ./genesis.json
  policy: { mode: allow-list, allow: ["${VALIDATOR}", "0xb0910508cd5f61199237bd3155632f4e61908ea2"] }
  sealEveryEntries: 64
  anchor: false
  shareGroup: feeder-north
`),
      { env: ENV },
    );
    expect(config.dso.policy).toEqual({
      mode: 'allow-list',
      allow: [VALIDATOR, '0xb0910508cd5f61199237bd3155632f4e61908ea2'],
    });
    expect(config.dso).toMatchObject({ sealEverySeconds: 10, sealEveryEntries: 64, anchor: false });
    expect(config.dso.shareGroup).toBe('feeder-north');
  });

  it('says what each role requires', async () => {
    expect(await issues(`${head('dso')}`)).toEqual([
      ':1:1  dso.genesis  a DSO genesis file for role dso  add genesis: ./dso-genesis.json (the file every node of the chain shares)',
      ':1:1  link  a link section for role dso  a DSO node reaches its MGMCs only over MQTT: add link: { url: ... }',
    ]);
    expect(await issues(`${head('mgmc')}link: { url: "mqtts://b:8883" }\ndso: { trade: { buy: false } }\n`)).toEqual([
      ':5:1  dso.feederBus  the feeder bus when a link is configured  the feeder bus this site connects to, as the DSO names it',
      ":5:1  dso.genesis  a DSO genesis file when a link is configured  add genesis: with the DSO's genesis file (ask the DSO)",
    ]);
  });

  it('reports keys written for the other role, at their line (defaults do not count)', async () => {
    expect(
      await issues(`${head('mgmc')}dso:
  feederBus: b1
  policy: { mode: manual }
  anchor: false
`),
    ).toEqual([
      ':6:11  dso.policy  no dso.policy for role mgmc  dso.policy is read by role dso only; remove it',
      ':7:11  dso.anchor  no dso.anchor for role mgmc  dso.anchor is read by role dso only; remove it',
    ]);
    expect(
      await issues(`${head('dso')}link: { url: "mqtts://b" }
ledger: { pruneAfterDays: 7 }
dso:
  genesis: ./genesis.json
  feederBus: b1
  trade: { buy: true }
`),
    ).toEqual([
      ':5:27  ledger.pruneAfterDays  no ledger.pruneAfterDays for role dso  an MGMC setting; remove it',
      ':8:14  dso.feederBus  no dso.feederBus for role dso  dso.feederBus is read by role mgmc only; remove it',
      ':9:10  dso.trade  no dso.trade for role dso  dso.trade is read by role mgmc only; remove it',
    ]);
  });

  it('catches broker URL and TLS mistakes', async () => {
    const dso = `dso: { genesis: ./genesis.json, feederBus: b }\n`;
    expect(await issues(`${head('mgmc')}link: { url: "tcp://b:1883" }\n${dso}`)).toEqual([
      ":4:14  link.url  text matching ^mqtts?://  got 'tcp://b:1883'",
    ]);
    expect(await issues(`${head('mgmc')}link: { url: "mqtts://me:pw@b:8883/x" }\n${dso}`)).toEqual([
      ':4:14  link.url  a URL without user name or password  put the user name in link.username and the password in link.password (env:NAME or file:PATH)',
      ":4:14  link.url  only scheme, host and port in the URL  remove '/x'",
    ]);
    expect(
      await issues(`${head('mgmc')}link:
  url: mqtt://b:1883
  tls: { cert: ./c.pem }
  password: env:LINK_PASSWORD
${dso}`),
    ).toEqual([
      ':5:8  link.url  mqtts:// when link.tls is set  mqtt:// is plain TCP and would ignore the TLS files',
      ':6:16  link.tls.cert  link.tls.key with link.tls.cert  a client certificate needs its private key',
      ':7:13  link.password  link.username with link.password  the broker checks a password against a user name',
    ]);
    const inline = await issues(`${head('mgmc')}link: { url: "mqtts://b", username: u, password: hunter2 }\n${dso}`);
    expect(inline).toHaveLength(1);
    expect(inline[0]).toMatch(/link\.password {2}a secret reference/);
    expect(inline[0]).not.toContain('hunter2');
  });

  it('checks the allow-list addresses (the genesis file itself is read by the agent, not the config check)', async () => {
    const lines = await issues(`${head('dso')}link: { url: "mqtts://b" }
dso:
  genesis: ./no-such-genesis.json
  policy:
    allow:
      - "0x7E53597bb84f9fA36349cA45eC75b6Ac129887B4"
      - "${VALIDATOR}"
      - "${VALIDATOR.toLowerCase()}"
`);
    expect(lines).toEqual([
      ':9:9  dso.policy.allow[0]  an address with a valid EIP-55 checksum  0x7E53597bb84f9fA36349cA45eC75b6Ac129887B4 has a wrong EIP-55 checksum (did you mean 0x7e53597bb84f9fA36349cA45eC75b6Ac129887B4? check for a typo)',
      ':11:9  dso.policy.allow[2]  each address once  also dso.policy.allow[1]',
    ]);
    expect(
      await issues(
        `${head('dso')}link: { url: "mqtts://b" }\ndso: { genesis: ./genesis.json, policy: { allow: ["0x1234"] } }\n`,
      ),
    ).toEqual([":5:51  dso.policy.allow[0]  text matching ^0x[0-9a-fA-F]{40}$  got '0x1234'"]);
  });

  it.each([
    ['link: { url: "mqtts://b", keepaliveSeconds: 0 }', 'link.keepaliveSeconds'],
    ['link: { url: "mqtts://b", maxBlockBytes: 1000 }', 'link.maxBlockBytes'],
    ['link: { url: "mqtts://b", receiptTimeoutMs: 10 }', 'link.receiptTimeoutMs'],
    ['link: { url: "mqtts://b", clientId: "a b" }', 'link.clientId'],
    ['link: { url: "mqtts://b", tls: { crt: ./c.pem } }', 'link.tls.crt'],
    ['link: { username: u }', 'link.url'],
    ['dso: { anonymEpoch: -1 }', 'dso.anonymEpoch'],
    ['dso: { trade: { buy: yes } }', 'dso.trade.buy'],
    ['ledger: { pruneAfterDays: -1 }', 'ledger.pruneAfterDays'],
  ])('rejects %s', async (line, path) => {
    const found = await issues(`${head('mgmc')}${line}\n`);
    expect(
      found.some((issue) => issue.includes(`  ${path}  `)),
      found.join('\n'),
    ).toBe(true);
  });

  it.each([
    ['dso: { policy: { mode: auto } }', 'dso.policy.mode'],
    ['dso: { shareGroup: "a/b" }', 'dso.shareGroup'],
    ['dso: { sealEverySeconds: 0 }', 'dso.sealEverySeconds'],
  ])('rejects %s for role dso', async (line, path) => {
    const found = await issues(`${head('dso')}link: { url: "mqtts://b" }\n${line}\n`);
    expect(
      found.some((issue) => issue.includes(`  ${path}  `)),
      found.join('\n'),
    ).toBe(true);
  });

  it('accepts the shipped DSO example', async () => {
    const config = await loadConfig(join(repoRoot, 'examples/dso.yaml'), { env: { MGMC_KEY_PASSPHRASE: 'x' } });
    expect(config.role).toBe('dso');
    expect(config.dso.policy.mode).toBe('manual');
    expect(config.dso.genesis).toBe(join(repoRoot, 'examples/dso-genesis.json'));
    expect(config.store.path).toBe(join(repoRoot, 'examples/data/dso.db'));
  });
});
