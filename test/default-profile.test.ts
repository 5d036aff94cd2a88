/**
 * The default profile `koci spec` writes: runc's capability set and Docker's
 * default seccomp profile for it. Checked three ways: the profile itself (valid
 * config, expected and excluded syscalls, capability- and arch-dependent
 * parts), its compiled BPF run through a small interpreter, and the kernel
 * enforcing it on real containers made from an unchanged `koci spec` bundle.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, mkdtempSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import * as C from '../bindings/constants';
import * as libc from '../bindings/libc';
import * as S from '../bindings/seccomp';
import { CLONE_NAMESPACE_FLAGS, defaultSeccomp } from '../lib/security/default-seccomp';
import { buildSeccomp, exportSeccompBpf, loadSeccomp, releaseSeccomp } from '../lib/security/seccomp';
import { defaultSpec } from '../lib/spec/default';
import type { LinuxSeccomp, Spec } from '../lib/spec/types';
import { validateConfig } from '../lib/spec/validate';
import { KOCI, kociCli, ROOTFS, rootSkipReason, uniqueId, type Koci } from './helpers/fixtures';

const noLib = S.seccompUnavailable();
const rootSkip = rootSkipReason() ?? noLib;
if (noLib) t.comment(`skipping the BPF checks: ${noLib}`);
if (rootSkip) t.comment(`skipping the container tests: ${rootSkip}`);

const RUNC_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
const EPERM = 1;
const ENOSYS = 38;

/** names a rule allows unconditionally (no args) */
function allowed(p: LinuxSeccomp): Set<string> {
  return new Set((p.syscalls ?? []).filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args?.length).flatMap((r) => r.names));
}
/** every name that appears in some rule */
function mentioned(p: LinuxSeccomp): Set<string> {
  return new Set((p.syscalls ?? []).flatMap((r) => r.names));
}

/** never allowed to a container with runc's default capabilities */
const DANGEROUS = [
  'keyctl', 'add_key', 'request_key', 'mount', 'umount', 'umount2', 'unshare', 'setns', 'reboot', 'kexec_load', 'kexec_file_load',
  'init_module', 'finit_module', 'delete_module', 'bpf', 'perf_event_open', 'open_by_handle_at', 'swapon', 'swapoff', 'userfaultfd',
  'pivot_root', 'chroot', 'sethostname', 'setdomainname', 'acct', 'settimeofday', 'clock_settime', 'stime', 'iopl', 'ioperm', 'syslog',
  'lookup_dcookie', 'quotactl', 'nfsservctl', 'uselib', 'vhangup', 'fsopen', 'fsmount', 'move_mount', 'open_tree', 'mount_setattr',
  'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'kcmp', 'pidfd_getfd', 'process_madvise', 'mbind', 'set_mempolicy',
  'fanotify_init', 'clone3', 'personality', 'socket', 'clone', '_sysctl', 'create_module', 'get_kernel_syms', 'query_module',
];

const ORDINARY = [
  'read', 'write', 'openat', 'close', 'execve', 'exit_group', 'mmap', 'brk', 'futex', 'rt_sigaction', 'wait4', 'fork', 'vfork',
  'getpid', 'getdents64', 'mkdir', 'mkdirat', 'statx', 'newfstatat', 'nanosleep', 'clock_nanosleep', 'uname', 'connect', 'bind',
  'setuid', 'setgroups', 'capget', 'capset', 'prctl', 'seccomp', 'pipe2', 'dup3', 'ioctl', 'kill', 'setsid', 'rseq', 'getrandom',
];

t.test('koci spec profile: runc capabilities, Docker seccomp, valid config; library default unchanged', async (t) => {
  const plain = defaultSpec();
  t.equal(plain.linux!.seccomp, undefined, 'defaultSpec() has no seccomp (the library default stays runc spec)');
  const spec = defaultSpec({ seccomp: true });
  t.same(spec.process!.capabilities, { bounding: RUNC_CAPS, effective: RUNC_CAPS, permitted: RUNC_CAPS }, 'runc spec capabilities');
  t.same(validateConfig(spec), [], 'a config with the profile passes the official schemas');
  t.same(spec.linux!.seccomp, defaultSeccomp(RUNC_CAPS), 'the profile is the one for the bounding set');
  const rootless = defaultSpec({ seccomp: true, rootless: true });
  t.same(validateConfig(rootless), [], 'rootless too');
  t.ok(rootless.linux!.seccomp, 'rootless gets the profile');

  const p = spec.linux!.seccomp!;
  t.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
  t.equal(p.defaultErrnoRet, EPERM);
  const ok = allowed(p);
  t.ok(ok.size > 300, `${ok.size} syscalls allowed`);
  for (const n of ORDINARY) t.ok(ok.has(n), `${n} allowed`);
  for (const n of DANGEROUS) t.notOk(ok.has(n), `${n} not allowed unconditionally`);
  for (const n of ['keyctl', 'add_key', 'request_key', 'mount', 'umount2', 'unshare', 'setns', 'reboot', 'kexec_load', 'init_module', 'open_by_handle_at', 'io_uring_setup', 'userfaultfd']) {
    t.notOk(mentioned(p).has(n), `${n}: no rule at all (default EPERM)`);
  }
  const rules = p.syscalls!;
  t.same(rules.find((r) => r.names.includes('clone3')), { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS }, 'clone3 gets ENOSYS (libc falls back to clone)');
  t.same(
    rules.filter((r) => r.names.includes('clone')),
    [{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] }],
    'clone only without namespace flags',
  );
  t.equal(CLONE_NAMESPACE_FLAGS, 2114060288);
  t.same(
    rules.filter((r) => r.names.includes('personality')).map((r) => r.args?.map((a) => [a.op, a.value])),
    [[['SCMP_CMP_EQ', 0]], [['SCMP_CMP_EQ', 8]], [['SCMP_CMP_EQ', 0x20000]], [['SCMP_CMP_EQ', 0x20008]], [['SCMP_CMP_EQ', 0xffffffff]]],
    'personality only for the harmless personas',
  );
  t.same(rules.find((r) => r.names.includes('socket'))?.args, [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }], 'socket except AF_VSOCK');
});

t.test('the profile follows the capabilities and the architecture', async (t) => {
  const admin = defaultSeccomp([...RUNC_CAPS, 'CAP_SYS_ADMIN']);
  const ok = allowed(admin);
  for (const n of ['mount', 'umount2', 'unshare', 'setns', 'clone', 'clone3', 'sethostname', 'bpf', 'fsopen']) t.ok(ok.has(n), `CAP_SYS_ADMIN: ${n}`);
  t.notOk(admin.syscalls!.some((r) => r.action === 'SCMP_ACT_ERRNO'), 'CAP_SYS_ADMIN: no clone3 ENOSYS rule');
  t.notOk(ok.has('reboot'), 'CAP_SYS_ADMIN does not give reboot');
  const more = allowed(defaultSeccomp(['CAP_SYS_BOOT', 'CAP_SYS_CHROOT', 'CAP_SYS_MODULE', 'CAP_SYS_PTRACE', 'CAP_SYS_TIME', 'CAP_DAC_READ_SEARCH', 'CAP_SYSLOG']));
  for (const n of ['reboot', 'chroot', 'init_module', 'finit_module', 'kcmp', 'pidfd_getfd', 'settimeofday', 'clock_settime', 'open_by_handle_at', 'syslog']) t.ok(more.has(n), `${n} with its capability`);
  t.notOk(more.has('mount'), 'still no mount');

  const x64 = defaultSeccomp(RUNC_CAPS, { arch: 'x64' });
  t.same(x64.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  t.ok(allowed(x64).has('arch_prctl') && allowed(x64).has('modify_ldt'), 'x86_64: arch_prctl, modify_ldt');
  t.notOk(allowed(x64).has('cacheflush'));
  const arm = defaultSeccomp(RUNC_CAPS, { arch: 'arm64' });
  t.same(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  for (const n of ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls']) t.ok(allowed(arm).has(n), `arm64: ${n}`);
  t.notOk(allowed(arm).has('arch_prctl'), 'arm64: no arch_prctl');
  const s390 = defaultSeccomp(RUNC_CAPS, { arch: 's390x' });
  t.equal(s390.syscalls!.find((r) => r.names[0] === 'clone')!.args![0].index, 1, 's390x: clone flags are the second argument');
  t.notOk(allowed(defaultSeccomp(RUNC_CAPS, { kernel: '4.4.0' })).has('ptrace'), 'no ptrace before 4.8');
  t.ok(allowed(defaultSeccomp(RUNC_CAPS, { kernel: '6.1.0-13-amd64' })).has('ptrace'), 'ptrace from 4.8');
});

// ---- the compiled filter --------------------------------------------------

const ALLOW = 0x7fff0000;
const ERRNO = (e: number) => (0x00050000 | e) >>> 0;
const AUDIT_ARCH: Record<string, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

function compile(p: LinuxSeccomp): Insn[] {
  const f = buildSeccomp(p);
  try {
    const [r, w] = libc.pipe2(C.O_CLOEXEC);
    try {
      exportSeccompBpf(f, w);
      closeSync(w);
      const parts: Buffer[] = [];
      const buf = Buffer.alloc(1 << 16);
      for (let n; (n = readSync(r, buf, 0, buf.length, null)) > 0; ) parts.push(Buffer.from(buf.subarray(0, n)));
      const all = Buffer.concat(parts);
      const out: Insn[] = [];
      for (let i = 0; i + 8 <= all.length; i += 8) out.push({ code: all.readUInt16LE(i), jt: all[i + 2], jf: all[i + 3], k: all.readUInt32LE(i + 4) });
      return out;
    } finally {
      closeSync(r);
    }
  } finally {
    releaseSeccomp(f);
  }
}

/** run the classic-BPF program on seccomp_data { nr, arch, ip, args[6] } */
function run(prog: Insn[], arch: number, nr: number, args: bigint[] = []): number {
  const d = Buffer.alloc(64);
  d.writeInt32LE(nr, 0);
  d.writeUInt32LE(arch, 4);
  args.forEach((a, i) => d.writeBigUInt64LE(BigInt.asUintN(64, a), 16 + 8 * i));
  let a = 0;
  let x = 0;
  const m = new Array<number>(16).fill(0);
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc];
    const br = (c: boolean) => (pc += c ? jt : jf);
    if (code === 0x20) a = d.readUInt32LE(k);
    else if (code === 0x00) a = k;
    else if (code === 0x01) x = k;
    else if (code === 0x60) a = m[k];
    else if (code === 0x61) x = m[k];
    else if (code === 0x02) m[k] = a;
    else if (code === 0x03) m[k] = x;
    else if (code === 0x54) a = (a & k) >>> 0;
    else if (code === 0x5c) a = (a & x) >>> 0;
    else if (code === 0x07) x = a;
    else if (code === 0x87) a = x;
    else if (code === 0x05) pc += k;
    else if (code === 0x15) br(a === k);
    else if (code === 0x25) br(a > k);
    else if (code === 0x35) br(a >= k);
    else if (code === 0x45) br((a & k) !== 0);
    else if (code === 0x1d) br(a === x);
    else if (code === 0x2d) br(a > x);
    else if (code === 0x3d) br(a >= x);
    else if (code === 0x06) return k >>> 0;
    else if (code === 0x16) return a >>> 0;
    else throw new Error(`BPF opcode 0x${code.toString(16)} not handled`);
  }
  throw new Error('fell off the program');
}

const nativeArch = AUDIT_ARCH[process.arch];
t.test('the compiled filter: what the kernel will answer', { skip: noLib ?? (nativeArch ? undefined : `no audit arch for ${process.arch}`) }, async (t) => {
  const prog = compile(defaultSeccomp(RUNC_CAPS));
  t.comment(`${prog.length} BPF instructions`);
  const nr = (n: string) => {
    const v = S.syscallResolveName(n);
    if (v < 0) throw new Error(`no syscall ${n} here`);
    return v;
  };
  const ask = (n: string, args: bigint[] = []) => run(prog, nativeArch, nr(n), args);
  for (const n of ['read', 'write', 'execve', 'openat', 'exit_group', 'getpid', 'mkdirat']) t.equal(ask(n), ALLOW, `${n}: allowed`);
  for (const n of ['keyctl', 'add_key', 'request_key', 'mount', 'umount2', 'unshare', 'setns', 'reboot', 'kexec_load', 'init_module', 'bpf', 'chroot', 'pivot_root', 'sethostname', 'io_uring_setup']) {
    t.equal(ask(n), ERRNO(EPERM), `${n}: EPERM`);
  }
  const SIGCHLD = 17n;
  const CLONE_THREAD_FLAGS = 0x3d0f00n; // what pthread_create passes
  t.equal(ask('clone', [SIGCHLD | 0x01200000n]), ALLOW, 'clone for fork: allowed');
  t.equal(ask('clone', [CLONE_THREAD_FLAGS]), ALLOW, 'clone for a thread: allowed');
  for (const [flag, name] of [[0x10000000n, 'CLONE_NEWUSER'], [0x20000n, 'CLONE_NEWNS'], [0x40000000n, 'CLONE_NEWNET'], [0x20000000n, 'CLONE_NEWPID']] as const) {
    t.equal(ask('clone', [SIGCHLD | flag]), ERRNO(EPERM), `clone with ${name}: EPERM`);
  }
  t.equal(ask('clone3'), ERRNO(ENOSYS), 'clone3: ENOSYS');
  t.equal(ask('personality', [0n]), ALLOW, 'personality(PER_LINUX)');
  t.equal(ask('personality', [0xffffffffn]), ALLOW, 'personality query');
  t.equal(ask('personality', [0x0040000n]), ERRNO(EPERM), 'personality(ADDR_NO_RANDOMIZE): EPERM');
  t.equal(ask('socket', [2n, 1n]), ALLOW, 'socket(AF_INET)');
  t.equal(ask('socket', [40n, 1n]), ERRNO(EPERM), 'socket(AF_VSOCK): EPERM');
  if (process.arch === 'x64') {
    // i386 numbers: keyctl 288, add_key 286, getpid 20, mount 21
    const I386 = 0x40000003;
    t.equal(run(prog, I386, 20), ALLOW, 'i386 getpid: allowed (compat ABI filtered, not killed)');
    t.equal(run(prog, I386, 288), ERRNO(EPERM), 'i386 keyctl: EPERM');
    t.equal(run(prog, I386, 286), ERRNO(EPERM), 'i386 add_key: EPERM');
    t.equal(run(prog, I386, 21), ERRNO(EPERM), 'i386 mount: EPERM');
    t.equal(ask('arch_prctl'), ALLOW, 'arch_prctl');
  }
});

t.test('keyctl and add_key fail with EPERM under the loaded filter (forked child)', { skip: rootSkip }, async (t) => {
  const [SYS_keyctl, SYS_add_key, SYS_getpid] = ['keyctl', 'add_key', 'getpid'].map((n) => S.syscallResolveName(n));
  const filter = buildSeccomp(defaultSeccomp(RUNC_CAPS));
  t.teardown(() => releaseSeccomp(filter));
  const [r, w] = libc.pipe2(C.O_CLOEXEC);
  const pid = libc.fork();
  if (pid === 0) {
    let out = 'child failed';
    try {
      libc.prctl(38 /* PR_SET_NO_NEW_PRIVS */, 1);
      loadSeccomp(filter);
      const k = libc.rawSyscall(SYS_keyctl, 'int', 0x0 /* KEYCTL_GET_KEYRING_ID */, 'int', -3 /* session */, 'int', 0);
      const a = libc.rawSyscall(SYS_add_key, 'str', 'user', 'str', 'koci-test', 'str', 'x', 'size_t', 1, 'int', -3);
      const g = libc.rawSyscall(SYS_getpid).ret;
      out = `keyctl=${k.ret}/${k.errno} add_key=${a.ret}/${a.errno} getpid=${g > 0 ? 'ok' : g}`;
    } catch (e) {
      out = `error ${(e as Error).message}`;
    }
    libc.write(w, Buffer.from(out));
    libc._exit(0);
  }
  closeSync(w);
  const deadline = Date.now() + 20_000;
  let st = libc.waitpid(pid, C.WNOHANG);
  while (!st && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 20));
    st = libc.waitpid(pid, C.WNOHANG);
  }
  if (!st) {
    libc.kill(pid, 9);
    libc.waitpid(pid);
  }
  const buf = Buffer.alloc(256);
  const n = readSync(r, buf, 0, buf.length, null);
  closeSync(r);
  t.ok(st, 'the child exited');
  t.equal(buf.subarray(0, n).toString(), `keyctl=-1/${EPERM} add_key=-1/${EPERM} getpid=ok`);
});

// ---- real containers from an unchanged `koci spec` bundle ----------------

/** `koci spec` into a fresh bundle with the busybox rootfs; returns the bundle dir and its config */
function specBundle(t: Test, koci: Koci): { dir: string; config: Spec } {
  const dir = mkdtempSync(join(tmpdir(), 'koci-dprof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(ROOTFS, join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const r = koci(['spec', '--bundle', dir]);
  if (r.status !== 0) throw new Error(`koci spec: ${r.stderr}`);
  return { dir, config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Spec };
}

/** run `script` in the bundle's container (terminal off, seccomp and caps as given) */
function runScript(koci: Koci, dir: string, config: Spec, script: string, edit?: (s: Spec) => void) {
  const s = structuredClone(config);
  s.process!.terminal = false;
  s.process!.args = ['sh', '-c', script];
  edit?.(s);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(s, null, 2));
  return koci(['run', '--bundle', dir, uniqueId('dp')]);
}

t.test('an unchanged koci spec bundle: ordinary commands work, the dangerous ones get EPERM', { skip: rootSkip }, async (t) => {
  const koci = kociCli(t);
  const { dir, config } = specBundle(t, koci);
  t.ok(config.linux!.seccomp, 'koci spec wrote a seccomp profile');
  t.same(config.linux!.seccomp, defaultSeccomp(config.process!.capabilities!.bounding!), 'the default profile for its capabilities');
  // reboot below is triply safe: denied by seccomp, no CAP_SYS_BOOT, and a pid namespace (where it would only end the container)
  t.ok(config.linux!.namespaces!.some((n) => n.type === 'pid'), 'pid namespace');
  t.notOk(config.process!.capabilities!.bounding!.includes('CAP_SYS_BOOT'), 'no CAP_SYS_BOOT');

  const ordinary = [
    'grep -E "^Seccomp(_filters)?:" /proc/self/status',
    'id',
    'hostname',
    'ls / >/dev/null && echo ls=ok',
    'ps >/dev/null && echo ps=ok',
    'mkdir /dev/shm/d && echo mkdir=ok',
    'echo hi >/dev/shm/d/f && cat /dev/shm/d/f',
    'date +%Y >/dev/null && echo date=ok',
    'sleep 0.1 && echo sleep=ok',
    '(sleep 0.1 & wait) && echo fork=ok',
    'echo a | sed s/a/b/ | grep -q b && echo pipe=ok',
    'linux32 true && echo linux32=ok',
    'wget --help 2>&1 | grep -q Usage && echo wget=ok',
    'nc -h 2>&1 | grep -q Usage && echo nc=ok',
  ].join('; ');
  const r = runScript(koci, dir, config, ordinary);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^Seccomp:\s+2$/m, 'filter mode');
  t.match(r.stdout, /^Seccomp_filters:\s+1$/m, 'one filter');
  t.match(r.stdout, /uid=0\(root\) gid=0\(root\)/);
  t.match(r.stdout, /^koci$/m, 'hostname');
  for (const w of ['ls', 'ps', 'mkdir', 'date', 'sleep', 'fork', 'pipe', 'linux32', 'wget', 'nc']) t.match(r.stdout, new RegExp(`^${w}=ok$`, 'm'), w);
  t.match(r.stdout, /^hi$/m, 'cat');

  const denied = [
    'mount -t tmpfs none /tmp; echo mount=$?',
    'umount /proc; echo umount=$?',
    'unshare -U true; echo unshare_user=$?',
    'unshare -m true; echo unshare_mnt=$?',
    'nsenter -t 1 -m true; echo setns=$?',
    'hostname other; echo sethostname=$?',
    'chroot / true; echo chroot=$?',
    'linux64 -R true; echo personality=$?',
    'reboot -f -n; echo reboot=$?',
    'echo alive',
  ].join('; ');
  const d = runScript(koci, dir, config, denied);
  t.equal(d.status, 0, d.stderr);
  for (const w of ['mount', 'umount', 'unshare_user', 'unshare_mnt', 'setns', 'sethostname', 'chroot', 'personality']) t.match(d.stdout, new RegExp(`^${w}=[1-9]\\d*$`, 'm'), `${w} fails`);
  t.match(d.stdout, /^alive$/m, 'the container is still running after reboot');
  t.match(d.stderr, /mount: permission denied/, 'mount: EPERM (busybox words it so)');
  t.match(d.stderr, /unshare\(0x10000000\): Operation not permitted/, 'unshare(CLONE_NEWUSER): EPERM');
  t.match(d.stderr, /umount: can't unmount \/proc: Operation not permitted/);
  t.match(d.stderr, /sethostname: Operation not permitted/);
  t.match(d.stderr, /setns\(\): can't reassociate to namespace 'mnt': Operation not permitted/);
  t.match(d.stderr, /linux64: .*Operation not permitted/);

  // the control: without the profile, the user namespace and the persona are allowed (no capability needed)
  const c = runScript(koci, dir, config, 'unshare -U true; echo unshare_user=$?; linux64 -R true; echo personality=$?', (s) => delete s.linux!.seccomp);
  t.equal(c.status, 0, c.stderr);
  t.match(c.stdout, /^personality=0$/m, 'without seccomp personality(ADDR_NO_RANDOMIZE) works: the profile is what denies it');
  if (/^unshare_user=0$/m.test(c.stdout)) t.pass('without seccomp unshare -U works: the profile is what denies it');
  else t.comment(`this host refuses user namespaces anyway: ${c.stderr.trim()}`);
});

t.test('the profile denies even when the capability is granted later (seccomp, not caps, says no)', { skip: rootSkip }, async (t) => {
  const koci = kociCli(t);
  const { dir, config } = specBundle(t, koci);
  const grant = (s: Spec) => {
    const caps = s.process!.capabilities!;
    for (const set of [caps.bounding!, caps.effective!, caps.permitted!]) set.push('CAP_SYS_ADMIN', 'CAP_SYS_CHROOT');
  };
  const script = 'mount -t tmpfs none /tmp; echo mount=$?; unshare -m true; echo unshare=$?; hostname other; echo sethostname=$?; chroot / true; echo chroot=$?';
  const withProfile = runScript(koci, dir, config, script, grant);
  t.equal(withProfile.status, 0, withProfile.stderr);
  for (const w of ['mount', 'unshare', 'sethostname', 'chroot']) t.match(withProfile.stdout, new RegExp(`^${w}=[1-9]\\d*$`, 'm'), `${w}: denied by the profile`);
  t.match(withProfile.stderr, /Operation not permitted|permission denied/);
  const without = runScript(koci, dir, config, script, (s) => {
    grant(s);
    delete s.linux!.seccomp;
  });
  t.equal(without.status, 0, without.stderr);
  for (const w of ['mount', 'unshare', 'sethostname', 'chroot']) t.match(without.stdout, new RegExp(`^${w}=0$`, 'm'), `${w}: works without the profile`);
});

t.test('loading the whole profile is fast', { skip: rootSkip }, async (t) => {
  const koci = kociCli(t);
  const { dir, config } = specBundle(t, koci);
  const once = (seccomp: boolean) => {
    const s = structuredClone(config);
    s.process!.terminal = false;
    s.process!.args = ['/bin/true'];
    if (!seccomp) delete s.linux!.seccomp;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(s, null, 2));
    const t0 = process.hrtime.bigint();
    const r = spawnSync(KOCI, ['--root', koci.root, 'run', '--bundle', dir, uniqueId('dpt')], { stdio: 'ignore', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`koci run /bin/true: status ${r.status}`);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  // interleaved, so a busy moment on the host weighs on both sides alike
  const runs: Record<'with' | 'without', number[]> = { with: [], without: [] };
  for (let i = 0; i < 7; i++) {
    runs.without.push(once(false));
    runs.with.push(once(true));
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
  const [without, withProfile] = [median(runs.without), median(runs.with)];
  t.comment(`koci run /bin/true, median of 7: ${without.toFixed(0)} ms without seccomp, ${withProfile.toFixed(0)} ms with the default profile`);
  t.ok(withProfile - without < 500, `the profile costs ${(withProfile - without).toFixed(0)} ms (building it and seccomp_load take ~10 ms each)`);
});
