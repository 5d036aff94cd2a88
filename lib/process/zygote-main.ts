/**
 * The zygote's program (launcher.ts spawns it with --single-threaded): loads
 * zygote.ts from the CLI's bundle, whose code cache holds every function
 * already compiled — what --no-lazy did at a higher price — else from the
 * modules, then keeps that code from being flushed while it idles between
 * containers, so no worker ever compiles.
 */
import { setFlagsFromString } from 'node:v8';
import { bundledModule } from '../bundle';

type Zygote = typeof import('./zygote');
const zygote = bundledModule<Zygote>('lib/process/zygote.js') ?? (require('./zygote') as Zygote);
// after loading: a flag given on the command line would change V8's flag hash and so refuse the code cache
setFlagsFromString('--no-flush-bytecode');
zygote.main(process.argv[2]);
