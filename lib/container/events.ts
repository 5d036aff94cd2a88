/**
 * events: a container's resource statistics every interval, and an `oom`
 * event each time the kernel OOM-kills in its memory cgroup. Shaped like
 * runc's events. Nothing is polled where the kernel can tell: OOMs come
 * from an eventfd (v1) or inotify (v2) on the memory cgroup
 * (cgroups/oom.ts), the end of the container from a pidfd of its init, and
 * both are waited on in the event loop (fd-watch.ts). Stats stay on a timer,
 * as in runc. Where a notification is missing (no pidfd, no memory cgroup
 * with notifications, no fd watching in this Node) that part falls back to
 * polling every `pollInterval`.
 */
import * as libc from '../../bindings/libc';
import { oomCount, readStats, type Stats } from '../cgroups/stats';
import { type OomWatch, watchOom } from '../cgroups/oom';
import { IncorrectStatusError } from '../errors';
import { type FdWatch, watchFd } from '../fd-watch';
import { isAlive } from '../state/liveness';
import { StateStore } from '../state/store';

export interface StatsEvent {
  type: 'stats';
  id: string;
  data: Stats;
}

export interface OomEvent {
  type: 'oom';
  id: string;
}

export type ContainerEvent = StatsEvent | OomEvent;

export interface EventsOptions {
  /** milliseconds between stats events (default 5000); the first comes at once */
  interval?: number;
  /** only OOM events, no stats */
  noStats?: boolean;
  /**
   * how often the OOM counter and the container's liveness are checked when
   * the kernel cannot notify them (default 100 ms; unused when it can)
   */
  pollInterval?: number;
  /** ends the iteration */
  signal?: AbortSignal;
}

function live(store: StateStore, id: string): { leaves: string[]; running: boolean; pid?: number; startTime?: string } {
  const rec = store.read(id);
  const status = store.status(rec);
  return { leaves: rec.cgroupLeaves ?? [], running: status !== 'stopped' && status !== 'creating', pid: rec.pid, startTime: rec.initStartTime };
}

function stillRunning(store: StateStore, id: string): boolean {
  try {
    return live(store, id).running;
  } catch {
    return false; // deleted
  }
}

export function containerStats(store: StateStore, id: string): Stats {
  const { leaves, running } = live(store, id);
  if (!running) throw new IncorrectStatusError(id, 'get stats of', 'stopped', 'container not running');
  return readStats(leaves);
}

/** onExit once the init exits: a pidfd waited on in the event loop; undefined when that is not possible */
function watchExit(pid: number, startTime: string | undefined, onExit: () => void): FdWatch | undefined {
  let pidfd: number;
  try {
    pidfd = libc.pidfdOpen(pid);
  } catch {
    return undefined; // no pidfd_open (kernel < 5.3), or already gone: polling sees it
  }
  // the init outlived the open, so the pidfd is its own and not a recycled PID's
  const ours = isAlive(pid, startTime);
  const w = ours ? watchFd(pidfd, () => {}, () => onExit()) : undefined;
  if (!w) libc.close(pidfd);
  return w;
}

/** a wait the watchers' callbacks, a timer or an abort can end */
class Waiter {
  private done?: () => void;
  readonly wake = (): void => this.done?.();

  /** wait up to ms (Infinity: no timer), keeping the process alive through handles meanwhile */
  wait(ms: number, signal: AbortSignal | undefined, handles: FdWatch[]): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', finish);
        // an iterator left suspended (never returned) must not keep the process alive
        for (const h of handles) h.unref();
        this.done = undefined;
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(finish, Math.max(0, ms)) : undefined;
      signal?.addEventListener('abort', finish, { once: true });
      for (const h of handles) h.ref();
      this.done = finish;
    });
  }
}

/**
 * Events until the container stops or is deleted (or `signal` aborts).
 * Throws IncorrectStatusError at once when it is not running.
 */
export async function* containerEvents(store: StateStore, id: string, opts: EventsOptions = {}): AsyncGenerator<ContainerEvent, void, undefined> {
  const interval = opts.interval ?? 5000;
  if (!(interval > 0)) throw new RangeError(`events interval must be positive, not ${interval}`);
  const poll = Math.min(opts.pollInterval ?? 100, interval);
  const first = live(store, id);
  if (!first.running) throw new IncorrectStatusError(id, 'get events of', 'stopped', 'container not running');
  const leaves = first.leaves;

  const waiter = new Waiter();
  let ooms = 0; // noticed, not yet yielded
  // a watcher that ended: its part is checked now and polled from then on
  let oomEnded = false;
  let exitEnded = false;
  let oom: OomWatch | undefined = watchOom(
    leaves,
    (n) => {
      ooms += n;
      waiter.wake();
    },
    () => {
      oomEnded = true;
      waiter.wake();
    },
  );
  let exit: FdWatch | undefined;
  try {
    exit = first.pid === undefined ? undefined : watchExit(first.pid, first.startTime, () => {
      exitEnded = true;
      waiter.wake();
    });
  } catch (e) {
    oom?.close();
    throw e;
  }
  const handles = () => [oom, exit].filter((h): h is FdWatch => h !== undefined);
  for (const h of handles()) h.unref();
  let lastCount = oom ? 0 : oomCount(leaves) ?? 0;
  let nextStats = Date.now();
  try {
    for (;;) {
      if (opts.signal?.aborted) return;
      if (oomEnded) {
        oomEnded = false;
        oom?.close();
        oom = undefined;
        lastCount = oomCount(leaves) ?? 0;
      }
      if (exitEnded) {
        exitEnded = false;
        exit?.close();
        exit = undefined;
      }
      const ending = !exit && !stillRunning(store, id);
      // an OOM kill may be what ended it: report it before ending
      if (ending) oom?.check();
      if (!oom) {
        const n = oomCount(leaves);
        if (n !== undefined && n > lastCount) {
          ooms += n - lastCount;
          lastCount = n;
        }
      }
      for (; ooms > 0; ooms--) yield { type: 'oom', id };
      if (ending) return;
      if (!opts.noStats && Date.now() >= nextStats) {
        yield { type: 'stats', id, data: readStats(leaves) };
        nextStats = Date.now() + interval;
        continue;
      }
      const untilStats = opts.noStats ? Infinity : nextStats - Date.now();
      await waiter.wait(Math.min(untilStats, oom && exit ? Infinity : poll), opts.signal, handles());
    }
  } finally {
    oom?.close();
    exit?.close();
  }
}

/** Go's time.Duration syntax as runc takes `--interval` ("5s", "500ms", "1m30s"), in milliseconds */
export function parseDuration(s: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let i = 0;
  if (!s) throw new RangeError('empty duration');
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) throw new RangeError(`invalid duration ${JSON.stringify(s)} (use e.g. 5s, 500ms, 1m)`);
    total += Number(m[1]) * units[m[2]];
    i = re.lastIndex;
  }
  return total;
}
