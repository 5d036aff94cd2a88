import { features } from '../features';
import { positional } from './context';
import type { CliContext } from './context';
import { stdout } from './output';

/** koci features: the runtime-spec features document, as JSON */
export function featuresCommand(_ctx: CliContext, argv: string[]): number {
  positional(argv, []);
  stdout(JSON.stringify(features(), null, 2) + '\n');
  return 0;
}
