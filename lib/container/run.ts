/**
 * run: create + start, then (in the foreground) wait for the container's
 * process and delete the container. Shared by `koci run` and the library's
 * helper. A process.terminal is relayed to the caller's stdio, except when
 * detached (then create insists on a console socket).
 */
import * as libc from '../../bindings/libc';
import { UnsupportedError } from '../errors';
import { relayConsole } from '../process/console';
import type { ContainerRecord, StateStore } from '../state/store';
import { createContainer, type CreateOptions } from './create';
import { deleteContainer } from './delete';
import { startContainer, type Warn } from './start';

export interface RunFlow {
  /** return once started, leaving the container running */
  detach?: boolean;
  /** keep the stopped container instead of deleting it */
  keep?: boolean;
  warn: Warn;
  /** the container is running (foreground only); called before the wait */
  onStarted?: (rec: ContainerRecord) => void;
}

/** the process's wait status, or undefined when detached */
export async function runContainer(store: StateStore, create: CreateOptions, flow: RunFlow): Promise<libc.WaitResult | undefined> {
  if (create.consoleSocket && !flow.detach) {
    // as runc: in the foreground the terminal is relayed to the caller; nobody would read the socket's
    throw new UnsupportedError('--console-socket needs --detach: a foreground run attaches the terminal to its own stdio');
  }
  let master: number | undefined;
  const onConsole = flow.detach ? undefined : (fd: number) => (master = fd);
  let reader: number | undefined;
  const rec = createContainer({ ...create, onConsole, warn: flow.warn, onStartReader: (fd) => (reader = fd) });
  const stopRelay = master === undefined ? undefined : relayConsole(master);
  try {
    startContainer(store, rec.id, flow.warn, reader);
  } catch (e) {
    deleteContainer(store, rec.id, true, flow.warn);
    await stopRelay?.();
    throw e;
  }
  if (flow.detach) return undefined;
  flow.onStarted?.(rec);
  // create made us the subreaper, so the init is our child now that stage 1 has exited
  const w = await libc.waitpidAsync(rec.pid!);
  await stopRelay?.();
  if (!flow.keep) deleteContainer(store, rec.id, true, flow.warn);
  return w;
}
