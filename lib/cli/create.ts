import { createContainer, type CreateOptions } from '../container/create';
import { parseArgs, UsageError } from './args';
import { type CliContext, positional } from './context';

export const createOptions = {
  bundle: { names: ['bundle', 'b'], value: true },
  pidFile: { names: ['pid-file'], value: true },
  consoleSocket: { names: ['console-socket'], value: true },
  pidfdSocket: { names: ['pidfd-socket'], value: true },
  noPivot: { names: ['no-pivot'], value: false },
  noNewKeyring: { names: ['no-new-keyring'], value: false },
  preserveFds: { names: ['preserve-fds'], value: true },
} as const;

export type CreateFlags = Record<keyof typeof createOptions, string | boolean | undefined>;

/** systemd socket activation of koci itself: LISTEN_FDS counts fds from 3, meant for us when LISTEN_PID is our PID */
function listenFds(): number | undefined {
  const n = Number(process.env.LISTEN_FDS);
  if (!Number.isInteger(n) || n <= 0 || Number(process.env.LISTEN_PID) !== process.pid) return undefined;
  return n;
}

export function createOptionsFromFlags(ctx: CliContext, id: string, o: Partial<CreateFlags>): CreateOptions {
  const preserve = o.preserveFds === undefined ? 0 : Number(o.preserveFds);
  if (!Number.isInteger(preserve) || preserve < 0) throw new UsageError(`--preserve-fds must be a non-negative integer`);
  return {
    id,
    bundle: typeof o.bundle === 'string' ? o.bundle : process.cwd(),
    root: ctx.root,
    pidFile: typeof o.pidFile === 'string' ? o.pidFile : undefined,
    consoleSocket: typeof o.consoleSocket === 'string' ? o.consoleSocket : undefined,
    pidfdSocket: typeof o.pidfdSocket === 'string' ? o.pidfdSocket : undefined,
    notifySocket: process.env.NOTIFY_SOCKET || undefined,
    listenFds: listenFds(),
    noPivot: o.noPivot === true,
    noNewKeyring: o.noNewKeyring === true,
    warn: (m) => ctx.log.warn(m),
    preserveFds: preserve,
  };
}

export function create(ctx: CliContext, argv: string[]): number {
  const { options, rest } = parseArgs(argv, createOptions, false);
  const [id] = positional(rest, ['container-id']);
  createContainer(createOptionsFromFlags(ctx, id, options));
  return 0;
}
