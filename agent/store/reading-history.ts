/**
 * Queries for reading history (the forecasts learn from the ledger's own readings): the seq range that covers a time
 * window, and the canonical texts of the reading records of some device points. The ledger's tables have no index on time
 * or on the reading's device, and none is added for this: `records.seq` is the primary key and records are appended
 * in time order, so a bisection on seq finds a time window in ~log2(n) page reads, and within it a comparison of the
 * body's canonical prefix picks one point's readings without calling a function on every row.
 *
 * Assumptions, both true of what the poller writes (agent/poll/poller.ts):
 * - a record's `time` is when it was appended, so `time` rises with `seq` up to the time a polling cycle takes;
 *   callers widen their window by a slack for that;
 * - a reading body's first keys are `device` and `point` (RFC 8785 sorts keys, and the poller writes no key that
 *   sorts before either), so the canonical text of a reading of D's point P starts with
 *   {"body":{"device":"D","point":"P", — readings of another layout (a later protocol's extra field) are still
 *   found, only more slowly.
 * Bodies of pruned records are empty and are simply not found: there is less history.
 */
import type { SqliteDatabase } from './database.js';

/** Highest seq in the ledger (0 when empty). */
export function lastRecordSeq(db: SqliteDatabase): number {
  return (db.prepare('SELECT max(seq) FROM records').pluck().get() as number | null) ?? 0;
}

/**
 * The smallest seq whose record time is >= `time`, by bisection on seq (so it assumes time rises with seq, see
 * above); lastRecordSeq + 1 when every record is older.
 */
export function firstSeqAtOrAfter(db: SqliteDatabase, time: number): number {
  const at = db.prepare('SELECT seq, time FROM records WHERE seq >= ? ORDER BY seq LIMIT 1');
  let lo = 1;
  let hi = lastRecordSeq(db) + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const row = at.get(mid) as { seq: number; time: number } | undefined;
    if (row === undefined) {
      hi = mid;
    } else if (row.time >= time) {
      hi = mid;
    } else {
      lo = row.seq + 1;
    }
  }
  return lo;
}

/** The bounds [low, high) of the byte strings that start with `prefix` (0xff never occurs in UTF-8). */
function prefixRange(prefix: string): [Buffer, Buffer] {
  const low = Buffer.from(prefix, 'utf8');
  return [low, Buffer.concat([low, Buffer.from([0xff])])];
}

/**
 * Canonical texts of the reading records of `series` with afterSeq < seq <= throughSeq, in seq order, and perhaps a
 * few others (the caller parses and checks each one). Pass ranges of ~100k records at a time to bound memory and the
 * time the connection is held.
 */
export function readingTexts(
  db: SqliteDatabase,
  range: {
    readonly afterSeq: number;
    readonly throughSeq: number;
    readonly series: readonly { readonly device: string; readonly point: string }[];
  },
): string[] {
  if (range.series.length === 0 || range.throughSeq <= range.afterSeq) return [];
  const json = JSON.stringify;
  // A key is followed by a comma in the canonical text ("point" and "t" always follow "device" and "point"), and a
  // quote inside a string value is escaped, so these needles match only the body's own device and point keys (or a
  // nested object's, which the caller's check refuses).
  const needle = (key: string, value: string) => Buffer.from(`"${key}":${json(value)},`, 'utf8');
  // Every test on a row that has the usual layout is a blob range (a memcmp in SQLite's VM, no function call): on a
  // busy ledger instr() on each row of a device cost 2.5x the whole query. instr() runs only on other layouts.
  const perSeries = range.series.map(
    () =>
      // the usual layout: {"body":{"device":D,"point":P,
      '(body >= ? AND body < ?) OR ' +
      // a key between "device" and "point": {"body":{"device":D,<not "point">
      '(body >= ? AND body < ? AND NOT (body >= ? AND body < ?) AND instr(body, ?) > 0)',
  );
  // a key before "device"
  const other = range.series.map(() => '(instr(body, ?) > 0 AND instr(body, ?) > 0)');
  const sql =
    "SELECT CAST(body AS TEXT) FROM records WHERE seq > ? AND seq <= ? AND type = 'reading' AND (" +
    `${perSeries.join(' OR ')} OR (NOT (body >= ? AND body < ?) AND length(body) > 0 AND (${other.join(' OR ')}))` +
    ') ORDER BY seq';
  const params = [
    ...range.series.flatMap((s) => [
      ...prefixRange(`{"body":{"device":${json(s.device)},"point":${json(s.point)},`),
      ...prefixRange(`{"body":{"device":${json(s.device)},`),
      ...prefixRange(`{"body":{"device":${json(s.device)},"point":`),
      needle('point', s.point),
    ]),
    ...prefixRange('{"body":{"device":'),
    ...range.series.flatMap((s) => [needle('device', s.device), needle('point', s.point)]),
  ];
  return db
    .prepare(sql)
    .pluck()
    .all(range.afterSeq, range.throughSeq, ...params) as string[];
}
