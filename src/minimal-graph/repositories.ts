// repositories.json: every tag and repo digest reference in one small file. All
// updates go through one queue and replace the file atomically, so concurrent tag
// calls never lose each other's changes and a power cut leaves old or new, never torn.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { writeJsonAtomic } from '../util/atomic';
import { logger } from '../util/log';
import { assertDigest, isDigest } from './chain';
import { isNotFound } from './fsutil';
import { Mutex } from './lock';
import type { Digest, RepositoriesFile } from './types';

const log = logger('graph');
export const REPOSITORIES_FILE = 'repositories.json';

export class Repositories {
  readonly path: string;
  private data: RepositoriesFile = emptyFile();
  private readonly queue = new Mutex();
  /** Set when open() found the file unreadable and moved it aside; check() reports it. */
  loadProblem: { path: string; detail: string } | undefined;

  /** @internal built by Graph.open */
  constructor(root: string) {
    this.path = join(root, REPOSITORIES_FILE);
  }

  /** @internal */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await fsp.readFile(this.path, 'utf8');
    } catch (err) {
      if (isNotFound(err)) { this.data = emptyFile(); return; }
      throw err;
    }
    try {
      this.data = sanitize(JSON.parse(text));
    } catch (err) {
      // Refusing to start would strand a router with running containers; keep the bad
      // file for inspection, start with no tags, and let check() report it.
      const aside = `${this.path}.corrupt-${Date.now()}`;
      await fsp.rename(this.path, aside);
      this.loadProblem = { path: aside, detail: `repositories.json unreadable (${(err as Error).message}); moved aside, tags lost` };
      log.error('repositories.json unreadable, moved aside', { path: aside, error: (err as Error).message });
      this.data = emptyFile();
    }
  }

  getTag(ref: string): Digest | undefined {
    return Object.hasOwn(this.data.tags, ref) ? this.data.tags[ref] : undefined;
  }

  getDigestRef(ref: string): Digest | undefined {
    return Object.hasOwn(this.data.digests, ref) ? this.data.digests[ref] : undefined;
  }

  /** Exact tag or repo-digest reference -> image ID. */
  resolveRef(ref: string): Digest | undefined {
    return this.getTag(ref) ?? this.getDigestRef(ref);
  }

  tagsOf(id: Digest): string[] {
    return Object.keys(this.data.tags).filter((ref) => this.data.tags[ref] === id).sort();
  }

  digestRefsOf(id: Digest): string[] {
    return Object.keys(this.data.digests).filter((ref) => this.data.digests[ref] === id).sort();
  }

  /** A copy of everything, for listings and check(). */
  snapshot(): RepositoriesFile {
    const copy = emptyFile();
    Object.assign(copy.tags, this.data.tags);
    Object.assign(copy.digests, this.data.digests);
    return copy;
  }

  /** `guard` runs inside the queue, so a concurrent removeAllRefsTo cannot slip past it. */
  setTag(ref: string, id: Digest, guard: () => void = () => {}): Promise<void> {
    assertRef(ref); assertDigest(id, 'image ID');
    return this.update((d) => { guard(); d.tags[ref] = id; });
  }

  removeTag(ref: string): Promise<boolean> {
    return this.update((d) => {
      if (!Object.hasOwn(d.tags, ref)) return false;
      delete d.tags[ref];
      return true;
    });
  }

  addDigestRef(ref: string, id: Digest, guard: () => void = () => {}): Promise<void> {
    assertRef(ref); assertDigest(id, 'image ID');
    return this.update((d) => { guard(); d.digests[ref] = id; });
  }

  removeDigestRef(ref: string): Promise<boolean> {
    return this.update((d) => {
      if (!Object.hasOwn(d.digests, ref)) return false;
      delete d.digests[ref];
      return true;
    });
  }

  /** Removes every tag and digest reference to `id` in one write. */
  removeAllRefsTo(id: Digest): Promise<{ tags: string[]; digests: string[] }> {
    return this.update((d) => {
      const tags = Object.keys(d.tags).filter((ref) => d.tags[ref] === id).sort();
      const digests = Object.keys(d.digests).filter((ref) => d.digests[ref] === id).sort();
      for (const ref of tags) delete d.tags[ref];
      for (const ref of digests) delete d.digests[ref];
      return { tags, digests };
    });
  }

  /** Removes references to image IDs for which `dangling` is true (check --repair). */
  removeWhere(dangling: (id: Digest) => boolean): Promise<{ tags: string[]; digests: string[] }> {
    return this.update((d) => {
      const tags = Object.keys(d.tags).filter((ref) => dangling(d.tags[ref]!));
      const digests = Object.keys(d.digests).filter((ref) => dangling(d.digests[ref]!));
      for (const ref of tags) delete d.tags[ref];
      for (const ref of digests) delete d.digests[ref];
      return { tags, digests };
    });
  }

  /**
   * Applies `change` to a copy, writes the copy, and only then makes it current: a
   * failed write leaves memory and disk agreeing on the old state. Unchanged data is
   * not rewritten (saves flash wear on no-op removals).
   */
  private update<T>(change: (draft: RepositoriesFile) => T): Promise<T> {
    return this.queue.run(async () => {
      const draft = this.snapshot();
      const result = change(draft);
      const before = JSON.stringify(this.data);
      const after = JSON.stringify(draft);
      if (after !== before) {
        await writeJsonAtomic(this.path, draft);
        this.data = draft;
      }
      return result;
    });
  }
}

// Prototype-less maps: a reference string is data and must never reach Object.prototype.
function emptyFile(): RepositoriesFile {
  return { tags: Object.create(null) as Record<string, Digest>, digests: Object.create(null) as Record<string, Digest> };
}

function assertRef(ref: string): void {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > 1024 || /[\s\0]/.test(ref)) {
    throw new BerthError('EINVAL', `invalid reference: ${JSON.stringify(ref)}`);
  }
}

/** Accepts only well-formed entries, so one bad line cannot poison lookups. */
function sanitize(raw: unknown): RepositoriesFile {
  const out = emptyFile();
  const obj = (raw ?? {}) as Partial<Record<keyof RepositoriesFile, unknown>>;
  for (const key of ['tags', 'digests'] as const) {
    const section = obj[key];
    if (section === undefined) continue;
    if (typeof section !== 'object' || section === null || Array.isArray(section)) throw new Error(`"${key}" is not an object`);
    for (const [ref, id] of Object.entries(section)) if (isDigest(id)) out[key][ref] = id;
  }
  return out;
}
