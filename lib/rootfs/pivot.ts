/** Making the rootfs the container's / : pivot_root, or MS_MOVE + chroot with --no-pivot. */
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { mount, remountBind, umount } from './mount';

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
