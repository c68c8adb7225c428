// How container routes reach the engine, and the short event history /events?since=
// replays. The history starts recording the first time any container route touches the
// engine, so an engine without a history of its own still answers `since`.
import { BerthError } from '../../util/errors';
import type { ContainerEvent, Engine } from '../../engine/types';
import type { RequestContext } from '../context';

/** Events kept for `since`; a router sees a few per container lifecycle. */
const HISTORY_LIMIT = 1000;

const histories = new WeakMap<Engine, ContainerEvent[]>();

function record(engine: Engine): void {
  if (histories.has(engine)) return;
  const history: ContainerEvent[] = [];
  histories.set(engine, history);
  engine.onEvent((event) => {
    history.push(event);
    if (history.length > HISTORY_LIMIT) history.splice(0, history.length - HISTORY_LIMIT);
  });
}

/** The engine, or a 500 that says what is missing (the daemon wires it in as services.engine). */
export function engineOf(ctx: RequestContext): Engine {
  const engine = ctx.services.engine;
  if (!engine) throw new BerthError('EINTERNAL', 'the container engine is not running');
  record(engine);
  return engine;
}

/** Recorded events, oldest first. */
export function eventHistory(engine: Engine): readonly ContainerEvent[] {
  return histories.get(engine) ?? [];
}
