/**
 * The cgroup v1 driver: one directory per controller hierarchy
 * (/sys/fs/cgroup/memory/<path>, /sys/fs/cgroup/cpu/<path>, ...), values in
 * the v1 file names and units, as runc's fs driver writes them.
 */
import { join } from 'node:path';
import { CgroupError } from '../errors';
import type { LinuxResources, LinuxThrottleDevice } from '../spec/types';
import { type CgroupDriver, CONTROLLERS, F, type Group, int, need, pageSize, readTrim, type Write } from './driver';

export class V1Driver implements CgroupDriver {
  readonly version = 1 as const;
  /** v1 controller name -> the container's directory in that hierarchy */
  constructor(readonly leaves: ReadonlyMap<string, string>) {}

  get dirs(): string[] {
    return [...new Set(this.leaves.values())];
  }

  has(group: Group): boolean {
    const c = CONTROLLERS[group][0];
    return c !== null && this.leaves.has(c);
  }

  prepare(): void {
    /* v1 hierarchies have every file of their controller from the start */
  }

  private dir(group: Group): string {
    return this.leaves.get(CONTROLLERS[group][0]!)!;
  }

  plan(group: Group, res: LinuxResources, update: boolean): Write[] {
    const dir = this.dir(group);
    const out: Write[] = [];
    const w = (file: string, value: string | number, field: string) => out.push({ dir, file, value: String(value), field });
    switch (group) {
      case 'memory': {
        const m = res.memory!;
        const f = `${F}.memory`;
        if (m.checkBeforeUpdate && update && m.limit !== undefined && m.limit > 0) {
          const usage = Number(readTrim(join(dir, 'memory.usage_in_bytes')) ?? 0);
          if (usage > m.limit) throw new CgroupError(`${f}.limit`, `new limit ${m.limit} is below the current usage ${usage} (checkBeforeUpdate)`);
        }
        if (m.swap !== undefined && m.swap !== 0) {
          need(dir, 'memory.memsw.limit_in_bytes', `${f}.swap`, 'a swap limit (swap accounting, swapaccount=1)');
          int(m.swap, `${f}.swap`, -1);
        }
        const limit = m.limit !== undefined ? int(m.limit, `${f}.limit`, -1) : undefined;
        // memsw must stay >= the memory limit at every step: raise it first when it grows (as runc)
        if (limit !== undefined && m.swap) {
          const cur = Number(readTrim(join(dir, 'memory.limit_in_bytes')) ?? 0);
          if (m.swap === -1 || cur < m.swap) {
            w('memory.memsw.limit_in_bytes', m.swap, `${f}.swap`);
            w('memory.limit_in_bytes', limit, `${f}.limit`);
          } else {
            w('memory.limit_in_bytes', limit, `${f}.limit`);
            w('memory.memsw.limit_in_bytes', m.swap, `${f}.swap`);
          }
        } else if (limit !== undefined) {
          w('memory.limit_in_bytes', limit, `${f}.limit`);
        } else if (m.swap) w('memory.memsw.limit_in_bytes', m.swap, `${f}.swap`);
        if (m.reservation !== undefined) w('memory.soft_limit_in_bytes', int(m.reservation, `${f}.reservation`, -1), `${f}.reservation`);
        if (m.kernel !== undefined) w(need(dir, 'memory.kmem.limit_in_bytes', `${f}.kernel`, 'a kernel memory limit'), int(m.kernel, `${f}.kernel`, -1), `${f}.kernel`);
        if (m.kernelTCP !== undefined) w(need(dir, 'memory.kmem.tcp.limit_in_bytes', `${f}.kernelTCP`, 'a kernel TCP memory limit'), int(m.kernelTCP, `${f}.kernelTCP`, -1), `${f}.kernelTCP`);
        if (m.swappiness !== undefined) {
          // -1 (as some configs pass it, Go's uint64 max) means "leave it"
          if (m.swappiness !== -1 && m.swappiness < 2 ** 53) {
            if (int(m.swappiness, `${f}.swappiness`, 0) > 100) throw new CgroupError(`${f}.swappiness`, `must be 0..100, not ${m.swappiness}`);
            w(need(dir, 'memory.swappiness', `${f}.swappiness`, 'swappiness'), m.swappiness, `${f}.swappiness`);
          }
        }
        if (m.disableOOMKiller) w('memory.oom_control', 1, `${f}.disableOOMKiller`);
        if (m.useHierarchy !== undefined) w(need(dir, 'memory.use_hierarchy', `${f}.useHierarchy`, 'useHierarchy'), m.useHierarchy ? 1 : 0, `${f}.useHierarchy`);
        break;
      }
      case 'cpu': {
        const c = res.cpu!;
        const f = `${F}.cpu`;
        if (c.shares !== undefined) w('cpu.shares', int(c.shares, `${f}.shares`, 2), `${f}.shares`);
        if (c.period !== undefined) w(need(dir, 'cpu.cfs_period_us', `${f}.period`, 'a CFS period (CONFIG_CFS_BANDWIDTH)'), int(c.period, `${f}.period`, 1), `${f}.period`);
        if (c.quota !== undefined) w(need(dir, 'cpu.cfs_quota_us', `${f}.quota`, 'a CFS quota (CONFIG_CFS_BANDWIDTH)'), c.quota > 0 ? int(c.quota, `${f}.quota`) : -1, `${f}.quota`);
        if (c.burst !== undefined) w(need(dir, 'cpu.cfs_burst_us', `${f}.burst`, 'a CFS burst'), int(c.burst, `${f}.burst`, 0), `${f}.burst`);
        if (c.realtimePeriod !== undefined) w(need(dir, 'cpu.rt_period_us', `${f}.realtimePeriod`, 'a realtime period (CONFIG_RT_GROUP_SCHED)'), int(c.realtimePeriod, `${f}.realtimePeriod`, 1), `${f}.realtimePeriod`);
        if (c.realtimeRuntime !== undefined) w(need(dir, 'cpu.rt_runtime_us', `${f}.realtimeRuntime`, 'a realtime runtime (CONFIG_RT_GROUP_SCHED)'), int(c.realtimeRuntime, `${f}.realtimeRuntime`, -1), `${f}.realtimeRuntime`);
        if (c.idle !== undefined) w(need(dir, 'cpu.idle', `${f}.idle`, 'cpu.idle'), int(c.idle, `${f}.idle`, 0), `${f}.idle`);
        break;
      }
      case 'cpuset': {
        const c = res.cpu!;
        if (c.cpus) w('cpuset.cpus', c.cpus, `${F}.cpu.cpus`);
        if (c.mems) w('cpuset.mems', c.mems, `${F}.cpu.mems`);
        break;
      }
      case 'pids': {
        const l = int(res.pids!.limit, `${F}.pids.limit`, -1);
        w('pids.max', l < 0 ? 'max' : l, `${F}.pids.limit`);
        break;
      }
      case 'blkio': {
        const b = res.blockIO!;
        const f = `${F}.blockIO`;
        // newer kernels have only the BFQ files
        const weightFile = (leaf: boolean, dev: boolean, field: string) => {
          const base = `${leaf ? 'leaf_weight' : 'weight'}${dev ? '_device' : ''}`;
          for (const file of [`blkio.${base}`, `blkio.bfq.${base}`]) if (readTrim(join(dir, file)) !== undefined) return file;
          return need(dir, `blkio.${base}`, field, `blkio ${base.replace('_', ' ')}`);
        };
        if (b.weight !== undefined) w(weightFile(false, false, `${f}.weight`), int(b.weight, `${f}.weight`, 1), `${f}.weight`);
        if (b.leafWeight !== undefined) w(weightFile(true, false, `${f}.leafWeight`), int(b.leafWeight, `${f}.leafWeight`, 1), `${f}.leafWeight`);
        for (const d of b.weightDevice ?? []) {
          if (d.weight !== undefined) w(weightFile(false, true, `${f}.weightDevice`), `${d.major}:${d.minor} ${int(d.weight, `${f}.weightDevice.weight`, 1)}`, `${f}.weightDevice`);
          if (d.leafWeight !== undefined) w(weightFile(true, true, `${f}.weightDevice`), `${d.major}:${d.minor} ${int(d.leafWeight, `${f}.weightDevice.leafWeight`, 1)}`, `${f}.weightDevice`);
        }
        const throttle = (list: LinuxThrottleDevice[] | undefined, file: string, field: string) => {
          for (const d of list ?? []) w(need(dir, file, `${f}.${field}`, 'blkio throttling'), `${d.major}:${d.minor} ${int(d.rate, `${f}.${field}.rate`, 0)}`, `${f}.${field}`);
        };
        throttle(b.throttleReadBpsDevice, 'blkio.throttle.read_bps_device', 'throttleReadBpsDevice');
        throttle(b.throttleWriteBpsDevice, 'blkio.throttle.write_bps_device', 'throttleWriteBpsDevice');
        throttle(b.throttleReadIOPSDevice, 'blkio.throttle.read_iops_device', 'throttleReadIOPSDevice');
        throttle(b.throttleWriteIOPSDevice, 'blkio.throttle.write_iops_device', 'throttleWriteIOPSDevice');
        break;
      }
      case 'hugetlb':
        for (const h of res.hugepageLimits!) {
          const field = `${F}.hugepageLimits`;
          const file = need(dir, `hugetlb.${pageSize(h.pageSize, field)}.limit_in_bytes`, field, `hugepage size ${h.pageSize}`);
          w(file, int(h.limit, `${field}.limit`, 0), field);
        }
        break;
      case 'net_cls':
        w('net_cls.classid', int(res.network!.classID, `${F}.network.classID`, 0), `${F}.network.classID`);
        break;
      case 'net_prio':
        for (const p of res.network!.priorities!) w('net_prio.ifpriomap', `${p.name} ${int(p.priority, `${F}.network.priorities.priority`, 0)}`, `${F}.network.priorities`);
        break;
      case 'rdma':
        for (const [dev, r] of Object.entries(res.rdma!)) w('rdma.max', rdmaLine(dev, r), `${F}.rdma`);
        break;
      case 'unified':
        throw new CgroupError(`${F}.unified`, 'cgroup v2 keys need a pure cgroup v2 host; this one uses cgroup v1');
    }
    return out;
  }
}

export function rdmaLine(dev: string, r: { hcaHandles?: number; hcaObjects?: number }): string {
  let s = dev;
  if (r.hcaHandles !== undefined) s += ` hca_handle=${int(r.hcaHandles, `${F}.rdma.hcaHandles`, 0)}`;
  if (r.hcaObjects !== undefined) s += ` hca_object=${int(r.hcaObjects, `${F}.rdma.hcaObjects`, 0)}`;
  return s;
}
