/**
 * The cgroup manager: one interface over the v1 driver (a directory per
 * controller hierarchy) and the v2 driver (one directory in the unified
 * tree), detected at run time from the container's cgroup directories. On a
 * hybrid host the v1 hierarchies serve their controllers and the cgroup2
 * mount serves the ones v1 lacks (hugetlb, say). A whole LinuxResources is
 * planned (and refused, when the host cannot honour a field) before the
 * first file is written.
 */
import { CgroupError } from '../errors';
import type { LinuxResources } from '../spec/types';
import { applyWrites, type CgroupDriver, CONTROLLERS, F, type Group, groupsOf, type Write } from './driver';
import { type Hierarchy, hierarchies } from './index';
import { V1Driver } from './v1';
import { V2Driver } from './v2';

export type { CgroupDriver, Group, Write } from './driver';

const GROUP_FIELD: Record<Group, string> = {
  memory: 'memory',
  cpu: 'cpu',
  cpuset: 'cpu.cpus',
  pids: 'pids',
  blkio: 'blockIO',
  hugetlb: 'hugepageLimits',
  net_cls: 'network.classID',
  net_prio: 'network.priorities',
  rdma: 'rdma',
  unified: 'unified',
};

export class CgroupManager {
  constructor(readonly v1?: V1Driver, readonly v2?: V2Driver) {}

  /** the manager for a container's leaf directories (one per hierarchy, as cgroupDirs gives them) */
  static forLeaves(leaves: readonly string[], mounts: Hierarchy[] = hierarchies()): CgroupManager {
    const v1 = new Map<string, string>();
    let v2: V2Driver | undefined;
    const anyV1 = mounts.some((h) => h.key && !h.key.startsWith('name='));
    for (const leaf of leaves) {
      const h = mounts.filter((m) => leaf === m.mountpoint || leaf.startsWith(`${m.mountpoint}/`)).sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
      if (!h) continue;
      if (h.key === '') v2 = new V2Driver(h.mountpoint, leaf, !anyV1);
      else for (const c of h.key.split(',')) if (!c.startsWith('name=')) v1.set(c, leaf);
    }
    return new CgroupManager(v1.size ? new V1Driver(v1) : undefined, v2);
  }

  get version(): 'v1' | 'v2' | 'hybrid' {
    return this.v1 ? (this.v2 ? 'hybrid' : 'v1') : 'v2';
  }

  /** which driver sets a group; a CgroupError when none can */
  driverFor(group: Group): CgroupDriver {
    if (this.v1?.has(group)) return this.v1;
    if (this.v2?.has(group)) return this.v2;
    const field = `${F}.${GROUP_FIELD[group]}`;
    if (group === 'unified') throw new CgroupError(field, `cgroup v2 keys need a pure cgroup v2 host; this one uses cgroup v1${this.v2 ? ' (a v1/v2 hybrid)' : ''}`);
    const [c1, c2] = CONTROLLERS[group];
    const where = [this.v1 || !this.v2 ? `no ${c1} cgroup v1 hierarchy` : '', this.v2 ? (c2 ? `no ${c2} controller in cgroup v2` : `${c1} does not exist in cgroup v2`) : ''].filter(Boolean).join(' and ');
    throw new CgroupError(field, `this host cannot honour it: ${where}`);
  }

  /** the writes for these resources, checked in full; nothing is written */
  plan(res: LinuxResources | undefined, update = false): Write[] {
    const groups = groupsOf(res);
    const byDriver = groups.map((g) => [g, this.driverFor(g)] as const);
    for (const d of [this.v1, this.v2]) if (d) d.prepare(byDriver.filter(([, x]) => x === d).map(([g]) => g));
    return byDriver.flatMap(([g, d]) => d.plan(g, res!, update));
  }

  /** check everything, then write (before the init joins at create; live at update) */
  apply(res: LinuxResources | undefined, update = false): Write[] {
    const writes = this.plan(res, update);
    applyWrites(writes);
    return writes;
  }
}
