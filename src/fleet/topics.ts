// The topic scheme, in one place so the agent and the operator CLI never disagree.
// Everything a device publishes lives under <prefix>/dev/<id>/...; groups only carry
// commands and desired state that many devices read.

export interface DeviceTopics {
  commands: string;
  status: string;
  telemetry: string;
  events: string;
  desired: string;
  state: string;
  reply(requestId: string): string;
}

/** Ids and group names become topic levels: no wildcards, separators or empty levels. */
export function isTopicLevel(value: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/.test(value);
}

export function deviceTopics(prefix: string, deviceId: string): DeviceTopics {
  const base = `${prefix}/dev/${deviceId}`;
  return {
    commands: `${base}/cmd`,
    status: `${base}/status`,
    telemetry: `${base}/telemetry`,
    events: `${base}/events`,
    desired: `${base}/desired`,
    state: `${base}/state`,
    reply: (requestId) => `${base}/res/${requestId}`,
  };
}

export function groupTopics(prefix: string, group: string): { commands: string; desired: string } {
  const base = `${prefix}/grp/${group}`;
  return { commands: `${base}/cmd`, desired: `${base}/desired` };
}

/** `dev:<id>` or `grp:<name>`, as operators write targets. */
export type Target = { kind: 'dev' | 'grp'; name: string };

export function parseTarget(text: string): Target {
  const m = /^(dev|grp):(.+)$/.exec(text);
  if (!m || !isTopicLevel(m[2]!)) throw new Error(`target must be dev:<id> or grp:<name>, got ${JSON.stringify(text)}`);
  return { kind: m[1] as 'dev' | 'grp', name: m[2]! };
}

export function targetTopics(prefix: string, target: Target): { commands: string; desired: string } {
  return target.kind === 'dev' ? deviceTopics(prefix, target.name) : groupTopics(prefix, target.name);
}
