import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseLogConfig, parseSize, DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES } from '../../../src/engine/logs/config';
import { encodeFrame, formatLogLine, logChunk } from '../../../src/engine/logs/frame';
import { formatTimeNanos, parseTimeNanos, secondsToNanos } from '../../../src/engine/logs/common';
import { BerthError } from '../../../src/util/errors';

function rejects(config: Parameters<typeof parseLogConfig>[0], mention: string) {
  try { parseLogConfig(config); } catch (err) {
    assert.instance(err, BerthError);
    assert.is((err as BerthError).code, 'EINVAL');
    assert.ok((err as Error).message.includes(mention), (err as Error).message);
    return;
  }
  assert.unreachable(`accepted ${JSON.stringify(config)}`);
}

test('parseLogConfig: defaults suited to flash', () => {
  assert.equal(parseLogConfig({}), { driver: 'json-file', maxBytes: DEFAULT_LOG_MAX_BYTES, maxFiles: DEFAULT_LOG_MAX_FILES });
  assert.equal(parseLogConfig({ Type: '' }), { driver: 'json-file', maxBytes: 1048576, maxFiles: 2 });
  assert.equal(parseLogConfig(undefined), { driver: 'json-file', maxBytes: 1048576, maxFiles: 2 });
});

test('parseLogConfig: docker options', () => {
  assert.equal(parseLogConfig({ Type: 'json-file', Config: { 'max-size': '10k', 'max-file': '3' } }), { driver: 'json-file', maxBytes: 10_000, maxFiles: 3 });
  assert.is(parseLogConfig({ Config: { 'max-size': '5m' } }).maxBytes, 5_000_000);
  assert.is(parseLogConfig({ Config: { 'max-size': '1g' } }).maxBytes, 1_000_000_000);
  assert.is(parseLogConfig({ Config: { 'max-size': '1.5MB' } }).maxBytes, 1_500_000);
  assert.is(parseLogConfig({ Config: { 'max-size': '2MiB' } }).maxBytes, 2 * 1024 * 1024);
  assert.is(parseLogConfig({ Config: { 'max-size': '4096' } }).maxBytes, 4096);
  assert.equal(parseLogConfig({ Type: 'local', Config: { 'max-size': '256k', 'max-file': '5' } }), { driver: 'local', maxBytes: 256_000, maxFiles: 1 });
  assert.equal(parseLogConfig({ Type: 'local' }), { driver: 'local', maxBytes: 1048576, maxFiles: 1 });
  assert.equal(parseLogConfig({ Type: 'none' }), { driver: 'none', maxBytes: 0, maxFiles: 0 });
  assert.is(parseSize('10 kb'), 10_000);
  assert.is(parseSize('ten'), undefined);
});

test('parseLogConfig: rejects unknown drivers, options and bad values, naming them', () => {
  rejects({ Type: 'syslog' }, 'syslog');
  rejects({ Type: 'journald' }, 'journald');
  rejects({ Config: { compress: 'true' } }, 'compress');
  rejects({ Config: { 'max-szie': '1m' } }, 'max-szie');
  rejects({ Type: 'none', Config: { 'max-size': '1m' } }, 'max-size');
  rejects({ Config: { 'max-size': '0' } }, 'max-size');
  rejects({ Config: { 'max-size': '-1' } }, 'max-size');
  rejects({ Config: { 'max-size': '10x' } }, 'max-size');
  rejects({ Config: { 'max-file': '0' } }, 'max-file');
  rejects({ Config: { 'max-file': '1.5' } }, 'max-file');
  rejects({ Config: { 'max-file': 'two' } }, 'max-file');
});

test('encodeFrame: Docker stdcopy header', () => {
  const f = encodeFrame(1, Buffer.from('hi\n'));
  assert.equal([...f], [1, 0, 0, 0, 0, 0, 0, 3, 0x68, 0x69, 0x0a]);
  const big = encodeFrame(2, Buffer.alloc(0x012345));
  assert.equal([...big.subarray(0, 8)], [2, 0, 0, 0, 0x00, 0x01, 0x23, 0x45]);
  assert.is(big.length, 8 + 0x012345);
  assert.equal([...encodeFrame(3, Buffer.alloc(0))], [3, 0, 0, 0, 0, 0, 0, 0]);
});

test('formatLogLine and logChunk: timestamps prefix and framing', () => {
  const e = { stream: 'stderr' as const, line: Buffer.from('boom\n'), time: '2024-01-01T00:00:00.000000001Z' };
  assert.is(formatLogLine(e, false).toString(), 'boom\n');
  assert.is(formatLogLine(e, true).toString(), '2024-01-01T00:00:00.000000001Z boom\n');
  // Other writers' times come out fixed-width UTC, as Docker prints them.
  assert.is(formatLogLine({ ...e, time: '2024-01-01T01:00:00.5+01:00' }, true).toString(), '2024-01-01T00:00:00.500000000Z boom\n');
  const chunk = logChunk(e, { timestamps: false, tty: false });
  assert.equal([...chunk.subarray(0, 8)], [2, 0, 0, 0, 0, 0, 0, 5]);
  assert.is(chunk.subarray(8).toString(), 'boom\n');
  assert.is(logChunk({ ...e, stream: 'stdout' }, { timestamps: false, tty: false })[0], 1);
  assert.is(logChunk(e, { timestamps: false, tty: true }).toString(), 'boom\n');
});

test('time helpers keep nanoseconds', () => {
  assert.is(parseTimeNanos('2024-01-01T00:00:00.123456789Z'), 1704067200123456789n);
  assert.is(parseTimeNanos('2024-01-01T00:00:00Z'), 1704067200000000000n);
  assert.is(parseTimeNanos('yesterday'), undefined);
  assert.is(formatTimeNanos(1704067200000000042n), '2024-01-01T00:00:00.000000042Z');
  assert.is(secondsToNanos(1704067200.5), 1704067200500000000n);
  assert.is(secondsToNanos(1704067200), 1704067200000000000n);
});

test.run();
