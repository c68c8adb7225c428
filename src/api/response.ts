// Response helpers. Docker's clients are picky: error bodies must be
// `Content-Type: application/json` exactly, LuCI reads plain bodies to EOF, and
// progress/event streams must arrive one JSON message per HTTP chunk.
import type { ServerResponse } from 'node:http';
import { toBerthError, httpStatusOf } from '../util/errors';
import { API_VERSION, VERSION } from '../util/version';

export const JSON_TYPE = 'application/json';

/** Headers every response carries, set before the handler runs. */
export function setStandardHeaders(res: ServerResponse): void {
  res.setHeader('Api-Version', API_VERSION);
  res.setHeader('Docker-Experimental', 'false');
  res.setHeader('Ostype', 'linux');
  res.setHeader('Server', `berth/${VERSION} (linux)`);
}

function sendBody(res: ServerResponse, status: number, contentType: string | undefined, body: Buffer): void {
  if (contentType) res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', body.length);
  res.writeHead(status);
  // HEAD responses keep Content-Length but carry no body; node drops it for us.
  res.end(body);
}

/** A complete JSON response with Content-Length (not chunked), so readers-to-EOF work. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  sendBody(res, status, JSON_TYPE, Buffer.from(JSON.stringify(value) + '\n'));
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  sendBody(res, status, contentType, Buffer.from(text));
}

/** 204 and friends: a status with no body. */
export function sendEmpty(res: ServerResponse, status = 204): void {
  res.writeHead(status);
  res.end();
}

/** The one mapping of an error to an HTTP response: status from errors.ts, `{"message"}` body. */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = toBerthError(err);
  const status = httpStatusOf(e);
  if (status === 304) { sendEmpty(res, 304); return; }
  sendJson(res, status, { message: e.message });
}

const openStreams = new WeakSet<ServerResponse>();

/** True for responses that a JsonStream has started; the server ends those with `error`. */
export function isJsonStream(res: ServerResponse): boolean {
  return openStreams.has(res);
}

/**
 * A progress or event stream: 200, application/json, chunked, one JSON message plus
 * "\r\n" per chunk, flushed at once. Headers go out with the first message (or start()),
 * so a handler can still fail with a normal HTTP error before that.
 */
export class JsonStream {
  private ended = false;

  constructor(private readonly res: ServerResponse) {}

  get started(): boolean { return this.res.headersSent; }

  /** Sends the headers now, for clients that wait for them before anything else happens. */
  start(): void {
    if (this.res.headersSent) return;
    this.res.setHeader('Content-Type', JSON_TYPE);
    this.res.removeHeader('Content-Length');
    this.res.writeHead(200);
    this.res.flushHeaders();
    openStreams.add(this.res);
  }

  /** Writes one message as its own chunk. Returns false if the client has gone. */
  write(message: unknown): boolean {
    if (this.ended || this.res.destroyed) return false;
    this.start();
    this.res.write(JSON.stringify(message) + '\r\n');
    return true;
  }

  /** Reports a failure: a normal error response before output, an errorDetail message after. */
  error(err: unknown): void {
    if (this.ended) return;
    const berthError = toBerthError(typeof err === 'string' ? new Error(err) : err);
    const message = berthError.message;
    if (!this.started) {
      this.ended = true;
      sendError(this.res, err);
      return;
    }
    // The numeric code is Docker's field; berthCode lets berth's CLI keep its distinct exit codes.
    this.write({ errorDetail: { message, code: httpStatusOf(berthError), berthCode: berthError.code }, error: message });
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.start();
    openStreams.delete(this.res);
    this.res.end();
  }

  /** Resolves when the client disconnects, so long streams (events, logs -f) can stop. */
  get closed(): boolean { return this.res.destroyed || this.res.writableEnded; }
}
