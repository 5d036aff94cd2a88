/**
 * pause / resume: freeze and thaw every process of a running container
 * through its cgroup (v1 freezer, else cgroup.freeze). `paused` is not
 * recorded in the state file: StateStore.status reads it from the freezer,
 * so a container thawed behind koci's back reads `running` again.
 */
import { freeze, thaw } from '../cgroups/freezer';
import { IncorrectStatusError } from '../errors';
import { StateStore, withLockSync } from '../state/store';

export function pauseContainer(store: StateStore, id: string): void {
  withLockSync(store, id, () => {
    const rec = store.read(id);
    const status = store.status(rec);
    if (status !== 'running') throw new IncorrectStatusError(id, 'pause', status, status === 'paused' ? 'already paused' : 'container not running');
    freeze(rec.cgroupLeaves ?? []);
  });
}

export function resumeContainer(store: StateStore, id: string): void {
  withLockSync(store, id, () => {
    const rec = store.read(id);
    const status = store.status(rec);
    if (status !== 'paused') throw new IncorrectStatusError(id, 'resume', status, 'container is not paused');
    thaw(rec.cgroupLeaves ?? []);
  });
}
