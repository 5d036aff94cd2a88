import { listContainers } from '../container/query';
import { parseArgs, UsageError } from './args';
import { type CliContext, positional } from './context';
import { stdout } from './output';

export function list(ctx: CliContext, argv: string[]): number {
  const { options, rest } = parseArgs(argv, { format: { names: ['format', 'f'], value: true }, quiet: { names: ['quiet', 'q'], value: false } }, false);
  positional(rest, []);
  const all = listContainers(ctx.store());
  const format = options.format ?? 'table';
  if (options.quiet) {
    for (const c of all) stdout(c.id + '\n');
  } else if (format === 'json') {
    stdout(JSON.stringify(all) + '\n');
  } else if (format === 'table') {
    const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED'], ...all.map((c) => [c.id, String(c.pid ?? 0), c.status, c.bundle, c.created])];
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) stdout(r.map((v, i) => (i < r.length - 1 ? v.padEnd(widths[i] + 3) : v)).join('') + '\n');
  } else {
    throw new UsageError(`--format must be table or json, not ${JSON.stringify(format)}`);
  }
  return 0;
}
