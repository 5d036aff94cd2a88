import { killContainer } from '../container/kill';
import { parseSignal } from '../container/signals';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';

export function kill(ctx: CliContext, argv: string[]): number {
  const { options, rest } = parseArgs(argv, { all: { names: ['all', 'a'], value: false } }, false);
  const [id, sig = 'SIGTERM'] = positional(rest, ['container-id', 'signal'], 1);
  killContainer(ctx.store(), id, parseSignal(sig), options.all === true);
  return 0;
}
