/**
 * exec's forked children. Stage 1 joins the container init's namespaces
 * (user first) and forks stage 2, which is inside the joined PID and time
 * namespaces only because it is a child born after setns. Stage 2 waits
 * until the runtime has placed it in the container's cgroups, opens a
 * terminal when asked, becomes the process (user, limits, capabilities,
 * seccomp, cwd) and execs it. Success is the channel's EOF (its end is
 * close-on-exec); a failure is an `error` message.
 *
 *   runtime                  stage 1                    stage 2
 *      | fork -------------->  | setns user, then the rest
 *      |                       | fork ------------------>  |
 *      |                       | (into cgroup2, clone3)    | join the v1 cgroups
 *      | <--------- init-pid   | _exit(0)                  |
 *      | cgroup2 unless born there, go ------------------> | setsid, keyring
 *      | <----------------------------- console {fd}       | (terminal only)
 *      | copy the master, go ----------------------------> |
 *      |                                                   | become the process, execve
 *      | <------------------------------------------ EOF   |
 *
 * Synchronous code only; every path ends in execve or _exit.
 */
import { fstatSync, statSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { fromWire, SyscallError } from '../errors';
import { becomeProcess, execProcess } from './become';
import type { Channel } from './channel';
import { openPty } from './console';
import type { ExecPlan } from './plan';
import { expect } from './protocol';
import { applyExecAffinity } from './scheduling';
import { failChild, forkContainerProcess } from './step';

const eof = () => new Error('runtime went away');

/** the namespace fds to setns into: the init's, minus those this process is already in */
function openJoins(plan: ExecPlan): Array<ExecPlan['join'][number] & { fd: number }> {
  const joins = [];
  for (const j of plan.join) {
    const fd = libc.open(j.path, C.O_RDONLY | C.O_CLOEXEC);
    const own = statSync(`/proc/self/ns/${j.path.slice(j.path.lastIndexOf('/') + 1)}`);
    const theirs = fstatSync(fd);
    if (own.ino === theirs.ino && own.dev === theirs.dev) libc.close(fd);
    else joins.push({ ...j, fd });
  }
  return joins;
}

export function runExecStage1(plan: ExecPlan, chan: Channel): never {
  let step = 'exec stage 1';
  try {
    libc.prctl(C.PR_SET_PDEATHSIG, 9); // the runtime died: nobody will release stage 2
    step = 'open namespaces';
    const joins = openJoins(plan);
    for (const j of joins) {
      step = `join ${j.type} namespace`;
      libc.setns(j.fd, j.flag, j.path);
      libc.close(j.fd);
      if (j.type === 'user') {
        // root of the container's user namespace when root is mapped; the capabilities setns gave are enough otherwise
        try {
          libc.setresgid(0, 0, 0);
          libc.setresuid(0, 0, 0);
        } catch (e) {
          if (!(SyscallError.is(e) && e.code === 'EINVAL')) throw e;
        }
      }
    }
    // before stage 2 enters the container's cgroups (a cpuset narrows it); stage 2 inherits it
    applyExecAffinity(plan.process, 'initial', <T>(name: string, fn: () => T): T => ((step = name), fn()));
    step = 'fork';
    forkContainerProcess(chan, () => runExecStage2(plan, chan), plan.cgroup2Fd);
  } catch (e) {
    failChild(chan, e, step);
  }
}

function runExecStage2(plan: ExecPlan, chan: Channel): never {
  let step = 'exec';
  const run = <T>(name: string, fn: () => T): T => {
    step = name;
    return fn();
  };
  try {
    const proc = plan.process;
    run('join cgroups', () => {
      for (const fd of plan.cgroupTasksFds) {
        libc.write(fd, Buffer.from('0'));
        libc.close(fd);
      }
    });
    expect(chan.recv(), 'go', eof, fromWire); // in all the container's cgroups: cgroup2's too, born there or placed by the runtime
    applyExecAffinity(proc, 'final', run);
    run('setsid', () => libc.setsid());
    if (plan.keyring) {
      run('join session keyring', () => {
        try {
          libc.joinSessionKeyring(`_ses.${plan.id}`);
        } catch (e) {
          if (!(SyscallError.is(e) && e.code === 'ENOSYS')) throw e;
        }
      });
    }
    let ptySlave = -1;
    if (proc.terminal) {
      // the container's /dev/ptmx: setns(mount) made the container's root ours
      const pty = run('open terminal', () => openPty(proc.user.uid, proc.user.gid, proc.consoleSize));
      chan.send({ type: 'console', fd: pty.master });
      expect(chan.recv(), 'go', eof, fromWire);
      libc.close(pty.master);
      ptySlave = pty.slave;
    }
    // the container's personality and memory policy too: an exec'd process descends from the runtime, not
    // from the init, so it inherits neither (runc's setns init sets the personality as well)
    const identity = becomeProcess(proc, plan.seccomp, plan.state, run, plan.config.linux);
    execProcess(proc, identity, { ptySlave, preserveFds: plan.preserveFds, config: plan.config, state: plan.state }, run);
  } catch (e) {
    failChild(chan, e, step);
  }
}
