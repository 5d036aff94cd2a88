/**
 * The runtime-spec features document (features.md): what this koci
 * implements, for orchestrators to read before they build a config. Only
 * what works is claimed; seccomp's flags and archs are asked of the host's
 * libseccomp (and SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, which koci passes to
 * seccomp(2) itself, of the kernel).
 */
import { MPOL_FLAGS, MPOL_MODES } from '../bindings/constants';
import { CAPABILITIES } from './security/capability-names';
import { MOUNT_OPTIONS } from './rootfs/options';
import { seccompFeatures } from './security/seccomp';
import { apparmorEnabled, selinuxEnabled } from './security/lsm';
import { KOCI_OCI_VERSION } from './spec/default';

export interface Features {
  ociVersionMin: string;
  ociVersionMax: string;
  hooks: string[];
  mountOptions: string[];
  linux: {
    namespaces: string[];
    capabilities: string[];
    cgroup: { v1: boolean; v2: boolean; systemd: boolean; systemdUser: boolean; rdma: boolean };
    seccomp: ReturnType<typeof seccompFeatures>;
    apparmor: { enabled: boolean };
    selinux: { enabled: boolean };
    intelRdt: { enabled: boolean };
    memoryPolicy: { modes: string[]; flags: string[] };
    mountExtensions: { idmap: { enabled: boolean } };
    netDevices: { enabled: boolean };
  };
  annotations: Record<string, string>;
}

export function features(): Features {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: KOCI_OCI_VERSION,
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: [...new Set(MOUNT_OPTIONS)].sort(),
    linux: {
      namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'time', 'user', 'uts'],
      capabilities: Object.keys(CAPABILITIES),
      // the cgroupfs drivers; a systemd driver (the slice:prefix:name form) is not built
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: true },
      seccomp: seccompFeatures(),
      // labels are applied when that LSM is active on the host, refused otherwise
      apparmor: { enabled: apparmorEnabled() },
      selinux: { enabled: selinuxEnabled() },
      intelRdt: { enabled: false },
      // set_mempolicy with every mode and flag koci can name; the kernel judges the combination
      memoryPolicy: { modes: Object.keys(MPOL_MODES), flags: Object.keys(MPOL_FLAGS) },
      mountExtensions: { idmap: { enabled: false } },
      netDevices: { enabled: false },
    },
    annotations: {
      'io.github.koci.version': require('../../package.json').version as string,
      'io.github.koci.libseccomp.version': seccompVersion(),
    },
  };
}

function seccompVersion(): string {
  try {
    const v = (require('../bindings/seccomp') as typeof import('../bindings/seccomp')).version();
    return `${v.major}.${v.minor}.${v.micro}`;
  } catch {
    return 'unavailable';
  }
}
