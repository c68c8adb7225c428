// What `npm run build:all` ships: the single binaries (each answers `berth --version` and
// `berth version` under qemu-user, x64 natively) and the ipks (unpacked like opkg does:
// outer tar.gz, then control.tar.gz and data.tar.gz; fields, scripts and files checked).
// Needs the build output; skipped with a line saying so when it is absent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import tarStream from 'tar-stream';

const ROOT = resolve(__dirname, '../..');
const DIST = join(ROOT, 'dist');
const version: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;

interface Target {
  name: string; openwrtArch: string; binary: string | null; nodeVersion: string | null;
  koffi: { dir: string } | null;
  qemu: { binary: string; cpu: string; ldPrefix: string | null } | null;
}
const targets: Target[] = JSON.parse(readFileSync(join(ROOT, 'build/targets.json'), 'utf8')).targets;
const onPath = (name: string) => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, name)));

interface Entry { name: string; type: string; mode: number; linkname?: string | null; data: Buffer }
async function untar(gz: Buffer): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  const extract = tarStream.extract();
  const done = new Promise<void>((res, rej) => { extract.on('finish', () => res()); extract.on('error', rej); });
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => {
      entries.set(header.name.replace(/^\.\//, ''), { name: header.name, type: header.type ?? 'file', mode: header.mode ?? 0, linkname: header.linkname, data: Buffer.concat(chunks) });
      next();
    });
  });
  extract.end(gunzipSync(gz));
  await done;
  return entries;
}

function runOn(target: Target, args: string[]): string {
  const bin = join(DIST, target.binary!);
  const argv = target.qemu ? [target.qemu.binary, '-cpu', target.qemu.cpu, ...(target.qemu.ldPrefix ? ['-L', target.qemu.ldPrefix] : []), bin, ...args] : [bin, ...args];
  // `berth version` fails without a daemon (as docker does) after printing the client part.
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BERTH_HOST: 'unix:///nonexistent/berth.sock' } });
  } catch (err) {
    const e = err as { stdout?: string; status?: number };
    if (e.stdout?.includes('Client:')) return e.stdout;
    throw err;
  }
}

for (const target of targets.filter((t) => t.binary)) {
  const bin = join(DIST, target.binary!);
  if (!existsSync(bin)) {
    test(`${target.binary} (skipped: not built)`, () => console.log(`skipped: ${bin} missing; run npm run build:binaries`));
    continue;
  }
  if (target.qemu && !onPath(target.qemu.binary)) {
    test(`${target.binary} (skipped: ${target.qemu.binary} not installed)`, () => console.log(`skipped: install qemu-user-static to run ${target.binary}`));
    continue;
  }
  test(`${target.binary}: berth version under ${target.qemu ? target.qemu.binary : 'the host'}`, () => {
    assert.is(runOn(target, ['--version']).trim(), `berth version ${version}`);
    const out = runOn(target, ['version']);
    const nodeVersion = target.nodeVersion === 'host' ? process.versions.node : target.nodeVersion;
    assert.match(out, new RegExp(`Node version:\\s+node v${nodeVersion!.replace(/\./g, '\\.')}`));
    assert.ok(existsSync(join(DIST, `berth-helper-${target.name}`)), 'helper beside the binary');
    assert.ok(existsSync(join(DIST, 'koffi', target.koffi!.dir, 'koffi.node')), 'koffi beside the binary');
    // The blob carries a V8 code cache; Node warns on stderr at every start when V8 refuses it.
    const argv = target.qemu ? [target.qemu.binary, '-cpu', target.qemu.cpu, ...(target.qemu.ldPrefix ? ['-L', target.qemu.ldPrefix] : []), bin, '--help'] : [bin, '--help'];
    const help = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } });
    assert.is(help.status, 0, help.stderr);
    assert.not.match(help.stderr, /Code cache data rejected/);
    assert.not.ok(readFileSync(bin).includes(Buffer.from(ROOT)), 'no path of the build machine in the binary');
  });
}

const x64 = targets.find((t) => t.name === 'x86_64')!;
const x64Binary = join(DIST, x64.binary!);
const image = join(DIST, 'default-image.tar');
if (process.arch === 'x64' && process.getuid?.() === 0 && existsSync(x64Binary) && existsSync(image)) {
  test('the x64 single binary runs a container (koffi and the helper found beside it)', async () => {
    // A SEA's require() reaches only built-ins: the daemon's syscalls (mount, statfs)
    // prove koffi loads from dist/koffi/, and the run proves berth-helper-x86_64 is found.
    const dir = mkdtempSync(join(tmpdir(), 'berth-sea-'));
    const host = `unix://${dir}/berth.sock`;
    const daemon = spawn(x64Binary, ['daemon', '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '-H', host, '--bridge', 'none', '--cgroup-parent', `berth-sea-${process.pid}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stdout!.on('data', (d) => { log += d; });
    daemon.stderr!.on('data', (d) => { log += d; });
    const cli = (...args: string[]) => execFileSync(x64Binary, args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BERTH_HOST: host } });
    try {
      for (let i = 0; i < 100 && !existsSync(`${dir}/berth.sock`); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(existsSync(`${dir}/berth.sock`), log);
      assert.not.match(log, /single-executable applications only supports loading built-in modules/);
      cli('load', '-i', image);
      assert.is(cli('run', '--rm', 'localhost/busybox:latest', 'echo', 'hello from the single binary').trim(), 'hello from the single binary');
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
      // The daemon leaves its (empty) cgroup parent behind; remove it from every hierarchy.
      for (const root of ['/sys/fs/cgroup', ...readdirSync('/sys/fs/cgroup').map((c) => `/sys/fs/cgroup/${c}`)]) {
        try { rmdirSync(`${root}/berth-sea-${process.pid}`); } catch { /* absent or not a hierarchy */ }
      }
    }
  });
}

for (const target of targets) {
  const ipk = join(DIST, 'ipk', `berth_${version}_${target.openwrtArch}.ipk`);
  if (!existsSync(ipk)) {
    test(`ipk ${target.openwrtArch} (skipped: not built)`, () => console.log(`skipped: ${ipk} missing; run npm run build:ipk`));
    continue;
  }
  test(`ipk ${target.openwrtArch}: opkg's layout, control fields, scripts and files`, async () => {
    const outer = await untar(readFileSync(ipk));
    assert.equal([...outer.keys()], ['debian-binary', 'data.tar.gz', 'control.tar.gz']);
    assert.is(outer.get('debian-binary')!.data.toString(), '2.0\n');

    const control = await untar(outer.get('control.tar.gz')!.data);
    const fields = Object.fromEntries(control.get('control')!.data.toString().trim().split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
    assert.is(fields.Package, 'berth');
    assert.is(fields.Version, version);
    assert.is(fields.Architecture, target.openwrtArch);
    for (const dep of ['kmod-veth', 'kmod-fs-overlay', 'kmod-nft-nat', 'kmod-br-netfilter']) assert.ok(fields.Depends!.split(/,\s*/).includes(dep), dep);
    for (const key of ['Installed-Size', 'Description', 'Maintainer', 'License']) assert.ok(fields[key], key);
    assert.is(control.get('conffiles')!.data.toString().trim(), '/etc/config/berth');
    assert.match(control.get('postinst')!.data.toString(), /\/etc\/init\.d\/berth enable/);
    assert.match(control.get('prerm')!.data.toString(), /\/etc\/init\.d\/berth stop/);
    assert.is(control.get('postinst')!.mode & 0o111, 0o111);

    const data = await untar(outer.get('data.tar.gz')!.data);
    const regular = [...data.values()].filter((e) => e.type === 'file');
    assert.is(Number(fields['Installed-Size']), regular.reduce((n, e) => n + e.data.length, 0));
    assert.match(data.get('etc/init.d/berth')!.data.toString(), /USE_PROCD=1[\s\S]*procd_add_reload_trigger berth/);
    assert.match(data.get('etc/config/berth')!.data.toString(), /config daemon 'daemon'/);
    assert.ok(data.get('etc/uci-defaults/90-berth'));
    const helper = data.get('usr/lib/berth/berth-helper')!;
    assert.equal(helper.data, readFileSync(join(DIST, 'helpers', `berth-helper-${target.name}`)));
    if (target.binary) {
      assert.is(data.get('usr/bin/berth')!.type, 'symlink');
      assert.is(data.get('usr/bin/berth')!.linkname, '../lib/berth/berth');
      // The binary, patched (patchelf) to use the glibc the package carries (musl-only devices).
      const packaged = data.get('usr/lib/berth/berth')!.data;
      assert.ok(Math.abs(packaged.length - readFileSync(join(DIST, target.binary)).length) < 1 << 20, 'the packaged binary is the built one');
      assert.ok(packaged.includes(Buffer.from('/usr/lib/berth/glibc/ld-linux-')), 'interpreter in /usr/lib/berth/glibc');
      for (const lib of ['libc.so.6', 'libstdc++.so.6', 'libm.so.6']) assert.ok(data.get(`usr/lib/berth/glibc/${lib}`), lib);
      assert.ok(data.get('usr/share/berth/default-image.tar'), 'the embedded image');
      assert.ok(data.get(`usr/lib/berth/koffi/${target.koffi!.dir}/koffi.node`));
    } else {
      assert.ok(data.get('usr/lib/berth/berth.cjs'));
      assert.match(data.get('usr/bin/berth')!.data.toString(), /no Node\.js/);
    }

    // The SDK Makefile installs dist/stage/<target>/ and files/ under /etc: the same tree.
    const stage = join(DIST, 'stage', target.name);
    const staged = new Map<string, Buffer | string>();
    const walk = (dir: string, prefix: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
        else if (e.isSymbolicLink()) staged.set(`${prefix}${e.name}`, readlinkSync(join(dir, e.name)));
        else staged.set(`${prefix}${e.name}`, readFileSync(join(dir, e.name)));
      }
    };
    walk(stage, '');
    const engine = [...data.entries()].filter(([path, e]) => e.type !== 'directory' && !path.startsWith('etc/'));
    assert.equal([...staged.keys()].sort(), engine.map(([path]) => path).sort());
    for (const [path, e] of engine) {
      if (e.type === 'symlink') assert.is(staged.get(path), e.linkname, path);
      else assert.ok((staged.get(path) as Buffer).equals(e.data), `${path}: staged bytes differ from the ipk's`);
    }
    // Its maintainer scripts are the SDK Makefile's (make writes $$ for $).
    const makefile = readFileSync(join(ROOT, 'openwrt/package/berth/Makefile'), 'utf8').replace(/\$\$/g, '$');
    for (const script of ['postinst', 'prerm']) assert.ok(makefile.includes(`define Package/berth/${script}\n${control.get(script)!.data}endef`), script);
  });
}

// luci-app-berth: architecture-independent, built from openwrt/luci-app-berth by build/ipk.mjs
// the way luci.mk installs it (htdocs/ -> /www/, root/ -> /).
const LUCI_APP = join(ROOT, 'openwrt/luci-app-berth');
const luciIpk = join(DIST, 'ipk', `luci-app-berth_${version}_all.ipk`);
const SHELL = existsSync('/bin/busybox') ? ['/bin/busybox', 'sh'] : ['sh'];

/** Source files of the app by their path on the device, with the mode they must have. */
function luciSources(): Map<string, { source: string; mode: number }> {
  const out = new Map<string, { source: string; mode: number }>();
  const walk = (dir: string, prefix: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
      else out.set(`${prefix}${e.name}`, { source: join(dir, e.name), mode: `${prefix}${e.name}`.startsWith('usr/libexec/rpcd/') ? 0o755 : 0o644 });
    }
  };
  walk(join(LUCI_APP, 'htdocs'), 'www/');
  walk(join(LUCI_APP, 'root'), '');
  return out;
}

/** The methods the ACL grants on the ubus object "berth" (what LuCI may call). */
function aclMethods(acl: Buffer): string[] {
  const app = JSON.parse(acl.toString())['luci-app-berth'];
  return [...new Set<string>([...(app.read.ubus.berth ?? []), ...(app.write.ubus.berth ?? [])])].sort();
}

async function unpackLuci() {
  const outer = await untar(readFileSync(luciIpk));
  const control = await untar(outer.get('control.tar.gz')!.data);
  const data = await untar(outer.get('data.tar.gz')!.data);
  return { outer, control, data };
}

if (!existsSync(luciIpk)) {
  test('ipk luci-app-berth (skipped: not built)', () => console.log(`skipped: ${luciIpk} missing; run npm run build:ipk`));
} else {
  test('ipk luci-app-berth: layout, control fields, scripts, and every view, menu, ACL and rpcd file', async () => {
    const { outer, control, data } = await unpackLuci();
    assert.equal([...outer.keys()], ['debian-binary', 'data.tar.gz', 'control.tar.gz']);
    assert.is(outer.get('debian-binary')!.data.toString(), '2.0\n');

    const fields = Object.fromEntries(control.get('control')!.data.toString().trim().split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
    assert.is(fields.Package, 'luci-app-berth');
    assert.is(fields.Version, version);
    assert.is(fields.Architecture, 'all');
    assert.is(fields.Section, 'luci');
    const depends = fields.Depends!.split(/,\s*/);
    for (const dep of ['berth', 'luci-base', 'rpcd']) assert.ok(depends.includes(dep), `Depends: ${fields.Depends}`);
    for (const key of ['Installed-Size', 'Description', 'Maintainer', 'License']) assert.ok(fields[key], key);
    // The SDK build (openwrt/luci-app-berth/Makefile) must give the same version.
    assert.match(readFileSync(join(LUCI_APP, 'Makefile'), 'utf8'), new RegExp(`^PKG_VERSION:=${version.replace(/\./g, '\\.')}$`, 'm'));
    for (const script of ['postinst', 'postrm']) {
      const entry = control.get(script)!;
      assert.ok(entry, script);
      assert.is(entry.mode & 0o777, 0o755, `${script} is executable`);
      assert.match(entry.data.toString(), /^#!\/bin\/sh\n/);
    }

    const expected = luciSources();
    const regular = [...data.entries()].filter(([, e]) => e.type === 'file');
    assert.equal(regular.map(([p]) => p).sort(), [...expected.keys()].sort(), 'exactly the app\'s files');
    assert.ok(expected.has('usr/libexec/rpcd/berth') && expected.has('usr/share/luci/menu.d/luci-app-berth.json') && expected.has('usr/share/rpcd/acl.d/luci-app-berth.json'));
    assert.ok([...expected.keys()].filter((p) => p.startsWith('www/luci-static/resources/view/berth/')).length >= 4, 'the views');
    for (const [path, want] of expected) {
      const entry = data.get(path)!;
      assert.equal(entry.data, readFileSync(want.source), `${path}: content`);
      assert.is((entry.mode & 0o777).toString(8), want.mode.toString(8), `${path}: mode`);
      if (path.endsWith('.json')) JSON.parse(entry.data.toString());
    }
    for (const [path, entry] of data) if (entry.type === 'directory') assert.is(entry.mode & 0o777, 0o755, `${path}: directory mode`);
    assert.is(Number(fields['Installed-Size']), regular.reduce((n, [, e]) => n + e.data.length, 0));
  });

  test('ipk luci-app-berth: the packaged rpcd backend answers list and call with JSON', async () => {
    const { data } = await unpackLuci();
    const dir = mkdtempSync(join(tmpdir(), 'berth-luci-'));
    try {
      const backend = join(dir, 'berth');
      writeFileSync(backend, data.get('usr/libexec/rpcd/berth')!.data);
      const run = (args: string[], input = '') => {
        const r = spawnSync(SHELL[0]!, [...SHELL.slice(1), backend, ...args], {
          input, encoding: 'utf8', timeout: 30_000,
          env: { PATH: process.env.PATH, BERTH_RPCD_BIN: join(dir, 'no-berth'), BERTH_HOST: 'unix:///nonexistent/berth.sock' },
        });
        assert.is(r.status, 0, r.stderr);
        return JSON.parse(r.stdout) as Record<string, unknown>;
      };
      // rpcd registers what `list` prints; LuCI may call what the ACL grants: the two agree.
      assert.equal(Object.keys(run(['list'])).sort(), aclMethods(data.get('usr/share/rpcd/acl.d/luci-app-berth.json')!.data));
      assert.match(String(run(['call', 'status'], '{}').error), /not reachable/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const staticBusybox = existsSync('/bin/busybox') && /statically linked|static-pie/.test(spawnSync('file', ['-L', '/bin/busybox'], { encoding: 'utf8' }).stdout ?? '');
  if (process.getuid?.() !== 0 || !staticBusybox) {
    test('ipk luci-app-berth installed on a busybox root (skipped)', () => console.log('skipped: needs root and a static /bin/busybox (apt-get install busybox-static)'));
  } else {
    test('ipk luci-app-berth installed on a busybox root: rpcd runs the backend; postinst and postrm clear LuCI\'s caches and reload rpcd', async () => {
      const { control, data } = await unpackLuci();
      const dir = mkdtempSync(join(tmpdir(), 'berth-luci-root-'));
      try {
        for (const d of ['bin', 'etc/init.d', 'tmp', 'usr/lib/opkg/info']) mkdirSync(join(dir, d), { recursive: true });
        copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
        chmodSync(join(dir, 'bin/busybox'), 0o755);
        for (const applet of spawnSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) {
          mkdirSync(join(dir, applet, '..'), { recursive: true });
          if (!existsSync(join(dir, applet))) symlinkSync('/bin/busybox', join(dir, applet));
        }
        // What opkg does: data.tar.gz onto /, the scripts into its info dir.
        const unpack = spawnSync('sh', ['-c', 'tar -xzOf "$1" ./data.tar.gz | tar -xz -C "$2"', 'sh', luciIpk, dir], { encoding: 'utf8' });
        assert.is(unpack.status, 0, unpack.stderr);
        for (const script of ['postinst', 'postrm']) {
          writeFileSync(join(dir, `usr/lib/opkg/info/luci-app-berth.${script}`), control.get(script)!.data);
          chmodSync(join(dir, `usr/lib/opkg/info/luci-app-berth.${script}`), control.get(script)!.mode & 0o777);
        }
        writeFileSync(join(dir, 'etc/init.d/rpcd'), '#!/bin/sh\necho "$*" >> /rpcd-calls\n');
        chmodSync(join(dir, 'etc/init.d/rpcd'), 0o755);
        const inRoot = (cmd: string, env: Record<string, string> = {}, input = '') =>
          spawnSync('chroot', [dir, '/bin/sh', '-c', cmd], { input, encoding: 'utf8', timeout: 30_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env } });

        // rpcd execs each file in /usr/libexec/rpcd directly (shebang and mode matter).
        const list = inRoot('/usr/libexec/rpcd/berth list');
        assert.is(list.status, 0, list.stderr);
        assert.equal(Object.keys(JSON.parse(list.stdout)).sort(), aclMethods(data.get('usr/share/rpcd/acl.d/luci-app-berth.json')!.data));
        const status = inRoot('/usr/libexec/rpcd/berth call status', {}, '{}');
        assert.match(String(JSON.parse(status.stdout).error), /not reachable/, status.stdout + status.stderr);

        const caches = ['tmp/luci-indexcache', 'tmp/luci-indexcache.5c1e0a.json', 'tmp/luci-modulecache/luci.view.js'];
        const seed = () => {
          rmSync(join(dir, 'rpcd-calls'), { force: true });
          for (const c of caches) { mkdirSync(join(dir, c, '..'), { recursive: true }); writeFileSync(join(dir, c), 'stale'); }
        };
        for (const script of ['postinst', 'postrm']) {
          // Image build (IPKG_INSTROOT set): no running system to touch.
          seed();
          const offline = inRoot(`/usr/lib/opkg/info/luci-app-berth.${script} configure`, { IPKG_INSTROOT: '/build/root' });
          assert.is(offline.status, 0, offline.stderr);
          assert.equal(caches.filter((c) => existsSync(join(dir, c))), caches, `${script} leaves an image build alone`);
          assert.not.ok(existsSync(join(dir, 'rpcd-calls')), `${script}: no rpcd call in an image build`);
          // On the device: the menu entry appears (or goes) and rpcd picks up the backend and ACL.
          seed();
          const live = inRoot(`/usr/lib/opkg/info/luci-app-berth.${script} configure`);
          assert.is(live.status, 0, live.stderr);
          assert.equal(caches.filter((c) => existsSync(join(dir, c))), [], `${script} clears LuCI's caches`);
          assert.is(readFileSync(join(dir, 'rpcd-calls'), 'utf8'), 'reload\n', `${script} reloads rpcd`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

test.run();
