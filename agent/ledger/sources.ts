/**
 * Where a chain is read from for verification, export and proofs: the agent's database, or a JSONL export
 * (docs/protocol.md, "Ledger export"), which an auditor or the DSO can verify without the database.
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { toHex } from '../identity/bytes.js';
import type { LedgerStore } from '../store/ledger-store.js';
import { decodeHeader } from './block.js';
import { canonicalize } from './canonical.js';
import { readLines } from './lines.js';
import type { ChainSource, SourceBlock, SourceRecord } from './verify.js';

export const EXPORT_KIND = 'mgmc-ledger-export';
export const EXPORT_VERSION = 1;

export function storeSource(store: LedgerStore): ChainSource {
  return {
    *blocks() {
      for (const row of store.blocks()) {
        yield {
          height: row.height,
          header: row.header,
          hash: row.hash,
          signature: row.signature,
          firstSeq: row.firstSeq,
        };
      }
    },
    // A block's records are fetched in one query: per-row iteration costs more than the rows themselves.
    records: (first, end) => store.recordRange(first, end - first).map((row) => ({ seq: row.seq, bytes: row.body })),
    countAfter: (afterSeq) => store.countRecordsFrom(afterSeq + 1),
  };
}

/** Writes the whole chain as JSONL: a header line, then each block followed by its records, then unsealed records. */
export async function exportJsonl(
  store: LedgerStore,
  target: string | NodeJS.WritableStream,
): Promise<{ blocks: number; records: number }> {
  // A path is opened here; a stream (process.stdout) is written to and left open. Opening '/dev/stdout' instead fails
  // with ENXIO when stdout is a socket (a child of Node or systemd).
  const out = typeof target === 'string' ? createWriteStream(target, { encoding: 'utf8' }) : target;
  const write = async (line: string): Promise<void> => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  const counts = store.counts();
  await write(
    canonicalize({
      kind: EXPORT_KIND,
      version: EXPORT_VERSION,
      chainId: Number(store.getMeta('chainId') ?? 0),
      producer: store.getMeta('producer') ?? null,
      blocks: counts.blocks,
      records: counts.records,
    }),
  );
  let records = 0;
  let next = 1;
  for (const block of store.blocks()) {
    const header = decodeHeader(block.header, `block ${block.height}`);
    await write(
      canonicalize({
        kind: 'block',
        height: block.height,
        header: { ...header },
        hash: toHex(block.hash),
        signature: toHex(block.signature),
      }),
    );
    for (const row of store.records(block.firstSeq, block.firstSeq + block.count)) {
      await write(recordLine(row.body));
      records++;
    }
    next = block.firstSeq + block.count;
  }
  for (const row of store.records(next)) {
    await write(recordLine(row.body));
    records++;
  }
  if (typeof target === 'string') {
    out.end();
    await once(out, 'finish');
  }
  return { blocks: counts.blocks, records };
}

/** The stored bytes are already canonical: they go into the line verbatim, never re-encoded. */
function recordLine(body: Uint8Array): string {
  return `{"kind":"record","record":${Buffer.from(body).toString('utf8')}}`;
}

export class ExportFormatError extends Error {
  override name = 'ExportFormatError';
}

/**
 * Reads an export as a chain source. Records are filed by their position in the file (the n-th record line is
 * filed as seq n), so moved lines show up as reordered records.
 */
export function jsonlSource(path: string): ChainSource & { readonly meta: Record<string, unknown> } {
  const lines = readLines(path);
  const first = lines.next();
  if (first.done) throw new ExportFormatError(`${path} is empty: not a ledger export`);
  const meta = parseLine(path, first.value.line, first.value.number);
  if (meta.kind !== EXPORT_KIND) {
    throw new ExportFormatError(`${path}:1: not a ledger export (first line kind is ${JSON.stringify(meta.kind)})`);
  }
  if (meta.version !== EXPORT_VERSION) {
    throw new ExportFormatError(
      `${path}:1: export version ${meta.version} is not supported (this mgmc reads ${EXPORT_VERSION})`,
    );
  }
  let peeked: { value: Record<string, unknown>; number: number } | undefined;
  let position = 0;
  /** Record lines skipped since the last block line: after the last block, these are the unsealed records. */
  let unclaimed = 0;
  const peek = () => {
    if (peeked) return peeked;
    for (;;) {
      const next = lines.next();
      if (next.done) return undefined;
      if (next.value.line.trim() === '') continue;
      peeked = { value: parseLine(path, next.value.line, next.value.number), number: next.value.number };
      return peeked;
    }
  };
  const take = () => {
    const item = peek();
    peeked = undefined;
    return item;
  };
  return {
    meta,
    *blocks(): IterableIterator<SourceBlock> {
      for (;;) {
        let item = peek();
        // Record lines the previous block did not claim belong to no block: skip them here; the running seq count
        // then disagrees with the next block, which is reported there. After the last block they are unsealed.
        unclaimed = 0;
        while (item && item.value.kind === 'record') {
          take();
          position++;
          unclaimed++;
          item = peek();
        }
        if (item === undefined) return;
        take();
        const b = item.value;
        if (b.kind !== 'block')
          throw new ExportFormatError(`${path}:${item.number}: unknown line kind ${JSON.stringify(b.kind)}`);
        yield {
          height: Number(b.height),
          header: (b.header ?? {}) as object,
          ...(typeof b.hash === 'string' ? { hash: hexOrEmpty(b.hash) } : {}),
          signature: String(b.signature ?? ''),
        };
      }
    },
    *records(_first: number, end: number): IterableIterator<SourceRecord> {
      while (position + 1 < end) {
        const item = peek();
        if (item === undefined || item.value.kind !== 'record') return;
        take();
        position++;
        yield { seq: position, bytes: recordText(item.value.record) };
      }
    },
    countAfter(): number {
      let n = unclaimed;
      unclaimed = 0;
      for (let item = take(); item; item = take()) if (item.value.kind === 'record') n++;
      return n;
    },
  };
}

function recordText(record: unknown): string {
  try {
    return canonicalize(record as never);
  } catch {
    // A value that has no canonical form (a float, say) is reported by the record check as an altered record.
    return JSON.stringify(record);
  }
}

function hexOrEmpty(text: string): Uint8Array {
  return /^0x([0-9a-f]{2})*$/.test(text) ? new Uint8Array(Buffer.from(text.slice(2), 'hex')) : new Uint8Array();
}

function parseLine(path: string, line: string, number: number): Record<string, unknown> {
  try {
    const value = JSON.parse(line) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new ExportFormatError(`${path}:${number}: not a JSON object (${(err as Error).message})`);
  }
}
