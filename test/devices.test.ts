import { readFileSync } from 'node:fs';
import t from 'tap';
import { kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';
import type { Spec } from '../lib/spec/types';

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
