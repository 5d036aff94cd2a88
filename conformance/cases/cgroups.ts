/** linux.resources checked in the cgroup filesystem (v1 controllers, or the unified v2 tree when the host is pure v2). */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { CGROUP_V2, cgroupFile, readTrim, type Ctx } from '../harness';
import type { Config } from '../spec';
import type { Case } from './types';

/** create a long-running container with these resources; its init pid */
function created(t: Ctx, resources: Record<string, unknown>, edit?: (c: Config) => void): number | undefined {
  const b = t.bundle((c) => {
    c.process.args = ['sh', '-c', 'exec sleep 60'];
    Object.assign(c.linux.resources, resources);
    edit?.(c);
  });
  const { id, res } = t.create(b);
  if (!t.succeeds(res, 'create succeeds')) return undefined;
  return t.state(id)?.pid as number | undefined;
}

function needController(t: Ctx, name: string): void {
  if (CGROUP_V2) {
    const ctl = readTrim('/sys/fs/cgroup/cgroup.controllers') ?? '';
    if (!ctl.split(' ').includes(name)) t.skip(`no ${name} controller in this host's cgroup v2 root`);
  } else if (!existsSync(`/sys/fs/cgroup/${name}`)) t.skip(`no ${name} v1 hierarchy on this host`);
}

/** the host's main block device major:minor (a disk, not loop/zram) */
function blockDevice(): string | undefined {
  for (const d of readdirSync('/sys/block')) {
    if (/^(loop|zram|ram|sr)/.test(d)) continue;
    const dev = readTrim(`/sys/block/${d}/dev`);
    if (dev) return dev;
  }
  return undefined;
}

export const cgroups: Case[] = [
  {
    name: 'cgroups: memory limit and reservation',
    run(t) {
      needController(t, 'memory');
      const pid = created(t, { memory: { limit: 67108864, reservation: 33554432 } });
      if (!pid) return;
      if (CGROUP_V2) {
        t.equal(readTrim(cgroupFile(pid, 'memory', 'memory.max')), '67108864', 'memory.max');
        t.equal(readTrim(cgroupFile(pid, 'memory', 'memory.low')), '33554432', 'memory.low');
      } else {
        t.equal(readTrim(cgroupFile(pid, 'memory', 'memory.limit_in_bytes')), '67108864', 'memory.limit_in_bytes');
        t.equal(readTrim(cgroupFile(pid, 'memory', 'memory.soft_limit_in_bytes')), '33554432', 'memory.soft_limit_in_bytes');
      }
    },
  },
  {
    // its own case: without swap accounting the host has no file to check, and that is a skip with the reason, not a pass
    name: 'cgroups: memory swap limit',
    run(t) {
      needController(t, 'memory');
      const file = CGROUP_V2 ? 'memory.swap.max' : 'memory.memsw.limit_in_bytes';
      // v1: the hierarchy's root has the file when swap is accounted; v2: the root has no memory.* limits, so a child cgroup with memory.max tells
      const dir = CGROUP_V2 ? readdirSync('/sys/fs/cgroup', { withFileTypes: true }).find((e) => e.isDirectory() && existsSync(`/sys/fs/cgroup/${e.name}/memory.max`)) : undefined;
      const host = CGROUP_V2 ? (dir ? `/sys/fs/cgroup/${dir.name}/${file}` : undefined) : `/sys/fs/cgroup/memory/${file}`;
      if (host && !existsSync(host)) t.skip(`no swap accounting on this host (${host} missing: a kernel without CONFIG_MEMCG_SWAP, or swapaccount=0)`);
      const pid = created(t, { memory: { limit: 67108864, swap: 100663296 } });
      if (!pid) return;
      const sw = cgroupFile(pid, 'memory', file);
      if (!t.ok(sw && existsSync(sw), `${file} exists in the container's cgroup`, sw)) return;
      if (CGROUP_V2) t.equal(readTrim(sw), String(100663296 - 67108864), 'memory.swap.max (swap - limit)');
      else t.equal(readTrim(sw), '100663296', 'memory.memsw.limit_in_bytes (memory + swap)');
      t.equal(readTrim(cgroupFile(pid, 'memory', CGROUP_V2 ? 'memory.max' : 'memory.limit_in_bytes')), '67108864', 'the memory limit alongside it');
    },
  },
  {
    name: 'cgroups: cpu shares, quota and period',
    run(t) {
      needController(t, 'cpu');
      const pid = created(t, { cpu: { shares: 512, quota: 50000, period: 100000 } });
      if (!pid) return;
      if (CGROUP_V2) {
        t.equal(readTrim(cgroupFile(pid, 'cpu', 'cpu.max')), '50000 100000', 'cpu.max');
        t.equal(readTrim(cgroupFile(pid, 'cpu', 'cpu.weight')), String(Math.floor(1 + ((512 - 2) * 9999) / 262142)), 'cpu.weight converted from shares');
      } else {
        t.equal(readTrim(cgroupFile(pid, 'cpu', 'cpu.shares')), '512', 'cpu.shares');
        t.equal(readTrim(cgroupFile(pid, 'cpu', 'cpu.cfs_quota_us')), '50000', 'cpu.cfs_quota_us');
        t.equal(readTrim(cgroupFile(pid, 'cpu', 'cpu.cfs_period_us')), '100000', 'cpu.cfs_period_us');
      }
    },
  },
  {
    name: 'cgroups: cpuset cpus and mems',
    run(t) {
      needController(t, 'cpuset');
      const pid = created(t, { cpu: { cpus: '0', mems: '0' } });
      if (!pid) return;
      t.equal(readTrim(cgroupFile(pid, 'cpuset', CGROUP_V2 ? 'cpuset.cpus' : 'cpuset.cpus')), '0', 'cpuset.cpus');
      t.equal(readTrim(cgroupFile(pid, 'cpuset', 'cpuset.mems')), '0', 'cpuset.mems');
    },
  },
  {
    name: 'cgroups: pids limit',
    run(t) {
      needController(t, 'pids');
      const pid = created(t, { pids: { limit: 123 } });
      if (!pid) return;
      t.equal(readTrim(cgroupFile(pid, 'pids', 'pids.max')), '123', 'pids.max is 123 (the value, not just set)');
    },
  },
  {
    name: 'cgroups: blkio throttling',
    run(t) {
      needController(t, CGROUP_V2 ? 'io' : 'blkio');
      const dev = blockDevice();
      if (!dev) t.skip('no block device on this host');
      const [major, minor] = dev!.split(':').map(Number);
      const pid = created(t, { blockIO: { throttleReadBpsDevice: [{ major, minor, rate: 1048576 }], throttleWriteIOPSDevice: [{ major, minor, rate: 300 }] } });
      if (!pid) return;
      if (CGROUP_V2) {
        t.match(readTrim(cgroupFile(pid, 'io', 'io.max')), new RegExp(`${dev} rbps=1048576 .*wiops=300`), 'io.max');
      } else {
        t.equal(readTrim(cgroupFile(pid, 'blkio', 'blkio.throttle.read_bps_device')), `${dev} 1048576`, 'blkio.throttle.read_bps_device');
        t.equal(readTrim(cgroupFile(pid, 'blkio', 'blkio.throttle.write_iops_device')), `${dev} 300`, 'blkio.throttle.write_iops_device');
      }
    },
  },
  {
    name: 'cgroups: hugetlb limit',
    todo: 5,
    run(t) {
      needController(t, 'hugetlb');
      const pid = created(t, { hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }] });
      if (!pid) return;
      t.equal(readTrim(cgroupFile(pid, 'hugetlb', CGROUP_V2 ? 'hugetlb.2MB.max' : 'hugetlb.2MB.limit_in_bytes')), '4194304', 'hugetlb 2MB limit');
    },
  },
  {
    name: 'cgroups: network classID and priorities',
    todo: 5,
    run(t) {
      if (CGROUP_V2) t.skip('net_cls/net_prio do not exist in cgroup v2');
      needController(t, 'net_cls');
      needController(t, 'net_prio');
      const pid = created(t, { network: { classID: 1048577, priorities: [{ name: 'lo', priority: 7 }] } });
      if (!pid) return;
      t.equal(readTrim(cgroupFile(pid, 'net_cls', 'net_cls.classid')), '1048577', 'net_cls.classid');
      t.match(readTrim(cgroupFile(pid, 'net_prio', 'net_prio.ifpriomap')), /lo 7/, 'net_prio.ifpriomap');
    },
  },
  {
    name: 'cgroups: device rules are enforced',
    run(t) {
      const p = t.probe(
        (c) => {
          c.linux.devices = [
            { path: '/dev/conf-null', type: 'c', major: 1, minor: 3, fileMode: 0o666 },
            { path: '/dev/conf-mem', type: 'c', major: 1, minor: 1, fileMode: 0o666 },
          ];
          c.linux.resources.devices.push({ allow: true, type: 'c', major: 1, minor: 3, access: 'w' });
        },
        'echo x > /dev/conf-null; echo w=$?; head -c 1 /dev/conf-mem > /dev/null 2>&1; echo r=$?',
      );
      if (!p) return;
      const e = p.get('extra');
      t.match(e, /w=0/, 'writing an allowed device succeeds');
      t.match(e, /r=1/, 'reading a device not in the allow list fails');
    },
  },
  {
    name: 'cgroups: relative cgroupsPath places the container under the caller',
    run(t) {
      needController(t, 'pids');
      const rel = `conformance-${process.pid}-${Date.now().toString(36)}`;
      const pid = created(t, { pids: { limit: 77 } }, (c) => (c.linux.cgroupsPath = rel));
      if (!pid) return;
      const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => (CGROUP_V2 ? l.startsWith('0::') : l.split(':')[1] === 'pids'));
      t.match(line, new RegExp(`/${rel}$`), 'the pids cgroup path ends with cgroupsPath');
      t.equal(readTrim(cgroupFile(pid, 'pids', 'pids.max')), '77', 'limits applied in that cgroup');
    },
  },
];
