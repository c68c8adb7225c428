// GET /events: recorded events since `since`, then live ones, as NDJSON with one event
// per HTTP chunk (LuCI parses chunk by chunk). With `until` the stream ends at that time.
import type { ContainerEvent } from '../../engine/types';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { JsonStream } from '../response';
import { normalizeFilters, parseTimeParam } from './containers';
import { engineOf, eventHistory } from './engine-service';

export function registerEventRoutes(router: Router): void {
  router.add('GET', '/events', events);
}

/** Docker's filter keys for events; values within a key are alternatives, keys all apply. */
export function eventMatches(event: ContainerEvent, filters: Record<string, string[]> | undefined): boolean {
  if (!filters) return true;
  const attrs = event.Actor.Attributes ?? {};
  for (const [key, values] of Object.entries(filters)) {
    if (values.length === 0) continue;
    const any = (test: (v: string) => boolean): boolean => values.some(test);
    switch (key) {
      case 'type':
        if (!any((v) => v === event.Type)) return false;
        break;
      case 'event':
      case 'action':
        // "exec_start" events carry the command after a colon: "exec_start: sh".
        if (!any((v) => v === event.Action || event.Action.startsWith(`${v}:`))) return false;
        break;
      case 'container':
        if (event.Type !== 'container' || !any((v) => event.Actor.ID.startsWith(v) || attrs.name === v)) return false;
        break;
      case 'image':
        if (!any((v) => attrs.image === v || (event.Type === 'image' && (event.Actor.ID === v || attrs.name === v)))) return false;
        break;
      case 'label':
        if (!any((v) => {
          const eq = v.indexOf('=');
          return eq === -1 ? Object.hasOwn(attrs, v) : attrs[v.slice(0, eq)] === v.slice(eq + 1);
        })) return false;
        break;
      case 'scope':
        if (!any((v) => v === 'local')) return false;
        break;
      default:
        // Unknown keys (daemon, network, volume, ...) match nothing we emit.
        return false;
    }
  }
  return true;
}

/** Docker's event message, with the pre-1.22 fields old clients still read. */
function message(event: ContainerEvent): Record<string, unknown> {
  const legacy = event.Type === 'container' ? { status: event.Action, id: event.Actor.ID, from: event.Actor.Attributes?.image ?? '' } : {};
  return { ...legacy, Type: event.Type, Action: event.Action, Actor: event.Actor, scope: 'local', time: event.time, timeNano: event.timeNano };
}

async function events(ctx: RequestContext): Promise<void> {
  const engine = engineOf(ctx);
  const since = parseTimeParam(ctx, 'since');
  const until = parseTimeParam(ctx, 'until');
  const filters = normalizeFilters(ctx.query.json('filters'));
  const stream = new JsonStream(ctx.res);
  // Headers now: `docker events` shows nothing until it sees them.
  stream.start();
  const seconds = (e: ContainerEvent): number => e.timeNano / 1e9;
  const inWindow = (e: ContainerEvent): boolean => (since === undefined || seconds(e) >= since) && (until === undefined || seconds(e) <= until);

  const live: ContainerEvent[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = engine.onEvent((e) => { live.push(e); wake?.(); });
  try {
    if (since !== undefined) for (const e of eventHistory(engine)) if (inWindow(e) && eventMatches(e, filters)) stream.write(message(e));
    const nowSeconds = Date.now() / 1000;
    if (until !== undefined && until <= nowSeconds) return;
    const ends = new Promise<void>((resolve) => {
      ctx.res.on('close', resolve);
      if (until !== undefined) setTimeout(resolve, (until - nowSeconds) * 1000).unref();
    });
    let finished = false;
    void ends.then(() => { finished = true; wake?.(); });
    while (!finished) {
      while (live.length) {
        const e = live.shift()!;
        if (inWindow(e) && eventMatches(e, filters)) stream.write(message(e));
      }
      if (finished) break;
      await new Promise<void>((resolve) => { wake = resolve; });
      wake = undefined;
    }
  } finally {
    unsubscribe();
    stream.end();
  }
}
