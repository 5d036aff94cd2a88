/**
 * The config `koci spec` writes: the same defaults `runc spec` produces (so
 * bundles and habits carry over), with koci's ociVersion and hostname, and
 * (with `seccomp: true`, as `koci spec` asks) Docker's default seccomp profile.
 */
import { defaultSeccomp } from '../security/default-seccomp';
import type { Mount, Spec } from './types';
import { KOCI_OCI_VERSION } from './version';

export { KOCI_OCI_VERSION };

export interface DefaultSpecOptions {
  /** like `runc spec --rootless`: user namespace mapping the caller, no network namespace, no cgroup resources */
  rootless?: boolean;
  /** host IDs mapped to container root when rootless; default: the caller's effective IDs */
  uid?: number;
  gid?: number;
  /**
   * add Docker's default seccomp profile for the config's bounding set (what
   * `koci spec` writes; off by default, like runc spec)
   */
  seccomp?: boolean;
}

const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

function baseSpec(): Spec {
  return {
    ociVersion: KOCI_OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: [...CAPS], effective: [...CAPS], permitted: [...CAPS] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'koci',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      // runc adds cgroup only on a cgroup v2 host; koci targets v2, so always.
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
        '/sys/devices/virtual/tpm',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** the rootless rewrite, applied to a fresh baseSpec() */
function makeRootless(spec: Spec, uid: number, gid: number): void {
  const linux = spec.linux!;
  // An unprivileged user cannot configure a network namespace's devices, so keep the host's.
  linux.namespaces = [...linux.namespaces!.filter((n) => n.type !== 'network' && n.type !== 'user'), { type: 'user' }];
  linux.uidMappings = [{ containerID: 0, hostID: uid, size: 1 }];
  linux.gidMappings = [{ containerID: 0, hostID: gid, size: 1 }];
  spec.mounts = spec.mounts!.map((m): Mount => {
    // A fresh sysfs needs a network namespace the user owns; bind the host's read-only instead.
    if (m.destination === '/sys') {
      return { destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] };
    }
    // With only one mapped ID, uid=/gid= options name IDs that do not exist in the container.
    if (!m.options) return m;
    return { ...m, options: m.options.filter((o) => !o.startsWith('uid=') && !o.startsWith('gid=')) };
  });
  // Cgroup limits need delegation the caller may not have.
  delete linux.resources;
}

/** A fresh default config (callers may mutate it). */
export function defaultSpec(options: DefaultSpecOptions = {}): Spec {
  const spec = baseSpec();
  if (options.rootless) {
    makeRootless(spec, options.uid ?? process.geteuid?.() ?? 0, options.gid ?? process.getegid?.() ?? 0);
  }
  if (options.seccomp) spec.linux!.seccomp = defaultSeccomp(spec.process!.capabilities?.bounding ?? []);
  return spec;
}
