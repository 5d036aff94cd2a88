/**
 * Namespaces of real containers, seen from the host through /proc/<pid>/ns
 * and from inside with busybox: new ones, shared ones, joined ones (by path),
 * user namespace ID maps, time namespace offsets, PID 1.
 */
import { chmodSync, existsSync, readFileSync, readlinkSync } from 'node:fs';
import t, { type Test } from 'tap';
import type { LinuxNamespaceType, Spec } from '../lib/spec/types';
import { type Bundle, type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping namespace tests: ${skip}`);

/** linux.namespaces type -> /proc/<pid>/ns entry */
const PROC: Record<LinuxNamespaceType, string> = {
  pid: 'pid',
  mount: 'mnt',
  network: 'net',
  ipc: 'ipc',
  uts: 'uts',
  cgroup: 'cgroup',
  user: 'user',
  time: 'time',
};
const ALL = Object.keys(PROC) as LinuxNamespaceType[];

const MAP = [{ containerID: 0, hostID: 100000, size: 65536 }];

const nsLink = (pid: number | string, type: LinuxNamespaceType) => readlinkSync(`/proc/${pid}/ns/${PROC[type]}`);
const kernelHas = (type: LinuxNamespaceType) => existsSync(`/proc/self/ns/${PROC[type]}`);

/** a user namespace's root is host uid 100000: it must be able to reach the rootfs through the bundle dir (mkdtemp makes it 0700) */
function openBundleDir(b: Bundle): void {
  chmodSync(b.dir, 0o755);
}

function useNamespaces(s: Spec, types: Array<{ type: LinuxNamespaceType; path?: string }>): void {
  s.linux!.namespaces = types;
  if (!types.some((n) => n.type === 'uts')) delete s.hostname;
}

function createdPid(t: Test, koci: Koci, b: Bundle, id: string): number | undefined {
  const c = koci(['create', '--bundle', b.dir, id]);
  t.equal(c.status, 0, `create ${id}: ${c.stderr}`);
  if (c.status !== 0) return undefined;
  const pid = stateOf(koci, id).pid;
  t.type(pid, 'number', 'state has the init pid');
  return pid as number;
}

t.test('every listed namespace type is new', { skip }, async (t) => {
  const koci = kociCli(t);
  const types = ALL.filter(kernelHas);
  const missing = ALL.filter((x) => !kernelHas(x));
  if (missing.length) t.comment(`kernel lacks namespace types: ${missing.join(', ')} (not checked)`);
  const b = makeBundle(t, ['sleep', '1000'], (s) => {
    useNamespaces(s, types.map((type) => ({ type })));
    if (types.includes('user')) {
      s.linux!.uidMappings = MAP;
      s.linux!.gidMappings = MAP;
    }
  });
  openBundleDir(b);
  const id = uniqueId('nsnew');
  const pid = createdPid(t, koci, b, id);
  if (pid === undefined) return;
  for (const type of types) {
    const inner = nsLink(pid, type);
    t.match(inner, new RegExp(`^${PROC[type]}:\\[\\d+\\]$`), `${type} link looks like a namespace`);
    t.not(inner, readlinkSync(`/proc/self/ns/${PROC[type]}`), `${type} namespace differs from the host's`);
  }
  t.equal(stateOf(koci, id).status, 'created');
});

t.test('namespace types not listed are shared with the host', { skip }, async (t) => {
  const koci = kociCli(t);
  const listed: LinuxNamespaceType[] = ['pid', 'mount'];
  const b = makeBundle(t, ['sleep', '1000'], (s) => useNamespaces(s, listed.map((type) => ({ type }))));
  const id = uniqueId('nsshared');
  const pid = createdPid(t, koci, b, id);
  if (pid === undefined) return;
  for (const type of ALL.filter(kernelHas)) {
    const same = nsLink(pid, type) === readlinkSync(`/proc/self/ns/${PROC[type]}`);
    if (listed.includes(type)) t.notOk(same, `${type} (listed) is new`);
    else t.ok(same, `${type} (not listed) is the host's`);
  }
});

t.test('namespaces joined by path', { skip }, async (t) => {
  const koci = kociCli(t);
  const hostname = `first-${process.pid}`;
  const first = makeBundle(t, ['sleep', '1000'], (s) => (s.hostname = hostname));
  const id1 = uniqueId('nsfirst');
  const r1 = koci(['run', '--detach', '--bundle', first.dir, id1]);
  t.equal(r1.status, 0, `first container runs: ${r1.stderr}`);
  if (r1.status !== 0) return;
  const pid1 = stateOf(koci, id1).pid as number;
  const joined: LinuxNamespaceType[] = ['network', 'uts', 'ipc'];
  const edit = (s: Spec) => {
    useNamespaces(s, [
      ...joined.map((type) => ({ type, path: `/proc/${pid1}/ns/${PROC[type]}` })),
      { type: 'pid' },
      { type: 'mount' },
    ]);
    delete s.hostname; // keep the first container's
  };

  const second = makeBundle(t, ['sleep', '1000'], edit);
  const id2 = uniqueId('nssecond');
  const pid2 = createdPid(t, koci, second, id2);
  if (pid2 === undefined) return;
  for (const type of joined) {
    t.equal(nsLink(pid2, type), nsLink(pid1, type), `${type}: second container is in the first's namespace`);
    t.not(nsLink(pid2, type), readlinkSync(`/proc/self/ns/${PROC[type]}`), `${type}: and that is not the host's`);
  }
  t.not(nsLink(pid2, 'pid'), nsLink(pid1, 'pid'), 'pid (not joined) is its own');
  t.not(nsLink(pid2, 'mount'), nsLink(pid1, 'mount'), 'mount (not joined) is its own');

  // seen from inside: the hostname of the joined uts namespace, and only the loopback of the joined net namespace
  const third = makeBundle(t, ['sh', '-c', 'hostname; ls /sys/class/net'], edit);
  const r3 = koci(['run', '--bundle', third.dir, uniqueId('nsthird')]);
  t.equal(r3.status, 0, `run in joined namespaces: ${r3.stderr}`);
  const [name, ...ifaces] = r3.stdout.trim().split(/\s+/);
  t.equal(name, hostname, 'hostname comes from the joined uts namespace');
  t.same(ifaces, ['lo'], 'the joined (new) network namespace has only lo');
});

t.test('user namespace with uid and gid mappings', { skip }, async (t) => {
  const koci = kociCli(t);
  const edit = (s: Spec) => {
    s.linux!.namespaces!.push({ type: 'user' });
    s.linux!.uidMappings = MAP;
    s.linux!.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
  };
  const b = makeBundle(t, ['sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; stat -c %u /bin/busybox'], edit);
  openBundleDir(b);
  const r = koci(['run', '--bundle', b.dir, uniqueId('userns')]);
  t.equal(r.status, 0, `run in a user namespace: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  t.same(lines.slice(0, 2), ['0 100000 65536', '0 200000 65536'], 'uid_map and gid_map inside show the mappings');
  t.same(lines.slice(2, 4), ['0', '0'], 'the process is root inside');
  t.equal(lines[4], '65534', 'a file owned by host root (unmapped) shows as the overflow uid inside');

  // from the host: the same process has the mapped IDs
  const b2 = makeBundle(t, ['sleep', '1000'], edit);
  openBundleDir(b2);
  const id = uniqueId('userns');
  const pid = createdPid(t, koci, b2, id);
  if (pid === undefined) return;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  t.match(status, /^Uid:\s+100000\s+100000\s+100000\s+100000$/m, 'host sees uid 100000');
  t.match(status, /^Gid:\s+200000\s+200000\s+200000\s+200000$/m, 'host sees gid 200000');
  t.equal(readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/).join(' '), '0 100000 65536');
});

t.test('time namespace offsets shift /proc/uptime', { skip: skip ?? (kernelHas('time') ? undefined : 'kernel has no time namespaces') }, async (t) => {
  const koci = kociCli(t);
  const shift = 10 * 86400;
  const b = makeBundle(t, ['cat', '/proc/uptime'], (s) => {
    s.linux!.namespaces!.push({ type: 'time' });
    s.linux!.timeOffsets = { boottime: { secs: shift, nanosecs: 0 }, monotonic: { secs: shift, nanosecs: 500 } };
  });
  const before = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const r = koci(['run', '--bundle', b.dir, uniqueId('timens')]);
  const after = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  t.equal(r.status, 0, `run in a time namespace: ${r.stderr}`);
  const inside = Number(r.stdout.split(' ')[0]);
  t.ok(inside >= before + shift && inside <= after + shift, `uptime inside (${inside}) is the host's (${before}..${after}) + ${shift}`);

  // without offsets: a new time namespace, but the clocks are the host's
  const b2 = makeBundle(t, ['cat', '/proc/uptime'], (s) => s.linux!.namespaces!.push({ type: 'time' }));
  const before2 = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const r2 = koci(['run', '--bundle', b2.dir, uniqueId('timens')]);
  const after2 = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  t.equal(r2.status, 0, r2.stderr);
  const inside2 = Number(r2.stdout.split(' ')[0]);
  t.ok(inside2 >= before2 && inside2 <= after2, `uptime without offsets (${inside2}) is the host's (${before2}..${after2})`);
});

t.test('pid namespace: the container process is PID 1', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'echo $$; ls -d /proc/[0-9]* | wc -l']);
  const r = koci(['run', '--bundle', b.dir, uniqueId('pidns')]);
  t.equal(r.status, 0, r.stderr);
  const [pid, count] = r.stdout.trim().split(/\s+/);
  t.equal(pid, '1', '$$ is 1');
  t.ok(Number(count) <= 3, `only the container's processes are in its /proc (${count})`);

  // without a pid namespace the shell is not PID 1
  const b2 = makeBundle(t, ['sh', '-c', 'echo $$'], (s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'pid')));
  const r2 = koci(['run', '--bundle', b2.dir, uniqueId('pidns')]);
  t.equal(r2.status, 0, r2.stderr);
  t.not(r2.stdout.trim(), '1', 'without a pid namespace $$ is a host pid');
  t.ok(Number(r2.stdout.trim()) > 1, `and a number (${r2.stdout.trim()})`);
});

t.test('user + time namespaces with offsets and oomScoreAdj together (the init is non-dumpable)', { skip: skip ?? (existsSync('/proc/self/ns/time') ? undefined : 'no time namespaces in this kernel') }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'cat /proc/self/oom_score_adj; id -u; head -1 /proc/self/timens_offsets; cat /proc/self/uid_map'], (s) => {
    s.linux!.namespaces!.push({ type: 'user' }, { type: 'time' });
    s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.linux!.timeOffsets = { monotonic: { secs: 1000, nanosecs: 0 } };
    s.process!.oomScoreAdj = 123;
  });
  chmodSync(b.dir, 0o755); // mkdtemp's 0700 would keep the mapped root (host uid 100000) out
  const r = koci(['run', '--bundle', b.dir, uniqueId('usertime')]);
  t.equal(r.status, 0, r.stderr);
  const [oom, uid, offsets, map] = r.stdout.split('\n');
  t.equal(oom, '123', 'oomScoreAdj, written by the runtime');
  t.equal(uid, '0', 'root inside');
  t.match(offsets, /^monotonic\s+1000\s+0$/, 'time offsets set despite the user namespace');
  t.match(map, /^\s*0\s+100000\s+65536$/);
});
