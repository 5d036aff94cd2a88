/**
 * The device cgroup: which device nodes the container may open or create.
 * The rules are linux.resources.devices, then the devices every container
 * needs (as runc appends them: /dev/null, zero, full, random, urandom, tty,
 * ptmx and /dev/pts/*, plus mknod of anything), then one allow rule per
 * linux.devices entry. On cgroup v1 they are written in that order to the
 * devices hierarchy, whose kernel semantics are exactly "apply in order".
 * Without a v1 devices hierarchy (pure cgroup v2) they become an eBPF program
 * on the container's cgroup2 directory (device-program.ts).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SetupError } from '../errors';
import type { LinuxDeviceCgroup, Spec } from '../spec/types';
import { attachDeviceProgram, compileDeviceProgram } from './device-program';
import { type Hierarchy, hierarchies } from './index';

const DEFAULT_ALLOWED: LinuxDeviceCgroup[] = [
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { allow: true, type: 'c', major: 136, access: 'rwm' }, // /dev/pts/*
];

export function deviceRules(config: Spec): LinuxDeviceCgroup[] {
  const own = config.linux?.resources?.devices ?? [];
  const nodes: LinuxDeviceCgroup[] = (config.linux?.devices ?? [])
    .filter((d) => d.type !== 'p')
    .map((d) => ({ allow: true, type: d.type === 'u' ? 'c' : d.type, major: d.major, minor: d.minor, access: 'rwm' }));
  return [...own, ...DEFAULT_ALLOWED, ...nodes];
}

/** one rule as the v1 devices.allow/deny files take it */
export function ruleLine(r: LinuxDeviceCgroup): string {
  const type = r.type ?? 'a';
  if (type === 'a') return 'a';
  return `${type} ${r.major ?? '*'}:${r.minor ?? '*'} ${r.access || 'rwm'}`;
}

/** the leaf of the v1 devices hierarchy among the container's cgroup dirs, if any */
export function devicesLeaf(leaves: readonly string[]): string | undefined {
  return leaves.find((d) => existsSync(join(d, 'devices.allow')));
}

/**
 * Where a container's device rules go: the v1 devices leaf when the host has
 * that hierarchy (hybrid hosts keep it), else its cgroup2 leaf, where a
 * device program works whatever controllers are enabled.
 */
export function deviceTarget(leaves: readonly string[], mounts: Hierarchy[] = hierarchies()): { version: 1 | 2; dir: string } | undefined {
  const v1 = devicesLeaf(leaves);
  if (v1) return { version: 1, dir: v1 };
  const v2 = mounts.filter((m) => m.key === '').map((m) => m.mountpoint);
  const dir = leaves.find((l) => v2.some((m) => l === m || l.startsWith(`${m}/`)));
  return dir ? { version: 2, dir } : undefined;
}

/** create: the rules onto the container's cgroup before the init joins it */
export function applyDeviceRules(leaves: readonly string[], rules: readonly LinuxDeviceCgroup[], mounts: Hierarchy[] = hierarchies()): void {
  const target = deviceTarget(leaves, mounts);
  if (target?.version === 1) applyDeviceRulesV1(target.dir, rules);
  else if (target) attachDeviceProgram(target.dir, compileDeviceProgram(rules));
}

export function applyDeviceRulesV1(dir: string, rules: readonly LinuxDeviceCgroup[]): void {
  for (const r of rules) {
    const file = join(dir, r.allow ? 'devices.allow' : 'devices.deny');
    const line = ruleLine(r);
    try {
      writeFileSync(file, line);
    } catch (e) {
      throw new SetupError('device cgroup', `write ${JSON.stringify(line)} to ${file}: ${(e as NodeJS.ErrnoException).code}`, file);
    }
  }
}
