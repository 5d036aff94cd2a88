import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CAPABILITIES } from '../lib/security/capability-names';
import type { LinuxCapabilities } from '../lib/spec/types';
import { KOCI, kociCli, makeBundle, rootSkipReason, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping capability and sysctl tests: ${skip}`);

const mask = (names: string[] = []) => names.reduce((m, n) => m | (1n << BigInt(CAPABILITIES[n])), 0n);

/** the Cap* lines of /proc/self/status as seen by the container process */
function capsInside(out: string): Record<string, bigint> {
  const caps: Record<string, bigint> = {};
  for (const m of out.matchAll(/^Cap(Inh|Prm|Eff|Bnd|Amb):\s*([0-9a-f]+)$/gm)) caps[m[1]] = BigInt('0x' + m[2]);
  return caps;
}

const STATUS = ['sh', '-c', 'grep ^Cap /proc/self/status'];

t.test('root process: bounding, inheritable and the sets exec grants root', { skip }, async (t) => {
  const koci = kociCli(t);
  const set: LinuxCapabilities = {
    bounding: ['CAP_CHOWN', 'CAP_KILL', 'CAP_SYS_ADMIN', 'CAP_NET_RAW'],
    permitted: ['CAP_CHOWN', 'CAP_KILL'],
    effective: ['CAP_KILL'],
    inheritable: ['CAP_CHOWN'],
  };
  const b = makeBundle(t, STATUS, (s) => (s.process!.capabilities = set));
  const r = koci(['run', '--bundle', b.dir, uniqueId('cap')]);
  t.equal(r.status, 0, r.stderr);
  const c = capsInside(r.stdout);
  t.equal(c.Bnd, mask(set.bounding), 'CapBnd is the bounding set');
  t.equal(c.Inh, mask(set.inheritable), 'CapInh is the inheritable set');
  t.equal(c.Amb, 0n, 'no ambient caps');
  // noNewPrivileges (the default spec's): execve cannot add to the permitted set
  t.equal(c.Prm, mask(set.permitted), 'CapPrm after exec as root with no_new_privs');
  t.equal(c.Eff, c.Prm, 'CapEff: root\'s effective set is its permitted set');

  // without no_new_privs, execve as uid 0 grants the whole bounding set (capabilities(7), root rules)
  const b2 = makeBundle(t, STATUS, (s) => {
    s.process!.capabilities = set;
    s.process!.noNewPrivileges = false;
  });
  const r2 = koci(['run', '--bundle', b2.dir, uniqueId('cap')]);
  t.equal(r2.status, 0, r2.stderr);
  const c2 = capsInside(r2.stdout);
  t.equal(c2.Prm, mask(set.bounding), 'CapPrm after exec as root without no_new_privs');
  t.equal(c2.Eff, c2.Prm);
  t.equal(BigInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim()) >= 40n, true, 'kernel knows CAP_CHECKPOINT_RESTORE');
});

t.test('non-root process keeps exactly its ambient caps across exec', { skip }, async (t) => {
  const koci = kociCli(t);
  const set: LinuxCapabilities = {
    bounding: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_CHOWN'],
    permitted: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'],
    effective: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'],
    inheritable: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'],
    ambient: ['CAP_NET_BIND_SERVICE'],
  };
  const b = makeBundle(t, STATUS, (s) => {
    s.process!.capabilities = set;
    s.process!.user = { uid: 1000, gid: 1000 };
  });
  const r = koci(['run', '--bundle', b.dir, uniqueId('cap')]);
  t.equal(r.status, 0, r.stderr);
  const c = capsInside(r.stdout);
  t.equal(c.Amb, mask(set.ambient), 'CapAmb is the ambient set');
  t.equal(c.Prm, mask(set.ambient), 'CapPrm: the ambient caps survive exec as non-root');
  t.equal(c.Eff, mask(set.ambient), 'CapEff likewise');
  t.equal(c.Inh, mask(set.inheritable));
  t.equal(c.Bnd, mask(set.bounding));
});

t.test('a dropped capability is enforced; a kept one works', { skip }, async (t) => {
  const koci = kociCli(t);
  const script = ['sh', '-c', 'touch /tmp/f && chown 1:1 /tmp/f && echo chown-ok || echo chown-denied'];
  const without = makeBundle(t, script, (s) => (s.root!.readonly = false));
  const r1 = koci(['run', '--bundle', without.dir, uniqueId('cap')]);
  t.match(r1.stdout, /chown-denied/, 'no CAP_CHOWN in the default set: chown fails');
  t.match(r1.stderr, /Operation not permitted/);
  const withCap = makeBundle(t, script, (s) => {
    s.root!.readonly = false;
    for (const k of ['bounding', 'effective', 'permitted'] as const) s.process!.capabilities![k]!.push('CAP_CHOWN');
  });
  const r2 = koci(['run', '--bundle', withCap.dir, uniqueId('cap')]);
  t.match(r2.stdout, /chown-ok/, 'with CAP_CHOWN it succeeds');
});

t.test('the default spec gives runc\'s three capabilities and no more', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, STATUS);
  const r = koci(['run', '--bundle', b.dir, uniqueId('cap')]);
  const want = mask(['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']);
  const c = capsInside(r.stdout);
  t.equal(c.Eff, want);
  t.equal(c.Bnd, want);
});

t.test('an unknown capability name is refused before anything is made', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['true'], (s) => s.process!.capabilities!.effective!.push('CAP_NOT_A_THING'));
  const id = uniqueId('cap');
  const r = koci(['create', '--bundle', b.dir, id]);
  t.equal(r.status, 1);
  t.equal(r.stderr, 'koci: invalid config.json: /process/capabilities/effective/3 unknown capability "CAP_NOT_A_THING" (rule: capability-name)\n');
  t.equal(koci(['list', '-q']).stdout, '', 'nothing created');
});

t.test('sysctl: namespaced keys are set inside only; the rest refused', { skip }, async (t) => {
  const koci = kociCli(t);
  const hostForward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  const hostShmmni = readFileSync('/proc/sys/kernel/shmmni', 'utf8');
  const want = hostForward.trim() === '1' ? '0' : '1';
  const b = makeBundle(t, ['sh', '-c', 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni /proc/sys/net/ipv4/conf/lo/forwarding'], (s) => {
    s.linux!.sysctl = { 'net.ipv4.ip_forward': want, 'kernel.shmmni': '1234', 'net/ipv4/conf/lo/forwarding': want };
  });
  const r = koci(['run', '--bundle', b.dir, uniqueId('sysctl')]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, `${want}\n1234\n${want}\n`, 'dotted and slash forms, net and ipc');
  t.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'), hostForward, 'host ip_forward untouched');
  t.equal(readFileSync('/proc/sys/kernel/shmmni', 'utf8'), hostShmmni, 'host shmmni untouched');

  const hostOnly = makeBundle(t, ['true'], (s) => (s.linux!.sysctl = { 'kernel.panic': '1' }));
  const r2 = koci(['create', '--bundle', hostOnly.dir, uniqueId('sysctl')]);
  t.equal(r2.status, 1);
  t.match(r2.stderr, /\/linux\/sysctl\/kernel\.panic .*not namespaced/);
  const noNet = makeBundle(t, ['true'], (s) => {
    s.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
    s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'network');
  });
  const r3 = koci(['create', '--bundle', noNet.dir, uniqueId('sysctl')]);
  t.equal(r3.status, 1);
  t.match(r3.stderr, /needs a network namespace/);
  t.equal(koci(['list', '-q']).stdout, '', 'nothing created');
});

t.test('LSM labels are refused clearly when the LSM is not active, nothing made', { skip }, async (t) => {
  const { apparmorEnabled, selinuxEnabled } = await import('../lib/security/lsm');
  const koci = kociCli(t);
  const cases: Array<[string, (s: import('../lib/spec/types').Spec) => void, RegExp, boolean]> = [
    ['apparmorProfile', (s) => (s.process!.apparmorProfile = 'koci-test'), /process\.apparmorProfile is "koci-test" but AppArmor is not enabled on this host/, apparmorEnabled()],
    ['selinuxLabel', (s) => (s.process!.selinuxLabel = 'system_u:system_r:container_t:s0'), /process\.selinuxLabel is .* but SELinux is not enabled on this host/, selinuxEnabled()],
    ['mountLabel', (s) => (s.linux!.mountLabel = 'system_u:object_r:container_file_t:s0'), /linux\.mountLabel is .* but SELinux is not enabled on this host/, selinuxEnabled()],
  ];
  for (const [name, edit, message, active] of cases) {
    if (active) {
      t.comment(`${name}: the LSM is active on this host; the refusal does not apply (skipped)`);
      continue;
    }
    const b = makeBundle(t, ['true'], edit);
    const id = uniqueId('lsm');
    const r = koci(['create', '--bundle', b.dir, id]);
    t.equal(r.status, 1, name);
    t.match(r.stderr, message);
    t.equal(r.stderr.split('\n').length, 2, 'one line');
  }
  t.equal(koci(['list', '-q']).stdout, '', 'nothing created');
});

t.test('capabilities newer than the kernel are skipped with a warning, as runc does', async (t) => {
  const { planCapabilities } = await import('../lib/security/capabilities');
  // an older kernel: cap_last_cap 37 (CAP_AUDIT_READ), before CAP_PERFMON, CAP_BPF, CAP_CHECKPOINT_RESTORE
  const plan = planCapabilities({ bounding: ['CAP_KILL', 'CAP_BPF'], effective: ['CAP_PERFMON', 'CAP_KILL'], ambient: ['CAP_CHECKPOINT_RESTORE'] }, 37);
  t.same(plan.bounding, [5], 'CAP_BPF left out of the bounding set');
  t.equal(plan.effective, 1n << 5n, 'CAP_PERFMON left out of effective');
  t.same(plan.ambient, []);
  t.same(plan.unknownToKernel.sort(), ['CAP_BPF', 'CAP_CHECKPOINT_RESTORE', 'CAP_PERFMON']);
});

t.test('capabilities newer than the kernel, end to end: warned about, skipped, the container runs', { skip }, async (t) => {
  const koci = kociCli(t);
  // an "older kernel": a private mount namespace around koci where cap_last_cap reads 37 (CAP_AUDIT_READ)
  const dir = mkdtempSync(join(tmpdir(), 'koci-caplast-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fake = join(dir, 'cap_last_cap');
  writeFileSync(fake, '37\n');
  const asked = ['CAP_KILL', 'CAP_BPF', 'CAP_PERFMON'];
  const b = makeBundle(t, STATUS, (s) => {
    s.process!.capabilities = { bounding: asked, effective: asked, permitted: asked };
    // the container's own procfs reads the real value: the init (which applies the sets) sees the same fake
    s.mounts!.push({ destination: '/proc/sys/kernel/cap_last_cap', type: 'bind', source: fake, options: ['bind', 'ro'] });
  });
  const old = spawnSync(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /proc/sys/kernel/cap_last_cap && cat /proc/sys/kernel/cap_last_cap >&2 && exec "$@"', fake, KOCI, '--root', koci.root, 'run', '--bundle', b.dir, uniqueId('caplast')],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.equal(old.status, 0, `the container runs: ${old.stderr}`);
  t.match(old.stderr, /^37\n/, 'koci saw cap_last_cap 37');
  t.match(old.stderr, /capabilities unknown to this kernel, skipped: CAP_BPF, CAP_PERFMON\n/, 'a warning names what was skipped');
  const c = capsInside(old.stdout);
  // caps 0..37 are all the fake kernel has; bits above it (which a real 37-cap kernel would not have at all) are not looked at
  const known = (1n << 38n) - 1n;
  t.equal(c.Bnd & known, mask(['CAP_KILL']), 'CapBnd: of the caps the "kernel" knows, only CAP_KILL');
  t.equal(c.Prm, mask(['CAP_KILL']), 'CapPrm: CAP_BPF and CAP_PERFMON skipped');
  t.equal(c.Eff, mask(['CAP_KILL']), 'CapEff: CAP_BPF and CAP_PERFMON skipped');
  t.equal(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim(), String(CAPABILITIES.CAP_CHECKPOINT_RESTORE), 'the fake stayed in its namespace');
  // the same capabilities with the real cap_last_cap (40 here): no warning, all three granted
  const real = makeBundle(t, STATUS, (s) => (s.process!.capabilities = { bounding: asked, effective: asked, permitted: asked }));
  const now = koci(['run', '--bundle', real.dir, uniqueId('caplast')]);
  t.equal(now.status, 0, now.stderr);
  t.notMatch(now.stderr, /unknown to this kernel/, 'no warning on this kernel');
  const n = capsInside(now.stdout);
  t.equal(n.Bnd, mask(asked), 'CAP_BPF and CAP_PERFMON in CapBnd');
  t.equal(n.Prm, mask(asked), 'and in CapPrm');
});

t.test('ambient caps that are not inheritable are skipped, as runc does (runc spec lists them so)', { skip }, async (t) => {
  const koci = kociCli(t);
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const b = makeBundle(t, STATUS, (s) => (s.process!.capabilities = { bounding: caps, effective: caps, permitted: caps, ambient: caps }));
  const r = koci(['run', '--bundle', b.dir, uniqueId('amb')]);
  t.equal(r.status, 0, `runs: ${r.stderr}`);
  t.equal(capsInside(r.stdout).Amb, 0n, 'nothing raised: none of them is inheritable');
});
