/**
 * Which namespaces a container gets: new ones (unshared) and existing ones
 * joined by path, in the order that works: user first (it decides who owns
 * the rest), mount last among the joined (after it, host paths are gone).
 */
import { writeFileSync } from 'node:fs';
import * as C from '../../bindings/constants';
import { NAMESPACES } from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import type { LinuxIDMapping, LinuxNamespaceType, Spec } from '../spec/types';

export interface NamespacePlan {
  /** namespaces created by unshare (their clone flags OR-ed, user and cgroup excluded: they have their own moments) */
  unshareFlags: number;
  newUser: boolean;
  newCgroup: boolean;
  newTime: boolean;
  /** joined by path, in setns order */
  join: Array<{ type: LinuxNamespaceType; path: string; flag: number }>;
  /** the container has its own (new or joined) namespace of this type */
  has: Set<LinuxNamespaceType>;
}

const JOIN_ORDER: LinuxNamespaceType[] = ['user', 'ipc', 'uts', 'network', 'pid', 'cgroup', 'time', 'mount'];

export function planNamespaces(spec: Spec): NamespacePlan {
  const plan: NamespacePlan = { unshareFlags: 0, newUser: false, newCgroup: false, newTime: false, join: [], has: new Set() };
  for (const ns of spec.linux?.namespaces ?? []) {
    const info = NAMESPACES[ns.type];
    plan.has.add(ns.type);
    if (ns.path) plan.join.push({ type: ns.type, path: ns.path, flag: info.flag });
    else if (ns.type === 'user') plan.newUser = true;
    else if (ns.type === 'cgroup') plan.newCgroup = true;
    else {
      plan.unshareFlags |= info.flag;
      if (ns.type === 'time') plan.newTime = true;
    }
  }
  plan.join.sort((a, b) => JOIN_ORDER.indexOf(a.type) - JOIN_ORDER.indexOf(b.type));
  return plan;
}

function mapText(maps: readonly LinuxIDMapping[]): string {
  return maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
}

/** runtime side: write the new user namespace's maps (as host root, setgroups can stay allowed) */
export function writeIdMaps(pid: number, uidMappings: readonly LinuxIDMapping[] = [], gidMappings: readonly LinuxIDMapping[] = []): void {
  if (uidMappings.length) writeFileSync(`/proc/${pid}/uid_map`, mapText(uidMappings));
  if (gidMappings.length) writeFileSync(`/proc/${pid}/gid_map`, mapText(gidMappings));
}

/**
 * exec: the namespaces of the container's init to join, in setns order (user
 * first). Those the container shares with the host are joined too; the exec
 * stage skips any it is already in (setns into one's own user namespace fails).
 */
export function planExecJoins(spec: Spec, initPid: number): NamespacePlan['join'] {
  return (spec.linux?.namespaces ?? [])
    .map((ns) => ({ type: ns.type, path: `/proc/${initPid}/ns/${NAMESPACES[ns.type].proc}`, flag: NAMESPACES[ns.type].flag }))
    .sort((a, b) => JOIN_ORDER.indexOf(a.type) - JOIN_ORDER.indexOf(b.type));
}

/** /proc/<pid>/ns entry for a namespace type */
export function nsProcName(type: LinuxNamespaceType): string {
  return NAMESPACES[type].proc;
}

/** `/proc/self/timens_offsets` text for linux.timeOffsets */
export function timeOffsetsText(offsets: Record<string, { secs?: number; nanosecs?: number }>): string {
  return Object.entries(offsets)
    .map(([clock, o]) => `${clock} ${o.secs ?? 0} ${o.nanosecs ?? 0}\n`)
    .join('');
}

/**
 * A network namespace made ahead of need: a zygote's spare makes one while it
 * waits for a request, and a container whose init is forked directly joins it
 * instead of creating one in its clone (~0.5 ms of the container's start:
 * a new network namespace is the costly one). Nobody else ever holds it, so
 * it is as new as one made then. Only in a single-threaded process (setns).
 */
let spareNetwork = -1;

export function prepareNetworkNamespace(): void {
  if (spareNetwork >= 0) return;
  const own = libc.open('/proc/self/ns/net', C.O_RDONLY | C.O_CLOEXEC);
  try {
    try {
      libc.unshare(C.CLONE_NEWNET);
    } catch {
      return; // not allowed here: containers make their own
    }
    try {
      spareNetwork = libc.open('/proc/self/ns/net', C.O_RDONLY | C.O_CLOEXEC);
    } finally {
      // back in the host's: hooks the runtime runs must see it (a failure here is fatal to the caller)
      libc.setns(own, C.CLONE_NEWNET, '/proc/self/ns/net');
    }
  } finally {
    libc.close(own);
  }
}

/** the namespace prepareNetworkNamespace made (the caller owns the fd), or -1 */
export function takeNetworkNamespace(): number {
  const fd = spareNetwork;
  spareNetwork = -1;
  return fd;
}

/** close the namespace made ahead, if any, where it will not be used */
export function dropNetworkNamespace(): void {
  const fd = takeNetworkNamespace();
  if (fd >= 0) libc.close(fd);
}
