// A busybox container started through berth (daemon + CLI) is isolated the way Docker
// isolates it: its own PID 1, hostname and /proc, Docker's capability set, masked
// /proc files, no mount(2), no host processes, no access to a device node its image
// carries, and its exit code reaches the caller.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import tarStream from 'tar-stream';
import { makeTempDir, REPO_ROOT, startDaemon, type TestDaemon } from '../helpers/daemon';

const IMAGE = 'localhost/busybox:latest';
let daemon: TestDaemon;
let work: string;

/** Packs tar entries into a buffer. */
function pack(fill: (p: tarStream.Pack) => void): Promise<Buffer> {
  const p = tarStream.pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<Buffer>((resolve, reject) => { p.on('end', () => resolve(Buffer.concat(chunks))); p.on('error', reject); });
  fill(p);
  p.finalize();
  return done;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * A block device of this host that root here can open, so that "denied" in the
 * container can only come from the device rules, never from a missing device.
 */
function openableHostBlockDevice(): { name: string; major: number; minor: number } {
  for (const name of readdirSync('/sys/block').sort()) {
    try {
      closeSync(openSync(`/dev/${name}`, 'r'));
    } catch {
      continue;
    }
    const [major, minor] = readFileSync(`/sys/block/${name}/dev`, 'utf8').trim().split(':').map(Number);
    return { name, major: major!, minor: minor! };
  }
  throw new Error('this host has no block device root can open, to test device rules with');
}

/**
 * The default image plus a layer holding a node for one of the host's disks and an image
 * config with an Entrypoint and Cmd, saved as a docker archive.
 */
async function buildDeviceImage(): Promise<string> {
  const disk = openableHostBlockDevice();
  const base = join(work, 'base');
  mkdirSync(base);
  execFileSync('tar', ['-xf', join(REPO_ROOT, 'dist/default-image.tar'), '-C', base]);
  const [entry] = JSON.parse(readFileSync(join(base, 'manifest.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(base, entry.Config), 'utf8'));
  const layer = await pack((p) => {
    p.entry({ name: 'disk', type: 'block-device', devmajor: disk.major, devminor: disk.minor, mode: 0o660, uid: 0, gid: 0 });
  });
  const layerHex = sha(layer);
  config.rootfs.diff_ids.push(`sha256:${layerHex}`);
  config.config.Entrypoint = ['/bin/echo', 'entrypoint'];
  config.config.Cmd = ['default-cmd'];
  config.config.Env = [...config.config.Env, 'FROM_IMAGE=1', 'OVERRIDE=image'];
  const configBuf = Buffer.from(JSON.stringify(config));
  const configHex = sha(configBuf);
  const out = join(work, 'device-image.tar');
  const archive = await pack((p) => {
    p.entry({ name: `${configHex}.json` }, configBuf);
    p.entry({ name: 'base/layer.tar' }, readFileSync(join(base, entry.Layers[0])));
    p.entry({ name: 'dev/layer.tar' }, layer);
    p.entry({ name: 'manifest.json' }, JSON.stringify([{ Config: `${configHex}.json`, RepoTags: ['localhost/devimage:latest'], Layers: ['base/layer.tar', 'dev/layer.tar'] }]));
  });
  writeFileSync(out, archive);
  return out;
}

async function run(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return daemon.cli(['run', '--rm', IMAGE, ...args], { timeoutMs: 30_000 });
}

test.before(async () => {
  work = makeTempDir('berth-isolation-');
  daemon = await startDaemon();
  const loaded = await daemon.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(loaded.code, 0, loaded.stderr);
  const dev = await daemon.cli(['load', '-i', await buildDeviceImage()]);
  assert.is(dev.code, 0, dev.stderr);
});

test.after(async () => {
  await daemon?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('the exit code reaches the caller', async () => {
  assert.is((await run('sh', '-c', 'exit 3')).code, 3);
  assert.is((await run('true')).code, 0);
});

test('own PID 1, hostname and /proc; no host processes', async () => {
  const r = await run('sh', '-c', 'echo pid=$$; hostname; tr "\\0" " " < /proc/1/cmdline; echo; ls /proc | grep -c "^[0-9]"');
  assert.is(r.code, 0, r.stderr);
  const [pidLine, hostname, cmdline, count] = r.stdout.trim().split('\n');
  assert.is(pidLine, 'pid=1');
  assert.match(hostname!, /^[0-9a-f]{12}$/);
  assert.match(cmdline!, /^sh -c /);
  // The host runs hundreds of processes; the container sees its shell, ls and grep.
  assert.ok(Number(count) <= 4, `container sees ${count} processes`);
});

test("Docker's capability set, no_new_privs, masked and read-only /proc paths", async () => {
  const r = await run('sh', '-c', 'grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/panic 2>&1 && echo wrote || echo ro');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /CapEff:\s+00000000a80425fb/);
  assert.match(r.stdout, /NoNewPrivs:\s+1/);
  assert.match(r.stdout, /^0$/m, 'timer_list is masked');
  assert.match(r.stdout, /^ro$/m, '/proc/sys is read-only');
});

test('a non-root user can use the root filesystem', async () => {
  const r = await daemon.cli(['run', '--rm', '-u', 'nobody', IMAGE, 'sh', '-c', 'id -u; stat -c %a /; ls /bin/sh > /dev/null && echo traversed'], { timeoutMs: 30_000 });
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), ['65534', '755', 'traversed']);
});

test('cannot mount', async () => {
  const r = await run('sh', '-c', 'mount -t tmpfs none /mnt && echo mounted || echo refused');
  assert.match(r.stdout, /refused/);
  assert.not.match(r.stdout, /mounted/);
});

test('a device node the image carries cannot be opened', async () => {
  const r = await daemon.cli(['run', '--rm', '--entrypoint', 'sh', 'localhost/devimage', '-c', 'ls -l /disk; head -c 1 /disk > /dev/null && echo opened || echo denied'], { timeoutMs: 30_000 });
  assert.match(r.stdout, /^b.*\/disk$/m, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /Operation not permitted/);
  assert.match(r.stdout, /denied/);
  assert.not.match(r.stdout, /opened/);
});

test("image Entrypoint, Cmd and Env merge as Docker's", async () => {
  const plain = await daemon.cli(['run', '--rm', 'localhost/devimage'], { timeoutMs: 30_000 });
  assert.is(plain.stdout.trim(), 'entrypoint default-cmd');
  const withArgs = await daemon.cli(['run', '--rm', 'localhost/devimage', 'given'], { timeoutMs: 30_000 });
  assert.is(withArgs.stdout.trim(), 'entrypoint given');
  const env = await daemon.cli(['run', '--rm', '-e', 'OVERRIDE=user', '--entrypoint', 'sh', 'localhost/devimage', '-c', 'echo $FROM_IMAGE $OVERRIDE $PATH'], { timeoutMs: 30_000 });
  assert.is(env.stdout.trim(), '1 user /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
});

test.run();
