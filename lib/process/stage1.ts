/**
 * Stage 1: a forked copy of the runtime that enters the container's
 * namespaces (joins the given ones, unshares the new ones) and forks the
 * container's init, which is PID 1 of a new PID namespace only because it is
 * the first child after unshare(CLONE_NEWPID). Then it exits.
 * Synchronous code only; ends in _exit.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { fromWire } from '../errors';
import { joinCgroups } from '../cgroups';
import { closeRuntimeFds, failChild, forkContainerProcess, forkNonDumpable, tryClone3 } from './step';
import { type NamespacePlan, timeOffsetsText } from '../namespaces';
import type { Channel } from './channel';
import { runInit } from './init';
import type { InitPlan } from './plan';
import { expect } from './protocol';

/**
 * The init may join its v1 cgroups itself, once the runtime says they are
 * ready, and mount meanwhile (InitPlan.lateJoin): it is host root with the
 * host's paths until it pivots, in a container that needs no user namespace
 * and joins no namespace by path.
 */
export function mayJoinLate(ns: NamespacePlan): boolean {
  return !ns.newUser && !ns.join.length;
}

/**
 * Without stage 1: a single-threaded runtime (a zygote worker) whose
 * container needs no user or time namespace and joins none by path forks the
 * init itself with clone3 (cloneInit), born in its new namespaces (PID 1 of
 * the new PID namespace) and its cgroup2 cgroup: one fork of a Node process
 * less per container. The init then does stage 1's share (closes the
 * runtime's fds) and joins its v1 cgroups late (mayJoinLate).
 */
export function mayCloneInit(ns: NamespacePlan): boolean {
  if (!mayJoinLate(ns) || ns.newTime) return false;
  // raw clone3 only from a single thread: the CLI's Node has others, so it keeps stage 1
  return readdirSync('/proc/self/task').length === 1;
}

/** the init forked directly (see mayCloneInit, which the caller asked): its PID, or undefined when the kernel refuses (then through stage 1) */
export function cloneInit(plan: InitPlan, parent: Channel, child: Channel): number | undefined {
  const dumpable = libc.prctl(C.PR_GET_DUMPABLE, 0);
  forkNonDumpable(); // as stage 1's child
  const r = tryClone3(plan.network === undefined ? plan.ns.unshareFlags : plan.ns.unshareFlags & ~C.CLONE_NEWNET, plan.cgroup2Fd);
  if ('pid' in r && r.pid === 0) {
    parent.close();
    runInit({ ...plan, direct: true }, child);
  }
  libc.prctl(C.PR_SET_DUMPABLE, dumpable);
  return 'pid' in r ? r.pid : undefined; // refused: through stage 1
}

export function runStage1(plan: InitPlan, chan: Channel): never {
  let step = 'stage 1';
  try {
    libc.prctl(C.PR_SET_PDEATHSIG, 9); // the runtime died: stop building a container nobody will own
    closeRuntimeFds(plan.runtimeFds);
    if (plan.selfJoin.length && !plan.lateJoin) {
      step = 'join cgroups';
      joinCgroups(plan.selfJoin);
    }
    // open every namespace first: joining the mount namespace changes what paths mean
    step = 'open namespaces';
    const joins = plan.ns.join.map((j) => ({ ...j, fd: libc.open(j.path, C.O_RDONLY | C.O_CLOEXEC) }));
    const userJoin = joins.find((j) => j.type === 'user');
    if (userJoin) {
      step = 'join user namespace';
      libc.setns(userJoin.fd, userJoin.flag, userJoin.path);
    } else if (plan.ns.newUser) {
      step = 'create user namespace';
      libc.unshare(C.CLONE_NEWUSER);
      chan.send({ type: 'userns' });
      expect(chan.recv(), 'mapped', () => new Error('runtime went away'), fromWire);
    }
    if (userJoin || plan.ns.newUser) {
      step = 'become root in the user namespace';
      libc.setresgid(0, 0, 0);
      libc.setresuid(0, 0, 0);
    }
    for (const j of joins) {
      if (j.type === 'user') continue;
      step = `join ${j.type} namespace`;
      libc.setns(j.fd, j.flag, j.path);
    }
    for (const j of joins) libc.close(j.fd);
    step = 'create namespaces';
    if (plan.ns.unshareFlags) libc.unshare(plan.ns.unshareFlags);
    const offsets = plan.config.linux?.timeOffsets;
    if (plan.ns.newTime && offsets && Object.keys(offsets).length) {
      step = 'set time offsets';
      // becoming root of a new user namespace made us non-dumpable, which hands our /proc
      // files to host root; stage 1 is never visible in the container, so undo that here
      libc.prctl(C.PR_SET_DUMPABLE, 1);
      writeFileSync('/proc/self/timens_offsets', timeOffsetsText(offsets));
    }
    step = 'fork init';
    forkContainerProcess(chan, () => runInit(plan, chan), plan.cgroup2Fd);
  } catch (e) {
    failChild(chan, e, step);
  }
}
