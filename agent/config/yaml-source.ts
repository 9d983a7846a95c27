/**
 * The YAML side of the loader: parse keeping every node's offsets, turn YAML's own errors into issues, and find the
 * line and column of any key path so schema errors can point into the file.
 */
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  type YAMLError,
} from 'yaml';
import type { ConfigIssue } from './issues.js';

export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export interface Position {
  readonly line: number;
  readonly column: number;
}

export interface YamlSource {
  readonly file: string;
  readonly document: Document.Parsed;
  readonly lineCounter: LineCounter;
}

export function parseYaml(file: string, text: string): { source: YamlSource; issues: ConfigIssue[] } {
  const lineCounter = new LineCounter();
  // uniqueKeys: a repeated key silently overriding the first is how a fixed value "does not take".
  const document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, keepSourceTokens: false });
  const source: YamlSource = { file, document, lineCounter };
  const seen = new Set<string>();
  const issues: ConfigIssue[] = [];
  for (const error of document.errors) {
    const issue = yamlErrorIssue(source, text, error);
    const key = `${issue.line}:${issue.column}`;
    // One YAML mistake often yields several parser errors at the same spot; the first one says it best.
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return { source, issues };
}

/** Parser errors whose usual cause, in hand-edited files, is a line indented too much or too little. */
const INDENTATION_ERRORS: readonly string[] = [
  'BAD_INDENT',
  'BLOCK_AS_IMPLICIT_KEY',
  'MULTILINE_IMPLICIT_KEY',
  'UNEXPECTED_TOKEN',
];

function yamlErrorIssue(source: YamlSource, text: string, error: YAMLError): ConfigIssue {
  const offset = error.pos[0];
  const guessed = pathAtOffset(source.document.contents, offset, []);
  // In a broken tree, a key path made of odd keys is the parser's guess, not a setting the technician wrote.
  const plain = guessed?.every((segment) => typeof segment === 'number' || PLAIN_KEY.test(segment)) ?? false;
  const path = guessed !== undefined && plain ? formatPath(guessed) : '(yaml)';
  // An unclosed quote or bracket is noticed lines later, where the next thing fails; where it opened is where to look.
  const unclosedBracket = /end with an? [\]}]/.test(error.message);
  const unclosedQuote = error.code === 'MISSING_CHAR' && /quote/i.test(error.message);
  const opened =
    unclosedBracket || unclosedQuote
      ? innermostStart(source.document.contents, offset, unclosedBracket ? 'flow' : 'any')
      : undefined;
  const { line, column } = offsetPosition(source, opened ?? offset);
  const issue = (expected: string, hint: string): ConfigIssue => ({
    file: source.file,
    line,
    column,
    path,
    expected,
    hint,
  });

  if (error.code === 'DUPLICATE_KEY') {
    const first = firstOccurrenceOfDuplicate(source, offset);
    const where = first === undefined ? '' : ` (first set on line ${first.line})`;
    return issue('each key only once in a mapping', `duplicate key${where}; keep one of them`);
  }
  if (error.code === 'TAB_AS_INDENT') {
    return issue('indentation with spaces', 'YAML does not allow tabs for indentation; replace them with spaces');
  }
  if (error.code === 'MULTIPLE_DOCS') {
    return issue('a single YAML document', "remove the '---' line and what follows, or merge it into the first part");
  }
  if (opened !== undefined) {
    const closing = CLOSING[text[opened] ?? ''];
    const close = closing === undefined ? '' : `; close it with ${closing}`;
    return issue('valid YAML', `the ${unclosedQuote ? 'quote' : 'bracket'} opened here is never closed${close}`);
  }
  const message = firstLine(error.message);
  return issue('valid YAML', INDENTATION_ERRORS.includes(error.code) ? `${message}; check the indentation` : message);
}

const CLOSING: Readonly<Record<string, string>> = { '{': '}', '[': ']', '"': '"', "'": "'" };

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
}

function offsetPosition(source: YamlSource, offset: number): Position {
  const { line, col } = source.lineCounter.linePos(offset);
  return { line, column: col };
}

function firstOccurrenceOfDuplicate(source: YamlSource, offset: number): Position | undefined {
  const map = mapHoldingKeyAt(source.document.contents, offset);
  if (map === undefined) return undefined;
  const duplicate = map.items.find((pair) => rangeOf(pair.key)?.[0] === offset);
  if (duplicate === undefined) return undefined;
  const name = keyName(duplicate);
  const first = map.items.find((pair) => keyName(pair) === name);
  const start = rangeOf(first?.key)?.[0];
  return start === undefined ? undefined : offsetPosition(source, start);
}

function mapHoldingKeyAt(node: unknown, offset: number): { items: Pair[] } | undefined {
  if (isMap(node)) {
    for (const pair of node.items) {
      if (rangeOf(pair.key)?.[0] === offset) return node;
      const found = mapHoldingKeyAt(pair.value, offset);
      if (found !== undefined) return found;
    }
  } else if (isSeq(node)) {
    for (const item of node.items) {
      const found = mapHoldingKeyAt(item, offset);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** Deepest key path whose key or value covers `offset`, to name the setting a syntax error is in. */
function pathAtOffset(node: unknown, offset: number, path: PathSegment[]): PathSegment[] | undefined {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = rangeOf(pair.key);
      const here = [...path, keyName(pair)];
      if (key !== undefined && offset >= key[0] && offset < key[1]) return here;
      const value = rangeOf(pair.value);
      if (value !== undefined && offset >= value[0] && offset <= value[1]) {
        return pathAtOffset(pair.value, offset, here) ?? here;
      }
    }
  } else if (isSeq(node)) {
    for (const [index, item] of node.items.entries()) {
      const value = rangeOf(item);
      if (value !== undefined && offset >= value[0] && offset <= value[1]) {
        return pathAtOffset(item, offset, [...path, index]) ?? [...path, index];
      }
    }
  }
  return undefined;
}

/** Start offset of the deepest node (or flow collection) whose range covers `offset`. */
function innermostStart(node: unknown, offset: number, kind: 'any' | 'flow'): number | undefined {
  const range = rangeOf(node);
  if (range === undefined || offset < range[0] || offset > range[2]) return undefined;
  const collection = isMap(node) || isSeq(node);
  const children: unknown[] = isMap(node)
    ? node.items.flatMap((pair) => [pair.key, pair.value])
    : isSeq(node)
      ? node.items
      : [];
  for (const child of children) {
    const inner = innermostStart(child, offset, kind);
    if (inner !== undefined) return inner;
  }
  if (kind === 'flow' && !(collection && (node as { flow?: boolean }).flow === true)) return undefined;
  return range[0];
}

function nodeOf(value: unknown): Node | undefined {
  return isAlias(value) || isScalar(value) || isMap(value) || isSeq(value) ? value : undefined;
}

function rangeOf(value: unknown): readonly [number, number, number] | undefined {
  return nodeOf(value)?.range ?? undefined;
}

function keyName(pair: Pair): string {
  const key = pair.key;
  return isScalar(key) ? String(key.value) : String(key);
}

/** What the loader needs to know about the node at a key path. */
export interface Located {
  /** The node's own position, or undefined when the path is not in the file (a default, or an empty value). */
  readonly value?: Position;
  /** Position of the key that holds the node, when it is a mapping value. */
  readonly key?: Position;
  /** How many leading segments of the path exist in the file. */
  readonly depth: number;
}

export function locate(source: YamlSource, path: readonly PathSegment[]): Located {
  let node: unknown = source.document.contents;
  let keyStart: number | undefined;
  let depth = 0;
  for (const segment of path) {
    const resolved = isAlias(node) ? node.resolve(source.document) : node;
    let next: unknown;
    let nextKey: number | undefined;
    if (isMap(resolved)) {
      const pair = resolved.items.find((p) => keyName(p) === String(segment));
      if (pair === undefined) break;
      next = pair.value;
      nextKey = rangeOf(pair.key)?.[0];
    } else if (isSeq(resolved) && typeof segment === 'number') {
      next = resolved.items[segment];
      if (next === undefined) break;
    } else {
      break;
    }
    node = next;
    keyStart = nextKey;
    depth++;
  }
  const range = rangeOf(node);
  // An empty value (`key:` with nothing after it) has a zero-length range right after the colon; the key is the
  // better place to point at.
  const hasValue = range !== undefined && range[1] > range[0];
  const located: { value?: Position; key?: Position; depth: number } = { depth };
  if (hasValue) located.value = offsetPosition(source, range[0]);
  if (keyStart !== undefined) located.key = offsetPosition(source, keyStart);
  return located;
}

/** Where to point for a path: the value if it is in the file, else its key, else the closest ancestor present. */
export function positionOf(source: YamlSource, path: readonly PathSegment[], prefer: 'value' | 'key'): Position {
  const located = locate(source, path);
  if (located.depth === path.length) {
    const first = prefer === 'key' ? (located.key ?? located.value) : (located.value ?? located.key);
    if (first !== undefined) return first;
  }
  if (path.length === 0) return { line: 1, column: 1 };
  return positionOf(source, path.slice(0, Math.min(located.depth, path.length - 1)), 'key');
}

export function formatPath(path: readonly PathSegment[]): string {
  if (path.length === 0) return '(root)';
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/**
 * Ajv's instancePath (a JSON Pointer) as segments. A segment is an index only where the data has a list, so a
 * mapping key that looks like a number stays a key.
 */
export function parsePointer(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const path: PathSegment[] = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    const segment = Array.isArray(node) ? Number(key) : key;
    path.push(segment);
    node = typeof node === 'object' && node !== null ? (node as Record<PathSegment, unknown>)[segment] : undefined;
  }
  return path;
}

export function toPointer(path: readonly PathSegment[]): string {
  return path.map((segment) => `/${String(segment).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}
