// A small flag parser in the style of docker's (pflag): long and short names,
// `--name=value`, `--name value`, `-n value`, `-nvalue`, grouped short booleans (`-aq`),
// repeatable list flags and `--` to end flags. Commands declare their flags as data so
// usage text and parsing never disagree. Also used by `berth daemon`.
import { BerthError } from '../util/errors';

export type FlagType = 'bool' | 'string' | 'list';

export interface FlagDef {
  type: FlagType;
  short?: string;
  /** One line for the usage text. */
  help?: string;
  /** Shown after the flag name in usage, e.g. "string" or "PATH". */
  valueName?: string;
  /** Value of a string flag when it is not given. */
  default?: string;
  hidden?: boolean;
}

export type FlagDefs = Record<string, FlagDef>;

export type FlagValues<D extends FlagDefs> = {
  [K in keyof D]: D[K]['type'] extends 'bool' ? boolean
    : D[K]['type'] extends 'list' ? string[]
    : string | undefined;
};

export interface ParsedArgs<D extends FlagDefs> {
  flags: FlagValues<D>;
  /** Long names of the flags that appeared on the command line. */
  given: Set<keyof D & string>;
  positionals: string[];
}

export interface ParseOptions {
  /**
   * Stop at the first positional and leave the rest untouched, as `docker run IMAGE CMD...`
   * and the global flags before a command need.
   */
  stopAtPositional?: boolean;
}

const TRUE_WORDS = new Set(['1', 't', 'true', 'yes']);
const FALSE_WORDS = new Set(['0', 'f', 'false', 'no']);

function parseBool(name: string, raw: string): boolean {
  const v = raw.toLowerCase();
  if (TRUE_WORDS.has(v)) return true;
  if (FALSE_WORDS.has(v)) return false;
  throw new BerthError('EINVAL', `invalid argument "${raw}" for "--${name}" flag: not a boolean`);
}

export function parseFlags<D extends FlagDefs>(args: readonly string[], defs: D, options: ParseOptions = {}): ParsedArgs<D> {
  const values: Record<string, boolean | string | string[] | undefined> = {};
  const byShort = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) {
    values[name] = def.type === 'bool' ? false : def.type === 'list' ? [] : def.default;
    if (def.short) byShort.set(def.short, name);
  }
  const given = new Set<string>();
  const positionals: string[] = [];

  const assign = (name: string, value: string | undefined, takeNext: () => string | undefined, shown: string): void => {
    const def = defs[name]!;
    given.add(name);
    if (def.type === 'bool') {
      values[name] = value === undefined ? true : parseBool(name, value);
      return;
    }
    const v = value ?? takeNext();
    if (v === undefined) throw new BerthError('EINVAL', `flag needs an argument: ${shown}`);
    if (def.type === 'list') (values[name] as string[]).push(v);
    else values[name] = v;
  };

  let i = 0;
  const takeNext = (): string | undefined => (i < args.length ? args[i++] : undefined);
  while (i < args.length) {
    const arg = args[i++]!;
    if (arg === '--') {
      positionals.push(...args.slice(i));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      if (!Object.hasOwn(defs, name)) throw new BerthError('EINVAL', `unknown flag: --${name}`);
      assign(name, eq === -1 ? undefined : arg.slice(eq + 1), takeNext, `--${name}`);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // Grouped shorts: every letter is a flag until one takes a value, which then
      // consumes the rest of the word (or the next argument).
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j]!;
        const name = byShort.get(letter);
        if (name === undefined) throw new BerthError('EINVAL', `unknown shorthand flag: '${letter}' in ${arg}`);
        const def = defs[name]!;
        if (def.type === 'bool') {
          if (arg[j + 1] === '=') { assign(name, arg.slice(j + 2), takeNext, `-${letter}`); break; }
          assign(name, undefined, takeNext, `-${letter}`);
          continue;
        }
        let rest = arg.slice(j + 1);
        if (rest.startsWith('=')) rest = rest.slice(1);
        assign(name, rest === '' ? undefined : rest, takeNext, `-${letter}`);
        break;
      }
      continue;
    }
    positionals.push(arg);
    if (options.stopAtPositional) {
      positionals.push(...args.slice(i));
      break;
    }
  }
  return { flags: values as FlagValues<D>, given: given as Set<keyof D & string>, positionals };
}

/** The "Options:" block of a usage text, aligned like docker's. */
export function formatFlagHelp(defs: FlagDefs): string {
  const rows = Object.entries(defs)
    .filter(([, def]) => !def.hidden)
    .map(([name, def]) => {
      const value = def.type === 'bool' ? '' : ` ${def.valueName ?? (def.type === 'list' ? 'list' : 'string')}`;
      const left = `${def.short ? `-${def.short}, ` : '    '}--${name}${value}`;
      return [left, def.help ?? ''] as const;
    });
  if (rows.length === 0) return '';
  const width = Math.max(...rows.map(([left]) => left.length));
  return 'Options:\n' + rows.map(([left, help]) => `  ${left.padEnd(width)}   ${help}`.trimEnd()).join('\n') + '\n';
}

/**
 * docker's repeatable `--filter name=value` flags as the API's filters object
 * ({"name":["value",...]}); `allowed` rejects keys the command does not know.
 */
export function parseFilterFlags(values: readonly string[], allowed?: ReadonlySet<string>): Record<string, string[]> {
  const filters: Record<string, string[]> = {};
  for (const f of values) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new BerthError('EINVAL', `bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, eq);
    if (allowed && !allowed.has(key)) throw new BerthError('EINVAL', `invalid filter '${key}'`);
    (filters[key] ??= []).push(f.slice(eq + 1));
  }
  return filters;
}
