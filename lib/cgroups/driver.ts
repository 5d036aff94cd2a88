/**
 * What a cgroup driver (v1 or v2) does for linux.resources: turn a resource
 * group into file writes in the container's cgroup directory, refusing with a
 * CgroupError what the host cannot honour. Planning is separate from writing
 * so a whole config is checked before the first file changes.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupError } from '../errors';
import type { LinuxResources } from '../spec/types';

/** the resource groups a driver is asked for, one controller each */
export type Group = 'memory' | 'cpu' | 'cpuset' | 'pids' | 'blkio' | 'hugetlb' | 'net_cls' | 'net_prio' | 'rdma' | 'unified';

export interface Write {
  dir: string;
  file: string;
  value: string;
  /** the config field it comes from, for the error */
  field: string;
}

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** the container's directories (one per hierarchy on v1, one on v2) */
  readonly dirs: readonly string[];
  /** whether this driver can set the group on this host */
  has(group: Group): boolean;
  /** make the group's files appear (v2: enable the controller in the ancestors' subtree_control) */
  prepare(groups: readonly Group[]): void;
  /** the writes for one group, in the order they must happen */
  plan(group: Group, res: LinuxResources, update: boolean): Write[];
}

/** the v1 controller / v2 controller behind each group (null: none on that version) */
export const CONTROLLERS: Record<Group, [string | null, string | null]> = {
  memory: ['memory', 'memory'],
  cpu: ['cpu', 'cpu'],
  cpuset: ['cpuset', 'cpuset'],
  pids: ['pids', 'pids'],
  blkio: ['blkio', 'io'],
  hugetlb: ['hugetlb', 'hugetlb'],
  net_cls: ['net_cls', null],
  net_prio: ['net_prio', null],
  rdma: ['rdma', 'rdma'],
  unified: [null, null],
};

/** the groups a LinuxResources touches (devices are handled apart) */
export function groupsOf(res: LinuxResources | undefined): Group[] {
  if (!res) return [];
  const g: Group[] = [];
  const m = res.memory;
  if (m && Object.values(m).some((v) => v !== undefined && v !== null)) g.push('memory');
  const c = res.cpu;
  if (c && ['shares', 'quota', 'burst', 'period', 'realtimeRuntime', 'realtimePeriod', 'idle'].some((k) => c[k as keyof typeof c] !== undefined)) g.push('cpu');
  if (c && (c.cpus || c.mems)) g.push('cpuset');
  if (res.pids?.limit !== undefined) g.push('pids');
  const b = res.blockIO;
  if (b && Object.values(b).some((v) => v !== undefined && (!Array.isArray(v) || v.length))) g.push('blkio');
  if (res.hugepageLimits?.length) g.push('hugetlb');
  if (res.network?.classID !== undefined) g.push('net_cls');
  if (res.network?.priorities?.length) g.push('net_prio');
  if (res.rdma && Object.keys(res.rdma).length) g.push('rdma');
  if (res.unified && Object.keys(res.unified).length) g.push('unified');
  return g;
}

export const F = 'linux.resources';

export function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** a file the kernel may or may not have: a clear refusal when it is absent */
export function need(dir: string, file: string, field: string, what: string): string {
  if (!existsSync(join(dir, file))) throw new CgroupError(field, `${what} is not supported by this kernel (no ${file} in ${dir})`, join(dir, file));
  return file;
}

export function int(v: unknown, field: string, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new CgroupError(field, `must be an integer${min > -Infinity ? ` >= ${min}` : ''}, not ${JSON.stringify(v)}`);
  return v;
}

/** hugepage sizes as the kernel names them in hugetlb.<size>.* ('2MB', '1GB') */
export function pageSize(s: string, field: string): string {
  const m = /^(\d+)([KMG])B$/.exec(s);
  if (!m) throw new CgroupError(field, `page size must look like 2MB or 1GB, not ${JSON.stringify(s)}`);
  return s;
}

export function applyWrites(writes: readonly Write[]): void {
  for (const w of writes) {
    const path = join(w.dir, w.file);
    try {
      writeFileSync(path, w.value);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new CgroupError(w.field, `writing ${JSON.stringify(w.value)} to ${path} failed: ${code ?? (e as Error).message}`, path);
    }
  }
}
