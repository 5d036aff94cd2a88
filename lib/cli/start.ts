import { startContainer } from '../container/start';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';

export function start(ctx: CliContext, argv: string[]): number {
  const [id] = positional(parseArgs(argv, {}, false).rest, ['container-id']);
  startContainer(ctx.store(), id, (m) => ctx.log.warn(m));
  return 0;
}
