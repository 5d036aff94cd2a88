import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError, SyscallError, toWire } from '../errors';
import type { Channel } from './channel';

/** attach the failing setup step to an error, so the runtime's one-line message says where it broke */
export function attributeStep(e: unknown, step: string): Error {
  if (e instanceof SyscallError) return e.withStep(step);
  if (e instanceof Error && (e as NodeJS.ErrnoException).syscall) {
    // a node:fs error: same information, koci's type
    const ne = e as NodeJS.ErrnoException;
    return new SyscallError(ne.syscall!, Math.abs(ne.errno ?? 0), ne.path, step);
  }
  if (e instanceof Error && e.name !== 'Error') return e; // already typed (SetupError, HookError, ...)
  return new SetupError(step, e instanceof Error ? e.message : String(e));
}

/** a forked child's first act: close the runtime's fds it must not hold (the state lock: flock follows the open file) */
export function closeRuntimeFds(fds: number[]): void {
  for (const fd of fds) libc.close(fd);
}

/** a forked child's last act on failure: report the error, typed and attributed, to the runtime and _exit(1) */
export function failChild(chan: Channel, e: unknown, step: string): never {
  try {
    chan.send({ type: 'error', error: toWire(attributeStep(e, step)) });
  } finally {
    libc._exit(1);
  }
}

/**
 * Stage 1's last act (create's and exec's): fork the process that becomes
 * the container's, tell the runtime its PID, _exit. The child is the host's
 * node binary until its execve and the container may see it (a joined PID
 * namespace): born non-dumpable, so nothing there can open its
 * /proc/<pid>/exe, fds or memory (CVE-2019-5736 class). Its /proc files then
 * belong to host root, so the runtime writes oom_score_adj for the init.
 * With cgroupFd (the container's cgroup2 cgroup) the child is born in that
 * cgroup where the kernel allows it (clone3); the message tells the runtime
 * whether it still has to add the child there.
 */
export function forkContainerProcess(chan: Channel, child: () => never, cgroupFd?: number): never {
  if (process.env.KOCI_TEST_UNSAFE_DUMPABLE !== '1') libc.prctl(C.PR_SET_DUMPABLE, 0);
  let pid: number | undefined;
  let inCgroup = false;
  let refused: unknown;
  if (cgroupFd !== undefined && process.env.KOCI_TEST_NO_CLONE3 !== '1') {
    try {
      pid = libc.clone3Fork(0, cgroupFd);
      inCgroup = true;
    } catch (e) {
      // an older kernel, a seccomp filter around koci, a cgroup we may not enter this way: plain fork
      refused = e;
    }
  }
  try {
    pid ??= libc.fork();
  } catch (e) {
    // a refusal that came after the kernel gave the child a PID leaves a new PID namespace unable to fork: say why
    throw refused ?? e;
  }
  if (pid === 0) child();
  chan.send({ type: 'init-pid', pid, inCgroup });
  libc._exit(0);
}
