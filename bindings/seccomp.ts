/**
 * libseccomp (`libseccomp.so.2`) through koffi, as runc, crun and youki use it.
 * The library is loaded on first use: a host without it only fails a config
 * that asks for seccomp (seccompUnavailable() says why, without throwing).
 *
 * libseccomp returns -errno on failure; each wrapper turns that into a
 * SyscallError named after the libseccomp call.
 */
import * as koffi from 'koffi';
import * as C from './constants';
import { SyscallError } from './errors';
import { fn as libcFn } from './libc';

export const LIBSECCOMP = 'libseccomp.so.2';

// actions (seccomp.h)
export const SCMP_ACT_KILL_PROCESS = 0x80000000;
export const SCMP_ACT_KILL_THREAD = 0x00000000;
export const SCMP_ACT_TRAP = 0x00030000;
export const SCMP_ACT_NOTIFY = 0x7fc00000;
export const SCMP_ACT_LOG = 0x7ffc0000;
export const SCMP_ACT_ALLOW = 0x7fff0000;
export const SCMP_ACT_ERRNO = (ret: number): number => (0x00050000 | (ret & 0xffff)) >>> 0;
export const SCMP_ACT_TRACE = (ret: number): number => (0x7ff00000 | (ret & 0xffff)) >>> 0;

// enum scmp_compare
export const SCMP_CMP = { NE: 1, LT: 2, LE: 3, EQ: 4, GE: 5, GT: 6, MASKED_EQ: 7 } as const;

// enum scmp_filter_attr
export const SCMP_FLTATR_ACT_DEFAULT = 1;
export const SCMP_FLTATR_ACT_BADARCH = 2;
export const SCMP_FLTATR_CTL_NNP = 3;
export const SCMP_FLTATR_CTL_TSYNC = 4;
export const SCMP_FLTATR_CTL_LOG = 6;
export const SCMP_FLTATR_CTL_SSB = 7;
/** 1: by priority (the default), 2: a binary tree of the syscalls (libseccomp 2.5+) */
export const SCMP_FLTATR_CTL_OPTIMIZE = 8;
export const SCMP_FLTATR_API_SYSRAWRC = 9;
/** libseccomp >= 2.6 only; koci does not use it: it passes SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV to seccomp(2) itself */
export const SCMP_FLTATR_CTL_WAITKILL = 10;

/** __NR_SCMP_ERROR: seccomp_syscall_resolve_name's "no such syscall" */
export const NR_SCMP_ERROR = -1;

/** an opaque scmp_filter_ctx */
export type FilterCtx = unknown;

export interface ArgCmp {
  /** argument index 0..5 */
  arg: number;
  /** SCMP_CMP.* */
  op: number;
  datumA: bigint;
  datumB: bigint;
}

type Fn = ReturnType<koffi.LibraryHandle['func']>;
let lib: koffi.LibraryHandle | undefined;
let loadError: string | undefined;
const fns = new Map<string, Fn>();

function load(): koffi.LibraryHandle {
  if (lib) return lib;
  if (loadError !== undefined) throw new Error(loadError);
  try {
    lib = koffi.load(LIBSECCOMP);
  } catch (e) {
    loadError = `${LIBSECCOMP} could not be loaded (${e instanceof Error ? e.message : String(e)})`;
    throw new Error(loadError);
  }
  koffi.struct('koci_scmp_arg_cmp', { arg: 'uint', op: 'int', datum_a: 'uint64', datum_b: 'uint64' });
  koffi.struct('koci_scmp_version', { major: 'uint', minor: 'uint', micro: 'uint' });
  return lib;
}

function fn(proto: string): Fn {
  let f = fns.get(proto);
  if (!f) {
    f = load().func(proto);
    fns.set(proto, f);
  }
  return f;
}

/** why libseccomp cannot be used here, or undefined when it can */
export function seccompUnavailable(): string | undefined {
  try {
    load();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** libseccomp's convention: a negative return is -errno */
function check(ret: number, call: string, what?: string): number {
  if (ret < 0) throw new SyscallError(call, -ret, what);
  return ret;
}

export function version(): { major: number; minor: number; micro: number } {
  const p = fn('const koci_scmp_version *seccomp_version(void)')();
  return p === null ? { major: 0, minor: 0, micro: 0 } : koffi.decode(p, 'koci_scmp_version');
}

export function init(defaultAction: number): FilterCtx {
  const ctx = fn('void *seccomp_init(uint32_t def_action)')(defaultAction >>> 0);
  if (ctx === null) throw new SyscallError('seccomp_init', 22 /* EINVAL */);
  return ctx;
}

export function release(ctx: FilterCtx): void {
  fn('void seccomp_release(void *ctx)')(ctx);
}

/** the arch token for a libseccomp arch name ("x86_64", "aarch64"), 0 when unknown */
export function archResolveName(name: string): number {
  return fn('uint32_t seccomp_arch_resolve_name(const char *name)')(name);
}

export function archNative(): number {
  return fn('uint32_t seccomp_arch_native(void)')();
}

/** add an architecture; one already in the filter is not an error */
export function archAdd(ctx: FilterCtx, token: number, name?: string): void {
  const r = fn('int seccomp_arch_add(void *ctx, uint32_t arch_token)')(ctx, token >>> 0) as number;
  if (r === -17 /* EEXIST */) return;
  check(r, 'seccomp_arch_add', name);
}

/** the native syscall number for a name, NR_SCMP_ERROR when this libseccomp does not know it */
export function syscallResolveName(name: string): number {
  return fn('int seccomp_syscall_resolve_name(const char *name)')(name);
}

export function ruleAddArray(ctx: FilterCtx, action: number, syscall: number, args: ArgCmp[], name?: string): void {
  const f = fn('int seccomp_rule_add_array(void *ctx, uint32_t action, int syscall, unsigned int arg_cnt, const koci_scmp_arg_cmp *arg_array)');
  const arr = args.map((a) => ({ arg: a.arg, op: a.op, datum_a: a.datumA, datum_b: a.datumB }));
  check(f(ctx, action >>> 0, syscall, arr.length, arr.length ? arr : null) as number, 'seccomp_rule_add_array', name);
}

export function attrSet(ctx: FilterCtx, attr: number, value: number, what?: string): void {
  check(fn('int seccomp_attr_set(void *ctx, int attr, uint32_t value)')(ctx, attr, value >>> 0) as number, 'seccomp_attr_set', what);
}

/** load the filter into the kernel for the calling thread (or all threads with TSYNC) */
export function loadFilter(ctx: FilterCtx): void {
  check(fn('int seccomp_load(void *ctx)')(ctx) as number, 'seccomp_load');
}

/** the user-notification listener fd seccomp_load got (filters with SCMP_ACT_NOTIFY rules) */
export function notifyFd(ctx: FilterCtx): number {
  return check(fn('int seccomp_notify_fd(void *ctx)')(ctx) as number, 'seccomp_notify_fd');
}

// seccomp(2) SECCOMP_SET_MODE_FILTER flags, as seccomp_load passes them
export const SECCOMP_FILTER_FLAG_TSYNC = 1;
export const SECCOMP_FILTER_FLAG_LOG = 2;
export const SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4;
export const SECCOMP_FILTER_FLAG_NEW_LISTENER = 8;
export const SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 16;
export const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 32;
const SECCOMP_SET_MODE_FILTER = 1;

let fprogType: koffi.TypeObject | undefined;

/**
 * seccomp(SECCOMP_SET_MODE_FILTER): install a BPF program (struct
 * sock_filter[], as exportBpf writes it) for the calling thread. Returns the
 * listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0.
 */
export function setModeFilter(bpf: Buffer, flags: number): number {
  fprogType ??= koffi.struct('koci_sock_fprog', { len: 'uint16', filter: 'void *' });
  const prog = { len: bpf.length / 8, filter: bpf };
  const r = Number(libcFn('long syscall(long number, ...)')(C.arch.SYS_seccomp, 'uint', SECCOMP_SET_MODE_FILTER, 'uint', flags, 'koci_sock_fprog *', prog));
  if (r < 0) throw new SyscallError('seccomp', koffi.errno());
  // TSYNC without a listener: a positive return names a thread that could not be synced
  if (r > 0 && !(flags & SECCOMP_FILTER_FLAG_NEW_LISTENER)) throw new SyscallError('seccomp', 16 /* EBUSY */, `thread ${r}`);
  return r;
}

/**
 * Whether this kernel's seccomp(SECCOMP_SET_MODE_FILTER) takes these flags,
 * asked as libseccomp asks it: with a NULL program, which a kernel that
 * accepts the flags refuses with EFAULT (and one that does not, with EINVAL).
 * Nothing is installed either way.
 */
export function kernelAcceptsFilterFlags(flags: number): boolean {
  const r = Number(libcFn('long syscall(long number, ...)')(C.arch.SYS_seccomp, 'uint', SECCOMP_SET_MODE_FILTER, 'uint', flags, 'void *', null));
  return r < 0 && koffi.errno() === 14 /* EFAULT */;
}

/** write the filter as raw BPF (struct sock_filter[]) to fd */
export function exportBpf(ctx: FilterCtx, fd: number): void {
  check(fn('int seccomp_export_bpf(void *ctx, int fd)')(ctx, fd) as number, 'seccomp_export_bpf');
}

/** the name of syscall `num` on the native arch, null when there is none (libseccomp allocates it; freed here) */
export function syscallResolveNum(num: number): string | null {
  const p = fn('void *seccomp_syscall_resolve_num_arch(uint32_t arch, int num)')(0, num);
  if (p === null) return null;
  const name = koffi.decode(p, 'char', -1) as string;
  fn('void free(void *)')(p);
  return name;
}
