/**
 * exec: run one more process in a created or running container. It joins
 * every namespace of the container's init (user first) and its cgroups, and
 * gets the process's own user, limits, capabilities, no_new_privs, cwd and
 * env, under the container's seccomp profile. Returns once the process has
 * exec'd (or throws, leaving nothing behind); waiting for it is the caller's.
 * Runs in a koci process started with --single-threaded, because it forks.
 */
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { join } from 'node:path';
import { addProcess, leavesByVersion, openCgroup2 } from '../cgroups';
import { fromWire, IncorrectStatusError, InvalidSpecError, SetupError, UnsupportedError } from '../errors';
import { planExecJoins } from '../namespaces';
import { Channel } from '../process/channel';
import { takeMaster } from '../process/console';
import { sendConsole, sendPidfd } from '../process/handoff';
import { runExecStage1 } from '../process/join';
import type { ExecPlan } from '../process/plan';
import { expect } from '../process/protocol';
import { planCapabilities } from '../security/capabilities';
import { checkLsm } from '../security/lsm';
import { keepSeccomp, prepareSeccomp, releaseSeccomp } from '../security/seccomp';
import type { Process } from '../spec/types';
import { refuseUnsupported } from '../spec/unsupported';
import { validateConfig } from '../spec/validate';
import type { StateStore } from '../state/store';
import { type ProcessHandoff, reap, writeFileAtomic } from './create';

export interface ExecOptions extends ProcessHandoff {
  /** the whole process (runtime-spec `process`), as `--process` gives it */
  process: Process;
}

/**
 * exec's changes to a process: runc's exec flags, and the library's
 * ExecOptions. `env` adds to the process's env (a name set again wins), the
 * rest replaces; what is undefined is left as it is.
 */
export interface ProcessChanges {
  terminal?: boolean;
  env?: string[];
  cwd?: string;
  /** uid (and gid, else the process's own); additionalGids on their own */
  user?: { uid?: number; gid?: number; additionalGids?: number[] };
  /** added to the bounding, effective and permitted sets */
  capabilities?: string[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  selinuxLabel?: string;
}

/** the container's own process running `args` instead: runc's rule for an exec without a process document */
export function processWithArgs(base: Process | undefined, args: string[]): Process {
  const p = structuredClone(base ?? { cwd: '/', user: { uid: 0, gid: 0 } }) as Process;
  p.args = args;
  p.terminal = false;
  return p;
}

/** `p` with the changes made (in place) */
export function changeProcess(p: Process, c: ProcessChanges): Process {
  if (c.terminal !== undefined) p.terminal = c.terminal;
  if (c.env) p.env = [...(p.env ?? []), ...c.env];
  if (c.cwd !== undefined) p.cwd = c.cwd;
  const u = c.user;
  if (u?.uid !== undefined) p.user = { ...p.user, uid: u.uid, gid: u.gid ?? p.user?.gid ?? 0 };
  if (u?.additionalGids) p.user = { ...p.user, additionalGids: u.additionalGids };
  if (c.capabilities) {
    const caps = (p.capabilities ??= {});
    for (const set of ['bounding', 'effective', 'permitted'] as const) caps[set] = [...new Set([...(caps[set] ?? []), ...c.capabilities])];
  }
  if (c.noNewPrivileges !== undefined) p.noNewPrivileges = c.noNewPrivileges;
  if (c.apparmorProfile !== undefined) p.apparmorProfile = c.apparmorProfile;
  if (c.selinuxLabel !== undefined) p.selinuxLabel = c.selinuxLabel;
  return p;
}

/** start the process in the container; returns its host PID once it has exec'd */
export function execInContainer(store: StateStore, id: string, opts: ExecOptions): number {
  const rec = store.read(id);
  const status = store.status(rec);
  if (status === 'paused') throw new IncorrectStatusError(id, 'exec in', status, 'resume it first');
  if (status !== 'created' && status !== 'running') throw new IncorrectStatusError(id, 'exec in', status, 'container not running');
  const config = { ...rec.config, process: opts.process };
  const issues = validateConfig(config);
  if (issues.length) throw new InvalidSpecError('process', issues);
  refuseUnsupported(config);
  // --apparmor / --process-label: refused clearly on a host without that LSM, before anything is forked
  checkLsm(config);
  const proc = opts.process;
  if (proc.terminal && !opts.consoleSocket && !opts.onConsole) {
    throw new UnsupportedError('process.terminal is true: a detached exec needs --console-socket');
  }
  if (opts.consoleSocket && !proc.terminal) throw new UnsupportedError('--console-socket is only for a process whose terminal is true (--tty)');
  const unknownCaps = proc.capabilities ? planCapabilities(proc.capabilities).unknownToKernel : [];
  if (unknownCaps.length) opts.warn?.(`capabilities unknown to this kernel, skipped: ${unknownCaps.join(', ')}`);

  const seccomp = prepareSeccomp(rec.config.linux?.seccomp);
  let stage1 = 0;
  let pid = 0;
  let parent: Channel | undefined;
  // the container's cgroups as fds, opened here (stage 1 leaves the host's paths behind with setns)
  const tasksFds: number[] = [];
  let cgroup2Fd: number | undefined;
  const closeCgroupFds = () => {
    for (const fd of tasksFds.splice(0)) libc.close(fd);
    if (cgroup2Fd !== undefined) libc.close(cgroup2Fd);
    cgroup2Fd = undefined;
  };
  try {
    const { v1, v2 } = leavesByVersion(rec.cgroupLeaves ?? []);
    for (const l of v1) tasksFds.push(libc.open(join(l, 'tasks'), C.O_WRONLY | C.O_CLOEXEC));
    // not from the container's user namespace, where the kernel refuses CLONE_INTO_CGROUP
    if (v2.length === 1 && !rec.config.linux?.namespaces?.some((n) => n.type === 'user')) cgroup2Fd = openCgroup2(v2[0]);
    const plan: ExecPlan = {
      id,
      join: planExecJoins(rec.config, rec.pid!),
      process: proc,
      config,
      state: store.ociState(rec),
      preserveFds: opts.preserveFds ?? 0,
      seccomp,
      keyring: !rec.noNewKeyring,
      cgroupTasksFds: [...tasksFds],
      cgroup2Fd,
    };
    // stage 2 is orphaned when stage 1 exits: it must come to us, to be waited for
    libc.prctl(C.PR_SET_CHILD_SUBREAPER, 1);
    const [p, child] = Channel.pair();
    parent = p;
    stage1 = libc.fork();
    if (stage1 === 0) {
      parent.close();
      runExecStage1(plan, child);
    }
    child.close();
    closeCgroupFds();
    const died = () => new SetupError('exec', 'the exec process exited before it was ready');
    const born = expect(parent.recv(), 'init-pid', died, fromWire);
    pid = born.pid;
    libc.waitpid(stage1);
    stage1 = 0;
    // stage 2 joins the v1 cgroups itself; cgroup2's cgroup.procs write waits out an RCU grace period
    if (!born.inCgroup && v2.length) addProcess(v2, pid);
    parent.send({ type: 'go' });
    let next = parent.recv();
    if (next?.type === 'console') {
      const master = takeMaster(pid, next.fd);
      if (opts.consoleSocket) {
        sendConsole(opts.consoleSocket, master);
      } else {
        opts.onConsole!(master);
      }
      parent.send({ type: 'go' });
      next = parent.recv();
    }
    // EOF: the channel's end closed with execve. Anything else is a report of what failed.
    if (next !== null) expect(next, 'created', died, fromWire);
    keepSeccomp();
    if (opts.pidFile) writeFileAtomic(opts.pidFile, String(pid));
    if (opts.pidfdSocket) sendPidfd(opts.pidfdSocket, pid);
    return pid;
  } catch (e) {
    if (pid) {
      try {
        libc.kill(pid, 9);
      } catch {
        /* gone already */
      }
      reap(pid);
    }
    if (stage1) {
      libc.kill(stage1, 9);
      reap(stage1);
    }
    throw e;
  } finally {
    parent?.close();
    closeCgroupFds();
    releaseSeccomp(seccomp);
  }
}
