/**
 * The library's per-call forking helper. The library never forks its host
 * process (a multi-threaded Node cannot fork safely); create, run and exec go to
 * its zygote (zygote.ts), and to a fresh `node --single-threaded` of this
 * file only for what the zygote does not take (see launcher.ts).
 *
 * Request: argv[2] is a HelperRequest as JSON. Replies: JSON lines on
 * `replyFd`, a pipe the library reads: `{"created": State}` (exec:
 * `{"created": {"pid"}}`), then for run and exec `{"exited": {"exitCode",
 * "signal"}}`, or `{"error": WireError}`.
 * The container's stdio is this helper's stdio 0-2.
 */
import { writeSync } from 'node:fs';
import { createContainer, type CreateOptions } from '../container/create';
import { runContainer } from '../container/run';
import { toWire } from '../errors';
import { StateStore } from '../state/store';
import { type ExecRequest, serveExec } from './serve-exec';

/** what the library asks of its zygote or of this helper */
export type Request =
  | {
      op: 'create' | 'run';
      create: CreateOptions;
      /** run: keep the stopped container instead of deleting it */
      keep?: boolean;
    }
  | { op: 'exec'; exec: ExecRequest };

export type HelperRequest = Request & {
  /** the reply pipe: after the container's stdio and preserved fds, so it is never one of them */
  replyFd: number;
};

export interface ExitStatus {
  /** the exit code, or null when a signal ended it */
  exitCode: number | null;
  signal: number | null;
}

let replyFd = -1;
const reply = (msg: object) => writeSync(replyFd, JSON.stringify(msg) + '\n');

async function serve(req: HelperRequest): Promise<void> {
  if (req.op === 'exec') return serveExec(req.exec, reply);
  const store = new StateStore(req.create.root);
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  // the container's processes must not hold the reply pipe (the library reads it to EOF)
  const create = { ...req.create, closeFds: [req.replyFd], warn };
  if (req.op === 'create') {
    reply({ created: store.ociState(createContainer(create)) });
    return;
  }
  // process.terminal: runContainer relays the container's terminal to this helper's stdio
  const w = (await runContainer(store, create, {
    keep: req.keep,
    warn,
    // the state as of the exec: running with its pid, even if the process has already exited
    onStarted: (rec) => reply({ created: store.stateAs(rec, 'running'), warnings }),
  }))!;
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
