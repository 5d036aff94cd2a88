/**
 * The last steps of every container process, shared by the container's init
 * and by `exec`: limits, user, capabilities, no_new_privs, seccomp, cwd, and
 * then the hand-over of exactly the right fds and the execve itself.
 * Synchronous code only: it runs in forked children.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import * as libc from '../../bindings/libc';
import { SetupError } from '../errors';
import { applyCapabilities, dropBounding, planCapabilities } from '../security/capabilities';
import { setExecLabel } from '../security/lsm';
import { loadSeccomp, type SeccompFilter } from '../security/seccomp';
import type { Linux, Process, Spec, State } from '../spec/types';
import { attachPty } from './console';
import { applyNoNewPrivileges, applyRlimits, applyUmask, switchUser } from './credentials';
import { lookPath, prepareFds } from './exec';
import { applyScheduling } from './scheduling';
import { execThroughTrampoline, sealedTrampoline } from './trampoline';

/** runs one named setup step, so a failure says where it broke */
export type Step = <T>(name: string, fn: () => T) => T;

/**
 * mkdir -p of the cwd, one component at a time: Node's recursive mkdirSync
 * loops forever where mkdir says ENOENT under an existing parent (/proc/self/fd/N)
 */
export function createCwd(cwd: string): void {
  if (existsSync(cwd)) return;
  let path = '';
  for (const part of cwd.split('/').filter(Boolean)) {
    path += `/${part}`;
    try {
      mkdirSync(path, { mode: 0o755 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new SetupError('cwd', `cannot create ${cwd}: mkdir ${path}: ${(e as NodeJS.ErrnoException).code}`, cwd);
    }
  }
}

/** the working directory must be reachable from the new root: getcwd fails (or says "(unreachable)") otherwise */
function verifyCwdInRoot(cwd: string): void {
  let where: string;
  try {
    where = libc.getcwd();
  } catch {
    throw new SetupError('cwd', `${cwd} is outside the container's root`, cwd);
  }
  if (!where.startsWith('/')) throw new SetupError('cwd', `${cwd} is outside the container's root (${where})`, cwd);
}

/**
 * process.env as the program gets it (runc's rules): a name set twice keeps
 * its last value, and HOME comes from the container's /etc/passwd (else "/")
 * when the config does not set it
 */
export function processEnv(proc: Process): string[] {
  const byName = new Map<string, string>();
  for (const e of proc.env ?? []) byName.set(e.slice(0, e.indexOf('=')), e);
  if (!byName.has('HOME')) byName.set('HOME', `HOME=${homeOf(proc.user.uid)}`);
  return [...byName.values()];
}

function homeOf(uid: number): string {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 7 && Number(f[2]) === uid && f[5]) return f[5];
    }
  } catch {
    /* no /etc/passwd in this rootfs */
  }
  return '/';
}

export interface Identity {
  /** the program execve will run (args[0] looked up in the process's PATH) */
  exe: string;
  /** the environment it runs with */
  env: string[];
  /** the filter still to load just before execve (none when it was loaded early) */
  lateSeccomp?: SeccompFilter;
  /** the sealed exec trampoline (trampoline.ts), -1 when the test-only unsafe direct exec is on */
  trampolineFd: number;
}

/**
 * Become the process's user with its limits and privileges, in its cwd.
 * Scheduling, I/O priority, personality and memory policy come first, while
 * the process is still root (they may need it). `linux` is the container's
 * (personality, memoryPolicy). The seccomp filter goes in before the capabilities drop when
 * no_new_privs is off (loading needs CAP_SYS_ADMIN then, as runc does it),
 * else as late as possible so execve is the first filtered call.
 */
export function becomeProcess(proc: Process, seccomp: SeccompFilter | undefined, state: State, run: Step, linux?: Linux): Identity {
  // first: once a seccomp filter is in, making it could be filtered
  const trampolineFd = process.env.KOCI_TEST_UNSAFE_DIRECT_EXEC === '1' ? -1 : run('exec trampoline', sealedTrampoline);
  run('rlimits', () => applyRlimits(proc.rlimits));
  run('umask', () => applyUmask(proc));
  applyScheduling(proc, linux, run);
  // no capabilities object: the process keeps the runtime's (as runc)
  const caps = proc.capabilities ? planCapabilities(proc.capabilities) : undefined;
  const early = seccomp !== undefined && !proc.noNewPrivileges;
  if (early) run('seccomp', () => loadSeccomp(seccomp, state));
  if (caps) run('capabilities: bounding set', () => dropBounding(caps));
  // setgroups is denied in a user namespace only when the runtime wrote "deny"; koci never does
  run('switch user', () => switchUser(proc, true));
  if (caps) run('capabilities', () => applyCapabilities(caps));
  run('noNewPrivileges', () => applyNoNewPrivileges(proc));
  run('cwd', () => {
    libc.chdir(proc.cwd); // the syscall error names the path
    // a cwd through a leaked fd (/proc/self/fd/N) can land outside the root (CVE-2024-21626 class)
    if (process.env.KOCI_TEST_UNSAFE_CWD !== '1') verifyCwdInRoot(proc.cwd);
  });
  const env = processEnv(proc);
  const exe = run('find executable', () => lookPath(proc.args?.[0] ?? '', env));
  return { exe, env, lateSeccomp: early ? undefined : seccomp, trampolineFd };
}

export interface Handover {
  /** the pty slave that becomes the controlling terminal and fds 0-2, or -1 */
  ptySlave: number;
  /** fds 3 .. 3+preserveFds-1 pass on */
  preserveFds: number;
  /** for the LSM exec label (process.apparmorProfile, process.selinuxLabel) */
  config: Spec;
  state: State;
}

/** terminal, fds, signals, LSM label, late seccomp, execve (through the trampoline): nothing of koci's crosses it */
export function execProcess(proc: Process, id: Identity, h: Handover, run: Step): never {
  if (h.ptySlave >= 0) run('attach terminal', () => attachPty(h.ptySlave));
  run('prepare fds', () => prepareFds(h.preserveFds));
  libc.resetSignals();
  run('LSM exec label', () => setExecLabel(h.config));
  if (id.lateSeccomp) run('seccomp', () => loadSeccomp(id.lateSeccomp!, h.state));
  // through the sealed trampoline: the host's node binary is never /proc/self/exe while the program is exec'd
  if (id.trampolineFd < 0) return run(`exec ${id.exe}`, () => libc.execve(id.exe, proc.args ?? [], id.env));
  return run(`exec ${id.exe}`, () => execThroughTrampoline(id.trampolineFd, id.exe, proc.args ?? [], id.env));
}
