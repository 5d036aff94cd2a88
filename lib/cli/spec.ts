import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KociError } from '../errors';
import { defaultSpec } from '../spec/default';
import { parseArgs } from './args';
import { type CliContext, positional } from './context';

export function spec(_ctx: CliContext, argv: string[]): number {
  const { options, rest } = parseArgs(argv, { bundle: { names: ['bundle', 'b'], value: true }, rootless: { names: ['rootless'], value: false } }, false);
  positional(rest, []);
  const file = join(typeof options.bundle === 'string' ? options.bundle : '.', 'config.json');
  if (existsSync(file)) throw new KociError(`${file} exists; remove it first`);
  writeFileSync(file, JSON.stringify(defaultSpec({ rootless: options.rootless === true, seccomp: true }), null, 2) + '\n');
  return 0;
}
