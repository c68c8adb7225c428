// musl sysroots for the cross-built helper, from Debian packages only.
//  - "deb":    the target architecture's musl-dev .deb, fetched through a private apt root.
//  - "source": Debian's musl source package, built with the cross gcc. Used for MIPS:
//              Debian has no big-endian mips musl, and its mipsel musl is hard-float,
//              while OpenWrt's MIPS chips (24Kc) have no FPU.
//  - "host":   the host's musl-gcc (musl-tools), for x86_64.
// Each sysroot gets a gcc specs file that points the cross gcc at its headers and libc.a.
// Soft-float targets also get libgcc's soft-fp routines built soft-float from Debian's gcc
// source: Debian's MIPS libgcc is hard-float, its __adddf3 is a single add.d, which an
// FPU-less 24Kc cannot run and which reads its arguments from the wrong registers.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
  const softFp = target.softFloat ? softFpLibrary(target, cflags, join(sysroot, 'include')) : undefined;
  const version = softFp ? `${src.version}+softfp-gcc${softFp.gccVersion}` : src.version;
  return { specs: writeSpecs(dir, join(sysroot, 'include'), join(sysroot, 'lib'), target.musl.loader, softFp?.archive), version };
}

// The float modes musl and the helper can call into (single and double; no long double
// beyond double on 32-bit MIPS), with their integer conversions.
const SOFT_FP_ROUTINES = [
  'addsf3', 'subsf3', 'mulsf3', 'divsf3', 'negsf2', 'eqsf2', 'gesf2', 'lesf2', 'unordsf2',
  'fixsfsi', 'fixunssfsi', 'floatsisf', 'floatunsisf', 'fixsfdi', 'fixunssfdi', 'floatdisf', 'floatundisf',
  'adddf3', 'subdf3', 'muldf3', 'divdf3', 'negdf2', 'eqdf2', 'gedf2', 'ledf2', 'unorddf2',
  'fixdfsi', 'fixunsdfsi', 'floatsidf', 'floatunsidf', 'fixdfdi', 'fixunsdfdi', 'floatdidf', 'floatundidf',
  'extendsfdf2', 'truncdfsf2',
];

/** libgcc's soft-fp routines compiled soft-float for this target: { archive, gccVersion }. */
function softFpLibrary(target, cflags, muslInclude) {
  const gccVersion = run(target.helperCC, ['-dumpversion']).trim();
  const src = gccSoftFpSource(gccVersion.split('.')[0]);
  const key = `softfp-${target.name}-${src.version}-${createHash('sha256').update(cflags).digest('hex').slice(0, 12)}`;
  const dir = cachedDir(join(cacheDir('musl'), key), (tmp) => {
    const libgcc = join(src.tree, 'libgcc');
    const objects = SOFT_FP_ROUTINES.map((name) => {
      const object = join(tmp, `${name}.o`);
      run(target.helperCC, [
        '-c', ...cflags.split(' '), '-ffunction-sections', '-nostdinc', '-isystem', muslInclude,
        '-I', join(libgcc, 'config/mips'), '-I', join(libgcc, 'soft-fp'), '-I', libgcc, '-I', join(src.tree, 'include'),
        '-o', object, join(libgcc, 'soft-fp', `${name}.c`),
      ]);
      return object;
    });
    run(target.helperCC.replace(/gcc$/, 'ar'), ['rcs', join(tmp, 'libberth-softfp.a'), ...objects]);
    for (const object of objects) rmSync(object);
  });
  return { archive: join(dir, 'libberth-softfp.a'), gccVersion: src.version };
}

/** libgcc's soft-fp sources and longlong.h from Debian's gcc-N-source package, unpacked once. */
function gccSoftFpSource(major) {
  const apt = aptRoot('amd64');
  const pkg = `gcc-${major}-source`;
  const version = aptVersion(apt, pkg);
  const dir = cachedDir(join(cacheDir('musl'), `${pkg}-${version}`), (tmp) => {
    const deb = aptDownload(apt, pkg, tmp);
    // The package holds gcc's whole source tarball (~80 MB); only a few files are needed.
    run('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "./usr/src/*/gcc-*.tar.*"', 'sh', deb, tmp]);
    const srcDir = join(tmp, 'usr/src', readdirSync(join(tmp, 'usr/src'))[0]);
    const tarball = readdirSync(srcDir).find((f) => /^gcc-.*\.tar\.[a-z]+$/.test(f));
    if (!tarball) throw new Error(`${pkg}: no gcc source tarball inside`);
    mkdirSync(join(tmp, 'tree'));
    run('tar', ['-xf', join(srcDir, tarball), '-C', join(tmp, 'tree'), '--strip-components=1', '--wildcards',
      '*/libgcc/soft-fp/*', '*/libgcc/config/mips/sfp-machine.h', '*/include/longlong.h']);
    rmSync(join(tmp, 'usr'), { recursive: true, force: true });
    rmSync(deb);
  });
  return { tree: join(dir, 'tree'), version: version.replace(/-[^-]*$/, '') };
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
function writeSpecs(dir, include, lib, loader, softFpArchive) {
  const specs = join(dir, 'musl-gcc.specs');
  writeFileSync(specs, `%rename cpp_options old_cpp_options

*cpp_options:
-nostdinc -isystem ${include} -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem ${include} -isystem include%s

*link_libgcc:
-L${lib} -L .%s

*libgcc:
${softFpArchive ? `${softFpArchive} ` : ''}libgcc.a%s %:if-exists(libgcc_eh.a%s)

*startfile:
%{!shared: ${lib}/Scrt1.o} ${lib}/crti.o crtbeginS.o%s

*endfile:
crtendS.o%s ${lib}/crtn.o

*link:
-dynamic-linker ${loader} -nostdlib %{shared:-shared} %{static:-static} %{rdynamic:-export-dynamic}

`);
  return specs;
}
