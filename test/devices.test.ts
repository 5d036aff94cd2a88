import { chmodSync, existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';
import type { LinuxDevice, Spec } from '../lib/spec/types';

const skip = rootSkipReason() ?? (readFileSync('/proc/self/cgroup', 'utf8').match(/:devices:/) ? undefined : 'no cgroup v1 devices hierarchy (the cgroup v2 device program is tested in device-bpf.test.ts)');
if (skip) t.comment(`skipping device cgroup tests: ${skip}`);

const withMknod = (s: Spec) => {
  s.root!.readonly = false;
  for (const k of ['bounding', 'effective', 'permitted'] as const) s.process!.capabilities![k]!.push('CAP_MKNOD');
};
// /dev/fuse (10:229): harmless to open; "No such device" when allowed but absent, EPERM when the cgroup denies it
const OPEN_FUSE = 'mknod /tmp/fuse c 10 229 2>/dev/null; (exec 3</tmp/fuse) 2>&1; echo done';

t.test('default rules: the usual devices work, others can be made but not opened', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', `head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; ${OPEN_FUSE}`], withMknod);
  const r = koci(['run', '--bundle', b.dir, uniqueId('dev')]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^3\nnull-ok\n/, '/dev/zero and /dev/null usable');
  t.match(r.stdout, /Operation not permitted/, 'a device outside the rules is refused by the cgroup');
});

t.test('the rules are written to the container cgroup in order', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '30']);
  const id = uniqueId('dev');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0);
  const pid = stateOf(koci, id).pid as number;
  const rel = readFileSync(`/proc/${pid}/cgroup`, 'utf8').match(/:devices:(.*)/)![1];
  const list = readFileSync(`/sys/fs/cgroup/devices${rel}/devices.list`, 'utf8').trim().split('\n');
  t.same(list, ['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:2 rwm', 'c 136:* rwm'], 'deny all, then the defaults');
});

t.test('linux.devices and linux.resources.devices allow their devices', { skip }, async (t) => {
  const koci = kociCli(t);
  const viaDevices = makeBundle(t, ['sh', '-c', '(exec 3</dev/fuse) 2>&1; echo done'], (s) => {
    s.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666 }];
  });
  const r1 = koci(['run', '--bundle', viaDevices.dir, uniqueId('dev')]);
  t.equal(r1.status, 0, r1.stderr);
  t.notMatch(r1.stdout, /Operation not permitted/, 'a linux.devices node is allowed');
  const viaRules = makeBundle(t, ['sh', '-c', OPEN_FUSE], (s) => {
    withMknod(s);
    s.linux!.resources!.devices!.push({ allow: true, type: 'c', major: 10, minor: 229, access: 'rw' });
  });
  const r2 = koci(['run', '--bundle', viaRules.dir, uniqueId('dev')]);
  t.equal(r2.status, 0, r2.stderr);
  t.notMatch(r2.stdout, /Operation not permitted/, 'an allow rule in resources.devices opens it');
});

// linux.devices themselves (not the device cgroup): these need root only
const rootSkip = rootSkipReason();

t.test('linux.devices made with mknod: type c, b and p with numbers, fileMode, uid and gid', { skip: rootSkip }, async (t) => {
  const koci = kociCli(t);
  const devices: LinuxDevice[] = [
    { path: '/dev/koci-c', type: 'c', major: 1, minor: 3, fileMode: 0o620, uid: 1000, gid: 1001 },
    { path: '/dev/koci-u', type: 'u', major: 1, minor: 5, fileMode: 0o604, uid: 7, gid: 8 },
    { path: '/dev/koci-dir/sub/koci-b', type: 'b', major: 7, minor: 200, fileMode: 0o640, uid: 12, gid: 34 },
    { path: '/dev/koci-p', type: 'p', fileMode: 0o600, uid: 5, gid: 6 },
  ];
  const b = makeBundle(t, ['sh', '-c', `stat -c '%n|%F|%t|%T|%a|%u|%g' ${devices.map((d) => d.path).join(' ')}; head -c 2 /dev/koci-u | wc -c`], (s) => {
    s.linux!.devices = devices;
  });
  const r = koci(['run', '--bundle', b.dir, uniqueId('dev')]);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.same(lines, [
    '/dev/koci-c|character special file|1|3|620|1000|1001',
    '/dev/koci-u|character special file|1|5|604|7|8',
    '/dev/koci-dir/sub/koci-b|block special file|7|c8|640|12|34',
    '/dev/koci-p|fifo|0|0|600|5|6',
    '2',
  ], 'each node: its type, major:minor (hex), mode, owner; its parent directories made; the "u" node (1:5, readable by others) reads like /dev/zero');
  const mi = await run(koci, t, ['sh', '-c', 'grep -c " /dev/null " /proc/self/mountinfo; true']);
  t.equal(mi.trim(), '0', 'without a user namespace /dev/null is a node, not a bind mount');
});

async function run(koci: ReturnType<typeof kociCli>, t: Parameters<typeof makeBundle>[0], args: string[], edit?: (s: Spec) => void): Promise<string> {
  const b = makeBundle(t, args, edit);
  const r = koci(['run', '--bundle', b.dir, uniqueId('dev')]);
  if (r.status !== 0) throw new Error(`run ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

t.test('linux.devices in a user namespace are bind mounts of the host nodes', { skip: rootSkip }, async (t) => {
  const koci = kociCli(t);
  const fuse = existsSync('/dev/fuse');
  if (!fuse) t.comment('no /dev/fuse on this host: only the default devices are checked');
  const devs = ['/dev/null', '/dev/zero', ...(fuse ? ['/dev/fuse'] : [])];
  const b = makeBundle(t, ['sh', '-c', [
    `for d in ${devs.join(' ')}; do echo "$d $(stat -c '%F|%t|%T' $d)"; done`,
    `echo ==mounts; grep -E ' (${devs.join('|')}) ' /proc/self/mountinfo`,
    'echo ==use; echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c',
  ].join('; ')], (s) => {
    s.linux!.namespaces!.push({ type: 'user' });
    s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    if (fuse) s.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666 }];
  });
  chmodSync(b.dir, 0o755); // mkdtemp's 0700 would keep the user namespace's root (host uid 100000) out
  const r = koci(['run', '--bundle', b.dir, uniqueId('devns')]);
  t.equal(r.status, 0, r.stderr);
  const [nodes, rest] = r.stdout.split('==mounts\n');
  const [mounts, use] = (rest ?? '').split('==use\n');
  t.match(nodes, /^\/dev\/null character special file\|1\|3$/m, '/dev/null is the 1:3 node');
  t.match(nodes, /^\/dev\/zero character special file\|1\|5$/m, '/dev/zero is the 1:5 node');
  if (fuse) t.match(nodes, /^\/dev\/fuse character special file\|a\|e5$/m, 'the requested /dev/fuse is the 10:229 node');
  const points = (mounts ?? '').trim().split('\n').map((l) => l.split(' ')[4]);
  for (const d of devs) t.ok(points.includes(d), `${d} is a mount point (a bind mount of the host's node)`);
  for (const line of (mounts ?? '').trim().split('\n')) {
    const dev = line.split(' ')[4];
    t.ok(line.split(' ')[3].endsWith(dev.slice('/dev'.length)), `${dev}: the mount's root is the host's node (${line.split(' ')[3]})`);
  }
  t.equal(use, 'null-ok\n3\n', '/dev/null takes writes, /dev/zero reads');
});
