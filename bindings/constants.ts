/**
 * Kernel ABI numbers. Flags shared by every Linux architecture are plain
 * constants; what differs per architecture (syscall numbers, some O_* flags)
 * sits in a per-arch table chosen at load time.
 */

interface ArchTable {
  /** syscalls glibc 2.36 has no wrapper for, reached through syscall(2) */
  SYS_pivot_root: number;
  SYS_pidfd_open: number;
  SYS_pidfd_send_signal: number;
  SYS_openat2: number;
  SYS_clone3: number;
  SYS_close_range: number;
  SYS_keyctl: number;
  SYS_pidfd_getfd: number;
  SYS_bpf: number;
  SYS_seccomp: number;
  SYS_sched_setattr: number;
  SYS_ioprio_set: number;
  SYS_set_mempolicy: number;
  O_DIRECTORY: number;
  O_NOFOLLOW: number;
  /** highest user-space address + 1 (for madvise over the whole address space) */
  USER_ADDR_END: bigint;
}

const x64: ArchTable = {
  SYS_pivot_root: 155,
  SYS_pidfd_open: 434,
  SYS_pidfd_send_signal: 424,
  SYS_openat2: 437,
  SYS_clone3: 435,
  SYS_close_range: 436,
  SYS_keyctl: 250,
  SYS_pidfd_getfd: 438,
  SYS_bpf: 321,
  SYS_seccomp: 317,
  SYS_sched_setattr: 314,
  SYS_ioprio_set: 251,
  SYS_set_mempolicy: 238,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  USER_ADDR_END: 0x7ffffffff000n,
};

const arm64: ArchTable = {
  SYS_pivot_root: 41,
  SYS_pidfd_open: 434,
  SYS_pidfd_send_signal: 424,
  SYS_openat2: 437,
  SYS_clone3: 435,
  SYS_close_range: 436,
  SYS_keyctl: 219,
  SYS_pidfd_getfd: 438,
  SYS_bpf: 280,
  SYS_seccomp: 277,
  SYS_sched_setattr: 274,
  SYS_ioprio_set: 30,
  SYS_set_mempolicy: 237,
  O_DIRECTORY: 0o40000,
  O_NOFOLLOW: 0o100000,
  USER_ADDR_END: 0x1000000000000n,
};

const tables: Record<string, ArchTable> = { x64, arm64 };
const table = tables[process.arch];
if (!table) throw new Error(`koci: architecture ${process.arch} is not supported (have: ${Object.keys(tables).join(', ')})`);
export const arch: Readonly<ArchTable> = table;

// keyctl(2)
export const KEYCTL_JOIN_SESSION_KEYRING = 1;
export const KEYCTL_SETPERM = 5;
/** the kernel's default for a joined keyring (possessor all; user view, read, link) plus user search and group view, as runc sets */
export const KEYRING_PERM = 0x3f1b0100;

// clone / unshare / setns
export const CLONE_NEWTIME = 0x00000080;
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
/** clone3(2): the child starts in the cgroup2 cgroup given by clone_args.cgroup (a 64-bit flag) */
export const CLONE_INTO_CGROUP = 0x200000000n;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

// mount(2)
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_SYNCHRONOUS = 0x10;
export const MS_REMOUNT = 0x20;
export const MS_MANDLOCK = 0x40;
export const MS_DIRSYNC = 0x80;
export const MS_NOSYMFOLLOW = 0x100;
export const MS_NOATIME = 0x400;
export const MS_NODIRATIME = 0x800;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_SILENT = 0x8000;
export const MS_UNBINDABLE = 0x20000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;
export const MS_STRICTATIME = 0x1000000;
export const MS_LAZYTIME = 0x2000000;
export const MNT_DETACH = 0x2;

// statfs f_flags (ST_*), used to keep locked flags on a bind remount
export const ST_RDONLY = 0x1;
export const ST_NOSUID = 0x2;
export const ST_NODEV = 0x4;
export const ST_NOEXEC = 0x8;
export const ST_NOATIME = 0x400;
export const ST_NODIRATIME = 0x800;
export const ST_RELATIME = 0x1000;

// open(2)
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_EMPTY_PATH = 0x1000;

// openat2 resolve flags
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;

// fcntl
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_DUPFD_CLOEXEC = 1030;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const FD_CLOEXEC = 1;

// sockets
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;

// close_range
export const CLOSE_RANGE_CLOEXEC = 1 << 2;

// prctl
export const PR_SET_PDEATHSIG = 1;
export const PR_GET_DUMPABLE = 3;
export const PR_SET_DUMPABLE = 4;
export const PR_SET_KEEPCAPS = 8;
export const PR_SET_NAME = 15;
export const PR_CAPBSET_DROP = 24;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_CAP_AMBIENT = 47;
export const PR_CAP_AMBIENT_RAISE = 2;
export const PR_CAP_AMBIENT_CLEAR_ALL = 4;
export const PR_CAPBSET_READ = 23;
/** capset(2) header version for 64-bit capability sets */
export const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

// madvise
export const MADV_DOFORK = 11;

// waitpid
export const WNOHANG = 1;

// flock
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

// mknod file types
export const S_IFMT = 0o170000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFDIR = 0o040000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

// eventfd(2), inotify(7)
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const IN_CLOEXEC = 0o2000000;
export const IN_NONBLOCK = 0o4000;
export const IN_MODIFY = 0x2;
/** the watch was removed (file deleted, e.g. the cgroup's rmdir) */
export const IN_IGNORED = 0x8000;

// sigprocmask
export const SIG_SETMASK = 2;
export const SIGCHLD = 17;

// ioctl
export const TIOCSCTTY = 0x540e;
export const TIOCGPTN = 0x80045430;
export const TIOCSPTLCK = 0x40045431;
export const TIOCSWINSZ = 0x5414;
export const TIOCGWINSZ = 0x5413;

/** rlimit names of the spec -> resource numbers (same on x86_64 and aarch64) */
export const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};
export const RLIM_INFINITY = 0xffffffffffffffffn;

/** OCI namespace type -> clone flag and /proc/<pid>/ns entry */
export const NAMESPACES: Readonly<Record<string, { flag: number; proc: string }>> = {
  user: { flag: CLONE_NEWUSER, proc: 'user' },
  pid: { flag: CLONE_NEWPID, proc: 'pid' },
  network: { flag: CLONE_NEWNET, proc: 'net' },
  ipc: { flag: CLONE_NEWIPC, proc: 'ipc' },
  uts: { flag: CLONE_NEWUTS, proc: 'uts' },
  mount: { flag: CLONE_NEWNS, proc: 'mnt' },
  cgroup: { flag: CLONE_NEWCGROUP, proc: 'cgroup' },
  time: { flag: CLONE_NEWTIME, proc: 'time' },
};

// sched_setattr(2): policies and sched_attr flags (uapi linux/sched.h); SCHED_ISO is reserved, never implemented
export const SCHED_POLICIES: Readonly<Record<string, number>> = {
  SCHED_OTHER: 0,
  SCHED_FIFO: 1,
  SCHED_RR: 2,
  SCHED_BATCH: 3,
  SCHED_IDLE: 5,
  SCHED_DEADLINE: 6,
};
export const SCHED_FLAGS: Readonly<Record<string, number>> = {
  SCHED_FLAG_RESET_ON_FORK: 0x01,
  SCHED_FLAG_RECLAIM: 0x02,
  SCHED_FLAG_DL_OVERRUN: 0x04,
  SCHED_FLAG_KEEP_POLICY: 0x08,
  SCHED_FLAG_KEEP_PARAMS: 0x10,
  SCHED_FLAG_UTIL_CLAMP_MIN: 0x20,
  SCHED_FLAG_UTIL_CLAMP_MAX: 0x40,
};
/** sizeof(struct sched_attr) with the utilization clamps (SCHED_ATTR_SIZE_VER1) */
export const SCHED_ATTR_SIZE = 56;

// ioprio_set(2)
export const IOPRIO_WHO_PROCESS = 1;
export const IOPRIO_CLASS_SHIFT = 13;
export const IOPRIO_CLASSES: Readonly<Record<string, number>> = { IOPRIO_CLASS_RT: 1, IOPRIO_CLASS_BE: 2, IOPRIO_CLASS_IDLE: 3 };

// personality(2) execution domains
export const PERSONALITIES: Readonly<Record<string, number>> = { LINUX: 0x0000, LINUX32: 0x0008 };

// set_mempolicy(2): modes and the mode flags OR-ed into the mode (uapi linux/mempolicy.h)
export const MPOL_MODES: Readonly<Record<string, number>> = {
  MPOL_DEFAULT: 0,
  MPOL_PREFERRED: 1,
  MPOL_BIND: 2,
  MPOL_INTERLEAVE: 3,
  MPOL_LOCAL: 4,
  MPOL_PREFERRED_MANY: 5,
  MPOL_WEIGHTED_INTERLEAVE: 6,
};
export const MPOL_FLAGS: Readonly<Record<string, number>> = {
  MPOL_F_NUMA_BALANCING: 1 << 13,
  MPOL_F_RELATIVE_NODES: 1 << 14,
  MPOL_F_STATIC_NODES: 1 << 15,
};
/** nodes koci's nodemask holds (the kernel's MAX_NUMNODES is at most 1024) */
export const MPOL_MAX_NODES = 1024;
/** CPUs in glibc's cpu_set_t, the mask sched_setaffinity is given */
export const CPU_SETSIZE = 1024;

// poll(2)
export const POLLIN = 0x1;

// memfd_create(2) and file seals (fcntl F_ADD_SEALS)
export const MFD_CLOEXEC = 0x1;
export const MFD_ALLOW_SEALING = 0x2;
/** kernel 6.3+: ask for an executable memfd explicitly (vm.memfd_noexec) */
export const MFD_EXEC = 0x10;
export const F_ADD_SEALS = 1033;
export const F_SEAL_SEAL = 0x1;
export const F_SEAL_SHRINK = 0x2;
export const F_SEAL_GROW = 0x4;
export const F_SEAL_WRITE = 0x8;
