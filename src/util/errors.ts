// One error type for the whole project. Every failure that reaches a user carries a
// code; this table is the only place that maps codes to HTTP status, MQTT reply codes
// and CLI exit codes, so the three control planes always agree.

export const ERROR_CODES = {
  EINVAL: { http: 400, exit: 2, mqtt: 'bad_request' },          // bad parameter or input
  ENOIMAGE: { http: 404, exit: 3, mqtt: 'not_found' },          // no such image
  ENOCONTAINER: { http: 404, exit: 3, mqtt: 'not_found' },      // no such container
  ENOTFOUND: { http: 404, exit: 3, mqtt: 'not_found' },         // other missing object or route
  ECONFLICT: { http: 409, exit: 4, mqtt: 'conflict' },          // name in use, image in use, ...
  ENOTMODIFIED: { http: 304, exit: 0, mqtt: 'not_modified' },   // already started / stopped
  EAUTH: { http: 401, exit: 5, mqtt: 'unauthorized' },          // registry refused credentials
  EDENIED: { http: 403, exit: 5, mqtt: 'forbidden' },           // not allowed (insecure registry, ...)
  EREGISTRY: { http: 500, exit: 6, mqtt: 'registry_error' },    // registry misbehaved or is unreachable
  EDIGEST: { http: 500, exit: 6, mqtt: 'digest_mismatch' },     // content does not match its digest
  ETOOLARGE: { http: 400, exit: 2, mqtt: 'too_large' },         // manifest or layer over a limit
  EBODYTOOLARGE: { http: 413, exit: 2, mqtt: 'too_large' },     // an API request body over its limit
  EUNSUPPORTED: { http: 400, exit: 2, mqtt: 'unsupported' },    // unknown media type, platform, ...
  EUNSAFE: { http: 400, exit: 2, mqtt: 'unsafe_content' },      // archive tried to escape its root
  ECORRUPT: { http: 500, exit: 7, mqtt: 'corrupt' },            // the store is damaged
  ELOCKED: { http: 500, exit: 8, mqtt: 'locked' },              // data root in use by another daemon
  EAPIVERSION: { http: 400, exit: 2, mqtt: 'bad_request' },     // client API version out of range
  ECONNECT: { http: 502, exit: 9, mqtt: 'unavailable' },        // CLI cannot reach the daemon
  EINTERNAL: { http: 500, exit: 1, mqtt: 'internal' },          // a bug
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BerthError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'BerthError';
  }
}

export function isBerthError(err: unknown, code?: ErrorCode): err is BerthError {
  return err instanceof BerthError && (code === undefined || err.code === code);
}

/** Normalises anything thrown into a BerthError; unknown errors become EINTERNAL. */
export function toBerthError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BerthError('EINTERNAL', message, { cause: err });
}

export function httpStatusOf(err: unknown): number {
  return ERROR_CODES[toBerthError(err).code].http;
}

export function exitCodeOf(err: unknown): number {
  return ERROR_CODES[toBerthError(err).code].exit;
}

export function mqttCodeOf(err: unknown): string {
  return ERROR_CODES[toBerthError(err).code].mqtt;
}

/** The reverse of httpStatusOf, for the API client: a status from the daemon back to a code. */
export function codeForHttpStatus(status: number): ErrorCode {
  switch (status) {
    case 400: return 'EINVAL';
    case 401: return 'EAUTH';
    case 403: return 'EDENIED';
    case 404: return 'ENOTFOUND';
    case 409: return 'ECONFLICT';
    case 413: return 'EBODYTOOLARGE';
    case 304: return 'ENOTMODIFIED';
    default: return 'EINTERNAL';
  }
}
