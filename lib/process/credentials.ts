/** The container process's identity and limits: user, groups, umask, rlimits, no_new_privs, oom score. */
import { writeFileSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError } from '../errors';
import type { POSIXRlimit, Process } from '../spec/types';

/** JSON numbers lose precision near 2^64: anything at or past 2^64-1 means "unlimited" */
function rlimitValue(v: number): bigint {
  return v >= 18446744073709551615 ? C.RLIM_INFINITY : BigInt(Math.trunc(v));
}

export function applyRlimits(rlimits: readonly POSIXRlimit[] = []): void {
  for (const r of rlimits) {
    const resource = C.RLIMITS[r.type];
    if (resource === undefined) throw new SetupError('rlimits', `unknown rlimit ${JSON.stringify(r.type)}`);
    libc.setrlimit(resource, rlimitValue(r.soft), rlimitValue(r.hard), r.type);
  }
}

/** written by the runtime for the init (the init is non-dumpable: its /proc files are host root's) */
export function applyOomScoreAdj(pid: number, value: number | undefined): void {
  if (value !== undefined) writeFileSync(`/proc/${pid}/oom_score_adj`, String(value));
}

/** groups, then gid, then uid: once the uid changes the rights to change the others are gone */
export function switchUser(proc: Process, allowSetgroups: boolean): void {
  const { uid, gid, additionalGids = [] } = proc.user;
  if (allowSetgroups) libc.setgroups(additionalGids);
  libc.setresgid(gid, gid, gid);
  libc.setresuid(uid, uid, uid);
}

export function applyUmask(proc: Process): void {
  libc.umask(proc.user.umask ?? 0o022);
}

export function applyNoNewPrivileges(proc: Process): void {
  if (proc.noNewPrivileges) libc.prctl(C.PR_SET_NO_NEW_PRIVS, 1);
}
