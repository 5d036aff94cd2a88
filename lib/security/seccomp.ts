/**
 * linux.seccomp through libseccomp, with runc's semantics so that profiles
 * written for runc/crun/youki behave the same:
 *
 * - the filter is built (names resolved, rules added) and compiled to BPF by
 *   the runtime before it forks, so a bad profile is refused before anything
 *   exists; the forked init inherits the program and only hands it to the
 *   kernel (seccomp(2), with the flags seccomp_load would pass), as the last
 *   step before execve (execve is the first filtered call);
 * - a process may keep a memo of programs by profile (the library's zygote
 *   does, in memory; the CLI on disk, seccomp-cache.ts): the same profile
 *   again costs no libseccomp work at all;
 * - SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD; ERRNO and TRACE default to EPERM;
 * - syscall names this libseccomp does not know are skipped;
 * - a rule whose action is the default action is skipped (libseccomp refuses it);
 * - several conditions on one argument become one rule per condition;
 * - libseccomp's own no_new_privs is off: process.noNewPrivileges decides;
 * - SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is passed to seccomp(2) by koci
 *   itself (libseccomp < 2.6 has no attribute for it), only together with
 *   SECCOMP_FILTER_FLAG_NEW_LISTENER, i.e. when the profile has
 *   SCMP_ACT_NOTIFY rules: the kernel refuses it alone, and without a
 *   listener it means nothing (ignored, as libseccomp, runc and crun do);
 * - SCMP_ACT_NOTIFY: the runtime connects to listenerPath before it forks,
 *   and the init sends the listener fd with the container process state
 *   (runtime-spec "containerProcessState") over it right after seccomp_load.
 */
import * as S from '../../bindings/seccomp';
import { connectUnix, sendWithFds } from '../../bindings/socket';
import * as libc from '../../bindings/libc';
import { fstatSync, readSync } from 'node:fs';
import { release } from 'node:os';
import { InvalidSpecError, SyscallError, UnsupportedError } from '../errors';
import type { LinuxSeccomp, LinuxSeccompAction, State } from '../spec/types';

/** linux.seccomp asks for seccomp but libseccomp cannot be loaded on this host */
export class SeccompUnavailableError extends UnsupportedError {
  override name = 'SeccompUnavailableError';
  constructor(readonly reason: string) {
    super(`linux.seccomp: ${reason}; install libseccomp (Debian/Ubuntu: libseccomp2) or remove linux.seccomp from config.json`);
  }
}

/** a built (not yet loaded) filter; owned by the runtime, inherited by the forked init */
export interface SeccompFilter {
  /** the libseccomp context; null when the program came from the memo */
  ctx: S.FilterCtx;
  /** the compiled program (struct sock_filter[]); empty from buildSeccomp, compiled by prepareSeccomp */
  bpf: Buffer;
  /** SECCOMP_FILTER_FLAG_* for loading bpf */
  loadFlags: number;
  /** the profile has SCMP_ACT_NOTIFY rules */
  notify: boolean;
  /** socket connected to listenerPath (runtime side), -1 when none */
  listenerFd: number;
  listenerPath?: string;
  listenerMetadata?: string;
  /** syscall names skipped because this libseccomp does not know them */
  skipped: string[];
}

/** the spec's flags and the libseccomp attribute each sets (undefined: koci passes it to seccomp(2) itself) */
const FLAGS: Record<string, number | undefined> = {
  SECCOMP_FILTER_FLAG_TSYNC: S.SCMP_FLTATR_CTL_TSYNC,
  SECCOMP_FILTER_FLAG_LOG: S.SCMP_FLTATR_CTL_LOG,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: S.SCMP_FLTATR_CTL_SSB,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: undefined,
};

/** the seccomp(2) flags WAIT_KILLABLE_RECV is loaded with (the kernel refuses it without a listener) */
const WAIT_KILLABLE_LOAD = S.SECCOMP_FILTER_FLAG_NEW_LISTENER | S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;

const OPS: Record<string, number> = {
  SCMP_CMP_NE: S.SCMP_CMP.NE,
  SCMP_CMP_LT: S.SCMP_CMP.LT,
  SCMP_CMP_LE: S.SCMP_CMP.LE,
  SCMP_CMP_EQ: S.SCMP_CMP.EQ,
  SCMP_CMP_GE: S.SCMP_CMP.GE,
  SCMP_CMP_GT: S.SCMP_CMP.GT,
  SCMP_CMP_MASKED_EQ: S.SCMP_CMP.MASKED_EQ,
};

/** runtime-spec's SeccompArch names */
const ARCHES = new Set(
  'X86 X86_64 X32 ARM AARCH64 MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 MIPSEL64N32 PPC PPC64 PPC64LE S390 S390X PARISC PARISC64 RISCV64 LOONGARCH64 M68K SH SHEB'
    .split(' ')
    .map((a) => `SCMP_ARCH_${a}`),
);

const EPERM = 1;
const MAX_ARGS = 6;
const FILE = 'config.json';

function invalid(pointer: string, message: string): never {
  throw new InvalidSpecError(FILE, [{ pointer, rule: 'seccomp', message }]);
}

/** the libseccomp action value for an OCI action (undefined when unknown) */
export function actionValue(action: LinuxSeccompAction | string, errnoRet: number | undefined): number | undefined {
  switch (action) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return S.SCMP_ACT_KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return S.SCMP_ACT_KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return S.SCMP_ACT_TRAP;
    case 'SCMP_ACT_ERRNO':
      return S.SCMP_ACT_ERRNO(errnoRet ?? EPERM);
    case 'SCMP_ACT_TRACE':
      return S.SCMP_ACT_TRACE(errnoRet ?? EPERM);
    case 'SCMP_ACT_ALLOW':
      return S.SCMP_ACT_ALLOW;
    case 'SCMP_ACT_LOG':
      return S.SCMP_ACT_LOG;
    case 'SCMP_ACT_NOTIFY':
      return S.SCMP_ACT_NOTIFY;
    default:
      return undefined;
  }
}

function checkedAction(pointer: string, action: string, errnoRet: number | undefined): number {
  const v = actionValue(action, errnoRet);
  if (v === undefined) invalid(`${pointer}`, `unknown seccomp action ${JSON.stringify(action)} (expected one of SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG, SCMP_ACT_NOTIFY)`);
  if (errnoRet !== undefined) {
    if (action !== 'SCMP_ACT_ERRNO' && action !== 'SCMP_ACT_TRACE') invalid(pointer, `errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not ${action}`);
    if (!Number.isInteger(errnoRet) || errnoRet < 0 || errnoRet > 0xffff) invalid(pointer, `errnoRet ${errnoRet} is not an errno number (0-65535)`);
  }
  return v;
}

/** a JSON number as the uint64 libseccomp compares (negative values wrap, as a C cast would) */
function datum(v: number | undefined): bigint {
  if (v === undefined) return 0n;
  return BigInt.asUintN(64, BigInt(Math.trunc(v)));
}

function libraryOrThrow(): void {
  const why = S.seccompUnavailable();
  if (why) throw new SeccompUnavailableError(why);
}

/** the libseccomp version, as "2.5.4" */
function libVersion(): string {
  const v = S.version();
  return `${v.major}.${v.minor}.${v.micro}`;
}

/**
 * Build the filter for a profile without loading it. Throws InvalidSpecError
 * for a profile that breaks the spec (unknown action, operator, architecture,
 * flag), UnsupportedError for one this host's libseccomp cannot express, and
 * SeccompUnavailableError without libseccomp. The caller releases it.
 */
export function buildSeccomp(profile: LinuxSeccomp): SeccompFilter {
  const base = '/linux/seccomp';
  // spec checks first: they need no library
  const defaultAction = profile.defaultAction as string;
  if (defaultAction === 'SCMP_ACT_NOTIFY') invalid(`${base}/defaultAction`, 'SCMP_ACT_NOTIFY cannot be the default action');
  for (const [i, a] of (profile.architectures ?? []).entries()) {
    if (!ARCHES.has(a)) invalid(`${base}/architectures/${i}`, `unknown seccomp architecture ${JSON.stringify(a)}`);
  }
  for (const [i, f] of (profile.flags ?? []).entries()) {
    if (!(f in FLAGS)) invalid(`${base}/flags/${i}`, `unknown seccomp flag ${JSON.stringify(f)} (expected one of ${Object.keys(FLAGS).join(', ')})`);
  }
  let notify = false;
  for (const [i, rule] of (profile.syscalls ?? []).entries()) {
    const p = `${base}/syscalls/${i}`;
    checkedAction(`${p}/action`, rule.action, rule.errnoRet);
    if (rule.action === 'SCMP_ACT_NOTIFY') {
      notify = true;
      // the init hands the listener fd over with sendmsg after seccomp_load: a notified sendmsg would wait for itself
      const self = rule.names?.find((n) => n === 'sendmsg');
      if (self) invalid(`${p}/names`, `SCMP_ACT_NOTIFY cannot be used for ${self}: koci sends the listener fd with it`);
    }
    if (!Array.isArray(rule.names) || rule.names.length === 0) invalid(`${p}/names`, 'a syscall rule needs at least one name');
    for (const [j, arg] of (rule.args ?? []).entries()) {
      if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index >= MAX_ARGS) invalid(`${p}/args/${j}/index`, `argument index ${arg.index} is out of range 0-5`);
      if (!(arg.op in OPS)) invalid(`${p}/args/${j}/op`, `unknown seccomp operator ${JSON.stringify(arg.op)} (expected one of ${Object.keys(OPS).join(', ')})`);
    }
  }
  if (notify && !profile.listenerPath) invalid(`${base}/listenerPath`, 'SCMP_ACT_NOTIFY rules need listenerPath (where the listener fd is sent)');
  const defaultValue = checkedAction(`${base}/defaultAction`, defaultAction, profile.defaultErrnoRet);

  libraryOrThrow();
  const ctx = S.init(defaultValue);
  const filter: SeccompFilter = { ctx, bpf: Buffer.alloc(0), loadFlags: loadFlags(profile, notify), notify, listenerFd: -1, listenerPath: profile.listenerPath, listenerMetadata: profile.listenerMetadata, skipped: [] };
  try {
    // libseccomp's own no_new_privs would override process.noNewPrivileges
    S.attrSet(ctx, S.SCMP_FLTATR_CTL_NNP, 0, 'no_new_privs');
    try {
      S.attrSet(ctx, S.SCMP_FLTATR_API_SYSRAWRC, 1); // the kernel's errno from seccomp_load, not ECANCELED
    } catch {
      /* older libseccomp: less precise errors, same filter */
    }
    try {
      // the syscalls sorted into a binary tree: the same decisions, found in fewer instructions; the
      // kernel's own check of the program at load takes half the time (~0.5 ms for Docker's profile)
      S.attrSet(ctx, S.SCMP_FLTATR_CTL_OPTIMIZE, 2);
    } catch {
      /* libseccomp before 2.5: the linear program */
    }
    for (const [i, a] of (profile.architectures ?? []).entries()) {
      const token = S.archResolveName(a.slice('SCMP_ARCH_'.length).toLowerCase());
      if (!token) throw new UnsupportedError(`${base}/architectures/${i}: ${a} is not supported by libseccomp ${libVersion()}`);
      S.archAdd(ctx, token, a);
    }
    for (const [i, f] of (profile.flags ?? []).entries()) {
      const attr = FLAGS[f];
      if (attr === undefined) {
        // WAIT_KILLABLE_RECV: only loaded with a listener; a kernel without it is refused now, before anything exists
        if (notify && !S.kernelAcceptsFilterFlags(WAIT_KILLABLE_LOAD)) {
          throw new UnsupportedError(`${base}/flags/${i}: ${f} is not supported by this kernel (${release()}; it needs Linux 5.19 or later)`);
        }
        continue;
      }
      try {
        S.attrSet(ctx, attr, 1, f);
      } catch (e) {
        throw new UnsupportedError(`${base}/flags/${i}: ${f} is not supported by libseccomp ${libVersion()} on this kernel (${(e as Error).message})`);
      }
    }
    for (const [i, rule] of (profile.syscalls ?? []).entries()) {
      const value = actionValue(rule.action, rule.errnoRet)!;
      if (value === defaultValue) continue; // as runc: libseccomp refuses a rule that repeats the default
      const conds: S.ArgCmp[] = (rule.args ?? []).map((a) => ({ arg: a.index, op: OPS[a.op], datumA: datum(a.value), datumB: datum(a.valueTwo) }));
      const perArg = new Map<number, number>();
      for (const c of conds) perArg.set(c.arg, (perArg.get(c.arg) ?? 0) + 1);
      // several conditions on one argument: libseccomp refuses them in one rule; runc adds one rule per condition
      const sets = [...perArg.values()].some((n) => n > 1) ? conds.map((c) => [c]) : [conds];
      for (const name of rule.names) {
        const nr = S.syscallResolveName(name);
        if (nr === S.NR_SCMP_ERROR) {
          filter.skipped.push(name);
          continue;
        }
        for (const set of sets) {
          try {
            S.ruleAddArray(ctx, value, nr, set, name);
          } catch (e) {
            const why = SyscallError.is(e) ? `${e.code}` : (e as Error).message;
            invalid(`${base}/syscalls/${i}`, `libseccomp refused the rule for ${name}: ${why}`);
          }
        }
      }
    }
    if (notify) filter.listenerFd = connectUnix(profile.listenerPath!);
  } catch (e) {
    S.release(ctx);
    throw e;
  }
  return filter;
}

const ACTIONS = ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY'];

/** what `features` reports under linux.seccomp: names koci maps, and the flags this libseccomp and kernel accept */
export function seccompFeatures(): { enabled: boolean; actions: string[]; operators: string[]; archs: string[]; knownFlags: string[]; supportedFlags: string[] } {
  const enabled = S.seccompUnavailable() === undefined;
  const supportedFlags: string[] = [];
  const archs: string[] = [];
  if (enabled) {
    const ctx = S.init(S.SCMP_ACT_ALLOW);
    try {
      for (const [name, attr] of Object.entries(FLAGS)) {
        if (attr === undefined) {
          if (S.kernelAcceptsFilterFlags(WAIT_KILLABLE_LOAD)) supportedFlags.push(name);
          continue;
        }
        try {
          S.attrSet(ctx, attr, 1);
          supportedFlags.push(name);
        } catch {
          /* not on this libseccomp or kernel */
        }
      }
    } finally {
      S.release(ctx);
    }
    for (const a of ARCHES) if (S.archResolveName(a.slice('SCMP_ARCH_'.length).toLowerCase())) archs.push(a);
  }
  return { enabled, actions: ACTIONS, operators: Object.keys(OPS), archs, knownFlags: Object.keys(FLAGS), supportedFlags };
}

/** what seccomp_load would pass to seccomp(2) for this profile */
function loadFlags(profile: LinuxSeccomp, notify: boolean): number {
  const bits: Record<string, number> = {
    SECCOMP_FILTER_FLAG_TSYNC: S.SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_LOG: S.SECCOMP_FILTER_FLAG_LOG,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW: S.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
  };
  let flags = 0;
  for (const f of profile.flags ?? []) flags |= bits[f] ?? 0;
  if (notify) flags |= S.SECCOMP_FILTER_FLAG_NEW_LISTENER;
  // only with the listener: the kernel refuses it alone (EINVAL); without notify rules it is ignored
  if (notify && profile.flags?.includes('SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV')) flags |= S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
  // the kernel takes TSYNC with a listener only when a failed sync may report ESRCH instead of a thread id
  if (notify && flags & S.SECCOMP_FILTER_FLAG_TSYNC) flags |= S.SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  return flags;
}

/** what a memo keeps of a compiled profile */
export interface CompiledSeccomp {
  bpf: Buffer;
  loadFlags: number;
  notify: boolean;
  skipped: string[];
}

/** programs by profile (JSON text), kept by a process that prepares the same profiles again and again */
export interface SeccompMemo {
  get(profile: string): CompiledSeccomp | undefined;
  set(profile: string, compiled: CompiledSeccomp): void;
  /** a container was created with what was set: a memo that persists does it now (seccomp-cache.ts) */
  keep?(): void;
}

let memo: SeccompMemo | undefined;

/** have prepareSeccomp consult and fill a memo */
export function useSeccompMemo(m: SeccompMemo | undefined): void {
  memo = m;
}

/** the container (or exec'd process) this process prepared a filter for exists: let the memo keep the program */
export function keepSeccomp(): void {
  memo?.keep?.();
}

/** seccomp_export_bpf into a memfd, read back */
function compile(ctx: S.FilterCtx): Buffer {
  const fd = libc.memfdCreate('koci-seccomp', 1 /* MFD_CLOEXEC */);
  try {
    S.exportBpf(ctx, fd);
    const bpf = Buffer.alloc(fstatSync(fd).size);
    readSync(fd, bpf, 0, bpf.length, 0);
    return bpf;
  } finally {
    libc.close(fd);
  }
}

/** buildSeccomp and compile, for a config that may have no linux.seccomp (the memo's program when it has this profile) */
export function prepareSeccomp(profile: LinuxSeccomp | undefined): SeccompFilter | undefined {
  if (!profile) return undefined;
  const key = memo ? JSON.stringify(profile) : undefined;
  const known = key === undefined ? undefined : memo!.get(key);
  if (known) {
    const filter: SeccompFilter = { ctx: null, ...known, listenerFd: -1, listenerPath: profile.listenerPath, listenerMetadata: profile.listenerMetadata };
    if (filter.notify) filter.listenerFd = connectUnix(profile.listenerPath!);
    return filter;
  }
  const filter = buildSeccomp(profile);
  try {
    filter.bpf = compile(filter.ctx);
  } catch (e) {
    releaseSeccomp(filter);
    throw e;
  }
  if (key !== undefined) memo!.set(key, { bpf: filter.bpf, loadFlags: filter.loadFlags, notify: filter.notify, skipped: filter.skipped });
  return filter;
}

/** the runtime's side: free the context and close its copy of the listener socket */
export function releaseSeccomp(filter: SeccompFilter | undefined): void {
  if (!filter) return;
  if (filter.listenerFd >= 0) {
    try {
      libc.close(filter.listenerFd);
    } catch {
      /* already closed */
    }
    filter.listenerFd = -1;
  }
  if (filter.ctx !== null) S.release(filter.ctx);
  filter.ctx = null;
}

/** the filter as raw BPF (struct sock_filter[], 8 bytes each), written to fd */
export function exportSeccompBpf(filter: SeccompFilter, fd: number): void {
  S.exportBpf(filter.ctx, fd);
}

/** runtime-spec containerProcessState, sent with the listener fd */
export function containerProcessState(state: State, metadata?: string): Record<string, unknown> {
  return { ociVersion: state.ociVersion, fds: ['seccompFd'], pid: state.pid, metadata: metadata ?? '', state };
}

/**
 * In the init, last before execve: load the filter; with SCMP_ACT_NOTIFY rules
 * send the listener fd and the container process state over listenerPath's
 * socket, then close both (nothing of it reaches the container process).
 */
export function loadSeccomp(filter: SeccompFilter, state?: State): void {
  // prepareSeccomp compiled it before the fork; a filter straight from buildSeccomp is compiled here
  const nfd = S.setModeFilter(filter.bpf.length ? filter.bpf : compile(filter.ctx), filter.loadFlags);
  if (!filter.notify) return;
  const msg = Buffer.from(JSON.stringify(containerProcessState({ ...(state as State), status: 'created' }, filter.listenerMetadata)));
  try {
    sendWithFds(filter.listenerFd, msg, [nfd]);
  } catch (e) {
    throw SyscallError.is(e) ? new SyscallError(e.syscall, e.errno, filter.listenerPath) : e;
  } finally {
    libc.close(nfd);
    libc.close(filter.listenerFd);
  }
}
