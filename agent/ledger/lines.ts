/** Synchronous line reading of large files with flat memory (exports can hold millions of records). */
import { closeSync, openSync, readSync } from 'node:fs';

export function* readLines(path: string, chunkSize = 1 << 20): IterableIterator<{ line: string; number: number }> {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(chunkSize);
    let carry = Buffer.alloc(0);
    let number = 0;
    for (;;) {
      const read = readSync(fd, buffer, 0, chunkSize, null);
      if (read === 0) break;
      let data = Buffer.concat([carry, buffer.subarray(0, read)]);
      let nl = data.indexOf(10);
      while (nl !== -1) {
        number++;
        yield { line: data.subarray(0, nl).toString('utf8'), number };
        data = data.subarray(nl + 1);
        nl = data.indexOf(10);
      }
      carry = Buffer.from(data);
    }
    if (carry.length > 0) yield { line: carry.toString('utf8'), number: number + 1 };
  } finally {
    closeSync(fd);
  }
}
