// Host device nodes a container is given (`--device`, `--privileged`), resolved when it
// starts: a USB dongle's device numbers can change between plug-ins, so the record keeps
// the request and the numbers are read fresh each time.
import { posix as path } from 'node:path';
import { devicesAt, privilegedDevices, type HostDevice } from '../host/devices';

export interface DeviceRequest { pathOnHost: string; pathInContainer: string; permissions: string }
export interface ContainerDevice extends HostDevice { containerPath: string; permissions: string }

/** Docker's rule for the mode part of --device: some of r, w, m, each at most once. */
export function validDeviceMode(mode: string): boolean {
  return mode.length > 0 && mode.length <= 3 && /^[rwm]+$/.test(mode) && new Set(mode).size === mode.length;
}

/**
 * The nodes for the requests (a directory maps every node below it under the container
 * path), plus the host's whole /dev when privileged. A later request for the same
 * container path wins, as a later --device does in Docker.
 */
export async function resolveDevices(requests: DeviceRequest[], privileged: boolean): Promise<ContainerDevice[]> {
  const byTarget = new Map<string, ContainerDevice>();
  if (privileged) for (const d of await privilegedDevices()) byTarget.set(d.path, { ...d, containerPath: d.path, permissions: 'rwm' });
  for (const request of requests) {
    const found = await devicesAt(request.pathOnHost);
    for (const node of found.nodes) {
      const containerPath = found.directory ? path.join(request.pathInContainer, path.relative(found.resolved, node.path)) : request.pathInContainer;
      byTarget.set(containerPath, { ...node, containerPath, permissions: request.permissions });
    }
  }
  return [...byTarget.values()];
}
