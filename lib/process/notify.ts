/**
 * NOTIFY_SOCKET, as runc does it: when koci itself runs under a service
 * manager that set NOTIFY_SOCKET, the container gets a socket of koci's
 * (the state dir's notify/notify.sock, bind-mounted read-only at
 * /run/notify) and NOTIFY_SOCKET pointing at it. `start` (and `run`) bind it
 * before the process runs, pass each datagram on to the caller's socket,
 * and on READY=1 add MAINPID=<host PID of the init> and stop listening.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as libc from '../../bindings/libc';
import { dgramUnix, recvDgram, sendDgram } from '../../bindings/socket';
import type { Spec } from '../spec/types';

const IN_CONTAINER = '/run/notify';

/** create: the directory that will hold the socket, mounted into the container, and the container's NOTIFY_SOCKET */
export function setupNotify(config: Spec, stateDir: string): string {
  const dir = join(stateDir, 'notify');
  mkdirSync(dir, { mode: 0o755 });
  config.mounts = [...(config.mounts ?? []), { destination: IN_CONTAINER, type: 'bind', source: dir, options: ['bind', 'nosuid', 'noexec', 'nodev', 'ro'] }];
  if (config.process) config.process.env = [...(config.process.env ?? []), `NOTIFY_SOCKET=${IN_CONTAINER}/notify.sock`];
  return dir;
}

export class NotifyRelay {
  private readonly fd: number;
  private readonly path: string;

  /** bind the container's socket (before its process runs: a datagram to an unbound path is lost) */
  constructor(dir: string, private readonly target: string) {
    this.path = join(dir, 'notify.sock');
    rmSync(this.path, { force: true });
    this.fd = dgramUnix(this.path);
    chmodSync(this.path, 0o777); // the container's user may be anyone
  }

  /** pass datagrams on until one says READY=1 (then MAINPID follows) or the init is gone */
  relayUntilReady(mainPid: number, alive: () => boolean): boolean {
    const out = dgramUnix();
    try {
      for (;;) {
        const msg = recvDgram(this.fd, 200);
        if (msg === null) {
          if (!alive()) return false;
          continue;
        }
        sendDgram(out, this.target, msg);
        if (msg.toString().split('\n').some((l) => l === 'READY=1')) {
          sendDgram(out, this.target, Buffer.from(`MAINPID=${mainPid}\n`));
          return true;
        }
      }
    } finally {
      libc.close(out);
    }
  }

  close(): void {
    libc.close(this.fd);
    rmSync(this.path, { force: true });
  }
}
