// `berth stack deploy|ls|rm`: the fleet manifest format, applied locally. It runs the
// same reconciler as the fleet agent, client-side over the Docker API the daemon
// already serves (list, pull, create, start, rm), so the daemon needs no stack route
// and a stack is nothing but labelled containers.
import { readFileSync } from 'node:fs';
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable } from '../format';
import type { CliContext } from '../command';
import type { ApiClient } from '../../api/client';
import { parseManifest, LABEL_STACK, LABEL_SOURCE } from '../../fleet/manifest';
import { reconcileStack, removeStack, listStacks, type StackBackend } from '../../fleet/reconciler';

const FLAGS = {
  file: { type: 'string', short: 'f', valueName: 'FILE', help: 'deploy: the stack manifest (YAML or JSON)' },
  name: { type: 'string', short: 'n', valueName: 'NAME', help: 'deploy: stack name (default: the manifest name)' },
  json: { type: 'bool', help: 'Print JSON instead of a table' },
} as const satisfies FlagDefs;

export const summary = 'Deploy and manage stacks (compose-like manifests)';
export const usage = `Usage:  berth stack deploy -f FILE [--name NAME]
        berth stack ls
        berth stack rm NAME [NAME...]

${summary}. The manifest format is the one fleet desired state uses.

${formatFlagHelp(FLAGS)}`;

function apiBackend(client: ApiClient): StackBackend {
  return {
    async listStackContainers(stack) {
      const list = await client.json<Array<Record<string, any>>>('GET', '/containers/json', { query: { all: true, filters: JSON.stringify({ label: [stack ? `${LABEL_STACK}=${stack}` : LABEL_STACK] }) } });
      return list.map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? '').replace(/^\//, ''), state: c.State ?? '', labels: c.Labels ?? {} }));
    },
    async hasImage(ref) {
      const res = await client.raw('GET', `/images/${encodeURIComponent(ref)}/json`);
      res.resume();
      return (res.statusCode ?? 0) < 300;
    },
    async pull(ref, progress) {
      for await (const msg of client.stream('POST', '/images/create', { query: { fromImage: ref } })) progress(msg);
    },
    async create(name, req) {
      return (await client.json<{ Id: string }>('POST', '/containers/create', { query: { name }, body: req })).Id;
    },
    async start(id) {
      await client.request('POST', `/containers/${id}/start`);
    },
    async remove(id) {
      await client.request('DELETE', `/containers/${id}`, { query: { force: true } });
    },
  };
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  const [sub, ...rest] = positionals;
  const backend = apiBackend(ctx.client());
  switch (sub) {
    case 'deploy': {
      if (!flags.file || rest.length) throw new BerthError('EINVAL', 'deploy needs -f FILE and no other arguments');
      const manifest = parseManifest(readFileSync(flags.file, 'utf8'));
      const name = flags.name ?? manifest.name;
      if (!name || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) throw new BerthError('EINVAL', 'a stack needs --name or a manifest "name" (lower-case letters, digits, "_", "-")');
      const result = await reconcileStack(backend, name, manifest, {
        labels: { [LABEL_SOURCE]: 'local' },
        progress: (m: any) => { if (m?.status) ctx.stderr.write(`${m.status}${m.service ? ` ${m.service}` : ''}${m.container ? ` (${m.container})` : ''}\n`); },
      });
      if (flags.json) ctx.stdout.write(JSON.stringify(result) + '\n');
      else {
        ctx.stdout.write(formatTable(['SERVICE', 'STATUS', 'ACTION', 'CONTAINER', 'IMAGE'], Object.entries(result.services).map(([svc, s]) => [svc, s.status, s.action, s.container ?? '', s.error ? s.error.message : s.image])));
        for (const r of result.removed) ctx.stdout.write(`removed ${r}\n`);
      }
      return result.status === 'converged' ? 0 : 1;
    }
    case 'ls': {
      if (rest.length) throw new BerthError('EINVAL', 'ls takes no arguments');
      const stacks = await listStacks(backend);
      if (flags.json) { ctx.stdout.write(JSON.stringify(stacks) + '\n'); return 0; }
      ctx.stdout.write(formatTable(['NAME', 'SOURCE', 'SERVICES', 'RUNNING'], stacks.map((s) => [s.stack, s.source, s.services.map((x) => x.service).sort().join(','), `${s.services.filter((x) => x.state === 'running').length}/${s.services.length}`])));
      return 0;
    }
    case 'rm': {
      if (!rest.length) throw new BerthError('EINVAL', 'rm needs at least one stack name');
      let missing = 0;
      for (const name of rest) {
        const removed = await removeStack(backend, name);
        if (!removed.length) { ctx.stderr.write(`no such stack: ${name}\n`); missing++; } else ctx.stdout.write(`${name}\n`);
      }
      return missing ? 3 : 0;
    }
    default:
      throw new BerthError('EINVAL', sub ? `unknown subcommand "${sub}"` : 'missing subcommand: deploy, ls or rm');
  }
}
