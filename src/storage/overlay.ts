// The overlay driver: image layers are overlayfs lower directories used in place, each
// container gets its own upper (writes), work (overlayfs scratch) and merged (the mount).
//
// <root>/storage/overlay/<id>/{upper,work,merged,lowers.json}
// <root>/storage/overlay/l/<short>  -> a layer's diff dir; used when absolute lowerdir
//                                       paths would not fit in the one-page mount data
import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, isAbsolute } from 'node:path';
import { BerthError } from '../util/errors';
import { writeJsonAtomic, readJsonIfExists, tempPathFor, fsyncDir, renameDurable } from '../util/atomic';
import { logger } from '../util/log';
import { mount as mountSyscall, MOUNT_DATA_MAX, isMountpoint } from '../host/mount';
import { assertValidId, type LowerLayer, type StorageDriver } from './driver';
import { overlayChanges, type Change } from './changes';
import { discardDir, isTempName, KeyedQueue, pathExists, removeTree, treeSize, unmountAll } from './fsutil';

const log = logger('storage/overlay');

const RECORD_FILE = 'lowers.json';
const LINKS_DIR = 'l';
/** Lower dir for a container with no image layers: overlayfs needs at least one. */
const EMPTY_LOWER = 'empty';

interface OverlayRecord {
  version: 1;
  /** Bottom first, as given to create(). */
  lowers: LowerLayer[];
  /** Short link names in LINKS_DIR, one per lower, same order. */
  links: string[];
}

export interface OverlayOptions {
  /** Backing filesystem name for status(), e.g. 'extfs'. */
  backingFs: string;
  /** Pass index=off: the kernel defaults the inodes index on. */
  indexOff: boolean;
  /** Kernel default for metacopy, for status(). */
  metacopy: boolean;
}

/** A short, stable, mount-option-safe name for a layer's link ([0-9a-z], 12 chars). */
export function shortLinkName(diffPath: string, attempt = 0): string {
  const digest = createHash('sha256').update(attempt === 0 ? diffPath : `${diffPath}#${attempt}`).digest();
  return digest.readBigUInt64BE(0).toString(36).padStart(13, '0').slice(-12);
}

// Characters that overlayfs's option parser treats as separators or escapes.
const UNSAFE_OPTION_CHARS = /[,:\\]/;

export interface OverlayMountPlan {
  /** The mount data string. */
  data: string;
  /** When set, the data uses paths relative to this directory: chdir there to mount. */
  cwd?: string;
}

/**
 * Builds the overlay mount data. Absolute paths when they fit in one page; otherwise the
 * short links relative to their directory, as Docker's overlay2 does for deep images.
 */
export function planOverlayMount(p: {
  /** Absolute lower dirs, bottom first. */
  lowerDirs: string[];
  /** Link names inside linksDir, bottom first, one per lower dir. */
  linkNames: string[];
  linksDir: string;
  upper: string;
  work: string;
  /** upper and work relative to linksDir. */
  relativeUpper: string;
  relativeWork: string;
  extraOptions?: string[];
}): OverlayMountPlan {
  const extra = p.extraOptions?.length ? ',' + p.extraOptions.join(',') : '';
  // overlayfs wants the topmost layer first.
  const absolute = `lowerdir=${[...p.lowerDirs].reverse().join(':')},upperdir=${p.upper},workdir=${p.work}${extra}`;
  const absoluteSafe = [...p.lowerDirs, p.upper, p.work].every((d) => !UNSAFE_OPTION_CHARS.test(d));
  if (absoluteSafe && Buffer.byteLength(absolute) <= MOUNT_DATA_MAX) return { data: absolute };
  const relative = `lowerdir=${[...p.linkNames].reverse().join(':')},upperdir=${p.relativeUpper},workdir=${p.relativeWork}${extra}`;
  if (Buffer.byteLength(relative) > MOUNT_DATA_MAX) {
    throw new BerthError('EUNSUPPORTED', `too many layers for an overlay mount (${p.lowerDirs.length})`);
  }
  return { data: relative, cwd: p.linksDir };
}

/**
 * Mounts an overlay. With a cwd, the relative paths in the data resolve against it: the
 * chdir, mount and chdir back run synchronously with no await between them, so no other
 * JavaScript runs while the process cwd is changed.
 */
export function mountOverlay(target: string, plan: OverlayMountPlan): void {
  if (!plan.cwd) { mountSyscall('overlay', target, 'overlay', 0, plan.data); return; }
  let previous: string | undefined;
  try { previous = process.cwd(); } catch { /* cwd was deleted; return to / afterwards */ }
  process.chdir(plan.cwd);
  try {
    mountSyscall('overlay', target, 'overlay', 0, plan.data);
  } finally {
    process.chdir(previous ?? '/');
  }
}

export class OverlayDriver implements StorageDriver {
  readonly name = 'overlay' as const;
  readonly whiteoutFormat = 'overlay' as const;
  private readonly home: string;
  private readonly linksDir: string;
  private readonly queue = new KeyedQueue();

  constructor(root: string, private readonly options: OverlayOptions) {
    this.home = join(root, 'storage', 'overlay');
    this.linksDir = join(this.home, LINKS_DIR);
  }

  private dir(id: string): string {
    assertValidId(id);
    return join(this.home, id);
  }

  async create(id: string, lowers: LowerLayer[]): Promise<void> {
    const dir = this.dir(id);
    for (const lower of lowers) {
      if (!isAbsolute(lower.diffPath)) throw new BerthError('EINVAL', `layer path ${lower.diffPath} is not absolute`);
      // Without in-tree markers overlayfs would show the files this layer deletes.
      if (lower.whiteoutFormat !== 'overlay' && (lower.whiteouts.length > 0 || lower.opaques.length > 0)) {
        throw new BerthError('EINVAL', `layer ${lower.diffPath} deletes files but has no overlay whiteout markers`);
      }
    }
    return this.queue.run(id, async () => {
      if (await pathExists(dir)) throw new BerthError('ECONFLICT', `storage for ${id} already exists`);
      await fsp.mkdir(this.linksDir, { recursive: true });
      const links: string[] = [];
      for (const lower of lowers) links.push(await this.ensureLink(lower.diffPath));

      const staging = tempPathFor(dir);
      try {
        await fsp.mkdir(staging, { mode: 0o700 });
        // The container's / takes its owner and mode from upper's root: match the top layer.
        const top = lowers.length ? await fsp.stat(lowers[lowers.length - 1]!.diffPath) : undefined;
        await fsp.mkdir(join(staging, 'upper'), { mode: 0o755 });
        if (top) {
          await fsp.chown(join(staging, 'upper'), top.uid, top.gid);
          await fsp.chmod(join(staging, 'upper'), top.mode & 0o7777);
        }
        await fsp.mkdir(join(staging, 'work'), { mode: 0o700 });
        await fsp.mkdir(join(staging, 'merged'), { mode: 0o755 });
        if (!lowers.length) await fsp.mkdir(join(staging, EMPTY_LOWER), { mode: 0o755 });
        const record: OverlayRecord = { version: 1, lowers, links };
        await writeJsonAtomic(join(staging, RECORD_FILE), record);
        await fsyncDir(staging);
        await renameDurable(staging, dir);
      } catch (err) {
        await removeTree(staging).catch(() => {});
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new BerthError('ECONFLICT', `storage for ${id} already exists`, { cause: err });
        throw err;
      }
    });
  }

  /** Returns the name of a link to diffPath in the links dir, creating it if needed. */
  private async ensureLink(diffPath: string, preferred?: string): Promise<string> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const name = attempt === 0 && preferred ? preferred : shortLinkName(diffPath, attempt);
      const link = join(this.linksDir, name);
      try {
        if (await fsp.readlink(link) === diffPath) return name;
        continue; // a hash collision with another layer: try the next name
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      try {
        await fsp.symlink(diffPath, link);
        return name;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        attempt--; // raced with another creator: re-read the same name
      }
    }
    throw new BerthError('EINTERNAL', `cannot create a short link for ${diffPath}`);
  }

  private async readRecord(id: string): Promise<OverlayRecord> {
    const record = await readJsonIfExists<OverlayRecord>(join(this.dir(id), RECORD_FILE));
    if (!record) throw new BerthError('ENOCONTAINER', `no storage for container ${id}`);
    return record;
  }

  async mount(id: string): Promise<string> {
    const dir = this.dir(id);
    return this.queue.run(id, async () => {
      const record = await this.readRecord(id);
      const merged = join(dir, 'merged');
      if (await isMountpoint(merged)) return merged;
      const lowerDirs = record.lowers.length ? record.lowers.map((l) => l.diffPath) : [join(dir, EMPTY_LOWER)];
      let linkNames: string[];
      if (record.lowers.length) {
        // Links may have been cleaned up or renamed after a collision; names are content-derived.
        linkNames = [];
        for (let i = 0; i < record.lowers.length; i++) linkNames.push(await this.ensureLink(record.lowers[i]!.diffPath, record.links[i]));
      } else {
        linkNames = [`../${id}/${EMPTY_LOWER}`];
      }
      const plan = planOverlayMount({
        lowerDirs, linkNames, linksDir: this.linksDir,
        upper: join(dir, 'upper'), work: join(dir, 'work'),
        relativeUpper: `../${id}/upper`, relativeWork: `../${id}/work`,
        extraOptions: this.options.indexOff ? ['index=off'] : [],
      });
      try {
        mountOverlay(merged, plan);
      } catch (err) {
        throw new BerthError('EINTERNAL', `cannot mount the root filesystem of ${id}: ${(err as Error).message}`, { cause: err });
      }
      log.debug('mounted', { id, layers: record.lowers.length, relative: Boolean(plan.cwd) });
      return merged;
    });
  }

  async unmount(id: string): Promise<void> {
    const merged = join(this.dir(id), 'merged');
    return this.queue.run(id, async () => {
      if (await pathExists(merged)) await unmountAll(merged);
    });
  }

  async remove(id: string): Promise<void> {
    const dir = this.dir(id);
    return this.queue.run(id, () => discardDir(dir));
  }

  async exists(id: string): Promise<boolean> {
    return pathExists(join(this.dir(id), RECORD_FILE));
  }

  async diffSize(id: string): Promise<number> {
    await this.readRecord(id);
    return treeSize(join(this.dir(id), 'upper'));
  }

  async changes(id: string): Promise<Change[]> {
    // The record's lowers are the ones actually mounted; the caller's are the same layers.
    const record = await this.readRecord(id);
    return overlayChanges(join(this.dir(id), 'upper'), record.lowers);
  }

  status(): Array<[string, string]> {
    return [
      ['Backing Filesystem', this.options.backingFs],
      ['Supports d_type', 'true'],
      ['Using metacopy', String(this.options.metacopy)],
    ];
  }

  async cleanup(knownIds: Set<string>): Promise<void> {
    if (!await pathExists(this.home)) return;
    const referencedLinks = new Set<string>();
    for (const name of await fsp.readdir(this.home)) {
      if (name === LINKS_DIR) continue;
      const dir = join(this.home, name);
      const record = isTempName(name) ? undefined : await readJsonIfExists<OverlayRecord>(join(dir, RECORD_FILE)).catch(() => undefined);
      if (record && knownIds.has(name)) {
        for (const link of record.links) referencedLinks.add(link);
        continue;
      }
      log.info('removing leftover container storage', { dir, reason: isTempName(name) ? 'unfinished' : record ? 'unknown container' : 'no record' });
      await removeTree(dir);
    }
    // Links of removed containers; a later mount recreates any that are missing.
    if (await pathExists(this.linksDir)) {
      for (const name of await fsp.readdir(this.linksDir)) {
        if (!referencedLinks.has(name)) await fsp.rm(join(this.linksDir, name), { force: true });
      }
    }
  }
}
