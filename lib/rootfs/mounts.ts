/** The `mounts` of config.json, mounted under the rootfs before pivot_root. */
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, posix, resolve } from 'node:path';
import * as C from '../../bindings/constants';
import { SetupError, SyscallError } from '../errors';
import type { Mount } from '../spec/types';
import { mount, remountBind } from './mount';
import { parseMountOptions, type ParsedOptions } from './options';
import { mkdirInRoot, touchInRoot } from './paths';

export interface MountContext {
  rootfs: string;
  bundle: string;
  /** the init's cgroup paths per hierarchy, read before it entered a cgroup namespace */
  cgroupPaths: Map<string, string>;
  newCgroupNs: boolean;
}

/**
 * A destination as an absolute, clean container path: a relative one is read
 * as relative to "/" (runtime-spec 1.2+, runc), "/dev/" is "/dev".
 */
export function containerDestination(dest: string): string {
  const p = posix.normalize('/' + dest);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/** mount one config entry; the caller attributes errors to the entry */
export function mountEntry(entry: Mount, ctx: MountContext): void {
  const m = { ...entry, destination: containerDestination(entry.destination) };
  const opts = parseMountOptions(m.options);
  const type = m.type ?? '';
  if (opts.bind || type === 'bind') return bindMount(m, opts, ctx);
  if (type === 'cgroup' || type === 'cgroup2') return mountCgroup(m, opts, ctx);

  if (type === 'proc' || type === 'sysfs') refuseSymlink(ctx.rootfs, m.destination);
  const target = mkdirInRoot(ctx.rootfs, m.destination);
  mount(m.source ?? type, target, type, opts.flags & ~C.MS_REMOUNT, opts.data.join(',') || null);
  applyPropagation(target, opts);
}

function applyPropagation(target: string, opts: ParsedOptions): void {
  for (const p of opts.propagation) mount(null, target, null, p, null);
}

/** /proc and /sys must land on a real directory, never through a symlink planted in the image */
function refuseSymlink(rootfs: string, dest: string): void {
  let p = rootfs;
  for (const c of dest.split('/').filter(Boolean)) {
    p += '/' + c;
    try {
      if (lstatSync(p).isSymbolicLink()) throw new SetupError('mount', `destination ${dest} is a symlink (${p})`, dest);
    } catch (e) {
      if (e instanceof SetupError) throw e;
      return; // missing: it will be created as a directory
    }
  }
}

function bindMount(m: Mount, opts: ParsedOptions, ctx: MountContext): void {
  if (!m.source) throw new SetupError('mount', `bind mount of ${m.destination} has no source`, m.destination);
  const source = isAbsolute(m.source) ? m.source : resolve(ctx.bundle, m.source);
  let isDir: boolean;
  try {
    isDir = statSync(source).isDirectory();
  } catch (e) {
    throw new SyscallError('stat', Math.abs((e as NodeJS.ErrnoException).errno ?? 2), source);
  }
  const target = isDir ? mkdirInRoot(ctx.rootfs, m.destination) : touchInRoot(ctx.rootfs, m.destination);
  mount(source, target, null, C.MS_BIND | (opts.recursive ? C.MS_REC : 0), null);
  if (opts.flags & ~C.MS_REMOUNT) remountBind(target, opts.flags);
  applyPropagation(target, opts);
}

interface CgroupMount {
  mountpoint: string;
  fstype: 'cgroup' | 'cgroup2';
  /** v1 super options naming the hierarchy: 'cpu', 'cpu,cpuacct', 'name=systemd' */
  hierarchy: string;
}

function hostCgroupMounts(): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const [fstype, , superOpts] = post.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const mountpoint = pre.split(' ')[4];
    if (!mountpoint.startsWith('/sys/fs/cgroup')) continue;
    const hierarchy = fstype === 'cgroup2' ? '' : superOpts.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('release_agent') && o !== 'clone_children' && o !== 'noprefix' && o !== 'xattr').join(',');
    out.push({ mountpoint, fstype, hierarchy });
  }
  return out;
}

/**
 * cgroup mounts follow the host's layout: a pure cgroup2 host gets cgroup2;
 * a v1 or hybrid host gets a tmpfs with one mount per hierarchy. With a new
 * cgroup namespace a fresh mount shows the container's own cgroup as root;
 * without one (or where the kernel refuses, as for v1 in a user namespace)
 * the container's own cgroup directory is bind-mounted instead.
 */
function mountCgroup(m: Mount, opts: ParsedOptions, ctx: MountContext): void {
  const target = mkdirInRoot(ctx.rootfs, m.destination);
  const flags = opts.flags & ~C.MS_REMOUNT;
  const mounts = hostCgroupMounts();
  const unified = mounts.find((c) => c.mountpoint === '/sys/fs/cgroup' && c.fstype === 'cgroup2');
  if (unified) {
    mountOneCgroup(unified, target, flags, ctx);
  } else {
    mount('tmpfs', target, 'tmpfs', flags & ~C.MS_RDONLY, 'mode=755');
    for (const c of mounts) {
      const name = basename(c.mountpoint);
      const sub = mkdirInRoot(ctx.rootfs, `${m.destination}/${name}`);
      mountOneCgroup(c, sub, flags, ctx);
    }
    if (flags & C.MS_RDONLY) mount(null, target, null, C.MS_REMOUNT | flags, 'mode=755');
  }
  applyPropagation(target, opts);
}

function mountOneCgroup(c: CgroupMount, target: string, flags: number, ctx: MountContext): void {
  if (ctx.newCgroupNs) {
    try {
      mount(c.fstype, target, c.fstype, flags, c.fstype === 'cgroup' ? c.hierarchy : null);
      return;
    } catch (e) {
      if (!(e instanceof SyscallError) || e.code !== 'EPERM') throw e;
    }
  }
  const own = ctx.cgroupPaths.get(c.fstype === 'cgroup2' ? '' : c.hierarchy) ?? '/';
  const source = c.mountpoint + (own === '/' ? '' : own);
  mount(source, target, null, C.MS_BIND | C.MS_REC, null);
  remountBind(target, flags);
}

/** /proc/self/cgroup: hierarchy ('' for cgroup2, else its controllers or name=) -> path */
export function readOwnCgroups(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}
