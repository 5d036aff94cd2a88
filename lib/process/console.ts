/**
 * process.terminal: the container's pty. The init opens it inside the
 * container (its own devpts instance, so `tty` names /dev/pts/N there), makes
 * the slave its controlling terminal and stdio, and hands the master to the
 * runtime, which takes a copy with pidfd_getfd. `koci run` then relays the
 * master to its caller's terminal.
 */
import { fchownSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import type { Box } from '../spec/types';

export interface Pty {
  master: number;
  slave: number;
}

function winsize(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(rows, 0);
  b.writeUInt16LE(cols, 2);
  return b;
}

/** in the init, after pivot_root: a new pty from the container's /dev/ptmx, its slave owned by the process user */
export function openPty(uid: number, gid: number, size?: Box): Pty {
  const master = libc.open('/dev/ptmx', C.O_RDWR | C.O_NOCTTY | C.O_CLOEXEC);
  libc.ioctl(master, C.TIOCSPTLCK, Buffer.alloc(4)); // unlock
  const n = Buffer.alloc(4);
  libc.ioctl(master, C.TIOCGPTN, n);
  const slave = libc.open(`/dev/pts/${n.readUInt32LE(0)}`, C.O_RDWR | C.O_NOCTTY | C.O_CLOEXEC);
  // the user process must be able to reopen its own terminal (runc does the same)
  fchownSync(slave, uid, gid);
  if (size) libc.ioctl(slave, C.TIOCSWINSZ, winsize(size.height, size.width));
  return { master, slave };
}

/** in the init, just before exec: the slave becomes the controlling terminal and fds 0-2 */
export function attachPty(slave: number): void {
  libc.ioctl(slave, C.TIOCSCTTY, 0);
  for (let fd = 0; fd <= 2; fd++) libc.dup3(slave, fd, 0);
  if (slave > 2) libc.close(slave);
}

/** the runtime's copy of the init's master */
export function takeMaster(initPid: number, masterInInit: number): number {
  const pidfd = libc.pidfdOpen(initPid);
  try {
    return libc.pidfdGetfd(pidfd, masterInInit);
  } finally {
    libc.close(pidfd);
  }
}

/**
 * `koci run` with a terminal: the caller's stdin goes to the container's
 * terminal (raw, when it is a terminal itself), the terminal's output to the
 * caller's stdout, window size changes follow. Returns a function that stops
 * the relay once the container has exited, after draining its output.
 */
export function relayConsole(master: number): () => Promise<void> {
  const tty = require('node:tty') as typeof import('node:tty');
  const term = new tty.ReadStream(master);
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const resize = () => {
    if (process.stdout.isTTY) libc.ioctl(master, C.TIOCSWINSZ, winsize(process.stdout.rows, process.stdout.columns));
  };
  resize();
  process.on('SIGWINCH', resize);
  stdin.pipe(term, { end: false });
  const drained = new Promise<void>((resolve) => {
    term.on('data', (chunk: Buffer) => process.stdout.write(chunk));
    // EIO once the last holder of the slave is gone: the container has exited
    term.on('error', () => resolve());
    term.on('end', () => resolve());
    term.on('close', () => resolve());
  });
  return async () => {
    await Promise.race([drained, new Promise((r) => setTimeout(r, 1000).unref())]);
    process.off('SIGWINCH', resize);
    stdin.unpipe(term);
    if (raw) stdin.setRawMode(false);
    stdin.destroy();
    term.destroy();
  };
}
