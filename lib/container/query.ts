/** state and list: read-only views of the state root. */
import type { State } from '../spec/types';
import { StateStore } from '../state/store';

export function containerState(store: StateStore, id: string): State {
  return store.ociState(store.read(id));
}

export interface ContainerSummary extends State {
  created: string;
  rootfs: string;
}

export function listContainers(store: StateStore): ContainerSummary[] {
  const out: ContainerSummary[] = [];
  for (const id of store.list()) {
    try {
      const rec = store.read(id);
      out.push({ ...store.ociState(rec), created: rec.created, rootfs: rec.rootfs });
    } catch {
      /* deleted while listing */
    }
  }
  return out;
}
