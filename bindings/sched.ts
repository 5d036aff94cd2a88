/**
 * How the kernel schedules a process and places its memory: sched_setattr,
 * ioprio_set, personality, set_mempolicy. All act on the calling process
 * (single-threaded in koci's forked children, so "thread" and "process" are
 * one), and each throws SyscallError with errno on failure.
 */
import * as koffi from 'koffi';
import * as C from './constants';
import { SyscallError } from './errors';
import { fn, rawSyscall } from './libc';

function raw(number: number, name: string, ...typedArgs: unknown[]): void {
  const { ret, errno } = rawSyscall(number, ...typedArgs);
  if (ret < 0) throw new SyscallError(name, errno);
}

/** sched_setattr(0, attr, 0); `attr` is a struct sched_attr laid out by the caller (glibc 2.36 has no wrapper) */
export function schedSetattr(attr: Buffer): void {
  raw(C.arch.SYS_sched_setattr, 'sched_setattr', 'int', 0, 'uint8_t *', attr, 'uint', 0);
}

/** ioprio_set(IOPRIO_WHO_PROCESS, 0, prio): the calling process (no glibc wrapper) */
export function ioprioSet(prio: number): void {
  raw(C.arch.SYS_ioprio_set, 'ioprio_set', 'int', C.IOPRIO_WHO_PROCESS, 'int', 0, 'int', prio);
}

/** personality(2); returns the previous persona */
export function personality(persona: number): number {
  const ret = Number(fn('int personality(unsigned long persona)')(persona));
  if (ret === -1) throw new SyscallError('personality', koffi.errno());
  return ret;
}

/**
 * set_mempolicy(mode | flags, nodemask, maxnode). `mask` holds the node bits
 * as unsigned longs; maxnode is one more than its bits, because the kernel
 * reads maxnode - 1 of them (a quirk libnuma follows too). No glibc wrapper.
 */
export function setMempolicy(mode: number, mask: Buffer | null): void {
  raw(C.arch.SYS_set_mempolicy, 'set_mempolicy', 'int', mode, 'uint8_t *', mask, 'ulong', mask ? mask.length * 8 + 1 : 0);
}

/** sched_setaffinity(0, sizeof mask, mask): the CPUs the calling process may run on */
export function schedSetaffinity(mask: Buffer): void {
  if (Number(fn('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)')(0, mask.length, mask)) === -1) {
    throw new SyscallError('sched_setaffinity', koffi.errno());
  }
}
