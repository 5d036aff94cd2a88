#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node --single-threaded
/**
 * The `koci` executable: loads the command line (cli.ts) from the one-file
 * bundle with its code cache when the build made one (../bundle.ts), else
 * from the compiled modules, and exits with the command's status.
 *
 * Its flags are koci's NODE_FLAGS (lib/process/node-env.ts), which the
 * bundle's code cache is made under.
 */
import { writeSync } from 'node:fs';
import { bundledModule } from '../bundle';

type Cli = typeof import('./cli');
type Libc = typeof import('../../bindings/libc');
const cli = bundledModule<Cli>('lib/cli/cli.js') ?? (require('./cli') as Cli);

/**
 * Exit at once with the verb's status. The CLI writes its output with
 * writeSync (and Node's stdout is synchronous on Linux for files, pipes and
 * terminals), so nothing is pending: Node's own exit (V8's teardown, and
 * more) would cost a `run` ~2 ms more. Not when Node has something to write
 * at exit: a profile (--cpu-prof, --heap-prof, --prof, on the command line
 * or in NODE_OPTIONS) or coverage (NODE_V8_COVERAGE).
 */
const PROFILING = /(^|\s)--(cpu-prof|heap-prof|prof)\b/;
const ORDERLY_EXIT = !!process.env.NODE_V8_COVERAGE || process.execArgv.some((a) => PROFILING.test(a)) || PROFILING.test(process.env.NODE_OPTIONS ?? '');

function exit(code: number): void {
  process.exitCode = code;
  if (!ORDERLY_EXIT) (bundledModule<Libc>('bindings/libc.js') ?? (require('../../bindings/libc') as Libc)).exitIfLoaded(code);
}

cli.main(process.argv.slice(2)).then(exit, (e) => {
  writeSync(2, `koci: ${e instanceof Error ? e.message : String(e)}\n`);
  exit(1);
});
