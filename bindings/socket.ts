/**
 * Unix sockets through koffi: connect to a path, and sendmsg with SCM_RIGHTS
 * (struct msghdr / iovec / cmsghdr laid out by koffi), for handing fds to
 * another process (the seccomp listener).
 */
import * as koffi from 'koffi';
import { SyscallError } from './errors';
import { AF_UNIX, SCM_RIGHTS, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM, SOL_SOCKET } from './constants';
import { fn as libcFn, pollIn } from './libc';

let structs = false;

/** libc's binder, after declaring the structs sendmsg/recvmsg take */
function fn(proto: string): ReturnType<typeof libcFn> {
  if (!structs) {
    structs = true;
    koffi.struct('koci_iovec', { iov_base: 'void *', iov_len: 'size_t' });
    koffi.struct('koci_msghdr', {
      msg_name: 'void *',
      msg_namelen: 'uint32',
      msg_iov: 'koci_iovec *',
      msg_iovlen: 'size_t',
      msg_control: 'void *',
      msg_controllen: 'size_t',
      msg_flags: 'int',
    });
  }
  return libcFn(proto);
}

const SUN_PATH_MAX = 108;

/** a unix socket of the given type, close-on-exec */
function unixSocket(type: number, path?: string): number {
  const fd = fn('int socket(int domain, int type, int protocol)')(AF_UNIX, type | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new SyscallError('socket', koffi.errno(), path);
  return fd;
}

/** close fd after a failed call on it, and throw that call's error */
function closeAndFail(fd: number, call: string, path: string): never {
  const e = koffi.errno();
  fn('int close(int)')(fd);
  throw new SyscallError(call, e, path);
}

/** bind fd to the address; closes fd on failure */
function bindTo(fd: number, addr: Buffer, path: string): void {
  if ((fn('int bind(int fd, const uint8_t *addr, uint32_t len)')(fd, addr, addr.length) as number) < 0) closeAndFail(fd, 'bind', path);
}

/** a SOCK_STREAM unix socket (close-on-exec) connected to path */
export function connectUnix(path: string): number {
  const addr = unixAddr(path, 'connect');
  const fd = unixSocket(SOCK_STREAM, path);
  for (;;) {
    const r = fn('int connect(int fd, const uint8_t *addr, uint32_t len)')(fd, addr, addr.length) as number;
    if (r === 0) return fd;
    if (koffi.errno() !== 4 /* EINTR */) closeAndFail(fd, 'connect', path);
  }
}

/** send data plus fds (SCM_RIGHTS) in one message; returns the bytes sent */
export function sendWithFds(sock: number, data: Buffer, fds: number[]): number {
  const f = fn('long sendmsg(int fd, const koci_msghdr *msg, int flags)');
  // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } + fds, padded to 8
  const payload = 4 * fds.length;
  const control = Buffer.alloc(16 + ((payload + 7) & ~7));
  control.writeBigUInt64LE(BigInt(16 + payload), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((fd, i) => control.writeInt32LE(fd, 16 + 4 * i));
  const msg = {
    msg_name: null,
    msg_namelen: 0,
    msg_iov: [{ iov_base: data, iov_len: data.length }],
    msg_iovlen: 1,
    msg_control: fds.length ? control : null,
    msg_controllen: fds.length ? control.length : 0,
    msg_flags: 0,
  };
  const MSG_NOSIGNAL = 0x4000;
  for (;;) {
    const r = Number(f(sock, msg, MSG_NOSIGNAL));
    if (r >= 0) return r;
    const e = koffi.errno();
    if (e !== 4 /* EINTR */) throw new SyscallError('sendmsg', e);
  }
}

/** a listening SOCK_STREAM unix socket (close-on-exec) bound to path */
export function listenUnix(path: string, backlog = 8): number {
  const addr = unixAddr(path, 'bind');
  const fd = unixSocket(SOCK_STREAM, path);
  bindTo(fd, addr, path);
  if ((fn('int listen(int fd, int backlog)')(fd, backlog) as number) < 0) closeAndFail(fd, 'listen', path);
  return fd;
}

/** accept one connection (blocking), close-on-exec */
export function acceptUnix(fd: number): number {
  const SOCK_CLOEXEC_FLAG = SOCK_CLOEXEC;
  for (;;) {
    const r = fn('int accept4(int fd, void *addr, void *len, int flags)')(fd, null, null, SOCK_CLOEXEC_FLAG) as number;
    if (r >= 0) return r;
    const e = koffi.errno();
    if (e !== 4) throw new SyscallError('accept4', e);
  }
}

/** receive one message and the fds passed with it (SCM_RIGHTS); received fds are close-on-exec */
export function recvWithFds(sock: number, maxData = 65536, maxFds = 16): { data: Buffer; fds: number[] } {
  const f = fn('long recvmsg(int fd, koci_msghdr *msg, int flags)');
  const data = Buffer.alloc(maxData);
  const control = Buffer.alloc(16 + ((4 * maxFds + 7) & ~7));
  const msg = {
    msg_name: null,
    msg_namelen: 0,
    msg_iov: [{ iov_base: data, iov_len: data.length }],
    msg_iovlen: 1,
    msg_control: control,
    msg_controllen: control.length,
    msg_flags: 0,
  };
  const MSG_CMSG_CLOEXEC = 0x40000000;
  let n: number;
  for (;;) {
    n = Number(f(sock, msg, MSG_CMSG_CLOEXEC));
    if (n >= 0) break;
    const e = koffi.errno();
    if (e !== 4) throw new SyscallError('recvmsg', e);
  }
  const fds: number[] = [];
  // one cmsghdr is all koci sends; walk them anyway
  let off = 0;
  while (off + 16 <= control.length) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < 16) break;
    if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
      for (let i = off + 16; i + 4 <= off + len; i += 4) fds.push(control.readInt32LE(i));
    }
    off += (len + 7) & ~7;
  }
  return { data: data.subarray(0, n), fds };
}

/**
 * sockaddr_un for path, exactly as long as the path needs. With `abstract`,
 * "@name" is the abstract name (no trailing NUL), as systemd writes NOTIFY_SOCKET.
 */
function unixAddr(path: string, call: string, abstract = false): Buffer {
  const isAbstract = abstract && path.startsWith('@');
  const p = isAbstract ? Buffer.concat([Buffer.alloc(1), Buffer.from(path.slice(1))]) : Buffer.from(path);
  if (p.length >= SUN_PATH_MAX) throw new SyscallError(call, 36 /* ENAMETOOLONG */, path);
  const addr = Buffer.alloc(2 + p.length + (isAbstract ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  p.copy(addr, 2);
  return addr;
}

/** a SOCK_DGRAM unix socket (close-on-exec), bound to path when one is given */
export function dgramUnix(bindPath?: string): number {
  const addr = bindPath === undefined ? undefined : unixAddr(bindPath, 'bind', true);
  const fd = unixSocket(SOCK_DGRAM, bindPath);
  if (addr) bindTo(fd, addr, bindPath!);
  return fd;
}

/** send one datagram to the socket bound at path */
export function sendDgram(fd: number, path: string, data: Buffer): void {
  const addr = unixAddr(path, 'sendto', true);
  for (;;) {
    const r = Number(fn('long sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t alen)')(fd, data, data.length, 0x4000 /* MSG_NOSIGNAL */, addr, addr.length));
    if (r >= 0) return;
    const e = koffi.errno();
    if (e !== 4) throw new SyscallError('sendto', e, path);
  }
}

/** the next datagram, or null when none came within timeoutMs (poll) */
export function recvDgram(fd: number, timeoutMs: number, max = 4096): Buffer | null {
  if (!pollIn(fd, timeoutMs)) return null;
  const buf = Buffer.alloc(max);
  const n = Number(fn('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)')(fd, buf, max, 0));
  if (n < 0) throw new SyscallError('recv', koffi.errno());
  return buf.subarray(0, n);
}
