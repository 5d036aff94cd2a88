/**
 * linux.seccomp enforced by the kernel on real containers: a denied syscall
 * returns the configured errno, defaultErrnoRet, an argument rule denies only
 * the matching value, SCMP_ACT_KILL kills, unknown names are skipped, bad
 * profiles are refused before anything exists, and SCMP_ACT_NOTIFY hands the
 * listener fd to listenerPath.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import * as libc from '../bindings/libc';
import * as S from '../bindings/seccomp';
import { acceptUnix, listenUnix, recvWithFds } from '../bindings/socket';
import type { LinuxSeccomp, Spec } from '../lib/spec/types';
import { KOCI, kociCli, makeBundle, rootSkipReason, uniqueId, type Koci } from './helpers/fixtures';
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

t.test('a profile that denies execveat still runs the process (the exec trampoline is entered by execve)', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runWith(t, koci, ['sh', '-c', 'echo started'], {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['execveat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'started\n');
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
  if (!S.kernelAcceptsFilterFlags(S.SECCOMP_FILTER_FLAG_NEW_LISTENER | S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)) {
    const listenerPath = '/nonexistent/koci-l.sock';
    cases.push(['WAIT_KILLABLE_RECV on a kernel without it', { defaultAction: 'SCMP_ACT_ALLOW', listenerPath, flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'], syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }, /WAIT_KILLABLE_RECV is not supported by this kernel/]);
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

// seccomp user notification ioctls (linux/seccomp.h): struct seccomp_notif is 80 bytes, seccomp_notif_resp 24
const SECCOMP_IOCTL_NOTIF_RECV = 0xc0502100;
const SECCOMP_IOCTL_NOTIF_SEND = 0xc0182101;
const SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1;

/**
 * A container whose shell traps SIGUSR1 and then runs `cd /tmp` (chdir is
 * notified). The supervisor (this test) receives the notification, sends the
 * shell SIGUSR1, and asks whether the notification is still valid: with
 * WAIT_KILLABLE_RECV the shell ignores the non-fatal signal until the answer
 * (still valid, and the answer lets chdir through); without it the signal
 * interrupts the syscall and withdraws the notification.
 */
async function signalDuringNotification(t: Test, koci: Koci, flags: NonNullable<LinuxSeccomp['flags']>) {
  const b = makeBundle(t, ['sh', '-c', 'trap "echo sig >/tmp/sig" USR1; cd /tmp; echo rc=$? >/tmp/done'], (s) => {
    s.root!.readonly = false;
  });
  const sock = join(b.dir, 'listener.sock');
  b.spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: sock, flags, syscalls: [{ names: ['chdir'], action: 'SCMP_ACT_NOTIFY' }] };
  b.save();
  const l = listenUnix(sock);
  t.teardown(() => closeSync(l));
  const id = uniqueId('scwk');
  const c = koci(['create', '--bundle', b.dir, id]);
  t.equal(c.status, 0, c.stderr);
  const s = koci(['start', id]);
  t.equal(s.status, 0, s.stderr);
  const conn = acceptUnix(l);
  const got = recvWithFds(conn);
  closeSync(conn);
  t.equal(got.fds.length, 1, 'the listener fd arrived');
  const fd = got.fds[0];
  try {
    // (never a blocking RECV without one: the test would hang)
    if (!t.ok(libc.pollIn(fd, 10_000), 'a notification is pending (the shell is in chdir)')) return { valid: false, rootfs: b.rootfs };
    const notif = Buffer.alloc(80); // the kernel wants it zeroed
    libc.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, notif);
    const nid = notif.readBigUInt64LE(0);
    const pid = notif.readUInt32LE(8);
    t.equal(notif.readInt32LE(16), S.syscallResolveName('chdir'), 'the notified call is chdir');
    process.kill(pid, 'SIGUSR1');
    await new Promise((r) => setTimeout(r, 300));
    const idBuf = Buffer.alloc(8);
    idBuf.writeBigUInt64LE(nid);
    let valid = true;
    try {
      libc.ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, idBuf);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
      valid = false;
    }
    if (valid) {
      const resp = Buffer.alloc(24); // { u64 id; s64 val; s32 error; u32 flags }
      resp.writeBigUInt64LE(nid, 0);
      resp.writeUInt32LE(SECCOMP_USER_NOTIF_FLAG_CONTINUE, 20);
      libc.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
    }
    return { valid, rootfs: b.rootfs };
  } finally {
    closeSync(fd); // anything still waiting on the listener fails with ENOSYS
  }
}

async function waitForFile(path: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (!existsSync(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return readFileSync(path, 'utf8');
}

const noWaitKill = skip ?? (S.kernelAcceptsFilterFlags(S.SECCOMP_FILTER_FLAG_NEW_LISTENER | S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) ? undefined : 'this kernel has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux < 5.19)');

t.test('SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV reaches the kernel with the listener: a received notification survives a signal', { skip: noWaitKill }, async (t) => {
  const koci = kociCli(t);
  const withFlag = await signalDuringNotification(t, koci, ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV']);
  t.ok(withFlag.valid, 'with the flag: SIGUSR1 did not withdraw the received notification');
  t.equal(await waitForFile(join(withFlag.rootfs, 'tmp/done')), 'rc=0\n', 'the answer (continue) let chdir through');
  t.equal(readFileSync(join(withFlag.rootfs, 'tmp/sig'), 'utf8'), 'sig\n', 'the signal was delivered after the call');
  // the same profile without the flag: the signal interrupts the waiting call
  const without = await signalDuringNotification(t, koci, []);
  t.notOk(without.valid, 'without the flag: SIGUSR1 withdrew the notification');
  await waitForFile(join(without.rootfs, 'tmp/done'));
});

t.test('SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without notify rules is ignored, as runc and crun do', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runWith(t, koci, ['sh', '-c', 'mkdir /tmp/x 2>&1; echo rc=$?'], {
    defaultAction: 'SCMP_ACT_ALLOW',
    flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
    syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '', 'no error, no warning');
  t.match(r.stdout, /Operation not permitted\nrc=1/, 'the filter is loaded (without the flag the kernel would refuse alone)');
});

/** the file the dynamic loader maps for libseccomp.so.2 (this process has loaded it) */
function libseccompFile(): string | undefined {
  S.seccompUnavailable(); // loads it
  const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => /\/libseccomp\.so[^/]*$/.test(l));
  return line?.slice(line.indexOf('/'));
}

t.test('a config with linux.seccomp on a host without libseccomp: a clear error, nothing left; features says enabled:false', { skip }, async (t) => {
  const koci = kociCli(t);
  const lib = libseccompFile();
  if (!lib) return t.pass('libseccomp is not mapped from a file here', { skip: 'nothing to hide' });
  // "a host without libseccomp": koci runs in a private mount namespace where the library is an empty file
  const dir = mkdtempSync(join(tmpdir(), 'koci-nolib-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const empty = join(dir, 'empty.so');
  writeFileSync(empty, '');
  let n = 0;
  const hidden = (args: string[]) => {
    const out = join(dir, `${n}.out`);
    const err = join(dir, `${n++}.err`);
    const fds = [openSync(out, 'w'), openSync(err, 'w')];
    try {
      // stdio to files: a create that (wrongly) succeeded would keep pipes open
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" "$1" && shift && exec "$@"', empty, lib, KOCI, '--root', koci.root, ...args], {
        stdio: ['ignore', fds[0], fds[1]],
        timeout: 60_000,
      });
      return { status: r.status, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
    } finally {
      fds.forEach((fd) => closeSync(fd));
    }
  };
  const b = makeBundle(t, ['true'], (s) => (s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] }));
  const before = leftovers(koci.root, [b.dir]);
  const id = uniqueId('scnolib');
  const r = hidden(['create', '--bundle', b.dir, id]);
  t.not(r.status, 0, 'create is refused');
  t.match(r.stderr, /^koci: linux\.seccomp: libseccomp\.so\.2 could not be loaded \(.*\); install libseccomp \(Debian\/Ubuntu: libseccomp2\) or remove linux\.seccomp from config\.json\n$/, `one clear line (${r.stderr.trim()})`);
  t.same(leftovers(koci.root, [b.dir]), before, 'nothing left behind');
  t.not(koci(['state', id]).status, 0, 'no such container');
  const f = hidden(['features']);
  t.equal(f.status, 0, f.stderr);
  const doc = JSON.parse(f.stdout);
  t.equal(doc.linux.seccomp.enabled, false, 'features: seccomp enabled:false');
  t.same(doc.linux.seccomp.supportedFlags, [], 'and no flag claimed');
  t.equal(doc.annotations['io.github.koci.libseccomp.version'], 'unavailable');
  // the same, with the library in place: the container is made, features says enabled:true
  const ok = koci(['create', '--bundle', b.dir, id]);
  t.equal(ok.status, 0, `with libseccomp: created (${ok.stderr.trim()})`);
  t.equal(JSON.parse(koci(['features']).stdout).linux.seccomp.enabled, true, 'with libseccomp: enabled:true');
});

t.test('SECCOMP_FILTER_FLAG_SPEC_ALLOW reaches the kernel: the filter leaves speculative store bypass as it was', { skip }, async (t) => {
  const koci = kociCli(t);
  const ssb = (flags: NonNullable<LinuxSeccomp['flags']>) => {
    const r = runWith(t, koci, ['grep', '^Speculation_Store_Bypass:', '/proc/self/status'], { defaultAction: 'SCMP_ACT_ALLOW', flags, syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] });
    t.equal(r.status, 0, r.stderr);
    return r.stdout.replace(/^Speculation_Store_Bypass:\s*/, '').trim();
  };
  const without = ssb([]);
  let host = '';
  try {
    host = readFileSync('/sys/devices/system/cpu/vulnerabilities/spec_store_bypass', 'utf8').trim();
  } catch {
    /* no such file */
  }
  // only where the kernel mitigates SSB for seccomp'd tasks (spec_store_bypass_disable=seccomp) does a filter change it
  if (!/force mitigated/.test(without)) {
    const why = `a filter without SPEC_ALLOW leaves SSB "${without}" on this host (spec_store_bypass: ${host || 'unknown'}): SPEC_ALLOW would change nothing to see`;
    return t.pass('SPEC_ALLOW makes a difference', { skip: why });
  }
  const withFlag = ssb(['SECCOMP_FILTER_FLAG_SPEC_ALLOW']);
  t.not(withFlag, without, `with SPEC_ALLOW: "${withFlag}", without: "${without}"`);
  t.notMatch(withFlag, /force mitigated/, 'the filter did not force the mitigation');
});
