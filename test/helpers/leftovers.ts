/**
 * "Everything koci could leave behind" for one test: entries in its state
 * root, koci-* cgroup directories named after this test process's IDs,
 * mounts mentioning its bundles, and processes living in its bundles.
 * Snapshot before, snapshot after, compare: a failed create must leave none.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Leftovers {
  state: string[];
  cgroups: string[];
  mounts: string[];
  processes: string[];
}

function walkState(dir: string, rel = ''): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    // koci's cache of compiled seccomp programs (lib/security/seccomp-cache.ts): written after a
    // successful create only, shared by containers, never per container
    if (!rel && e.name === '@cache') continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    out.push(r);
    if (e.isDirectory()) out.push(...walkState(join(dir, e.name), r));
  }
  return out;
}

/**
 * koci-* directories up to depth 4 under /sys/fs/cgroup (covers
 * /sys/fs/cgroup/memory/<own>/<path>/koci-x on hybrid hosts) whose name has
 * `marker` in it: test files run in parallel, so only this file's IDs count.
 */
function walkCgroups(marker: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (e.name.startsWith('koci-') && e.name.includes(marker)) out.push(p);
      if (depth < 4) walk(p, depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 1);
  return out.sort();
}

function mountsUnder(paths: string[]): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => paths.some((p) => l.includes(p)));
}

function processesIn(paths: string[]): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    for (const link of ['cwd', 'root']) {
      try {
        const target = readlinkSync(`/proc/${pid}/${link}`);
        if (paths.some((p) => target === p || target.startsWith(p + '/'))) out.push(`${pid} ${link}=${target}`);
      } catch {
        /* gone, or a kernel thread */
      }
    }
  }
  return out;
}

/** a snapshot for a state root and the bundle directories a test uses; marker selects cgroup names */
export function leftovers(root: string, bundles: string[], marker = `-${process.pid}-`): Leftovers {
  const dirs = bundles.filter((b) => existsSync(b) && statSync(b).isDirectory());
  return { state: walkState(root), cgroups: walkCgroups(marker), mounts: mountsUnder(dirs), processes: processesIn(dirs) };
}
