import { StateStore } from '../state/store';
import { UsageError } from './args';
import type { Logger } from './log';

export interface CliContext {
  root: string;
  log: Logger;
  store(): StateStore;
}

/** exactly `n` positional arguments, named for the usage message */
export function positional(rest: string[], names: string[], optional = 0): string[] {
  if (rest.length < names.length - optional || rest.length > names.length) {
    throw new UsageError(`expected ${names.map((n, i) => (i >= names.length - optional ? `[${n}]` : `<${n}>`)).join(' ')}, got ${rest.length} argument(s)`);
  }
  return rest;
}
