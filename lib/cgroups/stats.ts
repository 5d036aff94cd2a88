/**
 * Container statistics read from the cgroup files, shaped like runc's
 * `events` types (libcontainer/../events/types.go) so tools reading runc's
 * `events --stats` read koci's. Each value is taken from whichever of the
 * container's leaves has the file: the v1 names first (cpuacct.usage,
 * memory.usage_in_bytes, blkio.throttle.*), then the cgroup2 ones
 * (cpu.stat, memory.current, io.stat), so pure v2, pure v1 and hybrid hosts
 * all work. A controller the host lacks leaves its numbers at zero.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuUsage {
  /** nanoseconds */
  total: number;
  percpu?: number[];
  percpu_kernel?: number[];
  percpu_user?: number[];
  kernel: number;
  user: number;
}

export interface Throttling {
  periods?: number;
  throttledPeriods?: number;
  /** nanoseconds */
  throttledTime?: number;
}

export interface MemoryEntry {
  /** bytes; 0 when unlimited is not representable (runc reports max uint64, koci Number.MAX_SAFE_INTEGER) */
  limit: number;
  usage?: number;
  max?: number;
  failcnt: number;
}

export interface MemoryStats {
  cache?: number;
  usage: MemoryEntry;
  swap?: MemoryEntry;
  kernel?: MemoryEntry;
  kernelTCP?: MemoryEntry;
  raw?: Record<string, number>;
}

export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

export interface BlkioStats {
  ioServiceBytesRecursive?: BlkioEntry[];
  ioServicedRecursive?: BlkioEntry[];
}

export interface HugetlbStats {
  usage?: number;
  max?: number;
  failcnt: number;
}

export interface Stats {
  cpu: { usage: CpuUsage; throttling: Throttling };
  memory: MemoryStats;
  pids: { current?: number; limit?: number };
  blkio: BlkioStats;
  hugetlb?: Record<string, HugetlbStats>;
}

/** the first leaf's copy of a cgroup file, or undefined */
function find(leaves: readonly string[], file: string): string | undefined {
  for (const d of leaves) {
    try {
      return readFileSync(join(d, file), 'utf8');
    } catch {
      /* not in this hierarchy */
    }
  }
  return undefined;
}

const UNLIMITED = Number.MAX_SAFE_INTEGER;

function num(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (t === 'max') return UNLIMITED;
  const n = Number(t);
  // v1 "unlimited" is a page-aligned LONG_MAX, beyond what a double holds exactly
  return Number.isFinite(n) ? Math.min(n, UNLIMITED) : undefined;
}

/** "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control) */
export function keyed(s: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (s ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

/** v1 blkio "8:0 Read 123" lines (the Total line dropped) */
function blkioV1(s: string | undefined): BlkioEntry[] | undefined {
  if (s === undefined) return undefined;
  const out: BlkioEntry[] = [];
  for (const line of s.split('\n')) {
    const m = /^(\d+):(\d+) (\S+) (\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
  }
  return out;
}

/** v2 io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." as runc maps it */
function ioStatV2(s: string): BlkioStats {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of s.split('\n')) {
    const [dev, ...kv] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const [major, minor] = [Number(m[1]), Number(m[2])];
    for (const pair of kv) {
      const [k, v] = pair.split('=');
      const value = Number(v);
      if (k === 'rbytes') bytes.push({ major, minor, op: 'Read', value });
      else if (k === 'wbytes') bytes.push({ major, minor, op: 'Write', value });
      else if (k === 'rios') ios.push({ major, minor, op: 'Read', value });
      else if (k === 'wios') ios.push({ major, minor, op: 'Write', value });
    }
  }
  return { ioServiceBytesRecursive: bytes, ioServicedRecursive: ios };
}

function cpuStats(leaves: readonly string[]): Stats['cpu'] {
  const usage: CpuUsage = { total: 0, kernel: 0, user: 0 };
  const throttling: Throttling = {};
  const total = num(find(leaves, 'cpuacct.usage'));
  if (total !== undefined) {
    usage.total = total;
    const percpu = find(leaves, 'cpuacct.usage_percpu');
    if (percpu !== undefined) usage.percpu = percpu.trim().split(/\s+/).filter(Boolean).map(Number);
    const pu = find(leaves, 'cpuacct.usage_percpu_user');
    if (pu !== undefined) usage.percpu_user = pu.trim().split(/\s+/).filter(Boolean).map(Number);
    const ps = find(leaves, 'cpuacct.usage_percpu_sys');
    if (ps !== undefined) usage.percpu_kernel = ps.trim().split(/\s+/).filter(Boolean).map(Number);
    // cpuacct.stat is in USER_HZ ticks (100 a second on Linux)
    const st = keyed(find(leaves, 'cpuacct.stat'));
    usage.user = (st.user ?? 0) * 10_000_000;
    usage.kernel = (st.system ?? 0) * 10_000_000;
  }
  const cs = keyed(find(leaves, 'cpu.stat'));
  if (total === undefined && cs.usage_usec !== undefined) {
    usage.total = cs.usage_usec * 1000;
    usage.user = (cs.user_usec ?? 0) * 1000;
    usage.kernel = (cs.system_usec ?? 0) * 1000;
  }
  if (cs.nr_periods !== undefined) throttling.periods = cs.nr_periods;
  if (cs.nr_throttled !== undefined) throttling.throttledPeriods = cs.nr_throttled;
  if (cs.throttled_time !== undefined) throttling.throttledTime = cs.throttled_time;
  else if (cs.throttled_usec !== undefined) throttling.throttledTime = cs.throttled_usec * 1000;
  return { usage, throttling };
}

function memoryStats(leaves: readonly string[]): MemoryStats {
  const v1 = find(leaves, 'memory.usage_in_bytes');
  if (v1 !== undefined) {
    const entry = (prefix: string): MemoryEntry | undefined => {
      const usage = num(find(leaves, `${prefix}.usage_in_bytes`));
      if (usage === undefined) return undefined;
      return {
        usage,
        max: num(find(leaves, `${prefix}.max_usage_in_bytes`)) ?? 0,
        failcnt: num(find(leaves, `${prefix}.failcnt`)) ?? 0,
        limit: num(find(leaves, `${prefix}.limit_in_bytes`)) ?? UNLIMITED,
      };
    };
    const raw = keyed(find(leaves, 'memory.stat'));
    const m: MemoryStats = { usage: entry('memory')!, raw };
    if (raw.cache !== undefined) m.cache = raw.cache;
    const swap = entry('memory.memsw');
    if (swap) m.swap = swap;
    const kernel = entry('memory.kmem');
    if (kernel) m.kernel = kernel;
    const tcp = entry('memory.kmem.tcp');
    if (tcp) m.kernelTCP = tcp;
    return m;
  }
  const current = num(find(leaves, 'memory.current'));
  if (current === undefined) return { usage: { limit: 0, failcnt: 0 } };
  const raw = keyed(find(leaves, 'memory.stat'));
  const events = keyed(find(leaves, 'memory.events'));
  const m: MemoryStats = {
    usage: { usage: current, max: num(find(leaves, 'memory.peak')) ?? 0, limit: num(find(leaves, 'memory.max')) ?? UNLIMITED, failcnt: events.max ?? 0 },
    raw,
  };
  if (raw.file !== undefined) m.cache = raw.file;
  const swap = num(find(leaves, 'memory.swap.current'));
  // as runc: v2 swap usage includes memory (v1's memsw semantics)
  if (swap !== undefined) m.swap = { usage: swap + current, limit: num(find(leaves, 'memory.swap.max')) ?? UNLIMITED, failcnt: 0 };
  return m;
}

function hugetlbStats(leaves: readonly string[]): Record<string, HugetlbStats> | undefined {
  const out: Record<string, HugetlbStats> = {};
  for (const size of ['2MB', '1GB', '64KB', '32MB', '512MB', '16GB']) {
    const v1 = num(find(leaves, `hugetlb.${size}.usage_in_bytes`));
    if (v1 !== undefined) {
      out[size] = { usage: v1, max: num(find(leaves, `hugetlb.${size}.max_usage_in_bytes`)) ?? 0, failcnt: num(find(leaves, `hugetlb.${size}.failcnt`)) ?? 0 };
      continue;
    }
    const v2 = num(find(leaves, `hugetlb.${size}.current`));
    if (v2 !== undefined) out[size] = { usage: v2, failcnt: keyed(find(leaves, `hugetlb.${size}.events`)).max ?? 0 };
  }
  return Object.keys(out).length ? out : undefined;
}

const BLKIO_V1: Array<[string, string]> = [
  ['blkio.io_service_bytes_recursive', 'blkio.io_serviced_recursive'],
  ['blkio.bfq.io_service_bytes_recursive', 'blkio.bfq.io_serviced_recursive'],
  ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_serviced_recursive'],
  ['blkio.throttle.io_service_bytes', 'blkio.throttle.io_serviced'],
];

/** a snapshot of the container's resource usage */
export function readStats(leaves: readonly string[]): Stats {
  const pids: Stats['pids'] = {};
  const current = num(find(leaves, 'pids.current'));
  if (current !== undefined) pids.current = current;
  const limit = num(find(leaves, 'pids.max'));
  // runc reports an unlimited pids.max as 0
  if (limit !== undefined) pids.limit = limit === UNLIMITED ? 0 : limit;
  let blkio: BlkioStats = {};
  // as runc: the CFQ files, then BFQ, then the throttle ones (recursive where the kernel has them)
  const v1 = BLKIO_V1.map(([b, n]) => [find(leaves, b), n] as const).filter(([b]) => b !== undefined);
  const pick = v1.find(([b]) => blkioV1(b)!.length) ?? v1[v1.length - 1];
  if (pick) {
    blkio = { ioServiceBytesRecursive: blkioV1(pick[0]), ioServicedRecursive: blkioV1(find(leaves, pick[1])) };
  } else {
    const io = find(leaves, 'io.stat');
    if (io !== undefined) blkio = ioStatV2(io);
  }
  const s: Stats = { cpu: cpuStats(leaves), memory: memoryStats(leaves), pids, blkio };
  const h = hugetlbStats(leaves);
  if (h) s.hugetlb = h;
  return s;
}

/**
 * The OOM-kill counter: v1 memory.oom_control `oom_kill` (4.13+; older
 * kernels only have under_oom, counted as 1 while it is set), v2
 * memory.events `oom_kill`. undefined when no memory controller is there.
 */
export function oomCount(leaves: readonly string[]): number | undefined {
  const v1 = find(leaves, 'memory.oom_control');
  if (v1 !== undefined) {
    const k = keyed(v1);
    return k.oom_kill ?? k.under_oom ?? 0;
  }
  const v2 = find(leaves, 'memory.events');
  if (v2 !== undefined) return keyed(v2).oom_kill ?? 0;
  return undefined;
}
