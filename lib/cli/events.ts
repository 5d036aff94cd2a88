import { containerEvents, containerStats, parseDuration } from '../container/events';
import { parseArgs, UsageError } from './args';
import { type CliContext, positional } from './context';
import { stdout } from './output';

/** events ID [--stats] [--interval 5s]: JSON lines; --stats prints one stats event and exits */
export async function events(ctx: CliContext, argv: string[]): Promise<number> {
  const { options, rest } = parseArgs(argv, { stats: { names: ['stats'], value: false }, interval: { names: ['interval'], value: true } }, false);
  const [id] = positional(rest, ['container-id']);
  let interval = 5000;
  if (typeof options.interval === 'string') {
    try {
      interval = parseDuration(options.interval);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!(interval > 0)) throw new UsageError('--interval must be positive');
  }
  const store = ctx.store();
  if (options.stats) {
    stdout(JSON.stringify({ type: 'stats', id, data: containerStats(store, id) }) + '\n');
    return 0;
  }
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop).once('SIGTERM', stop);
  try {
    for await (const e of containerEvents(store, id, { interval, signal: ac.signal })) {
      stdout(JSON.stringify(e) + '\n');
    }
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop);
  }
  return 0;
}
