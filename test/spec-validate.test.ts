import t from 'tap';
import { join } from 'node:path';
import { distDir } from '../lib/paths';
import { defaultSpec } from '../lib/spec/default';
import { semanticIssues } from '../lib/spec/semantic';
import type { Spec } from '../lib/spec/types';
import { validateConfig, validateFeatures, validateState } from '../lib/spec/validate';

/** a default spec, changed by `edit` */
function spec(edit: (s: Spec) => void = () => {}): Spec {
  const s = defaultSpec();
  edit(s);
  return s;
}

/** the issue at `pointer` with `rule`, failing the test if there is none */
function expectIssue(t: tap.Test, doc: unknown, pointer: string, rule: string) {
  const issues = validateConfig(doc);
  const hit = issues.find((i) => i.pointer === pointer && i.rule === rule);
  t.ok(hit, `expected ${rule} at ${JSON.stringify(pointer)}`, { issues });
  return hit;
}

t.test('precompiled validator loads fast', async (t) => {
  const file = join(distDir, 'validators', 'config.js');
  delete require.cache[require.resolve(file)];
  const start = process.hrtime.bigint();
  const mod = require(file) as Record<string, unknown>;
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.comment(`loading dist/validators/config.js took ${ms.toFixed(2)} ms`);
  t.type(mod.officialConfig, 'function');
  t.type(mod.kociExtensions, 'function');
  t.ok(ms < 200, 'loads in well under 200 ms');
  const s2 = process.hrtime.bigint();
  validateConfig(defaultSpec());
  t.comment(`first validateConfig call (module already cached) took ${(Number(process.hrtime.bigint() - s2) / 1e6).toFixed(2)} ms`);
});

t.test('default specs are valid', async (t) => {
  t.same(validateConfig(defaultSpec()), []);
  t.same(validateConfig(defaultSpec({ rootless: true, uid: 1000, gid: 1000 })), []);
});

t.test('schema errors carry pointer, rule and a useful message', async (t) => {
  const noVersion: Record<string, unknown> = { ...spec() };
  delete noVersion.ociVersion;
  const hit = expectIssue(t, noVersion, '', 'required');
  t.equal(hit?.message, "must have required property 'ociVersion'");

  const badArgs = spec((s) => {
    (s.process as unknown as Record<string, unknown>).args = 'sh -c true';
  });
  t.equal(expectIssue(t, badArgs, '/process/args', 'type')?.message, 'must be array');

  const badNs = spec((s) => {
    (s.linux!.namespaces![0] as { type: string }).type = 'bogus';
  });
  const issues = validateConfig(badNs);
  const enumHit = expectIssue(t, badNs, '/linux/namespaces/0/type', 'enum');
  t.match(enumHit?.message, /must be one of .*"pid".*"time"/);
  t.notOk(issues.some((i) => i.rule === 'anyOf'), 'anyOf noise is dropped when the branch error explains it');
  t.equal(issues.filter((i) => i.rule === 'enum').length, 1, 'same issue from both schemas reported once');

  t.ok(validateConfig(42).some((i) => i.pointer === '' && i.rule === 'type'), 'non-object document');
});

t.test('ociVersion range', async (t) => {
  for (const v of ['1.0.0', '1.0.2', '1.0.2-dev', '1.1.0-rc.1', '1.2.1', '1.3.0', '1.3.9']) {
    t.same(validateConfig(spec((s) => (s.ociVersion = v))), [], `${v} accepted`);
  }
  for (const v of ['2.0.0', '0.9', '0.9.0', '1.4.0', '1.0.0-rc5', '1.0', 'latest']) {
    const hit = expectIssue(t, spec((s) => (s.ociVersion = v)), '/ociVersion', 'oci-version');
    t.match(hit?.message, /1\.0\.0 through 1\.3\.x/, `${v} refused, naming the range`);
  }
});

t.test('paths must be absolute', async (t) => {
  // runtime-spec 1.2+ (and runc, for every version) reads a relative mount destination as relative to "/"
  t.same(validateConfig(spec((s) => (s.mounts![0].destination = 'proc'))), [], 'a relative mount destination is accepted');
  expectIssue(t, spec((s) => (s.process!.cwd = 'home')), '/process/cwd', 'absolute-path');
  expectIssue(t, spec((s) => (s.linux!.namespaces![0].path = 'proc/1/ns/pid')), '/linux/namespaces/0/path', 'absolute-path');
  expectIssue(t, spec((s) => (s.hooks = { poststop: [{ path: 'bin/true' }] })), '/hooks/poststop/0/path', 'absolute-path');
  expectIssue(t, spec((s) => (s.linux!.devices = [{ path: 'dev/fuse', type: 'c', major: 10, minor: 229 }])), '/linux/devices/0/path', 'absolute-path');
  t.same(validateConfig(spec((s) => (s.linux!.devices = [{ path: '/opt/fuse', type: 'c', major: 10, minor: 229 }]))), [], 'devices outside /dev are fine');
});

t.test('process and root requirements', async (t) => {
  expectIssue(t, spec((s) => (s.process!.args = [])), '/process/args', 'args-required');
  expectIssue(t, spec((s) => delete s.root), '/root', 'root-required');
  expectIssue(
    t,
    spec((s) => s.process!.rlimits!.push({ type: 'RLIMIT_NOFILE', hard: 1, soft: 1 })),
    '/process/rlimits/1/type',
    'duplicate-rlimit',
  );
  expectIssue(t, spec((s) => (s.process!.rlimits![0].soft = 4096)), '/process/rlimits/0/soft', 'rlimit-soft-above-hard');
});

t.test('namespaces', async (t) => {
  expectIssue(t, spec((s) => s.linux!.namespaces!.push({ type: 'pid' })), '/linux/namespaces/6/type', 'duplicate-namespace');
  expectIssue(
    t,
    spec((s) => (s.linux!.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }])),
    '/linux/uidMappings',
    'mappings-without-userns',
  );
  expectIssue(t, spec((s) => s.linux!.namespaces!.push({ type: 'user' })), '/linux/uidMappings', 'userns-mappings');
  expectIssue(
    t,
    spec((s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    }),
    '/linux/gidMappings',
    'userns-mappings',
  );
  t.same(validateConfig(spec((s) => s.linux!.namespaces!.push({ type: 'user', path: '/proc/1/ns/user' }))), [], 'joined userns needs no mappings');
  expectIssue(t, spec((s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'uts'))), '/hostname', 'hostname-without-uts');
  expectIssue(
    t,
    spec((s) => {
      s.domainname = 'example.org';
      s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'uts');
    }),
    '/domainname',
    'domainname-without-uts',
  );
  expectIssue(t, spec((s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'mount'))), '/linux/maskedPaths', 'paths-without-mountns');
});

t.test('sysctl', async (t) => {
  const withSysctl = (sysctl: Record<string, string>) => spec((s) => (s.linux!.sysctl = sysctl));
  t.same(validateConfig(withSysctl({ 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '1', 'fs.mqueue.msg_max': '10' })), []);
  t.same(validateConfig(withSysctl({ 'net/ipv4/conf/eth0.100/rp_filter': '1' })), [], 'slash form with a dotted interface name');
  expectIssue(t, withSysctl({ 'net..ipv4': '1' }), '/linux/sysctl/net..ipv4', 'sysctl-key');
  expectIssue(t, withSysctl({ 'net/../../x': '1' }), '/linux/sysctl/net~1..~1..~1x', 'sysctl-key');
  expectIssue(t, withSysctl({ 'vm.swappiness': '1' }), '/linux/sysctl/vm.swappiness', 'sysctl-namespace');
  expectIssue(t, withSysctl({ 'kernel.hostname': 'x' }), '/linux/sysctl/kernel.hostname', 'sysctl-namespace');
  const hostNet = spec((s) => {
    s.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
    s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'network');
  });
  expectIssue(t, hostNet, '/linux/sysctl/net.ipv4.ip_forward', 'sysctl-namespace');
});

t.test('runtime-spec 1.1-1.3 fields', async (t) => {
  const good = spec((s) => {
    s.process!.scheduler = { policy: 'SCHED_FIFO', priority: 10, flags: ['SCHED_FLAG_RESET_ON_FORK'] };
    s.process!.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 4 };
    s.process!.execCPUAffinity = { initial: '0-3,7', final: '1' };
    s.linux!.namespaces!.push({ type: 'time' });
    s.linux!.timeOffsets = { monotonic: { secs: 3600, nanosecs: 5 }, boottime: { secs: -10 } };
    s.linux!.netDevices = { eth1: { name: 'ctr0' } };
    s.linux!.memoryPolicy = { mode: 'MPOL_INTERLEAVE', nodes: '0-1', flags: ['MPOL_F_STATIC_NODES'] };
    s.linux!.intelRdt = { closID: 'grp', schemata: ['L3:0=ff'], enableMonitoring: true };
    s.linux!.personality = { domain: 'LINUX32' };
    s.linux!.resources!.pids = {};
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_LOONGARCH64'] };
    s.mounts!.push({
      destination: '/data',
      type: 'bind',
      source: '/srv/data',
      options: ['bind', 'idmap'],
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    });
  });
  t.same(validateConfig(good), [], 'well-formed new fields pass both schemas and the semantic rules');

  const bad = (edit: (s: Record<string, any>) => void) => spec((s) => edit(s as unknown as Record<string, any>));
  expectIssue(t, bad((s) => (s.process.scheduler = { policy: 'SCHED_FAST' })), '/process/scheduler/policy', 'enum');
  expectIssue(t, bad((s) => (s.process.scheduler = { nice: 1 })), '/process/scheduler', 'required');
  expectIssue(t, bad((s) => (s.process.scheduler = 'fifo')), '/process/scheduler', 'type');
  expectIssue(t, bad((s) => (s.process.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: '4' })), '/process/ioPriority/priority', 'type');
  expectIssue(t, bad((s) => (s.process.execCPUAffinity = { initial: 'all' })), '/process/execCPUAffinity/initial', 'pattern');
  expectIssue(
    t,
    bad((s) => {
      s.linux.namespaces.push({ type: 'time' });
      s.linux.timeOffsets = { monotonic: { secs: '1' } };
    }),
    '/linux/timeOffsets/monotonic/secs',
    'type',
  );
  expectIssue(
    t,
    bad((s) => {
      s.linux.namespaces.push({ type: 'time' });
      s.linux.timeOffsets = { realtime: { secs: 1 } };
    }),
    '/linux/timeOffsets',
    'additionalProperties',
  );
  expectIssue(t, bad((s) => (s.linux.netDevices = { eth1: { name: 7 } })), '/linux/netDevices/eth1/name', 'type');
  expectIssue(t, bad((s) => (s.linux.memoryPolicy = { nodes: '0' })), '/linux/memoryPolicy', 'required');
  expectIssue(t, bad((s) => (s.linux.intelRdt = { schemata: 'L3:0=ff' })), '/linux/intelRdt/schemata', 'type');
  expectIssue(
    t,
    bad((s) => s.mounts.push({ destination: '/x', uidMappings: { containerID: 0 } })),
    '/mounts/7/uidMappings',
    'type',
  );
  expectIssue(t, bad((s) => (s.linux.personality = { flags: [] })), '/linux/personality', 'required');
});

t.test('time namespace rules', async (t) => {
  expectIssue(t, spec((s) => (s.linux!.timeOffsets = { monotonic: { secs: 1 } })), '/linux/timeOffsets', 'time-offsets-without-timens');
  expectIssue(
    t,
    spec((s) => {
      s.linux!.namespaces!.push({ type: 'time', path: '/proc/1/ns/time' });
      s.linux!.timeOffsets = { monotonic: { secs: 1 } };
    }),
    '/linux/timeOffsets',
    'time-offsets-joined-timens',
  );
});

t.test('semantic rules run only after the schema passes', async (t) => {
  const doc = spec((s) => {
    s.ociVersion = '9.9.9';
    (s.process as unknown as Record<string, unknown>).cwd = 5;
  });
  const issues = validateConfig(doc);
  t.ok(issues.some((i) => i.pointer === '/process/cwd' && i.rule === 'type'));
  t.notOk(issues.some((i) => i.rule === 'oci-version'), 'no semantic issues while the schema fails');
  t.ok(semanticIssues(spec((s) => (s.ociVersion = '9.9.9'))).some((i) => i.rule === 'oci-version'));
});

t.test('state and features documents', async (t) => {
  t.same(validateState({ ociVersion: '1.3.0', id: 'c1', status: 'created', pid: 42, bundle: '/b' }), []);
  t.ok(validateState({ ociVersion: '1.3.0', id: 'c1', status: 'paused', bundle: '/b' }).some((i) => i.pointer === '/status' && i.rule === 'enum'));
  t.same(validateFeatures({ ociVersionMin: '1.0.0', ociVersionMax: '1.3.0', linux: { namespaces: ['pid'] } }), []);
  t.ok(validateFeatures({ ociVersionMin: '1.0.0' }).some((i) => i.rule === 'required'));
});
