import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { humanSize, binarySize, humanDuration, timeAgo, formatTable, formatG, renderFormat, shortId } from '../../../src/cli/format';

test('Go %g formatting', () => {
  assert.is(formatG(4.26, 3), '4.26');
  assert.is(formatG(4, 3), '4');
  assert.is(formatG(123.456, 3), '123');
  assert.is(formatG(999.9, 3), '1e+03');
  assert.is(formatG(1.9440, 4), '1.944');
});

test('sizes like docker', () => {
  assert.is(humanSize(4_260_000), '4.26MB');
  assert.is(humanSize(983_000), '983kB');
  assert.is(humanSize(12), '12B');
  assert.is(humanSize(1_200_000_000), '1.2GB');
  assert.is(binarySize(2_087_354_368), '1.944GiB');
  assert.is(binarySize(512), '512B');
});

test('durations like docker', () => {
  assert.is(humanDuration(500), 'Less than a second');
  assert.is(humanDuration(1000), '1 second');
  assert.is(humanDuration(45_000), '45 seconds');
  assert.is(humanDuration(90_000), 'About a minute');
  assert.is(humanDuration(3 * 60_000), '3 minutes');
  assert.is(humanDuration(3_600_000), 'About an hour');
  assert.is(humanDuration(5 * 3_600_000), '5 hours');
  assert.is(humanDuration(3 * 86_400_000), '3 days');
  assert.is(humanDuration(21 * 86_400_000), '3 weeks');
  assert.is(humanDuration(90 * 86_400_000), '3 months');
  assert.is(humanDuration(3 * 365 * 86_400_000), '3 years');
  const now = Date.now();
  assert.is(timeAgo(Math.floor(now / 1000) - 180, now), '3 minutes ago');
  assert.is(timeAgo(new Date(now - 7_200_000).toISOString(), now), '2 hours ago');
});

test('tables align like tabwriter(minwidth 10, padding 3)', () => {
  const out = formatTable(['REPOSITORY', 'TAG', 'SIZE'], [['busybox', 'latest', '4.26MB'], ['localhost:5000/a/very/long/name', '1', '1MB']]);
  const lines = out.split('\n');
  assert.is(lines[0], 'REPOSITORY                        TAG       SIZE');
  assert.is(lines[1], 'busybox                           latest    4.26MB');
  assert.is(lines[2], 'localhost:5000/a/very/long/name   1         1MB');
  assert.is(out.endsWith('\n'), true);
});

test('format templates and ids', () => {
  const v = { Server: { ApiVersion: '1.47', Arr: [1] }, Name: 'x' };
  assert.is(renderFormat('{{.Server.ApiVersion}}', v), '1.47');
  assert.is(renderFormat('{{json .}}', v), JSON.stringify(v));
  assert.is(renderFormat('{{ .Name }}\\t{{json .Server.Arr}}', v), 'x\t[1]');
  assert.is(renderFormat('{{.Missing}}', v), '<no value>');
  assert.is(shortId('sha256:0123456789abcdef0000'), '0123456789ab');
});

test.run();
