/** kill: signal the container's init through a pidfd, so a recycled PID is never hit; --all signals every process in its cgroup. */
import * as libc from '../../bindings/libc';
import { cgroupPids } from '../cgroups';
import { thaw } from '../cgroups/freezer';
import { IncorrectStatusError, SyscallError } from '../errors';
import { isAlive } from '../state/liveness';
import { type ContainerRecord, StateStore } from '../state/store';

/** signal the init if it is still the process we started; false when it is gone */
export function signalInit(rec: ContainerRecord, sig: number): boolean {
  if (rec.pid === undefined) return false;
  let pidfd: number;
  try {
    pidfd = libc.pidfdOpen(rec.pid);
  } catch (e) {
    if (e instanceof SyscallError && e.code === 'ESRCH') return false;
    throw e;
  }
  try {
    // checked after the pidfd pins the process: it cannot be recycled under us any more
    if (!isAlive(rec.pid, rec.initStartTime)) return false;
    libc.pidfdSendSignal(pidfd, sig);
    return true;
  } catch (e) {
    if (e instanceof SyscallError && e.code === 'ESRCH') return false;
    throw e;
  } finally {
    libc.close(pidfd);
  }
}

export function signalAll(rec: ContainerRecord, sig: number): void {
  for (const pid of cgroupPids(rec.cgroupLeaves ?? [])) {
    try {
      libc.kill(pid, sig);
    } catch (e) {
      if (!(e instanceof SyscallError && e.code === 'ESRCH')) throw e;
    }
  }
}

export function killContainer(store: StateStore, id: string, sig: number, all = false): void {
  const rec = store.read(id);
  const status = store.status(rec);
  if (status !== 'created' && status !== 'running' && status !== 'paused') throw new IncorrectStatusError(id, 'kill', status, 'container not running');
  if (all) signalAll(rec, sig);
  const delivered = signalInit(rec, sig);
  // as runc: a frozen task takes its signals on thaw; only SIGKILL thaws the
  // container (v1 frozen tasks would never die), other signals wait for resume
  if (status === 'paused' && sig === 9) thaw(rec.cgroupLeaves ?? []);
  if (!delivered && !all) throw new IncorrectStatusError(id, 'kill', 'stopped', 'container not running');
}
