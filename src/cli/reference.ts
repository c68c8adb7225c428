// Just enough of docker's image reference rules for the CLI: which registry a name
// points at (to pick stored credentials) and the fully qualified name docker prints
// after a pull. The daemon does the real validation; this never rejects a name.

export const DEFAULT_REGISTRY = 'docker.io';
const DEFAULT_TAG = 'latest';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export interface SplitReference {
  /** "docker.io", "127.0.0.1:5000" */
  domain: string;
  /** "library/busybox" */
  path: string;
  tag?: string;
  digest?: string;
}

/** A first path component is a registry when it looks like a host: a dot, a port or localhost. */
function isDomain(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[');
}

export function splitReference(name: string): SplitReference {
  let rest = name;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) { digest = rest.slice(at + 1); rest = rest.slice(0, at); }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) { tag = rest.slice(colon + 1); rest = rest.slice(0, colon); }
  const slash = rest.indexOf('/');
  let domain = DEFAULT_REGISTRY;
  let path = rest;
  if (slash !== -1 && isDomain(rest.slice(0, slash))) {
    domain = rest.slice(0, slash);
    path = rest.slice(slash + 1);
  }
  if (DOCKER_HUB_ALIASES.has(domain.toLowerCase())) {
    domain = DEFAULT_REGISTRY;
    if (!path.includes('/')) path = `library/${path}`;
  }
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** "busybox" -> "docker.io/library/busybox:latest", as `docker pull` prints on its last line. */
export function fullyQualified(name: string): string {
  const ref = splitReference(name);
  const base = `${ref.domain}/${ref.path}`;
  if (ref.digest) return ref.tag ? `${base}:${ref.tag}@${ref.digest}` : `${base}@${ref.digest}`;
  return `${base}:${ref.tag ?? DEFAULT_TAG}`;
}

/** True when the name carries neither tag nor digest (docker then says "Using default tag"). */
export function hasNoTagOrDigest(name: string): boolean {
  const ref = splitReference(name);
  return ref.tag === undefined && ref.digest === undefined;
}

/** "127.0.0.1:5000/busybox:oci" -> { repo: "127.0.0.1:5000/busybox", tag: "oci" } for the tag API. */
export function splitRepoTag(name: string): { repo: string; tag?: string } {
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) return { repo: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repo: name };
}
