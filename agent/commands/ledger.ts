/** mgmc ledger verify | show | export | fill | prove | check-proof. */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config/index.js';
import { toHex } from '../identity/bytes.js';
import { readKeystoreFile } from '../identity/keystore.js';
import { AnchorStore } from '../ledger/anchor-store.js';
import { decodeHeader, signerFromPrivateKey } from '../ledger/block.js';
import { PRUNED_THROUGH_META } from '../ledger/light-client.js';
import { openLedgerStore, openWritableLedger } from '../ledger/open.js';
import { buildRecordProof, checkRecordProof } from '../ledger/proof.js';
import { type AnchorReport, anchorReport, ledgerSource } from '../ledger/pruning.js';
import { decodeRecord } from '../ledger/records.js';
import { ExportFormatError, exportJsonl, jsonlSource } from '../ledger/sources.js';
import { syntheticReadings } from '../ledger/synthetic.js';
import { type VerifyReport, verifyChain } from '../ledger/verify.js';
import type { LedgerStore } from '../store/ledger-store.js';
import { CommandError, EXIT, getPassphrase, type Io, table } from './io.js';
import { keystoreToCommandError } from './key.js';

function openExisting(db: string): LedgerStore {
  const path = resolve(db);
  if (!existsSync(path)) throw new CommandError(`ledger database ${path} does not exist`, EXIT.noInput);
  try {
    return openLedgerStore(path, { readonly: true });
  } catch (err) {
    throw new CommandError((err as Error).message, EXIT.dataError);
  }
}

/** Runs of heights as text: "1-40, 42". */
function runs(ranges: readonly { first: number; last: number }[], max = 8): string {
  const text = ranges.slice(0, max).map((r) => (r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`));
  return `${text.join(', ')}${ranges.length > max ? `, … (${ranges.length - max} more run(s))` : ''}`;
}

/** The anchoring part of the verify report: the anchored height, the blocks with receipts, receipt problems. */
export function describeAnchors(anchors: AnchorReport): string {
  const lines = [
    anchors.receipts === 0
      ? 'anchored: none (no DSO receipt yet)'
      : `anchored through block ${anchors.anchoredHeight} (DSO height ${anchors.dsoHeight}); ` +
        `${anchors.receipts} block(s) with receipts: ${runs(anchors.ranges)}`,
  ];
  for (const p of anchors.problems) lines.push(`  receipt of block ${p.height}: ${p.detail}`);
  return lines.join('\n');
}

export function describeReport(report: VerifyReport, source: string, anchors?: AnchorReport): string {
  const pruned =
    report.pruned && report.pruned.length > 0
      ? `\npruned: record bodies ${runs(report.pruned.map((r) => ({ first: r.fromSeq, last: r.toSeq })))} ` +
        `(blocks ${runs(report.pruned.map((r) => ({ first: r.fromHeight, last: r.toHeight })))}), verified by their leaf hashes`
      : '';
  const anchored = anchors === undefined ? '' : `\n${describeAnchors(anchors)}`;
  if (report.ok) {
    const unsealed = report.unsealed > 0 ? `; ${report.unsealed} newer record(s) not sealed yet` : '';
    return (
      `${source}: ok — ${report.blocks} block(s), ${report.records} record(s) verified` +
      `${report.producer ? `, producer ${report.producer}` : ''}${report.chainId !== undefined ? `, chain ${report.chainId}` : ''}${unsealed}` +
      `${report.headHash ? `\nhead ${report.headHash}` : ''}${pruned}${anchored}`
    );
  }
  const p = report.problem;
  return (
    `${source}: FAILED at block ${p?.height}: ${p?.kind}${p?.seq ? ` (record ${p.seq})` : ''}\n  ${p?.detail}\n` +
    `  ${report.blocks} block(s) before it verified.${pruned}${anchored}`
  );
}

/**
 * Receipts and pruning must agree: every receipt holds against the stored block and DSO header, and no record was
 * pruned from a block the DSO has not anchored (its contents would be gone with nothing outside to vouch for them).
 */
function checkAnchors(store: LedgerStore, report: VerifyReport): AnchorReport {
  const anchors = anchorReport(store, new AnchorStore(store.db));
  const unanchored = (report.pruned ?? []).filter((r) => r.toHeight > anchors.anchoredHeight);
  if (unanchored.length === 0) return anchors;
  const first = unanchored[0] as NonNullable<VerifyReport['pruned']>[number];
  return {
    ...anchors,
    problems: [
      ...anchors.problems,
      {
        height: Math.max(first.fromHeight, anchors.anchoredHeight + 1),
        detail: `records of block ${Math.max(first.fromHeight, anchors.anchoredHeight + 1)} were pruned, but the block has no DSO receipt`,
      },
    ],
  };
}

export async function ledgerVerify(io: Io, options: { db?: string; file?: string; json: boolean }): Promise<number> {
  if ((options.db === undefined) === (options.file === undefined)) {
    throw new CommandError('give exactly one of --db FILE or --file EXPORT.jsonl', EXIT.usage);
  }
  let report: VerifyReport;
  let anchors: AnchorReport | undefined;
  let label: string;
  if (options.db !== undefined) {
    label = resolve(options.db);
    let store: LedgerStore;
    try {
      store = openExisting(options.db);
    } catch (err) {
      if (options.json && err instanceof CommandError && err.exitCode === EXIT.dataError) {
        io.out(JSON.stringify({ ok: false, problem: { height: 0, kind: 'unreadable', detail: err.message } }));
      }
      throw err;
    }
    try {
      report = verifyChain(ledgerSource(store));
      anchors = checkAnchors(store, report);
    } finally {
      store.close();
    }
  } else {
    label = resolve(options.file as string);
    if (!existsSync(label)) throw new CommandError(`export ${label} does not exist`, EXIT.noInput);
    try {
      report = verifyChain(jsonlSource(label));
    } catch (err) {
      if (err instanceof ExportFormatError) throw new CommandError(err.message, EXIT.dataError);
      throw err;
    }
  }
  const ok = report.ok && (anchors?.problems.length ?? 0) === 0;
  if (options.json) io.out(JSON.stringify({ source: label, ...report, ...(anchors ? { anchors } : {}) }));
  else (ok ? io.out : io.err)(describeReport(report, label, anchors));
  return ok ? EXIT.ok : EXIT.failed;
}

export function ledgerShow(
  io: Io,
  options: { db: string; json: boolean; height?: number; record?: number; tail: number },
): number {
  const store = openExisting(options.db);
  try {
    if (options.record !== undefined) {
      const row = store.recordRange(options.record, 1)[0];
      if (row === undefined) throw new CommandError(`record ${options.record} does not exist`, EXIT.failed);
      refusePruned(store, options.record);
      const record = decodeRecord(row.body);
      const block = store.blockForSeq(options.record);
      if (options.json) io.out(JSON.stringify({ ...record, block: block?.height ?? null }));
      else io.out(`${JSON.stringify(record, null, 2)}\nblock ${block ? block.height : '(not sealed yet)'}`);
      return EXIT.ok;
    }
    if (options.height !== undefined) {
      const block = store.blockAt(options.height);
      if (block === undefined) throw new CommandError(`block ${options.height} does not exist`, EXIT.failed);
      const header = decodeHeader(block.header);
      const out = { header, hash: toHex(block.hash), signature: toHex(block.signature), firstSeq: block.firstSeq };
      io.out(options.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
      return EXIT.ok;
    }
    const counts = store.counts();
    const summary = {
      chainId: Number(store.getMeta('chainId') ?? 0),
      producer: store.getMeta('producer') ?? null,
      height: counts.blocks,
      records: counts.records,
      unsealed: counts.records - counts.sealedRecords,
    };
    const recent: { height: number; time: number; count: number; firstSeq: number; hash: string }[] = [];
    for (const block of store.blocks(Math.max(1, counts.blocks - options.tail + 1))) {
      const header = decodeHeader(block.header);
      recent.push({
        height: block.height,
        time: header.time,
        count: block.count,
        firstSeq: block.firstSeq,
        hash: toHex(block.hash),
      });
    }
    if (options.json) {
      io.out(JSON.stringify({ ...summary, blocks: recent }));
    } else {
      io.out(
        `chain ${summary.chainId}  producer ${summary.producer}\nheight ${summary.height}  records ${summary.records}  unsealed ${summary.unsealed}\n`,
      );
      io.out(
        table(
          ['height', 'time (UTC)', 'records', 'first seq', 'hash'],
          recent.map((b) => [b.height, new Date(b.time).toISOString(), b.count, b.firstSeq, `${b.hash.slice(0, 18)}…`]),
        ),
      );
    }
    return EXIT.ok;
  } finally {
    store.close();
  }
}

/** A pruned record has no body left to show or prove: say so instead of failing to decode it. */
function refusePruned(store: LedgerStore, seq: number): void {
  const prunedThrough = Number(store.getMeta(PRUNED_THROUGH_META) ?? 0);
  if (seq > prunedThrough) return;
  const block = store.blockForSeq(seq);
  throw new CommandError(
    `record ${seq} was pruned after the DSO anchored block ${block?.height ?? '?'} (bodies are pruned through record ` +
      `${prunedThrough}, ledger.pruneAfterDays): only its leaf hash is kept; the DSO holds the record`,
    EXIT.failed,
  );
}

export async function ledgerExport(io: Io, options: { db: string; format: string; out?: string }): Promise<number> {
  if (options.format !== 'jsonl')
    throw new CommandError(`unknown export format ${options.format} (supported: jsonl)`, EXIT.usage);
  const store = openExisting(options.db);
  try {
    const prunedThrough = Number(store.getMeta(PRUNED_THROUGH_META) ?? 0);
    if (prunedThrough > 0) {
      // The export format (docs/protocol.md section 7) has no line for a record known only by its leaf hash.
      throw new CommandError(
        `records 1..${prunedThrough} of this ledger were pruned after anchoring, and the JSONL export needs every ` +
          'record body: verify the database itself (mgmc ledger verify --db), or export from the DSO, which holds them',
        EXIT.failed,
      );
    }
    const counts = await exportJsonl(store, options.out ?? process.stdout);
    if (options.out) {
      io.err(`exported ${counts.blocks} block(s) and ${counts.records} record(s) to ${resolve(options.out)}`);
    }
    return EXIT.ok;
  } finally {
    store.close();
  }
}

export interface FillOptions {
  db?: string;
  key?: string;
  /** A site config: its store, identity, chain id and sealing settings replace the flags. */
  config?: string;
  readings: number;
  chainId: number;
  sealEveryRecords: number;
  batch: number;
  synchronous: 'full' | 'normal';
  json: boolean;
}

interface FillTarget {
  db: string;
  key: string;
  passphrase: () => Promise<string>;
  chainId: number;
  sealEveryRecords: number;
  sealEverySeconds: number;
  synchronous: 'full' | 'normal';
}

async function fillTarget(io: Io, options: FillOptions): Promise<FillTarget> {
  if (options.config !== undefined) {
    if (options.db !== undefined || options.key !== undefined) {
      throw new CommandError('give either --config or --db and --key, not both', EXIT.usage);
    }
    const config = await loadConfig(resolve(options.config), { env: io.env });
    return {
      db: config.store.path,
      key: config.identity.keystore,
      passphrase: async () => config.identity.passphrase.reveal(),
      chainId: config.chainId,
      sealEveryRecords: config.ledger.sealEveryRecords,
      sealEverySeconds: config.ledger.sealEverySeconds,
      synchronous: config.store.synchronous,
    };
  }
  if (options.db === undefined || options.key === undefined) {
    throw new CommandError('give --db FILE and --key FILE, or --config FILE', EXIT.usage);
  }
  return {
    db: resolve(options.db),
    key: resolve(options.key),
    passphrase: () => getPassphrase(io, 'unlock'),
    chainId: options.chainId,
    sealEveryRecords: options.sealEveryRecords,
    sealEverySeconds: 10,
    synchronous: options.synchronous,
  };
}

/** Writes synthetic readings through the same Ledger the agent uses: validated, committed in batches, sealed, signed. */
export async function ledgerFill(io: Io, options: FillOptions): Promise<number> {
  if (!Number.isSafeInteger(options.readings) || options.readings < 1) {
    throw new CommandError('--readings must be a positive integer', EXIT.usage);
  }
  const target = await fillTarget(io, options);
  let key: Awaited<ReturnType<typeof readKeystoreFile>>;
  try {
    key = await readKeystoreFile(target.key, await target.passphrase());
  } catch (err) {
    throw keystoreToCommandError(err);
  }
  for (const w of key.warnings) io.err(`warning: ${w}`);
  const clock = systemClock();
  let opened: ReturnType<typeof openWritableLedger>;
  try {
    opened = openWritableLedger({
      path: target.db,
      signer: signerFromPrivateKey(key.privateKey, key.address),
      clock,
      chainId: target.chainId,
      sealEveryRecords: target.sealEveryRecords,
      sealEverySeconds: target.sealEverySeconds,
      synchronous: target.synchronous,
    });
  } catch (err) {
    throw new CommandError((err as Error).message, EXIT.dataError);
  }
  const { store, ledger } = opened;
  const started = performance.now();
  const heightBefore = ledger.sealedHeight;
  try {
    for (const batch of syntheticReadings(options.readings, clock.now(), options.batch, ledger.lastSeq + 1))
      ledger.append(batch);
    ledger.stop();
  } finally {
    store.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const result = {
    db: target.db,
    producer: key.address,
    readings: options.readings,
    blocks: ledger.sealedHeight - heightBefore,
    height: ledger.sealedHeight,
    lastSeq: ledger.lastSeq,
    seconds: Number(seconds.toFixed(3)),
  };
  if (options.json) io.out(JSON.stringify(result));
  else
    io.out(
      `wrote ${result.readings} readings in ${result.blocks} signed block(s) to ${result.db} (height ${result.height}) in ${result.seconds} s`,
    );
  return EXIT.ok;
}

export async function ledgerProve(io: Io, options: { db: string; record: number; out?: string }): Promise<number> {
  const store = openExisting(options.db);
  let proof: ReturnType<typeof buildRecordProof>;
  try {
    refusePruned(store, options.record);
    proof = buildRecordProof(store, options.record);
  } catch (err) {
    throw new CommandError((err as Error).message, EXIT.failed);
  } finally {
    store.close();
  }
  const text = `${JSON.stringify(proof, null, 2)}\n`;
  if (options.out) {
    await writeFile(options.out, text);
    io.err(`wrote the proof of record ${options.record} to ${resolve(options.out)}`);
  } else io.out(text);
  return EXIT.ok;
}

export async function ledgerCheckProof(
  io: Io,
  file: string,
  options: { producer?: string; json: boolean },
): Promise<number> {
  let input: unknown;
  try {
    input = JSON.parse(await readFile(resolve(file), 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? EXIT.noInput : EXIT.dataError;
    throw new CommandError(`cannot read proof ${resolve(file)}: ${(err as Error).message}`, code);
  }
  const check = checkRecordProof(input, options.producer);
  if (options.json) io.out(JSON.stringify(check));
  else (check.ok ? io.out : io.err)(`${check.ok ? 'ok' : 'FAILED'}: ${check.detail}`);
  return check.ok ? EXIT.ok : EXIT.failed;
}
