// Docker's User string ("", "uid", "name", "uid:gid", "name:group") resolved against the
// image's /etc/passwd and /etc/group. The rootfs is untrusted: its files are found with
// symlinks followed as the container would see them, and the opened file is checked to
// really lie inside the rootfs before a byte of it is used.
import { promises as fsp, constants as fsc } from 'node:fs';
import { posix as path } from 'node:path';
import { BerthError } from '../util/errors';

/** Above this, the file is not a real passwd/group file: refuse to read it into memory. */
const MAX_DB_BYTES = 1 << 20;
const MAX_SYMLINKS = 40;
const MAX_ID = 2 ** 31 - 1;

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (from /etc/group membership and GroupAdd), without duplicates. */
  groups: number[];
  home: string;
}

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

/**
 * The host path of `inner` as the container sees it: symlinks are followed, but `/` and
 * `..` stop at `root`. Missing components are kept as they are.
 */
export async function resolveInRoot(root: string, inner: string): Promise<string> {
  const pending = inner.split('/').filter(Boolean);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') { resolved.pop(); continue; }
    const candidate = path.join(root, ...resolved, part);
    let target: string | undefined;
    try {
      const st = await fsp.lstat(candidate);
      if (st.isSymbolicLink()) target = await fsp.readlink(candidate);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
    }
    if (target === undefined) { resolved.push(part); continue; }
    if (++links > MAX_SYMLINKS) throw new BerthError('EUNSAFE', `too many symlinks resolving ${inner} in the image`);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return path.join(root, ...resolved);
}

/**
 * Reads a small regular file of the rootfs, or undefined when it is missing. Symlinks are
 * resolved inside the rootfs; after opening, the descriptor's real path must still be
 * under the rootfs, which also defeats a running container swapping directories under
 * us (exec reads the live rootfs).
 */
export async function readFileInRoot(root: string, inner: string): Promise<string | undefined> {
  const realRoot = await fsp.realpath(root);
  const hostPath = await resolveInRoot(realRoot, inner);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(hostPath, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw new BerthError('EUNSAFE', `${inner} in the image changed while it was read`);
    throw err;
  }
  try {
    const opened = await fsp.readlink(`/proc/self/fd/${fh.fd}`);
    if (opened !== realRoot && !opened.startsWith(realRoot.endsWith('/') ? realRoot : realRoot + '/')) {
      throw new BerthError('EUNSAFE', `${inner} in the image resolves outside the container's root`);
    }
    const st = await fh.stat();
    if (!st.isFile()) throw new BerthError('EUNSAFE', `${inner} in the image is not a regular file`);
    if (st.size > MAX_DB_BYTES) throw new BerthError('ETOOLARGE', `${inner} in the image is larger than ${MAX_DB_BYTES} bytes`);
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

function parseId(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    const f = l.split(':');
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    // Malformed lines are skipped like libc does, rather than failing the container.
    if (!f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    const f = l.split(':');
    const gid = parseId(f[2] ?? '');
    if (!f[0] || gid === undefined) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

function numericOrThrow(text: string, what: 'uid' | 'gid'): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = parseId(text);
  if (n === undefined) throw new BerthError('EINVAL', `${what} ${text} is out of range (0-${MAX_ID})`);
  return n;
}

/**
 * Docker's semantics: a user found in passwd (by name, or by uid) gives its gid and home,
 * and, unless a group was given, its /etc/group memberships as supplementary groups. A
 * numeric uid needs no passwd entry (gid 0, home /). A name must exist.
 */
export function resolveUserFrom(user: string | undefined, passwdText: string | undefined, groupText: string | undefined, groupAdd: string[] = []): ResolvedUser {
  const passwd = passwdText === undefined ? [] : parsePasswd(passwdText);
  const groups = groupText === undefined ? [] : parseGroup(groupText);
  const spec = (user ?? '').trim();
  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? '' : spec.slice(colon + 1);

  let uid = 0;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  const wanted = userPart === '' ? '0' : userPart;
  const numericUid = numericOrThrow(wanted, 'uid');
  const entry = numericUid !== undefined ? passwd.find((p) => p.uid === numericUid) : passwd.find((p) => p.name === wanted);
  if (entry) {
    ({ uid, gid, name } = entry);
    home = entry.home || '/';
  } else if (numericUid !== undefined) {
    uid = numericUid;
  } else {
    throw new BerthError('EINVAL', `unable to find user ${wanted}: no matching entries in passwd file`);
  }

  let supplementary: number[] = [];
  if (groupPart !== '') {
    const numericGid = numericOrThrow(groupPart, 'gid');
    const g = groups.find((e) => (numericGid !== undefined ? e.gid === numericGid : e.name === groupPart));
    if (g) gid = g.gid;
    else if (numericGid !== undefined) gid = numericGid;
    else throw new BerthError('EINVAL', `unable to find group ${groupPart}: no matching entries in group file`);
  } else if (name !== undefined) {
    supplementary = groups.filter((g) => g.members.includes(name!)).map((g) => g.gid);
  }

  for (const extra of groupAdd) {
    const numericGid = numericOrThrow(extra, 'gid');
    if (numericGid !== undefined) { supplementary.push(numericGid); continue; }
    const g = groups.find((e) => e.name === extra);
    if (!g) throw new BerthError('EINVAL', `unable to find group ${extra}: no matching entries in group file`);
    supplementary.push(g.gid);
  }
  return { uid, gid, groups: [...new Set(supplementary)], home };
}

/** Resolves the user against the rootfs's own /etc/passwd and /etc/group. */
export async function resolveUser(rootfs: string, user: string | undefined, groupAdd: string[] = []): Promise<ResolvedUser> {
  const spec = (user ?? '').trim();
  // Only read what is needed: a numeric uid:gid without GroupAdd never touches the image.
  const needsGroupFile = groupAdd.length > 0 || !/^\d+:\d+$/.test(spec);
  const [passwd, group] = await Promise.all([
    readFileInRoot(rootfs, '/etc/passwd'),
    needsGroupFile ? readFileInRoot(rootfs, '/etc/group') : Promise.resolve(undefined),
  ]);
  return resolveUserFrom(spec, passwd, group, groupAdd);
}
