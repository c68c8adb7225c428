// Chooses the storage driver for a data root. Whether overlay works depends on the kernel
// and on the filesystem under the data root (OpenWrt's /overlay is itself an overlayfs,
// which cannot be an upper dir), so it is decided by trying a real overlay mount there.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BerthError } from '../util/errors';
import { TEMP_PREFIX } from '../util/atomic';
import { logger } from '../util/log';
import { fsTypeMagic } from '../host/mount';
import { mknod, lsetxattr, S_IFCHR } from '../host/fsops';
import type { DriverName, StorageDriver } from './driver';
import { OverlayDriver, mountOverlay } from './overlay';
import { CopyDriver } from './copy';
import { removeTree, unmountAll } from './fsutil';

const log = logger('storage');

const FS_NAMES = new Map<number, string>([
  [0xef53, 'extfs'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
  [0x794c7630, 'overlayfs'],
  [0x72b6, 'jffs2'],
  [0x24051905, 'ubifs'],
  [0xf2f52010, 'f2fs'],
  [0x73717368, 'squashfs'],
  [0x6969, 'nfs'],
  [0x2fc12fc1, 'zfs'],
  [0x4d44, 'msdos'],
  [0x65735546, 'fuseblk'],
]);

/** Docker's name for a statfs f_type, as shown by `docker info` ("extfs" for ext2/3/4). */
export function backingFsName(magic: number): string {
  return FS_NAMES.get(magic >>> 0) ?? `unknown (0x${(magic >>> 0).toString(16)})`;
}

/** Maps a configured driver name to a driver; undefined or '' means "detect". */
export function normaliseDriverName(requested: string | undefined): DriverName | undefined {
  switch (requested?.trim().toLowerCase()) {
    case undefined: case '': return undefined;
    case 'overlay': case 'overlay2': return 'overlay';
    case 'copy': case 'vfs': return 'copy';
    default: throw new BerthError('EINVAL', `unknown storage driver ${JSON.stringify(requested)} (use overlay or copy)`);
  }
}

const OVERLAY_PARAMS = '/sys/module/overlay/parameters';

async function kernelOverlayDefault(param: string): Promise<boolean> {
  try { return (await fsp.readFile(join(OVERLAY_PARAMS, param), 'utf8')).trim() === 'Y'; } catch { return false; }
}

export type OverlayProbe = { ok: true; indexOff: boolean; metacopy: boolean } | { ok: false; reason: string };

const PROBE_PREFIX = `${TEMP_PREFIX}overlay-probe-`;

/**
 * Mounts a small overlay inside `dir` with the same kind of layers the driver will use
 * (a whiteout marker and an opaque directory), writes through it and checks the merged
 * view. Leaves nothing behind.
 */
export async function probeOverlay(dir: string): Promise<OverlayProbe> {
  await fsp.mkdir(dir, { recursive: true });
  for (const name of await fsp.readdir(dir)) {
    if (name.startsWith(PROBE_PREFIX)) await removeTree(join(dir, name));
  }
  const probe = join(dir, PROBE_PREFIX + randomBytes(6).toString('hex'));
  const step = async <T>(what: string, op: () => T | Promise<T>): Promise<T> => {
    try { return await op(); } catch (err) {
      throw new Error(`${what} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
  };
  try {
    const bottom = join(probe, 'bottom'), top = join(probe, 'top'), merged = join(probe, 'merged');
    for (const sub of ['bottom/hidden', 'top/hidden', 'upper', 'work', 'merged']) await fsp.mkdir(join(probe, sub), { recursive: true });
    await fsp.writeFile(join(bottom, 'kept'), '');
    await fsp.writeFile(join(bottom, 'deleted'), '');
    await fsp.writeFile(join(bottom, 'hidden', 'old'), '');
    await fsp.writeFile(join(top, 'hidden', 'new'), '');
    await step('creating a whiteout marker', () => mknod(join(top, 'deleted'), S_IFCHR | 0o600, 0, 0));
    await step('setting trusted.overlay.opaque', () => lsetxattr(join(top, 'hidden'), 'trusted.overlay.opaque', Buffer.from('y')));
    // Relative paths: the data root's path may hold characters overlayfs's option parser splits on.
    await step('mounting a test overlay', () => mountOverlay(merged, { data: 'lowerdir=top:bottom,upperdir=upper,workdir=work', cwd: probe }));
    try {
      await step('writing through the test overlay', () => fsp.writeFile(join(merged, 'written'), 'x'));
      const view = (await fsp.readdir(merged)).sort().join(',');
      const hidden = (await fsp.readdir(join(merged, 'hidden'))).join(',');
      // Whiteouts are recognised by d_type in readdir; without it deleted files show up.
      if (view !== 'hidden,kept,written') return { ok: false, reason: `whiteouts are not honoured (saw ${view}; no d_type support?)` };
      if (hidden !== 'new') return { ok: false, reason: `opaque directories are not honoured (saw ${hidden})` };
      if (!(await fsp.readdir(join(probe, 'upper'))).includes('written')) return { ok: false, reason: 'writes did not reach the upper dir' };
    } finally {
      await unmountAll(merged);
    }
    // The overlay module may load only on the first mount, so read its defaults now.
    return { ok: true, indexOff: await kernelOverlayDefault('index'), metacopy: await kernelOverlayDefault('metacopy') };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  } finally {
    await removeTree(probe).catch((err) => log.warn('cannot remove the overlay probe directory', { probe, error: (err as Error).message }));
  }
}

/**
 * The storage driver for a data root: `requested` ('overlay', 'overlay2', 'copy', 'vfs')
 * if given, otherwise overlay when a test mount works there, else copy.
 */
export async function selectDriver(root: string, requested?: string): Promise<StorageDriver> {
  const wanted = normaliseDriverName(requested);
  const storageDir = join(root, 'storage');
  await fsp.mkdir(storageDir, { recursive: true });
  const backingFs = backingFsName(await fsTypeMagic(storageDir));
  if (wanted === 'copy') return new CopyDriver(root, { backingFs });

  const probe = await probeOverlay(storageDir);
  if (probe.ok) {
    log.info('using the overlay storage driver', { backingFs, indexOff: probe.indexOff });
    return new OverlayDriver(root, { backingFs, indexOff: probe.indexOff, metacopy: probe.metacopy });
  }
  if (wanted === 'overlay') {
    throw new BerthError('EUNSUPPORTED', `overlay is not supported on the data root (${backingFs}): ${probe.reason}`);
  }
  log.warn('overlay is not supported on the data root; using the copy driver', { backingFs, reason: probe.reason });
  return new CopyDriver(root, { backingFs });
}
