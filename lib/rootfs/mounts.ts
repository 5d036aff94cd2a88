/** The `mounts` of config.json, mounted under the rootfs before pivot_root. */
import { fstatSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, posix, resolve } from 'node:path';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError, SyscallError } from '../errors';
import type { Mount } from '../spec/types';
import { mount, remountBind } from './mount';
import { parseMountOptions, type ParsedOptions } from './options';
import { fdPath, mkdirInRoot, touchInRoot, withPathInRoot } from './paths';
import { sleepSync } from '../sleep';

export interface MountContext {
  rootfs: string;
  bundle: string;
  /** the init's cgroup paths per hierarchy, read before it entered a cgroup namespace (set before the first cgroup mount) */
  cgroupPaths: Map<string, string>;
  newCgroupNs: boolean;
  /** linux.mountLabel: the SELinux context of the filesystems koci mounts */
  mountLabel?: string;
}

/**
 * A destination as an absolute, clean container path: a relative one is read
 * as relative to "/" (runtime-spec 1.2+, runc), "/dev/" is "/dev".
 */
export function containerDestination(dest: string): string {
  const p = posix.normalize('/' + dest);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/**
 * TEST-ONLY knobs, read by the CVE-2021-30465 attack test
 * (test/cve-2021-30465.test.ts) and never set by koci itself:
 * - KOCI_TEST_MOUNT_DELAY_MS=<ms>: sleep that long between resolving a
 *   destination and mounting on it, widening the race window on purpose;
 * - KOCI_TEST_UNSAFE_MOUNT_PATHS=1: resolve destinations of plain and bind
 *   mounts to host path strings and mount on those (the old, racy code), so
 *   the test can show the attack succeeding without the fd-based protection.
 */
function testDelay(): void {
  const ms = Number(process.env.KOCI_TEST_MOUNT_DELAY_MS ?? 0);
  if (ms > 0) sleepSync(ms);
}
const unsafePaths = (): boolean => process.env.KOCI_TEST_UNSAFE_MOUNT_PATHS === '1';

/** mount one config entry; the caller attributes errors to the entry */
export function mountEntry(entry: Mount, ctx: MountContext): void {
  const m = { ...entry, destination: containerDestination(entry.destination) };
  const opts = parseMountOptions(m.options);
  const type = m.type ?? '';
  if (opts.bind || type === 'bind') return bindMount(m, opts, ctx);
  if (type === 'cgroup' || type === 'cgroup2') return mountCgroup(m, opts, ctx);

  if (unsafePaths()) {
    const target = mkdirInRoot(ctx.rootfs, m.destination);
    testDelay();
    mount(m.source ?? type, target, type, opts.flags & ~C.MS_REMOUNT, opts.data.join(',') || null);
    for (const p of opts.propagation) mount(null, target, null, p, null);
    return;
  }
  // /proc and /sys must land on a real directory, never through a symlink planted in the image
  const noSymlinks = type === 'proc' || type === 'sysfs';
  const data = labelled(opts.data.join(',') || null, type, ctx.mountLabel);
  withPathInRoot(ctx.rootfs, m.destination, { create: 'dir', noSymlinks }, (target) => {
    testDelay();
    mount(m.source ?? type, target, type, opts.flags & ~C.MS_REMOUNT, data, m.destination);
  });
  applyPropagation(ctx, m.destination, opts, noSymlinks);
}

/** mount data with linux.mountLabel as the SELinux context, for the filesystems that take one (as runc) */
function labelled(data: string | null, fstype: string, mountLabel: string | undefined): string | null {
  if (!mountLabel || ['proc', 'sysfs', 'cgroup', 'cgroup2', 'mqueue', 'bind', 'none', ''].includes(fstype)) return data;
  const ctx = `context="${mountLabel}"`;
  return data ? `${data},${ctx}` : ctx;
}

/** propagation changes, on the mount now at `dest` (re-resolved: the fd used to mount refers to what is underneath) */
function applyPropagation(ctx: MountContext, dest: string, opts: ParsedOptions, noSymlinks = false): void {
  if (!opts.propagation.length) return;
  withPathInRoot(ctx.rootfs, dest, { noSymlinks }, (target) => {
    for (const p of opts.propagation) mount(null, target, null, p, null, dest);
  });
}

/** an O_PATH fd of a host path (a bind source): it stays as given, but cannot be swapped once opened */
function openSource(source: string): number {
  try {
    return libc.open(source, C.O_PATH | C.O_CLOEXEC);
  } catch (e) {
    if (SyscallError.is(e)) throw new SyscallError('stat', e.errno, source);
    throw e;
  }
}

function bindMount(m: Mount, opts: ParsedOptions, ctx: MountContext): void {
  if (!m.source) throw new SetupError('mount', `bind mount of ${m.destination} has no source`, m.destination);
  const source = isAbsolute(m.source) ? m.source : resolve(ctx.bundle, m.source);
  const bindFlags = C.MS_BIND | (opts.recursive ? C.MS_REC : 0);
  if (unsafePaths()) {
    let isDir: boolean;
    try {
      isDir = statSync(source).isDirectory();
    } catch (e) {
      throw new SyscallError('stat', Math.abs((e as NodeJS.ErrnoException).errno ?? 2), source);
    }
    const target = isDir ? mkdirInRoot(ctx.rootfs, m.destination) : touchInRoot(ctx.rootfs, m.destination);
    testDelay();
    mount(source, target, null, bindFlags, null);
    if (opts.flags & ~C.MS_REMOUNT) remountBind(target, opts.flags);
    for (const p of opts.propagation) mount(null, target, null, p, null);
    return;
  }
  const srcFd = openSource(source);
  try {
    const isDir = fstatSync(srcFd).isDirectory();
    withPathInRoot(ctx.rootfs, m.destination, { create: isDir ? 'dir' : 'file' }, (target) => {
      testDelay();
      mount(fdPath(srcFd), target, null, bindFlags, null, m.destination);
    });
  } finally {
    libc.close(srcFd);
  }
  if (opts.flags & ~C.MS_REMOUNT) withPathInRoot(ctx.rootfs, m.destination, {}, (target) => remountBind(target, opts.flags, m.destination));
  applyPropagation(ctx, m.destination, opts);
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
  const dest = m.destination;
  const flags = opts.flags & ~C.MS_REMOUNT;
  const mounts = hostCgroupMounts();
  const unified = mounts.find((c) => c.mountpoint === '/sys/fs/cgroup' && c.fstype === 'cgroup2');
  if (unified) {
    mountOneCgroup(unified, dest, flags, ctx);
  } else {
    withPathInRoot(ctx.rootfs, dest, { create: 'dir' }, (target) => mount('tmpfs', target, 'tmpfs', flags & ~C.MS_RDONLY, 'mode=755', dest));
    // the tmpfs is new and ours: each hierarchy's directory is made in it directly (no walk from the rootfs)
    withPathInRoot(ctx.rootfs, dest, {}, (target, tmpfs) => {
      for (const c of mounts) mountOneCgroup(c, `${dest}/${basename(c.mountpoint)}`, flags, ctx, tmpfs);
      if (flags & C.MS_RDONLY) mount(null, target, null, C.MS_REMOUNT | flags, 'mode=755', dest);
    });
  }
  applyPropagation(ctx, dest, opts);
}

/** inTmpfs: an fd of the fresh tmpfs that holds dest (its parent directory), when there is one */
function mountOneCgroup(c: CgroupMount, dest: string, flags: number, ctx: MountContext, inTmpfs?: number): void {
  if (ctx.newCgroupNs) {
    try {
      const on = (target: string) => mount(c.fstype, target, c.fstype, flags, c.fstype === 'cgroup' ? c.hierarchy : null, dest);
      if (inTmpfs === undefined) withPathInRoot(ctx.rootfs, dest, { create: 'dir' }, on);
      else {
        const name = basename(dest);
        libc.mkdirat(inTmpfs, name, 0o755);
        const fd = libc.openat(inTmpfs, name, C.O_PATH | C.arch.O_DIRECTORY | C.arch.O_NOFOLLOW | C.O_CLOEXEC);
        try {
          on(fdPath(fd));
        } finally {
          libc.close(fd);
        }
      }
      return;
    } catch (e) {
      if (!(e instanceof SyscallError) || e.code !== 'EPERM') throw e;
    }
  }
  const own = ctx.cgroupPaths.get(c.fstype === 'cgroup2' ? '' : c.hierarchy) ?? '/';
  const srcFd = openSource(c.mountpoint + (own === '/' ? '' : own));
  try {
    withPathInRoot(ctx.rootfs, dest, { create: 'dir' }, (target) => mount(fdPath(srcFd), target, null, C.MS_BIND | C.MS_REC, null, dest));
  } finally {
    libc.close(srcFd);
  }
  withPathInRoot(ctx.rootfs, dest, {}, (target) => remountBind(target, flags, dest));
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
