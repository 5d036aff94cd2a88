/**
 * The library's forking helper. The library never forks its host process (a
 * multi-threaded Node cannot fork safely); it spawns this file under
 * `node --single-threaded` for the operations that fork (create, run).
 *
 * Request: argv[2] is a HelperRequest as JSON. Replies: JSON lines on
 * `replyFd`, a pipe the library reads: `{"created": State}`, then for run
 * `{"exited": {"exitCode", "signal"}}`, or `{"error": WireError}`.
 * The container's stdio is this helper's stdio 0-2.
 */
import { writeSync } from 'node:fs';
import * as libc from '../../bindings/libc';
import { createContainer, type CreateOptions } from '../container/create';
import { deleteContainer } from '../container/delete';
import { startContainer } from '../container/start';
import { toWire } from '../errors';
import { relayConsole } from './console';
import { StateStore } from '../state/store';

export interface HelperRequest {
  op: 'create' | 'run';
  create: CreateOptions;
  /** run: keep the stopped container instead of deleting it */
  keep?: boolean;
  /** the reply pipe: after the container's stdio and preserved fds, so it is never one of them */
  replyFd: number;
}

export interface ExitStatus {
  /** the exit code, or null when a signal ended it */
  exitCode: number | null;
  signal: number | null;
}

let replyFd = -1;
const reply = (msg: object) => writeSync(replyFd, JSON.stringify(msg) + '\n');

async function serve(req: HelperRequest): Promise<void> {
  const store = new StateStore(req.create.root);
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  // the container's processes must not hold the reply pipe (the library reads it to EOF)
  let master: number | undefined;
  const onConsole = req.op === 'run' ? (fd: number) => (master = fd) : undefined;
  const rec = createContainer({ ...req.create, closeFds: [req.replyFd], onConsole, warn });
  // process.terminal: the container's terminal is relayed to this helper's stdio
  const stopRelay = master === undefined ? undefined : relayConsole(master);
  if (req.op === 'create') {
    reply({ created: store.ociState(rec) });
    return;
  }
  try {
    startContainer(store, rec.id, warn);
  } catch (e) {
    deleteContainer(store, rec.id, true, warn);
    await stopRelay?.();
    throw e;
  }
  // the state as of the exec: running with its pid, even if the process has already exited
  reply({ created: { ...store.ociState(rec), status: 'running', pid: rec.pid }, warnings });
  // create made this helper the subreaper, so the init is its child once stage 1 has exited
  const w = await libc.waitpidAsync(rec.pid!);
  await stopRelay?.();
  if (!req.keep) deleteContainer(store, rec.id, true, warn);
  reply({ exited: { exitCode: w.exitCode ?? null, signal: w.signal ?? null }, warnings });
}

if (require.main === module) {
  let req: HelperRequest;
  try {
    req = JSON.parse(process.argv[2] ?? '') as HelperRequest;
  } catch {
    process.stderr.write('koci helper: argv[2] must be a JSON request (this program is started by the koci library)\n');
    process.exit(2);
  }
  replyFd = req.replyFd;
  serve(req).then(
    () => process.exit(0),
    (e) => {
      reply({ error: toWire(e) });
      process.exit(1);
    },
  );
}
