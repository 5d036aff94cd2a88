/**
 * Waiting on a kernel fd (eventfd, inotify, pidfd) from the event loop,
 * without a thread. Node has no public uv_poll, and net.Socket({ fd })
 * refuses anon-inode fds (ERR_INVALID_FD_TYPE), but a libuv pipe handle
 * opened on the fd (uv_pipe_open) is an epoll-driven stream over read(2):
 * an eventfd reads its 8-byte counter, an inotify fd its events, and a
 * pidfd, which cannot be read, ends the stream (EINVAL) once its process
 * has exited. A threadpool read (fs.createReadStream) would instead hold one
 * of libuv's four threads per fd and could not be cancelled: close(2) does
 * not wake a blocked read.
 *
 * The handle comes from process.binding('pipe_wrap'): allow-listed and
 * silent on Node 20 (DEP0111 is documentation-only). Where it is missing
 * (a later Node, the permission model) watchFd returns undefined and the
 * caller polls instead.
 */
import { Socket } from 'node:net';

interface PipeHandle {
  open(fd: number): number;
  close(): void;
}
interface PipeWrap {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

let pipeWrap: PipeWrap | null | undefined;
function loadPipeWrap(): PipeWrap | null {
  if (pipeWrap === undefined) {
    try {
      pipeWrap = (process as unknown as { binding(name: string): PipeWrap }).binding('pipe_wrap');
      if (typeof pipeWrap?.Pipe !== 'function') pipeWrap = null;
    } catch {
      pipeWrap = null;
    }
  }
  return pipeWrap;
}

export interface FdWatch {
  /** keep the process alive while the fd is watched (the default) */
  ref(): void;
  /** let the process exit even though the fd is watched */
  unref(): void;
  /** stop watching and close the fd; onEnd is not called */
  close(): void;
}

/**
 * Calls onData with what each read(2) returns whenever fd becomes readable,
 * and onEnd once when the stream ends or fails (for a pidfd: the process
 * exited). On success the fd belongs to the watch: close() closes it.
 * Undefined, with the fd untouched, when this Node cannot watch fds.
 */
export function watchFd(fd: number, onData: (chunk: Buffer) => void, onEnd: (err?: Error) => void): FdWatch | undefined {
  const wrap = loadPipeWrap();
  if (!wrap) return undefined;
  let handle: PipeHandle;
  try {
    handle = new wrap.Pipe(wrap.constants.SOCKET);
  } catch {
    return undefined;
  }
  if (handle.open(fd) !== 0) {
    handle.close(); // it never took the fd
    return undefined;
  }
  const s = new Socket({ handle, readable: true, writable: false } as ConstructorParameters<typeof Socket>[0]);
  let ended = false;
  const end = (err?: Error) => {
    if (ended) return;
    ended = true;
    s.destroy();
    onEnd(err);
  };
  s.on('data', onData);
  s.on('end', () => end());
  s.on('error', (e) => end(e));
  s.on('close', () => end());
  return {
    ref: () => void s.ref(),
    unref: () => void s.unref(),
    close: () => {
      ended = true;
      s.destroy();
    },
  };
}
