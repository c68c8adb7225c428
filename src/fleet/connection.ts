// Broker connection settings and the reconnect schedule. mqtt.js picks the transport
// (tcp, tls, ws, wss) from the URL; we add TLS files, a stable client id with a
// persistent session, the last will, and exponential backoff with jitter so a
// thousand routers coming back after a broker restart do not all knock at once.
import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import { BerthError } from '../util/errors';

export interface BrokerSettings {
  clientId: string;
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
  /** Retained on the status topic by the broker if we vanish. */
  will?: { topic: string; payload: string };
  /** Keep the session (subscriptions, queued QoS 1 messages) across disconnects. */
  persistent: boolean;
}

/** A week: long enough for a router to be off over a holiday without losing queued commands. */
export const SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;

function readPem(what: string, path: string | undefined): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new BerthError('EINVAL', `cannot read the MQTT ${what} file ${path}: ${(err as Error).message}`);
  }
}

export function clientOptions(s: BrokerSettings): IClientOptions {
  return {
    protocolVersion: 5,
    clientId: s.clientId,
    clean: !s.persistent,
    ...(s.persistent ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_SECONDS } } : {}),
    keepalive: 30,
    connectTimeout: 10_000,
    // We schedule reconnects ourselves (backoff with jitter); mqtt.js would retry at a fixed period.
    reconnectPeriod: 0,
    resubscribe: false,
    ca: readPem('CA', s.ca),
    cert: readPem('certificate', s.cert),
    key: readPem('key', s.key),
    username: s.username,
    password: s.password,
    ...(s.will ? { will: { topic: s.will.topic, payload: Buffer.from(s.will.payload), qos: 1 as const, retain: true } } : {}),
  };
}

/** Full-jitter exponential backoff: attempt n waits a random time in [base*2^n / 2, base*2^n], capped. */
export function backoffDelay(attempt: number, opts: { baseMs?: number; maxMs?: number; random?: () => number } = {}): number {
  const base = opts.baseMs ?? 1000;
  const max = opts.maxMs ?? 60_000;
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (opts.random ?? Math.random)() * (ceiling / 2));
}
