/**
 * Stage 2: the container's init (PID 1 of its PID namespace). Builds the
 * container's view of the world — cgroup namespace, rootfs and mounts,
 * devices, pivot_root, hostname, limits, user — reports `created`, waits on
 * exec.fifo for `start`, and execs the user's program.
 * Synchronous code only; ends in execve or _exit.
 */
import { existsSync, mkdirSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { fromWire, SetupError, SyscallError, toWire } from '../errors';
import { runHooksInChild } from '../hooks';
import { mount } from '../rootfs/mount';
import { containerDestination, readOwnCgroups, mountEntry, type MountContext } from '../rootfs/mounts';
import { createDevices, createDevSymlinks } from '../rootfs/devices';
import { PROPAGATION, parseMountOptions } from '../rootfs/options';
import { maskPaths, readonlyPaths } from '../rootfs/masks';
import { moveRoot, pivotRoot, remountRootReadonly } from '../rootfs/pivot';
import type { State } from '../spec/types';
import type { Channel } from './channel';
import { applyNoNewPrivileges, applyRlimits, applyUmask, switchUser } from './credentials';
import { applyCapabilities, dropBounding, planCapabilities } from '../security/capabilities';
import { setExecLabel } from '../security/lsm';
import { applySysctl } from '../security/sysctl';
import { loadSeccomp } from '../security/seccomp';
import { attachPty, openPty } from './console';
import { lookPath, prepareFds } from './exec';
import type { InitPlan } from './plan';
import { expect } from './protocol';
import { attributeStep } from './step';

/**
 * mkdir -p of the cwd, one component at a time: Node's recursive mkdirSync
 * loops forever where mkdir says ENOENT under an existing parent (/proc/self/fd/N)
 */
function createCwd(cwd: string): void {
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

/** like runc: a kernel without keyrings (ENOSYS) is no reason to fail */
function joinKeyring(name: string): void {
  try {
    libc.joinSessionKeyring(name);
  } catch (e) {
    if (!(SyscallError.is(e) && e.code === 'ENOSYS')) throw e;
  }
}

const eof = () => new Error('runtime went away');

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
    expect(chan.recv(), 'go', eof, fromWire); // the runtime has recorded our PID and placed us in our cgroup
    run('setsid', () => libc.setsid());
    // a session keyring of its own, so the container cannot read the host session's keys
    if (!plan.noNewKeyring) run('join session keyring', () => joinKeyring(`_ses.${plan.id}`));
    const cgroupPaths = readOwnCgroups();
    if (plan.ns.newCgroup) run('create cgroup namespace', () => libc.unshare(C.CLONE_NEWCGROUP));
    // the host's /proc/self/fd, to reopen exec.fifo after pivot_root without relying on the container's /proc
    const procFd = run('open /proc/self/fd', () => libc.open('/proc/self/fd', C.O_PATH | C.arch.O_DIRECTORY | C.O_CLOEXEC));

    // destinations made absolute and clean, so the /dev and /dev/pts checks below see "dev/pts/" too
    const mounts = (config.mounts ?? []).map((m) => ({ ...m, destination: containerDestination(m.destination) }));
    run('rootfs propagation', () => {
      const p = config.linux?.rootfsPropagation;
      mount(null, '/', null, p ? PROPAGATION[p] ?? C.MS_SLAVE | C.MS_REC : C.MS_SLAVE | C.MS_REC, null);
    });
    run('bind rootfs', () => mount(plan.rootfs, plan.rootfs, null, C.MS_BIND | C.MS_REC, null));
    const ctx: MountContext = { rootfs: plan.rootfs, bundle: plan.bundle, cgroupPaths, newCgroupNs: plan.ns.has.has('cgroup'), mountLabel: config.linux?.mountLabel };
    // (a joined cgroup namespace, like a new one, needs a fresh cgroupfs mount: the
    // host's hierarchy paths mean nothing relative to that namespace's root)
    for (const m of mounts) run(`mount ${m.destination}`, () => mountEntry(m, ctx));
    const devBound = mounts.some((m) => m.destination === '/dev' && (m.type === 'bind' || parseMountOptions(m.options).bind));
    if (!devBound) {
      run('create devices', () => createDevices(plan.rootfs, config.linux?.devices ?? [], plan.ns.has.has('user')));
      run('create /dev symlinks', () => createDevSymlinks(plan.rootfs, mounts.some((m) => m.destination === '/dev/pts')));
    }

    chan.send({ type: 'hooks' });
    const state = expect(chan.recv(), 'go', eof, fromWire).state as State;
    run('createContainer hooks', () => runHooksInChild('createContainer', config.hooks, state));

    run(plan.noPivot ? 'move root' : 'pivot_root', () => (plan.noPivot ? moveRoot(plan.rootfs) : pivotRoot(plan.rootfs)));
    // like runc: a missing cwd is created (inside the new root, before it turns read-only)
    run('create cwd', () => createCwd(proc.cwd));
    if (config.root?.readonly) run('readonly root', remountRootReadonly);
    // before readonlyPaths: /proc/sys is usually one of them
    run('sysctl', () => applySysctl(config.linux?.sysctl ?? {}));
    run('readonlyPaths', () => readonlyPaths(config.linux?.readonlyPaths ?? []));
    run('maskedPaths', () => maskPaths(config.linux?.maskedPaths ?? []));
    let ptySlave = -1;
    if (proc.terminal) {
      const pty = run('open terminal', () => openPty(proc.user.uid, proc.user.gid, proc.consoleSize));
      chan.send({ type: 'console', fd: pty.master });
      expect(chan.recv(), 'go', eof, fromWire); // the runtime has its copy of the master
      libc.close(pty.master);
      ptySlave = pty.slave;
    }
    if (config.hostname !== undefined) run('sethostname', () => libc.sethostname(config.hostname!));
    if (config.domainname !== undefined) run('setdomainname', () => libc.setdomainname(config.domainname!));
    run('rlimits', () => applyRlimits(proc.rlimits));
    run('umask', () => applyUmask(proc));
    // no capabilities object: the process keeps the init's (as runc)
    const caps = proc.capabilities ? planCapabilities(proc.capabilities) : undefined;
    // without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the caps go (as runc)
    const seccompEarly = plan.seccomp !== undefined && !proc.noNewPrivileges;
    if (seccompEarly) run('seccomp', () => loadSeccomp(plan.seccomp!, state));
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
    const env = proc.env ?? [];
    const args = proc.args ?? [];
    const exe = run('find executable', () => lookPath(args[0], env));

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
    run('startContainer hooks', () => runHooksInChild('startContainer', config.hooks, { ...state, status: 'created' })); // before the process runs: created (as runc)
    if (ptySlave >= 0) run('attach terminal', () => attachPty(ptySlave));
    run('prepare fds', () => prepareFds(plan.preserveFds));
    libc.resetSignals();
    run('LSM exec label', () => setExecLabel(config));
    if (plan.seccomp && !seccompEarly) run('seccomp', () => loadSeccomp(plan.seccomp!, state)); // last: execve is the first filtered call
    step = `exec ${exe}`;
    libc.execve(exe, args, env);
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
