// What a container changed in its root filesystem, as `docker diff` shows it: Kind 0
// modified, 1 added, 2 deleted. The image side is an index of the image's files built
// from its layers (top layer wins, whiteouts and opaque directories applied); the
// container side is the overlay upper dir (only what was written) or, for the copy
// driver, the whole rootfs compared entry by entry.
import { promises as fsp, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { lgetxattr } from '../host/fsops';
import type { LowerLayer } from './driver';

export const ChangeKind = { Modified: 0, Added: 1, Deleted: 2 } as const;
export type ChangeKind = typeof ChangeKind[keyof typeof ChangeKind];

export interface Change {
  /** Absolute path inside the container, e.g. "/etc/hosts". */
  Path: string;
  Kind: ChangeKind;
}

/** overlayfs's whiteout: a character device 0:0. */
function isWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

function isOpaque(dir: string): boolean {
  try {
    return lgetxattr(dir, 'trusted.overlay.opaque')?.toString() === 'y';
  } catch {
    return false;
  }
}

async function lstatIfExists(path: string): Promise<BigIntStats | undefined> {
  try { return await fsp.lstat(path, { bigint: true }); } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** Calls `visit` for every entry below `dir` (parents before children), with the path relative to the walk's root. */
async function walk(dir: string, visit: (rel: string, abs: string, st: BigIntStats) => Promise<boolean | void>, rel = ''): Promise<void> {
  let names: string[];
  try { names = await fsp.readdir(dir); } catch { return; }
  for (const name of names.sort()) {
    const abs = join(dir, name);
    const childRel = rel ? `${rel}/${name}` : name;
    const st = await fsp.lstat(abs, { bigint: true });
    // A visitor returns false to skip a directory's children.
    const descend = await visit(childRel, abs, st);
    if (st.isDirectory() && descend !== false) await walk(abs, visit, childRel);
  }
}

function dropSubtree(index: Map<string, string>, rel: string, keepSelf: boolean): void {
  if (!keepSelf) index.delete(rel);
  const prefix = rel === '' ? '' : `${rel}/`;
  for (const key of [...index.keys()]) if (key.startsWith(prefix) && key !== rel) index.delete(key);
}

/** Root-relative path -> the absolute path of the layer file that provides it. */
export async function imageIndex(lowers: LowerLayer[]): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  for (const layer of lowers) {
    for (const opaque of layer.opaques) dropSubtree(index, opaque.replace(/^\/+|\/+$/g, ''), true);
    for (const whiteout of layer.whiteouts) dropSubtree(index, whiteout.replace(/^\/+|\/+$/g, ''), false);
    await walk(layer.diffPath, async (rel, abs, st) => {
      if (isWhiteout(st)) return;
      index.set(rel, abs);
    });
  }
  return index;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i === -1 ? '' : rel.slice(0, i);
}

/** Sorted changes; parents of changed entries that the image has count as modified, as docker reports them. */
function finish(found: Map<string, ChangeKind>, index: Map<string, string>): Change[] {
  for (const rel of [...found.keys()]) {
    for (let p = parentOf(rel); p !== ''; p = parentOf(p)) {
      if (found.has(p)) break;
      found.set(p, index.has(p) ? ChangeKind.Modified : ChangeKind.Added);
    }
  }
  return [...found.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([rel, Kind]) => ({ Path: `/${rel}`, Kind }));
}

/** Changes recorded in an overlay upper dir. */
export async function overlayChanges(upper: string, lowers: LowerLayer[]): Promise<Change[]> {
  const index = await imageIndex(lowers);
  const found = new Map<string, ChangeKind>();
  await walk(upper, async (rel, abs, st) => {
    if (isWhiteout(st)) {
      if (index.has(rel)) found.set(rel, ChangeKind.Deleted);
      return;
    }
    found.set(rel, index.has(rel) ? ChangeKind.Modified : ChangeKind.Added);
    if (st.isDirectory() && index.has(rel) && isOpaque(abs)) {
      // A directory removed and made again: what the image had below it is gone.
      const prefix = `${rel}/`;
      for (const key of index.keys()) {
        if (key.startsWith(prefix) && !key.slice(prefix.length).includes('/')) {
          if (!await lstatIfExists(join(upper, key))) found.set(key, ChangeKind.Deleted);
        }
      }
    }
  });
  return finish(found, index);
}

function sameEntry(image: BigIntStats, now: BigIntStats): boolean {
  if (image.mode !== now.mode || image.uid !== now.uid || image.gid !== now.gid || image.rdev !== now.rdev) return false;
  // A directory's size and mtime move with its children, which are reported themselves.
  if (now.isDirectory()) return true;
  return image.size === now.size && image.mtimeNs === now.mtimeNs;
}

/** Changes of a full-copy rootfs against the image it was copied from. */
export async function copyChanges(rootfs: string, lowers: LowerLayer[]): Promise<Change[]> {
  const index = await imageIndex(lowers);
  const found = new Map<string, ChangeKind>();
  const present = new Set<string>();
  await walk(rootfs, async (rel, _abs, st) => {
    present.add(rel);
    const source = index.get(rel);
    if (!source) { found.set(rel, ChangeKind.Added); return; }
    const original = await lstatIfExists(source);
    if (!original || !sameEntry(original, st)) found.set(rel, ChangeKind.Modified);
  });
  for (const rel of index.keys()) {
    // Only the top of a deleted tree is reported.
    if (!present.has(rel) && (parentOf(rel) === '' || present.has(parentOf(rel)))) found.set(rel, ChangeKind.Deleted);
  }
  return finish(found, index);
}
