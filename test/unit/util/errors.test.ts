import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BerthError, httpStatusOf, exitCodeOf, mqttCodeOf, toBerthError } from '../../../src/util/errors';

test('codes map to distinct HTTP status, exit code and MQTT reply', () => {
  const err = new BerthError('ENOIMAGE', 'No such image: busybox:latest');
  assert.is(httpStatusOf(err), 404);
  assert.is(exitCodeOf(err), 3);
  assert.is(mqttCodeOf(err), 'not_found');
  assert.is(httpStatusOf(new BerthError('ECONFLICT', 'x')), 409);
});

test('unknown errors become internal errors that keep their message', () => {
  const err = toBerthError(new Error('boom'));
  assert.is(err.code, 'EINTERNAL');
  assert.is(err.message, 'boom');
  assert.is(httpStatusOf(err), 500);
});

test.run();
