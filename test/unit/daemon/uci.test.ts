// The UCI reader: syntax on fixtures, the mapping onto daemon.json keys, and the rank of
// UCI below daemon.json and flags in loadDaemonConfig.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseUci, uciBool, uciToDaemonKeys } from '../../../src/daemon/uci';
import { loadDaemonConfig } from '../../../src/daemon/config';

const FIXTURE = join(__dirname, 'fixtures/berth.uci');
const SHIPPED = join(__dirname, '../../../openwrt/package/berth/files/berth.config');
const fixture = readFileSync(FIXTURE, 'utf8');

test('sections, options, lists, quoting and comments', () => {
  const sections = parseUci(fixture);
  assert.is(sections.length, 2);
  const [daemon, mqtt] = sections;
  assert.is(daemon!.type, 'daemon');
  assert.is(daemon!.name, 'daemon');
  assert.is(daemon!.options.data_root, '/opt/berth', 'trailing comment dropped');
  assert.is(daemon!.options.exec_root, '/var/run/berth', 'double quotes');
  assert.is(daemon!.options.storage_driver, 'vfs', 'bare word');
  assert.equal(daemon!.lists.socket, ['unix:///var/run/berth.sock', '/tmp/second.sock']);
  assert.is(mqtt!.name, undefined, 'anonymous section');
  assert.is(mqtt!.options.username, 'ad"min', 'escapes in double quotes');
  assert.is(mqtt!.options.password, "it's", "shell-style '\\'' joins");
  assert.equal(mqtt!.lists.group, ['edge', 'lab']);
});

test('syntax errors name the line', () => {
  assert.throws(() => parseUci("config daemon 'd'\n\toption x 'open"), /:2: unterminated single quote/);
  assert.throws(() => parseUci("option x 'y'"), /:1: "option" before any "config"/);
  assert.throws(() => parseUci("config daemon\n\tfrobnicate x y"), /:2: unknown keyword/);
  assert.throws(() => parseUci("config daemon\n\toption x a b"), /:2: option x: quote values/);
  assert.throws(() => parseUci("config 'bad-type'"), /bad section type/);
});

test('booleans read like uci', () => {
  for (const v of ['1', 'yes', 'on', 'true', 'enabled']) assert.ok(uciBool(v, false), v);
  for (const v of ['0', 'no', 'off', 'false', 'disabled']) assert.not.ok(uciBool(v, true), v);
  assert.ok(uciBool(undefined, true));
});

test('mapping onto daemon.json keys', () => {
  assert.equal(uciToDaemonKeys(parseUci(fixture)), {
    'data-root': '/opt/berth', 'exec-root': '/var/run/berth', 'storage-driver': 'vfs', 'log-level': 'debug', bip: '10.99.0.1/24',
    hosts: ['unix:///var/run/berth.sock', '/tmp/second.sock'], 'insecure-registries': ['192.168.1.10:5000'],
    'mqtt-broker': 'mqtts://broker.lan:8883', 'device-id': 'router-1', 'mqtt-username': 'ad"min', 'mqtt-password': "it's", groups: ['edge', 'lab'], 'allowed-actions': 'ps,logs',
  });
  // A disabled MQTT section configures no fleet agent; empty options fall through to defaults.
  assert.equal(uciToDaemonKeys(parseUci("config mqtt\n\toption enabled '0'\n\toption broker 'mqtt://x'\nconfig daemon\n\toption storage_driver ''")), {});
});

test('the shipped /etc/config/berth loads into a valid daemon config', () => {
  const cmd = loadDaemonConfig(['--uci', SHIPPED]);
  assert.is(cmd.kind, 'run');
  if (cmd.kind !== 'run') return;
  assert.is(cmd.config.dataRoot, '/opt/berth');
  assert.equal(cmd.config.hosts, ['unix:///var/run/berth.sock']);
  assert.is(cmd.config.bip, '10.88.0.1/16');
  assert.is(cmd.config.storageDriver, undefined);
  assert.is(cmd.config.fleet, undefined, 'mqtt disabled');
});

test('flags > daemon.json > UCI > defaults', () => {
  const files: Record<string, string> = {
    '/u': fixture,
    '/d.json': JSON.stringify({ 'storage-driver': 'overlay', 'log-level': 'warn' }),
  };
  const read = (p: string) => { if (files[p] === undefined) throw new Error('ENOENT'); return files[p]!; };
  const cmd = loadDaemonConfig(['--uci', '/u', '--config', '/d.json', '--log-level', 'error'], read);
  if (cmd.kind !== 'run') throw new Error('expected run');
  assert.is(cmd.config.logLevel, 'error', 'flag wins');
  assert.is(cmd.config.storageDriver, 'overlay', 'daemon.json beats UCI');
  assert.is(cmd.config.dataRoot, '/opt/berth', 'UCI beats the default');
  assert.is(cmd.config.maxConcurrentDownloads, 3, 'default');
  assert.equal(cmd.config.fleet?.groups, ['edge', 'lab']);
  assert.throws(() => loadDaemonConfig(['--uci', '/missing'], read), /cannot read UCI config \/missing/);
});

test.run();
