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

/**
 * clone3Fork as koci's forking stages use it: the pid (0 in the child), or
 * why not (an older kernel, a seccomp filter around koci, a cgroup the kernel
 * will not let us enter this way). KOCI_TEST_NO_CLONE3=1 takes the path such
 * a kernel takes, for the tests.
 */
export function tryClone3(nsFlags: number, cgroupFd?: number): { pid: number } | { refused: unknown } {
  if (process.env.KOCI_TEST_NO_CLONE3 === '1') return { refused: undefined }; // not asked: no refusal to report
  try {
    return { pid: libc.clone3Fork(nsFlags, cgroupFd) };
  } catch (e) {
    return { refused: e };
  }
}

/** the process forked next is born non-dumpable (see forkContainerProcess) */
export function forkNonDumpable(): void {
  if (process.env.KOCI_TEST_UNSAFE_DUMPABLE !== '1') libc.prctl(C.PR_SET_DUMPABLE, 0);
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
  forkNonDumpable();
  const into = cgroupFd === undefined ? { refused: undefined } : tryClone3(0, cgroupFd);
  let pid: number;
  if ('pid' in into) pid = into.pid;
  else {
    // a plain fork, and the runtime adds the child
    try {
      pid = libc.fork();
    } catch (e) {
      // a refusal that came after the kernel gave the child a PID leaves a new PID namespace unable to fork: say why
      throw into.refused ?? e;
    }
  }
  if (pid === 0) child();
  chan.send({ type: 'init-pid', pid, inCgroup: 'pid' in into });
  libc._exit(0);
}
