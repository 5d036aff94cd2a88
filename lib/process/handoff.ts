/**
 * fds handed to the caller over a unix socket with SCM_RIGHTS, as runc does:
 * the terminal's master (`--console-socket`) and a pidfd of the container's
 * process (`--pidfd-socket`, runc 1.2+).
 */
import * as libc from '../../bindings/libc';
import { connectUnix, sendWithFds } from '../../bindings/socket';

function sendFd(socketPath: string, name: string, fd: number): void {
  const sock = connectUnix(socketPath);
  try {
    sendWithFds(sock, Buffer.from(name), [fd]);
  } finally {
    libc.close(sock);
  }
}

/** the pty master, named "/dev/ptmx" in the message's data (what runc sends) */
export function sendConsole(socketPath: string, master: number): void {
  sendFd(socketPath, '/dev/ptmx', master);
}

/** a pidfd of pid; the message's data is "pidfd" */
export function sendPidfd(socketPath: string, pid: number): void {
  const pidfd = libc.pidfdOpen(pid);
  try {
    sendFd(socketPath, 'pidfd', pidfd);
  } finally {
    libc.close(pidfd);
  }
}
