/**
 * update: change a live container's cgroup limits (runc update). Only the
 * fields given are written; they are checked in full first, then merged into
 * the recorded config so a later update or `events` sees the current limits.
 */
import { CgroupManager } from '../cgroups/manager';
import { CgroupError, IncorrectStatusError } from '../errors';
import type { LinuxResources } from '../spec/types';
import { type StateStore, withLockSync } from '../state/store';

/** resources merged group by group (a group's fields override, arrays replace) */
export function mergeResources(base: LinuxResources | undefined, change: LinuxResources): LinuxResources {
  const out: Record<string, unknown> = { ...(base ?? {}) };
  for (const [k, v] of Object.entries(change)) {
    if (v === undefined) continue;
    const old = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && old && typeof old === 'object' && !Array.isArray(old) ? { ...old, ...v } : v;
  }
  return out as LinuxResources;
}

export function updateContainer(store: StateStore, id: string, resources: LinuxResources): void {
  withLockSync(store, id, () => {
    const rec = store.read(id);
    const status = store.status(rec);
    if (status === 'stopped' || status === 'creating') throw new IncorrectStatusError(id, 'update', status, 'container is not running');
    const { devices, ...rest } = resources;
    if (devices?.length) throw new CgroupError('linux.resources.devices', 'device rules cannot be changed on a live container');
    CgroupManager.forLeaves(rec.cgroupLeaves ?? []).apply(rest, true);
    rec.config.linux ??= {};
    rec.config.linux.resources = mergeResources(rec.config.linux.resources, rest);
    store.write(rec);
  });
}
