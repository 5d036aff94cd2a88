/**
 * Every mount koci makes goes through here. A mount made in the host's mount
 * namespace by mistake would change the host (a recursive-private or
 * read-only remount of / breaks the machine), so each call first checks that
 * the calling process is in a mount namespace other than the runtime's. A
 * process that passed stays there (koci's processes only ever enter mount
 * namespaces of containers, never go back to the host's), so the check runs
 * once per process: ~30 stat calls less per container.
 */
import { statSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SyscallError } from '../errors';

let hostMountNs: number | undefined;

/** remember the runtime's mount namespace (call in the parent, before forking) */
export function recordHostMountNs(): void {
  hostMountNs = statSync('/proc/self/ns/mnt').ino;
}

/** the process (by pid: a fork must check again) that was found in a mount namespace of its own */
let checkedPid = -1;

function assertOwnMountNs(target: string): void {
  const pid = libc.getpid();
  if (pid === checkedPid) return;
  const mine = statSync('/proc/self/ns/mnt').ino;
  if (hostMountNs === undefined || mine === hostMountNs) {
    throw new Error(`koci: refusing to mount ${target}: not in a mount namespace of the container's own`);
  }
  checkedPid = pid;
}

/**
 * mount(2). `target` is usually `/proc/self/fd/N` of an O_PATH fd resolved
 * inside the rootfs (see paths.ts); `label` (the container path) then names
 * it in errors.
 */
export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null, label?: string): void {
  assertOwnMountNs(label ?? target);
  try {
    libc.mount(source, target, fstype, flags, data);
  } catch (e) {
    if (label !== undefined && SyscallError.is(e)) throw new SyscallError(e.syscall, e.errno, label);
    throw e;
  }
}

export function umount(target: string, flags: number): void {
  assertOwnMountNs(target);
  libc.umount2(target, flags);
}

/** statvfs ST_* flags -> the MS_* flags a bind remount must keep (the kernel locks them in a user namespace) */
function lockedFlags(path: string): number {
  const st = libc.statvfsFlags(path);
  let f = 0;
  if (st & C.ST_RDONLY) f |= C.MS_RDONLY;
  if (st & C.ST_NOSUID) f |= C.MS_NOSUID;
  if (st & C.ST_NODEV) f |= C.MS_NODEV;
  if (st & C.ST_NOEXEC) f |= C.MS_NOEXEC;
  if (st & C.ST_NOATIME) f |= C.MS_NOATIME;
  if (st & C.ST_NODIRATIME) f |= C.MS_NODIRATIME;
  if (st & C.ST_RELATIME) f |= C.MS_RELATIME;
  return f;
}

/**
 * Change the flags of a bind mount. Unprivileged (user-namespace) callers may
 * not clear flags the kernel locked, so on EPERM retry keeping the current ones.
 */
export function remountBind(target: string, flags: number, label?: string): void {
  const want = C.MS_BIND | C.MS_REMOUNT | (flags & ~(C.MS_BIND | C.MS_REC | C.MS_REMOUNT));
  try {
    mount(null, target, null, want, null, label);
  } catch (e) {
    if (!(e instanceof SyscallError) || e.code !== 'EPERM') throw e;
    const keep = lockedFlags(target) & ~(C.MS_RDONLY & ~want);
    mount(null, target, null, want | keep | (want & C.MS_RDONLY), null, label);
  }
}
