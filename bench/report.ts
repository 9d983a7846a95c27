/**
 * How every benchmark reports: a table of our figure beside a reference doing the same work in the same run, with
 * the ratio, then one JSON line with the same numbers (prefixed BENCH_JSON) for scripts and CI logs.
 */

export interface BenchRow {
  readonly metric: string;
  readonly unit: string;
  readonly ours: number;
  /** What the reference did: raw SQLite, node:crypto, glpsol, mbpoll... */
  readonly referenceName?: string;
  readonly reference?: number;
  /** Whether a bigger number is better (throughput) or worse (bytes, latency); shown as a hint only. */
  readonly higherIsBetter?: boolean;
}

export interface BenchReport {
  readonly name: string;
  readonly rows: readonly BenchRow[];
  readonly notes?: readonly string[];
  readonly context?: Record<string, string | number>;
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

export function printReport(
  report: BenchReport,
  write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): void {
  const header = ['metric', 'ours', 'reference', 'ref value', 'ratio ours/ref'];
  const rows = report.rows.map((r) => [
    `${r.metric} (${r.unit})`,
    formatNumber(r.ours),
    r.referenceName ?? '-',
    r.reference === undefined ? '-' : formatNumber(r.reference),
    r.reference === undefined || r.reference === 0 ? '-' : (r.ours / r.reference).toFixed(3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  write(`\n## bench ${report.name}`);
  if (report.context)
    write(
      Object.entries(report.context)
        .map(([k, v]) => `${k}=${v}`)
        .join('  '),
    );
  write(line(header));
  write(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) write(line(r));
  for (const n of report.notes ?? []) write(`note: ${n}`);
  write(
    `BENCH_JSON ${JSON.stringify({
      bench: report.name,
      context: report.context ?? {},
      rows: report.rows.map((r) => ({ ...r, ratio: r.reference ? r.ours / r.reference : null })),
    })}`,
  );
}

/** Runs `fn` and returns its wall time in seconds. */
export function timed<T>(fn: () => T): { value: T; seconds: number } {
  const start = performance.now();
  const value = fn();
  return { value, seconds: (performance.now() - start) / 1000 };
}
