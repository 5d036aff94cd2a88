/**
 * Stage 2: the container's init (PID 1 of its PID namespace). Builds the
 * container's view of the world — cgroup namespace, rootfs and mounts,
 * devices, pivot_root, hostname, limits, user — reports `created`, waits on
 * exec.fifo for `start`, and execs the user's program.
 * Synchronous code only; ends in execve or _exit.
 */
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { fromWire, SyscallError, toWire } from '../errors';
import { runHooksInChild } from '../hooks';
import { mount } from '../rootfs/mount';
import { containerDestination, readOwnCgroups, mountEntry, type MountContext } from '../rootfs/mounts';
import { createDevices, createDevSymlinks } from '../rootfs/devices';
import { PROPAGATION, parseMountOptions } from '../rootfs/options';
import { maskPaths, readonlyPaths } from '../rootfs/masks';
import { moveRoot, pivotRoot, privatizeRootfsParent, remountRootReadonly } from '../rootfs/pivot';
import type { State } from '../spec/types';
import type { Channel } from './channel';
import { applySysctl } from '../security/sysctl';
import { becomeProcess, createCwd, execProcess } from './become';
import { attachPty, openPty } from './console';
import type { InitPlan } from './plan';
import { expect } from './protocol';
import { attributeStep, closeRuntimeFds } from './step';
import { joinCgroups } from '../cgroups';

/** like runc: a kernel without keyrings (ENOSYS) is no reason to fail */
function joinKeyring(name: string): void {
  try {
    libc.joinSessionKeyring(name);
  } catch (e) {
    if (!(SyscallError.is(e) && e.code === 'ENOSYS')) throw e;
  }
}

const eof = () => new Error('runtime went away');

/** filesystems whose mount opens no device node: they may be mounted before the device rules apply to us */
const DEVICELESS = new Set(['proc', 'sysfs', 'tmpfs', 'devpts', 'mqueue', 'bind']);

export function runInit(plan: InitPlan, chan: Channel): never {
  let step = 'init';
  let startFd = -1;
  const run = <T>(name: string, fn: () => T): T => {
    step = name;
    return fn();
  };
  try {
    const { config } = plan;
    const proc = config.process!;
    // forked by the runtime itself: stage 1's share (and the v1 cgroups, once made: enterCgroups)
    if (plan.direct) {
      closeRuntimeFds(plan.runtimeFds);
      const network = plan.network;
      if (network !== undefined) run('join network namespace', () => (libc.setns(network, C.CLONE_NEWNET), libc.close(network)));
    }
    expect(chan.recv(), 'go', eof, fromWire);
    run('setsid', () => libc.setsid());
    // a session keyring of its own, so the container cannot read the host session's keys
    if (!plan.noNewKeyring) run('join session keyring', () => joinKeyring(`_ses.${plan.id}`));
    // the host's /proc/self/fd, to reopen exec.fifo after pivot_root without relying on the container's /proc
    const procFd = run('open /proc/self/fd', () => libc.open('/proc/self/fd', C.O_PATH | C.arch.O_DIRECTORY | C.O_CLOEXEC));

    // destinations made absolute and clean, so the /dev and /dev/pts checks below see "dev/pts/" too
    const mounts = (config.mounts ?? []).map((m) => ({ ...m, destination: containerDestination(m.destination) }));
    run('rootfs propagation', () => {
      // unbindable would refuse the rootfs bind below: private until the root is the container's
      const p = config.linux?.rootfsPropagation;
      const flags = p === 'unbindable' ? C.MS_PRIVATE | C.MS_REC : p ? PROPAGATION[p] ?? C.MS_SLAVE | C.MS_REC : C.MS_SLAVE | C.MS_REC;
      mount(null, '/', null, flags, null);
    });
    run('private rootfs parent', () => privatizeRootfsParent(plan.rootfs));
    run('bind rootfs', () => mount(plan.rootfs, plan.rootfs, null, C.MS_BIND | C.MS_REC, null));
    const ctx: MountContext = { rootfs: plan.rootfs, bundle: plan.bundle, cgroupPaths: new Map(), newCgroupNs: plan.ns.has.has('cgroup'), mountLabel: config.linux?.mountLabel };
    // In all our cgroups only once the runtime says so (it adds us, while we mount, to those we were not born in;
    // with lateJoin, it makes them meanwhile and we join the v1 ones): needed before a cgroup namespace (its
    // root is our cgroup then), a cgroup mount, a device node or a mount that may open one, and any fork.
    // The runtime's word also carries the state document (for the hooks and the seccomp listener).
    let given: State | undefined;
    const enterCgroups = (): State => {
      if (given) return given;
      given = expect(chan.recv(), 'cgroups', eof, fromWire).state;
      if (plan.lateJoin && plan.selfJoin.length) run('join cgroups', () => joinCgroups(plan.selfJoin));
      ctx.cgroupPaths = readOwnCgroups();
      if (plan.ns.newCgroup) run('create cgroup namespace', () => libc.unshare(C.CLONE_NEWCGROUP));
      return given;
    };
    // (a joined cgroup namespace, like a new one, needs a fresh cgroupfs mount: the
    // host's hierarchy paths mean nothing relative to that namespace's root)
    for (const m of mounts) {
      if (!DEVICELESS.has(m.type ?? '') && !parseMountOptions(m.options).bind) enterCgroups();
      run(`mount ${m.destination}`, () => mountEntry(m, ctx));
    }
    const state = enterCgroups();
    const devBound = mounts.some((m) => m.destination === '/dev' && (m.type === 'bind' || parseMountOptions(m.options).bind));
    if (!devBound) {
      run('create devices', () => createDevices(plan.rootfs, config.linux?.devices ?? [], plan.ns.has.has('user')));
      run('create /dev symlinks', () => createDevSymlinks(plan.rootfs, mounts.some((m) => m.destination === '/dev/pts')));
    }
    if (plan.runtimeHooks) {
      chan.send({ type: 'hooks' });
      expect(chan.recv(), 'go', eof, fromWire); // the runtime ran them
    }
    // runtime-spec runtime.md: for hooks executed in the container namespace, pid is the pid as seen by
    // the container (1 in a new PID namespace); the runtime's state has it as the host sees it
    const inner: State = { ...state, pid: libc.getpid() };
    run('createContainer hooks', () => runHooksInChild('createContainer', config.hooks, inner));

    run(plan.noPivot ? 'move root' : 'pivot_root', () => (plan.noPivot ? moveRoot(plan.rootfs) : pivotRoot(plan.rootfs)));
    // the container's / gets the asked propagation now that it is the root (its bind could not be shared before)
    const rootProp = config.linux?.rootfsPropagation;
    if (rootProp && PROPAGATION[rootProp]) run('root propagation', () => mount(null, '/', null, PROPAGATION[rootProp], null));
    // like runc: a missing cwd is created (inside the new root, before it turns read-only)
    run('create cwd', () => createCwd(proc.cwd));
    if (config.root?.readonly) run('readonly root', remountRootReadonly);
    // before readonlyPaths: /proc/sys is usually one of them
    run('sysctl', () => applySysctl(config.linux?.sysctl ?? {}));
    run('readonlyPaths', () => readonlyPaths(config.linux?.readonlyPaths ?? []));
    run('maskedPaths', () => maskPaths(config.linux?.maskedPaths ?? []));
    if (proc.terminal) {
      const pty = run('open terminal', () => openPty(proc.user.uid, proc.user.gid, proc.consoleSize));
      chan.send({ type: 'console', fd: pty.master });
      expect(chan.recv(), 'go', eof, fromWire); // the runtime has its copy of the master
      libc.close(pty.master);
      // on 0-2 now, not at exec: the caller's stdio must be let go before create returns
      // (containerd's shim reads create's output to EOF before it calls start)
      run('attach terminal', () => attachPty(pty.slave));
    }
    if (config.hostname !== undefined) run('sethostname', () => libc.sethostname(config.hostname!));
    if (config.domainname !== undefined) run('setdomainname', () => libc.setdomainname(config.domainname!));
    const identity = becomeProcess(proc, plan.seccomp, state, run, config.linux);

    chan.send({ type: 'created' });
    run('wait for start', () => {
      const fd = libc.openat(procFd, String(plan.fifoFd), C.O_WRONLY | C.O_CLOEXEC); // blocks until `start` opens it
      libc.write(fd, Buffer.from('0'));
      // kept open, close-on-exec and above the fds that pass: `start` reads until
      // EOF, which comes with execve (or with an error report, if we fail first)
      startFd = fd > 2 + plan.preserveFds ? fd : libc.fcntl(fd, C.F_DUPFD_CLOEXEC, 3 + plan.preserveFds);
      if (startFd !== fd) libc.close(fd);
      libc.close(procFd);
      libc.close(plan.fifoFd);
    });
    run('startContainer hooks', () => runHooksInChild('startContainer', config.hooks, { ...inner, status: 'created' })); // before the process runs: created (as runc)
    execProcess(proc, identity, { ptySlave: -1, preserveFds: plan.preserveFds, config, state }, run);
  } catch (e) {
    const error = toWire(attributeStep(e, step));
    try {
      // after start: `start` is the one listening, on exec.fifo; before: create, on the channel
      if (startFd >= 0) libc.write(startFd, Buffer.from(JSON.stringify(error)));
      else chan.send({ type: 'error', error });
    } finally {
      libc._exit(1);
    }
  }
}
