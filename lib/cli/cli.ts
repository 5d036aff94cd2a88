/**
 * koci's runc-compatible command line (main.ts is the executable that loads
 * it). Verbs are thin calls into lib/; each loads only what it needs, so a
 * CLI start costs little above Node's own.
 */
import { KociError, SyscallError } from '../errors';
import { DEFAULT_STATE_ROOT } from '../paths';
import { parseArgs, UsageError } from './args';
import type { CliContext } from './context';
import { Logger } from './log';
import { stdout } from './output';

const USAGE = `usage: koci [global options] <command> [options] <container-id> ...

commands:
  create [--bundle DIR] [--pid-file FILE] [--console-socket S] [--pidfd-socket S]
         [--no-pivot] [--no-new-keyring] [--preserve-fds N] ID
  start ID
  run [--bundle DIR] [--pid-file FILE] [--detach] [--keep] [--no-pivot] ... ID   (create's options too)
  exec [--process FILE] [-t] [-d] [--console-socket S] [--pid-file F] [--cwd D]
       [-e K=V]... [-u UID[:GID]] [-g GID]... [-c CAP]... [--no-new-privs]
       [--preserve-fds N] [--pidfd-socket S] ID [ARGS...]   (run one more process in a container)
  state ID
  kill [--all] ID [SIGNAL]          (SIGTERM by default; KILL, SIGKILL or 9)
  delete [--force] ID
  list [--format table|json] [--quiet]
  pause ID                          (freeze every process of a running container)
  resume ID
  ps [--format table|json] ID       (json: the host PIDs)
  events [--stats] [--interval 5s] ID  (JSON lines: stats and oom events)
  update [--memory N] [--memory-reservation N] [--memory-swap N] [--cpu-shares N]
         [--cpu-quota N] [--cpu-period N] [--cpuset-cpus L] [--cpuset-mems L]
         [--pids-limit N] [--blkio-weight N] [-r FILE|-] ID   (change live cgroup limits)
  spec [--bundle DIR] [--rootless]  (write a default config.json)
  features                          (the runtime-spec features document: what koci implements)

global options:
  --root DIR            state directory (default ${DEFAULT_STATE_ROOT})
  --log FILE            append log entries to FILE
  --log-format FORMAT   text or json
  --debug               debug logging
  --version, -v         print the version
`;

const GLOBAL = {
  root: { names: ['root'], value: true },
  log: { names: ['log'], value: true },
  logFormat: { names: ['log-format'], value: true },
  debug: { names: ['debug'], value: false },
  systemdCgroup: { names: ['systemd-cgroup'], value: false },
  rootless: { names: ['rootless'], value: true },
  criu: { names: ['criu'], value: true },
  version: { names: ['version', 'v'], value: false },
  help: { names: ['help', 'h'], value: false },
} as const;

type Verb = (ctx: CliContext, argv: string[]) => number | Promise<number>;
/** verbs that fork must run in a --single-threaded Node */
const FORKING = new Set(['create', 'run', 'exec']);

function verb(name: string): Verb | undefined {
  switch (name) {
    case 'create': return require('./create').create;
    case 'start': return require('./start').start;
    case 'run': return require('./run').run;
    case 'state': return require('./state').state;
    case 'kill': return require('./kill').kill;
    case 'delete': return require('./delete').del;
    case 'list': return require('./list').list;
    case 'pause': return require('./pause').pause;
    case 'resume': return require('./pause').resume;
    case 'ps': return require('./ps').ps;
    case 'events': return require('./events').events;
    case 'update': return require('./update').update;
    case 'spec': return require('./spec').spec;
    case 'exec': return require('./exec').exec;
    case 'features': return require('./features').featuresCommand;
    default: return undefined;
  }
}

/** a plain `node main.js` cannot fork safely: replace this process with a --single-threaded one (same PID) */
function ensureSingleThreaded(): void {
  if (process.execArgv.includes('--single-threaded') || process.env.NODE_OPTIONS?.includes('--single-threaded')) return;
  const libc = require('../../bindings/libc') as typeof import('../../bindings/libc');
  const { NODE_FLAGS, ownNodeEnv } = require('../process/node-env') as typeof import('../process/node-env');
  const env = Object.entries(ownNodeEnv()).map(([k, v]) => `${k}=${v}`);
  // Node marks stdio close-on-exec (files too, not only pipes): without this the
  // re-exec'd koci, and so the container, would get /dev/null as stdio.
  for (let fd = 0; fd <= 2; fd++) {
    try {
      libc.fcntl(fd, (require('../../bindings/constants') as typeof import('../../bindings/constants')).F_SETFD, 0);
    } catch {
      /* not open */
    }
  }
  // argv[1] is the executable (main.js), whichever way this module was loaded
  libc.execve(process.execPath, [process.execPath, ...NODE_FLAGS.filter((f) => !process.execArgv.includes(f)), ...process.execArgv, process.argv[1], ...process.argv.slice(2)], env);
}

export async function main(argv: string[]): Promise<number> {
  let log = new Logger(undefined, 'text', false);
  try {
    const g = parseArgs(argv, GLOBAL, true);
    const format = g.options.logFormat ?? 'text';
    if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, not ${JSON.stringify(format)}`);
    log = new Logger(typeof g.options.log === 'string' ? g.options.log : undefined, format, g.options.debug === true);
    if (g.options.version) {
      const { KOCI_OCI_VERSION } = require('../spec/version') as typeof import('../spec/version');
      stdout(`koci version ${require('../../../package.json').version}\nspec: ${KOCI_OCI_VERSION}\nnode: ${process.version}\n`);
      return 0;
    }
    const [name, ...rest] = g.rest;
    if (g.options.help || !name || name === 'help') {
      stdout(USAGE);
      return name || g.options.help ? 0 : 1;
    }
    const fn = verb(name);
    if (!fn) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
    const root = typeof g.options.root === 'string' ? g.options.root : DEFAULT_STATE_ROOT;
    if (FORKING.has(name)) {
      ensureSingleThreaded();
      // each CLI process is new: compiled seccomp programs are kept in the state root instead
      const { SeccompDiskCache } = require('../security/seccomp-cache') as typeof import('../security/seccomp-cache');
      (require('../security/seccomp') as typeof import('../security/seccomp')).useSeccompMemo(new SeccompDiskCache(root));
    }
    let store: import('../state/store').StateStore | undefined;
    const ctx: CliContext = {
      root,
      log,
      store: () => (store ??= new (require('../state/store') as typeof import('../state/store')).StateStore(root)),
    };
    if (g.options.debug === true) {
      const { bundleStatus } = require('../bundle') as typeof import('../bundle');
      log.debug(`${name} ${rest.join(' ')} (modules: ${JSON.stringify(bundleStatus())})`);
    }
    return await fn(ctx, rest);
  } catch (e) {
    log.error(e instanceof Error ? e.message : String(e));
    if (e instanceof Error && !(e instanceof KociError) && !SyscallError.is(e) && !(e instanceof UsageError)) log.debug(e.stack ?? '');
    return 1;
  }
}
