// The operator's side of the fleet protocol: a plain MQTT client that reads retained
// status and state, sends commands and collects replies, publishes desired state.
// It imports no engine or daemon code, so `berth fleet` runs anywhere.
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { BerthError } from '../util/errors';
import { clientOptions } from './connection';
import { signRequest, parsePrivateKey } from './signing';
import { targetTopics, type Target } from './topics';
import type { Action, FleetReply } from './protocol';

export interface OperatorOptions {
  broker: string;
  prefix: string;
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
  connectTimeoutMs?: number;
}

export async function connectOperator(opts: OperatorOptions): Promise<MqttClient> {
  const client = mqtt.connect(opts.broker, {
    ...clientOptions({ clientId: `berth-op-${randomBytes(6).toString('hex')}`, persistent: false, ca: opts.ca, cert: opts.cert, key: opts.key, username: opts.username, password: opts.password }),
    reconnectPeriod: 0,
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { client.end(true); reject(new BerthError('ECONNECT', `cannot reach the broker ${opts.broker}: timed out`)); }, opts.connectTimeoutMs ?? 10_000);
    client.once('connect', () => { clearTimeout(timer); resolve(); });
    client.once('error', (err) => { clearTimeout(timer); client.end(true); reject(new BerthError('ECONNECT', `cannot reach the broker ${opts.broker}: ${err.message}`)); });
    client.once('close', () => { clearTimeout(timer); reject(new BerthError('ECONNECT', `cannot reach the broker ${opts.broker}: connection closed`)); });
  });
  client.on('error', () => {});
  return client;
}

export function closeOperator(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(false, {}, () => resolve()));
}

/** Retained documents under <prefix>/dev/+/<leaf>, by device id; waits until the broker goes quiet. */
export async function readRetained(client: MqttClient, prefix: string, leaf: 'status' | 'state', quietMs = 400): Promise<Map<string, any>> {
  const found = new Map<string, any>();
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/dev/([^/]+)/${leaf}$`);
  let timer: NodeJS.Timeout | undefined;
  let settle!: () => void;
  const quiet = new Promise<void>((resolve) => { settle = resolve; });
  const bump = (): void => { clearTimeout(timer); timer = setTimeout(settle, quietMs); };
  const onMessage = (topic: string, payload: Buffer): void => {
    const m = pattern.exec(topic);
    if (!m) return;
    try { found.set(m[1]!, payload.length ? JSON.parse(payload.toString('utf8')) : undefined); } catch { /* not ours */ }
    if (found.get(m[1]!) === undefined) found.delete(m[1]!);
    bump();
  };
  client.on('message', onMessage);
  bump();
  await client.subscribeAsync(`${prefix}/dev/+/${leaf}`, { qos: 1 });
  await quiet;
  client.off('message', onMessage);
  await client.unsubscribeAsync(`${prefix}/dev/+/${leaf}`);
  return found;
}

export interface SendOptions {
  timeoutMs: number;
  /** Final replies to wait for; undefined waits for the whole timeout. */
  expect?: number;
  signKeyPem?: string;
  requestId?: string;
  onReply?(reply: FleetReply): void;
}

/** Sends one command and collects the final reply of each device (progress goes to onReply too). */
export async function sendCommand(client: MqttClient, prefix: string, target: Target, action: Action | string, args: Record<string, unknown>, opts: SendOptions): Promise<Map<string, FleetReply>> {
  const id = opts.requestId ?? `op-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const replyFilter = `${prefix}/dev/+/res/${id}`;
  const finals = new Map<string, FleetReply>();
  let finish!: () => void;
  const done = new Promise<void>((resolve) => { finish = resolve; });
  const onMessage = (topic: string, payload: Buffer): void => {
    if (!topic.startsWith(`${prefix}/dev/`) || !topic.endsWith(`/res/${id}`)) return;
    let reply: FleetReply;
    try { reply = JSON.parse(payload.toString('utf8')); } catch { return; }
    opts.onReply?.(reply);
    if (!('ok' in reply)) return;
    const device = reply.device ?? topic.split('/').at(-3)!;
    if (!finals.has(device)) finals.set(device, reply);
    if (opts.expect !== undefined && finals.size >= opts.expect) finish();
  };
  client.on('message', onMessage);
  await client.subscribeAsync(replyFilter, { qos: 1 });
  let request: Record<string, unknown> = { id, action, args };
  if (opts.signKeyPem) request = signRequest({ id, action, args }, parsePrivateKey(opts.signKeyPem));
  await client.publishAsync(targetTopics(prefix, target).commands, JSON.stringify(request), { qos: 1 });
  const timer = setTimeout(finish, opts.timeoutMs);
  await done;
  clearTimeout(timer);
  client.off('message', onMessage);
  await client.unsubscribeAsync(replyFilter).catch(() => {});
  return finals;
}

/** Publishes (retained) or clears a desired-state manifest for a device or group. */
export async function publishDesired(client: MqttClient, prefix: string, target: Target, manifestText: string | undefined): Promise<void> {
  await client.publishAsync(targetTopics(prefix, target).desired, manifestText ?? '', { qos: 1, retain: true });
}
