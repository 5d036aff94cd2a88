/**
 * The cgroup v2 driver: one directory in the unified hierarchy, controllers
 * enabled down the path through cgroup.subtree_control, values converted to
 * the v2 files as runc and crun convert them (shares -> cpu.weight, swap ->
 * memory.swap.max = swap - limit, blkio weight -> io.weight). The mount point
 * is injectable, so the driver can be pointed at a fake tree.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CgroupError } from '../errors';
import type { LinuxResources, LinuxThrottleDevice } from '../spec/types';
import { type CgroupDriver, CONTROLLERS, F, type Group, int, need, pageSize, readTrim, type Write } from './driver';
import { rdmaLine } from './v1';

/** runc/crun: cpu.shares [2, 262144] onto cpu.weight [1, 10000] */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** runc: blkio weight [10, 1000] onto io.weight [1, 10000] */
export function blkioToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/** runc's ConvertMemorySwapToCgroupV2Value: v1 memsw (memory+swap) to v2 memory.swap.max (swap alone) */
export function swapToV2(swap: number, limit: number | undefined, field: string): string {
  if (swap === -1) return 'max';
  if (limit === undefined || limit <= 0) throw new CgroupError(field, 'a swap limit needs a memory limit on cgroup v2');
  if (swap < limit) throw new CgroupError(field, `memory+swap (${swap}) must be >= the memory limit (${limit})`);
  return String(swap - limit);
}

export class V2Driver implements CgroupDriver {
  readonly version = 2 as const;
  /** `mount`: the cgroup2 mount point; `leaf`: the container's directory under it */
  constructor(readonly mount: string, readonly leaf: string, private readonly pureV2: boolean) {}

  get dirs(): string[] {
    return [this.leaf];
  }

  private available(): string[] {
    return (readTrim(join(this.mount, 'cgroup.controllers')) ?? '').split(/\s+/).filter(Boolean);
  }

  has(group: Group): boolean {
    if (group === 'unified') return this.pureV2;
    const c = CONTROLLERS[group][1];
    return c !== null && this.available().includes(c);
  }

  /** enable the groups' controllers in every ancestor's subtree_control, from the mount down */
  prepare(groups: readonly Group[]): void {
    const want = [...new Set(groups.map((g) => CONTROLLERS[g][1]).filter((c): c is string => c !== null))];
    if (!want.length) return;
    const parts = relative(this.mount, this.leaf).split('/').filter(Boolean);
    let dir = this.mount;
    for (const part of parts) {
      const file = join(dir, 'cgroup.subtree_control');
      const on = (readTrim(file) ?? '').split(/\s+/);
      const missing = want.filter((c) => !on.includes(c));
      if (missing.length) {
        try {
          writeFileSync(file, missing.map((c) => `+${c}`).join(' '));
        } catch (e) {
          throw new CgroupError(F, `enabling the ${missing.join(', ')} controller(s) in ${file} failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, file);
        }
      }
      dir = join(dir, part);
    }
  }

  plan(group: Group, res: LinuxResources, update: boolean): Write[] {
    const dir = this.leaf;
    const out: Write[] = [];
    const w = (file: string, value: string | number, field: string) => out.push({ dir, file, value: String(value), field });
    const max = (v: number) => (v < 0 ? 'max' : String(v));
    switch (group) {
      case 'memory': {
        const m = res.memory!;
        const f = `${F}.memory`;
        if (m.kernel !== undefined) throw new CgroupError(`${f}.kernel`, 'a kernel memory limit does not exist in cgroup v2 (kernel memory is part of memory.max)');
        if (m.kernelTCP !== undefined) throw new CgroupError(`${f}.kernelTCP`, 'a kernel TCP memory limit does not exist in cgroup v2');
        if (m.swappiness !== undefined && m.swappiness !== -1 && m.swappiness < 2 ** 53) throw new CgroupError(`${f}.swappiness`, 'per-cgroup swappiness does not exist in cgroup v2');
        if (m.disableOOMKiller) throw new CgroupError(`${f}.disableOOMKiller`, 'disabling the OOM killer is not possible in cgroup v2');
        if (m.useHierarchy === false) throw new CgroupError(`${f}.useHierarchy`, 'cgroup v2 is always hierarchical');
        const limit = m.limit !== undefined ? int(m.limit, `${f}.limit`, -1) : undefined;
        if (m.checkBeforeUpdate && update && limit !== undefined && limit > 0) {
          const usage = Number(readTrim(join(dir, 'memory.current')) ?? 0);
          if (usage > limit) throw new CgroupError(`${f}.limit`, `new limit ${limit} is below the current usage ${usage} (checkBeforeUpdate)`);
        }
        if (m.swap !== undefined && m.swap !== 0) {
          const v = swapToV2(int(m.swap, `${f}.swap`, -1), limit, `${f}.swap`);
          w(need(dir, 'memory.swap.max', `${f}.swap`, 'a swap limit'), v, `${f}.swap`);
        }
        if (limit !== undefined) w('memory.max', max(limit), `${f}.limit`);
        if (m.reservation !== undefined) w('memory.low', max(int(m.reservation, `${f}.reservation`, -1)), `${f}.reservation`);
        break;
      }
      case 'cpu': {
        const c = res.cpu!;
        const f = `${F}.cpu`;
        if (c.realtimeRuntime !== undefined || c.realtimePeriod !== undefined) throw new CgroupError(`${f}.realtimeRuntime`, 'realtime CPU bandwidth does not exist in cgroup v2');
        if (c.shares !== undefined && c.shares !== 0) w('cpu.weight', sharesToWeight(int(c.shares, `${f}.shares`, 2)), `${f}.shares`);
        if ((c.quota !== undefined && c.quota !== 0) || (c.period !== undefined && c.period !== 0)) {
          let v = c.quota !== undefined && c.quota > 0 ? String(int(c.quota, `${f}.quota`)) : 'max';
          if (c.period) v += ` ${int(c.period, `${f}.period`, 1)}`;
          w('cpu.max', v, `${f}.quota`);
        }
        if (c.burst !== undefined) w(need(dir, 'cpu.max.burst', `${f}.burst`, 'a CPU burst'), int(c.burst, `${f}.burst`, 0), `${f}.burst`);
        if (c.idle !== undefined) w(need(dir, 'cpu.idle', `${f}.idle`, 'cpu.idle'), int(c.idle, `${f}.idle`, 0), `${f}.idle`);
        break;
      }
      case 'cpuset': {
        const c = res.cpu!;
        if (c.cpus) w('cpuset.cpus', c.cpus, `${F}.cpu.cpus`);
        if (c.mems) w('cpuset.mems', c.mems, `${F}.cpu.mems`);
        break;
      }
      case 'pids':
        w('pids.max', max(int(res.pids!.limit, `${F}.pids.limit`, -1)), `${F}.pids.limit`);
        break;
      case 'blkio': {
        const b = res.blockIO!;
        const f = `${F}.blockIO`;
        if (b.leafWeight !== undefined || b.weightDevice?.some((d) => d.leafWeight !== undefined)) throw new CgroupError(`${f}.leafWeight`, 'leaf weights do not exist in cgroup v2');
        const bfq = existsSync(join(dir, 'io.bfq.weight'));
        if (b.weight !== undefined) {
          const v = int(b.weight, `${f}.weight`, 1);
          if (bfq) w('io.bfq.weight', v, `${f}.weight`);
          else w(need(dir, 'io.weight', `${f}.weight`, 'an io weight'), `default ${blkioToIoWeight(v)}`, `${f}.weight`);
        }
        for (const d of b.weightDevice ?? []) {
          if (d.weight === undefined) continue;
          const v = int(d.weight, `${f}.weightDevice.weight`, 1);
          if (bfq) w('io.bfq.weight', `${d.major}:${d.minor} ${v}`, `${f}.weightDevice`);
          else w(need(dir, 'io.weight', `${f}.weightDevice`, 'an io weight'), `${d.major}:${d.minor} ${blkioToIoWeight(v)}`, `${f}.weightDevice`);
        }
        const throttle = (list: LinuxThrottleDevice[] | undefined, key: string, field: string) => {
          for (const d of list ?? []) w('io.max', `${d.major}:${d.minor} ${key}=${int(d.rate, `${f}.${field}.rate`, 0)}`, `${f}.${field}`);
        };
        throttle(b.throttleReadBpsDevice, 'rbps', 'throttleReadBpsDevice');
        throttle(b.throttleWriteBpsDevice, 'wbps', 'throttleWriteBpsDevice');
        throttle(b.throttleReadIOPSDevice, 'riops', 'throttleReadIOPSDevice');
        throttle(b.throttleWriteIOPSDevice, 'wiops', 'throttleWriteIOPSDevice');
        break;
      }
      case 'hugetlb':
        for (const h of res.hugepageLimits!) {
          const field = `${F}.hugepageLimits`;
          w(need(dir, `hugetlb.${pageSize(h.pageSize, field)}.max`, field, `hugepage size ${h.pageSize}`), int(h.limit, `${field}.limit`, 0), field);
        }
        break;
      case 'rdma':
        for (const [dev, r] of Object.entries(res.rdma!)) w('rdma.max', rdmaLine(dev, r), `${F}.rdma`);
        break;
      case 'unified':
        for (const [key, value] of Object.entries(res.unified!)) {
          const field = `${F}.unified.${key}`;
          if (!/^[a-z_]+\.[a-z0-9_.]+$/i.test(key) || key.includes('..')) throw new CgroupError(field, 'not a cgroup v2 file name');
          if (/^cgroup\.(procs|threads|subtree_control|type)$/.test(key)) throw new CgroupError(field, 'koci manages this file itself');
          if (!existsSync(join(dir, key))) {
            const ctl = key.split('.')[0];
            const why = ctl !== 'cgroup' && !this.available().includes(ctl) ? `the ${ctl} controller is not available` : 'no such file';
            throw new CgroupError(field, `${why} in ${dir}`, join(dir, key));
          }
          w(key, value, field);
        }
        break;
      case 'net_cls':
      case 'net_prio':
        throw new CgroupError(`${F}.network`, 'net_cls and net_prio do not exist in cgroup v2');
    }
    return out;
  }

  /** the controllers enabled for the leaf (for tests and diagnostics) */
  enabled(): string[] {
    return (readTrim(join(this.leaf, '..', 'cgroup.subtree_control')) ?? '').split(/\s+/).filter(Boolean);
  }
}

export function isCgroup2Root(dir: string): boolean {
  try {
    readFileSync(join(dir, 'cgroup.controllers'));
    return true;
  } catch {
    return false;
  }
}
