#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node --single-threaded
/**
 * The `koci` executable: loads the command line (cli.ts) from the one-file
 * bundle with its code cache when the build made one (../bundle.ts), else
 * from the compiled modules, and exits with the command's status.
 */
import { writeSync } from 'node:fs';
import { bundledModule } from '../bundle';

type Cli = typeof import('./cli');
const cli = bundledModule<Cli>('lib/cli/cli.js') ?? (require('./cli') as Cli);

cli.main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    writeSync(2, `koci: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
