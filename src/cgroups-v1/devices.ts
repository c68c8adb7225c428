// v1 devices controller: whitelist rules written one per write() to devices.allow/deny.
import { writeControl, type CgroupOps } from '../cgroups/ops';
import type { DeviceRule } from '../cgroups/types';

/** The kernel's rule syntax: "c 1:3 rwm", or "a" for every device. */
export function formatDeviceRule(rule: DeviceRule): string {
  if (rule.type === 'a') return 'a';
  return `${rule.type} ${rule.major}:${rule.minor} ${rule.access}`;
}

export async function applyDeviceRules(ops: CgroupOps, dir: string, rules: readonly DeviceRule[]): Promise<void> {
  for (const rule of rules) {
    await writeControl(ops, dir, rule.allow ? 'devices.allow' : 'devices.deny', formatDeviceRule(rule), 'device rules');
  }
}
