// musl sysroots for the cross-built helper, from Debian packages only.
//  - "deb":    the target architecture's musl-dev .deb, fetched through a private apt root.
//  - "source": Debian's musl source package, built with the cross gcc. Used for MIPS:
//              Debian has no big-endian mips musl, and its mipsel musl is hard-float,
//              while OpenWrt's MIPS chips (24Kc) have no FPU.
//  - "host":   the host's musl-gcc (musl-tools), for x86_64.
// Each sysroot gets a gcc specs file that points the cross gcc at its headers and libc.a.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { aptDownload, aptRoot, aptVersion, cacheDir, cachedDir, run } from './cache.mjs';

/** { specs, version } for a target from targets.json; builds or fetches its sysroot once. */
export function muslSysroot(target) {
  const musl = target.musl;
  if (musl.from === 'host') return { specs: undefined, version: 'host' };
  if (musl.from === 'deb') return debSysroot(target);
  if (musl.from === 'source') return sourceSysroot(target);
  throw new Error(`${target.name}: unknown musl source ${musl.from}`);
}

function debSysroot(target) {
  const apt = aptRoot(target.debArch);
  const version = aptVersion(apt, 'musl-dev');
  const dir = cachedDir(join(cacheDir('musl'), `${target.debArch}-${version}`), (tmp) => {
    const downloads = join(tmp, 'deb');
    mkdirSync(downloads);
    run('dpkg-deb', ['-x', aptDownload(apt, 'musl-dev', downloads), join(tmp, 'root')]);
  });
  const root = join(dir, 'root');
  const lib = findDir(join(root, 'usr/lib'), (d) => existsSync(join(d, 'libc.a')));
  const include = findDir(join(root, 'usr/include'), (d) => existsSync(join(d, 'stdio.h')));
  return { specs: writeSpecs(dir, include, lib, target.musl.loader), version };
}

function sourceSysroot(target) {
  const src = muslSource();
  // Link-only flags do not change libc.a; keeping them out of the key avoids rebuilds.
  const cflags = ['-Os', ...target.cflags.filter((f) => !f.startsWith('-Wl,'))].join(' ');
  const key = `${target.name}-${src.version}-${createHash('sha256').update(cflags).digest('hex').slice(0, 12)}`;
  const dir = cachedDir(join(cacheDir('musl'), key), (tmp) => {
    const build = join(tmp, 'build');
    run('cp', ['-a', src.tree, build]);
    const prefix = join(tmp, 'sysroot');
    const cross = target.helperCC.replace(/gcc$/, '');
    run('./configure', [`--target=${target.triple}`, `--prefix=${prefix}`, '--disable-shared', `CROSS_COMPILE=${cross}`, `CFLAGS=${cflags}`], { cwd: build, stdio: ['ignore', 'ignore', 'inherit'] });
    run('make', [`-j${Math.max(2, (globalThis.navigator?.hardwareConcurrency ?? 2))}`], { cwd: build, stdio: ['ignore', 'ignore', 'inherit'] });
    run('make', ['install'], { cwd: build, stdio: ['ignore', 'ignore', 'inherit'] });
    run('rm', ['-rf', build]);
  });
  const sysroot = join(dir, 'sysroot');
  return { specs: writeSpecs(dir, join(sysroot, 'include'), join(sysroot, 'lib'), target.musl.loader), version: src.version };
}

/** Debian's musl source (the upstream .orig tarball plus Debian's patches), unpacked once. */
function muslSource() {
  const apt = aptRoot('amd64');
  const version = aptVersion(apt, 'musl');
  const dir = cachedDir(join(cacheDir('musl'), `source-${version}`), (tmp) => {
    run('apt-get', [...apt.options, 'source', '--download-only', 'musl'], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
    const orig = readdirSync(tmp).find((f) => /^musl_.*\.orig\.tar\./.test(f));
    const debian = readdirSync(tmp).find((f) => /^musl_.*\.debian\.tar\./.test(f));
    if (!orig) throw new Error('apt-get source musl: no .orig tarball');
    mkdirSync(join(tmp, 'tree'));
    run('tar', ['-xf', join(tmp, orig), '-C', join(tmp, 'tree'), '--strip-components=1']);
    if (debian) {
      run('tar', ['-xf', join(tmp, debian), '-C', join(tmp, 'tree')]);
      const series = join(tmp, 'tree/debian/patches/series');
      if (existsSync(series)) {
        for (const patch of run('cat', [series]).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
          run('patch', ['-p1', '-s', '-i', join('debian/patches', patch)], { cwd: join(tmp, 'tree') });
        }
      }
    }
  });
  return { tree: join(dir, 'tree'), version: version.replace(/-[^-]*$/, '') };
}

function findDir(top, match) {
  const stack = [top];
  while (stack.length) {
    const d = stack.shift();
    if (match(d)) return d;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) stack.push(join(d, e.name));
  }
  throw new Error(`nothing matching under ${top}`);
}

/** A gcc specs file in the style of musl-gcc's, pointing at this sysroot. */
function writeSpecs(dir, include, lib, loader) {
  const specs = join(dir, 'musl-gcc.specs');
  writeFileSync(specs, `%rename cpp_options old_cpp_options

*cpp_options:
-nostdinc -isystem ${include} -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem ${include} -isystem include%s

*link_libgcc:
-L${lib} -L .%s

*libgcc:
libgcc.a%s %:if-exists(libgcc_eh.a%s)

*startfile:
%{!shared: ${lib}/Scrt1.o} ${lib}/crti.o crtbeginS.o%s

*endfile:
crtendS.o%s ${lib}/crtn.o

*link:
-dynamic-linker ${loader} -nostdlib %{shared:-shared} %{static:-static} %{rdynamic:-export-dynamic}

`);
  return specs;
}
