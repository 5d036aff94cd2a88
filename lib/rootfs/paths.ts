/**
 * Resolving container paths inside the rootfs the way the container will see
 * them: symlinks are followed relative to the rootfs, and `..` never climbs
 * above it, so a hostile symlink in an image cannot point a mount at the host.
 *
 * Resolution yields an O_PATH file descriptor, never a host path string: the
 * caller mounts onto `/proc/self/fd/<fd>`, so a symlink swapped into the rootfs
 * after resolution cannot redirect the mount (CVE-2021-30465 class). The kernel
 * does the resolving with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
 * missing components are created one level at a time relative to the parent's
 * fd, and where openat2 does not exist (Linux < 5.6) the same fd-based walk
 * (O_NOFOLLOW per component, symlinks re-resolved inside the root) does it all.
 */
import { fstatSync, lstatSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError, SyscallError } from '../errors';

const MAX_LINKS = 255;
const O_PATH_DIR = C.O_PATH | C.arch.O_DIRECTORY | C.O_CLOEXEC;

export interface ResolveOptions {
  /** create what is missing: directories all the way, or directories and then an empty file */
  create?: 'dir' | 'file';
  /** refuse any symlink on the way, the last component included (proc, sysfs destinations) */
  noSymlinks?: boolean;
  /** mode of created directories */
  mode?: number;
}

/** the path through which the kernel reaches an fd's file (the host's /proc while before pivot_root) */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

function isErrno(e: unknown, code: string): boolean {
  return SyscallError.is(e) && e.code === code;
}

/** undefined until tried; false once openat2 turned out to be missing (ENOSYS, or EPERM from an old seccomp profile) */
let haveOpenat2: boolean | undefined;

function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

function symlinkRefused(unsafe: string): SetupError {
  return new SetupError('resolve path', `destination ${unsafe} is a symlink or goes through one`, unsafe);
}

/**
 * An O_PATH fd (close-on-exec) of the container path `unsafe` inside the
 * directory `rootFd`, resolved as if rootFd were "/". The caller closes it.
 */
export function openInRoot(rootFd: number, unsafe: string, opts: ResolveOptions = {}): number {
  if (haveOpenat2 !== false) {
    const flags = C.O_PATH | C.O_CLOEXEC | (opts.create === 'dir' ? C.arch.O_DIRECTORY : 0);
    const resolve = C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS | (opts.noSymlinks ? C.RESOLVE_NO_SYMLINKS : 0);
    const rel = components(unsafe).join('/') || '.';
    try {
      const fd = libc.openat2(rootFd, rel, flags, 0, resolve);
      haveOpenat2 = true;
      return fd;
    } catch (e) {
      if (isErrno(e, 'ENOSYS') || (haveOpenat2 === undefined && isErrno(e, 'EPERM'))) {
        haveOpenat2 = false;
      } else if (opts.noSymlinks && isErrno(e, 'ELOOP')) {
        throw symlinkRefused(unsafe);
      } else if (!(opts.create && isErrno(e, 'ENOENT'))) {
        throw e;
      } else {
        const fd = createLast(rootFd, unsafe, opts, resolve);
        if (fd >= 0) return fd;
      }
    }
  }
  return walkInRoot(rootFd, unsafe, opts);
}

/**
 * The usual case of a missing destination: only its last component is
 * missing. Its parent is resolved as above, the component is made in it and
 * opened without following (a symlink swapped in meanwhile is not taken).
 * -1 when that is not the case: the walk below does the rest.
 */
function createLast(rootFd: number, unsafe: string, opts: ResolveOptions, resolve: number): number {
  const parts = components(unsafe);
  const last = parts.pop();
  if (last === undefined || last === '..') return -1;
  let parent: number;
  try {
    parent = libc.openat2(rootFd, parts.join('/') || '.', O_PATH_DIR, 0, resolve);
  } catch (e) {
    if (opts.noSymlinks && isErrno(e, 'ELOOP')) throw symlinkRefused(unsafe);
    if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return -1;
    throw e;
  }
  try {
    try {
      if (opts.create === 'file') libc.close(libc.openat(parent, last, C.O_CREAT | C.O_EXCL | C.O_WRONLY | C.arch.O_NOFOLLOW | C.O_CLOEXEC, 0o644));
      else libc.mkdirat(parent, last, opts.mode ?? 0o755);
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e; // made meanwhile: checked below
    }
    const fd = libc.openat(parent, last, C.O_PATH | C.arch.O_NOFOLLOW | C.O_CLOEXEC);
    const st = fstatSync(fd);
    if (st.isSymbolicLink() || (opts.create === 'dir' && !st.isDirectory())) {
      libc.close(fd);
      return -1;
    }
    return fd;
  } finally {
    libc.close(parent);
  }
}

/**
 * The same resolution by hand, one component at a time: each is opened with
 * O_NOFOLLOW relative to its parent's fd; a symlink is read through its own fd
 * and its target walked again from the root (absolute) or the parent (relative);
 * `..` goes back to the parent's fd and never above the root. Missing parts are
 * created with mkdirat/openat on the parent fd.
 */
function walkInRoot(rootFd: number, unsafe: string, opts: ResolveOptions): number {
  const stack: number[] = [libc.openat(rootFd, '.', O_PATH_DIR)];
  let pending = components(unsafe);
  let links = 0;
  try {
    while (pending.length) {
      const c = pending.shift() as string;
      if (c === '..') {
        if (stack.length > 1) libc.close(stack.pop() as number);
        continue;
      }
      const parent = stack[stack.length - 1];
      const last = pending.length === 0;
      let fd: number;
      try {
        fd = libc.openat(parent, c, C.O_PATH | C.arch.O_NOFOLLOW | C.O_CLOEXEC);
      } catch (e) {
        if (!opts.create || !isErrno(e, 'ENOENT')) throw e;
        try {
          if (last && opts.create === 'file') {
            libc.close(libc.openat(parent, c, C.O_CREAT | C.O_EXCL | C.O_WRONLY | C.arch.O_NOFOLLOW | C.O_CLOEXEC, 0o644));
          } else {
            libc.mkdirat(parent, c, opts.mode ?? 0o755);
          }
        } catch (e2) {
          if (!isErrno(e2, 'EEXIST')) throw e2; // made meanwhile: opened (and checked) below
        }
        fd = libc.openat(parent, c, C.O_PATH | C.arch.O_NOFOLLOW | C.O_CLOEXEC);
      }
      let st;
      try {
        st = fstatSync(fd);
      } catch (e) {
        libc.close(fd);
        throw e;
      }
      if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = libc.readlinkat(fd, '');
        } finally {
          libc.close(fd);
        }
        if (opts.noSymlinks) throw symlinkRefused(unsafe);
        if (++links > MAX_LINKS) throw new SetupError('resolve path', 'too many levels of symbolic links', unsafe);
        if (target.startsWith('/')) while (stack.length > 1) libc.close(stack.pop() as number);
        pending = [...components(target), ...pending];
        continue;
      }
      stack.push(fd);
      if (!last && !st.isDirectory()) throw new SyscallError('openat', 20 /* ENOTDIR */, unsafe);
    }
    const out = stack.pop() as number;
    if (opts.create === 'dir' && !fstatSync(out).isDirectory()) {
      libc.close(out);
      throw new SetupError('create mount point', 'not a directory', unsafe);
    }
    return out;
  } finally {
    for (const fd of stack) libc.close(fd);
  }
}

/** an O_PATH fd of the directory `root` (a host path: the bundle's rootfs, or "/" after pivot_root) */
export function openRoot(root: string): number {
  return libc.open(root, O_PATH_DIR);
}

/** resolve `unsafe` inside `root`, hand `/proc/self/fd/N` of the result to fn, close everything */
export function withPathInRoot<T>(root: string, unsafe: string, opts: ResolveOptions, fn: (path: string, fd: number) => T): T {
  const rootFd = openRoot(root);
  let fd: number;
  try {
    fd = openInRoot(rootFd, unsafe, opts);
  } finally {
    libc.close(rootFd);
  }
  try {
    return fn(fdPath(fd), fd);
  } finally {
    libc.close(fd);
  }
}

// ---- legacy string-path resolution -------------------------------------
// Kept ONLY for the test knob KOCI_TEST_UNSAFE_MOUNT_PATHS (see mounts.ts),
// which shows the CVE-2021-30465 attack test failing on the old code. Nothing
// else may use these: a host path string can be redirected between
// resolution and use.

/** host path of `unsafe` (a path inside the container) under `root`, symlinks resolved in root */
export function secureJoin(root: string, unsafe: string): string {
  const parts: string[] = [];
  let pending = unsafe.split('/');
  let links = 0;
  while (pending.length) {
    const c = pending.shift() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      parts.pop();
      continue;
    }
    const candidate = root + '/' + [...parts, c].join('/');
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      // missing: the rest is taken literally (it will be created)
    }
    if (!isLink) {
      parts.push(c);
      continue;
    }
    if (++links > MAX_LINKS) throw new SetupError('resolve path', 'too many levels of symbolic links', unsafe);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) parts.length = 0;
    pending = [...target.split('/'), ...pending];
  }
  return parts.length ? root + '/' + parts.join('/') : root;
}

/** create the directories of a container path (each step re-resolved inside root); returns the host path */
export function mkdirInRoot(root: string, unsafe: string, mode = 0o755): string {
  let sofar = '';
  for (const c of unsafe.split('/')) {
    if (c === '' || c === '.') continue;
    sofar += '/' + c;
    const p = secureJoin(root, sofar);
    try {
      if (!lstatSync(p).isDirectory()) throw new SetupError('create mount point', 'not a directory', sofar);
    } catch (e) {
      if (e instanceof SetupError) throw e;
      mkdirSync(p, { mode });
    }
  }
  return secureJoin(root, unsafe);
}

/** make sure a file exists at a container path (for bind mounts of files); returns the host path */
export function touchInRoot(root: string, unsafe: string): string {
  const dir = unsafe.slice(0, unsafe.lastIndexOf('/')) || '/';
  mkdirInRoot(root, dir);
  const p = secureJoin(root, unsafe);
  try {
    lstatSync(p);
  } catch {
    writeFileSync(p, '', { mode: 0o644, flag: 'wx' });
  }
  return p;
}
