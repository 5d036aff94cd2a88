/** Device nodes and the standard /dev symlinks inside the container. */
import { chmodSync, chownSync, fstatSync } from 'node:fs';
import { posix } from 'node:path';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError } from '../errors';
import type { LinuxDevice } from '../spec/types';
import { mount } from './mount';
import { fdPath, openInRoot, openRoot } from './paths';

/** what every container gets (runtime-spec config-linux.md, "Default Devices") */
export const DEFAULT_DEVICES: readonly LinuxDevice[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

const LINKS: ReadonlyArray<[string, string]> = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
];

function typeBits(t: string): number {
  switch (t) {
    case 'c':
    case 'u':
      return C.S_IFCHR;
    case 'b':
      return C.S_IFBLK;
    case 'p':
      return C.S_IFIFO;
    default:
      throw new SetupError('create device', `unknown device type ${JSON.stringify(t)}`);
  }
}

/** the parent directory fd (created as needed, resolved in the rootfs) and last component of a container path */
function openParent(rootFd: number, path: string): { dirFd: number; name: string } {
  const clean = posix.normalize('/' + path);
  const name = posix.basename(clean);
  if (!name || name === '..' || name === '.') throw new SetupError('create device', `invalid device path ${JSON.stringify(path)}`, path);
  return { dirFd: openInRoot(rootFd, posix.dirname(clean), { create: 'dir' }), name };
}

/**
 * Create the default devices and `linux.devices`. In a user namespace mknod
 * is not allowed, so the host's node is bind-mounted instead (as runc does).
 * Every path is resolved inside the rootfs to an fd (see paths.ts): nodes are
 * made with mknodat in the parent's fd, and mounts go through /proc/self/fd.
 */
export function createDevices(rootfs: string, devices: readonly LinuxDevice[], bindFromHost: boolean): void {
  const seen = new Set<string>();
  const rootFd = openRoot(rootfs);
  try {
    for (const d of [...devices, ...DEFAULT_DEVICES]) {
      if (seen.has(d.path)) continue; // config entries override the defaults
      seen.add(d.path);
      if (bindFromHost) {
        const src = libc.open(d.path, C.O_PATH | C.O_CLOEXEC);
        try {
          const dst = openInRoot(rootFd, d.path, { create: 'file' });
          try {
            mount(fdPath(src), fdPath(dst), null, C.MS_BIND, null, d.path);
          } finally {
            libc.close(dst);
          }
        } finally {
          libc.close(src);
        }
        continue;
      }
      const { dirFd, name } = openParent(rootFd, d.path);
      try {
        try {
          libc.unlinkat(dirFd, name, 0);
        } catch {
          /* not there */
        }
        const mode = d.fileMode ?? 0o666;
        const type = typeBits(d.type);
        libc.mknodat(dirFd, name, type | (mode & 0o7777), d.major ?? 0, d.minor ?? 0);
        const fd = libc.openat(dirFd, name, C.O_PATH | C.arch.O_NOFOLLOW | C.O_CLOEXEC);
        try {
          if ((fstatSync(fd).mode & C.S_IFMT) !== type) throw new SetupError('create device', `${d.path} was replaced while being created`, d.path);
          chmodSync(fdPath(fd), mode & 0o7777); // mknod is subject to umask
          chownSync(fdPath(fd), d.uid ?? 0, d.gid ?? 0);
        } finally {
          libc.close(fd);
        }
      } finally {
        libc.close(dirFd);
      }
    }
  } finally {
    libc.close(rootFd);
  }
}

function existsAt(dirFd: number, name: string): boolean {
  try {
    libc.close(libc.openat(dirFd, name, C.O_PATH | C.arch.O_NOFOLLOW | C.O_CLOEXEC));
    return true;
  } catch {
    return false;
  }
}

/** /dev/fd, stdin, stdout, stderr, and /dev/ptmx -> pts/ptmx when devpts is mounted */
export function createDevSymlinks(rootfs: string, hasDevpts: boolean): void {
  const rootFd = openRoot(rootfs);
  let devFd: number;
  try {
    devFd = openInRoot(rootFd, '/dev', { create: 'dir' });
  } finally {
    libc.close(rootFd);
  }
  try {
    for (const [target, link] of LINKS) {
      const name = posix.basename(link);
      if (!existsAt(devFd, name)) libc.symlinkat(target, devFd, name);
    }
    if (hasDevpts) {
      if (existsAt(devFd, 'ptmx')) libc.unlinkat(devFd, 'ptmx', 0);
      libc.symlinkat('pts/ptmx', devFd, 'ptmx');
    }
  } finally {
    libc.close(devFd);
  }
}
