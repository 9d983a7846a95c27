/**
 * Cross-checks of the `link` and `dso` sections that a schema cannot express: what each role requires (a DSO node
 * needs its genesis and a link; an MGMC with a link needs the genesis and its feeder bus), keys written for the
 * other role, a broker URL that would silently ignore TLS or carry credentials, TLS files that only work in pairs,
 * allow-list addresses with a wrong checksum or listed twice, a market (dso.market) whose gate, price band or interval
 * do not fit together. Like every path, the genesis file is not read here: the
 * part of the agent that uses it reports a missing or broken file (docs/configuration.md, Paths).
 */
import { parseAddress } from '../identity/keys.js';
import { DSO_KEYS_OF_ROLE } from './link-schema.js';
import type { CrossCheck } from './loader.js';
import type { AgentConfig } from './schema.js';

export const checkLink: CrossCheck<AgentConfig> = (config, report, written = () => true) => {
  const role = config.role;
  const link = config.link;

  if (role === 'dso') {
    if (link === undefined) {
      report(
        ['link'],
        'a link section for role dso',
        'a DSO node reaches its MGMCs only over MQTT: add link: { url: ... }',
      );
    }
    if (config.dso.genesis === undefined) {
      report(
        ['dso', 'genesis'],
        'a DSO genesis file for role dso',
        'add genesis: ./dso-genesis.json (the file every node of the chain shares)',
      );
    }
  } else if (link !== undefined) {
    if (config.dso.genesis === undefined) {
      report(
        ['dso', 'genesis'],
        'a DSO genesis file when a link is configured',
        "add genesis: with the DSO's genesis file (ask the DSO)",
      );
    }
    if (config.dso.feederBus === undefined) {
      report(
        ['dso', 'feederBus'],
        'the feeder bus when a link is configured',
        'the feeder bus this site connects to, as the DSO names it',
      );
    }
  }

  const other = role === 'dso' ? 'mgmc' : 'dso';
  for (const key of DSO_KEYS_OF_ROLE[other]) {
    if (written(['dso', key])) {
      report(['dso', key], `no dso.${key} for role ${role}`, `dso.${key} is read by role ${other} only; remove it`);
    }
  }
  if (role === 'dso' && written(['ledger', 'pruneAfterDays'])) {
    report(['ledger', 'pruneAfterDays'], 'no ledger.pruneAfterDays for role dso', 'an MGMC setting; remove it');
  }

  if (link !== undefined) checkUrl(config, report);
  if (role === 'dso') checkDsoMarket(config, report, written);

  if (role === 'dso') {
    const seen = new Map<string, number>();
    config.dso.policy.allow.forEach((text, i) => {
      try {
        parseAddress(text);
      } catch (err) {
        report(
          ['dso', 'policy', 'allow', i],
          'an address with a valid EIP-55 checksum',
          (err as Error).message.replace(/^address: /, ''),
        );
        return;
      }
      const previous = seen.get(text.toLowerCase());
      if (previous !== undefined) {
        report(['dso', 'policy', 'allow', i], 'each address once', `also dso.policy.allow[${previous}]`);
      } else {
        seen.set(text.toLowerCase(), i);
      }
    });
  }
};

function checkDsoMarket(
  config: AgentConfig,
  report: Parameters<CrossCheck<AgentConfig>>[1],
  written: (path: readonly (string | number)[]) => boolean,
): void {
  const market = config.dso.market;
  if (market === undefined) return;
  if (market.gateMinutes >= market.leadMinutes) {
    report(
      ['dso', 'market', 'gateMinutes'],
      `less than leadMinutes (${market.leadMinutes})`,
      'the market opens leadMinutes before an interval and closes gateMinutes before it; it would never be open',
    );
  }
  if (market.exportPrice > market.importPrice) {
    report(
      ['dso', 'market', 'exportPrice'],
      `at most importPrice (${market.importPrice})`,
      'buying from the grid to sell it back would be free money',
    );
  }
  const grid = config.dso.grid;
  if (grid !== undefined && grid.intervalMinutes !== market.intervalMinutes) {
    // Point at the one written in the file (the other may be a default).
    const gridWritten = written(['dso', 'grid', 'intervalMinutes']);
    report(
      gridWritten ? ['dso', 'grid', 'intervalMinutes'] : ['dso', 'market', 'intervalMinutes'],
      gridWritten
        ? `the market interval (dso.market.intervalMinutes: ${market.intervalMinutes})`
        : `the grid interval (dso.grid.intervalMinutes: ${grid.intervalMinutes})`,
      'the network check runs on the market intervals: use the same length in dso.grid and dso.market',
    );
  }
}

function checkUrl(config: AgentConfig, report: Parameters<CrossCheck<AgentConfig>>[1]): void {
  const link = config.link;
  if (link === undefined) return;
  let url: URL;
  try {
    url = new URL(link.url);
  } catch {
    report(['link', 'url'], 'a URL such as mqtts://broker.example:8883', `'${link.url}' does not parse as a URL`);
    return;
  }
  if (url.hostname === '') report(['link', 'url'], 'a broker host in the URL', 'e.g. mqtts://broker.example:8883');
  if (url.username !== '' || url.password !== '') {
    report(
      ['link', 'url'],
      'a URL without user name or password',
      'put the user name in link.username and the password in link.password (env:NAME or file:PATH)',
    );
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    report(
      ['link', 'url'],
      'only scheme, host and port in the URL',
      `remove '${url.pathname}${url.search}${url.hash}'`,
    );
  }
  const tls = link.tls;
  const anyTls = tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined;
  if (url.protocol === 'mqtt:' && anyTls) {
    report(['link', 'url'], 'mqtts:// when link.tls is set', 'mqtt:// is plain TCP and would ignore the TLS files');
  }
  if (tls.cert !== undefined && tls.key === undefined) {
    report(['link', 'tls', 'cert'], 'link.tls.key with link.tls.cert', 'a client certificate needs its private key');
  }
  if (tls.key !== undefined && tls.cert === undefined) {
    report(['link', 'tls', 'key'], 'link.tls.cert with link.tls.key', 'a private key needs its client certificate');
  }
  if (link.password !== undefined && link.username === undefined) {
    report(
      ['link', 'password'],
      'link.username with link.password',
      'the broker checks a password against a user name',
    );
  }
}
