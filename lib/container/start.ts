/** start: release a created container's init (it is blocked opening exec.fifo) and run poststart hooks. */
import { closeSync, openSync, readSync, unlinkSync } from 'node:fs';
import * as C from '../../bindings/constants';
import { IncorrectStatusError, SetupError } from '../errors';
import { runHooks } from '../hooks';
import { isAlive } from '../state/liveness';
import { type ContainerRecord, StateStore, withLockSync } from '../state/store';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

export interface Warn {
  (message: string): void;
}

export function startContainer(store: StateStore, id: string, warn: Warn = () => {}): ContainerRecord {
  const rec = withLockSync(store, id, () => {
    const rec = store.read(id);
    const status = store.status(rec);
    if (status !== 'created') throw new IncorrectStatusError(id, 'start', status, status === 'running' ? 'already started' : '');
    const fifo = store.fifoPath(id);
    // non-blocking, so a dead init can never hang start: poll the fifo and the init's liveness
    const fd = openSync(fifo, C.O_RDONLY | C.O_NONBLOCK | C.O_CLOEXEC);
    try {
      const b = Buffer.alloc(1);
      for (let wait = 0; ; ) {
        let n = 0;
        try {
          n = readSync(fd, b, 0, 1, null);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        }
        if (n === 1) break;
        // nothing yet (or no writer connected yet): give up only if the init is gone
        if (!isAlive(rec.pid!, rec.initStartTime)) throw new SetupError('start', `container init (pid ${rec.pid}) exited before it could be started`);
        Atomics.wait(sleeper, 0, 0, wait);
        wait = Math.min(wait + 1, 10);
      }
    } finally {
      closeSync(fd);
    }
    unlinkSync(fifo);
    rec.status = 'running';
    store.write(rec);
    return rec;
  });
  // poststart failures are warnings (runtime-spec: the remaining hooks and the lifecycle continue)
  runHooks('poststart', rec.config.hooks, store.ociState(rec), warn);
  return rec;
}
