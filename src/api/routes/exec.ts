// Exec routes: create an exec in a running container, start it (hijacked like attach),
// resize its terminal and inspect its exit code.
import { BerthError } from '../../util/errors';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { sendEmpty, sendJson } from '../response';
import { parseDetachKeys, readUpgradeBody, relayAttach, streamContentType, takeOverConnection } from '../hijack';
import { CONFIG_BODY_LIMIT, checkFields } from './containers';
import { engineOf } from './engine-service';

export function registerExecRoutes(router: Router): void {
  router.add('POST', '/containers/{id}/exec', create);
  router.add('POST', '/exec/{id}/start', start, { upgrade: true });
  router.add('POST', '/exec/{id}/resize', resize);
  router.add('GET', '/exec/{id}/json', inspect);
}

const EXEC_FIELDS = {
  Cmd: 'strings', Env: 'strings', WorkingDir: 'string', User: 'string', Tty: 'bool', AttachStdin: 'bool',
  AttachStdout: 'bool', AttachStderr: 'bool', Privileged: 'bool', DetachKeys: 'string', ConsoleSize: 'array',
} as const;

const START_FIELDS = { Detach: 'bool', Tty: 'bool', ConsoleSize: 'array' } as const;

/** Exec start bodies are a few bytes; a larger one is not an exec start. */
const START_BODY_LIMIT = 64 * 1024;

const detachKeysByExec = new Map<string, string>();

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new BerthError('EINVAL', `${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

async function create(ctx: RequestContext): Promise<void> {
  const body = asObject(await ctx.json<unknown>(CONFIG_BODY_LIMIT), 'exec config');
  checkFields(body, EXEC_FIELDS);
  const cmd = body.Cmd as string[] | undefined | null;
  if (!cmd || cmd.length === 0) throw new BerthError('EINVAL', 'No exec command specified');
  const detachKeys = typeof body.DetachKeys === 'string' ? body.DetachKeys : undefined;
  parseDetachKeys(detachKeys);
  const created = await engineOf(ctx).execCreate(ctx.param('id'), {
    Cmd: cmd,
    ...(body.Env ? { Env: body.Env as string[] } : {}),
    ...(body.WorkingDir ? { WorkingDir: body.WorkingDir as string } : {}),
    ...(body.User ? { User: body.User as string } : {}),
    Tty: body.Tty === true,
    AttachStdin: body.AttachStdin === true,
    AttachStdout: body.AttachStdout === true,
    AttachStderr: body.AttachStderr === true,
    Privileged: body.Privileged === true,
  });
  if (detachKeys) {
    detachKeysByExec.set(created.Id, detachKeys);
    // Execs that are never started must not pile up.
    if (detachKeysByExec.size > 1000) detachKeysByExec.delete(detachKeysByExec.keys().next().value!);
  }
  sendJson(ctx.res, 201, { Id: created.Id });
}

/**
 * The start body ({"Detach":false,"Tty":true}) comes after the headers; on an upgraded
 * connection we read it off the socket ourselves, and whatever follows it is stdin.
 */
async function start(ctx: RequestContext): Promise<void> {
  const engine = engineOf(ctx);
  const execId = ctx.param('id');
  let raw: Buffer;
  let leftover: Buffer | undefined;
  if (ctx.upgrade) ({ body: raw, rest: leftover } = await readUpgradeBody(ctx, START_BODY_LIMIT));
  else raw = await ctx.body(START_BODY_LIMIT);
  let parsed: unknown;
  try {
    parsed = raw.length && raw.toString('utf8').trim() ? JSON.parse(raw.toString('utf8')) : undefined;
  } catch (err) {
    throw new BerthError('EINVAL', `invalid JSON in request body: ${(err as Error).message}`);
  }
  const body = asObject(parsed, 'exec start config');
  checkFields(body, START_FIELDS);
  const detach = body.Detach === true;

  // Inspect first: a missing exec is a plain 404, and OpenStdin says whether stdin is wanted.
  const info = await engine.execInspect(execId);
  const wantStdin = info.OpenStdin === true;
  const attached = await engine.execStart(execId, { detach, stdin: wantStdin && !detach });
  if (detach || !attached) {
    attached?.close();
    sendEmpty(ctx.res, 200);
    return;
  }
  const conn = takeOverConnection(ctx, streamContentType(ctx, attached.tty), leftover);
  await relayAttach(attached, conn, {
    framed: !attached.tty,
    stdin: wantStdin,
    detachKeys: attached.tty ? parseDetachKeys(detachKeysByExec.get(execId)) : undefined,
    // Clients read ExitCode right after the stream closes: close it only once the engine has it.
    beforeEnd: () => exitRecorded(ctx, execId),
  });
  detachKeysByExec.delete(execId);
}

async function exitRecorded(ctx: RequestContext, execId: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    const info = await engineOf(ctx).execInspect(execId);
    if (info.Running !== true) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function resize(ctx: RequestContext): Promise<void> {
  const h = ctx.query.int('h');
  const w = ctx.query.int('w');
  if (h === undefined || w === undefined || h < 0 || w < 0) throw new BerthError('EINVAL', 'h and w are required: non-negative integers');
  await engineOf(ctx).execResize(ctx.param('id'), h, w);
  sendEmpty(ctx.res, 200);
}

async function inspect(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, await engineOf(ctx).execInspect(ctx.param('id')));
}
