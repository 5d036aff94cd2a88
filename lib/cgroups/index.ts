/**
 * Placing a container in its own cgroup, on whichever layout the host has:
 * pure cgroup v2 (/sys/fs/cgroup is cgroup2), or v1 hierarchies with an
 * optional cgroup2 mount beside them (hybrid). Detected at run time.
 * A relative cgroupsPath (and the default) lives under the caller's own
 * cgroup in each hierarchy, an absolute one is honoured as given.
 * Resource limits are applied on top of this by the resources code.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { CgroupError, SetupError } from '../errors';
import { sleepSync } from '../sleep';
import type { LinuxResources } from '../spec/types';

export interface Hierarchy {
  mountpoint: string;
  /** '' for cgroup2, else the v1 controllers ('cpu', 'cpu,cpuacct') or 'name=systemd' */
  key: string;
}

export function hierarchies(): Hierarchy[] {
  const out: Hierarchy[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const [fstype, , superOpts] = post.split(' ');
    const mountpoint = pre.split(' ')[4];
    if (fstype === 'cgroup2') out.push({ mountpoint, key: '' });
    else if (fstype === 'cgroup') {
      const key = superOpts.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.includes('release_agent') && !['clone_children', 'noprefix', 'xattr'].includes(o)).join(',');
      if (!out.some((h) => h.key === key)) out.push({ mountpoint, key });
    }
  }
  return out;
}

function ownCgroups(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

/** the directories (one per hierarchy) a container with this cgroupsPath lives in */
export function cgroupDirs(cgroupsPath: string | undefined, id: string, mounts: Hierarchy[] = hierarchies()): string[] {
  if (cgroupsPath !== undefined && !cgroupsPath.startsWith('/') && /^[^/:]*:[^/:]*:[^/:]*$/.test(cgroupsPath)) {
    throw new CgroupError('linux.cgroupsPath', `${JSON.stringify(cgroupsPath)} is the systemd "slice:prefix:name" form, which needs a systemd cgroup driver; koci has none: use an absolute or relative path`);
  }
  if (cgroupsPath !== undefined && (cgroupsPath === '' || cgroupsPath.split('/').includes('..'))) {
    throw new CgroupError('linux.cgroupsPath', `${JSON.stringify(cgroupsPath)} must be a non-empty path without ".." components`);
  }
  const own = ownCgroups();
  const rel = cgroupsPath ?? `koci-${id}`;
  return mounts.map((h) => {
    const base = rel.startsWith('/') ? '' : (own.get(h.key) ?? '/');
    return join(h.mountpoint, base, rel);
  });
}

/** which of cgroupDirs' directories are in a cgroup2 hierarchy (at most one), known before they exist */
export function cgroup2Dirs(dirs: readonly string[], mounts: Hierarchy[]): string[] {
  const roots = mounts.filter((h) => h.key === '').map((h) => h.mountpoint);
  return dirs.filter((d) => roots.some((r) => d === r || d.startsWith(`${r}/`)));
}

/** like runc: never share a cgroup with running processes (another container's, say); a missing one has none */
export function refuseBusyCgroups(dirs: string[]): void {
  for (const dir of dirs) {
    if (!existsSync(dir)) continue; // usually: a failed read would cost an exception each
    const busy = cgroupPids([dir]);
    if (busy.length) throw new SetupError('cgroup', `${dir} is in use by pid ${busy.slice(0, 3).join(', ')}; choose another linux.cgroupsPath or container ID`, dir);
  }
}

/** create the directories (refuseBusyCgroups first); returns every directory made, outermost first, for removal */
export function createCgroups(dirs: string[]): string[] {
  const made: string[] = [];
  const madeNow = (d: string) => {
    made.push(d);
    // a new v1 cpuset is empty and refuses tasks until it inherits cpus and mems
    if (existsSync(join(d, 'cpuset.cpus'))) {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (!readFileSync(join(d, f), 'utf8').trim()) writeFileSync(join(d, f), readFileSync(join(d, '..', f)));
      }
    }
  };
  try {
    for (const dir of dirs) {
      // usually a new leaf under an existing parent: one mkdir makes it
      let missing: string[] | undefined;
      try {
        mkdirSync(dir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') continue;
        if (code !== 'ENOENT') throw e;
        missing = [];
        for (let d = dir; !existsSync(d); d = join(d, '..')) missing.unshift(d);
      }
      if (!missing) madeNow(dir);
      else
        for (const d of missing) {
          mkdirSync(d);
          madeNow(d);
        }
    }
  } catch (e) {
    // the caller only learns of what was made on success: undo it here
    for (const d of made.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        /* best effort: the error that matters is e */
      }
    }
    throw e;
  }
  return made;
}

export function addProcess(dirs: string[], pid: number): void {
  for (const d of dirs) writeFileSync(join(d, 'cgroup.procs'), String(pid));
}

/**
 * Move the calling process, which must be single-threaded (a forked child),
 * into v1 cgroups by writing 0 to `tasks`: a thread moving itself skips the
 * global threadgroup lock, whose writer waits out an RCU grace period (up to
 * ~10 ms when no other cgroup write came just before). cgroup2 has no such
 * path: its cgroup.procs always takes the lock (see leavesByVersion).
 */
export function joinCgroups(dirs: string[]): void {
  for (const d of dirs) writeFileSync(join(d, 'tasks'), '0');
}

/**
 * A container's leaves by how a new process gets into them without the global lock: the v1 ones it
 * moves itself into (they have `tasks`, see joinCgroups), and the cgroup2 one (at most one: a pure v2
 * host's, or a hybrid host's unified hierarchy) it can be born in (openCgroup2, clone3)
 */
export function leavesByVersion(dirs: string[]): { v1: string[]; v2: string[] } {
  const v1 = dirs.filter((d) => existsSync(join(d, 'tasks')));
  return { v1, v2: dirs.filter((d) => !v1.includes(d)) };
}

/** an fd of a cgroup2 directory, for clone3's CLONE_INTO_CGROUP (an O_PATH fd would not do) */
export function openCgroup2(dir: string): number {
  return libc.open(dir, C.O_RDONLY | C.arch.O_DIRECTORY | C.O_CLOEXEC);
}

/** whether the forked stage before the init may join the cgroups: pids.max must leave room for it beside the init */
export function stageMayJoin(resources: LinuxResources | undefined): boolean {
  const limit = resources?.pids?.limit;
  return !(limit === 1 || resources?.unified?.['pids.max']?.trim() === '1');
}

export function cgroupPids(dirs: string[]): number[] {
  for (const d of dirs) {
    try {
      return readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      /* try the next hierarchy */
    }
  }
  return [];
}


/** kill what is left in the cgroups and remove the directories koci made (innermost first) */
export function destroyCgroups(made: string[], leaves: string[]): Error[] {
  const errors: Error[] = [];
  for (let i = 0; i < 100; i++) {
    const pids = cgroupPids(leaves.filter(existsSync));
    if (!pids.length) break;
    for (const p of pids) {
      try {
        libc.kill(p, 9);
      } catch {
        /* already gone */
      }
    }
    sleepSync(2);
  }
  for (const d of [...made].reverse()) {
    for (let i = 0; ; i++) {
      try {
        rmdirSync(d);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code === 'EBUSY' && i < 50) {
          sleepSync(2);
          continue;
        }
        errors.push(e as Error);
        break;
      }
    }
  }
  return errors;
}
