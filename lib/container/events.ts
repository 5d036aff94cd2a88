/**
 * events: a container's resource statistics every interval, and an `oom`
 * event each time the kernel OOM-kills one of its processes (the memory
 * cgroup's oom_kill counter — v1 memory.oom_control, v2 memory.events —
 * polled, so no eventfd or inotify is needed). Shaped like runc's events.
 */
import { oomCount, readStats, type Stats } from '../cgroups/stats';
import { IncorrectStatusError } from '../errors';
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
  /** how often the OOM counter and the container's liveness are checked (default 100 ms) */
  pollInterval?: number;
  /** ends the iteration */
  signal?: AbortSignal;
}

function live(store: StateStore, id: string): { leaves: string[]; running: boolean } {
  const rec = store.read(id);
  const status = store.status(rec);
  return { leaves: rec.cgroupLeaves ?? [], running: status !== 'stopped' && status !== 'creating' };
}

export function containerStats(store: StateStore, id: string): Stats {
  const { leaves, running } = live(store, id);
  if (!running) throw new IncorrectStatusError(id, 'get stats of', 'stopped', 'container not running');
  return readStats(leaves);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

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
  let ooms = oomCount(leaves) ?? 0;
  let nextStats = Date.now();
  for (;;) {
    if (opts.signal?.aborted) return;
    const n = oomCount(leaves);
    if (n !== undefined && n > ooms) {
      for (; ooms < n; ooms++) yield { type: 'oom', id };
    }
    let running: boolean;
    try {
      running = live(store, id).running;
    } catch {
      running = false; // deleted
    }
    if (!running) return;
    if (!opts.noStats && Date.now() >= nextStats) {
      yield { type: 'stats', id, data: readStats(leaves) };
      nextStats = Date.now() + interval;
    }
    await sleep(poll, opts.signal);
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
