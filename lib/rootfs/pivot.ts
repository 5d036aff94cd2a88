/** Making the rootfs the container's / : pivot_root, or MS_MOVE + chroot with --no-pivot. */
import { readFileSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { mount, remountBind, umount } from './mount';

/** mountinfo's octal escapes (\040 for a space) undone */
const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** the mount point that holds path in this mount namespace (the last, topmost, of the longest match) and whether it is shared */
function mountHolding(path: string): { mountpoint: string; shared: boolean } {
  let best = { mountpoint: '/', shared: false };
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 7) continue;
    const mountpoint = unescape(fields[4]);
    const holds = path === mountpoint || path.startsWith(mountpoint === '/' ? '/' : `${mountpoint}/`);
    if (!holds || mountpoint.length < best.mountpoint.length) continue;
    // optional fields (shared:N, master:N, …) run from index 6 to the "-" separator
    best = { mountpoint, shared: fields.slice(6, fields.indexOf('-')).some((f) => f.startsWith('shared:')) };
  }
  return best;
}

/**
 * As runc does: the mount holding the rootfs made private when it is shared
 * (rootfsPropagation "shared"), before the rootfs is bound onto itself. The
 * bind then is not shared either, which pivot_root and MS_MOVE require, and
 * nothing of the container's mounts propagates back through it.
 */
export function privatizeRootfsParent(rootfs: string): void {
  const holder = mountHolding(rootfs);
  if (holder.shared) mount(null, holder.mountpoint, null, C.MS_PRIVATE, null);
}

/**
 * pivot_root(".", ".") stacks the old root on top of the new one; after
 * detaching it the host's tree is gone from the container's namespace.
 * No temporary directory is needed in the rootfs (runc does the same).
 */
export function pivotRoot(rootfs: string): void {
  const oldRoot = libc.open('/', C.O_RDONLY | C.arch.O_DIRECTORY | C.O_CLOEXEC);
  const newRoot = libc.open(rootfs, C.O_RDONLY | C.arch.O_DIRECTORY | C.O_CLOEXEC);
  try {
    libc.fchdir(newRoot);
    libc.pivotRoot('.', '.');
    libc.fchdir(oldRoot);
    // keep the unmount from propagating to the host's mounts
    mount(null, '.', null, C.MS_SLAVE | C.MS_REC, null);
    umount('.', C.MNT_DETACH);
    libc.chdir('/');
  } finally {
    libc.close(oldRoot);
    libc.close(newRoot);
  }
}

/** --no-pivot: for rootfs on ramfs/initramfs, where pivot_root is refused */
export function moveRoot(rootfs: string): void {
  libc.chdir(rootfs);
  mount(rootfs, '/', null, C.MS_MOVE, null);
  libc.chroot('.');
  libc.chdir('/');
}

export function remountRootReadonly(): void {
  remountBind('/', C.MS_RDONLY);
}
