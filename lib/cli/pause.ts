import { pauseContainer, resumeContainer } from '../container/pause';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';

export function pause(ctx: CliContext, argv: string[]): number {
  const [id] = positional(parseArgs(argv, {}, false).rest, ['container-id']);
  pauseContainer(ctx.store(), id);
  return 0;
}

export function resume(ctx: CliContext, argv: string[]): number {
  const [id] = positional(parseArgs(argv, {}, false).rest, ['container-id']);
  resumeContainer(ctx.store(), id);
  return 0;
}
