// Applies one layer tar onto a directory, the way Docker does, while treating the archive
// as hostile: nothing outside `root` is ever created, changed or removed.
//
// Path policy:
// - Entry names are cleaned lexically. A name whose `..` climbs above the root is rejected
//   (EUNSAFE). Absolute names are taken relative to the root, as Docker does
//   (`/etc/passwd` lands in `<root>/etc/passwd`).
// - Parent directories are resolved with chroot semantics (secureJoin): symlinks in the
//   tree, absolute or relative, are followed as if `root` were `/`. The final component is
//   never followed: it is replaced (rm, then O_EXCL|O_NOFOLLOW create) and its metadata set
//   with lchown/lutimes/lsetxattr.
// - Hardlink targets resolve the same way, must exist and must not be directories.
import { createHash } from 'node:crypto';
import { promises as fsp, constants as fsc, type Stats } from 'node:fs';
import { posix, resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { BerthError } from '../util/errors';
import { logger } from '../util/log';
import type { Digest } from '../minimal-graph/types';
import { lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from '../host/fsops';
import { decompressStream } from './decompress';
import type { TarSplitWriter } from '../minimal-graph';
import { TarSplitRecorder } from './tar-split-recorder';
import { secureJoin } from '../minimal-graph/fsutil';

// Kept here for callers and tests that import it from the layer applier.
export { secureJoin };

const log = logger('layer-apply');

export interface ApplyOptions {
  /** 'overlay' also writes overlayfs markers (0:0 char devices, trusted.overlay.opaque). */
  whiteoutFormat: 'overlay' | 'none';
  /** Limit on the uncompressed stream, in bytes. */
  maxBytes?: number;
  expectedDiffId?: Digest;
  /** Records the tar's layout (see tar-split-recorder.ts) so its blob can go later. */
  tarSplit?: TarSplitWriter;
}

export interface ApplyResult {
  /** sha256 of the whole uncompressed stream, tar padding and trailer included. */
  diffId: Digest;
  /** Sum of regular file bytes written. */
  size: number;
  /** Paths (relative to root, no leading slash) this layer deletes from the layers below. */
  whiteouts: string[];
  /** Directories (relative to root; '' is root itself) whose lower contents this layer hides. */
  opaques: string[];
}

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
const PAX_XATTR_PREFIX = 'SCHILY.xattr.';

export async function applyLayer(input: Readable, root: string, opts: ApplyOptions): Promise<ApplyResult> {
  const rootPath = resolvePath(root);
  const decompressed = decompressStream(input);
  const extract = tar.extract();
  const xattrEncoding = preserveBinaryPaxValues(extract) ? 'latin1' : 'utf8';
  const applier = new LayerApplier(rootPath, opts.whiteoutFormat, xattrEncoding);
  const hash = createHash('sha256');
  let uncompressedBytes = 0;
  const recorder = opts.tarSplit ? new TarSplitRecorder(opts.tarSplit, appliedFilePath) : undefined;

  let parserError: unknown;
  extract.on('error', (err: unknown) => { parserError ??= err; });

  let failure: unknown;
  const fail = (err: unknown) => {
    if (failure !== undefined) return;
    failure = err;
    extract.destroy(err as Error);
    decompressed.destroy(); // also stops reading `input`
  };

  // The digest covers every decompressed byte, so it is taken here rather than from entries,
  // and the stream is read to its end even past the tar trailer.
  const feeding = (async () => {
    for await (const chunk of decompressed as AsyncIterable<Buffer>) {
      if (failure !== undefined) return;
      uncompressedBytes += chunk.length;
      if (opts.maxBytes !== undefined && uncompressedBytes > opts.maxBytes) {
        throw new BerthError('ETOOLARGE', `layer is larger than the limit of ${opts.maxBytes} bytes uncompressed`);
      }
      hash.update(chunk);
      recorder?.write(chunk);
      if (!extract.write(chunk)) await writable(extract);
      if (opts.tarSplit?.needsDrain) await opts.tarSplit.drained();
    }
    recorder?.end();
    if (failure === undefined) (extract as unknown as { end(): void }).end(); // streamx typings require a chunk
  })().catch(fail);

  try {
    for await (const entry of extract) await applier.apply(entry);
    await applier.finish();
  } catch (err) {
    let cause = err;
    if (err instanceof EntryReadError) {
      // The entry's data stopped because the parser failed (truncated tar): report that.
      await closed(extract);
      cause = parserError ?? err.cause;
    }
    fail(cause instanceof BerthError ? cause : new BerthError('EINVAL', `layer is not a valid tar archive: ${(cause as Error).message}`, { cause }));
  }
  await feeding;
  if (failure !== undefined) throw failure;

  const diffId: Digest = `sha256:${hash.digest('hex')}`;
  if (opts.expectedDiffId !== undefined && opts.expectedDiffId !== diffId) {
    throw new BerthError('EDIGEST', `layer diff_id mismatch: expected ${opts.expectedDiffId}, got ${diffId}`);
  }
  return { diffId, size: applier.size, whiteouts: applier.whiteouts, opaques: applier.opaques };
}

/**
 * Where LayerApplier writes a regular file entry's bytes: its cleaned name, unless it
 * writes nothing (whiteouts, the root, names it rejects).
 */
function appliedFilePath(entryName: string): string | undefined {
  let path: string;
  try { path = cleanEntryPath(entryName); } catch { return undefined; }
  if (path === '' || posix.basename(path).startsWith(WHITEOUT_PREFIX)) return undefined;
  return path;
}

/** Reading an entry's data failed: the cause is the parser's, not the file system's. */
class EntryReadError extends Error {}

function closed(extract: tar.Extract): Promise<void> {
  if ((extract as unknown as { destroyed?: boolean }).destroyed) return Promise.resolve();
  return new Promise((resolve) => extract.once('close', () => resolve()));
}

/** Resolves when the tar parser wants more input, or has been torn down. */
function writable(extract: tar.Extract): Promise<void> {
  const stream = extract as unknown as { destroying?: boolean };
  if (stream.destroying) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { extract.off('drain', done); extract.off('close', done); resolve(); };
    extract.on('drain', done);
    extract.on('close', done);
  });
}

/**
 * Cleans a tar entry name into a root-relative path without `.`/`..` components; '' is the
 * root. Leading slashes are dropped (absolute names are relative to the root, as in Docker);
 * a `..` that would climb above the root is EUNSAFE.
 */
export function cleanEntryPath(name: string): string {
  if (name.includes('\0')) throw new BerthError('EUNSAFE', `layer entry ${JSON.stringify(name)} has a NUL byte in its name`);
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new BerthError('EUNSAFE', `layer entry ${JSON.stringify(name)} escapes the layer root`);
      parts.pop();
      continue;
    }
    parts.push(part);
  }
  return parts.join('/');
}

/** tar-stream's Header as it really arrives: unknown type flags come through as null. */
type EntryHeader = Omit<tar.Header, 'type' | 'pax'> & { type: tar.Header['type'] | null; pax?: Record<string, string> | null };
type TarEntry = tar.ExtractEvents['entry'][1];

class LayerApplier {
  size = 0;
  readonly whiteouts: string[] = [];
  readonly opaques: string[] = [];
  /** Absolute paths this layer has put in place; an opaque marker keeps only these. */
  private readonly fromThisLayer = new Set<string>();
  /** Directory mtimes are set at the end, since adding entries changes them. */
  private readonly directoryTimes: Array<{ path: string; atime: number; mtime: number }> = [];
  /**
   * Root-relative directory -> resolved path. Only symlinks (new ones, or hardlinks to them)
   * and removals can change a resolution, and both clear the cache.
   */
  private readonly resolvedDirs = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly whiteoutFormat: 'overlay' | 'none',
    /** How PAX xattr values were decoded into strings, to turn them back into bytes. */
    private readonly xattrEncoding: BufferEncoding,
  ) {}

  async apply(entry: TarEntry): Promise<void> {
    const header = entry.header as EntryHeader;
    let consumed = false;
    try {
      consumed = await this.applyEntry(header, entry);
    } catch (err) {
      throw describeEntryError(err, header.name);
    } finally {
      // The parser waits until the entry's data is read; skipped entries still have to be.
      if (!consumed) entry.resume();
    }
  }

  async finish(): Promise<void> {
    const realRoot = await fsp.realpath(this.root);
    for (const { path, atime, mtime } of this.directoryTimes.reverse()) {
      // A later entry may have replaced a parent with a symlink, which the kernel would
      // follow: touch the directory only if its path still has no symlink in it.
      const relative = posix.relative(this.root, path);
      let real: string;
      try {
        real = await fsp.realpath(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
        throw describeEntryError(err, relative);
      }
      if (real !== posix.join(realRoot, relative)) continue;
      if (!(await fsp.lstat(path)).isDirectory()) continue;
      await fsp.lutimes(path, atime, mtime);
    }
  }

  /** Returns true when it read the entry's data itself. */
  private async applyEntry(header: EntryHeader, entry: TarEntry): Promise<boolean> {
    const name = cleanEntryPath(header.name);
    const base = posix.basename(name);
    const parentName = name.includes('/') ? posix.dirname(name) : '';

    if (base.startsWith(WHITEOUT_PREFIX)) {
      await this.applyWhiteout(parentName, base, header);
      return false;
    }

    const type = header.type === 'contiguous-file' ? 'file' : header.type;
    switch (type) {
      case 'file': case 'directory': case 'symlink': case 'link':
      case 'character-device': case 'block-device': case 'fifo':
        break;
      default:
        log.debug('skipping layer entry of unsupported type', { name: header.name, type: String(header.type) });
        return false;
    }

    if (name === '') {
      if (type !== 'directory') throw new BerthError('EUNSAFE', `layer entry ${JSON.stringify(header.name)} would replace the layer root`);
      await this.setMetadata(this.root, header, 'directory');
      return false;
    }

    // Resolve a hardlink's target before touching the entry's own path, which it may name.
    const linkSource = type === 'link' ? await this.resolveHardlinkSource(header) : undefined;

    const target = posix.join(await this.resolveDir(parentName), base);
    if (linkSource?.path === target) return false; // a hardlink to itself: already in place
    const existing = await lstatIfExists(target);
    if (existing && !(existing.isDirectory() && type === 'directory')) {
      await fsp.rm(target, { recursive: true, force: true });
      this.resolvedDirs.clear();
    }
    this.fromThisLayer.add(target);

    switch (type) {
      case 'file': {
        await this.writeFile(target, header, entry);
        return true;
      }
      case 'directory':
        if (!existing?.isDirectory()) await fsp.mkdir(target, 0o700);
        await this.setMetadata(target, header, 'directory');
        return false;
      case 'symlink':
        await fsp.symlink(header.linkname ?? '', target);
        this.resolvedDirs.clear();
        await this.setMetadata(target, header, 'symlink');
        return false;
      case 'link': {
        await fsp.link(linkSource!.path, target);
        this.resolvedDirs.clear(); // the source may itself be a symlink
        await this.setMetadata(target, header, linkSource!.isSymlink ? 'symlink' : 'other');
        return false;
      }
      case 'character-device': case 'block-device': case 'fifo': {
        const fileType = type === 'fifo' ? S_IFIFO : type === 'block-device' ? S_IFBLK : S_IFCHR;
        mknod(target, fileType | 0o600, header.devmajor ?? 0, header.devminor ?? 0);
        await this.setMetadata(target, header, 'other');
        return false;
      }
    }
  }

  private async writeFile(target: string, header: EntryHeader, entry: TarEntry): Promise<void> {
    // O_EXCL|O_NOFOLLOW: the path was just cleared, so anything there now is not ours to follow.
    const fh = await fsp.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      const data = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await data.next();
        } catch (err) {
          throw new EntryReadError((err as Error).message, { cause: err });
        }
        if (next.done) break;
        const chunk = next.value;
        let offset = 0;
        while (offset < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
        }
        this.size += chunk.length;
      }
      const { uid, gid } = ownerOf(header);
      await fh.chown(uid, gid);
      this.setXattrs(target, header);
      await fh.chmod(modeOf(header)); // after chown, which clears setuid/setgid
      const { atime, mtime } = timesOf(header);
      await fh.utimes(atime, mtime);
    } finally {
      await fh.close();
    }
  }

  /** Owner, xattrs, mode and times for a path this layer just created (never a symlink we follow). */
  private async setMetadata(path: string, header: EntryHeader, kind: 'directory' | 'symlink' | 'other'): Promise<void> {
    const { uid, gid } = ownerOf(header);
    await fsp.lchown(path, uid, gid);
    this.setXattrs(path, header);
    const { atime, mtime } = timesOf(header);
    if (kind !== 'symlink') await fsp.chmod(path, modeOf(header)); // path is not a symlink: lstat'ed or just made
    if (kind === 'directory') this.directoryTimes.push({ path, atime, mtime });
    else await fsp.lutimes(path, atime, mtime);
  }

  private setXattrs(path: string, header: EntryHeader): void {
    const pax = header.pax;
    if (!pax) return;
    for (const [key, value] of Object.entries(pax)) {
      if (!key.startsWith(PAX_XATTR_PREFIX)) continue;
      const name = key.slice(PAX_XATTR_PREFIX.length);
      if (name.startsWith('trusted.overlay.')) {
        // Overlay markers from inside a layer could redirect or hide lower paths; only
        // whiteout entries may create them.
        log.warn('ignoring overlay xattr in layer entry', { name: header.name, xattr: name });
        continue;
      }
      try {
        lsetxattr(path, name, Buffer.from(value, this.xattrEncoding));
      } catch (err) {
        // Losing file capabilities would break programs silently; anything else is cosmetic
        // on a router (SELinux labels, user.* on tmpfs or jffs2).
        if (name === 'security.capability') {
          throw new BerthError('EUNSUPPORTED', `cannot set file capabilities on ${JSON.stringify(header.name)}: ${(err as Error).message}`, { cause: err });
        }
        log.warn('cannot set xattr from layer; continuing', { name: header.name, xattr: name, error: (err as Error).message });
      }
    }
  }

  private async resolveHardlinkSource(header: EntryHeader): Promise<{ path: string; isSymlink: boolean }> {
    let linkName: string;
    try {
      linkName = cleanEntryPath(header.linkname ?? '');
    } catch (err) {
      if (err instanceof BerthError && err.code === 'EUNSAFE') {
        throw new BerthError('EUNSAFE', `hardlink ${JSON.stringify(header.name)} points at ${JSON.stringify(header.linkname)}, outside the layer root`);
      }
      throw err;
    }
    if (linkName === '') throw new BerthError('EUNSAFE', `hardlink ${JSON.stringify(header.name)} points at the layer root`);
    const parent = await secureJoin(this.root, linkName.includes('/') ? posix.dirname(linkName) : '');
    const path = posix.join(parent, posix.basename(linkName));
    const st = await lstatIfExists(path);
    if (!st) throw new BerthError('EINVAL', `hardlink ${JSON.stringify(header.name)} points at ${JSON.stringify(header.linkname)}, which does not exist`);
    if (st.isDirectory()) throw new BerthError('EUNSAFE', `hardlink ${JSON.stringify(header.name)} points at a directory`);
    return { path, isSymlink: st.isSymbolicLink() };
  }

  /** Resolves a root-relative directory inside root, creating missing components (mode 0755). */
  private async resolveDir(relDir: string): Promise<string> {
    if (relDir === '') return this.root;
    const cached = this.resolvedDirs.get(relDir);
    if (cached !== undefined) return cached;
    const dir = await secureJoin(this.root, relDir);
    const st = await lstatIfExists(dir);
    // Safe to create recursively: secureJoin has checked every existing component.
    if (!st) await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    else if (!st.isDirectory()) throw new BerthError('EINVAL', `${JSON.stringify(relDir)} is not a directory`);
    this.resolvedDirs.set(relDir, dir);
    return dir;
  }

  private async applyWhiteout(parentName: string, base: string, header: EntryHeader): Promise<void> {
    if (base === OPAQUE_MARKER) return this.applyOpaque(parentName);
    if (base.startsWith(WHITEOUT_META_PREFIX)) {
      log.debug('skipping whiteout metadata entry', { name: header.name });
      return;
    }
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') {
      throw new BerthError('EUNSAFE', `whiteout ${JSON.stringify(header.name)} does not name a file`);
    }
    const target = posix.join(await this.resolveDir(parentName), hidden);
    this.whiteouts.push(posix.relative(this.root, target));
    await fsp.rm(target, { recursive: true, force: true });
    this.resolvedDirs.clear();
    if (this.whiteoutFormat === 'overlay') {
      mknod(target, S_IFCHR, 0, 0);
      const { uid, gid } = ownerOf(header);
      await fsp.lchown(target, uid, gid);
      this.fromThisLayer.add(target);
    }
  }

  private async applyOpaque(dirName: string): Promise<void> {
    const dir = await this.resolveDir(dirName);
    this.opaques.push(posix.relative(this.root, dir));
    await this.removeLowerEntries(dir);
    this.resolvedDirs.clear();
    if (this.whiteoutFormat === 'overlay') {
      try {
        lsetxattr(dir, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      } catch (err) {
        throw new BerthError('EUNSUPPORTED', `cannot mark ${JSON.stringify(dirName)} opaque for overlayfs: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /** Removes everything under dir that this layer did not put there (lstat only, no following). */
  private async removeLowerEntries(dir: string): Promise<void> {
    for (const child of await fsp.readdir(dir)) {
      const path = posix.join(dir, child);
      if (!this.fromThisLayer.has(path)) {
        await fsp.rm(path, { recursive: true, force: true });
      } else if ((await fsp.lstat(path)).isDirectory()) {
        await this.removeLowerEntries(path);
      }
    }
  }
}

async function lstatIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function paxNumber(header: EntryHeader, key: string): number | undefined {
  const raw = header.pax?.[key];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

function ownerOf(header: EntryHeader): { uid: number; gid: number } {
  return { uid: paxNumber(header, 'uid') ?? header.uid ?? 0, gid: paxNumber(header, 'gid') ?? header.gid ?? 0 };
}

function modeOf(header: EntryHeader): number {
  return (header.mode ?? 0o644) & 0o7777;
}

/** Seconds since the epoch; PAX times keep their sub-second part. */
function timesOf(header: EntryHeader): { atime: number; mtime: number } {
  const mtime = paxNumber(header, 'mtime') ?? (header.mtime ? header.mtime.getTime() / 1000 : 0);
  return { atime: paxNumber(header, 'atime') ?? mtime, mtime };
}

const INPUT_ERRNOS = new Set(['ENOENT', 'ENOTDIR', 'EEXIST', 'EISDIR', 'ENOTEMPTY', 'ELOOP', 'ENAMETOOLONG', 'EINVAL', 'EMLINK']);

function describeEntryError(err: unknown, name: string): Error {
  if (err instanceof BerthError || err instanceof EntryReadError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return new BerthError(INPUT_ERRNOS.has(code) ? 'EINVAL' : 'EINTERNAL',
    `cannot apply layer entry ${JSON.stringify(name)}: ${(err as Error).message}`, { cause: err });
}

/**
 * tar-stream decodes every PAX value as UTF-8, which mangles binary xattr values such as
 * security.capability. This swaps in a decoder for this one parser that keeps
 * SCHILY.xattr.* values byte-for-byte (as latin1 strings). If the library's internals
 * change, values fall back to UTF-8 decoding with a warning.
 */
function preserveBinaryPaxValues(extract: tar.Extract): boolean {
  type Internals = {
    _decodeLongHeader?: (buf: Buffer) => void;
    _header?: { type?: string } | null;
    _pax?: Record<string, string> | null;
    _paxGlobal?: Record<string, string> | null;
  };
  const parser = extract as unknown as Internals;
  const original = parser._decodeLongHeader;
  if (typeof original !== 'function' || !('_pax' in parser) || !('_paxGlobal' in parser)) {
    log.warn('tar-stream internals changed: binary xattr values in layers may be altered');
    return false;
  }
  parser._decodeLongHeader = function (this: Internals, buf: Buffer) {
    if (this._header?.type !== 'pax-header') return original.call(this, buf);
    const records = decodePaxRecords(buf);
    this._pax = this._paxGlobal ? { ...this._paxGlobal, ...records } : records;
  };
  return true;
}

/** PAX extended header records: "<length> <key>=<value>\n", length counting the whole record. */
export function decodePaxRecords(buf: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < buf.length) {
    const space = buf.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number.parseInt(buf.toString('ascii', at, space), 10);
    if (!(length > 0) || at + length > buf.length) break;
    const record = buf.subarray(space + 1, at + length - 1); // drop the trailing newline
    const equals = record.indexOf(0x3d);
    if (equals < 0) break;
    const key = record.toString('utf8', 0, equals);
    records[key] = record.toString(key.startsWith(PAX_XATTR_PREFIX) ? 'latin1' : 'utf8', equals + 1);
    at += length;
  }
  return records;
}
