// Image references, normalised the way Docker's distribution/reference package does, so
// that names users type (and names the docker CLI sends) mean the same image here.

import { BerthError } from '../util/errors';
import type { Digest } from '../minimal-graph/types';

export interface Reference {
  /** Registry domain as normalised: "docker.io", "127.0.0.1:5000", "localhost". */
  domain: string;
  /** Repository path inside the registry: "library/busybox", "user/x". */
  path: string;
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const DOCKER_HUB_REGISTRY_HOST = 'registry-1.docker.io';
const MAX_NAME_LENGTH = 255;

// Grammar pieces from the reference spec. Domain labels allow upper case (hostnames are
// case-insensitive); repository path components must be lower case.
const DOMAIN_LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6_HOST = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN = `(?:${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*|${IPV6_HOST})(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const PATH = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;

const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const PATH_RE = new RegExp(`^${PATH}$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256_DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const BARE_IMAGE_ID_RE = /^[a-f0-9]{64}$/;

function invalid(input: string, why?: string): BerthError {
  const detail = why ? `${why}` : `"${input}"`;
  return new BerthError('EINVAL', `invalid reference format: ${detail}`);
}

/** Parses a user-supplied image reference into its normalised parts. */
export function parseReference(input: string): Reference {
  if (typeof input !== 'string' || input.length === 0) throw invalid(String(input), 'repository name must have at least one component');
  // Docker refuses a bare 64-hex string as a name: it would shadow an image ID.
  if (BARE_IMAGE_ID_RE.test(input)) {
    throw new BerthError('EINVAL', `invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`);
  }

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid(input, `invalid digest in "${input}"`);
    if (digest.startsWith('sha256:') && !SHA256_DIGEST_RE.test(digest)) throw invalid(input, `invalid sha256 digest in "${input}"`);
    if (!digest.startsWith('sha256:')) {
      throw new BerthError('EUNSUPPORTED', `unsupported digest algorithm in "${input}"`);
    }
  }

  // A tag is whatever follows the last colon, unless that colon belongs to a port
  // (then a slash follows it).
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon !== -1 && !rest.slice(lastColon + 1).includes('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) throw invalid(input, `invalid tag in "${input}"`);
  }

  const { domain, path } = splitDomain(rest, input);
  if (!PATH_RE.test(path)) {
    if (PATH_RE.test(path.toLowerCase())) throw invalid(input, 'repository name must be lowercase');
    throw invalid(input);
  }
  if (domain.length + 1 + path.length > MAX_NAME_LENGTH) {
    throw invalid(input, `repository name must not be more than ${MAX_NAME_LENGTH} characters`);
  }

  const ref: Reference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

// The first component names a registry only if it looks like a host: it has a dot or a
// port, or is "localhost", or has upper case (which a repository path never may).
function splitDomain(name: string, input: string): { domain: string; path: string } {
  const slash = name.indexOf('/');
  let domain: string;
  let path: string;
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (slash === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    path = name;
  } else {
    domain = first;
    path = name.slice(slash + 1);
    if (!DOMAIN_RE.test(domain)) throw invalid(input);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_REPO_PREFIX + path;
  if (path.length === 0) throw invalid(input);
  return { domain, path };
}

/** "docker.io/library/busybox" */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** Full normalised form: "docker.io/library/busybox:latest", "...@sha256:...". */
export function formatReference(ref: Reference): string {
  let out = repositoryName(ref);
  if (ref.tag) out += `:${ref.tag}`;
  if (ref.digest) out += `@${ref.digest}`;
  return out;
}

/** Docker's short repository name: "busybox", "user/x", "127.0.0.1:5000/x". */
export function familiarName(ref: Reference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return repositoryName(ref);
  if (ref.path.startsWith(OFFICIAL_REPO_PREFIX)) {
    const rest = ref.path.slice(OFFICIAL_REPO_PREFIX.length);
    if (!rest.includes('/')) return rest;
  }
  return ref.path;
}

/** Docker's short form with tag and digest: "busybox:latest", "user/x:tag". */
export function familiarString(ref: Reference): string {
  let out = familiarName(ref);
  if (ref.tag) out += `:${ref.tag}`;
  if (ref.digest) out += `@${ref.digest}`;
  return out;
}

/** The host (and port) to contact; Docker Hub's API lives on a different name. */
export function registryHost(ref: Reference | string): string {
  const domain = typeof ref === 'string' ? ref : ref.domain;
  return domain === DEFAULT_DOMAIN || domain === LEGACY_DEFAULT_DOMAIN ? DOCKER_HUB_REGISTRY_HOST : domain;
}

/** Splits "host:port", "[::1]:5000" into host and port (port may be absent). */
export function splitHostPort(domain: string): { host: string; port?: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(domain);
  if (m) return m[2] ? { host: m[1]!, port: Number(m[2]) } : { host: m[1]! };
  const colon = domain.lastIndexOf(':');
  if (colon !== -1 && /^\d+$/.test(domain.slice(colon + 1))) {
    return { host: domain.slice(0, colon), port: Number(domain.slice(colon + 1)) };
  }
  return { host: domain };
}

/** True for registries Docker trusts over plain HTTP by default: 127.0.0.0/8, localhost, ::1. */
export function isLoopbackRegistry(domain: string): boolean {
  const { host } = splitHostPort(domain);
  const lower = host.toLowerCase();
  if (lower === 'localhost' || lower === '::1') return true;
  const octets = lower.split('.');
  return octets.length === 4 && octets[0] === '127' && octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255);
}

/** A copy of ref pinned to a digest (the tag kept for display). */
export function withDigest(ref: Reference, digest: Digest): Reference {
  return { ...ref, digest };
}
