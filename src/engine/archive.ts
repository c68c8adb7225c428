// Files in and out of a container's root filesystem: docker cp's archive endpoints and
// docker export. Every container path is resolved with chroot semantics (secureJoin):
// a symlink inside the container, absolute or relative, never leads out of its rootfs,
// whatever the container (or an uploaded tar) has put there.
import { promises as fsp, constants as fsc, createReadStream, type Stats } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { BerthError } from '../util/errors';
import { cleanEntryPath, secureJoin } from '../image/layer-apply';
import { decompressStream } from '../image/decompress';
import { mknod, splitDev, S_IFBLK, S_IFCHR, S_IFIFO } from '../host/fsops';

/** The X-Docker-Container-Path-Stat document. */
export interface PathStat {
  name: string;
  size: number;
  /** Go's os.FileMode bits, which the docker CLI decodes (IsDir, symlink). */
  mode: number;
  mtime: string;
  linkTarget: string;
}

// Go's os.FileMode type bits.
const GO_MODE = {
  dir: 2 ** 31, symlink: 2 ** 27, device: 2 ** 26, namedPipe: 2 ** 25, socket: 2 ** 24,
  setuid: 2 ** 23, setgid: 2 ** 22, charDevice: 2 ** 21, sticky: 2 ** 20,
};

export function goFileMode(st: Stats): number {
  let mode = st.mode & 0o777;
  if (st.isDirectory()) mode += GO_MODE.dir;
  else if (st.isSymbolicLink()) mode += GO_MODE.symlink;
  else if (st.isBlockDevice()) mode += GO_MODE.device;
  else if (st.isCharacterDevice()) mode += GO_MODE.device + GO_MODE.charDevice;
  else if (st.isFIFO()) mode += GO_MODE.namedPipe;
  else if (st.isSocket()) mode += GO_MODE.socket;
  if (st.mode & 0o4000) mode += GO_MODE.setuid;
  if (st.mode & 0o2000) mode += GO_MODE.setgid;
  if (st.mode & 0o1000) mode += GO_MODE.sticky;
  return mode;
}

/** The container path as the user gave it, made absolute, keeping a trailing "/" or "/.". */
function absoluteContainerPath(path: string): string {
  if (path.includes('\0')) throw new BerthError('EINVAL', 'path has a NUL byte');
  const joined = posix.join('/', path);
  if (/\/\.$/.test(path) && joined !== '/') return `${joined.replace(/\/$/, '')}/.`;
  if (path.endsWith('/') && !joined.endsWith('/')) return `${joined}/`;
  return joined;
}

export interface ResolvedPath {
  /** Host path inside the rootfs. */
  hostPath: string;
  /** The stat header's name: the last element of the path as asked. */
  name: string;
  stat: Stats;
  info: PathStat;
}

function notFound(path: string, container: string): BerthError {
  return new BerthError('ENOTFOUND', `Could not find the file ${path} in container ${container}`);
}

/**
 * Resolves a container path for reading. Like docker, the last element is not followed
 * unless the path ends in "/" or "/.": asking for a symlink gets the link itself.
 */
export async function resolveContainerPath(rootfs: string, path: string, container: string): Promise<ResolvedPath> {
  const absolute = absoluteContainerPath(path);
  const followLast = absolute.endsWith('/') || absolute.endsWith('/.');
  const trimmed = absolute.replace(/\/\.?$/, '') || '/';
  const hostPath = followLast || trimmed === '/'
    ? await secureJoin(rootfs, trimmed)
    : posix.join(await secureJoin(rootfs, posix.dirname(trimmed)), posix.basename(trimmed));
  let stat: Stats;
  try {
    stat = await fsp.lstat(hostPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw notFound(path, container);
    throw err;
  }
  if (followLast && !stat.isDirectory()) throw new BerthError('EINVAL', `not a directory: ${path}`);
  let linkTarget = '';
  if (stat.isSymbolicLink()) {
    // The fully resolved target, as a path inside the container.
    linkTarget = '/' + posix.relative(rootfs, await secureJoin(rootfs, trimmed));
  }
  const name = absolute.endsWith('/.') ? '.' : posix.basename(trimmed) || '/';
  const info: PathStat = { name, size: stat.size, mode: goFileMode(stat), mtime: stat.mtime.toISOString(), linkTarget };
  return { hostPath, name, stat, info };
}

export function encodePathStat(info: PathStat): string {
  return Buffer.from(JSON.stringify(info)).toString('base64');
}

function entryType(st: Stats): tar.Header["type"] | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'character-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets cannot be archived
}

/**
 * Streams a tar of `hostPath` with its top entry named `topName` ('' for none: the
 * children sit at the top, as docker export has them). Hardlinks stay hardlinks.
 */
export function tarTree(hostPath: string, topName: string): Readable {
  const pack = tar.pack();
  const firstNameOfInode = new Map<string, string>();

  const add = async (path: string, name: string, st: Stats): Promise<void> => {
    const type = entryType(st);
    if (!type) return;
    const header: Partial<tar.Header> & { name: string } = {
      name: type === 'directory' ? `${name}/` : name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid,
      mtime: st.mtime, type,
    };
    if (type === 'file' && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = firstNameOfInode.get(key);
      if (first !== undefined) {
        pack.entry({ ...header, type: 'link', linkname: first, size: 0 });
        return;
      }
      firstNameOfInode.set(key, name);
    }
    if (type === 'symlink') header.linkname = await fsp.readlink(path);
    if (type === 'character-device' || type === 'block-device') {
      const { major, minor } = splitDev(st.rdev);
      header.devmajor = major;
      header.devminor = minor;
    }
    if (type !== 'file') {
      await new Promise<void>((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
      return;
    }
    header.size = st.size;
    // O_NOFOLLOW: the file may have been swapped for a symlink since the lstat.
    const fd = await fsp.open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    const source = createReadStream('', { fd: fd.fd, autoClose: false, end: Math.max(st.size - 1, 0), start: 0 });
    try {
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
        if (st.size === 0) { source.destroy(); (sink as unknown as { end(): void }).end(); return; } // streamx typings require a chunk
        source.on('error', reject);
        source.pipe(sink);
      });
    } finally {
      await fd.close();
    }
  };

  const walk = async (dir: string, prefix: string): Promise<void> => {
    let names: string[];
    try { names = (await fsp.readdir(dir)).sort(); } catch { return; }
    for (const child of names) {
      const path = posix.join(dir, child);
      let st: Stats;
      try { st = await fsp.lstat(path); } catch { continue; } // gone while we walked
      const name = prefix ? `${prefix}/${child}` : child;
      await add(path, name, st);
      if (st.isDirectory()) await walk(path, name);
    }
  };

  void (async () => {
    const st = await fsp.lstat(hostPath);
    if (topName) await add(hostPath, topName, st);
    if (st.isDirectory()) await walk(hostPath, topName);
    pack.finalize();
  })().catch((err) => pack.destroy(err as Error));
  return pack as unknown as Readable;
}

export interface ExtractOptions {
  /** Refuse to replace a directory with a non-directory or the reverse (docker cp's default). */
  noOverwriteDirNonDir: boolean;
  /** Limit on the uncompressed archive, in bytes. */
  maxBytes?: number;
  /** Owner for every entry instead of the archive's (docker cp without -a: the container's root). */
  owner?: { uid: number; gid: number };
  /** false skips chown (an unprivileged `berth cp` onto the host, where it would fail). */
  chown?: boolean;
  /** Renames the archive's top element: docker cp to a new name. */
  rebase?: { from: string; to: string };
}

async function lstatIfExists(path: string): Promise<Stats | undefined> {
  try { return await fsp.lstat(path); } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Extracts a tar (plain, gzip or zstd) into the container directory `path`. Entry names
 * may not climb above that directory; parents resolve with chroot semantics inside the
 * rootfs; the last component is never followed: it is replaced, then created with
 * O_EXCL|O_NOFOLLOW. Unlike an image layer, ".wh." names are ordinary files here.
 */
export async function extractInto(rootfs: string, path: string, container: string, input: Readable, opts: ExtractOptions): Promise<void> {
  const absolute = absoluteContainerPath(path);
  const destination = await secureJoin(rootfs, absolute);
  const destStat = await lstatIfExists(destination);
  if (!destStat) throw notFound(path, container);
  if (!destStat.isDirectory()) throw new BerthError('EINVAL', 'extraction point is not a directory');
  // The destination as a container path, so entries resolve from there inside the rootfs.
  const base = '/' + posix.relative(rootfs, destination);

  const extract = tar.extract();
  let bytes = 0;
  const decompressed = decompressStream(input);
  decompressed.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (opts.maxBytes !== undefined && bytes > opts.maxBytes) {
      decompressed.destroy(new BerthError('ETOOLARGE', `archive is larger than the limit of ${opts.maxBytes} bytes`));
    }
  });
  decompressed.on('error', (err) => extract.destroy(err));
  decompressed.pipe(extract as unknown as NodeJS.WritableStream);
  const directoryTimes: Array<{ path: string; mtime: Date }> = [];
  try {
    for await (const entry of extract) {
      const header = entry.header;
      try {
        await extractEntry(rootfs, base, header, entry as unknown as Readable, opts, directoryTimes);
      } finally {
        entry.resume();
      }
    }
  } catch (err) {
    decompressed.destroy();
    if (err instanceof BerthError) throw err;
    throw new BerthError('EINVAL', `cannot extract the archive: ${(err as Error).message}`, { cause: err });
  }
  // Last, since creating children changes a directory's mtime.
  for (const { path: dir, mtime } of directoryTimes.reverse()) await fsp.lutimes(dir, mtime, mtime).catch(() => {});
}

async function extractEntry(rootfs: string, base: string, header: tar.Header, data: Readable, opts: ExtractOptions, directoryTimes: Array<{ path: string; mtime: Date }>): Promise<void> {
  let relative = cleanEntryPath(header.name);
  if (opts.rebase) {
    const [top, ...rest] = relative.split('/');
    if (top === opts.rebase.from) relative = cleanEntryPath([opts.rebase.to, ...rest].join('/'));
  }
  if (relative === '') return; // the archive's "./": the destination itself
  const containerPath = posix.join(base, relative);
  const parent = await secureJoin(rootfs, posix.dirname(containerPath));
  const target = posix.join(parent, posix.basename(containerPath));
  await fsp.mkdir(parent, { recursive: true, mode: 0o755 }).catch(async (err) => {
    // A parent that is not a directory: docker fails the same way.
    throw new BerthError('EINVAL', `cannot create the parent of ${containerPath}: ${(err as Error).message}`, { cause: err });
  });
  const existing = await lstatIfExists(target);
  const isDir = header.type === 'directory';
  if (existing && opts.noOverwriteDirNonDir && existing.isDirectory() !== isDir) {
    throw new BerthError('EINVAL', existing.isDirectory()
      ? `cannot overwrite directory "${containerPath}" with non-directory "${header.name}"`
      : `cannot overwrite non-directory "${containerPath}" with directory "${header.name}"`);
  }
  if (existing && !(isDir && existing.isDirectory())) await fsp.rm(target, { recursive: true, force: true });
  const mode = (header.mode ?? 0o644) & 0o7777;
  switch (header.type) {
    case 'directory':
      if (!existing?.isDirectory()) await fsp.mkdir(target, { mode: 0o700 });
      break;
    case 'file': case 'contiguous-file': {
      const fh = await fsp.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      try {
        for await (const chunk of data) await fh.write(chunk as Buffer);
      } finally {
        await fh.close();
      }
      break;
    }
    case 'symlink':
      await fsp.symlink(header.linkname ?? '', target);
      break;
    case 'link': {
      // Hardlink targets are archive names: resolved from the destination, inside the rootfs.
      let linkName = cleanEntryPath(header.linkname ?? '');
      if (opts.rebase) {
        const [top, ...rest] = linkName.split('/');
        if (top === opts.rebase.from) linkName = cleanEntryPath([opts.rebase.to, ...rest].join('/'));
      }
      const linked = await secureJoin(rootfs, posix.join(base, linkName));
      const st = await lstatIfExists(linked);
      if (!st || st.isDirectory()) throw new BerthError('EINVAL', `hardlink ${header.name} points at ${header.linkname}, which is missing or a directory`);
      await fsp.link(linked, target);
      return; // shares the target's metadata
    }
    case 'character-device': case 'block-device': case 'fifo': {
      const kind = header.type === 'fifo' ? S_IFIFO : header.type === 'block-device' ? S_IFBLK : S_IFCHR;
      mknod(target, kind | mode, header.devmajor ?? 0, header.devminor ?? 0);
      break;
    }
    default:
      return; // pax globals and unknown types carry nothing to write
  }
  if (opts.chown !== false) await fsp.lchown(target, opts.owner?.uid ?? header.uid ?? 0, opts.owner?.gid ?? header.gid ?? 0);
  // After chown, which clears setuid and setgid; Linux has no symlink modes.
  if (header.type !== 'symlink') await fsp.chmod(target, mode);
  const mtime = header.mtime ?? new Date();
  if (header.type === 'directory') directoryTimes.push({ path: target, mtime });
  else await fsp.lutimes(target, mtime, mtime);
}
