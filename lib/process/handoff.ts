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

/** hand the pty master over, named "/dev/ptmx" in the message's data (what runc sends); our copy is closed, sent or not */
export function sendConsole(socketPath: string, master: number): void {
  try {
    sendFd(socketPath, '/dev/ptmx', master);
  } finally {
    libc.close(master);
  }
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
