/**
 * Messages between the runtime (parent) and its forked children, over one
 * SOCK_SEQPACKET socketpair that stage 2 inherits from stage 1.
 *
 *   runtime                       stage 1                      stage 2 (init, PID 1)
 *      |  fork ------------------->  |
 *      |                             | join/unshare user ns
 *      |  <------------- userns      |          (only for a new user namespace)
 *      |  write uid_map, gid_map     |
 *      |  mapped ----------------->  |
 *      |                             | join other ns, unshare new ones
 *      |                             | fork (into cgroup2) ---->  |
 *      |  <------------- init-pid    | _exit(0)                   |
 *      |  go ---------------------------------------------------> | mounts, up to the first cgroup one
 *      |  add the init to the cgroups it was not born in          |
 *      |  state                                                   |
 *      |  cgroups {state} --------------------------------------> | cgroup ns, the other mounts, devices
 *      |  reap stage 1, oom_score_adj                             |
 *      |  <--------------------------------------------- hooks    |  } only with prestart or
 *      |  prestart, createRuntime hooks                           |  } createRuntime hooks
 *      |  go ---------------------------------------------------> |  }
 *      |                                                          | createContainer hooks,
 *      |                                                          | pivot_root, masks, pty
 *      |  <------------- console {fd}  (process.terminal only)    |
 *      |  pidfd_getfd: copy the master                            |
 *      |  go ---------------------------------------------------> | close master; uts, rlimits, user
 *      |  <--------------------------------------------- created  |
 *      |  state: created, exit                                    | block on exec.fifo (start)
 *                                                                 | startContainer hooks, execve
 *
 * A single-threaded runtime (a zygote worker) may fork the init itself, in
 * its new namespaces, without stage 1 (stage1.ts, cloneInit): then the
 * exchange starts at `go`.
 *
 * Any child may send `error` instead of its next message and _exit(1).
 */
import type { WireError } from '../errors';
import type { State } from '../spec/types';

export type Message =
  | { type: 'userns' }
  | { type: 'mapped' }
  | { type: 'init-pid'; pid: number; inCgroup?: boolean }
  | { type: 'go' }
  | { type: 'cgroups'; state: State }
  | { type: 'hooks' }
  | { type: 'console'; fd: number }
  | { type: 'created' }
  | { type: 'error'; error: WireError };

/** receive, and insist on, a message of one type; an error message is rethrown typed */
export function expect<T extends Message['type']>(
  msg: Message | null,
  type: T,
  onEof: () => Error,
  fromWire: (w: WireError) => Error,
): Extract<Message, { type: T }> {
  if (msg === null) throw onEof();
  if (msg.type === 'error') throw fromWire(msg.error);
  if (msg.type !== type) throw new Error(`koci: protocol error: expected ${type}, got ${msg.type}`);
  return msg as Extract<Message, { type: T }>;
}
