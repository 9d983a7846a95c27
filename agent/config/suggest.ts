/** Near-miss names for typos: `sealEveryRecord`, `seal_every_records` and `SealEveryRecords` all find `sealEveryRecords`. */

/** Optimal string alignment distance: Levenshtein plus swapped neighbours, the commonest typing slip. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] as number;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      d[i * cols + j] = best;
    }
  }
  return at(a.length, b.length);
}

/** Case, `_` and `-` do not count: technicians write keys the way other tools taught them. */
export function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_\s]/g, '');
}

/** The candidates nearest to `given`, if near enough to be what was meant (ties all returned, sorted). */
export function closest(given: string, candidates: readonly string[]): string[] {
  const wanted = normalizeKey(given);
  const limit = Math.max(1, Math.floor(wanted.length / 3));
  const scored = candidates.map((candidate) => ({
    candidate,
    distance: editDistance(wanted, normalizeKey(candidate)),
  }));
  const best = Math.min(...scored.map(({ distance }) => distance));
  if (best > limit) return [];
  return scored
    .filter(({ distance }) => distance === best)
    .map(({ candidate }) => candidate)
    .sort();
}

/** `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`. */
export function quoteList(values: readonly string[], conjunction = 'or'): string {
  const quoted = values.map((value) => `'${value}'`);
  if (quoted.length <= 1) return quoted.join('');
  return `${quoted.slice(0, -1).join(', ')} ${conjunction} ${quoted.at(-1)}`;
}
