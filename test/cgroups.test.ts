/**
 * cgroup limits on this host (a v1/v2 hybrid here; pure v2 elsewhere), the
 * refusals of what it cannot do, `update`, and the v1/v2 drivers against
 * fake trees (the exact files and values written).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { kociCli, makeBundle, rootSkipReason, stateOf, uniqueId, type Koci } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';
import { testRuntime } from './helpers/runtime';
import { childrenOf } from './helpers/wait';
import { PR_SET_CHILD_SUBREAPER } from '../dist/bindings/constants';
import { prctl } from '../dist/bindings/libc';
import { CgroupManager } from '../lib/cgroups/manager';
import { blkioToIoWeight, sharesToWeight } from '../lib/cgroups/v2';
import { mergeResources } from '../lib/container/update';
import { parseBytes, resourcesFromFlags } from '../lib/cli/update';
import { CgroupError } from '../lib/errors';
import type { LinuxResources, Spec } from '../lib/spec/types';

const skip = rootSkipReason();
const V1 = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') || existsSync('/sys/fs/cgroup/memory/tasks');
const PURE_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const realSkip = skip ?? (V1 || PURE_V2 ? undefined : 'no cgroup hierarchies found');

/** the host path of a cgroup file of a live process, v1 controller or v2 */
function cgFile(pid: number, controller: string, file: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  if (PURE_V2) return join('/sys/fs/cgroup', lines.find((l) => l.startsWith('0::'))!.slice(3), file);
  const v1 = { io: 'blkio' }[controller] ?? controller;
  const line = lines.find((l) => l.split(':')[1].split(',').includes(v1));
  if (!line) throw new Error(`no ${v1} hierarchy for pid ${pid}`);
  return join('/sys/fs/cgroup', v1, line.split(':')[2], file);
}
const read = (p: string) => readFileSync(p, 'utf8').trim();

/** create a sleeping container with these resources; its id and init pid */
function created(t: Test, koci: Koci, resources: LinuxResources, edit?: (s: Spec) => void): { id: string; pid: number } {
  const b = makeBundle(t, ['sleep', '60'], (s) => {
    Object.assign(s.linux!.resources!, resources);
    edit?.(s);
  });
  const id = uniqueId('cg');
  const r = koci(['create', '--bundle', b.dir, id]);
  if (r.status !== 0) throw new Error(`create failed: ${r.stderr}`);
  return { id, pid: stateOf(koci, id).pid as number };
}

/** create must fail with this message and leave no container or cgroup behind */
function refused(t: Test, koci: Koci, edit: (s: Spec) => void, message: RegExp, what: string): void {
  const b = makeBundle(t, ['true'], edit);
  const id = uniqueId('cgno');
  // the test's own containers made before may still be there; the refused one must not be
  const before = existsSync(koci.root) ? readdirSync(koci.root) : [];
  const r = koci(['create', '--bundle', b.dir, id]);
  t.not(r.status, 0, `${what}: create fails`);
  t.match(r.stderr, message, `${what}: clear error`);
  t.same(readdirSync(koci.root), before, `${what}: no container left`);
  const leftovers = ['pids', 'memory', 'cpu', 'unified', ''].map((h) => join('/sys/fs/cgroup', h)).filter((d) => existsSync(d) && readdirSync(d).some((n) => n.includes(id)));
  t.same(leftovers, [], `${what}: no cgroup left`);
}

t.test('memory: the limit is in the files and enforced (OOM kill)', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const { pid } = created(t, koci, { memory: { limit: 33554432, reservation: 16777216 } });
  t.equal(read(cgFile(pid, 'memory', PURE_V2 ? 'memory.max' : 'memory.limit_in_bytes')), '33554432');
  t.equal(read(cgFile(pid, 'memory', PURE_V2 ? 'memory.low' : 'memory.soft_limit_in_bytes')), '16777216');
  // The pipeline's status is tail's. The kernel may OOM-kill sh as well before tail's pages are
  // reaped (seen 1 run in 5), so either way the container ends by SIGKILL: 137.
  const b = makeBundle(t, ['sh', '-c', 'head -c 209715200 /dev/zero | tail'], (s) => (s.linux!.resources!.memory = { limit: 33554432 }));
  const r = koci(['run', '--bundle', b.dir, uniqueId('cg')]);
  t.equal(r.status, 137, `tail holding 200 MB under a 32 MB limit is SIGKILLed ${r.stderr}`);
});

t.test('pids: pids.max holds the limit and stops a fork loop', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const { pid } = created(t, koci, { pids: { limit: 12 } });
  t.equal(read(cgFile(pid, 'pids', 'pids.max')), '12');
  const b = makeBundle(t, ['sh', '-c', 'i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done 2>&1; echo forked'], (s) => (s.linux!.resources!.pids = { limit: 8 }));
  const r = koci(['run', '--bundle', b.dir, uniqueId('cg')]);
  t.match(r.stdout + r.stderr, /can't fork|Resource temporarily unavailable/, 'fork fails once the limit is reached');
});

t.test('cpu: shares, quota and period in the files', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const { pid } = created(t, koci, { cpu: { shares: 512, quota: 50000, period: 100000 } });
  if (PURE_V2) {
    t.equal(read(cgFile(pid, 'cpu', 'cpu.max')), '50000 100000');
    t.equal(read(cgFile(pid, 'cpu', 'cpu.weight')), String(sharesToWeight(512)));
  } else {
    t.equal(read(cgFile(pid, 'cpu', 'cpu.shares')), '512');
    t.equal(read(cgFile(pid, 'cpu', 'cpu.cfs_quota_us')), '50000');
    t.equal(read(cgFile(pid, 'cpu', 'cpu.cfs_period_us')), '100000');
  }
});

t.test('cpuset: the container is pinned to its cpus', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'grep Cpus_allowed_list /proc/self/status'], (s) => (s.linux!.resources!.cpu = { cpus: '0', mems: '0' }));
  const r = koci(['run', '--bundle', b.dir, uniqueId('cg')]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /Cpus_allowed_list:\s+0\n/);
});

t.test('blkio: throttle values in their files; weight where the kernel has it', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const disk = readdirSync('/sys/block').find((d) => !/^(loop|zram|ram|sr)/.test(d));
  if (!disk) return void t.comment('no block device: skipped');
  const [major, minor] = read(`/sys/block/${disk}/dev`).split(':').map(Number);
  const { pid } = created(t, koci, { blockIO: { throttleReadBpsDevice: [{ major, minor, rate: 1048576 }], throttleWriteIOPSDevice: [{ major, minor, rate: 300 }] } });
  if (PURE_V2) t.match(read(cgFile(pid, 'io', 'io.max')), new RegExp(`${major}:${minor} rbps=1048576 .*wiops=300`));
  else {
    t.equal(read(cgFile(pid, 'blkio', 'blkio.throttle.read_bps_device')), `${major}:${minor} 1048576`);
    t.equal(read(cgFile(pid, 'blkio', 'blkio.throttle.write_iops_device')), `${major}:${minor} 300`);
  }
  const weightFile = PURE_V2 ? ['io.bfq.weight', 'io.weight'] : ['blkio.weight', 'blkio.bfq.weight'];
  const has = weightFile.some((f) => existsSync(cgFile(pid, 'blkio', f)));
  if (has) {
    const { pid: p2 } = created(t, koci, { blockIO: { weight: 500 } });
    const f = weightFile.find((x) => existsSync(cgFile(p2, 'blkio', x)))!;
    t.match(read(cgFile(p2, 'blkio', f)), f === 'io.weight' ? `default ${blkioToIoWeight(500)}` : '500', `${f}`);
  } else {
    t.comment(`no ${weightFile.join(' or ')} on this kernel: a weight is refused instead`);
    refused(t, koci, (s) => (s.linux!.resources!.blockIO = { weight: 500 }), /blockIO\.weight: blkio weight is not supported by this kernel/, 'blkio weight');
  }
});

t.test('hugetlb through whichever hierarchy has it', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const v1 = existsSync('/sys/fs/cgroup/hugetlb');
  const unified = PURE_V2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
  const v2has = !v1 && (existsSync(join(unified, 'cgroup.controllers')) && read(join(unified, 'cgroup.controllers')).split(' ').includes('hugetlb'));
  if (!v1 && !v2has) {
    refused(t, koci, (s) => (s.linux!.resources!.hugepageLimits = [{ pageSize: '2MB', limit: 4194304 }]), /hugepageLimits: this host cannot honour it/, 'hugetlb');
    return;
  }
  if (!existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB')) return void t.comment('no 2MB huge pages: skipped');
  // koci enables hugetlb in each parent's subtree_control, as runc does; give the host back what it had
  const control = join(unified, 'cgroup.subtree_control');
  const hadHugetlb = !v1 && read(control).split(' ').includes('hugetlb');
  const { id, pid } = created(t, koci, { hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }] });
  t.teardown(() => {
    if (v1 || hadHugetlb) return;
    koci(['delete', '--force', id]); // the container's cgroup must be gone before the controller can be
    try {
      writeFileSync(control, '-hugetlb');
    } catch (e) {
      t.comment(`could not restore ${control}: ${(e as Error).message}`);
    }
  });
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const file = v1 ? cgFile(pid, 'hugetlb', 'hugetlb.2MB.limit_in_bytes') : join(unified, lines.find((l) => l.startsWith('0::'))!.slice(3), 'hugetlb.2MB.max');
  t.equal(read(file), '4194304', file);
});

t.test('update changes live limits (flags and -r FILE)', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const { id, pid } = created(t, koci, { memory: { limit: 67108864 }, pids: { limit: 100 }, cpu: { shares: 1024 } });
  let r = koci(['update', '--memory', '48m', '--pids-limit', '20', '--cpu-quota', '20000', '--cpu-period', '100000', '--cpu-shares', '256', '--cpuset-cpus', '0', id]);
  t.equal(r.status, 0, r.stderr);
  t.equal(read(cgFile(pid, 'pids', 'pids.max')), '20');
  t.equal(read(cgFile(pid, 'cpuset', 'cpuset.cpus')), '0');
  if (PURE_V2) {
    t.equal(read(cgFile(pid, 'memory', 'memory.max')), String(48 * 1048576));
    t.equal(read(cgFile(pid, 'cpu', 'cpu.max')), '20000 100000');
  } else {
    t.equal(read(cgFile(pid, 'memory', 'memory.limit_in_bytes')), String(48 * 1048576));
    t.equal(read(cgFile(pid, 'cpu', 'cpu.cfs_quota_us')), '20000');
    t.equal(read(cgFile(pid, 'cpu', 'cpu.shares')), '256');
  }
  const f = join(mkdtempSync(join(tmpdir(), 'koci-upd-')), 'r.json');
  t.teardown(() => rmSync(join(f, '..'), { recursive: true, force: true }));
  writeFileSync(f, JSON.stringify({ pids: { limit: 33 }, memory: { limit: 41943040 } }));
  r = koci(['update', '-r', f, id]);
  t.equal(r.status, 0, r.stderr);
  t.equal(read(cgFile(pid, 'pids', 'pids.max')), '33', 'pids from the file');
  t.equal(read(cgFile(pid, 'memory', PURE_V2 ? 'memory.max' : 'memory.limit_in_bytes')), '41943040', 'memory from the file');
  // refused as a whole: the valid part is not written either
  writeFileSync(f, JSON.stringify({ pids: { limit: 44 }, network: { classID: 1 } }));
  r = koci(['update', '-r', f, id]);
  t.not(r.status, 0);
  t.match(r.stderr, /network\.classID/);
  t.equal(read(cgFile(pid, 'pids', 'pids.max')), '33', 'nothing written on refusal');
  t.equal(koci(['update', '--pids-limit', '5', 'no-such-container']).status, 1, 'unknown container');
  t.equal(koci(['update', id]).status, 1, 'nothing to change is a usage error');
  t.equal(koci(['kill', id, 'KILL']).status, 0);
});

t.test('refusals: what this host cannot honour, nothing left behind', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  if (!existsSync('/sys/fs/cgroup/net_cls') && !existsSync('/sys/fs/cgroup/net_cls,net_prio')) {
    refused(t, koci, (s) => (s.linux!.resources!.network = { classID: 1048577 }), /network\.classID: this host cannot honour it: no net_cls cgroup v1 hierarchy/, 'net_cls');
    refused(t, koci, (s) => (s.linux!.resources!.network = { priorities: [{ name: 'lo', priority: 7 }] }), /network\.priorities: .*no net_prio/, 'net_prio');
  }
  if (!PURE_V2) refused(t, koci, (s) => (s.linux!.resources!.unified = { 'memory.high': '1000000' }), /unified: cgroup v2 keys need a pure cgroup v2 host/, 'unified on v1');
  if (!existsSync('/sys/fs/cgroup/rdma')) refused(t, koci, (s) => (s.linux!.resources!.rdma = { mlx5_0: { hcaHandles: 3 } }), /rdma: this host cannot honour it/, 'rdma');
  refused(t, koci, (s) => (s.linux!.cgroupsPath = 'system.slice:koci:abc'), /cgroupsPath: .*systemd "slice:prefix:name" form/, 'slice path');
  refused(t, koci, (s) => (s.linux!.resources!.memory = { limit: 33554432, swappiness: 400 }), /swappiness: must be 0\.\.100/, 'bad swappiness');
  refused(t, koci, (s) => (s.linux!.resources!.pids = { limit: 1.5 }), /pids\/limit must be integer/, 'non-integer limit (the schema)');
});

t.test('relative and absolute cgroupsPath', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const rel = `koci-test-${process.pid}-${Date.now().toString(36)}/inner`;
  const a = created(t, koci, { pids: { limit: 77 } }, (s) => (s.linux!.cgroupsPath = rel));
  t.match(readFileSync(`/proc/${a.pid}/cgroup`, 'utf8'), new RegExp(`:pids:.*/${rel}\n`), 'relative: under the caller');
  t.equal(read(cgFile(a.pid, 'pids', 'pids.max')), '77');
  const abs = `/koci-test-abs-${process.pid}-${Date.now().toString(36)}`;
  const b = created(t, koci, { pids: { limit: 78 } }, (s) => (s.linux!.cgroupsPath = abs));
  t.match(readFileSync(`/proc/${b.pid}/cgroup`, 'utf8'), new RegExp(`:pids:${abs}\n`), 'absolute: as given');
  t.equal(read(cgFile(b.pid, 'pids', 'pids.max')), '78');
  t.equal(koci(['delete', '--force', a.id]).status, 0);
  t.equal(koci(['delete', '--force', b.id]).status, 0);
  t.notOk(existsSync(join('/sys/fs/cgroup/pids', abs)), 'removed at delete');
  t.notOk(existsSync(join('/sys/fs/cgroup/pids', rel.split('/')[0])), 'relative parents removed at delete');
});

t.test('the init is in every cgroup of its container, however it got there, and its cgroup namespace starts there', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  // stage 1 joins the v1 hierarchies itself; the init is born in cgroup2 (clone3), or the runtime adds it
  // while it mounts: without clone3, with pids.max 1 (stage 1 may not join), and in a user namespace
  const variants: Array<[string, NodeJS.ProcessEnv, ((s: Spec) => void) | undefined]> = [
    ['default', {}, undefined],
    ['without clone3', { KOCI_TEST_NO_CLONE3: '1' }, undefined],
    ['pids.max 1', {}, (s) => (s.linux!.resources!.pids = { limit: 1 })],
    [
      'user namespace',
      {},
      (s) => {
        s.linux!.namespaces!.push({ type: 'user' });
        s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      },
    ],
  ];
  for (const [what, env, edit] of variants) {
    const b = makeBundle(t, ['cat', '/proc/self/cgroup'], edit);
    chmodSync(b.dir, 0o755); // the init of a user namespace is not host root
    const opts = { env: { ...process.env, ...env } };
    const id = uniqueId('cgin');
    const c = koci(['create', '--bundle', b.dir, id], opts);
    if (c.status !== 0) {
      t.fail(`${what}: create: ${c.stderr}`);
      continue;
    }
    const pid = stateOf(koci, id).pid as number;
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
    t.same(lines.filter((l) => !l.endsWith(`/koci-${id}`)), [], `${what}: every hierarchy's cgroup is the container's`);
    t.equal(koci(['delete', '--force', id]).status, 0);
    const r = koci(['run', '--bundle', b.dir, uniqueId('cgin')], opts);
    t.equal(r.status, 0, `${what}: run: ${r.stderr}`);
    const inside = r.stdout.trim().split('\n');
    t.ok(inside.length >= lines.length, `${what}: the container sees its hierarchies`);
    t.same(inside.filter((l) => !l.endsWith(':/')), [], `${what}: its cgroup namespace's root is its own cgroup`);
  }
});

t.test('library: the init a zygote worker forks itself (no stage 1) is in every cgroup of its container', { skip: realSkip }, async (t) => {
  const rt = testRuntime(t);
  const b = makeBundle(t, ['cat', '/proc/self/cgroup']);
  const id = uniqueId('cglib');
  const rec = await rt.create(id, { bundle: b.dir, stdio: 'ignore' });
  const lines = readFileSync(`/proc/${rec.pid}/cgroup`, 'utf8').trim().split('\n');
  t.same(lines.filter((l) => !l.endsWith(`/koci-${id}`)), [], "every hierarchy's cgroup is the container's");
  await rt.delete(id, { force: true });
  const r = await rt.run(uniqueId('cglib'), { bundle: b.dir, capture: true });
  t.equal(r.exitCode, 0);
  const inside = r.stdout!.toString().trim().split('\n');
  t.same(inside.filter((l) => !l.endsWith(':/')), [], "its cgroup namespace's root is its own cgroup");
});

/** this process's children (the zygote, and any orphan of its descendants while we are their subreaper) */
const children = (): number[] => childrenOf(process.pid);

t.test('library: refusals once the init may be forked (it mounts while its cgroups are made) leave nothing behind', { skip: realSkip }, async (t) => {
  const rt = testRuntime(t);
  // orphans of our descendants come to us while this runs: an init the worker failed to end would be our child
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  t.teardown(() => void prctl(PR_SET_CHILD_SUBREAPER, 0));
  const ok = makeBundle(t, ['true']);
  t.equal((await rt.run(uniqueId('cgok'), { bundle: ok.dir, stdio: 'ignore' })).exitCode, 0, 'the zygote is up');
  const cases: Array<[(s: Spec) => void, RegExp, string]> = [[(s) => (s.linux!.resources!.memory = { limit: 33554432, swappiness: 400 }), /swappiness: (must be 0\.\.100|per-cgroup swappiness does not exist)/, 'bad swappiness']];
  if (!PURE_V2) cases.push([(s) => (s.linux!.resources!.unified = { 'memory.high': '1000000' }), /unified: cgroup v2 keys need a pure cgroup v2 host/, 'unified on v1']);
  for (const [edit, message, what] of cases) {
    const b = makeBundle(t, ['true'], edit);
    const before = leftovers(rt.root!, [b.dir]);
    const kids = children();
    await t.rejects(rt.create(uniqueId('cgno'), { bundle: b.dir, stdio: 'ignore' }), { message }, `${what}: refused`);
    t.same(leftovers(rt.root!, [b.dir]), before, `${what}: no state, cgroup, mount or process left`);
    t.same(children(), kids, `${what}: the init was ended and reaped (no orphan came to us)`);
  }
  // the same ID under another state root maps to the same cgroups: refused before any is made or emptied
  const other = testRuntime(t);
  const id = uniqueId('cgno');
  t.equal((await other.create(id, { bundle: ok.dir, stdio: 'ignore' })).status, 'created');
  await t.rejects(rt.create(id, { bundle: ok.dir, stdio: 'ignore' }), { message: /cgroup: .*is in use by pid \d+/ }, 'a cgroup in use: refused');
  t.equal((await other.state(id)).status, 'created', 'the container using it is untouched');
  t.same(await rt.list(), [], 'nothing left by the refused create');
});

t.test('CLI: refusals once the init is forked (it mounts while its cgroups are made) leave nothing behind', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  // orphans of our descendants come to us while this runs: an init the CLI failed to end would be our child
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  t.teardown(() => void prctl(PR_SET_CHILD_SUBREAPER, 0));
  const cases: Array<[(s: Spec) => void, RegExp, string]> = [[(s) => (s.linux!.resources!.memory = { limit: 33554432, swappiness: 400 }), /swappiness: (must be 0\.\.100|per-cgroup swappiness does not exist)/, 'bad swappiness']];
  if (!PURE_V2) cases.push([(s) => (s.linux!.resources!.unified = { 'memory.high': '1000000' }), /unified: cgroup v2 keys need a pure cgroup v2 host/, 'unified on v1']);
  for (const [edit, message, what] of cases) {
    const b = makeBundle(t, ['true'], edit);
    const before = leftovers(koci.root, [b.dir]);
    const kids = children();
    const r = koci(['create', '--bundle', b.dir, uniqueId('cgno')]);
    t.not(r.status, 0, `${what}: create fails`);
    t.match(r.stderr, message, `${what}: clear error`);
    t.same(leftovers(koci.root, [b.dir]), before, `${what}: no state, cgroup, mount or process left`);
    t.same(children(), kids, `${what}: the init was ended and reaped (no orphan came to us)`);
  }
});

// ---- the drivers against fake trees --------------------------------------

const ALL: LinuxResources = {
  memory: { limit: 67108864, reservation: 33554432, swap: 100663296 },
  cpu: { shares: 512, quota: 50000, period: 100000, burst: 1000, cpus: '0-1', mems: '0', idle: 0 },
  pids: { limit: 123 },
  blockIO: {
    weight: 500,
    weightDevice: [{ major: 8, minor: 0, weight: 100 }],
    throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }],
    throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 2097152 }],
    throttleReadIOPSDevice: [{ major: 8, minor: 0, rate: 100 }],
    throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 300 }],
  },
  hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }, { pageSize: '1GB', limit: 0 }],
  rdma: { mlx5_0: { hcaHandles: 3, hcaObjects: 100 } },
  unified: { 'memory.high': '60000000', 'cpu.uclamp.min': '10' },
};

function fakeV2(t: Test): { mount: string; leaf: string } {
  const mount = mkdtempSync(join(tmpdir(), 'koci-fake-cg2-'));
  t.teardown(() => rmSync(mount, { recursive: true, force: true }));
  writeFileSync(join(mount, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
  writeFileSync(join(mount, 'cgroup.subtree_control'), '');
  mkdirSync(join(mount, 'outer'));
  writeFileSync(join(mount, 'outer', 'cgroup.subtree_control'), 'memory pids\n');
  const leaf = join(mount, 'outer', 'ctr');
  mkdirSync(leaf);
  for (const f of ['memory.max', 'memory.low', 'memory.high', 'memory.swap.max', 'cpu.weight', 'cpu.max', 'cpu.max.burst', 'cpu.idle', 'cpu.uclamp.min', 'cpuset.cpus', 'cpuset.mems', 'pids.max', 'io.weight', 'io.max', 'hugetlb.2MB.max', 'hugetlb.1GB.max', 'rdma.max']) writeFileSync(join(leaf, f), '');
  return { mount, leaf };
}

t.test('v2 driver on a fake cgroup2 tree: the exact files and values', async (t) => {
  const { mount, leaf } = fakeV2(t);
  const m = CgroupManager.forLeaves([leaf], [{ mountpoint: mount, key: '' }]);
  t.equal(m.version, 'v2');
  const writes = m.apply(ALL).map((w) => [w.file, w.value]);
  t.same(writes, [
    ['memory.swap.max', String(100663296 - 67108864)],
    ['memory.max', '67108864'],
    ['memory.low', '33554432'],
    ['cpu.weight', String(1 + Math.floor(((512 - 2) * 9999) / 262142))],
    ['cpu.max', '50000 100000'],
    ['cpu.max.burst', '1000'],
    ['cpu.idle', '0'],
    ['cpuset.cpus', '0-1'],
    ['cpuset.mems', '0'],
    ['pids.max', '123'],
    ['io.weight', `default ${1 + Math.floor(((500 - 10) * 9999) / 990)}`],
    ['io.weight', `8:0 ${1 + Math.floor(((100 - 10) * 9999) / 990)}`],
    ['io.max', '8:0 rbps=1048576'],
    ['io.max', '8:0 wbps=2097152'],
    ['io.max', '8:0 riops=100'],
    ['io.max', '8:0 wiops=300'],
    ['hugetlb.2MB.max', '4194304'],
    ['hugetlb.1GB.max', '0'],
    ['rdma.max', 'mlx5_0 hca_handle=3 hca_object=100'],
    ['memory.high', '60000000'],
    ['cpu.uclamp.min', '10'],
  ]);
  t.equal(read(join(leaf, 'memory.max')), '67108864', 'written to the leaf');
  t.equal(read(join(leaf, 'cpu.max')), '50000 100000');
  t.equal(read(join(leaf, 'pids.max')), '123');
  t.equal(read(join(leaf, 'hugetlb.2MB.max')), '4194304');
  t.equal(read(join(leaf, 'memory.high')), '60000000');
  // controllers enabled down the path: the root gets all of them, outer the ones it lacked
  t.same(read(join(mount, 'cgroup.subtree_control')).split(' ').sort(), ['+cpu', '+cpuset', '+hugetlb', '+io', '+memory', '+pids', '+rdma']);
  t.same(read(join(mount, 'outer', 'cgroup.subtree_control')).split(' ').sort(), ['+cpu', '+cpuset', '+hugetlb', '+io', '+rdma']);
  // unlimited values and the v2-only conversions
  const w2 = m.plan({ memory: { limit: -1, swap: -1 }, cpu: { quota: -1, period: 50000 }, pids: { limit: -1 } }).map((w) => [w.file, w.value]);
  t.same(w2, [['memory.swap.max', 'max'], ['memory.max', 'max'], ['cpu.max', 'max 50000'], ['pids.max', 'max']]);
});

t.test('v2 driver refuses what cgroup v2 does not have', async (t) => {
  const { mount, leaf } = fakeV2(t);
  const m = CgroupManager.forLeaves([leaf], [{ mountpoint: mount, key: '' }]);
  const no = (res: LinuxResources, field: RegExp) => {
    try {
      m.plan(res);
      t.fail(`${field.source}: not refused`);
    } catch (e) {
      t.ok(e instanceof CgroupError && field.test(e.message), `${field.source} (${(e as Error).message})`);
    }
  };
  no({ memory: { kernel: 1 } }, /memory\.kernel: a kernel memory limit does not exist in cgroup v2/);
  no({ memory: { kernelTCP: 1 } }, /memory\.kernelTCP/);
  no({ memory: { swappiness: 10 } }, /swappiness/);
  no({ memory: { disableOOMKiller: true } }, /disableOOMKiller/);
  no({ memory: { swap: 1000 } }, /swap: a swap limit needs a memory limit/);
  no({ memory: { limit: 2000, swap: 1000 } }, /swap: memory\+swap \(1000\) must be >= the memory limit/);
  no({ cpu: { realtimeRuntime: 1000 } }, /realtime/);
  no({ blockIO: { leafWeight: 10 } }, /leaf weights/);
  no({ network: { classID: 1 } }, /network\.classID: this host cannot honour it: net_cls does not exist in cgroup v2/);
  no({ unified: { 'cgroup.procs': '1' } }, /koci manages this file/);
  no({ unified: { '../x.y': '1' } }, /not a cgroup v2 file name/);
  no({ unified: { 'misc.max': '1' } }, /no such file/);
  no({ hugepageLimits: [{ pageSize: '64KB', limit: 1 }] }, /hugepage size 64KB is not supported/);
  t.equal(sharesToWeight(2), 1);
  t.equal(sharesToWeight(1024), 39);
  t.equal(sharesToWeight(262144), 10000);
});

t.test('v1 driver on a fake tree: files, values, and the memsw ordering', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'koci-fake-cg1-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const ctrls = ['memory', 'cpu,cpuacct', 'cpuset', 'pids', 'blkio', 'hugetlb', 'net_cls,net_prio', 'rdma'];
  const leaves: string[] = [];
  const files: Record<string, string[]> = {
    memory: ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.soft_limit_in_bytes', 'memory.kmem.limit_in_bytes', 'memory.kmem.tcp.limit_in_bytes', 'memory.swappiness', 'memory.oom_control'],
    'cpu,cpuacct': ['cpu.shares', 'cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpu.rt_runtime_us', 'cpu.rt_period_us'],
    cpuset: ['cpuset.cpus', 'cpuset.mems'],
    pids: ['pids.max'],
    blkio: ['blkio.weight', 'blkio.weight_device', 'blkio.leaf_weight', 'blkio.throttle.read_bps_device', 'blkio.throttle.write_iops_device'],
    hugetlb: ['hugetlb.2MB.limit_in_bytes'],
    'net_cls,net_prio': ['net_cls.classid', 'net_prio.ifpriomap'],
    rdma: ['rdma.max'],
  };
  for (const c of ctrls) {
    const leaf = join(root, c, 'ctr');
    mkdirSync(leaf, { recursive: true });
    for (const f of files[c]) writeFileSync(join(leaf, f), f === 'memory.limit_in_bytes' ? '9223372036854771712' : '');
    leaves.push(leaf);
  }
  const m = CgroupManager.forLeaves(leaves, ctrls.map((c) => ({ mountpoint: join(root, c), key: c })));
  t.equal(m.version, 'v1');
  const res: LinuxResources = {
    memory: { limit: 67108864, reservation: 33554432, swap: 100663296, kernel: 1048576, kernelTCP: 524288, swappiness: 10, disableOOMKiller: true },
    cpu: { shares: 512, quota: 50000, period: 100000, realtimeRuntime: 950000, realtimePeriod: 1000000, cpus: '0', mems: '0' },
    pids: { limit: -1 },
    blockIO: { weight: 500, leafWeight: 300, weightDevice: [{ major: 8, minor: 0, weight: 100 }], throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }], throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 300 }] },
    hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
    network: { classID: 1048577, priorities: [{ name: 'lo', priority: 7 }, { name: 'eth0', priority: 2 }] },
    rdma: { mlx5_0: { hcaHandles: 3 } },
  };
  t.same(m.apply(res).map((w) => [w.file, w.value]), [
    ['memory.limit_in_bytes', '67108864'], // the current limit is higher than memsw: memory first
    ['memory.memsw.limit_in_bytes', '100663296'],
    ['memory.soft_limit_in_bytes', '33554432'],
    ['memory.kmem.limit_in_bytes', '1048576'],
    ['memory.kmem.tcp.limit_in_bytes', '524288'],
    ['memory.swappiness', '10'],
    ['memory.oom_control', '1'],
    ['cpu.shares', '512'],
    ['cpu.cfs_period_us', '100000'],
    ['cpu.cfs_quota_us', '50000'],
    ['cpu.rt_period_us', '1000000'],
    ['cpu.rt_runtime_us', '950000'],
    ['cpuset.cpus', '0'],
    ['cpuset.mems', '0'],
    ['pids.max', 'max'],
    ['blkio.weight', '500'],
    ['blkio.leaf_weight', '300'],
    ['blkio.weight_device', '8:0 100'],
    ['blkio.throttle.read_bps_device', '8:0 1048576'],
    ['blkio.throttle.write_iops_device', '8:0 300'],
    ['hugetlb.2MB.limit_in_bytes', '4194304'],
    ['net_cls.classid', '1048577'],
    ['net_prio.ifpriomap', 'lo 7'],
    ['net_prio.ifpriomap', 'eth0 2'],
    ['rdma.max', 'mlx5_0 hca_handle=3'],
  ]);
  // raising memory above the current memsw: memsw first (the kernel keeps memsw >= memory)
  const up = m.plan({ memory: { limit: 134217728, swap: 268435456 } }).map((w) => w.file);
  t.same(up, ['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes']);
  t.throws(() => m.plan({ unified: { 'memory.high': '1' } }), /cgroup v2 keys need a pure cgroup v2 host/);
  t.throws(() => m.plan({ cpu: { idle: 1 } }), /cpu\.idle: cpu\.idle is not supported by this kernel/);
  t.throws(() => m.plan({ hugepageLimits: [{ pageSize: '1GB', limit: 0 }] }), /hugepage size 1GB is not supported/);
});

t.test('update flags and merging', async (t) => {
  t.equal(parseBytes('32m', 'memory'), 33554432);
  t.equal(parseBytes('1G', 'memory'), 1073741824);
  t.equal(parseBytes('4096', 'memory'), 4096);
  t.equal(parseBytes('-1', 'memory'), -1);
  t.throws(() => parseBytes('lots', 'memory'), /not a size/);
  const r = resourcesFromFlags({ resources: '-', memory: '64m', cpuQuota: '1000', pidsLimit: '9', blkioWeight: '300', cpusetCpus: '1' }, (f) => (f === '-' ? '{"memory":{"reservation":1024},"cpu":{"shares":100}}' : ''));
  t.same(r, { memory: { reservation: 1024, limit: 67108864 }, cpu: { shares: 100, quota: 1000, cpus: '1' }, pids: { limit: 9 }, blockIO: { weight: 300 } }, 'flags override the stdin document');
  t.same(mergeResources({ memory: { limit: 1, swap: 2 }, devices: [{ allow: false }] }, { memory: { limit: 3 }, pids: { limit: 4 } }), { memory: { limit: 3, swap: 2 }, devices: [{ allow: false }], pids: { limit: 4 } });
});

t.test('library: Runtime.update', { skip: realSkip }, async (t) => {
  const { Runtime, CgroupError: DistCgroupError } = await import('../dist/lib/index');
  const root = mkdtempSync(join(tmpdir(), 'koci-lib-upd-'));
  const rt = new Runtime({ root });
  const id = uniqueId('cglib');
  t.teardown(async () => {
    await rt.delete(id, { force: true }).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });
  const b = makeBundle(t, ['sleep', '60'], (s) => (s.linux!.resources!.pids = { limit: 50 }));
  const st = await rt.create(id, { bundle: b.dir, stdio: 'ignore' });
  await rt.update(id, { pids: { limit: 21 }, cpu: { shares: 300 } });
  t.equal(read(cgFile(st.pid!, 'pids', 'pids.max')), '21');
  if (!existsSync('/sys/fs/cgroup/net_cls')) {
    await t.rejects(rt.update(id, { network: { classID: 1 }, pids: { limit: 22 } }), DistCgroupError);
    t.equal(read(cgFile(st.pid!, 'pids', 'pids.max')), '21', 'a refused update writes nothing');
  }
  await t.rejects(rt.update('no-such', { pids: { limit: 1 } }), { code: 'EKOCI_NOT_FOUND' });
});
