/**
 * delete: remove a stopped container — cgroups, state — and run its poststop
 * hooks. A created container (never started) is killed first, as runc does,
 * so orchestrators can drop one whose start failed; a running one only with
 * force.
 */
import { cgroupPids, destroyCgroups } from '../cgroups';
import { isFrozen, thaw } from '../cgroups/freezer';
import { ContainerNotFoundError, IncorrectStatusError } from '../errors';
import { runHooks } from '../hooks';
import { isAlive } from '../state/liveness';
import { type ContainerRecord, StateStore, withLockSync } from '../state/store';
import type { Warn } from './start';
import { signalAll, signalInit } from './kill';
import { sleepSync } from '../sleep';


export function deleteContainer(store: StateStore, id: string, force = false, warn: Warn = () => {}): void {
  // as runc: a forced delete of a container that is not there is done (containerd's shim cleans up with it)
  if (force && !store.exists(id)) return;
  let rec: ContainerRecord;
  try {
    rec = lockedDelete(store, id, force, warn);
  } catch (e) {
    // another delete removed it while this one waited for the lock: with --force that is done too
    if (force && e instanceof ContainerNotFoundError) return;
    throw e;
  }
  // poststop failures are warnings (runtime-spec: the remaining hooks and the lifecycle continue)
  runHooks('poststop', rec.config.hooks, store.stateAs(rec, 'stopped'), warn);
}

/** the delete itself, under the container's lock: its record, for the poststop hooks */
function lockedDelete(store: StateStore, id: string, force: boolean, warn: Warn): ContainerRecord {
  return withLockSync(store, id, () => {
    const rec = store.read(id);
    const status = store.status(rec);
    if ((status === 'running' || status === 'paused') && !force) throw new IncorrectStatusError(id, 'delete', status, 'stop it first or use --force');
    if (status === 'creating' && !force) throw new IncorrectStatusError(id, 'delete', status, 'a create is in progress');
    if (status !== 'stopped') {
      signalAll(rec, 9);
      signalInit(rec, 9);
      // a frozen v1 task does not die until thawed
      if (status === 'paused') thaw(rec.cgroupLeaves ?? []);
      // the init is not our child: wait until the kernel says it is gone (or a zombie)
      for (let i = 0; i < 5000 && rec.pid !== undefined && isAlive(rec.pid, rec.initStartTime); i++) sleepSync(2);
    }
    // leftovers in a frozen cgroup (init gone, children frozen) must thaw to die; an empty one has none
    const leaves = rec.cgroupLeaves ?? [];
    if (status !== 'paused' && leaves.length && cgroupPids(leaves).length && isFrozen(leaves)) thaw(leaves);
    const errors = destroyCgroups(rec.cgroupPaths ?? [], rec.cgroupLeaves ?? []);
    store.remove(id);
    if (errors.length) warn(`removing cgroups of ${id}: ${errors.map((e) => e.message).join('; ')}`);
    return rec;
  });
}
