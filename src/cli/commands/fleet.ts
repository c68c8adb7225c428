// `berth fleet`: the operator's side of fleet management, a pure MQTT client (no daemon).
//   ls                 devices from their retained status
//   exec <action> [json args]   send a command to dev:<id> or grp:<name>, print replies as they come
//   deploy FILE        publish a manifest as retained desired state (--remove clears it)
//   state              devices' retained desired-state reports
import { readFileSync } from 'node:fs';
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable } from '../format';
import type { CliContext } from '../command';
import { connectOperator, closeOperator, readRetained, sendCommand, publishDesired } from '../../fleet/operator';
import { parseTarget } from '../../fleet/topics';
import { isAction, type FleetReply } from '../../fleet/protocol';
import { parseManifest } from '../../fleet/manifest';

const FLAGS = {
  broker: { type: 'string', valueName: 'URL', help: 'Broker URL (default $BERTH_FLEET_BROKER)' },
  ca: { type: 'string', valueName: 'FILE', help: 'CA certificate (PEM)' },
  cert: { type: 'string', valueName: 'FILE', help: 'Client certificate (PEM)' },
  key: { type: 'string', valueName: 'FILE', help: 'Client key (PEM)' },
  username: { type: 'string', valueName: 'NAME', help: 'Broker user name' },
  password: { type: 'string', valueName: 'SECRET', help: 'Broker password' },
  prefix: { type: 'string', valueName: 'PREFIX', default: 'berth', help: 'Topic prefix (default berth)' },
  target: { type: 'string', short: 't', valueName: 'dev:ID|grp:NAME', help: 'Device or group for exec and deploy' },
  timeout: { type: 'string', valueName: 'SECONDS', default: '10', help: 'exec: how long to wait for replies (default 10)' },
  expect: { type: 'string', valueName: 'N', help: 'exec: stop after N replies (default: 1 for a device, the online members for a group)' },
  'sign-key': { type: 'string', valueName: 'FILE', help: 'exec: sign with this Ed25519 private key (PEM)' },
  json: { type: 'bool', help: 'Print JSON lines instead of a table' },
  remove: { type: 'bool', help: 'deploy: clear the desired state instead' },
} as const satisfies FlagDefs;

export const summary = 'Manage a fleet of devices over MQTT';
export const usage = `Usage:  berth fleet [OPTIONS] ls
        berth fleet [OPTIONS] exec --target dev:ID|grp:NAME ACTION [JSON-ARGS]
        berth fleet [OPTIONS] deploy --target dev:ID|grp:NAME FILE
        berth fleet [OPTIONS] deploy --target dev:ID|grp:NAME --remove
        berth fleet [OPTIONS] state

${summary}. Talks to the broker only; no daemon needed.

${formatFlagHelp(FLAGS)}`;

function oneLine(value: unknown, max = 100): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const flat = (text ?? '').replace(/\s+/g, ' ');
  return flat.length > max ? flat.slice(0, max - 1) + '…' : flat;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  const [sub, ...rest] = positionals;
  const broker = flags.broker ?? ctx.env.BERTH_FLEET_BROKER;
  if (!sub) throw new BerthError('EINVAL', 'missing subcommand: ls, exec, deploy or state');
  if (!['ls', 'exec', 'deploy', 'state'].includes(sub)) throw new BerthError('EINVAL', `unknown subcommand "${sub}"`);
  if (!broker) throw new BerthError('EINVAL', '--broker is required (or set BERTH_FLEET_BROKER)');
  const prefix = flags.prefix ?? 'berth';
  const client = await connectOperator({ broker, prefix, ca: flags.ca, cert: flags.cert, key: flags.key, username: flags.username, password: flags.password });
  try {
    if (sub === 'ls') {
      const statuses = await readRetained(client, prefix, 'status');
      if (flags.json) { for (const [device, s] of statuses) ctx.stdout.write(JSON.stringify({ device, ...s }) + '\n'); return 0; }
      const rows = [...statuses].sort(([a], [b]) => a.localeCompare(b)).map(([device, s]) => [
        device, s.online ? 'online' : 'offline', s.version ?? '', s.arch ?? '', (s.groups ?? []).join(','),
        s.containers ? `${s.containers.running}/${s.containers.total}` : '', s.uptime !== undefined ? `${s.uptime}s` : '',
      ]);
      ctx.stdout.write(formatTable(['DEVICE', 'STATUS', 'VERSION', 'ARCH', 'GROUPS', 'RUNNING', 'UPTIME'], rows));
      return 0;
    }
    if (sub === 'state') {
      const states = await readRetained(client, prefix, 'state');
      if (flags.json) { for (const [device, s] of states) ctx.stdout.write(JSON.stringify({ device, ...s }) + '\n'); return 0; }
      const rows: string[][] = [];
      for (const [device, s] of [...states].sort(([a], [b]) => a.localeCompare(b))) {
        for (const [source, st] of Object.entries<any>(s.sources ?? {})) {
          const services = Object.entries<any>(st.services ?? {}).map(([n, v]) => `${n}:${v.status}`).join(',');
          rows.push([device, source, st.stack ?? '', st.generation ?? '', st.status ?? '', services || oneLine(st.error?.message ?? '', 60)]);
        }
      }
      ctx.stdout.write(formatTable(['DEVICE', 'SOURCE', 'STACK', 'GENERATION', 'STATUS', 'SERVICES'], rows));
      return 0;
    }
    if (!flags.target) throw new BerthError('EINVAL', `${sub} needs --target dev:ID or grp:NAME`);
    let target;
    try { target = parseTarget(flags.target); } catch (err) { throw new BerthError('EINVAL', (err as Error).message); }
    if (sub === 'deploy') {
      if (flags.remove) {
        if (rest.length) throw new BerthError('EINVAL', 'deploy --remove takes no file');
        await publishDesired(client, prefix, target, undefined);
        ctx.stdout.write(`cleared desired state of ${flags.target}\n`);
        return 0;
      }
      if (rest.length !== 1) throw new BerthError('EINVAL', 'deploy needs exactly one manifest file');
      const text = readFileSync(rest[0]!, 'utf8');
      const manifest = parseManifest(text); // refuse a broken file here, not on every device
      await publishDesired(client, prefix, target, text);
      ctx.stdout.write(`published generation ${manifest.generation} (${Object.keys(manifest.services).length} services) to ${flags.target}\n`);
      return 0;
    }
    // exec
    const [action, json, ...extra] = rest;
    if (!action || extra.length) throw new BerthError('EINVAL', 'exec needs ACTION and optionally one JSON object of args');
    if (!isAction(action)) throw new BerthError('EINVAL', `unknown action "${action}"`);
    let cmdArgs: Record<string, unknown> = {};
    if (json !== undefined) {
      try { cmdArgs = JSON.parse(json); } catch (err) { throw new BerthError('EINVAL', `args are not valid JSON: ${(err as Error).message}`); }
      if (typeof cmdArgs !== 'object' || cmdArgs === null || Array.isArray(cmdArgs)) throw new BerthError('EINVAL', 'args must be a JSON object');
    }
    const timeout = Number(flags.timeout);
    if (!(timeout > 0)) throw new BerthError('EINVAL', '--timeout must be a positive number of seconds');
    let expect = flags.expect !== undefined ? Number(flags.expect) : undefined;
    if (expect === undefined) {
      if (target.kind === 'dev') expect = 1;
      else {
        const statuses = await readRetained(client, prefix, 'status', 300);
        expect = [...statuses.values()].filter((s) => s.online && (s.groups ?? []).includes(target.name)).length || undefined;
      }
    }
    if (!flags.json) ctx.stdout.write(`${'DEVICE'.padEnd(20)} ${'STATUS'.padEnd(8)} RESULT\n`);
    const print = (r: FleetReply): void => {
      if (flags.json) { ctx.stdout.write(JSON.stringify(r) + '\n'); return; }
      if (!('ok' in r)) return;
      const status = r.ok ? 'ok' : r.error.code;
      const body = r.ok ? oneLine(r.result) : oneLine(r.error.message);
      ctx.stdout.write(`${r.device.padEnd(20)} ${status.padEnd(8)} ${body}\n`);
    };
    const finals = await sendCommand(client, prefix, target, action, cmdArgs, {
      timeoutMs: timeout * 1000, expect, onReply: print,
      signKeyPem: flags['sign-key'] ? readFileSync(flags['sign-key'], 'utf8') : undefined,
    });
    const failed = [...finals.values()].filter((r) => 'ok' in r && !r.ok).length;
    const missing = expect !== undefined ? Math.max(0, expect - finals.size) : 0;
    if (!flags.json) ctx.stderr.write(`${finals.size} replied (${failed} failed)${missing ? `, ${missing} did not reply within ${timeout} s` : ''}\n`);
    return failed || missing || finals.size === 0 ? 1 : 0;
  } finally {
    await closeOperator(client);
  }
}
