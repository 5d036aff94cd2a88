/**
 * A SOCK_SEQPACKET socketpair end carrying one JSON message per packet.
 * Synchronous on purpose: both ends run in processes where blocking is the
 * right thing (a forked child must never return to the event loop; the
 * forking runtime process has nothing else to do while it waits).
 */
import { readSync, writeSync } from 'node:fs';
import { AF_UNIX, SOCK_CLOEXEC, SOCK_SEQPACKET } from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import type { Message } from './protocol';

const MAX = 1 << 20;

export class Channel {
  private buf: Buffer | undefined;
  constructor(readonly fd: number) {}

  static pair(): [Channel, Channel] {
    const [a, b] = libc.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
    return [new Channel(a), new Channel(b)];
  }

  /** a peer that is gone (EPIPE) is no error here: what it sent before it went, and then the end, come with the next recv */
  send(msg: Message): void {
    try {
      writeSync(this.fd, Buffer.from(JSON.stringify(msg)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
    }
  }

  /** next message, or null at end of stream (the other end closed or died) */
  recv(): Message | null {
    this.buf ??= Buffer.allocUnsafe(MAX);
    for (;;) {
      try {
        const n = readSync(this.fd, this.buf, 0, MAX, null);
        if (n === 0) return null;
        return JSON.parse(this.buf.toString('utf8', 0, n)) as Message;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EINTR') continue;
        // the peer closed with our messages unread: the kernel says so once, before the packets it sent still queued
        if ((e as NodeJS.ErrnoException).code === 'ECONNRESET') continue;
        throw e;
      }
    }
  }

  close(): void {
    try {
      libc.close(this.fd);
    } catch {
      /* already closed */
    }
  }
}
