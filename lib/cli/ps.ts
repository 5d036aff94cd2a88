import { psContainer, psInfo, psTable } from '../container/ps';
import { parseArgs, UsageError } from './args';
import { type CliContext, positional } from './context';
import { stdout } from './output';

/** ps ID [--format table|json]: json is the array of host PIDs, as runc prints it */
export function ps(ctx: CliContext, argv: string[]): number {
  const { options, rest } = parseArgs(argv, { format: { names: ['format', 'f'], value: true } }, false);
  const [id] = positional(rest, ['container-id']);
  const format = options.format ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format must be table or json, not ${JSON.stringify(format)}`);
  const pids = psContainer(ctx.store(), id);
  stdout(format === 'json' ? JSON.stringify(pids) + '\n' : psTable(psInfo(pids)));
  return 0;
}
