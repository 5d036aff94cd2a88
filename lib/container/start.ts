/**
 * start: release a created container's init (it is blocked opening
 * exec.fifo), wait until it has exec'd the user's process (EOF on the fifo:
 * its end is close-on-exec), then run poststart hooks. A startContainer hook
 * or exec that fails is reported back on the fifo and fails start.
 */
import { closeSync, openSync, readSync, unlinkSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { fromWire, IncorrectStatusError, SetupError, type WireError } from '../errors';
import { runHooks } from '../hooks';
import { isAlive } from '../state/liveness';
import { type ContainerRecord, StateStore, withLockSync } from '../state/store';
import { NotifyRelay } from '../process/notify';


export interface Warn {
  (message: string): void;
}

/** reader: the exec fifo's reading end, when create opened it already (CreateOptions.onStartReader); closed here */
export function startContainer(store: StateStore, id: string, warn: Warn = () => {}, reader?: number): ContainerRecord {
  let notify: NotifyRelay | undefined;
  let rec: ContainerRecord;
  try {
    rec = withLockSync(store, id, () => {
      const rec = store.read(id);
      // with create's reader the init may have exec'd, and its process even exited, already: the fifo says how it went
      const status = reader !== undefined ? 'created' : store.status(rec);
      if (status !== 'created') throw new IncorrectStatusError(id, 'start', status, status === 'running' ? 'already started' : '');
      // NOTIFY_SOCKET: listening before the process runs; our own caller's socket wins over create's
      if (rec.notify) notify = new NotifyRelay(rec.notify.dir, process.env.NOTIFY_SOCKET || rec.notify.target);
      const fifo = store.fifoPath(id);
      // non-blocking, so a dead init can never hang start: poll the fifo and the init's liveness
      const fd = reader ?? openSync(fifo, C.O_RDONLY | C.O_NONBLOCK | C.O_CLOEXEC);
      reader = undefined;
      let report = '';
      try {
        const b = Buffer.alloc(4096);
        let released = false;
        let lastLook = false;
        for (;;) {
          let n = -1;
          try {
            n = readSync(fd, b, 0, b.length, null);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          }
          if (n > 0) {
            // the init's '0' (it is released), then only an error report, if any
            const data = b.toString('utf8', 0, n);
            report += released ? data : data.slice(1);
            if (!released) {
              // the writer is there now, so EOF means it is gone: block until it comes
              libc.fcntl(fd, C.F_SETFL, libc.fcntl(fd, C.F_GETFL) & ~C.O_NONBLOCK);
            }
            released = true;
          } else if (n === 0 && released) {
            break; // EOF: the init has exec'd the process, or died after reporting
          } else if (!released && !isAlive(rec.pid!, rec.initStartTime)) {
            // it may have been released, exec'd and exited between that read and this check: its '0' is unread
            if (!lastLook) {
              lastLook = true;
              continue;
            }
            throw new SetupError('start', `container init (pid ${rec.pid}) exited before it could be started`);
          }
          // woken as soon as the init writes; a look at its liveness every 10 ms meanwhile
          if (n <= 0) libc.pollIn(fd, 10);
        }
      } finally {
        closeSync(fd);
      }
      unlinkSync(fifo);
      if (report) {
        // a startContainer hook or the exec failed: the init is gone, the container stopped
        rec.status = 'stopped';
        store.write(rec);
        throw fromWire(JSON.parse(report) as WireError);
      }
      rec.status = 'running';
      store.write(rec);
      return rec;
    });
  } catch (e) {
    notify?.close(); // start failed: nothing will be relayed
    throw e;
  } finally {
    if (reader !== undefined) closeSync(reader); // refused before it was read
  }
  // poststart failures are warnings (runtime-spec: the remaining hooks and the lifecycle continue)
  // the state as of the exec: running with its pid, even if the process has already exited
  const state = store.stateAs(rec, 'running');
  runHooks('poststart', rec.config.hooks, state, warn);
  if (notify) {
    // as runc: start returns once the service inside says READY=1 (or its init is gone)
    try {
      notify.relayUntilReady(rec.pid!, () => isAlive(rec.pid!, rec.initStartTime));
    } finally {
      notify.close();
    }
  }
  return rec;
}
