/**
 * Loads device profiles from YAML and the catalogue of shipped profiles. Every problem of every file is reported at
 * once, compiler style (file:line:column  key.path  message), so a broken catalogue is fixed in one pass.
 *
 * Loading is synchronous on purpose: profiles are a few small files read once at start-up, and the config checker
 * that validates profile ids against the catalogue is synchronous.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from 'yaml';
import { closest, type PathSegment, type SchemaProblem, validateProfile } from './schema.js';
import type { Profile } from './types.js';

/** One problem in a profile file. */
export interface ProfileIssue {
  /** The file as shown to people: relative to the working directory when inside it. */
  readonly file: string;
  /** 1-based; 0 when the problem concerns the whole file or directory. */
  readonly line: number;
  readonly column: number;
  /** Key path such as `points[3].sf`; `(yaml)` for syntax errors, `(file)` for unreadable files. */
  readonly path: string;
  readonly message: string;
}

/** `file:line:col  path  message`, two spaces between fields, so editors and terminals can jump to the spot. */
export function formatProfileIssue(issue: ProfileIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  return `${where}  ${issue.path}  ${issue.message}`;
}

/** Every problem found in one profile file or a whole catalogue, listed in the message one per line. */
export class ProfileError extends Error {
  override name = 'ProfileError';
  constructor(readonly issues: readonly ProfileIssue[]) {
    const files = [...new Set(issues.map((issue) => issue.file))];
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    const what = files.length === 1 ? `device profile ${files[0]}` : `device profiles (${files.length} files)`;
    super(`${what}: ${count}\n${issues.map(formatProfileIssue).join('\n')}`);
  }
}

/** A profile id that is not in the catalogue; `suggestions` are the nearest ids. */
export class UnknownProfileError extends Error {
  override name = 'UnknownProfileError';
  constructor(
    readonly id: string,
    readonly suggestions: readonly string[],
    known: readonly string[],
  ) {
    const hint =
      suggestions.length > 0
        ? `did you mean ${suggestions.map((s) => `"${s}"`).join(' or ')}?`
        : `known profiles: ${known.join(', ') || '(none)'}`;
    super(`no device profile "${id}" in the catalogue; ${hint}`);
  }
}

function displayPath(file: string): string {
  if (!isAbsolute(file)) return file;
  const inside = relative(process.cwd(), file);
  return inside !== '' && !inside.startsWith('..') && !isAbsolute(inside) ? inside : file;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** A key path as people write it: `points[3].sf`, `(root)` for the document itself. */
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

function keyOf(node: unknown): string {
  return isScalar(node) ? String(node.value) : String(node);
}

function startOf(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  // An empty value (`key:` and nothing) has a zero-length range; the key is the better place to point at.
  return range !== undefined && range !== null && range[1] > range[0] ? range[0] : undefined;
}

/** Offset of the key or value at `path`, or of the deepest part of the path that is in the file. */
function offsetOf(root: unknown, path: readonly PathSegment[], at: 'key' | 'value'): number {
  let node = root;
  let best = startOf(root) ?? 0;
  for (const [i, segment] of path.entries()) {
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyOf(p.key) === String(segment));
      if (pair === undefined) break;
      const keyStart = startOf(pair.key);
      const valueStart = startOf(pair.value);
      best = (last && at === 'key' ? keyStart : (valueStart ?? keyStart)) ?? best;
      if (!last && valueStart === undefined) best = keyStart ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined) break;
      best = startOf(item) ?? best;
      node = item;
    } else {
      break;
    }
  }
  return best;
}

/** YAML integers beyond 2^53 (64-bit sentinels) would be rounded as numbers; keep them exact as bigints. */
function keepBigIntegers(document: ReturnType<typeof parseDocument>): void {
  visit(document, {
    Scalar(_key, node) {
      if (typeof node.value !== 'number' || !Number.isInteger(node.value) || Number.isSafeInteger(node.value)) return;
      const source = (node.source ?? '').trim();
      const match = /^([-+]?)(0x[0-9a-fA-F]+|0o[0-7]+|[0-9]+)$/.exec(source);
      if (match === null) return;
      const magnitude = BigInt(match[2] as string);
      node.value = match[1] === '-' ? -magnitude : magnitude;
    },
  });
}

/**
 * Checks a profile's text without throwing: the profile when it is valid, else every problem. `file` names the
 * file in messages and gives the expected id (its name without .yaml).
 */
export function checkProfileText(text: string, file: string): { profile?: Profile; issues: ProfileIssue[] } {
  const shown = displayPath(file);
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const position = (offset: number): { line: number; column: number } => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const issues: ProfileIssue[] = [];
  const seen = new Set<number>();
  for (const error of document.errors) {
    const offset = error.pos[0];
    // One YAML mistake often yields several parser errors at the same spot; the first says it best.
    if (seen.has(offset)) continue;
    seen.add(offset);
    const message =
      error.code === 'DUPLICATE_KEY'
        ? 'this key appears twice in the same mapping; keep one of them'
        : `invalid YAML: ${(error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`;
    issues.push({ file: shown, ...position(offset), path: '(yaml)', message });
  }
  // After a syntax error the tree is a guess; schema errors on it would send people after ghosts.
  if (issues.length > 0) return { issues };

  keepBigIntegers(document);
  let data: unknown;
  try {
    data = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { issues: [{ file: shown, line: 1, column: 1, path: '(yaml)', message: `invalid YAML: ${message}` }] };
  }
  const expectedId = basename(file).replace(/\.ya?ml$/, '');
  const { profile, problems } = validateProfile(data, { expectedId, file: resolve(file) });
  const toIssue = (problem: SchemaProblem): ProfileIssue => ({
    file: shown,
    ...position(offsetOf(document.contents, problem.path, problem.at)),
    path: formatPath(problem.path),
    message: problem.message,
  });
  const sorted = problems.map(toIssue).sort((a, b) => a.line - b.line || a.column - b.column);
  return profile === undefined ? { issues: sorted } : { profile, issues: sorted };
}

/** Parses and checks a profile; throws ProfileError listing every problem of the file. */
export function loadProfileText(text: string, file: string): Profile {
  const { profile, issues } = checkProfileText(text, file);
  if (profile === undefined || issues.length > 0) throw new ProfileError(issues);
  return profile;
}

function readIssue(path: string, message: string): ProfileIssue {
  return { file: displayPath(path), line: 0, column: 0, path: '(file)', message };
}

function describeFsError(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return error instanceof Error ? error.message : String(error);
}

function checkProfileFile(path: string): { profile?: Profile; issues: ProfileIssue[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return { issues: [readIssue(path, `cannot read the profile: ${describeFsError(error)}`)] };
  }
  return checkProfileText(text, path);
}

/** Reads and checks one profile file; throws ProfileError listing every problem. */
export function loadProfileFile(path: string): Profile {
  const { profile, issues } = checkProfileFile(path);
  if (profile === undefined || issues.length > 0) throw new ProfileError(issues);
  return profile;
}

/**
 * The first `hardware/profiles` directory at or above `start`. Walking up finds it both from the sources
 * (hardware/profile/) and from the compiled dist/hardware/profile/, without knowing how deep the build nests.
 */
export function findCatalogueDir(start: string): string {
  let dir = resolve(start);
  for (;;) {
    const candidate = join(dir, 'hardware', 'profiles');
    if (existsSync(candidate) && statSync(candidate).isDirectory()) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(
        `no hardware/profiles directory at or above ${resolve(start)}; the profile catalogue ships with the code ` +
          '(keep hardware/profiles beside dist/, or pass the directory to loadCatalogue)',
      );
    }
    dir = parent;
  }
}

/** Absolute path of the shipped profile catalogue (hardware/profiles/). */
export function catalogueDir(): string {
  return findCatalogueDir(dirname(fileURLToPath(import.meta.url)));
}

/** The device profiles a site can use, by id. */
export interface Catalogue {
  /** Every id, sorted. */
  ids(): string[];
  /** The profile with this id; throws UnknownProfileError naming the nearest ids. */
  get(id: string): Profile;
  has(id: string): boolean;
  /** Every profile, sorted by id. */
  all(): Profile[];
  /** The profile of a SunSpec model (its `sunspec.model`), if the catalogue has one. */
  bySunspecModel(model: number): Profile | undefined;
}

function describeOrigin(profile: Profile): string {
  return profile.file === undefined ? profile.id : displayPath(profile.file);
}

/**
 * A catalogue of profiles already loaded (tests and the simulator build their own). Throws ProfileError if two
 * profiles share an id or a SunSpec model: which one applies would depend on load order.
 */
export function catalogueOf(profiles: readonly Profile[]): Catalogue {
  const { catalogue, issues } = indexProfiles(profiles);
  if (issues.length > 0) throw new ProfileError(issues);
  return catalogue;
}

function indexProfiles(profiles: readonly Profile[]): { catalogue: Catalogue; issues: ProfileIssue[] } {
  const byId = new Map<string, Profile>();
  const byModel = new Map<number, Profile>();
  const issues: ProfileIssue[] = [];
  const clash = (profile: Profile, message: string): void => {
    issues.push({ file: describeOrigin(profile), line: 1, column: 1, path: 'id', message });
  };
  for (const profile of [...profiles].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const other = byId.get(profile.id);
    if (other !== undefined) {
      clash(profile, `id "${profile.id}" is also the id of ${describeOrigin(other)}; rename one of them`);
      continue;
    }
    byId.set(profile.id, profile);
    if (profile.sunspec === undefined) continue;
    const sameModel = byModel.get(profile.sunspec.model);
    if (sameModel !== undefined) {
      clash(profile, `SunSpec model ${profile.sunspec.model} is also described by ${describeOrigin(sameModel)}`);
    } else {
      byModel.set(profile.sunspec.model, profile);
    }
  }
  const ids = [...byId.keys()].sort();
  const catalogue: Catalogue = {
    ids: () => [...ids],
    has: (id) => byId.has(id),
    get(id) {
      const profile = byId.get(id);
      if (profile === undefined) throw new UnknownProfileError(id, closest(id, ids, 1), ids);
      return profile;
    },
    all: () => ids.map((id) => byId.get(id) as Profile),
    bySunspecModel: (model) => byModel.get(model),
  };
  return { catalogue, issues };
}

/**
 * Loads every `*.yaml` profile of the shipped catalogue and of `extraDirs` (site-specific profiles). Problems of all
 * files, and ids defined twice, are collected into one ProfileError.
 */
export function loadCatalogue(dir: string = catalogueDir(), extraDirs: readonly string[] = []): Catalogue {
  const profiles: Profile[] = [];
  const issues: ProfileIssue[] = [];
  for (const directory of [dir, ...extraDirs]) {
    let names: string[];
    try {
      names = readdirSync(directory).sort();
    } catch (error) {
      issues.push(readIssue(directory, `cannot read the profile directory: ${describeFsError(error)}`));
      continue;
    }
    for (const name of names) {
      const path = resolve(directory, name);
      if (name.endsWith('.yml')) {
        issues.push(readIssue(path, 'profile files end in .yaml; rename this one'));
        continue;
      }
      if (!name.endsWith('.yaml')) continue;
      const result = checkProfileFile(path);
      issues.push(...result.issues);
      if (result.profile !== undefined) profiles.push(result.profile);
    }
  }
  const { catalogue, issues: clashes } = indexProfiles(profiles);
  issues.push(...clashes);
  if (issues.length > 0) throw new ProfileError(issues);
  return catalogue;
}
