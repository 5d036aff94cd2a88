/**
 * The library's exec, on the forking side (a zygote worker, or the per-call
 * helper when the zygote cannot hold the preserved fds): the process built
 * as the CLI builds it, exec'd, reported, then waited for here — exec makes
 * the caller the subreaper, so the process is our child once stage 1 has
 * exited. Synchronous, as a zygote worker must be.
 */
import * as libc from '../../bindings/libc';
import { changeProcess, execInContainer, type ProcessChanges, processWithArgs } from '../container/exec';
import type { Process } from '../spec/types';
import { StateStore } from '../state/store';

export interface ExecRequest {
  id: string;
  root?: string;
  /** the whole process; else the container's own running `args` */
  process?: Process;
  args?: string[];
  /** applied to either, as the CLI's flags are */
  changes: ProcessChanges;
  preserveFds?: number;
  /** reply once exec'd, do not wait */
  detach?: boolean;
}

/** replies `{created: {pid}}` once the process runs, then (unless detached) `{exited}` */
export function serveExec(req: ExecRequest, reply: (msg: object) => void, execd?: () => void): void {
  const store = new StateStore(req.root);
  const warnings: string[] = [];
  const take = () => warnings.splice(0);
  const proc = changeProcess(req.process ? structuredClone(req.process) : processWithArgs(store.read(req.id).config.process, req.args ?? []), req.changes);
  const pid = execInContainer(store, req.id, { process: proc, preserveFds: req.preserveFds, warn: (m) => warnings.push(m) });
  execd?.();
  reply({ created: { pid }, warnings: take() });
  if (req.detach) return;
  const w = libc.waitpid(pid)!;
  reply({ exited: { exitCode: w.exitCode, signal: w.signal }, warnings: take() });
}
