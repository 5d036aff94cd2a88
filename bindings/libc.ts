/**
 * libc through koffi: the only place koci talks to the kernel directly.
 * Each export calls one libc function (or syscall(2) for calls glibc has no
 * wrapper for) and throws SyscallError with errno and path on failure.
 *
 * Declarations are bound lazily on first use, so a CLI verb that needs three
 * calls does not pay for declaring sixty; koffi itself (a native addon, ~10 ms
 * to load) comes with the first call, so a verb that makes none (`state`,
 * `list`) never loads it.
 */
import type * as Koffi from 'koffi';
import { readFileSync } from 'node:fs';
import { SyscallError } from './errors';
import * as C from './constants';

type Fn = ReturnType<Koffi.LibraryHandle['func']>;
let lib: Koffi.LibraryHandle | undefined;
const fns = new Map<string, Fn>();
let loaded: typeof Koffi | undefined;
const koffi = (): typeof Koffi => (loaded ??= require('koffi') as typeof Koffi);

/** bind a libc prototype once (shared with the other bindings/ modules that call libc) */
export function fn(proto: string): Fn {
  let f = fns.get(proto);
  if (!f) {
    lib ??= koffi().load('libc.so.6');
    f = lib.func(proto);
    fns.set(proto, f);
  }
  return f;
}

function fail(syscall: string, path?: string): never {
  throw new SyscallError(syscall, koffi().errno(), path);
}

/** -1 (or any negative) means failure, errno is read immediately */
export function check(ret: number | bigint, syscall: string, path?: string): number {
  if (ret < 0) fail(syscall, path);
  return Number(ret);
}

let rlimitType: Koffi.TypeObject | undefined;
let openHowType: Koffi.TypeObject | undefined;

// ---- processes ---------------------------------------------------------

/**
 * The ranges to madvise(MADV_DOFORK): the whole user address space minus the
 * special mappings ([vvar], [vdso]) on which madvise fails with EINVAL and
 * stops its walk. Flat arrays of start and length, computed once, so the
 * loop before fork() allocates nothing (see fork()). The special mappings never move.
 */
let forkRanges: { starts: bigint[]; lengths: bigint[] } | undefined;
function doForkRanges(): { starts: bigint[]; lengths: bigint[] } {
  if (forkRanges) return forkRanges;
  const special: Array<[bigint, bigint]> = [];
  for (const line of readFileSync('/proc/self/maps', 'latin1').split('\n')) {
    if (!/\[(vvar|vvar_vclock|vdso|vsyscall)\]$/.test(line)) continue;
    const [a, b] = line.slice(0, line.indexOf(' ')).split('-').map((x) => BigInt('0x' + x));
    special.push([a, b]);
  }
  special.sort((x, y) => (x[0] < y[0] ? -1 : 1));
  const starts: bigint[] = [];
  const lengths: bigint[] = [];
  let start = 0x1000n;
  for (const [a, b] of special) {
    if (a >= C.arch.USER_ADDR_END) break;
    if (a > start) {
      starts.push(start);
      lengths.push(a - start);
    }
    start = b;
  }
  if (C.arch.USER_ADDR_END > start) {
    starts.push(start);
    lengths.push(C.arch.USER_ADDR_END - start);
  }
  forkRanges = { starts, lengths };
  return forkRanges;
}

/**
 * fork() a Node process. V8 maps its heap pages MADV_DONTFORK, so first undo
 * that over the whole address space, or the child returns into unmapped JS
 * objects. Between the madvise calls and fork() nothing may allocate on the
 * JS heap: an allocation can start a GC that maps a fresh (DONTFORK) page,
 * and the child then faults on whatever was moved there. So the functions
 * and ranges are prepared first and the loop only calls.
 * The child may run only synchronous code and must end in execve or _exit.
 * Uses glibc's fork (it resets malloc's locks in the child).
 */
export function fork(): number {
  const forkFn = fn('int fork()');
  adviseDoFork();
  const pid = forkFn() as number;
  return check(pid, 'fork');
}

/** madvise(MADV_DOFORK) over the whole address space, allocating nothing: the caller forks right after (see fork()) */
function adviseDoFork(): void {
  const madvise = fn('int madvise(uintptr_t addr, size_t len, int advice)');
  const { starts, lengths } = doForkRanges();
  const n = starts.length;
  const advice = C.MADV_DOFORK;
  for (let i = 0; i < n; i++) madvise(starts[i], lengths[i], advice); // ENOMEM for holes is expected
}

/**
 * fork() with clone3's extras (Linux 5.7+): new namespaces (CLONE_NEW*
 * flags: the child is born in them, PID 1 of a new PID namespace) and, with
 * cgroupFd, straight into that cgroup2 cgroup (CLONE_INTO_CGROUP): no
 * cgroup.procs write, whose lock waits out an RCU grace period (~10 ms on a
 * quiet host).
 * Only for a single-threaded process (a forked stage or zygote worker): this
 * is the raw syscall, without glibc's fork bookkeeping for other threads
 * (malloc's locks, the thread list, atfork handlers), of which there are
 * none. The child's thread descriptor keeps the parent's cached TID, which
 * glibc 2.34+ reads only for other threads (raise and pthread_kill of oneself
 * ask the kernel, as after vfork). V8's pages are prepared as for fork().
 */
export function clone3Fork(nsFlags: number, cgroupFd?: number): number {
  const clone3 = fn('long syscall(long number, ...)');
  // struct clone_args (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid, parent_tid, exit_signal, stack,
  // stack_size, tls, set_tid, set_tid_size, cgroup; a zero stack makes the child share our stack's layout, as fork
  const args = Buffer.alloc(88);
  args.writeBigUInt64LE(BigInt(nsFlags) | (cgroupFd === undefined ? 0n : C.CLONE_INTO_CGROUP), 0);
  args.writeBigUInt64LE(BigInt(C.SIGCHLD), 32);
  if (cgroupFd !== undefined) args.writeBigUInt64LE(BigInt(cgroupFd), 80);
  const nr = C.arch.SYS_clone3;
  adviseDoFork();
  const pid = Number(clone3(nr, 'void *', args, 'size_t', 88));
  return check(pid, 'clone3');
}

/** execveat(2) of an open file (AT_EMPTY_PATH): runs exactly that inode, whatever paths now say */
export function execveatFd(fd: number, argv: string[], envp: string[]): never {
  fn('int execveat(int dirfd, const char *path, const char **argv, const char **envp, int flags)')(fd, '', [...argv, null], [...envp, null], C.AT_EMPTY_PATH);
  fail('execveat', `fd ${fd}`);
}

export function _exit(status: number): never {
  fn('void _exit(int)')(status);
  throw new Error('unreachable');
}

/**
 * _exit(status) when this process has loaded libc through koffi already, else
 * return (loading it only to exit would cost more than Node's own exit saves).
 */
export function exitIfLoaded(status: number): void {
  if (lib) _exit(status);
}

export function execve(path: string, argv: string[], envp: string[]): never {
  fn('int execve(const char *path, const char **argv, const char **envp)')(path, [...argv, null], [...envp, null]);
  fail('execve', path);
}

export interface WaitResult {
  pid: number;
  /** exit code, when the process exited */
  exitCode: number | null;
  /** signal number, when the process was killed by one */
  signal: number | null;
}

function decodeStatus(pid: number, st: number): WaitResult {
  const sig = st & 0x7f;
  if (sig === 0) return { pid, exitCode: (st >> 8) & 0xff, signal: null };
  return { pid, exitCode: null, signal: sig };
}

/** waitpid; with WNOHANG returns null while the child runs. Retries EINTR. */
export function waitpid(pid: number, options = 0): WaitResult | null {
  const f = fn('int waitpid(int pid, _Out_ int *status, int options)');
  const st = [0];
  for (;;) {
    const r = f(pid, st, options) as number;
    if (r === 0) return null;
    if (r > 0) return decodeStatus(r, st[0]);
    const e = koffi().errno();
    if (e !== 4 /* EINTR */) throw new SyscallError('waitpid', e, String(pid));
  }
}

/** waitpid on the libuv thread pool, so the event loop (and signal handlers) keep running */
export function waitpidAsync(pid: number): Promise<WaitResult> {
  const f = fn('int waitpid(int pid, _Out_ int *status, int options)');
  return new Promise((resolve, reject) => {
    const st = [0];
    const again = () =>
      f.async(pid, st, 0, (err: unknown, r: number) => {
        if (err) return reject(err);
        if (r > 0) return resolve(decodeStatus(r, st[0]));
        const e = koffi().errno();
        if (e === 4) return again();
        reject(new SyscallError('waitpid', e, String(pid)));
      });
    again();
  });
}

export function kill(pid: number, sig: number): void {
  check(fn('int kill(int, int)')(pid, sig), 'kill', String(pid));
}

export function getpid(): number {
  return fn('int getpid()')();
}

export function setsid(): number {
  return check(fn('int setsid()')(), 'setsid');
}

export function prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
  return check(
    fn('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)')(option, arg2, arg3, arg4, arg5),
    'prctl',
  );
}

export function pidfdOpen(pid: number): number {
  return check(fn('long syscall(long number, ...)')(C.arch.SYS_pidfd_open, 'int', pid, 'uint', 0), 'pidfd_open', String(pid));
}

export function pidfdSendSignal(pidfd: number, sig: number): void {
  check(
    fn('long syscall(long number, ...)')(C.arch.SYS_pidfd_send_signal, 'int', pidfd, 'int', sig, 'void *', null, 'uint', 0),
    'pidfd_send_signal',
  );
}

/** join a new session keyring named `name` (keyctl(2) has no glibc wrapper); returns its serial */
export function joinSessionKeyring(name: string): number {
  const sys = fn('long syscall(long number, ...)');
  const serial = check(sys(C.arch.SYS_keyctl, 'int', C.KEYCTL_JOIN_SESSION_KEYRING, 'str', name), 'keyctl', name);
  check(sys(C.arch.SYS_keyctl, 'int', C.KEYCTL_SETPERM, 'int', serial, 'uint', C.KEYRING_PERM), 'keyctl', name);
  return serial;
}

/** set this thread's effective, permitted and inheritable sets (64-bit masks) */
export function capset(effective: bigint, permitted: bigint, inheritable: bigint): void {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(C.LINUX_CAPABILITY_VERSION_3, 0); // pid 0: this thread
  const data = Buffer.alloc(24); // two {effective, permitted, inheritable} u32 triplets: low, then high 32 bits
  const sets = [effective, permitted, inheritable];
  for (let half = 0; half < 2; half++) {
    for (let i = 0; i < 3; i++) data.writeUInt32LE(Number((sets[i] >> BigInt(32 * half)) & 0xffffffffn), half * 12 + i * 4);
  }
  check(fn('int capset(uint8_t *hdr, uint8_t *data)')(header, data), 'capset');
}

/** the working directory; "(unreachable)/…" or ENOENT when it lies outside this process's root */
export function getcwd(): string {
  const buf = Buffer.alloc(4096);
  const r = fn('intptr_t getcwd(uint8_t *buf, size_t size)')(buf, buf.length) as number | bigint;
  if (!r) fail('getcwd');
  return buf.toString('utf8', 0, buf.indexOf(0));
}

/** a copy of another process's fd `targetFd` (Linux 5.6+), close-on-exec */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return check(fn('long syscall(long number, ...)')(C.arch.SYS_pidfd_getfd, 'int', pidfd, 'int', targetFd, 'uint', 0), 'pidfd_getfd', String(targetFd));
}

/**
 * syscall(2) by number with koffi's variadic type/value pairs ('int', 1, 'str', 'x', …),
 * returning the raw result and errno, for probing what a filter allows
 */
export function rawSyscall(number: number, ...typedArgs: unknown[]): { ret: number; errno: number } {
  const ret = Number(fn('long syscall(long number, ...)')(number, ...typedArgs));
  return { ret, errno: ret < 0 ? koffi().errno() : 0 };
}

/** reset every signal disposition to default and unblock all (ignored signals survive execve) */
export function resetSignals(): void {
  const signal = fn('intptr_t signal(int sig, intptr_t handler)');
  for (let s = 1; s < 65; s++) if (s !== 9 && s !== 19 && s !== 32 && s !== 33) signal(s, 0);
  const sigprocmask = fn('int sigprocmask(int how, const uint8_t *set, uint8_t *old)');
  check(sigprocmask(C.SIG_SETMASK, Buffer.alloc(128), null), 'sigprocmask');
}

/** set one signal to SIG_IGN or SIG_DFL (an ignored SIGCHLD makes the kernel reap children: no zombies, but no waitpid) */
export function ignoreSignal(sig: number, ignore: boolean): void {
  if (Number(fn('intptr_t signal(int sig, intptr_t handler)')(sig, ignore ? 1 : 0)) === -1) fail('signal', String(sig));
}

// ---- namespaces --------------------------------------------------------

export function unshare(flags: number): void {
  check(fn('int unshare(int)')(flags), 'unshare');
}

export function setns(fd: number, nstype: number, path?: string): void {
  check(fn('int setns(int, int)')(fd, nstype), 'setns', path);
}

export function sethostname(name: string): void {
  const b = Buffer.from(name);
  check(fn('int sethostname(const uint8_t *name, size_t len)')(b, b.length), 'sethostname', name);
}

export function setdomainname(name: string): void {
  const b = Buffer.from(name);
  check(fn('int setdomainname(const uint8_t *name, size_t len)')(b, b.length), 'setdomainname', name);
}

// ---- credentials -------------------------------------------------------

export function setresuid(r: number, e: number, s: number): void {
  check(fn('int setresuid(uint32_t, uint32_t, uint32_t)')(r, e, s), 'setresuid', String(e));
}

export function setresgid(r: number, e: number, s: number): void {
  check(fn('int setresgid(uint32_t, uint32_t, uint32_t)')(r, e, s), 'setresgid', String(e));
}

export function setgroups(gids: number[]): void {
  check(fn('int setgroups(size_t size, const uint32_t *list)')(gids.length, gids.length ? Uint32Array.from(gids) : null), 'setgroups');
}

export function umask(mask: number): number {
  return fn('uint32_t umask(uint32_t)')(mask);
}

/** set a resource limit of the calling process; values are bigint so RLIM_INFINITY fits */
export function setrlimit(resource: number, soft: bigint, hard: bigint, name?: string): void {
  rlimitType ??= koffi().struct('koci_rlimit', { cur: 'uint64', max: 'uint64' });
  const f = fn('int prlimit(int pid, int resource, const koci_rlimit *nw, _Out_ koci_rlimit *old)');
  check(f(0, resource, { cur: soft, max: hard }, null), 'prlimit', name);
}

// ---- mounts ------------------------------------------------------------

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
  check(
    fn('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)')(source, target, fstype, flags, data),
    'mount',
    target,
  );
}

export function umount2(target: string, flags: number): void {
  check(fn('int umount2(const char *target, int flags)')(target, flags), 'umount2', target);
}

export function pivotRoot(newRoot: string, putOld: string): void {
  check(fn('long syscall(long number, ...)')(C.arch.SYS_pivot_root, 'str', newRoot, 'str', putOld), 'pivot_root', newRoot);
}

export function chroot(path: string): void {
  check(fn('int chroot(const char *)')(path), 'chroot', path);
}

export function chdir(path: string): void {
  check(fn('int chdir(const char *)')(path), 'chdir', path);
}

export function fchdir(fd: number): void {
  check(fn('int fchdir(int)')(fd), 'fchdir');
}

/** statvfs f_flag (ST_* bits): the flags a bind remount must keep */
export function statvfsFlags(path: string): number {
  // struct statvfs on 64-bit Linux: f_flag is the 10th unsigned long (offset 72)
  const buf = Buffer.alloc(112);
  check(fn('int statvfs(const char *path, _Out_ uint8_t *buf)')(path, buf), 'statvfs', path);
  return Number(buf.readBigUInt64LE(72));
}

// ---- files -------------------------------------------------------------

export function open(path: string, flags: number, mode = 0): number {
  return check(fn('int open(const char *path, int flags, uint32_t mode)')(path, flags, mode), 'open', path);
}

export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  return check(fn('int openat(int dirfd, const char *path, int flags, uint32_t mode)')(dirfd, path, flags, mode), 'openat', path);
}

/** openat2(2) with resolve flags (RESOLVE_IN_ROOT etc.) */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  openHowType ??= koffi().struct('koci_open_how', { flags: 'uint64', mode: 'uint64', resolve: 'uint64' });
  const how = { flags: BigInt(flags), mode: BigInt(mode), resolve: BigInt(resolve) };
  return check(
    fn('long syscall(long number, ...)')(C.arch.SYS_openat2, 'int', dirfd, 'str', path, 'koci_open_how *', how, 'size_t', 24),
    'openat2',
    path,
  );
}

export function close(fd: number): void {
  check(fn('int close(int)')(fd), 'close');
}

/** mark (CLOSE_RANGE_CLOEXEC) or close every fd in [first, last] */
export function closeRange(first: number, last: number, flags: number): void {
  check(fn('int close_range(uint32_t first, uint32_t last, int flags)')(first, last, flags), 'close_range');
}

export function dup2(oldfd: number, newfd: number): void {
  check(fn('int dup2(int, int)')(oldfd, newfd), 'dup2');
}

export function dup3(oldfd: number, newfd: number, flags: number): void {
  check(fn('int dup3(int, int, int)')(oldfd, newfd, flags), 'dup3');
}

/**
 * Wait up to timeoutMs (-1: no limit) for fd, or any of fds, to be readable
 * (or at its end, or in error): true when one is, false on timeout or EINTR.
 */
export function pollIn(fd: number | readonly number[], timeoutMs: number): boolean {
  const fds = typeof fd === 'number' ? [fd] : fd;
  const pfd = Buffer.alloc(8 * fds.length); // struct pollfd { int fd; short events; short revents; }
  fds.forEach((f, i) => {
    pfd.writeInt32LE(f, 8 * i);
    pfd.writeInt16LE(C.POLLIN, 8 * i + 4);
  });
  const r = fn('int poll(_Inout_ uint8_t *fds, unsigned long n, int timeout)')(pfd, fds.length, timeoutMs) as number;
  if (r < 0) {
    if (koffi().errno() === 4 /* EINTR */) return false;
    fail('poll');
  }
  return r > 0;
}

export function fcntl(fd: number, cmd: number, arg = 0): number {
  return check(fn('int fcntl(int fd, int cmd, int arg)')(fd, cmd, arg), 'fcntl');
}

export function ioctl(fd: number, req: number, arg: number | Buffer | null): number {
  if (typeof arg === 'number') return check(fn('int ioctl(int fd, unsigned long req, intptr_t arg)')(fd, req, arg), 'ioctl');
  return check(fn('int ioctl(int fd, unsigned long req, uint8_t *arg)')(fd, req, arg), 'ioctl');
}

/** an anonymous memory file (MFD_CLOEXEC = 1) */
export function memfdCreate(name: string, flags: number): number {
  return check(fn('int memfd_create(const char *name, uint32_t flags)')(name, flags), 'memfd_create', name);
}

export function pipe2(flags: number): [number, number] {
  const fds = new Int32Array(2);
  check(fn('int pipe2(_Out_ int *fds, int flags)')(fds, flags), 'pipe2');
  return [fds[0], fds[1]];
}

export function socketpair(domain: number, type: number, protocol = 0): [number, number] {
  const sv = new Int32Array(2);
  check(fn('int socketpair(int, int, int, _Out_ int *sv)')(domain, type, protocol, sv), 'socketpair');
  return [sv[0], sv[1]];
}

export function mkfifo(path: string, mode: number): void {
  check(fn('int mkfifo(const char *path, uint32_t mode)')(path, mode), 'mkfifo', path);
}

export function mknod(path: string, mode: number, major: number, minor: number): void {
  // glibc makedev(): the kernel's 64-bit dev_t encoding
  const dev =
    ((BigInt(major) & 0xfffff000n) << 32n) | ((BigInt(major) & 0xfffn) << 8n) |
    ((BigInt(minor) & 0xffffff00n) << 12n) | (BigInt(minor) & 0xffn);
  check(fn('int mknod(const char *path, uint32_t mode, uint64_t dev)')(path, mode, dev), 'mknod', path);
}

export function flock(fd: number, op: number, path?: string): void {
  check(fn('int flock(int, int)')(fd, op), 'flock', path);
}

export function access(path: string, mode: number): boolean {
  return fn('int access(const char *path, int mode)')(path, mode) === 0;
}

export function write(fd: number, data: Buffer): number {
  return check(fn('long write(int fd, const uint8_t *buf, size_t n)')(fd, data, data.length), 'write');
}

// ---- fd-relative file operations (safe paths inside the rootfs) --------

export function mkdirat(dirfd: number, name: string, mode: number): void {
  check(fn('int mkdirat(int dirfd, const char *path, uint32_t mode)')(dirfd, name, mode), 'mkdirat', name);
}

export function mknodat(dirfd: number, name: string, mode: number, major: number, minor: number): void {
  const dev =
    ((BigInt(major) & 0xfffff000n) << 32n) | ((BigInt(major) & 0xfffn) << 8n) |
    ((BigInt(minor) & 0xffffff00n) << 12n) | (BigInt(minor) & 0xffn);
  check(fn('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)')(dirfd, name, mode, dev), 'mknodat', name);
}

export function unlinkat(dirfd: number, name: string, flags: number): void {
  check(fn('int unlinkat(int dirfd, const char *path, int flags)')(dirfd, name, flags), 'unlinkat', name);
}

export function symlinkat(target: string, dirfd: number, name: string): void {
  check(fn('int symlinkat(const char *target, int dirfd, const char *path)')(target, dirfd, name), 'symlinkat', name);
}

/** the target of the symlink `name` under dirfd ('' with an O_PATH|O_NOFOLLOW fd of the link itself) */
export function readlinkat(dirfd: number, name: string): string {
  const buf = Buffer.alloc(4096);
  const n = check(fn('long readlinkat(int dirfd, const char *path, _Out_ uint8_t *buf, size_t size)')(dirfd, name, buf, buf.length), 'readlinkat', name);
  return buf.subarray(0, n).toString();
}
