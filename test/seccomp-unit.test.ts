/**
 * linux.seccomp -> libseccomp filter, checked without loading it: the filter
 * is exported as BPF (seccomp_export_bpf through a pipe) and run through a
 * small classic-BPF interpreter against seccomp_data for chosen syscalls and
 * arguments. Also: every refusal (bad action, operator, index, arch, flag)
 * and the unix-socket fd passing used for listenerPath.
 */
import { closeSync, mkdtempSync, readFileSync, readlinkSync, readSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as C from '../bindings/constants';
import * as libc from '../bindings/libc';
import * as S from '../bindings/seccomp';
import { acceptUnix, connectUnix, listenUnix, recvWithFds, sendWithFds } from '../bindings/socket';
import { InvalidSpecError, UnsupportedError } from '../lib/errors';
import { buildSeccomp, containerProcessState, exportSeccompBpf, releaseSeccomp, SeccompUnavailableError } from '../lib/security/seccomp';
import { defaultSpec } from '../lib/spec/default';
import type { LinuxSeccomp } from '../lib/spec/types';

const skip = S.seccompUnavailable();
if (skip) t.comment(`skipping seccomp unit tests: ${skip}`);

const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;
const ALLOW = 0x7fff0000;
const ERRNO = (e: number) => (0x00050000 | e) >>> 0;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** build, export through a pipe, release; `optimize` overrides koci's SCMP_FLTATR_CTL_OPTIMIZE */
function bpfOf(profile: LinuxSeccomp, optimize?: number): { insns: Insn[]; skipped: string[] } {
  const f = buildSeccomp(profile);
  try {
    if (optimize !== undefined) S.attrSet(f.ctx, S.SCMP_FLTATR_CTL_OPTIMIZE, optimize);
    const [r, w] = libc.pipe2(C.O_CLOEXEC);
    try {
      exportSeccompBpf(f, w);
      closeSync(w);
      const chunks: Buffer[] = [];
      const buf = Buffer.alloc(65536);
      let n: number;
      while ((n = readSync(r, buf, 0, buf.length, null)) > 0) chunks.push(Buffer.from(buf.subarray(0, n)));
      const all = Buffer.concat(chunks);
      const insns: Insn[] = [];
      for (let i = 0; i + 8 <= all.length; i += 8) insns.push({ code: all.readUInt16LE(i), jt: all[i + 2], jf: all[i + 3], k: all.readUInt32LE(i + 4) });
      return { insns, skipped: f.skipped };
    } finally {
      closeSync(r);
    }
  } finally {
    releaseSeccomp(f);
  }
}

/** run a seccomp classic-BPF program against seccomp_data { nr, arch, ip, args[6] } */
function evaluate(insns: Insn[], nr: number, args: bigint[] = [], arch = AUDIT_ARCH_X86_64): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(nr, 0);
  data.writeUInt32LE(arch, 4);
  for (let i = 0; i < 6; i++) data.writeBigUInt64LE(BigInt.asUintN(64, args[i] ?? 0n), 16 + 8 * i);
  let A = 0;
  let X = 0;
  const mem = new Array<number>(16).fill(0);
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc];
    const jump = (cond: boolean) => (pc += cond ? jt : jf);
    switch (code) {
      case 0x20: A = data.readUInt32LE(k); break; // ld [k]
      case 0x00: A = k; break; // ld #k
      case 0x01: X = k; break; // ldx #k
      case 0x60: A = mem[k]; break;
      case 0x61: X = mem[k]; break;
      case 0x02: mem[k] = A; break;
      case 0x03: mem[k] = X; break;
      case 0x54: A = (A & k) >>> 0; break; // and #k
      case 0x5c: A = (A & X) >>> 0; break;
      case 0x07: X = A; break; // tax
      case 0x87: A = X; break; // txa
      case 0x05: pc += k; break; // ja
      case 0x15: jump(A === k); break; // jeq #k
      case 0x25: jump(A > k); break; // jgt #k
      case 0x35: jump(A >= k); break; // jge #k
      case 0x45: jump((A & k) !== 0); break; // jset #k
      case 0x1d: jump(A === X); break;
      case 0x2d: jump(A > X); break;
      case 0x3d: jump(A >= X); break;
      case 0x06: return k >>> 0; // ret #k
      case 0x16: return A >>> 0; // ret a
      default: throw new Error(`BPF opcode 0x${code.toString(16)} not handled by the test interpreter`);
    }
  }
  throw new Error('BPF program fell off its end');
}

const nr = (name: string) => S.syscallResolveName(name);

t.test('a denied syscall gets its errno; everything else the default', { skip }, async (t) => {
  const { insns } = bpfOf({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] });
  const mkdir = insns.findIndex((i) => i.code === 0x15 && i.k === nr('mkdir'));
  t.ok(mkdir >= 0, `the program compares nr with mkdir (${nr('mkdir')})`);
  t.ok(insns.some((i) => i.code === 0x06 && i.k === ERRNO(1)), 'a RET SCMP_ACT_ERRNO(EPERM) instruction');
  t.ok(insns.some((i) => i.code === 0x15 && i.k === AUDIT_ARCH_X86_64), 'checks the architecture first');
  t.equal(evaluate(insns, nr('mkdir')), ERRNO(1));
  t.equal(evaluate(insns, nr('mkdirat')), ERRNO(1));
  t.equal(evaluate(insns, nr('getpid')), ALLOW);
  t.equal(evaluate(insns, nr('mkdir'), [], AUDIT_ARCH_I386), 0, 'a foreign architecture is killed (libseccomp bad-arch default: SCMP_ACT_KILL)');
});

t.test('the program is libseccomp\'s binary tree, deciding every syscall as the linear program does', { skip }, async (t) => {
  const profile = defaultSpec({ seccomp: true }).linux!.seccomp!;
  const tree = bpfOf(profile).insns;
  const linear = bpfOf(profile, 1).insns;
  t.not(tree.length, linear.length, `a different program (${tree.length} instructions, linear ${linear.length})`);
  let differ = 0;
  // every syscall number, with arguments that match and miss the default profile's argument rules
  for (let n = 0; n < 512; n++) {
    for (const args of [[], [0x7e020000n], [0x10000000n, 0n, 0n], [1n, 2n, 3n, 4n, 5n, 6n]]) {
      if (evaluate(tree, n, args) !== evaluate(linear, n, args)) differ++;
    }
  }
  t.equal(differ, 0, 'the same decision for 2048 (syscall, arguments) pairs');
});

t.test('actions map to libseccomp values; ERRNO and TRACE default to EPERM', { skip }, async (t) => {
  const cases: Array<[LinuxSeccomp['defaultAction'], number | undefined, number]> = [
    ['SCMP_ACT_KILL', undefined, 0],
    ['SCMP_ACT_KILL_THREAD', undefined, 0],
    ['SCMP_ACT_KILL_PROCESS', undefined, 0x80000000],
    ['SCMP_ACT_TRAP', undefined, 0x00030000],
    ['SCMP_ACT_ERRNO', undefined, ERRNO(1)],
    ['SCMP_ACT_ERRNO', 13, ERRNO(13)],
    ['SCMP_ACT_TRACE', undefined, 0x7ff00001],
    ['SCMP_ACT_TRACE', 7, 0x7ff00007],
    ['SCMP_ACT_LOG', undefined, 0x7ffc0000],
  ];
  for (const [action, errnoRet, want] of cases) {
    const { insns } = bpfOf({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getppid'], action, errnoRet }] });
    t.equal(evaluate(insns, nr('getppid')) >>> 0, want >>> 0, `${action}${errnoRet !== undefined ? `(${errnoRet})` : ''}`);
  }
  const { insns } = bpfOf({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 38, syscalls: [{ names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' }] });
  t.equal(evaluate(insns, nr('mkdir')), ERRNO(38), 'defaultErrnoRet is the default action errno');
  t.equal(evaluate(insns, nr('read')), ALLOW);
});

t.test('argument rules: each operator, the datum in the program, 64-bit values', { skip }, async (t) => {
  const { insns } = bpfOf({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: ['chmod'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 0o777, valueTwo: 0o600, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['fchmodat'], action: 'SCMP_ACT_ERRNO', args: [{ index: 2, value: 0o777, valueTwo: 0o600, op: 'SCMP_CMP_MASKED_EQ' }] },
    ],
  });
  t.ok(insns.some((i) => i.code === 0x54 && i.k === 0o777), 'the mask 0777 appears (AND #k)');
  t.ok(insns.some((i) => i.code === 0x15 && i.k === 0o600), 'the datum 0600 appears (JEQ #k)');
  t.equal(evaluate(insns, nr('chmod'), [0n, 0o100600n]), ERRNO(1), 'chmod 0600 denied');
  t.equal(evaluate(insns, nr('chmod'), [0n, 0o644n]), ALLOW, 'chmod 0644 allowed');
  t.equal(evaluate(insns, nr('fchmodat'), [0n, 0n, 0o600n]), ERRNO(1), 'fchmodat mode is argument 2');
  t.equal(evaluate(insns, nr('fchmodat'), [0n, 0o600n, 0o644n]), ALLOW);

  const ops = {
    SCMP_CMP_NE: (v: bigint) => v !== 10n,
    SCMP_CMP_LT: (v: bigint) => v < 10n,
    SCMP_CMP_LE: (v: bigint) => v <= 10n,
    SCMP_CMP_EQ: (v: bigint) => v === 10n,
    SCMP_CMP_GE: (v: bigint) => v >= 10n,
    SCMP_CMP_GT: (v: bigint) => v > 10n,
  } as const;
  for (const [op, expected] of Object.entries(ops)) {
    const { insns } = bpfOf({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['dup'], action: 'SCMP_ACT_ERRNO', errnoRet: 9, args: [{ index: 0, value: 10, op: op as 'SCMP_CMP_EQ' }] }] });
    for (const v of [0n, 9n, 10n, 11n, 1n << 33n]) {
      t.equal(evaluate(insns, nr('dup'), [v]), expected(v) ? ERRNO(9) : ALLOW, `${op} 10 with ${v}`);
    }
  }
  // a 64-bit datum: both halves compared
  const big = bpfOf({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['dup'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 2 ** 40 + 5, op: 'SCMP_CMP_EQ' }] }] }).insns;
  t.equal(evaluate(big, nr('dup'), [(1n << 40n) + 5n]), ERRNO(1));
  t.equal(evaluate(big, nr('dup'), [5n]), ALLOW, 'the high word matters');
  // six arguments in one rule: all must match
  const six = bpfOf({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['mmap'], action: 'SCMP_ACT_ERRNO', args: [0, 1, 2, 3, 4, 5].map((i) => ({ index: i, value: i + 1, op: 'SCMP_CMP_EQ' as const })) }],
  }).insns;
  t.equal(evaluate(six, nr('mmap'), [1n, 2n, 3n, 4n, 5n, 6n]), ERRNO(1), 'all six match');
  t.equal(evaluate(six, nr('mmap'), [1n, 2n, 3n, 4n, 5n, 7n]), ALLOW, 'one differs');
});

t.test('several conditions on one argument: one rule each (OR), as runc', { skip }, async (t) => {
  const { insns } = bpfOf({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 0, value: 2, op: 'SCMP_CMP_EQ' }] }],
  });
  t.equal(evaluate(insns, nr('personality'), [1n]), ERRNO(1));
  t.equal(evaluate(insns, nr('personality'), [2n]), ERRNO(1));
  t.equal(evaluate(insns, nr('personality'), [3n]), ALLOW);
});

t.test('unknown syscall names are skipped; rules equal to the default are skipped', { skip }, async (t) => {
  const r = bpfOf({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['no_such_syscall_koci', 'mkdir'], action: 'SCMP_ACT_ERRNO' }, { names: ['getpid'], action: 'SCMP_ACT_ALLOW' }] });
  t.same(r.skipped, ['no_such_syscall_koci']);
  t.equal(evaluate(r.insns, nr('mkdir')), ERRNO(1), 'the known name in the same rule still applies');
  const d = bpfOf({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 5, syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 5 }, { names: ['getpid'], action: 'SCMP_ACT_ALLOW' }] });
  t.equal(evaluate(d.insns, nr('mkdir')), ERRNO(5));
  t.equal(evaluate(d.insns, nr('getpid')), ALLOW);
});

t.test('architectures and flags', { skip }, async (t) => {
  const { insns } = bpfOf({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] });
  t.ok(insns.some((i) => i.code === 0x15 && i.k === AUDIT_ARCH_I386), 'i386 is in the filter');
  t.equal(evaluate(insns, 39 /* i386 mkdir */, [], AUDIT_ARCH_I386), ERRNO(1), 'mkdir is denied on i386 too (its own number)');
  t.equal(evaluate(insns, 20 /* i386 getpid */, [], AUDIT_ARCH_I386), ALLOW);
  const flags = bpfOf({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] });
  t.ok(flags.insns.length > 0, 'TSYNC, LOG and SPEC_ALLOW are accepted');
  if (!S.archResolveName('loongarch64')) {
    t.throws(() => buildSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_LOONGARCH64'] }), UnsupportedError, 'an arch this libseccomp lacks');
  }
});

t.test('WAIT_KILLABLE_RECV: passed to seccomp(2) by koci, only with the listener', { skip }, async (t) => {
  // not asked of libseccomp (2.5.x has no attribute for it): any libseccomp builds the profile
  const f = buildSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV', 'SECCOMP_FILTER_FLAG_LOG'] });
  t.equal(f.loadFlags, S.SECCOMP_FILTER_FLAG_LOG, 'no notify rule: ignored (the kernel would refuse it without NEW_LISTENER)');
  releaseSeccomp(f);
  // the kernel probe: the flag alone is EINVAL, with NEW_LISTENER it is taken (Linux >= 5.19), an unknown bit is EINVAL
  t.equal(S.kernelAcceptsFilterFlags(S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV), false, 'alone: refused by the kernel');
  t.equal(S.kernelAcceptsFilterFlags(1 << 30), false, 'an unknown flag: refused');
  const filters = () => readFileSync('/proc/self/status', 'utf8').match(/^Seccomp_filters:\s+(\d+)$/m)?.[1];
  const before = filters();
  const kernelHasIt = S.kernelAcceptsFilterFlags(S.SECCOMP_FILTER_FLAG_NEW_LISTENER | S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
  t.equal(filters(), before, 'probing installed no filter');
  const dir = mkdtempSync(join(tmpdir(), 'koci-seccomp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'l.sock');
  const l = listenUnix(path);
  t.teardown(() => closeSync(l));
  const notify = (flags: NonNullable<LinuxSeccomp['flags']>): LinuxSeccomp => ({ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: path, flags, syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] });
  const [major, minor] = release().split('.').map(Number);
  if (major > 5 || (major === 5 && minor >= 19)) t.ok(kernelHasIt, `Linux ${release()} has it`);
  if (kernelHasIt) {
    const n = buildSeccomp(notify(['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV']));
    t.equal(n.loadFlags, S.SECCOMP_FILTER_FLAG_NEW_LISTENER | S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, 'with notify rules: NEW_LISTENER | WAIT_KILLABLE_RECV');
    releaseSeccomp(n);
    const ts = buildSeccomp(notify(['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV', 'SECCOMP_FILTER_FLAG_TSYNC']));
    t.equal(ts.loadFlags, 1 | 8 | 16 | 32, 'TSYNC | NEW_LISTENER | TSYNC_ESRCH | WAIT_KILLABLE_RECV');
    releaseSeccomp(ts);
  } else {
    t.throws(() => buildSeccomp(notify(['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'])), {
      name: 'UnsupportedError',
      message: /^\/linux\/seccomp\/flags\/0: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported by this kernel/,
    });
  }
  const plain = buildSeccomp(notify([]));
  t.equal(plain.loadFlags, S.SECCOMP_FILTER_FLAG_NEW_LISTENER, 'without the flag: only NEW_LISTENER');
  releaseSeccomp(plain);
});

t.test('bad profiles are refused with the JSON pointer', { skip }, async (t) => {
  const bad: Array<[LinuxSeccomp, RegExp]> = [
    [{ defaultAction: 'SCMP_ACT_BOGUS' as 'SCMP_ACT_ALLOW' }, /\/linux\/seccomp\/defaultAction unknown seccomp action "SCMP_ACT_BOGUS"/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOPE' as 'SCMP_ACT_ERRNO' }] }, /\/linux\/seccomp\/syscalls\/0\/action unknown seccomp action/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] }, /\/linux\/seccomp\/architectures\/0 unknown seccomp architecture "SCMP_ARCH_VAX"/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_BOGUS'] }, /\/linux\/seccomp\/flags\/0 unknown seccomp flag/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['dup'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }, /args\/0\/index argument index 6 is out of range/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['dup'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_ABOUT' as 'SCMP_CMP_EQ' }] }] }, /unknown seccomp operator "SCMP_CMP_ABOUT"/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['dup'], action: 'SCMP_ACT_KILL', errnoRet: 1 }] }, /errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE/],
    [{ defaultAction: 'SCMP_ACT_NOTIFY' }, /SCMP_ACT_NOTIFY cannot be the default action/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['uname'], action: 'SCMP_ACT_NOTIFY' }] }, /listenerPath/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/x', syscalls: [{ names: ['sendmsg'], action: 'SCMP_ACT_NOTIFY' }] }, /cannot be used for sendmsg/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [], action: 'SCMP_ACT_ERRNO' }] }, /at least one name/],
  ];
  for (const [profile, message] of bad) {
    t.throws(() => buildSeccomp(profile), { name: 'InvalidSpecError', message }, message.source);
    try {
      buildSeccomp(profile);
    } catch (e) {
      t.ok(e instanceof InvalidSpecError && !e.message.includes('\n'), 'one line, InvalidSpecError');
    }
  }
  t.throws(() => buildSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/nonexistent/koci.sock', syscalls: [{ names: ['uname'], action: 'SCMP_ACT_NOTIFY' }] }), {
    name: 'SyscallError',
    code: 'ENOENT',
    message: /connect \/nonexistent\/koci\.sock/,
  });
});

t.test('SeccompUnavailableError says what is missing', async (t) => {
  const e = new SeccompUnavailableError('libseccomp.so.2 could not be loaded (test)');
  t.ok(e instanceof UnsupportedError);
  t.equal(e.code, 'EKOCI_UNSUPPORTED');
  t.match(e.message, /^linux\.seccomp: libseccomp\.so\.2 could not be loaded \(test\); install libseccomp/);
});

t.test('listener socket: state JSON and the fd in one message (SCM_RIGHTS)', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koci-seccomp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'l.sock');
  const l = listenUnix(path);
  const c = connectUnix(path);
  const s = acceptUnix(l);
  const [pr, pw] = libc.pipe2(C.O_CLOEXEC);
  const state = { ociVersion: '1.3.0', id: 'x', status: 'created' as const, bundle: '/b', pid: 42 };
  const msg = containerProcessState(state, 'meta');
  sendWithFds(c, Buffer.from(JSON.stringify(msg)), [pw]);
  const got = recvWithFds(s);
  t.same(JSON.parse(got.data.toString()), { ociVersion: '1.3.0', fds: ['seccompFd'], pid: 42, metadata: 'meta', state });
  t.equal(got.fds.length, 1, 'one fd');
  t.not(got.fds[0], pw, 'a new fd number in the receiver');
  t.equal(readlinkSync(`/proc/self/fd/${got.fds[0]}`), readlinkSync(`/proc/self/fd/${pw}`), 'the same pipe');
  for (const fd of [l, c, s, pr, pw, ...got.fds]) closeSync(fd);
});
