import { deleteContainer } from '../container/delete';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';

export function del(ctx: CliContext, argv: string[]): number {
  const { options, rest } = parseArgs(argv, { force: { names: ['force', 'f'], value: false } }, false);
  const [id] = positional(rest, ['container-id']);
  deleteContainer(ctx.store(), id, options.force === true, (m) => ctx.log.warn(m));
  return 0;
}
