// The helper's ctl socket (protocol 1): one line request, one line reply; after an `ok` to
// `attach`, output frames [stream u8][length u32 BE][data] until the container exits.
import { connect, type Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { BerthError } from '../util/errors';
import type { AttachOptions, AttachStream } from './types';

const REQUEST_TIMEOUT_MS = 30_000;
const FRAME_HEADER = 5;
const STREAM_STDERR = 2;

/** A socket that is gone or refuses: the helper has exited (or never ran). */
function notRunning(what: string, err: NodeJS.ErrnoException): BerthError {
  return new BerthError('ECONFLICT', `${what} is not running`, { cause: err });
}

function isGone(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTDIR';
}

/** Sends one request; resolves to the reply line. `what` names the container in errors. */
export function ctlRequest(socketPath: string, request: string, what: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let data = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new BerthError('EINTERNAL', `${what}: no reply to "${request}" from berth-helper within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request + '\n'));
    sock.on('data', (d: string) => { data += d; });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(isGone(err) ? notRunning(what, err) : new BerthError('EINTERNAL', `${what}: ctl socket: ${err.message}`, { cause: err }));
    });
    sock.on('close', (hadError) => {
      clearTimeout(timer);
      if (hadError) return;
      const nl = data.indexOf('\n');
      if (nl < 0) reject(new BerthError('EINTERNAL', `${what}: berth-helper closed the ctl socket without a reply to "${request}"`));
      else resolve(data.slice(0, nl));
    });
  });
}

/** `ok ...` -> the rest; `error TEXT` -> BerthError with TEXT. */
export async function ctlCommand(socketPath: string, request: string, what: string): Promise<string> {
  const reply = await ctlRequest(socketPath, request, what);
  if (reply === 'ok' || reply.startsWith('ok ')) return reply.slice(3);
  const text = reply.startsWith('error ') ? reply.slice(6) : reply;
  // The helper refuses only when the container is in the wrong state or the request is bad.
  const code = /not running|already started|no tty|stdin is not open/.test(text) ? 'ECONFLICT' : 'EINVAL';
  throw new BerthError(code, `${what}: ${text}`);
}

/**
 * Connects and attaches. Output respects backpressure: when a consumer stops reading, the
 * socket is paused and the helper buffers (and drops us past 4 MiB: the log has it all).
 */
export async function openAttach(socketPath: string, opts: AttachOptions, what: string): Promise<AttachStream> {
  // Not half-open: our end() (stdin closed) still reads, and the helper's close ends both ways.
  const sock: Socket = connect({ path: socketPath });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', (err: NodeJS.ErrnoException) => reject(isGone(err) ? notRunning(what, err) : err));
  });
  sock.write(opts.stdin ? 'attach stdin\n' : 'attach\n');

  // The reply line, and whatever frame bytes came in the same read.
  const rest = await new Promise<Buffer>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new BerthError('EINTERNAL', `${what}: no reply to attach from berth-helper`)), REQUEST_TIMEOUT_MS);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) return;
      cleanup();
      const reply = head.subarray(0, nl).toString();
      if (reply !== 'ok') {
        sock.destroy();
        const text = reply.startsWith('error ') ? reply.slice(6) : reply;
        reject(new BerthError(/stdin is not open/.test(text) ? 'ECONFLICT' : 'EINTERNAL', `${what}: attach: ${text}`));
        return;
      }
      sock.pause();
      resolve(head.subarray(nl + 1));
    };
    const onEnd = () => fail(notRunning(what, Object.assign(new Error('closed before the attach reply'), { code: 'ECONNRESET' })));
    const onError = (err: Error) => fail(err);
    function cleanup() {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('error', onError);
    }
    function fail(err: Error) {
      cleanup();
      sock.destroy();
      reject(err);
    }
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('error', onError);
  });

  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const frames = opts.raw ? new PassThrough() : undefined;
  let pending: Buffer = Buffer.alloc(0);
  let waitingForDrain = 0;

  const onDrain = () => {
    if (--waitingForDrain === 0) sock.resume();
  };
  const push = (target: PassThrough, data: Buffer) => {
    if (!target.write(data)) {
      waitingForDrain++;
      target.once('drain', onDrain);
      sock.pause();
    }
  };
  const decode = (chunk: Buffer) => {
    if (frames) { push(frames, chunk); return; }
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= FRAME_HEADER) {
      const len = pending.readUInt32BE(1);
      if (pending.length < FRAME_HEADER + len) break;
      const payload = pending.subarray(FRAME_HEADER, FRAME_HEADER + len);
      push(pending[0] === STREAM_STDERR ? stderr : stdout, Buffer.from(payload));
      pending = pending.subarray(FRAME_HEADER + len);
    }
  };

  const closed = new Promise<void>((resolve) => {
    sock.on('close', () => {
      for (const o of [stdout, stderr, ...(frames ? [frames] : [])]) o.end();
      resolve();
    });
  });
  // Errors (a reset when the helper drops a slow client) end the stream like a close does.
  sock.on('error', () => { /* reported through `closed` */ });
  sock.on('data', decode);
  if (rest.length) decode(rest);
  if (waitingForDrain === 0) sock.resume();

  let stdin: Writable | undefined;
  if (opts.stdin) {
    stdin = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (sock.destroyed || sock.writableEnded) { cb(); return; } // the container is gone: drop quietly
        sock.write(chunk, () => cb());
      },
      final(cb) {
        if (!sock.destroyed && !sock.writableEnded) sock.end();
        cb();
      },
    });
  }

  const stream: AttachStream = {
    stdout,
    stderr,
    closed,
    close: () => { sock.destroy(); },
    socket: sock,
    ...(stdin ? { stdin } : {}),
    ...(frames ? { frames } : {}),
  };
  return stream;
}
