/**
 * The state root: one directory per container holding state.json (written
 * atomically: temp file + rename), exec.fifo while the container is created,
 * and a lock file that serializes commands on one container.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { ContainerExistsError, ContainerNotFoundError, SyscallError } from '../errors';
import { DEFAULT_STATE_ROOT } from '../paths';
import type { ContainerStatus, Spec, State } from '../spec/types';
import { validateId } from './id';
import { isAlive } from './liveness';
import { isFrozen } from '../cgroups/freezer';
import { sleepSync } from '../sleep';

/** what koci keeps about a container (a superset of the OCI state) */
export interface ContainerRecord {
  ociVersion: string;
  id: string;
  /** last status koci wrote; the live status also depends on the init process */
  status: ContainerStatus;
  pid?: number;
  /** start time of the init process, to tell it from a recycled PID */
  initStartTime?: string;
  bundle: string;
  rootfs: string;
  annotations?: Record<string, string>;
  created: string;
  /** the container's cgroup directory in each hierarchy */
  cgroupLeaves?: string[];
  /** cgroup directories koci made for the container (outermost first), removed at delete */
  cgroupPaths?: string[];
  /** NOTIFY_SOCKET: the container's socket dir (state dir) and the caller's socket to relay to */
  notify?: { dir: string; target: string };
  /** created with --no-new-keyring: exec'd processes keep the caller's session keyring too */
  noNewKeyring?: boolean;
  /** the config the container was created from (hooks for later verbs, namespaces) */
  config: Spec;
}

export class StateStore {
  constructor(readonly root: string = DEFAULT_STATE_ROOT) {}

  dir(id: string): string {
    validateId(id);
    return join(this.root, id);
  }

  fifoPath(id: string): string {
    return join(this.dir(id), 'exec.fifo');
  }

  /** make the container's directory; fails with ContainerExistsError when the ID is taken */
  createDir(id: string): string {
    const dir = this.dir(id);
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    try {
      mkdirSync(dir, { mode: 0o711 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new ContainerExistsError(id);
      throw e;
    }
    return dir;
  }

  exists(id: string): boolean {
    return existsSync(join(this.dir(id), 'state.json'));
  }

  read(id: string): ContainerRecord {
    let text: string;
    try {
      text = readFileSync(join(this.dir(id), 'state.json'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ContainerNotFoundError(id);
      throw e;
    }
    return JSON.parse(text) as ContainerRecord;
  }

  write(rec: ContainerRecord): void {
    const dir = this.dir(rec.id);
    const tmp = join(dir, `.state.json.${process.pid}`);
    writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
    renameSync(tmp, join(dir, 'state.json'));
  }

  remove(id: string): void {
    const dir = this.dir(id);
    try {
      // usually just these: no listing
      for (const f of ['state.json', '.lock']) unlinkSync(join(dir, f));
      rmdirSync(dir);
      return;
    } catch {
      /* more (fifo, temp files, notify socket), or less: all that is there, below */
    }
    try {
      // files only (state, lock, fifo, temp files), but for the notify socket's directory: unlinked one by one,
      // which spares a fresh process loading Node's recursive rm (~1 ms)
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) rmSync(join(dir, e.name), { recursive: true, force: true });
        else unlinkSync(join(dir, e.name));
      }
      rmdirSync(dir);
    } catch {
      rmSync(dir, { recursive: true, force: true }); // gone already, or raced: what is left, if anything
    }
  }

  list(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && existsSync(join(this.root, d.name, 'state.json')))
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /**
   * Take the container's lock without blocking: the fd, or null when another
   * command holds it. Throws ContainerNotFoundError when the container is gone.
   */
  tryLock(id: string): number | null {
    const dir = this.dir(id);
    let fd: number;
    try {
      fd = openSync(join(dir, '.lock'), 'a', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ContainerNotFoundError(id);
      throw e;
    }
    try {
      libc.flock(fd, C.LOCK_EX | C.LOCK_NB, join(dir, '.lock'));
      return fd;
    } catch (e) {
      closeSync(fd);
      if (SyscallError.is(e) && e.code === 'EWOULDBLOCK') return null;
      if (SyscallError.is(e) && e.code === 'EAGAIN') return null;
      throw e;
    }
  }

  unlock(fd: number): void {
    closeSync(fd); // closing the last fd releases the flock
  }

  /** the live status: the recorded one, corrected by whether the init process still lives */
  status(rec: ContainerRecord): ContainerStatus {
    if (rec.status === 'creating' || rec.status === 'stopped') return rec.status;
    if (rec.pid === undefined || !isAlive(rec.pid, rec.initStartTime)) return 'stopped';
    // paused is not recorded: it is whatever the freezer says (a read or two of small cgroup files)
    if (rec.status === 'running' && rec.cgroupLeaves?.length && isFrozen(rec.cgroupLeaves)) return 'paused';
    return rec.status;
  }

  /** the OCI state document (runtime-spec runtime.md "State") */
  ociState(rec: ContainerRecord): State {
    return this.stateAs(rec, this.status(rec));
  }

  /** the state document with a status the caller knows (a start that saw the exec, a delete): no liveness or freezer reads */
  stateAs(rec: ContainerRecord, status: ContainerStatus): State {
    const s: State = { ociVersion: rec.ociVersion, id: rec.id, status, bundle: rec.bundle };
    if (rec.pid !== undefined && status !== 'stopped') s.pid = rec.pid;
    if (rec.annotations && Object.keys(rec.annotations).length) s.annotations = rec.annotations;
    return s;
  }
}

/** run fn holding the container's lock, waiting (synchronously) while another command holds it */
export function withLockSync<T>(store: StateStore, id: string, fn: () => T): T {
  let fd: number | null;
  let wait = 1;
  while ((fd = store.tryLock(id)) === null) {
    sleepSync(wait);
    wait = Math.min(wait * 2, 50);
  }
  try {
    if (!store.exists(id)) throw new ContainerNotFoundError(id); // deleted while we waited
    return fn();
  } finally {
    store.unlock(fd);
  }
}
