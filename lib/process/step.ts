import * as libc from '../../bindings/libc';
import { SetupError, SyscallError, toWire } from '../errors';
import type { Channel } from './channel';

/** attach the failing setup step to an error, so the runtime's one-line message says where it broke */
export function attributeStep(e: unknown, step: string): Error {
  if (e instanceof SyscallError) return e.withStep(step);
  if (e instanceof Error && (e as NodeJS.ErrnoException).syscall) {
    // a node:fs error: same information, koci's type
    const ne = e as NodeJS.ErrnoException;
    return new SyscallError(ne.syscall!, Math.abs(ne.errno ?? 0), ne.path, step);
  }
  if (e instanceof Error && e.name !== 'Error') return e; // already typed (SetupError, HookError, ...)
  return new SetupError(step, e instanceof Error ? e.message : String(e));
}

/** a forked child's last act on failure: report the error, typed and attributed, to the runtime and _exit(1) */
export function failChild(chan: Channel, e: unknown, step: string): never {
  try {
    chan.send({ type: 'error', error: toWire(attributeStep(e, step)) });
  } finally {
    libc._exit(1);
  }
}
