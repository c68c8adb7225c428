// Container ids and names: Docker's shapes (64 hex ids, "/name" names, "adjective_surname"
// auto names) and the rules for looking a container up by id, id prefix or name.
import { randomBytes } from 'node:crypto';
import { BerthError } from '../util/errors';

export function newContainerId(): string {
  // Docker avoids all-digit short ids: they read as numbers in scripts.
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (!/^\d{12}/.test(id)) return id;
  }
}

export const shortId = (id: string): string => id.slice(0, 12);

const NAME_PATTERN = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** "/x" for a valid user-supplied name; EINVAL with Docker's text otherwise. */
export function normaliseName(name: string): string {
  if (!NAME_PATTERN.test(name)) throw new BerthError('EINVAL', `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return name.startsWith('/') ? name : `/${name}`;
}

const ADJECTIVES = ['brave', 'calm', 'clever', 'eager', 'focused', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'modest', 'nifty',
  'quiet', 'relaxed', 'sharp', 'stoic', 'tender', 'vibrant', 'wizardly', 'zealous'];
const SURNAMES = ['babbage', 'curie', 'darwin', 'einstein', 'feynman', 'goldberg', 'hopper', 'khorana', 'lovelace', 'meitner', 'noether',
  'pasteur', 'ritchie', 'shannon', 'thompson', 'turing', 'wilson', 'wozniak', 'yonath', 'zuse'];

/** A free auto name; after a few collisions a digit suffix, as Docker does. */
export function autoName(taken: (name: string) => boolean): string {
  for (let attempt = 0; ; attempt++) {
    const pick = <T>(list: T[]) => list[randomBytes(2).readUInt16BE(0) % list.length]!;
    let name = `/${pick(ADJECTIVES)}_${pick(SURNAMES)}`;
    if (attempt >= 10) name += String(randomBytes(1)[0]! % 10 + attempt);
    if (!taken(name)) return name;
  }
}

export function nameConflict(name: string, id: string): BerthError {
  return new BerthError('ECONFLICT', `Conflict. The container name "${name}" is already in use by container "${id}". You have to remove (or rename) that container to be able to reuse that name.`);
}

export function noSuchContainer(ref: string): BerthError {
  return new BerthError('ENOCONTAINER', `No such container: ${ref}`);
}

/**
 * Docker's lookup order: full id, then exact name, then unique id prefix. An ambiguous
 * prefix is an error of its own.
 */
export function lookup<T>(ref: string, byId: Map<string, T>, idOfName: (name: string) => string | undefined): T {
  const exact = byId.get(ref);
  if (exact) return exact;
  const named = idOfName(ref.startsWith('/') ? ref : `/${ref}`);
  if (named && byId.has(named)) return byId.get(named)!;
  if (/^[0-9a-f]+$/.test(ref)) {
    const matches = [...byId.keys()].filter((id) => id.startsWith(ref));
    if (matches.length === 1) return byId.get(matches[0]!)!;
    if (matches.length > 1) throw new BerthError('EINVAL', `multiple IDs found with provided prefix: ${ref}`);
  }
  throw noSuchContainer(ref);
}
