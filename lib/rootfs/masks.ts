/**
 * linux.maskedPaths and linux.readonlyPaths, applied after pivot_root (so the
 * paths are the container's own and cannot lead out of its root), as runc does.
 * A path that does not exist in the container is skipped.
 */
import { statSync } from 'node:fs';
import * as C from '../../bindings/constants';
import { SyscallError } from '../errors';
import { mount, remountBind } from './mount';

function kind(p: string): 'dir' | 'other' | undefined {
  try {
    return statSync(p).isDirectory() ? 'dir' : 'other';
  } catch {
    return undefined; // missing (or unreachable): nothing to hide
  }
}

/** hide each path: an empty read-only tmpfs over a directory, /dev/null over anything else */
export function maskPaths(paths: readonly string[]): void {
  for (const p of paths) {
    const k = kind(p);
    if (k === 'dir') mount('tmpfs', p, 'tmpfs', C.MS_RDONLY, null);
    else if (k === 'other') mount('/dev/null', p, null, C.MS_BIND, null);
  }
}

/** make each path read-only: bind it onto itself, then remount the bind read-only */
export function readonlyPaths(paths: readonly string[]): void {
  for (const p of paths) {
    try {
      mount(p, p, null, C.MS_BIND | C.MS_REC, null);
    } catch (e) {
      if (e instanceof SyscallError && e.code === 'ENOENT') continue;
      throw e;
    }
    remountBind(p, C.MS_RDONLY);
  }
}
