import { containerState } from '../container/query';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';

export function state(ctx: CliContext, argv: string[]): number {
  const [id] = positional(parseArgs(argv, {}, false).rest, ['container-id']);
  process.stdout.write(JSON.stringify(containerState(ctx.store(), id), null, 2) + '\n');
  return 0;
}
