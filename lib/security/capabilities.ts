/**
 * process.capabilities: the five sets applied as the spec says. The bounding
 * set is dropped first, while the init still has CAP_SETPCAP; keepcaps lets
 * the permitted set survive the switch to the container's uid; capset then
 * sets effective/permitted/inheritable, and ambient caps are raised last
 * (they must be permitted and inheritable already).
 */
import { readFileSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SyscallError } from '../errors';
import type { LinuxCapabilities } from '../spec/types';
import { CAPABILITIES } from './capability-names';

/** the highest capability this kernel knows */
export function lastCap(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    return CAPABILITIES.CAP_CHECKPOINT_RESTORE;
  }
}

export interface CapPlan {
  bounding: number[];
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: number[];
  /** names newer than this kernel: skipped with a warning, as runc does */
  unknownToKernel: string[];
}

/** resolve names to numbers and masks, leaving out what the running kernel lacks */
export function planCapabilities(caps: LinuxCapabilities | undefined, last = lastCap()): CapPlan {
  const unknown = new Set<string>();
  const nums = (names: readonly string[] = []) =>
    names.flatMap((n) => {
      const c = CAPABILITIES[n];
      if (c === undefined || c > last) {
        unknown.add(n);
        return [];
      }
      return [c];
    });
  const mask = (names?: readonly string[]) => nums(names).reduce((m, c) => m | (1n << BigInt(c)), 0n);
  return {
    bounding: nums(caps?.bounding),
    effective: mask(caps?.effective),
    permitted: mask(caps?.permitted),
    inheritable: mask(caps?.inheritable),
    ambient: nums(caps?.ambient),
    unknownToKernel: [...unknown],
  };
}

/** step 1, before the uid changes: shrink the bounding set and keep caps across setresuid */
export function dropBounding(plan: CapPlan, last = lastCap()): void {
  const keep = new Set(plan.bounding);
  for (let c = 0; c <= last; c++) if (!keep.has(c)) libc.prctl(C.PR_CAPBSET_DROP, c);
  libc.prctl(C.PR_SET_KEEPCAPS, 1);
}

/** step 2, after the uid changed: the final sets, then ambient */
export function applyCapabilities(plan: CapPlan): void {
  libc.prctl(C.PR_SET_KEEPCAPS, 0);
  libc.capset(plan.effective, plan.permitted, plan.inheritable);
  libc.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_CLEAR_ALL);
  for (const c of plan.ambient) {
    try {
      libc.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_RAISE, c);
    } catch (e) {
      // an ambient cap must also be permitted and inheritable; runc skips it (with a warning)
      // rather than fail, and `runc spec` itself lists ambient caps without inheritable ones
      if (!(SyscallError.is(e) && e.code === 'EPERM')) throw e;
    }
  }
}
