// Shared plumbing for the cross builds: the build cache, private apt roots for other
// architectures' Debian packages, and npm tarballs fetched with `npm pack`.
// Everything lands under one cache dir keyed by package version, so a second build
// does no network work at all.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** BERTH_BUILD_CACHE, else .cache/build in the repository (gitignored). */
export function cacheDir(...parts) {
  const dir = join(process.env.BERTH_BUILD_CACHE ? resolve(process.env.BERTH_BUILD_CACHE) : join(ROOT, '.cache/build'), ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function onPath(name) {
  return (process.env.PATH || '').split(delimiter).some((dir) => dir && existsSync(join(dir, name)));
}

export function loadTargets() {
  return JSON.parse(readFileSync(join(ROOT, 'build/targets.json'), 'utf8')).targets;
}

export function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}

/** Runs fn(tmpDir) and renames tmpDir to dir, so an interrupted step never leaves a half-filled cache entry. */
export function cachedDir(dir, fn) {
  if (existsSync(join(dir, '.complete'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  fn(tmp);
  writeFileSync(join(tmp, '.complete'), '');
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

// --- Debian packages of another architecture, without touching the host's dpkg ---

/**
 * A private apt root whose sources are the host's Debian sources (with deb-src added),
 * for one architecture. The host's own apt state and dpkg database stay untouched.
 */
export function aptRoot(debArch) {
  const root = cacheDir('apt', debArch);
  for (const d of ['etc/apt/sources.list.d', 'etc/apt/preferences.d', 'etc/apt/apt.conf.d', 'var/lib/apt/lists/partial', 'var/cache/apt/archives/partial', 'var/lib/dpkg']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  if (!existsSync(join(root, 'var/lib/dpkg/status'))) writeFileSync(join(root, 'var/lib/dpkg/status'), '');
  writeFileSync(join(root, 'etc/apt/sources.list.d/host.sources'), hostSources());
  const options = [
    '-o', `Dir=${root}`,
    '-o', `Dir::State::status=${join(root, 'var/lib/dpkg/status')}`,
    // Keys stay the host's: only the host's configured archives are trusted.
    '-o', 'Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d',
    '-o', 'Dir::Etc::Trusted=/etc/apt/trusted.gpg',
    '-o', `APT::Architecture=${debArch}`,
    '-o', `APT::Architectures=${debArch}`,
    '-o', 'APT::Sandbox::User=root',
    '-o', 'Acquire::Languages=none',
    '-q',
  ];
  const updated = join(root, '.updated');
  if (!existsSync(updated)) {
    try {
      run('apt-get', [...options, 'update'], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      // A mirror mid-sync can fail one suite (often -security) while the rest is fine; a
      // package that is really missing fails clearly later, in aptVersion.
      console.warn(`apt-get update (${debArch}) reported errors; continuing with the lists it fetched:\n${String(err.stderr || '').trim()}`);
    }
    writeFileSync(updated, new Date().toISOString());
  }
  return { root, options };
}

/** The host's deb822 and one-line sources as deb822 with both deb and deb-src. */
function hostSources() {
  const out = [];
  const dir = '/etc/apt/sources.list.d';
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.sources')).map((f) => join(dir, f)) : [];
  for (const file of files) {
    for (const stanza of readFileSync(file, 'utf8').split(/\n\s*\n/)) {
      if (!/^URIs:\s*\S*debian/m.test(stanza) || /^Enabled:\s*no/mi.test(stanza)) continue;
      out.push(stanza.trim().replace(/^Types:.*$/m, 'Types: deb deb-src'));
    }
  }
  if (existsSync('/etc/apt/sources.list')) {
    for (const line of readFileSync('/etc/apt/sources.list', 'utf8').split('\n')) {
      const m = line.match(/^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/);
      if (!m || !m[2].includes('debian')) continue;
      const signedBy = m[1]?.match(/signed-by=(\S+?)[\s\]]/)?.[1];
      out.push(`Types: deb deb-src\nURIs: ${m[2]}\nSuites: ${m[3]}\nComponents: ${m[4].trim()}${signedBy ? `\nSigned-By: ${signedBy}` : ''}`);
    }
  }
  if (!out.length) throw new Error('no Debian sources found in /etc/apt to fetch cross packages from');
  return `${out.join('\n\n')}\n`;
}

/** Candidate version of a package in a private apt root. */
export function aptVersion(apt, pkg) {
  const policy = run('apt-cache', [...apt.options, 'policy', pkg]);
  const m = policy.match(/Candidate:\s*(\S+)/);
  if (!m || m[1] === '(none)') throw new Error(`apt: no candidate for ${pkg}`);
  return m[1];
}

/** Downloads a binary package of the root's architecture into dir and returns its path. */
export function aptDownload(apt, pkg, dir) {
  run('apt-get', [...apt.options, 'download', pkg], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  const deb = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${pkg}: no .deb appeared`);
  return join(dir, deb);
}

// --- npm tarballs ---

/** `npm pack name@version` into the cache once; returns the unpacked package/ dir. */
export function npmPackage(name, version) {
  const dir = join(cacheDir('npm'), `${name.replace(/[/@]/g, '_')}-${version}`);
  return join(cachedDir(dir, (tmp) => {
    const out = run('npm', ['pack', `${name}@${version}`, '--silent', '--pack-destination', tmp]).trim().split('\n').pop();
    run('tar', ['-xzf', join(tmp, out), '-C', tmp]);
    rmSync(join(tmp, out));
  }), 'package');
}
