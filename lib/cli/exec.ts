/**
 * koci exec [flags] ID [ARGS...]: runc's flags. The process is --process FILE
 * (a runtime-spec `process` document), or the container's own process with
 * ARGS and the flags' changes (runc's rule). Foreground: relays the terminal,
 * forwards signals, exits with the process's status. --detach: returns once
 * it runs.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import * as libc from '../../bindings/libc';
import { changeProcess, execInContainer, type ProcessChanges, processWithArgs } from '../container/exec';
import { BundleError } from '../errors';
import { relayConsole } from '../process/console';
import type { Process } from '../spec/types';
import { parseArgs, UsageError } from './args';
import type { CliContext } from './context';

const OPTIONS = {
  process: { names: ['process', 'p'], value: true },
  tty: { names: ['tty', 't'], value: false },
  consoleSocket: { names: ['console-socket'], value: true },
  pidfdSocket: { names: ['pidfd-socket'], value: true },
  detach: { names: ['detach', 'd'], value: false },
  pidFile: { names: ['pid-file'], value: true },
  cwd: { names: ['cwd'], value: true },
  env: { names: ['env', 'e'], value: true, multi: true },
  user: { names: ['user', 'u'], value: true },
  additionalGids: { names: ['additional-gids', 'g'], value: true, multi: true },
  cap: { names: ['cap', 'c'], value: true, multi: true },
  noNewPrivs: { names: ['no-new-privs'], value: false },
  apparmor: { names: ['apparmor'], value: true },
  processLabel: { names: ['process-label'], value: true },
  preserveFds: { names: ['preserve-fds'], value: true },
} as const;

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'];

function id32(what: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 0xffffffff) throw new UsageError(`${what} must be a number, not ${JSON.stringify(v)}`);
  return n;
}

function readProcessFile(file: string): Process {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new BundleError(file, `cannot read process file (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    return JSON.parse(text) as Process;
  } catch (e) {
    throw new BundleError(file, `malformed JSON: ${(e as Error).message}`);
  }
}

/** the process to run: --process, or the container's own with the flags' changes */
export function processFromFlags(base: Process | undefined, o: Record<string, string | boolean>, lists: Record<string, string[]>, args: string[]): Process {
  let p: Process;
  if (typeof o.process === 'string') {
    p = readProcessFile(o.process);
  } else {
    if (!args.length) throw new UsageError('exec needs the command to run (ARGS after the container ID) or --process FILE');
    p = processWithArgs(base, args);
  }
  const changes: ProcessChanges = { env: lists.env, capabilities: lists.cap };
  if (o.tty !== undefined) changes.terminal = o.tty === true;
  if (typeof o.cwd === 'string') changes.cwd = o.cwd;
  if (typeof o.user === 'string') {
    const [uid, gid] = o.user.split(':');
    changes.user = { uid: id32('--user uid', uid), gid: gid === undefined ? undefined : id32('--user gid', gid) };
  }
  if (lists.additionalGids) changes.user = { ...changes.user, additionalGids: lists.additionalGids.map((g) => id32('--additional-gids', g)) };
  if (o.noNewPrivs === true) changes.noNewPrivileges = true;
  if (typeof o.apparmor === 'string') changes.apparmorProfile = o.apparmor;
  if (typeof o.processLabel === 'string') changes.selinuxLabel = o.processLabel;
  return changeProcess(p, changes);
}

export async function exec(ctx: CliContext, argv: string[]): Promise<number> {
  // options end at the ID: what follows is the command, with its own options
  const { options: o, lists, rest } = parseArgs(argv, OPTIONS, true);
  const [id, ...args] = rest;
  if (!id) throw new UsageError('expected <container-id> [command...]');
  const preserve = o.preserveFds === undefined ? 0 : Number(o.preserveFds);
  if (!Number.isInteger(preserve) || preserve < 0) throw new UsageError('--preserve-fds must be a non-negative integer');
  const detach = o.detach === true;
  const store = ctx.store();
  const proc = processFromFlags(store.read(id).config.process, o, lists, args);
  let master: number | undefined;
  const pid = execInContainer(store, id, {
    process: proc,
    pidFile: typeof o.pidFile === 'string' ? o.pidFile : undefined,
    consoleSocket: typeof o.consoleSocket === 'string' ? o.consoleSocket : undefined,
    pidfdSocket: typeof o.pidfdSocket === 'string' ? o.pidfdSocket : undefined,
    preserveFds: preserve,
    onConsole: detach ? undefined : (fd) => (master = fd),
    warn: (m) => ctx.log.warn(m),
  });
  if (detach) return 0;
  const stopRelay = master === undefined ? undefined : relayConsole(master);
  const forward = (sig: NodeJS.Signals) => {
    try {
      libc.kill(pid, constants.signals[sig]);
    } catch {
      /* already gone */
    }
  };
  for (const s of FORWARDED) process.on(s, forward);
  try {
    // exec made us the subreaper: the process is our child now that stage 1 has exited
    const w = await libc.waitpidAsync(pid);
    await stopRelay?.();
    return w.exitCode ?? 128 + (w.signal ?? 0);
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
  }
}
