import { constants } from 'node:os';
import { signalInit } from '../container/kill';
import { runContainer } from '../container/run';
import type { ContainerRecord } from '../state/store';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';
import { createOptions, createOptionsFromFlags } from './create';

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
  let forward: ((sig: NodeJS.Signals) => void) | undefined;
  const onStarted = (rec: ContainerRecord) => {
    forward = (sig) => {
      try {
        signalInit(rec, constants.signals[sig]);
      } catch {
        /* the container is already gone */
      }
    };
    for (const s of FORWARDED) process.on(s, forward);
  };
  try {
    const w = await runContainer(ctx.store(), createOptionsFromFlags(ctx, id, options), {
      detach: options.detach === true,
      keep: options.keep === true,
      warn: (m) => ctx.log.warn(m),
      onStarted,
    });
    return w ? w.exitCode ?? 128 + (w.signal ?? 0) : 0;
  } finally {
    if (forward) for (const s of FORWARDED) process.off(s, forward);
  }
}
