/** koci features: a valid runtime-spec features document, true to what koci does */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import * as S from '../dist/bindings/seccomp';
import { validateFeatures } from '../dist/lib/spec/validate';
import { KOCI } from './helpers/fixtures';

t.test('koci features prints a valid features document', async (t) => {
  const r = spawnSync(KOCI, ['features'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const f = JSON.parse(r.stdout);
  t.same(validateFeatures(f), [], "valid against koci's features schema");
  t.equal(f.ociVersionMin, '1.0.0');
  t.equal(f.ociVersionMax, '1.3.0');
  t.same(f.hooks, ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);
  for (const o of ['bind', 'rbind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate', 'rslave', 'nosymfollow']) t.ok(f.mountOptions.includes(o), `mount option ${o}`);
  t.same(f.linux.namespaces, ['cgroup', 'ipc', 'mount', 'network', 'pid', 'time', 'user', 'uts']);
  t.ok(f.linux.capabilities.includes('CAP_SYS_ADMIN') && f.linux.capabilities.includes('CAP_CHECKPOINT_RESTORE'));
  t.same(f.linux.cgroup, { v1: true, v2: true, systemd: false, systemdUser: false, rdma: true }, 'no systemd driver is claimed');
  t.equal(f.linux.seccomp.enabled, true, 'libseccomp is on this host');
  t.ok(f.linux.seccomp.actions.includes('SCMP_ACT_NOTIFY'));
  t.same(f.linux.seccomp.operators, ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);
  t.ok(f.linux.seccomp.archs.includes('SCMP_ARCH_X86_64') || f.linux.seccomp.archs.includes('SCMP_ARCH_AARCH64'));
  t.ok(f.linux.seccomp.supportedFlags.every((x: string) => f.linux.seccomp.knownFlags.includes(x)), 'supported ⊆ known');
  t.ok(f.linux.seccomp.supportedFlags.includes('SECCOMP_FILTER_FLAG_TSYNC'));
  // koci passes WAIT_KILLABLE_RECV to seccomp(2) itself: claimed when the kernel takes it (with a listener), whatever libseccomp's version
  t.ok(f.linux.seccomp.knownFlags.includes('SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'));
  const waitKill = S.kernelAcceptsFilterFlags(S.SECCOMP_FILTER_FLAG_NEW_LISTENER | S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
  t.equal(f.linux.seccomp.supportedFlags.includes('SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'), waitKill, `WAIT_KILLABLE_RECV supported: ${waitKill}`);
  t.same(f.linux.mountExtensions, { idmap: { enabled: false } }, 'idmapped mounts are not claimed');
  t.match(f.annotations, { 'io.github.koci.version': /^\d+\.\d+\.\d+/ });
  t.match(spawnSync(KOCI, ['features', 'extra'], { encoding: 'utf8' }), { status: 1 });
});
