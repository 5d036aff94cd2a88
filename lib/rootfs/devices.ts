/** Device nodes and the standard /dev symlinks inside the container. */
import { chmodSync, chownSync, lstatSync, symlinkSync, unlinkSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError } from '../errors';
import type { LinuxDevice } from '../spec/types';
import { mount } from './mount';
import { mkdirInRoot, secureJoin, touchInRoot } from './paths';

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

/**
 * Create the default devices and `linux.devices`. In a user namespace mknod
 * is not allowed, so the host's node is bind-mounted instead (as runc does).
 */
export function createDevices(rootfs: string, devices: readonly LinuxDevice[], bindFromHost: boolean): void {
  const seen = new Set<string>();
  for (const d of [...devices, ...DEFAULT_DEVICES]) {
    if (seen.has(d.path)) continue; // config entries override the defaults
    seen.add(d.path);
    if (bindFromHost) {
      const target = touchInRoot(rootfs, d.path);
      mount(d.path, target, null, C.MS_BIND, null);
      continue;
    }
    const dir = d.path.slice(0, d.path.lastIndexOf('/')) || '/';
    mkdirInRoot(rootfs, dir);
    const target = secureJoin(rootfs, d.path);
    try {
      unlinkSync(target);
    } catch {
      /* not there */
    }
    const mode = d.fileMode ?? 0o666;
    libc.mknod(target, typeBits(d.type) | (mode & 0o7777), d.major ?? 0, d.minor ?? 0);
    chmodSync(target, mode & 0o7777); // mknod is subject to umask
    chownSync(target, d.uid ?? 0, d.gid ?? 0);
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** /dev/fd, stdin, stdout, stderr, and /dev/ptmx -> pts/ptmx when devpts is mounted */
export function createDevSymlinks(rootfs: string, hasDevpts: boolean): void {
  mkdirInRoot(rootfs, '/dev');
  for (const [target, link] of LINKS) {
    const p = secureJoin(rootfs, link);
    if (!exists(p)) symlinkSync(target, p);
  }
  if (hasDevpts) {
    const p = secureJoin(rootfs, '/dev/ptmx');
    if (exists(p)) unlinkSync(p);
    symlinkSync('pts/ptmx', p);
  }
}
