/**
 * process.scheduler, process.ioPriority, linux.personality and
 * linux.memoryPolicy on real containers, read back from inside (the shell's
 * own /proc/self/stat, `ionice -p $$`, /proc/$$/personality, /proc/$$/numa_maps);
 * the same for `koci exec`, with process.execCPUAffinity (`taskset -p`); and
 * the fields koci cannot honour (netDevices,
 * intelRdt, idmapped mounts, ...) refused at create with nothing left behind.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Runtime, UnsupportedError } from '../dist/lib/index';
import type { LinuxMemoryPolicy, Spec } from '../lib/spec/types';
import { KOCI, type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason();
if (skip) t.comment(`skipping scheduling tests: ${skip}`);

/** the shell's own scheduling, read with builtins only (no fork): /proc/self/stat fields 19 nice, 40 rt_priority, 41 policy */
const STAT = 'read -r l < /proc/self/stat; set -- $l; echo "policy=${41} rtprio=${40} nice=${19}"';

function runIn(t: Test, koci: Koci, script: string, edit: (s: Spec) => void) {
  const b = makeBundle(t, ['sh', '-c', script], edit);
  const id = uniqueId('sch');
  return { ...koci(['run', '--bundle', b.dir, id]), b, id };
}

/**
 * Real-time policies in a cgroup-v1 cpu hierarchy with RT group scheduling need
 * runtime in the container's cgroup: give it some, from the caller's cpu cgroup.
 * undefined: no RT group scheduling (nothing to give); a string: why RT cannot run here.
 */
function rtResources(): { cpu: { realtimeRuntime: number; realtimePeriod: number } } | undefined | string {
  if (!existsSync('/sys/fs/cgroup/cpu/cpu.rt_runtime_us')) return undefined;
  const own = readFileSync('/proc/self/cgroup', 'utf8').match(/^\d+:[^:]*\bcpu\b[^:]*:(.*)$/m)?.[1] ?? '/';
  const budget = Number(readFileSync(join('/sys/fs/cgroup/cpu', own, 'cpu.rt_runtime_us'), 'utf8'));
  if (!(budget >= 10000)) return `the caller's cpu cgroup ${own} has no real-time runtime to give (cpu.rt_runtime_us ${budget})`;
  return { cpu: { realtimeRuntime: 10000, realtimePeriod: 1000000 } };
}

const rt = skip ? undefined : rtResources();
const rtSkip = skip ?? (typeof rt === 'string' ? rt : undefined);
const numaSkip = skip ?? (existsSync('/proc/self/numa_maps') ? undefined : 'kernel without NUMA (no /proc/self/numa_maps)');

t.test('process.scheduler: SCHED_BATCH and SCHED_IDLE with nice; a negative nice survives the switch to a non-root user', { skip }, async (t) => {
  const koci = kociCli(t);
  const batch = runIn(t, koci, STAT, (s) => (s.process!.scheduler = { policy: 'SCHED_BATCH', nice: 7 }));
  t.equal(batch.status, 0, batch.stderr);
  t.match(batch.stdout, /^policy=3 rtprio=0 nice=7$/m, 'SCHED_BATCH (3), nice 7');
  const idle = runIn(t, koci, STAT, (s) => (s.process!.scheduler = { policy: 'SCHED_IDLE' }));
  t.equal(idle.status, 0, idle.stderr);
  t.match(idle.stdout, /^policy=5 rtprio=0 nice=0$/m, 'SCHED_IDLE (5)');
  // uid 1000 without CAP_SYS_NICE could never lower its nice: it was set while still root
  const neg = runIn(t, koci, STAT, (s) => {
    s.process!.scheduler = { policy: 'SCHED_OTHER', nice: -5 };
    s.process!.user = { uid: 1000, gid: 1000 };
  });
  t.equal(neg.status, 0, neg.stderr);
  t.match(neg.stdout, /^policy=0 rtprio=0 nice=-5$/m, 'SCHED_OTHER, nice -5, as uid 1000');
});

t.test('process.scheduler: SCHED_FIFO and SCHED_RR with a priority, as a non-root user', { skip: rtSkip }, async (t) => {
  const koci = kociCli(t);
  for (const [policy, n] of [['SCHED_FIFO', 1], ['SCHED_RR', 2]] as const) {
    const r = runIn(t, koci, STAT, (s) => {
      s.process!.scheduler = { policy, priority: 10 };
      s.process!.user = { uid: 1000, gid: 1000 };
      if (rt) s.linux!.resources = rt as never;
    });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, new RegExp(`^policy=${n} rtprio=10 nice=0$`, 'm'), `${policy} (${n}) priority 10`);
  }
  if (rt) {
    // the same without real-time runtime in the cgroup: the kernel says EPERM, named with its step
    const b = makeBundle(t, ['true'], (s) => (s.process!.scheduler = { policy: 'SCHED_FIFO', priority: 10 }));
    const id = uniqueId('sch');
    const before = leftovers(koci.root, [b.dir], id);
    const r = koci(['create', '--bundle', b.dir, id]);
    t.equal(r.status, 1);
    t.match(r.stderr, /scheduler: sched_setattr: EPERM/, 'a SyscallError with the step');
    t.same(leftovers(koci.root, [b.dir], id), before, 'nothing left behind');
  }
});

t.test('process.scheduler: SCHED_DEADLINE with runtime/deadline/period; SCHED_FLAG_RESET_ON_FORK reaches the kernel', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, `${STAT}; (${STAT}); true`, (s) => {
    s.process!.scheduler = { policy: 'SCHED_DEADLINE', runtime: 10_000_000, deadline: 100_000_000, period: 100_000_000, flags: ['SCHED_FLAG_RESET_ON_FORK'] };
  });
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines[0], 'policy=6 rtprio=0 nice=0', 'SCHED_DEADLINE (6)');
  // a deadline task cannot fork at all without the flag; with it, the child is back to SCHED_OTHER
  t.equal(lines[1], 'policy=0 rtprio=0 nice=0', 'the forked child was reset to SCHED_OTHER');
});

t.test('process.ioPriority: idle, best-effort and real-time classes', { skip }, async (t) => {
  const koci = kociCli(t);
  const cases = [
    [{ class: 'IOPRIO_CLASS_IDLE', priority: 0 }, /^idle$/m],
    [{ class: 'IOPRIO_CLASS_BE', priority: 6 }, /^best-effort: prio 6$/m],
    [{ class: 'IOPRIO_CLASS_RT', priority: 2 }, /^realtime: prio 2$/m],
  ] as const;
  for (const [io, want] of cases) {
    const r = runIn(t, koci, 'ionice -p $$', (s) => {
      s.process!.ioPriority = io;
      s.process!.user = { uid: 1000, gid: 1000 }; // the RT class needs privilege: set before the switch
    });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, want, io.class);
  }
});

t.test('linux.personality: LINUX32 and LINUX, applied before a seccomp profile that denies personality(2)', { skip }, async (t) => {
  const koci = kociCli(t);
  const script = 'cat /proc/$$/personality; uname -m; linux64 true 2>/dev/null; echo linux64=$?';
  const r = runIn(t, koci, script, (s) => {
    s.linux!.personality = { domain: 'LINUX32' };
    // loaded early (no_new_privs off), before the capabilities drop
    s.process!.noNewPrivileges = false;
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ERRNO' }] };
  });
  t.equal(r.status, 0, r.stderr);
  const [persona, machine] = r.stdout.split('\n');
  t.equal(persona, '00000008', 'PER_LINUX32');
  if (process.arch === 'x64') t.equal(machine, 'i686', 'uname reports a 32-bit machine');
  t.match(r.stdout, /^linux64=[1-9]\d*$/m, 'the profile denies personality(2) to the container');
  const plain = runIn(t, koci, 'cat /proc/$$/personality', (s) => (s.linux!.personality = { domain: 'LINUX' }));
  t.equal(plain.status, 0, plain.stderr);
  t.equal(plain.stdout, '00000000\n', 'PER_LINUX');
});

t.test('linux.memoryPolicy: every mode and flag; a node the host lacks is a typed error', { skip: numaSkip }, async (t) => {
  const koci = kociCli(t);
  // the task policy shows on every mapping without one of its own
  const script = 'grep -m1 " file=/bin/busybox" /proc/$$/numa_maps';
  // [policy, what numa_maps shows, the first kernel that has the mode or flag]
  const cases: Array<[LinuxMemoryPolicy, RegExp, number]> = [
    [{ mode: 'MPOL_DEFAULT' }, / default /, 0],
    [{ mode: 'MPOL_BIND', nodes: '0' }, / bind:0 /, 0],
    [{ mode: 'MPOL_BIND', nodes: '0', flags: ['MPOL_F_RELATIVE_NODES'] }, / bind=relative:0 /, 0],
    [{ mode: 'MPOL_BIND', nodes: '0', flags: ['MPOL_F_NUMA_BALANCING'] }, / bind=balancing:0 /, 5.12],
    [{ mode: 'MPOL_INTERLEAVE', nodes: '0', flags: ['MPOL_F_STATIC_NODES'] }, / interleave=static:0 /, 0],
    [{ mode: 'MPOL_WEIGHTED_INTERLEAVE', nodes: '0' }, / weighted interleave:0 /, 6.09],
    [{ mode: 'MPOL_PREFERRED', nodes: '0' }, / prefer:0 /, 0],
    [{ mode: 'MPOL_PREFERRED_MANY', nodes: '0' }, / prefer \(many\):0 /, 5.15],
    [{ mode: 'MPOL_LOCAL' }, / local /, 0],
  ];
  const [major, minor] = release().split('.').map(Number);
  for (const [policy, want, since] of cases) {
    const name = `${policy.mode} ${policy.flags ?? ''}`;
    if (major + minor / 100 < since) {
      t.comment(`skipping ${name}: kernel ${release()} predates it (${since.toFixed(2)})`);
      continue;
    }
    const r = runIn(t, koci, script, (s) => (s.linux!.memoryPolicy = policy));
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, want, name);
  }
  const nodes = readdirSync('/sys/devices/system/node').filter((n) => /^node\d+$/.test(n)).length;
  const b = makeBundle(t, ['true'], (s) => (s.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: String(nodes + 3) }));
  const id = uniqueId('sch');
  const before = leftovers(koci.root, [b.dir], id);
  const bad = koci(['create', '--bundle', b.dir, id]);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /memoryPolicy: set_mempolicy: EINVAL/, 'the kernel refuses a node it lacks, named with the step');
  t.same(leftovers(koci.root, [b.dir], id), before, 'nothing left behind');
});

t.test('exec: --process scheduler and ioPriority apply; the container personality and memory policy too', { skip: numaSkip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '1000'], (s) => {
    s.process!.scheduler = { policy: 'SCHED_IDLE' };
    s.linux!.personality = { domain: 'LINUX32' };
    s.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: '0' };
  });
  const id = uniqueId('sch');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0);
  t.equal(koci(['start', id]).status, 0);
  t.equal(stateOf(koci, id).status, 'running');
  const dir = mkdtempSync(join(tmpdir(), 'koci-sched-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = `${STAT}; ionice -p $$; cat /proc/$$/personality; grep -m1 -o " bind:0 " /proc/$$/numa_maps`;
  const proc = {
    args: ['sh', '-c', script],
    env: ['PATH=/bin'],
    cwd: '/',
    user: { uid: 1000, gid: 1000 },
    scheduler: { policy: 'SCHED_BATCH', nice: 3 },
    ioPriority: { class: 'IOPRIO_CLASS_IDLE', priority: 0 },
  };
  writeFileSync(join(dir, 'process.json'), JSON.stringify(proc));
  const r = koci(['exec', '--process', join(dir, 'process.json'), id]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'policy=3 rtprio=0 nice=3\nidle\n00000008\n bind:0 \n', 'SCHED_BATCH nice 3, idle I/O, PER_LINUX32, bound to node 0');
  // without --process, exec runs the container's process with new args: its scheduler comes along (as runc)
  const inherit = koci(['exec', id, 'sh', '-c', STAT]);
  t.equal(inherit.status, 0, inherit.stderr);
  t.equal(inherit.stdout, 'policy=5 rtprio=0 nice=0\n', "the container process's SCHED_IDLE");
  // a policy Linux never implemented is refused before anything runs
  writeFileSync(join(dir, 'iso.json'), JSON.stringify({ ...proc, scheduler: { policy: 'SCHED_ISO' } }));
  const iso = koci(['exec', '--process', join(dir, 'iso.json'), id]);
  t.equal(iso.status, 1);
  t.match(iso.stderr, /process\.scheduler\.policy: "SCHED_ISO" is not supported/);
  t.same(JSON.parse(koci(['ps', '--format', 'json', id]).stdout).length, 1, 'only the init is left in the container');
});

/** two CPUs this test process may use, for execCPUAffinity */
function twoCpus(): [number, number] | undefined {
  const list = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)$/m)?.[1] ?? '';
  const cpus = list.split(',').flatMap((r) => {
    const [a, b = a] = r.split('-').map(Number);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
  return cpus.length >= 2 ? [cpus[0], cpus[1]] : undefined;
}
const cpus = skip ? undefined : twoCpus();

t.test('exec: process.execCPUAffinity final (after the cgroup join) applies; the init ignores it', { skip: skip ?? (cpus ? undefined : 'needs two CPUs') }, async (t) => {
  const koci = kociCli(t);
  const [a, b] = cpus!;
  const bundle = makeBundle(t, ['sleep', '1000'], (s) => (s.process!.execCPUAffinity = { initial: String(a), final: String(b) }));
  const id = uniqueId('sch');
  t.equal(koci(['create', '--bundle', bundle.dir, id]).status, 0);
  t.equal(koci(['start', id]).status, 0);
  const pid = stateOf(koci, id).pid as number;
  const mask = (cpuList: number[]) => cpuList.reduce((m, c) => m | (1n << BigInt(c)), 0n).toString(16);
  const initMask = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Cpus_allowed_list:\s*(\S+)$/m)![1];
  t.not(initMask, String(b), 'not applicable to the init: it keeps every CPU');
  // without --process: the container's process, execCPUAffinity included (as runc)
  const self = koci(['exec', id, 'sh', '-c', 'taskset -p $$']);
  t.equal(self.status, 0, self.stderr);
  t.match(self.stdout, new RegExp(`current affinity mask: ${mask([b])}$`, 'm'), `the exec process runs on CPU ${b} only`);
  const dir = mkdtempSync(join(tmpdir(), 'koci-sched-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'p.json'), JSON.stringify({ args: ['sh', '-c', 'taskset -p $$'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 }, execCPUAffinity: { final: `${a},${b}` } }));
  const both = koci(['exec', '--process', join(dir, 'p.json'), id]);
  t.equal(both.status, 0, both.stderr);
  t.match(both.stdout, new RegExp(`current affinity mask: ${mask([a, b])}$`, 'm'), `--process: CPUs ${a},${b}`);
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ args: ['true'], cwd: '/', user: { uid: 0, gid: 0 }, execCPUAffinity: { final: '5000' } }));
  const bad = koci(['exec', '--process', join(dir, 'bad.json'), id]);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /process\.execCPUAffinity\.final: 5000 is past the 1024/);
});

t.test('fields koci cannot honour are refused at create, naming the field, with nothing left behind', { skip }, async (t) => {
  const koci = kociCli(t);
  const cases: Array<[string, (s: Spec) => void, RegExp]> = [
    ['netDevices', (s) => (s.linux!.netDevices = { eth1: { name: 'ctr0' } }), /linux\.netDevices: .*not implemented/],
    ['intelRdt', (s) => (s.linux!.intelRdt = { closID: 'grp' }), /linux\.intelRdt: .*not implemented/],
    ['intelRdt {}', (s) => (s.linux!.intelRdt = {}), /linux\.intelRdt: /],
    ['mount uidMappings', (s) => s.mounts!.push({ destination: '/mnt', type: 'bind', source: '/tmp', options: ['rbind'], uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] }), /mounts\[\d+\] \(\/mnt\): idmapped mounts/],
    ['mount option idmap', (s) => s.mounts!.push({ destination: '/mnt', type: 'bind', source: '/tmp', options: ['rbind', 'idmap'] }), /idmapped mounts/],
    ['mount option ridmap', (s) => s.mounts!.push({ destination: '/mnt', type: 'bind', source: '/tmp', options: ['ridmap'] }), /idmapped mounts/],
    ['personality flags', (s) => (s.linux!.personality = { domain: 'LINUX', flags: ['ADDR_NO_RANDOMIZE'] }), /linux\.personality\.flags: no personality flags are supported/],
    ['SCHED_ISO', (s) => (s.process!.scheduler = { policy: 'SCHED_ISO' }), /process\.scheduler\.policy: "SCHED_ISO"/],
    ['memoryPolicy nodes past 1023', (s) => (s.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: '0,4096' }), /linux\.memoryPolicy\.nodes: 4096 is past/],
  ];
  for (const [name, edit, want] of cases) {
    const b = makeBundle(t, ['true'], edit);
    const id = uniqueId('uns');
    const before = leftovers(koci.root, [b.dir], id);
    const r = koci(['create', '--bundle', b.dir, id]);
    t.equal(r.status, 1, `${name}: refused`);
    t.match(r.stderr, want, `${name}: ${r.stderr.trim()}`);
    t.same(leftovers(koci.root, [b.dir], id), before, `${name}: nothing left behind`);
  }
  t.same(readdirSync(koci.root), [], 'no state dir in the root');
  // an unknown personality domain is a schema violation
  const b = makeBundle(t, ['true'], (s) => (s.linux!.personality = { domain: 'LINUX16' as never }));
  const r = koci(['create', '--bundle', b.dir, uniqueId('uns')]);
  t.equal(r.status, 1);
  t.match(r.stderr, /\/linux\/personality\/domain/);
});

t.test('the library gets an UnsupportedError with the field; koci features agrees', { skip }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'koci-root-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const b = makeBundle(t, ['true'], (s) => (s.linux!.netDevices = { eth1: {} }));
  const err = await new Runtime({ root }).create(uniqueId('uns'), { bundle: b.dir, stdio: 'ignore' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof UnsupportedError, `UnsupportedError (${String(err)})`);
  t.equal((err as UnsupportedError).field, 'linux.netDevices');
  t.same(readdirSync(root), []);
  const { spawnSync } = await import('node:child_process');
  const f = JSON.parse(spawnSync(KOCI, ['features'], { encoding: 'utf8' }).stdout);
  t.same(f.linux.netDevices, { enabled: false });
  t.same(f.linux.intelRdt, { enabled: false });
  t.same(f.linux.mountExtensions, { idmap: { enabled: false } });
  t.ok(f.linux.memoryPolicy.modes.includes('MPOL_BIND') && f.linux.memoryPolicy.flags.includes('MPOL_F_STATIC_NODES'));
});
