// The graph-driver interface: how a container's writable root filesystem is made from
// unpacked image layers. Two strategies: overlay (kernel union mount, nothing copied) and
// copy (a full copy per container, for data roots overlayfs cannot sit on).
import { BerthError } from '../util/errors';
import type { Change } from './changes';

export interface LowerLayer {
  /** An unpacked layer's diff/ directory (absolute path). */
  diffPath: string;
  /** Relative paths this layer deletes from the layers below it. */
  whiteouts: string[];
  /** Relative directories whose lower content this layer hides. */
  opaques: string[];
  /** 'overlay' when diffPath also holds overlayfs's in-tree markers for the two lists. */
  whiteoutFormat: 'overlay' | 'none';
}

export type DriverName = 'overlay' | 'copy';

export interface StorageDriver {
  readonly name: DriverName;
  /** The layer format this driver needs from the layer applier. */
  readonly whiteoutFormat: 'overlay' | 'none';
  /** Creates a container's writable rootfs over image layers (bottom first). Atomic: a crash leaves nothing that looks created. */
  create(id: string, lowers: LowerLayer[]): Promise<void>;
  /** Mounts if needed and returns the rootfs path. Idempotent. */
  mount(id: string): Promise<string>;
  unmount(id: string): Promise<void>;
  /** Unmounts and deletes everything of this container. Idempotent. */
  remove(id: string): Promise<void>;
  exists(id: string): Promise<boolean>;
  /** Bytes in the container's writable layer. */
  diffSize(id: string): Promise<number>;
  /** What the container changed against `lowers` (its image layers, bottom first), for `docker diff`. */
  changes(id: string, lowers: LowerLayer[]): Promise<Change[]>;
  /** Rows for `docker info` DriverStatus, e.g. [['Backing Filesystem','extfs'],['Supports d_type','true']]. */
  status(): Array<[string, string]>;
  /** Removes half-created containers' dirs and stale mounts; called at daemon start. */
  cleanup(knownIds: Set<string>): Promise<void>;
}

// Ids become directory names; 'l' is the overlay driver's link directory.
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function assertValidId(id: string): void {
  if (!ID_PATTERN.test(id) || id === 'l') {
    throw new BerthError('EINVAL', `invalid storage id ${JSON.stringify(id)}`);
  }
}

/**
 * Splits a layer-relative path (as found in whiteout and opaque lists) into components,
 * refusing anything that could point outside the rootfs.
 */
export function relativeComponents(path: string, allowRoot = false): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  // An opaque layer root ('' or '.') is legal: the layer hides everything below it.
  if (allowRoot && parts.length === 0 && !path.startsWith('/')) return [];
  if (path.startsWith('/') || parts.length === 0 || parts.some((p) => p === '..' || p.includes('\0'))) {
    throw new BerthError('EUNSAFE', `layer path ${JSON.stringify(path)} is not a path inside the root filesystem`);
  }
  return parts;
}
