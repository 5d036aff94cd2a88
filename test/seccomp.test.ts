/**
 * linux.seccomp enforced by the kernel on real containers: a denied syscall
 * returns the configured errno, defaultErrnoRet, an argument rule denies only
 * the matching value, SCMP_ACT_KILL kills, unknown names are skipped, bad
 * profiles are refused before anything exists, and SCMP_ACT_NOTIFY hands the
 * listener fd to listenerPath.
 */
import { closeSync, existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import * as S from '../bindings/seccomp';
import { acceptUnix, listenUnix, recvWithFds } from '../bindings/socket';
import type { LinuxSeccomp, Spec } from '../lib/spec/types';
import { kociCli, makeBundle, rootSkipReason, uniqueId, type Koci } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason() ?? S.seccompUnavailable();
if (skip) t.comment(`skipping seccomp tests: ${skip}`);

/** run `args` in a container with this seccomp profile (root writable) */
function runWith(t: Test, koci: Koci, args: string[], seccomp: LinuxSeccomp | undefined, edit?: (s: Spec) => void) {
  const b = makeBundle(t, args, (s) => {
    s.root!.readonly = false;
    if (seccomp) s.linux!.seccomp = seccomp;
    edit?.(s);
  });
  const id = uniqueId('sc');
  return { ...koci(['run', '--bundle', b.dir, id]), b, id };
}

t.test('a denied syscall returns errnoRet; the filter is in /proc/self/status', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runWith(t, koci, ['sh', '-c', 'mkdir /tmp/x; echo rc=$?; grep -E "^Seccomp" /proc/self/status; [ -d /tmp/x ] || echo absent'], {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /mkdir: can't create directory '\/tmp\/x': Operation not permitted/);
  t.match(r.stdout, /rc=1\n/);
  t.match(r.stdout, /^Seccomp:\s+2$/m, 'filter mode');
  t.match(r.stdout, /^Seccomp_filters:\s+1$/m, 'exactly one filter');
  t.match(r.stdout, /absent/);

  const other = runWith(t, koci, ['sh', '-c', 'mkdir /tmp/x 2>&1; echo rc=$?'], {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
  });
  t.equal(other.status, 0, other.stderr);
  t.match(other.stdout, /Permission denied\nrc=1/, 'errnoRet 13 is EACCES');

  const none = runWith(t, koci, ['grep', '-E', '^Seccomp:', '/proc/self/status'], undefined, (s) => delete s.linux!.seccomp);
  t.match(none.stdout, /^Seccomp:\s+0$/m, 'no linux.seccomp: no filter');
});

t.test('defaultErrnoRet: everything not allowed fails with it', { skip }, async (t) => {
  const koci = kociCli(t);
  // allow every syscall libseccomp knows here except mkdir and mkdirat
  const names: string[] = [];
  for (let nr = 0; nr < 512; nr++) {
    const n = S.syscallResolveNum(nr);
    if (n && n !== 'mkdir' && n !== 'mkdirat') names.push(n);
  }
  t.ok(names.length > 300, `${names.length} syscalls allowed`);
  const r = runWith(t, koci, ['sh', '-c', 'mkdir /tmp/x 2>&1; echo rc=$?; echo still running'], {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 18, // EXDEV, a value nothing else would produce here
    syscalls: [{ names, action: 'SCMP_ACT_ALLOW' }],
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /cross-device link\nrc=1\nstill running/i);
});

t.test('an argument rule denies only the matching value (chmod 0600)', { skip }, async (t) => {
  const koci = kociCli(t);
  const rule = (name: string, index: number) => ({
    names: [name],
    action: 'SCMP_ACT_ERRNO' as const,
    errnoRet: 1,
    args: [{ index, value: 0o777, valueTwo: 0o600, op: 'SCMP_CMP_MASKED_EQ' as const }],
  });
  const r = runWith(
    t,
    koci,
    ['sh', '-c', 'touch /tmp/f; chmod 600 /tmp/f 2>&1; echo rc600=$?; chmod 644 /tmp/f; echo rc644=$?; stat -c %a /tmp/f'],
    // chmod(path, mode): mode is argument 1; fchmodat(dirfd, path, mode): argument 2
    { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [rule('chmod', 1), rule('fchmodat', 2)] },
  );
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /Operation not permitted\nrc600=1\nrc644=0\n644\n/);
});

t.test('SCMP_ACT_KILL and KILL_PROCESS kill the process with SIGSYS', { skip }, async (t) => {
  const koci = kociCli(t);
  for (const action of ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS'] as const) {
    const r = runWith(t, koci, ['mkdir', '/tmp/k'], { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action }] });
    t.equal(r.status, 128 + 31, `${action}: exit status 128+SIGSYS (${r.stderr})`);
    t.notOk(existsSync(join(r.b.rootfs, 'tmp/k')), 'the directory was not made');
  }
});

t.test('unknown syscall names are skipped; a rule equal to the default is skipped', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runWith(t, koci, ['sh', '-c', 'mkdir /tmp/x 2>&1; echo rc=$?'], {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: ['koci_not_a_syscall', 'mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' },
      { names: ['getpid'], action: 'SCMP_ACT_ALLOW' },
    ],
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /Operation not permitted\nrc=1/, 'the known names still apply (ERRNO defaults to EPERM)');
});

t.test('bad or unsupported profiles are refused before anything is created', { skip }, async (t) => {
  const koci = kociCli(t);
  const cases: Array<[string, LinuxSeccomp, RegExp]> = [
    ['unknown action', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_BOGUS' as 'SCMP_ACT_ERRNO' }] }, /\/linux\/seccomp\/syscalls\/0\/action/],
    ['unknown default action', { defaultAction: 'SCMP_ACT_NOPE' as 'SCMP_ACT_ALLOW' }, /\/linux\/seccomp\/defaultAction/],
    ['unknown arch', { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] }, /\/linux\/seccomp\/architectures\/0/],
    ['unknown flag', { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_BOGUS'] }, /\/linux\/seccomp\/flags\/0/],
    ['errnoRet with KILL', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_KILL', errnoRet: 1 }] }, /errnoRet is only valid/],
    ['NOTIFY without listenerPath', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }, /listenerPath/],
    ['unreachable listenerPath', { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/nonexistent/koci-l.sock', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }, /connect \/nonexistent\/koci-l\.sock: ENOENT/],
  ];
  if (!S.archResolveName('loongarch64')) {
    cases.push(['arch unknown to this libseccomp', { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_LOONGARCH64'] }, /SCMP_ARCH_LOONGARCH64 is not supported by libseccomp/]);
  }
  const v = S.version();
  if (v.major === 2 && v.minor < 6) {
    cases.push(['flag unknown to this libseccomp', { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] }, /WAIT_KILLABLE_RECV is not supported by libseccomp/]);
  }
  for (const [what, profile, message] of cases) {
    const b = makeBundle(t, ['true'], (s) => (s.linux!.seccomp = profile));
    const before = leftovers(koci.root, [b.dir]);
    const id = uniqueId('scbad');
    const r = koci(['run', '--bundle', b.dir, id]);
    t.not(r.status, 0, `${what}: refused`);
    t.match(r.stderr, message, `${what}: ${r.stderr.trim()}`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    t.same(leftovers(koci.root, [b.dir]), before, `${what}: nothing left behind`);
    t.equal(koci(['state', id]).status === 0, false, `${what}: no such container`);
  }
});

t.test('without no_new_privs the filter is loaded before the caps go (as runc), so it still applies', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'grep -E "^(Seccomp|NoNewPrivs|CapEff):" /proc/self/status; mkdir /tmp/x && echo made'], (s) => {
    s.process!.noNewPrivileges = false;
    s.process!.user = { uid: 1000, gid: 1000 };
    s.root!.readonly = false;
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] };
  });
  const r = koci(['run', '--bundle', b.dir, uniqueId('scload')]);
  t.equal(r.status, 1, 'mkdir fails: the filter is on');
  t.match(r.stdout, /NoNewPrivs:\s+0/, 'no no_new_privs');
  t.match(r.stdout, /Seccomp:\s+2/, 'filter mode');
  t.match(r.stdout, /CapEff:\s+0+\n/, 'and no CAP_SYS_ADMIN left');
  t.notMatch(r.stdout, /made/);
});

t.test('a filter the kernel refuses fails start with one line, nothing left', { skip }, async (t) => {
  // execve denied (EPERM): the init reports the failed exec to start on the exec fifo. Everything
  // else stays allowed: the report is built in JS, which may need mmap & co. for its heap
  const koci = kociCli(t);
  const b = makeBundle(t, ['true'], (s) => {
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['execve', 'execveat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
  });
  const before = leftovers(koci.root, [b.dir]);
  const r = koci(['run', '--bundle', b.dir, uniqueId('scexec')]);
  t.equal(r.status, 1, 'the process never runs');
  t.match(r.stderr, /^koci: exec .*EPERM.*\n$/, 'start reports the failed execve');
  t.same(leftovers(koci.root, [b.dir]), before, 'nothing left behind');
});

t.test('SCMP_ACT_NOTIFY: the listener fd and the process state go to listenerPath', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'mkdir /tmp/n 2>/tmp/err; echo $? >/tmp/done'], (s) => {
    s.root!.readonly = false;
  });
  const sock = join(b.dir, 'listener.sock');
  b.spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: sock, listenerMetadata: 'koci-test-meta', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }] };
  b.save();
  const l = listenUnix(sock);
  t.teardown(() => closeSync(l));
  const id = uniqueId('scn');
  const c = koci(['create', '--bundle', b.dir, id]); // connects to the listener (queued: accepted below)
  t.equal(c.status, 0, c.stderr);
  const s = koci(['start', id]); // the init loads the filter and sends the fd before execve
  t.equal(s.status, 0, s.stderr);
  const conn = acceptUnix(l);
  const got = recvWithFds(conn);
  closeSync(conn);
  const msg = JSON.parse(got.data.toString());
  t.match(msg, { ociVersion: String, fds: ['seccompFd'], metadata: 'koci-test-meta', state: { id, bundle: b.dir, status: 'created' } });
  t.type(msg.pid, 'number');
  t.equal(msg.pid, msg.state.pid);
  t.equal(got.fds.length, 1, 'one fd passed');
  t.equal(readlinkSync(`/proc/self/fd/${got.fds[0]}`), 'anon_inode:seccomp notify', 'it is the seccomp listener');
  // the container is blocked in mkdir until we answer; closing the listener makes it fail with ENOSYS
  t.notOk(existsSync(join(b.rootfs, 'tmp/done')), 'mkdir waits for the listener');
  closeSync(got.fds[0]);
  const deadline = Date.now() + 10_000;
  while (!existsSync(join(b.rootfs, 'tmp/done')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(readFileSync(join(b.rootfs, 'tmp/done'), 'utf8'), '1\n');
  t.match(readFileSync(join(b.rootfs, 'tmp/err'), 'utf8'), /Function not implemented/);
});
