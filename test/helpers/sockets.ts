/**
 * The caller's end of koci's fd-passing sockets (--console-socket,
 * --pidfd-socket), as containerd's shim or conmon hold it: listen, accept the
 * runtime's connection, receive one fd. Non-blocking with a deadline, so a
 * runtime that never connects fails the test instead of hanging it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import * as C from '../../dist/bindings/constants';
import * as libc from '../../dist/bindings/libc';
import { acceptUnix, listenUnix, recvWithFds } from '../../dist/bindings/socket';

export interface FdListener {
  path: string;
  /** the next fd sent (and the message's data) */
  receive(timeoutMs?: number): Promise<{ data: string; fd: number }>;
  close(): void;
}

export function listenForFd(path: string): FdListener {
  const sock = listenUnix(path);
  libc.fcntl(sock, C.F_SETFL, libc.fcntl(sock, C.F_GETFL) | C.O_NONBLOCK);
  return {
    path,
    async receive(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          const conn = acceptUnix(sock);
          try {
            // the connection inherits nothing: blocking, and the runtime sends at once
            const { data, fds } = recvWithFds(conn);
            if (fds.length !== 1) throw new Error(`expected one fd, got ${fds.length}`);
            return { data: data.toString(), fd: fds[0] };
          } finally {
            libc.close(conn);
          }
        } catch (e) {
          if ((e as { code?: string }).code !== 'EAGAIN') throw e;
          if (Date.now() > deadline) throw new Error(`nothing connected to ${path} within ${timeoutMs} ms`);
          await sleep(20);
        }
      }
    },
    close() {
      libc.close(sock);
    },
  };
}
