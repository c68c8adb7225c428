// Command and reply payloads. The agent validates every byte it receives here, before
// anything reaches the engine; the operator CLI uses the same shapes to build requests.
import { BerthError, mqttCodeOf, toBerthError } from '../util/errors';

export const ACTIONS = [
  'ping', 'info', 'ps', 'images', 'pull', 'run', 'create', 'start', 'stop', 'restart', 'rm', 'rmi',
  'logs', 'exec', 'inspect', 'stats', 'prune', 'deploy',
] as const;
export type Action = (typeof ACTIONS)[number];

export function isAction(name: string): name is Action {
  return (ACTIONS as readonly string[]).includes(name);
}

export interface FleetRequest {
  id: string;
  action: Action;
  args: Record<string, unknown>;
  ts?: number;
  sig?: string;
}

export type FleetReply =
  | { id: string; device: string; ok: true; result: unknown }
  | { id: string; device: string; ok: false; error: { code: string; message: string } }
  /** Sent before the final reply by long actions. */
  | { id: string; device: string; progress: unknown };

/** A request id becomes a topic level and a line in the dedupe log. */
export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/.test(value);
}

/** Thrown for a payload we cannot act on; carries the request id when one could be read. */
export class BadRequest extends BerthError {
  readonly requestId: string | undefined;
  constructor(code: 'EINVAL' | 'ETOOLARGE' | 'EDENIED', message: string, requestId?: string) {
    super(code, message);
    this.requestId = requestId;
  }
}

/** Parses and type-checks a command payload. Never throws anything but BadRequest. */
export function parseRequest(payload: Buffer, maxPayload: number): FleetRequest {
  if (payload.length > maxPayload) {
    // Not parsed, but a leading "id" is cheap to find and lets the sender see the refusal.
    const lead = /^\s*\{\s*"id"\s*:\s*"([^"]{1,100})"/.exec(payload.subarray(0, 256).toString('utf8'));
    throw new BadRequest('ETOOLARGE', `payload of ${payload.length} bytes exceeds the limit of ${maxPayload}`, lead && isRequestId(lead[1]) ? lead[1] : undefined);
  }
  let data: unknown;
  try {
    data = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new BadRequest('EINVAL', `payload is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new BadRequest('EINVAL', 'payload must be a JSON object');
  const obj = data as Record<string, unknown>;
  const id = isRequestId(obj.id) ? obj.id : undefined;
  if (!id) throw new BadRequest('EINVAL', '"id" must be a string of letters, digits, "_", ".", ":" or "-" (at most 100)');
  if (typeof obj.action !== 'string') throw new BadRequest('EINVAL', '"action" must be a string', id);
  if (!isAction(obj.action)) throw new BadRequest('EINVAL', `unknown action "${obj.action}"`, id);
  if (obj.args !== undefined && (typeof obj.args !== 'object' || obj.args === null || Array.isArray(obj.args))) throw new BadRequest('EINVAL', '"args" must be a JSON object', id);
  if (obj.ts !== undefined && typeof obj.ts !== 'number') throw new BadRequest('EINVAL', '"ts" must be a number', id);
  if (obj.sig !== undefined && typeof obj.sig !== 'string') throw new BadRequest('EINVAL', '"sig" must be a string', id);
  return { id, action: obj.action, args: (obj.args as Record<string, unknown>) ?? {}, ts: obj.ts as number | undefined, sig: obj.sig as string | undefined };
}

export function okReply(id: string, device: string, result: unknown): FleetReply {
  return { id, device, ok: true, result: result ?? null };
}

/** An error as replies and state documents carry it: the MQTT code from errors.ts and the message. */
export function errorBody(err: unknown): { code: string; message: string } {
  const e = toBerthError(err);
  return { code: mqttCodeOf(e), message: e.message };
}

export function errorReply(id: string, device: string, err: unknown): FleetReply {
  return { id, device, ok: false, error: errorBody(err) };
}

// Small typed readers for action arguments: a wrong type is a bad_request naming the field.
export const arg = {
  string(args: Record<string, unknown>, name: string): string {
    const v = args[name];
    if (typeof v !== 'string' || v === '') throw new BerthError('EINVAL', `args.${name} must be a non-empty string`);
    return v;
  },
  optString(args: Record<string, unknown>, name: string): string | undefined {
    return args[name] === undefined ? undefined : arg.string(args, name);
  },
  optBool(args: Record<string, unknown>, name: string): boolean | undefined {
    const v = args[name];
    if (v !== undefined && typeof v !== 'boolean') throw new BerthError('EINVAL', `args.${name} must be a boolean`);
    return v as boolean | undefined;
  },
  optNumber(args: Record<string, unknown>, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = args[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new BerthError('EINVAL', `args.${name} must be a number from ${min} to ${max}`);
    return v;
  },
  command(args: Record<string, unknown>, name: string): string[] {
    const v = args[name];
    if (typeof v === 'string' && v.trim()) return ['/bin/sh', '-c', v];
    if (Array.isArray(v) && v.length && v.every((s) => typeof s === 'string')) return v as string[];
    throw new BerthError('EINVAL', `args.${name} must be a non-empty array of strings or a shell string`);
  },
};
