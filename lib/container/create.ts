/**
 * create: validate the bundle, build the container up to the point of exec
 * and leave it `created`. Runs in a koci process started with
 * --single-threaded (the CLI, or the library's helper), because it forks.
 * A failure anywhere removes everything made so far: init process, cgroups,
 * exec fifo, state directory.
 */
import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { addProcess, cgroup2Dirs, cgroupDirs, createCgroups, destroyCgroups, hierarchies, openCgroup2, refuseBusyCgroups, stageMayJoin } from '../cgroups';
import { applyOomScoreAdj } from '../process/credentials';
import { CreateError, fromWire, SetupError, SyscallError, UnsupportedError } from '../errors';
import { runHooks } from '../hooks';
import { dropNetworkNamespace, planNamespaces, takeNetworkNamespace, writeIdMaps } from '../namespaces';
import { Channel } from '../process/channel';
import type { InitPlan } from '../process/plan';
import { expect, type Message } from '../process/protocol';
import { takeMaster } from '../process/console';
import { sendConsole, sendPidfd } from '../process/handoff';
import { planCapabilities } from '../security/capabilities';
import { applyDeviceRules, deviceRules } from '../cgroups/devices';
import { CgroupManager } from '../cgroups/manager';
import { checkLsm } from '../security/lsm';
import { keepSeccomp, prepareSeccomp, releaseSeccomp } from '../security/seccomp';
import { setupNotify } from '../process/notify';
import { cloneInit, mayCloneInit, mayJoinLate, runStage1 } from '../process/stage1';
import { recordHostMountNs } from '../rootfs/mount';
import { loadBundle } from '../spec/load';
import { refuseUnsupported } from '../spec/unsupported';
import type { State } from '../spec/types';
import { procStat } from '../state/liveness';
import { type ContainerRecord, StateStore } from '../state/store';
import { validateId } from '../state/id';

/** how a new container process (the init, or one `exec` starts) is handed to the caller */
export interface ProcessHandoff {
  /** write the process's host PID here */
  pidFile?: string;
  /** process.terminal: send the pty master to this unix socket */
  consoleSocket?: string;
  /** send a pidfd of the process to this unix socket (runc 1.2's --pidfd-socket) */
  pidfdSocket?: string;
  /** pass fds 3..3+N-1 on to the process */
  preserveFds?: number;
  /**
   * process.terminal without a console socket: receives the runtime's copy of
   * the pty master (`koci run` and a foreground exec relay it); without it such a process is refused
   */
  onConsole?: (masterFd: number) => void;
  /** receives non-fatal warnings (capabilities this kernel lacks) */
  warn?: (message: string) => void;
}

export interface CreateOptions extends ProcessHandoff {
  id: string;
  bundle: string;
  /** state root (default /run/koci) */
  root?: string;
  noPivot?: boolean;
  /** keep the caller's session keyring (`--no-new-keyring`) */
  noNewKeyring?: boolean;
  /** the caller's NOTIFY_SOCKET: the container gets a socket of its own, relayed by start (as runc) */
  notifySocket?: string;
  /** systemd socket activation: fds 3..3+N-1 (before the preserved ones) pass on, with LISTEN_FDS=N and LISTEN_PID=1 */
  listenFds?: number;
  /** fds of the caller that the container must not inherit (the library helper's reply pipe) */
  closeFds?: number[];
  /**
   * `run`: start follows at once. The exec fifo's reading end is opened as soon as the init is forked, so the
   * init goes on to its exec right after reporting `created` instead of waiting for `start` to open it; the fd
   * is handed over here once the container is created, for startContainer (the caller closes it). Not with a
   * NOTIFY_SOCKET (start listens on the container's socket before the process may run) or startContainer
   * hooks (they see the state file say `created`): then start opens the fifo itself, as for `start`
   */
  onStartReader?: (fd: number) => void;
}

/** write a file atomically next to its final name */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.tmp`);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** wait for a child; a process that is not (or no longer) ours is fine */
export function reap(pid: number): void {
  try {
    libc.waitpid(pid);
  } catch (e) {
    if (!(e instanceof SyscallError && e.code === 'ECHILD')) throw e;
  }
}

export function createContainer(opts: CreateOptions): ContainerRecord {
  validateId(opts.id);
  const { bundle, config, rootfs } = loadBundle(opts.bundle);
  const ns = planNamespaces(config);
  if (!ns.has.has('mount')) throw new UnsupportedError('koci needs a mount namespace (add {"type": "mount"} to linux.namespaces)');
  refuseUnsupported(config);
  if (config.process?.terminal && !opts.consoleSocket && !opts.onConsole) {
    // as runc: a detached container's terminal must go somewhere
    throw new UnsupportedError('process.terminal is true: create (or run --detach) needs --console-socket; use `koci run` in the foreground, or set "terminal": false');
  }
  if (opts.consoleSocket && !config.process?.terminal) {
    // as runc: the socket would never receive anything
    throw new UnsupportedError('--console-socket is only for a container whose process.terminal is true');
  }

  const unknownCaps = config.process?.capabilities ? planCapabilities(config.process.capabilities).unknownToKernel : [];
  // as runc: a name this kernel does not know yet is skipped, not fatal
  if (unknownCaps.length) opts.warn?.(`capabilities unknown to this kernel, skipped: ${unknownCaps.join(', ')}`);
  // built now, so a bad profile (or no libseccomp) is refused before anything exists; the init inherits it
  checkLsm(config);
  const seccomp = prepareSeccomp(config.linux?.seccomp);
  const store = new StateStore(opts.root);
  try {
    store.createDir(opts.id);
  } catch (e) {
    releaseSeccomp(seccomp);
    throw e;
  }
  const cleanups: Array<() => void> = [() => store.remove(opts.id)];
  const lock = store.tryLock(opts.id);
  let stage1 = 0;
  let initPid = 0;
  let parent: Channel | undefined;
  let fifoFd = -1;
  let reader = -1;
  let cgroup2Fd = -1;
  let network = -1;
  try {
    const notifyDir = opts.notifySocket ? setupNotify(config, store.dir(opts.id)) : undefined;
    if (opts.listenFds && config.process) config.process.env = [...(config.process.env ?? []), `LISTEN_FDS=${opts.listenFds}`, 'LISTEN_PID=1'];
    const rec: ContainerRecord = {
      ociVersion: config.ociVersion,
      id: opts.id,
      status: 'creating',
      bundle,
      rootfs,
      annotations: config.annotations,
      created: new Date().toISOString(),
      noNewKeyring: opts.noNewKeyring || undefined,
      notify: notifyDir ? { dir: notifyDir, target: opts.notifySocket! } : undefined,
      config,
    };
    const fifo = store.fifoPath(opts.id);
    libc.mkfifo(fifo, 0o622);
    // mkfifo obeys the umask (0o600 under 022): the init may run as a uid other
    // than the runtime's (user namespace, process.user) and must open it for writing
    chmodSync(fifo, 0o622);
    fifoFd = libc.open(fifo, C.O_PATH | C.O_CLOEXEC);

    const mounts = hierarchies();
    const leaves = cgroupDirs(config.linux?.cgroupsPath, opts.id, mounts);
    const v2 = cgroup2Dirs(leaves, mounts);
    const v1 = leaves.filter((l) => !v2.includes(l));
    // all of them before any is made: the cleanup below ends whatever runs in them
    refuseBusyCgroups(leaves);
    const made: string[] = [];
    rec.cgroupLeaves = leaves;
    rec.cgroupPaths = made;
    cleanups.push(() => {
      const errors = destroyCgroups(made, leaves);
      if (errors.length) throw errors[0];
    });
    let unmade = leaves;
    const makeCgroups = (dirs: string[]) => {
      made.push(...createCgroups(dirs));
      unmade = unmade.filter((d) => !dirs.includes(d));
    };
    let ready = false;
    // every cgroup made, with its device rules and linux.resources (checked in full): before stage 1 joins,
    // or (lateJoin) before the init is told to join, creates a device or forks
    const readyCgroups = () => {
      if (ready) return;
      makeCgroups(unmade);
      applyDeviceRules(leaves, deviceRules(config), mounts);
      CgroupManager.forLeaves(leaves, mounts).apply(config.linux?.resources);
      ready = true;
    };
    // the init mounts while we make its cgroups (it joins the v1 ones itself); only the cgroup2 one it is born in comes first
    const late = mayJoinLate(ns);
    const early = late && mayCloneInit(ns);
    if (late) makeCgroups(v2);
    else readyCgroups();
    if (early && ns.unshareFlags & C.CLONE_NEWNET) network = takeNetworkNamespace();
    else dropNetworkNamespace();
    // not from a user namespace or a joined cgroup namespace: the kernel refuses CLONE_INTO_CGROUP there,
    // and it refuses after it gave the child a PID, which leaves a new PID namespace unable to fork again
    if (v2.length === 1 && !ns.newUser && !ns.join.some((j) => j.type === 'user' || j.type === 'cgroup')) cgroup2Fd = openCgroup2(v2[0]);
    const plan: InitPlan = { id: opts.id, bundle, rootfs, config, ns, noPivot: !!opts.noPivot, noNewKeyring: !!opts.noNewKeyring, fifoFd, preserveFds: (opts.listenFds ?? 0) + (opts.preserveFds ?? 0), runtimeFds: [...(lock === null ? [] : [lock]), ...(opts.closeFds ?? [])], seccomp, selfJoin: stageMayJoin(config.linux?.resources) ? v1 : [], lateJoin: late, cgroup2Fd: cgroup2Fd >= 0 ? cgroup2Fd : undefined, network: network >= 0 ? network : undefined, runtimeHooks: !!(config.hooks?.prestart?.length || config.hooks?.createRuntime?.length) };
    recordHostMountNs();
    // orphans of this create (the init, once stage 1 exits) come to us, so a failure can reap them
    libc.prctl(C.PR_SET_CHILD_SUBREAPER, 1);
    const [p, child] = Channel.pair();
    parent = p;
    const direct = early ? cloneInit(plan, p, child) : undefined;
    if (direct === undefined) {
      stage1 = libc.fork();
      if (stage1 === 0) {
        parent.close();
        runStage1(plan, child);
      }
    } else {
      initPid = direct;
    }
    child.close();
    // a fifo opened for reading without blocking: the init's open for writing then never waits (see onStartReader)
    if (opts.onStartReader && !notifyDir && !config.hooks?.startContainer?.length) reader = libc.open(fifo, C.O_RDONLY | C.O_NONBLOCK | C.O_CLOEXEC);
    if (cgroup2Fd >= 0) cgroup2Fd = (libc.close(cgroup2Fd), -1);
    if (network >= 0) network = (libc.close(network), -1);

    const died = () => {
      const w = stage1 ? libc.waitpid(stage1, C.WNOHANG) : null;
      if (w) stage1 = 0;
      return new SetupError('create', `container init exited before it was ready${w ? ` (stage 1 ${w.exitCode !== null ? `exit status ${w.exitCode}` : `signal ${w.signal}`})` : ''}`);
    };
    // forked directly, the init was born in cgroup2 when it was asked to be
    let inCgroup2 = plan.cgroup2Fd !== undefined;
    if (stage1) {
      // stage 1: user namespace maps, then the init's PID
      let msg: Message | null;
      while ((msg = parent.recv())?.type === 'userns') {
        writeIdMaps(stage1, config.linux?.uidMappings, config.linux?.gidMappings);
        parent.send({ type: 'mapped' });
      }
      const born = expect(msg, 'init-pid', died, fromWire);
      initPid = born.pid;
      inCgroup2 = born.inCgroup === true;
    }
    // the init mounts while we make its cgroups (lateJoin) and add it to those it was not born in,
    // nor joins itself: a cgroup.procs write waits out an RCU grace period (~10 ms on a quiet host)
    parent.send({ type: 'go' });
    readyCgroups();
    rec.pid = initPid;
    rec.initStartTime = procStat(initPid)?.startTime;
    store.write(rec);
    const rest = leaves.filter((l) => !plan.selfJoin.includes(l) && !(inCgroup2 && v2.includes(l)));
    try {
      if (rest.length) addProcess(rest, initPid);
    } catch (e) {
      // the init died before we could place it: its own report says why
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') expect(parent.recv(), 'hooks', died, fromWire);
      throw e;
    }
    // createContainer hooks run during create: status creating (as runc passes them)
    const state: State = store.stateAs(rec, 'creating');
    parent.send({ type: 'cgroups', state });
    if (stage1) libc.waitpid(stage1);
    stage1 = 0;
    // oom_score_adj before the process runs; the init is non-dumpable, so we write it
    applyOomScoreAdj(initPid, config.process?.oomScoreAdj);

    if (plan.runtimeHooks) {
      // init has mounted everything: hooks in the runtime's namespaces
      expect(parent.recv(), 'hooks', died, fromWire);
      runHooks('prestart', config.hooks, state);
      runHooks('createRuntime', config.hooks, state);
      parent.send({ type: 'go' });
    }

    let next = parent.recv();
    if (next?.type === 'console') {
      const master = takeMaster(initPid, next.fd);
      if (opts.consoleSocket) {
        // the caller (containerd's shim, conmon) owns the terminal from here on
        sendConsole(opts.consoleSocket, master);
        parent.send({ type: 'go' });
        next = parent.recv();
      } else {
        cleanups.push(() => libc.close(master));
        parent.send({ type: 'go' });
        next = parent.recv();
        expect(next, 'created', died, fromWire);
        cleanups.pop();
        opts.onConsole!(master);
      }
    }
    expect(next, 'created', died, fromWire);
    rec.status = 'created';
    store.write(rec);
    keepSeccomp();
    if (opts.pidFile) writeFileAtomic(opts.pidFile, String(initPid));
    if (opts.pidfdSocket) sendPidfd(opts.pidfdSocket, initPid);
    if (reader >= 0) opts.onStartReader!(reader);
    reader = -1;
    return rec;
  } catch (e) {
    const failures: Error[] = [];
    const attempt = (f: () => void) => {
      try {
        f();
      } catch (err) {
        failures.push(err as Error);
      }
    };
    if (initPid) attempt(() => libc.kill(initPid, 9));
    if (stage1) attempt(() => (libc.kill(stage1, 9), libc.waitpid(stage1)));
    if (initPid) attempt(() => reap(initPid)); // ours once stage 1 is gone: we are its subreaper
    for (const c of cleanups.reverse()) attempt(c);
    throw failures.length ? new CreateError(e as Error, failures) : e;
  } finally {
    parent?.close();
    if (fifoFd >= 0) libc.close(fifoFd);
    if (reader >= 0) libc.close(reader);
    if (cgroup2Fd >= 0) libc.close(cgroup2Fd);
    if (network >= 0) libc.close(network);
    if (lock !== null) store.unlock(lock);
    releaseSeccomp(seccomp);
  }
}
