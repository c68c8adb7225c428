// Turns registry error responses into BerthErrors whose wording matches what docker
// prints, so users (and scripts that grep docker's messages) recognise them.

import type { IncomingMessage } from 'node:http';
import { BerthError } from '../../util/errors';
import { familiarName, familiarString, type Reference } from '../reference';
import { readBody } from './http';

export interface RegistryErrorEntry {
  code: string;
  message: string;
}

const MAX_ERROR_BODY_BYTES = 64 * 1024;

export function parseRegistryErrors(body: Buffer): RegistryErrorEntry[] {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: unknown; details?: unknown };
    if (Array.isArray(parsed.errors)) {
      return parsed.errors
        .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
        .map((e) => ({ code: String(e.code ?? 'UNKNOWN').toUpperCase(), message: String(e.message ?? '') }));
    }
    // Docker Hub's token endpoint answers {"details": "..."}.
    if (typeof parsed.details === 'string') return [{ code: 'UNAUTHORIZED', message: parsed.details }];
  } catch { /* not JSON: the status code alone has to do */ }
  return [];
}

function describe(entry: RegistryErrorEntry | undefined, fallback: string): string {
  if (!entry) return fallback;
  const code = entry.code.toLowerCase().replace(/_/g, ' ');
  return entry.message ? `${code}: ${entry.message}` : code;
}

export interface ErrorContext {
  ref: Reference;
  host: string;
  /** What was being fetched, for the generic message: "manifest", "blob sha256:...". */
  what: string;
  withCredentials: boolean;
}

export function registryErrorFrom(status: number, body: Buffer, ctx: ErrorContext): BerthError {
  const errors = parseRegistryErrors(body);
  const first = errors[0];
  const codes = new Set(errors.map((e) => e.code));
  const pullDenied = (detail: string) =>
    `pull access denied for ${familiarName(ctx.ref)}, repository does not exist or may require 'docker login': ${detail}`;

  if (codes.has('TOOMANYREQUESTS') || status === 429) {
    return new BerthError('EREGISTRY', describe(errors.find((e) => e.code === 'TOOMANYREQUESTS'), `toomanyrequests: registry ${ctx.host} is rate limiting requests`));
  }
  if (status === 401 || codes.has('UNAUTHORIZED')) {
    const detail = describe(first, 'unauthorized: authentication required');
    if (ctx.withCredentials) return new BerthError('EAUTH', detail.startsWith('unauthorized') ? detail : `unauthorized: ${detail}`);
    return new BerthError('ENOIMAGE', pullDenied(detail));
  }
  if (codes.has('DENIED') || status === 403) {
    const detail = describe(errors.find((e) => e.code === 'DENIED') ?? first, 'denied: requested access to the resource is denied');
    return new BerthError('EDENIED', pullDenied(detail));
  }
  if (codes.has('MANIFEST_UNKNOWN')) {
    return new BerthError('ENOIMAGE', `manifest for ${familiarString(ctx.ref)} not found: ${describe(errors.find((e) => e.code === 'MANIFEST_UNKNOWN'), 'manifest unknown')}`);
  }
  if (codes.has('NAME_UNKNOWN')) {
    return new BerthError('ENOIMAGE', pullDenied(describe(errors.find((e) => e.code === 'NAME_UNKNOWN'), 'name unknown')));
  }
  if (status === 404 && ctx.what === 'manifest') {
    return new BerthError('ENOIMAGE', `manifest for ${familiarString(ctx.ref)} not found: manifest unknown`);
  }
  const detail = first ? `: ${describe(first, '')}` : '';
  return new BerthError('EREGISTRY', `registry ${ctx.host} answered HTTP ${status} for ${ctx.what} of ${familiarString(ctx.ref)}${detail}`);
}

/** Reads (a bounded amount of) an error response and maps it. */
export async function registryError(res: IncomingMessage, ctx: ErrorContext): Promise<BerthError> {
  const body = await readBody(res, MAX_ERROR_BODY_BYTES, 'error response', ctx.host).catch(() => Buffer.alloc(0));
  return registryErrorFrom(res.statusCode ?? 0, body, ctx);
}
