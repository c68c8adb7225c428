import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseManifest, toCreateRequest, serviceHash } from '../../../src/fleet/manifest';

const YAML = `
name: web
services:
  app:
    image: localhost/busybox
    command: ["sh", "-c", "httpd -f"]
    env: {MODE: prod, PORT: 8080}
    ports: ["127.0.0.1:8080:80", "53:53/udp"]
    volumes: ["/srv/data:/data:ro"]
    restart: on-failure:3
    resources: {memory: 64m, cpus: 0.5, pids: 100}
    labels: [team=edge]
`;

test('parses the compose-like subset from YAML and builds a labelled create request', () => {
  const m = parseManifest(YAML);
  assert.is(m.name, 'web');
  assert.match(m.generation, /^[0-9a-f]{12}$/);
  const app = m.services.app!;
  assert.equal(app.env, { MODE: 'prod', PORT: '8080' });
  assert.is(app.restart, 'on-failure');
  assert.is(app.restartRetries, 3);
  assert.equal(app.resources, { memory: 64 * 1024 * 1024, cpus: 0.5, pids: 100 });
  const req = toCreateRequest('web', 'app', app);
  assert.equal(req.Cmd, ['sh', '-c', 'httpd -f']);
  assert.equal(req.HostConfig!.PortBindings, { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }], '53/udp': [{ HostPort: '53' }] });
  assert.is(req.HostConfig!.NanoCpus, 500_000_000);
  assert.is(req.Labels!['io.berth.stack'], 'web');
  assert.is(req.Labels!['io.berth.service'], 'app');
  assert.is(req.Labels!['io.berth.hash'], serviceHash(app));
  assert.is(req.Labels!.team, 'edge');
});

test('JSON works too, and an explicit generation is kept', () => {
  const m = parseManifest(JSON.stringify({ generation: 7, services: { a: { image: 'x', command: 'echo hi' } } }));
  assert.is(m.generation, '7');
  assert.equal(m.services.a!.command, ['/bin/sh', '-c', 'echo hi']);
});

test('the hash changes with the spec and not with key order', () => {
  const a = parseManifest({ services: { s: { image: 'x', env: { A: '1', B: '2' } } } }).services.s!;
  const b = parseManifest({ services: { s: { env: { B: '2', A: '1' }, image: 'x' } } }).services.s!;
  const c = parseManifest({ services: { s: { image: 'x', env: { A: '1', B: '3' } } } }).services.s!;
  assert.is(serviceHash(a), serviceHash(b));
  assert.is.not(serviceHash(a), serviceHash(c));
});

test('errors name the path', () => {
  const bad: Array<[unknown, RegExp]> = [
    ['services: [1', /neither valid YAML nor JSON/],
    [{}, /services: required/],
    [{ services: { a: {} } }, /services\.a\.image: required/],
    [{ services: { a: { image: 'x', port: [] } } }, /services\.a\.port: unknown key/],
    [{ services: { a: { image: 'x', ports: ['99999:1'] } } }, /services\.a\.ports\[0\]/],
    [{ services: { a: { image: 'x', volumes: ['relative'] } } }, /services\.a\.volumes\[0\]/],
    [{ services: { a: { image: 'x', restart: 'sometimes' } } }, /services\.a\.restart/],
    [{ services: { a: { image: 'x', resources: { memory: 'lots' } } } }, /resources\.memory/],
    [{ services: { a: { image: 'x', labels: { 'io.berth.stack': 'x' } } } }, /reserved/],
    [{ services: { Bad: { image: 'x' } } }, /services\.Bad/],
    [{ name: 'No Spaces', services: {} }, /name:/],
    [{ services: { a: { image: 'x', networks: ['mynet'] } } }, /networks/],
  ];
  for (const [input, message] of bad) {
    try {
      parseManifest(input);
      assert.unreachable(`accepted ${JSON.stringify(input)}`);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'EINVAL', String(err));
      assert.match((err as Error).message, message);
    }
  }
});

test.run();
