import { containerState } from '../container/query';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';
import { stdout } from './output';

export function state(ctx: CliContext, argv: string[]): number {
  const [id] = positional(parseArgs(argv, {}, false).rest, ['container-id']);
  stdout(JSON.stringify(containerState(ctx.store(), id), null, 2) + '\n');
  return 0;
}
