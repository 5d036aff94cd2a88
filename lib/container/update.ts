/**
 * update: change a live container's cgroup limits (runc update). Only the
 * fields given are written; they are checked in full first, then merged into
 * the recorded config so a later update or `events` sees the current limits.
 */
import { attachDeviceProgram, compileDeviceProgram } from '../cgroups/device-program';
import { deviceRules, deviceTarget } from '../cgroups/devices';
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
    if (status === 'stopped' || status === 'creating') throw new IncorrectStatusError(id, 'update', status, 'container not running');
    const { devices, ...rest } = resources;
    const merged = mergeResources(rec.config.linux?.resources, devices?.length ? resources : rest);
    // new device rules replace the old ones (defaults and linux.devices stay); compiled, so checked, before anything is written
    let program: { dir: string; insns: Buffer } | undefined;
    if (devices?.length) {
      const target = deviceTarget(rec.cgroupLeaves ?? []);
      if (target?.version !== 2) {
        throw new CgroupError('linux.resources.devices', target ? 'device rules can be changed on a live container only on cgroup v2 (rewriting the v1 device cgroup denies devices in use while it happens)' : 'this container has no cgroup that controls devices');
      }
      program = { dir: target.dir, insns: compileDeviceProgram(deviceRules({ ...rec.config, linux: { ...rec.config.linux, resources: merged } })) };
    }
    CgroupManager.forLeaves(rec.cgroupLeaves ?? []).apply(rest, true);
    if (program) attachDeviceProgram(program.dir, program.insns);
    rec.config.linux ??= {};
    rec.config.linux.resources = merged;
    store.write(rec);
  });
}
