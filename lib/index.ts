/**
 * koci as a library: typed, Promise-based container operations.
 *
 *   const rt = new Runtime({ root: '/run/koci' });
 *   const { exitCode } = await rt.run('web-1', { bundle: '/srv/bundle' });
 *
 * Operations that fork (create, run, exec) run in a forked worker of the Runtime's
 * warm zygote, a `node --single-threaded` started on first use (see
 * process/launcher.ts); the host process is never forked. close() ends it. The others
 * (start, state, kill, delete, list, pause, resume, ps, stats, events) run in-process. A Runtime holds no
 * global state: two Runtimes with different roots are independent.
 */
import type { StdioOptions } from 'node:child_process';
import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { CreateOptions as CreateRequest } from './container/create';
import { deleteContainer } from './container/delete';
import { type ContainerEvent, containerEvents, containerStats, type EventsOptions } from './container/events';
import { killContainer } from './container/kill';
import { pauseContainer, resumeContainer } from './container/pause';
import { psContainer, psInfo, type ProcessInfo } from './container/ps';
import type { Stats } from './cgroups/stats';
import { type ContainerSummary, containerState, listContainers } from './container/query';
import { parseSignal } from './container/signals';
import { startContainer } from './container/start';
import { updateContainer } from './container/update';
import { UnsupportedError } from './errors';
import type { ExitStatus } from './process/helper';
import { DEFAULT_STATE_ROOT } from './paths';
import { Launcher } from './process/launcher';
import type { ExecRequest } from './process/serve-exec';
import type { LinuxResources, Process, State } from './spec/types';
import { StateStore } from './state/store';

export * from './errors';
export { InvalidSignalError } from './container/signals';
export type { ContainerSummary } from './container/query';
export type { ContainerEvent, StatsEvent, OomEvent, EventsOptions } from './container/events';
export type { ProcessInfo } from './container/ps';
export type { Stats, CpuUsage, Throttling, MemoryStats, MemoryEntry, BlkioStats, BlkioEntry, HugetlbStats } from './cgroups/stats';
export type { ExitStatus } from './process/helper';
export type { Spec, State, ContainerStatus, LinuxResources, Process } from './spec/types';
export { defaultSpec, KOCI_OCI_VERSION } from './spec/default';
export { defaultSeccomp } from './security/default-seccomp';
export { validateConfig } from './spec/validate';
export { loadBundle } from './spec/load';

export interface RuntimeOptions {
  /** state root (default /run/koci, as the CLI) */
  root?: string;
  /** the Node binary for the forking helper (default: this process's) */
  nodePath?: string;
  /** receives non-fatal warnings (failed poststart/poststop hooks, cgroup leftovers) */
  onWarning?: (message: string) => void;
}

export interface CreateOptions {
  /** bundle directory holding config.json */
  bundle: string;
  /** write the init's PID here, as `--pid-file` */
  pidFile?: string;
  /** MS_MOVE + chroot instead of pivot_root (`--no-pivot`) */
  noPivot?: boolean;
  /** keep the caller's session keyring instead of a new one (`--no-new-keyring`) */
  noNewKeyring?: boolean;
  /** pass fds 3..3+N-1 of the stdio below on to the container (`--preserve-fds`) */
  preserveFds?: number;
  /**
   * the container process's stdin, stdout, stderr, as child_process.spawn
   * takes them (default 'inherit': the host's own, as runc does with its caller's)
   */
  stdio?: StdioOptions;
}

export interface RunOptions extends CreateOptions {
  /** keep the stopped container instead of deleting it */
  keep?: boolean;
  /** collect the container's stdout and stderr into the result (overrides stdio 1 and 2) */
  capture?: boolean;
}

export interface RunResult extends ExitStatus {
  /** with `capture` */
  stdout?: string;
  stderr?: string;
}

export interface ExecOptions {
  /** the whole process (a runtime-spec `process`, checked as `exec --process` checks it); else `args` */
  process?: Process;
  /** the command: the container's own process (env, user, cwd, capabilities…) running it instead, as `exec ARGS` */
  args?: string[];
  /** 'NAME=value' entries added to the process's env (a name set again wins) */
  env?: string[];
  cwd?: string;
  /** gid defaults to the process's own */
  user?: { uid: number; gid?: number; additionalGids?: number[] };
  /** capability names added to the bounding, effective and permitted sets (as `exec --cap`) */
  capabilities?: string[];
  noNewPrivileges?: boolean;
  /** not in the library yet: rejects with UnsupportedError (so does a `process` whose terminal is true) */
  terminal?: boolean;
  /** pass fds 3..3+N-1 of the stdio below on to the process (`--preserve-fds`) */
  preserveFds?: number;
  /** as RunOptions.stdio (default 'inherit') */
  stdio?: StdioOptions;
  /** collect the process's stdout and stderr into the result (overrides stdio 1 and 2); not with `detach` */
  capture?: boolean;
  /** resolve once the process runs, without waiting for it: exitCode and signal are then null */
  detach?: boolean;
}

export interface ExecResult extends RunResult {
  /** the process's host PID */
  pid: number;
}

export interface KillOptions {
  /** signal every process of the container (through its cgroup), as `kill --all` */
  all?: boolean;
}

export interface DeleteOptions {
  /** kill a running container first */
  force?: boolean;
}

export class Runtime {
  readonly root: string | undefined;
  private readonly nodePath: string;
  private readonly warn: (message: string) => void;
  private readonly store: StateStore;
  private readonly launcher: Launcher;
  /** containers of finished runs still being deleted (run resolves at the exit): id -> the removal */
  private readonly removals = new Map<string, Promise<void>>();

  constructor(options: RuntimeOptions = {}) {
    this.root = options.root;
    this.nodePath = options.nodePath ?? process.execPath;
    this.warn = options.onWarning ?? (() => {});
    this.store = new StateStore(options.root);
    this.launcher = new Launcher(this.nodePath, this.warn, abs(options.root) ?? DEFAULT_STATE_ROOT);
  }

  /** create a container and leave it `created`: set up, its process not yet run */
  async create(id: string, options: CreateOptions): Promise<State> {
    await this.removed(id);
    const h = await this.launcher.launch({ op: 'create', create: this.createRequest(id, options) }, options.stdio ?? 'inherit', false);
    return (await h.reply(0)).created as State;
  }

  /**
   * end this Runtime's zygote (the forking process create, run and exec
   * use); it never keeps the host alive and ends with it anyway. Containers
   * do not depend on it, and runs and execs already under way finish. A
   * later create, run or exec starts a new one.
   */
  async close(): Promise<void> {
    await this.removed();
    await this.launcher.close();
  }

  /** wait for the removal of finished runs' containers: this one's, or all */
  private async removed(id?: string): Promise<void> {
    if (id === undefined) await Promise.all(this.removals.values());
    else await this.removals.get(id);
  }

  /** `await using rt = new Runtime()` */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** release a created container's process */
  async start(id: string): Promise<State> {
    await this.removed(id);
    startContainer(this.store, id, this.warn);
    return this.state(id);
  }

  /** the OCI state of a container */
  async state(id: string): Promise<State> {
    await this.removed(id);
    return containerState(this.store, id);
  }

  /** send a signal (name such as 'TERM'/'SIGTERM', or number; default SIGTERM) */
  async kill(id: string, signal: string | number = 'SIGTERM', options: KillOptions = {}): Promise<void> {
    await this.removed(id);
    killContainer(this.store, id, parseSignal(signal), options.all === true);
  }

  /** remove a stopped (or created) container; `force` kills a running one first */
  async delete(id: string, options: DeleteOptions = {}): Promise<void> {
    await this.removed(id);
    deleteContainer(this.store, id, options.force === true, this.warn);
  }

  /** freeze every process of a running container (state then reads `paused`) */
  async pause(id: string): Promise<void> {
    await this.removed(id);
    pauseContainer(this.store, id);
  }

  /** thaw a paused container */
  async resume(id: string): Promise<void> {
    await this.removed(id);
    resumeContainer(this.store, id);
  }

  /** the host PIDs of the container's processes; with `details`, /proc facts about each */
  async ps(id: string): Promise<number[]>;
  async ps(id: string, options: { details: true }): Promise<ProcessInfo[]>;
  async ps(id: string, options: { details?: boolean } = {}): Promise<number[] | ProcessInfo[]> {
    await this.removed(id);
    const pids = psContainer(this.store, id);
    return options.details ? psInfo(pids) : pids;
  }

  /** a snapshot of the container's cpu, memory, pids and blkio usage, from its cgroups */
  async stats(id: string): Promise<Stats> {
    await this.removed(id);
    return containerStats(this.store, id);
  }

  /**
   * the container's events: stats every `interval` ms (the first at once)
   * and an `oom` event per OOM kill, until it stops or `signal` aborts;
   * leaving a for-await loop ends it too
   */
  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<ContainerEvent, void, undefined> {
    await this.removed(id);
    yield* containerEvents(this.store, id, options);
  }

  /**
   * change a live container's cgroup limits (as `koci update`): only the
   * fields given are written, all checked first; a field the host cannot
   * honour rejects with CgroupError and changes nothing
   */
  async update(id: string, resources: LinuxResources): Promise<void> {
    await this.removed(id);
    updateContainer(this.store, id, resources);
  }

  /** every container under this runtime's root */
  async list(): Promise<ContainerSummary[]> {
    await this.removed();
    return listContainers(this.store);
  }

  /**
   * create + start, wait for the container's process to exit, then delete
   * it (unless `keep`). `onStarted` sees the state of the running container.
   * Resolves at the exit: without poststop hooks, the container's removal
   * finishes right after, and every later call of this Runtime (and close())
   * waits for it, so the ID is free again for them; other processes may see
   * the stopped container for that moment.
   */
  async run(id: string, options: RunOptions, onStarted?: (state: State) => void): Promise<RunResult> {
    await this.removed(id);
    const h = await this.launcher.launch({ op: 'run', create: this.createRequest(id, options), keep: options.keep }, stdioOf(options), options.capture === true);
    const out = options.capture ? collect(h.stdout) : undefined;
    const err = options.capture ? collect(h.stderr) : undefined;
    const started = await h.reply(0);
    onStarted?.(started.created as State);
    const done = await h.reply('last');
    if (done.removing) {
      // the worker deletes the container now; what this Runtime does with it next waits for that
      const removal: Promise<void> = h
        .reply(2)
        .then(
          () => undefined,
          (e: Error) => this.warn(`removing ${id}: ${e.message}`),
        )
        .finally(() => {
          if (this.removals.get(id) === removal) this.removals.delete(id);
        });
      this.removals.set(id, removal);
    }
    const result: RunResult = { ...done.exited! };
    if (out && err) {
      result.stdout = await out;
      result.stderr = await err;
    }
    return result;
  }

  /**
   * run one more process in a created or running container (as `koci exec`):
   * it joins the container's namespaces and cgroups, under its seccomp
   * profile. Resolves when the process exits (with `detach`, once it runs).
   * `onStarted` sees its host PID before the wait.
   */
  async exec(id: string, options: ExecOptions, onStarted?: (pid: number) => void): Promise<ExecResult> {
    const o = options;
    if ((o.process === undefined) === (o.args === undefined)) throw new TypeError('exec: give either process or args');
    if (o.args?.length === 0) throw new TypeError('exec: args must name the command to run');
    if (o.terminal || o.process?.terminal) throw new UnsupportedError('exec with a terminal is not in the library yet (the CLI has exec -t)', 'process.terminal');
    // the output is collected until the process ends, which a detached exec does not wait for
    if (o.capture && o.detach) throw new TypeError('exec: capture and detach exclude each other');
    await this.removed(id);
    const exec: ExecRequest = {
      id,
      root: abs(this.root),
      process: o.process,
      args: o.args,
      changes: { env: o.env, cwd: o.cwd, user: o.user, capabilities: o.capabilities, noNewPrivileges: o.noNewPrivileges },
      preserveFds: o.preserveFds,
      detach: o.detach,
    };
    const h = await this.launcher.launch({ op: 'exec', exec }, stdioOf(o), o.capture === true);
    const out = o.capture ? collect(h.stdout) : undefined;
    const err = o.capture ? collect(h.stderr) : undefined;
    const { pid } = (await h.reply(0)).created as { pid: number };
    if (o.detach) {
      // the drained 'pipe' outputs live as long as the process: they must not keep the host alive
      for (const s of [h.stdout, h.stderr]) (s as Socket | null)?.unref();
      return { pid, exitCode: null, signal: null };
    }
    onStarted?.(pid);
    const done = await h.reply('last');
    const result: ExecResult = { pid, ...done.exited! };
    if (out && err) {
      result.stdout = await out;
      result.stderr = await err;
    }
    return result;
  }

  private createRequest(id: string, o: CreateOptions): CreateRequest {
    return { id, bundle: abs(o.bundle)!, root: abs(this.root), pidFile: abs(o.pidFile), noPivot: o.noPivot, noNewKeyring: o.noNewKeyring, preserveFds: o.preserveFds };
  }
}

/** paths are resolved here: the forking process does not share later changes of our cwd */
function abs(p: string | undefined): string | undefined {
  return p === undefined ? undefined : resolve(p);
}

/** capture replaces stdout and stderr only: stdin and the preserved fds stay as given */
function stdioOf(o: { stdio?: StdioOptions; capture?: boolean }): StdioOptions {
  if (!o.capture) return o.stdio ?? 'inherit';
  return Array.isArray(o.stdio) ? [o.stdio[0], 'pipe', 'pipe', ...o.stdio.slice(3)] : ['ignore', 'pipe', 'pipe'];
}

function collect(stream: Readable | null): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    let s = '';
    stream.setEncoding('utf8').on('data', (c: string) => (s += c));
    stream.on('end', () => resolve(s)).on('error', reject);
  });
}
