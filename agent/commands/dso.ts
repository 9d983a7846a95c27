/**
 * mgmc dso approve|reject|revoke|list: the DSO operator's hand on the MGMC registry. They change the DSO database
 * named by the config's store.path, next to the running DSO (SQLite WAL; every change is one short transaction);
 * the DSO picks the change up on its next registry refresh and publishes the answers and the new authorized set
 * (these commands sign and send nothing themselves, so they need no broker).
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { systemClock } from '../clock.js';
import { type AgentConfig, loadConfig } from '../config/index.js';
import { openDsoDatabase } from '../dso/database.js';
import { Registry, type RegistryChange, type RegistryEntry, RegistryError } from '../dso/registry.js';
import { parseAddress } from '../identity/keys.js';
import type { SqliteDatabase } from '../store/database.js';
import { CommandError, EXIT, type Io, table } from './io.js';

export interface DsoOptions {
  readonly config: string;
  readonly json: boolean;
}

export interface DsoChangeOptions extends DsoOptions {
  readonly reason?: string;
  /** Who decided, for the record; the login name when left out. */
  readonly by?: string;
}

export async function dsoApprove(io: Io, address: string, options: DsoChangeOptions): Promise<number> {
  return change(io, address, options, (registry, mgmc, by) => registry.approve(mgmc, by));
}

export async function dsoReject(io: Io, address: string, options: DsoChangeOptions): Promise<number> {
  return change(io, address, options, (registry, mgmc, by) =>
    registry.reject(mgmc, options.reason ?? 'rejected by the DSO operator', by),
  );
}

export async function dsoRevoke(io: Io, address: string, options: DsoChangeOptions): Promise<number> {
  return change(io, address, options, (registry, mgmc, by) =>
    registry.revoke(mgmc, options.reason ?? 'revoked by the DSO operator', by),
  );
}

export async function dsoList(io: Io, options: DsoOptions): Promise<number> {
  return withRegistry(io, options.config, (registry) => {
    const entries = registry.list();
    // The set as stored in the database (the cache of this short-lived Registry was loaded from it just now).
    const set = registry.authorizedSet();
    if (options.json) {
      io.out(JSON.stringify({ authorizedSet: set, mgmcs: entries.map(entryJson) }));
      return EXIT.ok;
    }
    if (entries.length === 0) {
      io.out('no MGMC has registered with this DSO yet');
    } else {
      io.out(
        table(
          ['MGMC', 'STATUS', 'ANONYM', 'BUS', 'METERS', 'UPDATED', 'NOTE'],
          entries.map((e) => [
            e.mgmc,
            e.status,
            e.anonym ?? '-',
            e.bus ?? '-',
            e.meterList.length,
            new Date(e.updated).toISOString(),
            note(e),
          ]),
        ),
      );
    }
    io.out(`authorized set: serial ${set.serial}, ${set.anonyms.length} anonym${set.anonyms.length === 1 ? '' : 's'}`);
    return EXIT.ok;
  });
}

function note(e: RegistryEntry): string {
  if (e.pending !== undefined) return `update waiting: ${e.pending.meters.length} meters, bus ${e.pending.bus}`;
  if (e.status === 'pending') return `mgmc dso approve ${e.mgmc}`;
  return e.reason ?? '';
}

function entryJson(e: RegistryEntry): Record<string, unknown> {
  return {
    mgmc: e.mgmc,
    status: e.status,
    anonym: e.anonym,
    bus: e.bus,
    meters: e.meterList,
    trade: e.trade,
    ref: e.ref,
    reason: e.reason,
    firstSeen: e.firstSeen,
    updated: e.updated,
    decidedBy: e.decidedBy,
    pending: e.pending,
  };
}

async function change(
  io: Io,
  address: string,
  options: DsoChangeOptions,
  act: (registry: Registry, mgmc: string, by: string) => RegistryChange,
): Promise<number> {
  let mgmc: string;
  try {
    mgmc = parseAddress(address, 'ADDRESS');
  } catch (err) {
    throw new CommandError((err as Error).message, EXIT.usage);
  }
  const by = options.by ?? `operator ${operatorName()}`;
  return withRegistry(io, options.config, (registry) => {
    let result: RegistryChange;
    try {
      result = act(registry, mgmc, by);
    } catch (err) {
      if (err instanceof RegistryError) throw new CommandError(err.message, EXIT.failed);
      throw err;
    }
    if (options.json) {
      const { messages: _messages, ...rest } = result;
      io.out(JSON.stringify(rest));
    } else {
      io.out(result.detail);
      if (result.changed) io.out('the running DSO publishes the change on its next registry refresh (within seconds)');
    }
    return EXIT.ok;
  });
}

/** Opens the DSO database of a DSO config, runs `fn` on a non-publishing Registry, and closes the database. */
async function withRegistry(io: Io, configFile: string, fn: (registry: Registry) => number): Promise<number> {
  const config = await loadConfig(resolve(configFile), { env: io.env });
  if (config.role !== 'dso') {
    throw new CommandError(
      `${configFile} is a config for role ${config.role}: mgmc dso commands work on the DSO node's config (role: dso)`,
      EXIT.usage,
    );
  }
  const db = openDso(config);
  try {
    const registry = new Registry({
      db,
      chainId: config.chainId,
      policy: config.dso.policy,
      clock: systemClock(),
      publish: false,
    });
    return fn(registry);
  } finally {
    db.close();
  }
}

function openDso(config: AgentConfig): SqliteDatabase {
  const path = config.store.path;
  if (!existsSync(path)) {
    throw new CommandError(
      `DSO database ${path} (store.path) does not exist: start the DSO once (mgmc run --config FILE) and let MGMCs register`,
      EXIT.noInput,
    );
  }
  try {
    return openDsoDatabase(path, { create: false, synchronous: config.store.synchronous });
  } catch (err) {
    throw new CommandError((err as Error).message, EXIT.dataError);
  }
}

function operatorName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
