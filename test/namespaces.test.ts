/**
 * Namespaces of real containers, seen from the host through /proc/<pid>/ns
 * and from inside with busybox: new ones, shared ones, joined ones (by path:
 * another container's, and every type held by `unshare` processes the tests
 * start and kill), user namespace ID maps, time namespace offsets, PID 1.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import type { LinuxNamespaceType, Spec } from '../lib/spec/types';
import { type Bundle, type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';
import { testRuntime } from './helpers/runtime';
import { childrenOf } from './helpers/wait';

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

/** the network namespaces a process holds open (a zygote spare's, made ahead) */
function heldNetworks(pid: number): string[] {
  const links: string[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return []; // gone meanwhile (a worker that just finished)
  }
  for (const fd of fds) {
    try {
      links.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return links.filter((l) => l.startsWith('net:'));
}

t.test('library: the network namespace a zygote spare made ahead is new, empty and the container\'s alone', { skip }, async (t) => {
  const rt = testRuntime(t);
  const hostNet = readlinkSync('/proc/self/ns/net');
  const b = makeBundle(t, ['sh', '-c', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; ls /proc/self/fd | tr "\\n" " "']);
  const r = await rt.run(uniqueId('nsnet'), { bundle: b.dir, capture: true });
  t.equal(r.exitCode, 0, 'run');
  const [devices, fds] = r.stdout!.toString().trim().split('\n');
  t.equal(devices, 'lo', 'only loopback in it');
  t.equal(fds.trim(), '0 1 2 3', 'no namespace fd passed on (only stdio, and ls\'s own directory)');
  // the spare waiting now holds the namespace the next container gets
  const zygote = childrenOf(process.pid).find((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('zygote-main.js');
    } catch {
      return false; // gone meanwhile
    }
  });
  t.ok(zygote, 'the zygote runs');
  // a spare still making its namespace holds the host's too (to go back to it): done, it holds one, another
  const madeAhead = (p: number) => {
    const held = heldNetworks(p);
    return held.length === 1 && held[0] !== hostNet ? held[0] : undefined;
  };
  const spare = await (async () => {
    for (let i = 0; i < 100; i++, await new Promise((res) => setTimeout(res, 20))) {
      const s = childrenOf(zygote!).find((p) => madeAhead(p));
      if (s) return s;
    }
    return undefined;
  })();
  t.ok(spare, 'its spare holds one network namespace, not the host\'s');
  const ahead = heldNetworks(spare!)[0];
  t.not(ahead, hostNet, "not the host's");
  const s = makeBundle(t, ['sleep', '60']);
  const id = uniqueId('nsnet');
  const created = await rt.create(id, { bundle: s.dir, stdio: 'ignore' });
  t.equal(readlinkSync(`/proc/${created.pid}/ns/net`), ahead, 'the next container is in it');
  const next = await (async () => {
    for (let i = 0; i < 100; i++, await new Promise((res) => setTimeout(res, 20))) {
      const n = childrenOf(zygote!).filter((p) => p !== spare).map(madeAhead).filter(Boolean);
      if (n.length) return n[0];
    }
    return undefined;
  })();
  t.ok(next && next !== ahead && next !== hostNet, 'the next spare made another one');
  await rt.delete(id, { force: true });
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

/**
 * A holder: `unshare <flags> --kill-child sleep 1000` (util-linux), whose
 * forked child (the sleep) is in the new namespaces. Returns the sleep's PID
 * once it has exec'd. Teardown kills the sleep by its PID and waits until
 * unshare (our child, which reaps the sleep) has exited, killing unshare by
 * its PID only if it lingers. Killing a pid namespace's PID 1 ends the
 * container processes that joined it too.
 */
async function holder(t: Test, flags: string[]): Promise<number> {
  const child = spawn('unshare', [...flags, '--kill-child', 'sleep', '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (e) => {
      stderr += String(e);
      resolve();
    });
  });
  let sleeper: number | undefined;
  t.teardown(async () => {
    if (sleeper !== undefined) {
      try {
        process.kill(sleeper, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    // unshare exits once its sleep is reaped; it is killed itself only if it lingers
    const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  });
  const unsharePid = child.pid!;
  for (let i = 0; i < 500 && child.exitCode === null; i++) {
    try {
      const kids = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      if (kids.length === 1 && readFileSync(`/proc/${kids[0]}/comm`, 'utf8') === 'sleep\n') {
        sleeper = Number(kids[0]);
        return sleeper;
      }
    } catch {
      /* not there yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`holder unshare ${flags.join(' ')} did not start: ${stderr}`);
}

/** a script printing `readlink /proc/self/ns/<type>` for each type, one a line, then running `extra` */
const NS_SCRIPT = (types: LinuxNamespaceType[], extra: string) => `for n in ${types.map((x) => PROC[x]).join(' ')}; do readlink /proc/self/ns/$n; done; ${extra}`;

const hasUnshare = spawnSync('unshare', ['--version'], { stdio: 'ignore' }).status === 0;
const holderSkip = skip ?? (!hasUnshare ? 'no unshare (util-linux)' : !kernelHas('time') ? 'kernel has no time namespaces' : undefined);
const SHIFT = 7 * 86400;

t.test('pid, mount, cgroup and time namespaces joined by path (holder made with unshare)', { skip: holderSkip }, async (t) => {
  const koci = kociCli(t);
  const joined: LinuxNamespaceType[] = ['pid', 'mount', 'cgroup', 'time'];
  // one holder per container: a container's pivot_root moves the root of the mount namespace it joins
  const newHolder = async () => {
    const h = await holder(t, ['--pid', '--mount', '--cgroup', '--time', '--monotonic', String(SHIFT), '--boottime', String(SHIFT)]);
    for (const type of joined) t.not(nsLink(h, type), readlinkSync(`/proc/self/ns/${PROC[type]}`), `${type}: the holder has its own namespace`);
    return h;
  };
  const edit = (h: number) => (s: Spec) =>
    useNamespaces(s, [...joined.map((type) => ({ type, path: `/proc/${h}/ns/${PROC[type]}` })), { type: 'network' }, { type: 'ipc' }, { type: 'uts' }]);

  // from the host: the created container's init is in the holder's namespaces
  let h = await newHolder();
  const b = makeBundle(t, ['sleep', '1000'], edit(h));
  const id = uniqueId('nsholder');
  const pid = createdPid(t, koci, b, id);
  if (pid === undefined) return;
  for (const type of joined) t.equal(nsLink(pid, type), nsLink(h, type), `${type}: the init is in the holder's namespace`);
  for (const type of ['network', 'ipc', 'uts'] as LinuxNamespaceType[]) t.not(nsLink(pid, type), nsLink(h, type), `${type} (new) is not the holder's`);

  // from inside: the same links, the holder's sleep as PID 1, the holder's clock offsets
  h = await newHolder();
  const b2 = makeBundle(t, ['sh', '-c', NS_SCRIPT(joined, 'echo $$; cat /proc/1/comm; cut -d" " -f1 /proc/uptime')], edit(h));
  const before = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const r = koci(['run', '--bundle', b2.dir, uniqueId('nsholder')]);
  const after = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  t.equal(r.status, 0, `run in the holder's namespaces: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  t.same(lines.slice(0, joined.length), joined.map((type) => nsLink(h, type)), 'inside, /proc/self/ns/* are the holder\'s');
  const [self, comm, uptime] = lines.slice(joined.length);
  t.not(self, '1', 'the container process is not PID 1 of the joined pid namespace');
  t.equal(comm, 'sleep', 'PID 1 inside is the holder\'s sleep');
  const inside = Number(uptime);
  t.ok(inside >= before + SHIFT && inside <= after + SHIFT, `uptime inside (${inside}) carries the holder's offset: host ${before}..${after} + ${SHIFT}`);
});

t.test('user namespace (with mappings) and every other namespace joined by path', { skip: holderSkip }, async (t) => {
  const koci = kociCli(t);
  const types = ALL.filter(kernelHas);
  // one holder per container: a container's pivot_root moves the root of the mount namespace it joins
  const newHolder = async () => {
    const h = await holder(t, ['--user', '--pid', '--mount', '--cgroup', '--time', '--monotonic', String(SHIFT), '--boottime', String(SHIFT), '--uts', '--ipc', '--net']);
    // the holder's user namespace gets its mappings from us (host root), as a runtime would
    writeFileSync(`/proc/${h}/uid_map`, '0 100000 65536\n');
    writeFileSync(`/proc/${h}/gid_map`, '0 200000 65536\n');
    for (const type of types) t.not(nsLink(h, type), readlinkSync(`/proc/self/ns/${PROC[type]}`), `${type}: the holder has its own namespace`);
    return h;
  };
  const edit = (h: number) => (s: Spec) => {
    useNamespaces(s, types.map((type) => ({ type, path: `/proc/${h}/ns/${PROC[type]}` })));
    delete s.hostname;
    // the mappings of the joined namespace, as runc users write them
    s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.linux!.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
  };

  let h = await newHolder();
  const b = makeBundle(t, ['sleep', '1000'], edit(h));
  openBundleDir(b);
  const id = uniqueId('nsuserholder');
  const pid = createdPid(t, koci, b, id);
  if (pid === undefined) return;
  for (const type of types) t.equal(nsLink(pid, type), nsLink(h, type), `${type}: the init is in the holder's namespace`);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  t.match(status, /^Uid:\s+100000\s+100000\s+100000\s+100000$/m, 'host sees the init as uid 100000 (root of the joined user namespace)');
  t.match(status, /^Gid:\s+200000\s+200000\s+200000\s+200000$/m, 'and gid 200000');

  h = await newHolder();
  const b2 = makeBundle(t, ['sh', '-c', NS_SCRIPT(types, 'cat /proc/self/uid_map /proc/self/gid_map; id -u; cat /proc/1/comm; cut -d" " -f1 /proc/uptime')], edit(h));
  openBundleDir(b2);
  const before = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const r = koci(['run', '--bundle', b2.dir, uniqueId('nsuserholder')]);
  const after = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  t.equal(r.status, 0, `run in the holder's namespaces: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  t.same(lines.slice(0, types.length), types.map((type) => nsLink(h, type)), 'inside, /proc/self/ns/* are the holder\'s');
  const [uidMap, gidMap, uid, comm, uptime] = lines.slice(types.length);
  t.equal(uidMap, '0 100000 65536', 'uid_map inside is the joined namespace\'s');
  t.equal(gidMap, '0 200000 65536', 'gid_map inside is the joined namespace\'s');
  t.equal(uid, '0', 'root inside');
  t.equal(comm, 'sleep', 'PID 1 inside is the holder\'s sleep');
  const inside = Number(uptime);
  t.ok(inside >= before + SHIFT && inside <= after + SHIFT, `uptime inside (${inside}) carries the holder's offset: host ${before}..${after} + ${SHIFT}`);
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
