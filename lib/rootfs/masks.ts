/**
 * linux.maskedPaths and linux.readonlyPaths, applied after pivot_root (so the
 * paths are the container's own and cannot lead out of its root), as runc does.
 * A path that does not exist in the container is skipped.
 *
 * Each path is resolved once, inside "/", to an O_PATH fd and mounted on
 * through /proc/self/fd/N (the container's /proc, mounted by then), so a
 * symlink swapped in meanwhile cannot redirect the mount; the /dev/null used
 * to mask files is checked to be the real null device (CVE-2025-31133 class).
 * Without a /proc in the container there is no /proc/self/fd: the paths are
 * then used as strings (still confined to the container's root).
 */
import { existsSync, fstatSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError, SyscallError } from '../errors';
import { mount, remountBind } from './mount';
import { fdPath, openInRoot, openRoot } from './paths';

/** the container's root and whether its /proc/self/fd is there, once for a whole list of paths */
interface Root {
  fd: number;
  procFd: boolean;
}

function withRoot(fn: (root: Root) => void): void {
  const root = { fd: openRoot('/'), procFd: existsSync('/proc/self/fd') };
  try {
    fn(root);
  } finally {
    libc.close(root.fd);
  }
}

/** an O_PATH fd of a container path, or undefined when it does not exist */
function open(root: Root, p: string): number | undefined {
  try {
    return openInRoot(root.fd, p);
  } catch (e) {
    if (SyscallError.is(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return undefined; // nothing to hide
    throw e;
  }
}

/** run fn on the path of `p` (fd-based when /proc is there); skipped when p is missing */
function withPath(root: Root, p: string, fn: (target: string, isDir: boolean) => void): void {
  const fd = open(root, p);
  if (fd === undefined) return;
  try {
    const isDir = fstatSync(fd).isDirectory();
    fn(root.procFd ? fdPath(fd) : p, isDir);
  } finally {
    libc.close(fd);
  }
}

/** /dev/null, opened and verified to be the null character device (1:3), not something planted there */
function openDevNull(): number {
  const fd = libc.open('/dev/null', C.O_PATH | C.arch.O_NOFOLLOW | C.O_CLOEXEC);
  const st = fstatSync(fd);
  if ((st.mode & C.S_IFMT) !== C.S_IFCHR || st.rdev !== 0x103) {
    libc.close(fd);
    throw new SetupError('maskedPaths', '/dev/null is not the null device', '/dev/null');
  }
  return fd;
}

/** hide each path: an empty read-only tmpfs over a directory, /dev/null over anything else */
export function maskPaths(paths: readonly string[]): void {
  if (!paths.length) return;
  let devNull: number | undefined;
  try {
    withRoot((root) => {
      for (const p of paths) {
        withPath(root, p, (target, isDir) => {
          if (isDir) return mount('tmpfs', target, 'tmpfs', C.MS_RDONLY, null, p);
          // KOCI_TEST_UNSAFE_DEVNULL=1: the naive path string, only so test/cve-classes.test.ts can show the attack
          if (process.env.KOCI_TEST_UNSAFE_DEVNULL === '1') return mount('/dev/null', target, null, C.MS_BIND, null, p);
          devNull ??= openDevNull();
          mount(root.procFd ? fdPath(devNull) : '/dev/null', target, null, C.MS_BIND, null, p);
        });
      }
    });
  } finally {
    if (devNull !== undefined) libc.close(devNull);
  }
}

/** make each path read-only: bind it onto itself, then remount the bind read-only */
export function readonlyPaths(paths: readonly string[]): void {
  if (!paths.length) return;
  withRoot((root) => {
    for (const p of paths) {
      let bound = false;
      withPath(root, p, (target) => {
        mount(target, target, null, C.MS_BIND | C.MS_REC, null, p);
        bound = true;
      });
      // re-resolved: the fd used to bind refers to what is underneath the new mount
      if (bound) withPath(root, p, (target) => remountBind(target, C.MS_RDONLY, p));
    }
  });
}
