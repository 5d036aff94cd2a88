import { constants } from 'node:os';
import * as libc from '../../bindings/libc';
import { deleteContainer } from '../container/delete';
import { signalInit } from '../container/kill';
import { startContainer } from '../container/start';
import { relayConsole } from '../process/console';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';
import { createFromFlags, createOptions } from './create';

/** signals `koci run` passes on to the container instead of dying of them */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'];

/** create + start; in the foreground, wait for the container and exit with its status, then delete it */
export async function run(ctx: CliContext, argv: string[]): Promise<number> {
  const { options, rest } = parseArgs(
    argv,
    { ...createOptions, detach: { names: ['detach', 'd'], value: false }, keep: { names: ['keep'], value: false } },
    false,
  );
  const [id] = positional(rest, ['container-id']);
  const store = ctx.store();
  // a terminal (process.terminal) in the foreground: relay it to ours, as runc does
  let master: number | undefined;
  const rec = createFromFlags(ctx, id, options, options.detach ? undefined : (fd) => (master = fd));
  const stopRelay = master === undefined ? undefined : relayConsole(master);
  try {
    startContainer(store, id, (m) => ctx.log.warn(m));
  } catch (e) {
    deleteContainer(store, id, true, (m) => ctx.log.warn(m));
    await stopRelay?.();
    throw e;
  }
  if (options.detach) return 0;

  const forward = (sig: NodeJS.Signals) => {
    try {
      signalInit(rec, constants.signals[sig]);
    } catch {
      /* the container is already gone */
    }
  };
  for (const s of FORWARDED) process.on(s, forward);
  // create made us the subreaper, so the init is our child now that stage 1 has exited
  const w = await libc.waitpidAsync(rec.pid!);
  for (const s of FORWARDED) process.off(s, forward);
  await stopRelay?.();
  if (options.keep !== true) deleteContainer(store, id, true, (m) => ctx.log.warn(m));
  return w.exitCode ?? 128 + (w.signal ?? 0);
}
