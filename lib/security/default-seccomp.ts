/**
 * The default seccomp profile `koci spec` writes: the same effect as the
 * profile Docker (moby's profiles/seccomp) gives its containers, rendered for
 * one capability set and one host architecture, as dockerd does before it
 * hands the config to runc.
 *
 * - everything not listed fails with EPERM (defaultAction SCMP_ACT_ERRNO,
 *   defaultErrnoRet 1);
 * - an allow-list of the ordinary syscalls (files, memory, signals, time,
 *   sockets except AF_VSOCK, SysV/POSIX IPC, ...), with io_uring left out as
 *   Docker 25+ does;
 * - personality only for the harmless personas (PER_LINUX, PER_LINUX32,
 *   UNAME26 and the query value);
 * - clone only without namespace flags and clone3 answered with ENOSYS (so
 *   libc falls back to clone, whose flags a filter can see) unless the
 *   bounding set has CAP_SYS_ADMIN; mount, umount2, unshare, setns, bpf,
 *   sethostname, ... only with CAP_SYS_ADMIN; reboot only with CAP_SYS_BOOT,
 *   chroot with CAP_SYS_CHROOT, modules with CAP_SYS_MODULE, and so on;
 * - keyctl, add_key, request_key, kexec_*, swapon/off, userfaultfd,
 *   open_by_handle_at (without CAP_DAC_READ_SEARCH), ... are never allowed;
 * - architecture-specific calls (arch_prctl and modify_ldt on x86_64,
 *   arm_fadvise64_64/cacheflush/set_tls/... on arm64) for the host only, with
 *   the compatible 32-bit ABIs listed in `architectures` as Docker does.
 */
import { release } from 'node:os';
import type { LinuxSeccomp, LinuxSyscall } from '../spec/types';

/** Node's process.arch names (as Go's GOARCH where they differ) */
type Arch = string;

/** syscalls every container may make, whatever its capabilities */
const ALWAYS = `
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr
llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64
preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl
semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid
setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat
shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall
socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs
sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`;

/** syscalls allowed when the bounding set has the capability */
const BY_CAPABILITY: ReadonlyArray<[cap: string, names: string]> = [
  ['CAP_DAC_READ_SEARCH', 'open_by_handle_at'],
  [
    'CAP_SYS_ADMIN',
    'bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr move_mount open_tree ' +
      'perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare',
  ],
  ['CAP_SYS_BOOT', 'reboot'],
  ['CAP_SYS_CHROOT', 'chroot'],
  ['CAP_SYS_MODULE', 'delete_module init_module finit_module'],
  ['CAP_SYS_PACCT', 'acct'],
  ['CAP_SYS_PTRACE', 'kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace'],
  ['CAP_SYS_RAWIO', 'iopl ioperm'],
  ['CAP_SYS_TIME', 'settimeofday stime clock_settime clock_settime64'],
  ['CAP_SYS_TTY_CONFIG', 'vhangup'],
  ['CAP_SYS_NICE', 'get_mempolicy mbind set_mempolicy set_mempolicy_home_node'],
  ['CAP_SYSLOG', 'syslog'],
  ['CAP_BPF', 'bpf'],
  ['CAP_PERFMON', 'perf_event_open'],
];

/** syscalls allowed only on these host architectures (Node's names) */
const BY_ARCH: ReadonlyArray<[arches: string[], names: string]> = [
  [['ppc64'], 'sync_file_range2 swapcontext'],
  [['arm', 'arm64'], 'arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls'],
  [['x64'], 'arch_prctl'],
  [['x64', 'ia32'], 'modify_ldt'],
  [['s390', 's390x'], 's390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr'],
  [['riscv64'], 'riscv_flush_icache'],
];

/** the filter's architectures per host architecture: the native ABI and the compat ones it can run */
const ARCHITECTURES: Readonly<Record<string, string[]>> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  mips64el: ['SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64N32'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  riscv64: ['SCMP_ARCH_RISCV64'],
};

/** the namespace flags of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

/** personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query) */
const PERSONAS = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

const AF_VSOCK = 40;
const ENOSYS = 38;
const EPERM = 1;

const words = (s: string) => s.split(/\s+/).filter(Boolean);

/** ptrace and process_vm_* are in the allow-list from Linux 4.8 (before it, ptrace could bypass seccomp) */
function kernelAtLeast(major: number, minor: number, kernel: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernel);
  if (!m) return true;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

export interface DefaultSeccompOptions {
  /** the host architecture, as Node's process.arch (default: this one) */
  arch?: Arch;
  /** the kernel release, as uname -r (default: the running one) */
  kernel?: string;
}

/**
 * Docker's default seccomp profile for a container whose bounding set is
 * `caps` (capability names such as 'CAP_SYS_ADMIN').
 */
export function defaultSeccomp(caps: readonly string[], options: DefaultSeccompOptions = {}): LinuxSeccomp {
  const arch = options.arch ?? process.arch;
  const has = new Set(caps);
  const syscalls: LinuxSyscall[] = [{ names: words(ALWAYS), action: 'SCMP_ACT_ALLOW' }];
  if (kernelAtLeast(4, 8, options.kernel ?? release())) {
    syscalls.push({ names: ['process_vm_readv', 'process_vm_writev', 'ptrace'], action: 'SCMP_ACT_ALLOW' });
  }
  syscalls.push({ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }] });
  for (const p of PERSONAS) {
    syscalls.push({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }] });
  }
  for (const [arches, names] of BY_ARCH) {
    if (arches.includes(arch)) syscalls.push({ names: words(names), action: 'SCMP_ACT_ALLOW' });
  }
  for (const [cap, names] of BY_CAPABILITY) {
    if (has.has(cap)) syscalls.push({ names: words(names), action: 'SCMP_ACT_ALLOW' });
  }
  if (!has.has('CAP_SYS_ADMIN')) {
    // clone without namespace flags; s390 passes the flags in the second argument
    const index = arch === 's390' || arch === 's390x' ? 1 : 0;
    syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] });
    // clone3 takes its flags in a struct a filter cannot read: ENOSYS makes libc fall back to clone
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  const profile: LinuxSeccomp = { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM };
  const architectures = ARCHITECTURES[arch];
  if (architectures) profile.architectures = [...architectures];
  profile.syscalls = syscalls;
  return profile;
}
